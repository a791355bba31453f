package sink

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
)

// script returns the absolute path of a testdata script.
func script(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newExecSink(t *testing.T, cfg ExecConfig) *Exec {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "script"
	}
	s, err := NewExec(cfg)
	if err != nil {
		t.Fatalf("NewExec: %v", err)
	}
	return s
}

// readEnvFile parses the output of env(1).
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

func TestExecStdinAndEnvironment(t *testing.T) {
	out := t.TempDir()
	t.Setenv("CRMHOOK_TEST_INHERITED", "from-parent")
	s := newExecSink(t, ExecConfig{
		Command: []string{"/bin/sh", script(t, "capture.sh")},
		Env:     []string{"OUT_DIR=" + out, "EXTRA=configured", "CRMHOOK_EVENT_ID=overridden-by-the-event"},
	})
	ev := testEvent()
	if err := s.Deliver(context.Background(), ev, 3); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	stdin, err := os.ReadFile(filepath.Join(out, "stdin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdin, ev.Payload) {
		t.Errorf("stdin = %s, want the raw payload %s", stdin, ev.Payload)
	}
	env := readEnvFile(t, filepath.Join(out, "env"))
	want := map[string]string{
		"CRMHOOK_EVENT_ID":       ev.ID,
		"CRMHOOK_SOURCE":         "affinity",
		"CRMHOOK_PROVIDER":       "affinity",
		"CRMHOOK_EVENT_TYPE":     "person.created",
		"CRMHOOK_DEDUPE_KEY":     ev.DedupeKey,
		"CRMHOOK_ATTEMPT":        "3",
		"CRMHOOK_RECEIVED_AT":    "2023-11-15T06:13:21.5Z",
		"CRMHOOK_OCCURRED_AT":    "2023-11-15T06:13:20Z",
		"EXTRA":                  "configured",
		"CRMHOOK_TEST_INHERITED": "from-parent",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
}

func TestExecWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	s := newExecSink(t, ExecConfig{Command: []string{"/bin/sh", "-c", "pwd > here"}, Dir: dir})
	if err := s.Deliver(context.Background(), testEvent(), 1); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "here"))
	if err != nil {
		t.Fatal(err)
	}
	gotDir, _ := filepath.EvalSymlinks(strings.TrimSpace(string(b)))
	wantDir, _ := filepath.EvalSymlinks(dir)
	if gotDir != wantDir {
		t.Errorf("ran in %q, want %q", gotDir, wantDir)
	}
}

func TestExecExitStatuses(t *testing.T) {
	tests := []struct {
		code      int
		permanent bool
	}{
		{code: 1},
		{code: 2},
		{code: ExitTempFail},
		{code: ExitDataErr, permanent: true},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			out := t.TempDir()
			s := newExecSink(t, ExecConfig{
				Command: []string{"/bin/sh", script(t, "capture.sh")},
				Env:     []string{"OUT_DIR=" + out, "EXIT_CODE=" + strconv.Itoa(tt.code)},
			})
			err := s.Deliver(context.Background(), testEvent(), 1)
			var de *crmhook.DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("Deliver = %v, want a *DeliveryError", err)
			}
			if de.Permanent != tt.permanent {
				t.Errorf("Permanent = %v, want %v", de.Permanent, tt.permanent)
			}
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Code != tt.code {
				t.Errorf("error %v does not carry exit code %d", err, tt.code)
			}
			if msg := err.Error(); !strings.Contains(msg, "exit status "+strconv.Itoa(tt.code)) || strings.Contains(msg, "Ada") {
				t.Errorf("error message %q", msg)
			}
		})
	}
}

func TestExecOutputIsDiscardedAndStdinMayBeIgnored(t *testing.T) {
	s := newExecSink(t, ExecConfig{Command: []string{"/bin/sh", script(t, "ignore_stdin.sh")}})
	ev := testEvent()
	ev.Payload = []byte(`{"big":"` + strings.Repeat("a", 1<<20) + `"}`) // more than a pipe buffer
	if err := s.Deliver(context.Background(), ev, 1); err != nil {
		t.Fatalf("Deliver = %v, want nil", err)
	}
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	out := t.TempDir()
	s := newExecSink(t, ExecConfig{
		Command: []string{"/bin/sh", script(t, "sleeper.sh")},
		Env:     []string{"OUT_DIR=" + out},
		Timeout: time.Second,
	})
	err := s.Deliver(context.Background(), testEvent(), 1)
	var de *crmhook.DeliveryError
	if !errors.As(err, &de) || de.Permanent {
		t.Fatalf("Deliver = %v, want a retryable *DeliveryError", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("Deliver = %v, want a timeout error", err)
	}
	for _, name := range []string{"parent.pid", "child.pid"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatalf("the script did not record its pids in time: %v", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		waitGone(t, pid)
	}
}

func TestExecCallerCancelKills(t *testing.T) {
	out := t.TempDir()
	s := newExecSink(t, ExecConfig{Command: []string{"/bin/sh", script(t, "sleeper.sh")}, Env: []string{"OUT_DIR=" + out}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Deliver(ctx, testEvent(), 1) }()
	childPid := filepath.Join(out, "child.pid")
	pollUntil(t, 10*time.Second, func() bool { _, err := os.Stat(childPid); return err == nil })
	cancel()
	err := <-done
	var de *crmhook.DeliveryError
	if !errors.As(err, &de) || de.Permanent || !errors.Is(err, context.Canceled) {
		t.Fatalf("Deliver = %v, want a retryable cancellation", err)
	}
	b, _ := os.ReadFile(childPid)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitGone(t, pid)
}

func TestExecCommandNotFoundIsRetryable(t *testing.T) {
	s := newExecSink(t, ExecConfig{Command: []string{filepath.Join(t.TempDir(), "missing")}})
	err := s.Deliver(context.Background(), testEvent(), 1)
	var de *crmhook.DeliveryError
	if !errors.As(err, &de) || de.Permanent {
		t.Fatalf("Deliver = %v, want a retryable *DeliveryError", err)
	}
}

func TestExecNulInMetadata(t *testing.T) {
	out := t.TempDir()
	s := newExecSink(t, ExecConfig{Command: []string{"/bin/sh", script(t, "capture.sh")}, Env: []string{"OUT_DIR=" + out}})
	ev := testEvent()
	ev.Type = "odd\x00type"
	if err := s.Deliver(context.Background(), ev, 1); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if got := readEnvFile(t, filepath.Join(out, "env"))["CRMHOOK_EVENT_TYPE"]; got != "oddtype" {
		t.Errorf("CRMHOOK_EVENT_TYPE = %q", got)
	}
}

func TestNewExecValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  ExecConfig
		want string
	}{
		{"no name", ExecConfig{Command: []string{"true"}}, "name is required"},
		{"no command", ExecConfig{Name: "a"}, "command is required"},
		{"empty program", ExecConfig{Name: "a", Command: []string{""}}, "command is required"},
		{"bad env", ExecConfig{Name: "a", Command: []string{"true"}, Env: []string{"NOEQUALS"}}, "env[0]"},
		{"negative timeout", ExecConfig{Name: "a", Command: []string{"true"}, Timeout: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewExec(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewExec = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	s, err := NewExec(ExecConfig{Name: "a", Command: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "a" || s.cfg.Timeout != DefaultExecTimeout || s.Close() != nil {
		t.Errorf("defaults: %+v", s.cfg)
	}
}

// pollUntil waits for cond, failing the test at the deadline.
func pollUntil(t *testing.T, deadline time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatal("condition not met before the deadline")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone waits until pid no longer runs. A zombie counts as gone: the
// test process is not its parent and cannot reap it.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	pollUntil(t, 10*time.Second, func() bool {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return os.IsNotExist(err)
		}
		// The state follows the command name in parentheses: "pid (comm) S …".
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
			return stat[i+2] == 'Z'
		}
		return false
	})
}
