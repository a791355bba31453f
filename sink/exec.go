package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crmhook/crmhook"
)

// DefaultExecTimeout is ExecConfig's default Timeout.
const DefaultExecTimeout = 30 * time.Second

// Exit codes with a meaning to the exec sink, from sysexits.h.
const (
	// ExitDataErr (EX_DATAERR) tells the sink the event can never be
	// handled: the delivery is dead-lettered at once, without retries.
	ExitDataErr = 65
	// ExitTempFail (EX_TEMPFAIL) asks for a retry, as does every other
	// non-zero exit status.
	ExitTempFail = 75
)

// execWaitDelay bounds how long Wait waits for the command's I/O after the
// process exited or was killed (a leftover child holding stdin open).
const execWaitDelay = 2 * time.Second

// ExecConfig configures an exec sink.
type ExecConfig struct {
	Name    string   // the sink's configured name; required
	Command []string // program and arguments, run directly (no shell); required
	// Timeout bounds one run. When it passes, the whole process group is
	// killed and the delivery retried. Default 30s.
	Timeout time.Duration
	Env     []string // KEY=VALUE pairs added to crmhook's own environment
	Dir     string   // working directory; empty means crmhook's
}

func (c *ExecConfig) withDefaults() ExecConfig {
	out := *c
	if out.Timeout == 0 {
		out.Timeout = DefaultExecTimeout
	}
	return out
}

func (c *ExecConfig) validate() error {
	if c.Name == "" {
		return errors.New("name is required")
	}
	if len(c.Command) == 0 || c.Command[0] == "" {
		return errors.New("command is required")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout %s is negative", c.Timeout)
	}
	for i, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("env[%d] is not KEY=VALUE", i)
		}
	}
	return nil
}

// Exec runs a command for every event. The command reads the event's raw
// provider JSON on stdin and its metadata from the environment:
//
//	CRMHOOK_EVENT_ID     crmhook's event id (the same on every retry)
//	CRMHOOK_SOURCE       the configured source name
//	CRMHOOK_PROVIDER     affinity, attio or standard-webhooks
//	CRMHOOK_EVENT_TYPE   the provider's event type
//	CRMHOOK_DEDUPE_KEY   the dedupe key
//	CRMHOOK_ATTEMPT      1 on the first attempt, then 2, 3, …
//	CRMHOOK_RECEIVED_AT  when crmhook received the event (RFC 3339)
//	CRMHOOK_OCCURRED_AT  the provider's timestamp (RFC 3339), empty if it sent none
//
// Exit status 0 means delivered. 65 (EX_DATAERR) means the event can never
// be handled: it is dead-lettered without retries. Any other status, 75
// (EX_TEMPFAIL) included, is retried. The command runs in its own process
// group, which is killed as a whole when the timeout passes.
//
// The command inherits crmhook's environment (API keys included, if they
// are set there): run only commands trusted with it.
//
// The command's stdout and stderr are discarded: they may hold personal data
// from the payload, and errors are stored and logged.
type Exec struct {
	cfg ExecConfig
}

// NewExec returns an exec sink.
func NewExec(cfg ExecConfig) (*Exec, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("exec sink %q: %w", cfg.Name, err)
	}
	cfg.Command = append([]string(nil), cfg.Command...)
	cfg.Env = append([]string(nil), cfg.Env...)
	return &Exec{cfg: cfg}, nil
}

// Name is the sink's configured name.
func (s *Exec) Name() string { return s.cfg.Name }

// Close does nothing: every run ends before Deliver returns.
func (s *Exec) Close() error { return nil }

// Deliver runs the command for ev.
func (s *Exec) Deliver(ctx context.Context, ev *crmhook.Event, attempt int) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, s.cfg.Command[0], s.cfg.Command[1:]...)
	cmd.Dir = s.cfg.Dir
	cmd.Env = s.env(ev, attempt)
	cmd.Stdin = bytes.NewReader(ev.Payload)
	// Stdout and Stderr stay nil: the null device.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Kill the whole group, so children the command started die too.
		// With Setpgid the group id is the command's pid.
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone // it finished just as the timeout passed
		} else if err != nil {
			return fmt.Errorf("kill process group: %w", err)
		}
		return nil
	}
	cmd.WaitDelay = execWaitDelay

	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return &crmhook.DeliveryError{Err: fmt.Errorf("exec sink %q: killed after the %s timeout: %w", s.cfg.Name, s.cfg.Timeout, ctxErr)}
		}
		return &crmhook.DeliveryError{Err: fmt.Errorf("exec sink %q: killed: %w", s.cfg.Name, ctxErr)}
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		// Not started (not found, not executable) or an I/O failure.
		return &crmhook.DeliveryError{Err: fmt.Errorf("exec sink %q: run: %w", s.cfg.Name, err)}
	}
	code := exitErr.ExitCode()
	if code < 0 {
		return &crmhook.DeliveryError{Err: fmt.Errorf("exec sink %q: %s", s.cfg.Name, exitErr.ProcessState)}
	}
	derr := &crmhook.DeliveryError{Err: &ExitError{Sink: s.cfg.Name, Code: code}}
	if code == ExitDataErr {
		derr.Permanent = true
	}
	return derr
}

// ExitError is a command's non-zero exit.
type ExitError struct {
	Sink string
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("exec sink %q: exit status %d", e.Sink, e.Code)
}

// env is crmhook's environment, then the configured one, then the event's
// metadata; a later entry wins over an earlier one with the same key.
func (s *Exec) env(ev *crmhook.Event, attempt int) []string {
	base := os.Environ()
	env := make([]string, 0, len(base)+len(s.cfg.Env)+8)
	env = append(env, base...)
	env = append(env, s.cfg.Env...)
	return append(env,
		"CRMHOOK_EVENT_ID="+envValue(ev.ID),
		"CRMHOOK_SOURCE="+envValue(ev.Source),
		"CRMHOOK_PROVIDER="+envValue(string(ev.Provider)),
		"CRMHOOK_EVENT_TYPE="+envValue(ev.Type),
		"CRMHOOK_DEDUPE_KEY="+envValue(ev.DedupeKey),
		"CRMHOOK_ATTEMPT="+strconv.Itoa(attempt),
		"CRMHOOK_RECEIVED_AT="+formatTime(ev.ReceivedAt),
		"CRMHOOK_OCCURRED_AT="+formatTime(ev.OccurredAt),
	)
}

// envValue drops NUL bytes, which an environment cannot hold: a provider's
// event type with an escaped NUL would otherwise stop the command from ever
// starting.
func envValue(s string) string { return strings.ReplaceAll(s, "\x00", "") }
