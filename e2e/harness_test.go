package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/admin"
	"github.com/crmhook/crmhook/internal/app"
	"github.com/crmhook/crmhook/receiver"
	"github.com/crmhook/crmhook/stdwebhooks"
	"github.com/crmhook/crmhook/store/sqlite"
)

// Secrets of the test configuration. The leak test looks for every one of
// them in the logs.
const (
	pathSecret  = "Zk3v9QpX1mB7cT2rW8yL5nH0dS4aF6gJ-eU_oIiKqPw"
	pathSecret2 = "q7R8s9T0u1Va1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"
	attioSecret = "attio-e2e-signing-secret-7f3a9c1e5b2d8f4a"
	adminToken  = "admin-e2e-token-4b8e2f6a1c9d3e7f5a0b"
	// PII in every payload: none of it may reach a log line.
	piiEmail = "jane.doe@example.com"
	piiFirst = "Janinka"
	piiLast  = "Doerfler"
)

var (
	stdSecret  = stdwebhooks.NewSecret()
	sinkSecret = stdwebhooks.NewSecret()
)

// binPath is the crmhook binary, built once on first use by TestMain's dir.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crmhook-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// crmhookBinary builds ./cmd/crmhook once (only when a process test runs).
func crmhookBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = "/usr/local/go/bin/go"
		}
		binPath = filepath.Join(binDir, "crmhook")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, goTool, "build", "-o", binPath, "github.com/crmhook/crmhook/cmd/crmhook").CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// cfgOpts vary the test configuration.
type cfgOpts struct {
	dataDir      string
	store        string // default sqlite in dataDir
	sinkURL      string
	tlsCert      string
	tlsKey       string
	maxAttempts  int // default 100: nothing dies within a test's budget
	concurrency  int // default 4
	shutdownWait time.Duration
}

// configYAML is a complete config: four sources, one signed HTTP sink, a
// fast retry policy and JSON debug logs.
func configYAML(o cfgOpts) string {
	if o.store == "" {
		o.store = "sqlite://" + filepath.Join(o.dataDir, "crmhook.db")
	}
	if o.maxAttempts == 0 {
		o.maxAttempts = 100
	}
	if o.concurrency == 0 {
		o.concurrency = 4
	}
	if o.shutdownWait == 0 {
		o.shutdownWait = 5 * time.Second
	}
	tls := ""
	if o.tlsCert != "" {
		tls = fmt.Sprintf("tls:\n  cert: %q\n  key: %q\n", o.tlsCert, o.tlsKey)
	}
	return fmt.Sprintf(`listen: 127.0.0.1:0
%sadmin:
  listen: 127.0.0.1:0
  token: %q
data_dir: %q
store: %q
log:
  format: json
  level: debug
shutdown_grace: %s
delivery:
  max_attempts: %d
  base_delay: 50ms
  max_delay: 400ms
  lease: 2s
  poll_interval: 50ms
sources:
  - name: aff
    provider: affinity
    secrets: [%q, %q]
  - name: attio
    provider: attio
    secrets: [%q]
  - name: std
    provider: standard-webhooks
    secrets: [%q]
    path_secrets: [%q]
  - name: secure
    provider: affinity
    secrets: [%q]
    require_https: true
sinks:
  - name: hook
    type: http
    url: %q
    secret: %q
    timeout: 1s
    concurrency: %d
`, tls, adminToken, o.dataDir, o.store, o.shutdownWait, o.maxAttempts,
		pathSecret, pathSecret2, attioSecret, stdSecret, pathSecret2, pathSecret,
		o.sinkURL, sinkSecret, o.concurrency)
}

func parseConfig(t *testing.T, o cfgOpts) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(configYAML(o)), func(string) string { return "" })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// appRun is an in-process app.Main serving until the test ends.
type appRun struct {
	m      *app.Main
	hook   string // base URL of the public listener
	admin  string
	cancel context.CancelFunc
	done   chan error
}

// startApp opens and runs m (Config already set) and stops it at cleanup.
func startApp(t *testing.T, m *app.Main) *appRun {
	t.Helper()
	if m.Stdout == nil {
		m.Stdout = io.Discard
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatalf("app open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &appRun{m: m, hook: m.HookURL(), admin: m.AdminURL(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop shuts the app down gracefully and closes it; safe to call twice.
func (r *appRun) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("app run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("app did not stop within 30s")
	}
	if err := r.m.Close(); err != nil {
		t.Errorf("app close: %v", err)
	}
}

// admin calls the admin API with the token and decodes the JSON answer.
func adminCall(t *testing.T, base, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("admin %s %s: decode %q: %v", method, path, b, err)
		}
	}
	return res.StatusCode
}

type deliveriesAnswer struct {
	Deliveries []admin.DeliveryJSON `json:"deliveries"`
}

// affinityEvent is an Affinity person.created delivery for person n, with
// PII in it, and the dedupe key the receiver gives it on source "aff".
func affinityEvent(n int64, sentAt time.Time) (body []byte, dedupeKey string) {
	body = fmt.Appendf(nil, `{"type":"person.created","body":{"id":%d,"type":0,"first_name":%q,"last_name":%q,"primary_email":%q,"emails":[%q],"organization_ids":[]},"sent_at":%d}`,
		n, piiFirst, piiLast, piiEmail, piiEmail, sentAt.Unix())
	return body, "aff:" + receiver.AffinityDedupeKey("person.created", sentAt.Unix(), body)
}

// post sends one JSON delivery and returns the status (0 on a transport error).
func post(client *http.Client, url string, body []byte, h http.Header) (int, http.Header) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range h {
		req.Header[k] = vs
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header
}

// reply is what the sink answers one request.
type reply struct {
	status     int
	retryAfter string
	body       string
	delay      time.Duration
}

// sinkServer is the HTTP sink's receiving end: it verifies the Standard
// Webhooks signature and records, per dedupe key, every request and the
// webhook-ids it accepted with a 2xx.
type sinkServer struct {
	srv      *httptest.Server
	verifier *stdwebhooks.Verifier
	behave   atomic.Pointer[func(key string, attempt int) reply]

	mu        sync.Mutex
	attempts  map[string][]time.Time
	delivered map[string][]string // dedupe key → webhook-ids answered 2xx
	badSig    int
}

func newSink(t *testing.T) *sinkServer { t.Helper(); return newSinkOn(t, nil) }

// newSinkOn serves the sink on ln, or on a fresh loopback port when ln is nil.
func newSinkOn(t *testing.T, ln net.Listener) *sinkServer {
	t.Helper()
	v, err := stdwebhooks.NewVerifier([]string{sinkSecret})
	if err != nil {
		t.Fatal(err)
	}
	s := &sinkServer{verifier: v, attempts: map[string][]time.Time{}, delivered: map[string][]string{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if ln != nil {
		s.srv.Listener.Close()
		s.srv.Listener = ln
	}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

// setBehaviour changes the answers; nil answers 200 at once.
func (s *sinkServer) setBehaviour(f func(key string, attempt int) reply) { s.behave.Store(&f) }

func (s *sinkServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if err := s.verifier.Verify(body, r.Header); err != nil {
		s.mu.Lock()
		s.badSig++
		s.mu.Unlock()
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	var ce struct {
		DedupeKey string `json:"crmhookdedupekey"`
	}
	if err := json.Unmarshal(body, &ce); err != nil || ce.DedupeKey == "" {
		http.Error(w, "not a crmhook cloudevent", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.attempts[ce.DedupeKey] = append(s.attempts[ce.DedupeKey], time.Now())
	attempt := len(s.attempts[ce.DedupeKey])
	s.mu.Unlock()

	rep := reply{status: http.StatusOK}
	if f := s.behave.Load(); f != nil && *f != nil {
		rep = (*f)(ce.DedupeKey, attempt)
	}
	if rep.delay > 0 {
		select {
		case <-time.After(rep.delay):
		case <-r.Context().Done():
			return
		}
	}
	if rep.status >= 200 && rep.status < 300 {
		s.mu.Lock()
		s.delivered[ce.DedupeKey] = append(s.delivered[ce.DedupeKey], r.Header.Get(stdwebhooks.HeaderID))
		s.mu.Unlock()
	}
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

// deliveredCount is how many 2xx deliveries key received.
func (s *sinkServer) deliveredCount(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.delivered[key])
}

func (s *sinkServer) attemptTimes(key string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.attempts[key]...)
}

// missing lists the keys that have not reached the sink yet.
func (s *sinkServer) missing(keys []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range keys {
		if len(s.delivered[k]) == 0 {
			out = append(out, k)
		}
	}
	return out
}

// waitDelivered polls until every key has reached the sink.
func (s *sinkServer) waitDelivered(t *testing.T, keys []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		miss := s.missing(keys)
		if len(miss) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events did not reach the sink within %s (first: %s)", len(miss), len(keys), within, miss[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// proc is one `crmhook serve` process.
type proc struct {
	cmd    *exec.Cmd
	hook   string
	admin  string
	stderr *lockedBuffer
	done   chan struct{}
	state  *os.ProcessState
}

// startProc starts `crmhook serve --config cfgPath` and waits for its
// banner, which names the listeners' addresses. logs collects stderr.
func startProc(t *testing.T, cfgPath string, logs *lockedBuffer) *proc {
	t.Helper()
	cmd := exec.Command(crmhookBinary(t), "serve", "--config", cfgPath)
	cmd.Stdout = io.Discard
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	p := &proc{cmd: cmd, stderr: logs, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan [2]string, 1)
	go func() {
		var hook string
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			logs.Write([]byte(line + "\n"))
			if rest, ok := strings.CutPrefix(line, "crmhook is receiving on "); ok {
				hook, _, _ = strings.Cut(rest, "/hooks/")
			}
			if rest, ok := strings.CutPrefix(line, "admin, health and metrics on "); ok && hook != "" {
				urls <- [2]string{hook, strings.TrimSpace(rest)}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case u := <-urls:
		p.hook, p.admin = u[0], u[1]
	case <-p.done:
		t.Fatalf("crmhook serve exited before serving: %v\n%s", p.state, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("crmhook serve did not print its banner within 20s\n%s", logs.String())
	}
	return p
}

// signal sends sig and waits for the process to exit; it returns the exit code.
func (p *proc) signal(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("crmhook serve did not exit within 30s of %v", sig)
	}
	return p.state.ExitCode()
}

// storedKeys opens the SQLite store (the process must be stopped) and
// returns the dedupe keys of every stored event, and the store's stats.
func storedKeys(t *testing.T, dbPath string) (map[string]int, crmhook.Stats) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.ListEvents(context.Background(), crmhook.EventFilter{Limit: 10_000_000})
	if err != nil {
		t.Fatal(err)
	}
	keys := make(map[string]int, len(evs))
	for _, ev := range evs {
		keys[ev.DedupeKey]++
	}
	stats, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return keys, stats
}
