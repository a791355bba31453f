package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/admin"
	"github.com/crmhook/crmhook/internal/app"
	"github.com/crmhook/crmhook/internal/embedded"
)

// lockedBuffer collects what a running command writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startApp runs a Main with embedded defaults on free ports in a temp dir,
// with an extra HTTP sink whose answers the test controls.
func startApp(t *testing.T, sinkStatus *atomic.Int32) (*app.Main, *lockedBuffer, string) {
	t.Helper()
	dir := t.TempDir()
	s, created, err := embedded.LoadOrCreateSecrets(filepath.Join(dir, "data"))
	if err != nil || !created {
		t.Fatalf("secrets: %v created=%v", err, created)
	}
	cfg := embedded.Config(filepath.Join(dir, "data"), s)
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Delivery.PollInterval = 20 * time.Millisecond
	cfg.Delivery.MaxAttempts = 2
	cfg.Delivery.BaseDelay, cfg.Delivery.MaxDelay = 10*time.Millisecond, 20*time.Millisecond
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(int(sinkStatus.Load()))
	}))
	t.Cleanup(sink.Close)
	cfg.Sinks = append(cfg.Sinks, config.Sink{Name: "svc", Type: "http", URL: sink.URL, Types: []string{"person.*"}})
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	m := &app.Main{Config: cfg, Stdout: out}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		m.Close()
	})
	return m, out, filepath.Join(dir, "data")
}

func TestServeSendEventsReplay(t *testing.T) {
	var sinkStatus atomic.Int32
	sinkStatus.Store(http.StatusGone) // the service refuses: dead letters
	m, out, dataDir := startApp(t, &sinkStatus)
	adminArgs := []string{"--admin-url", m.AdminURL(), "--data-dir", dataDir}

	// crmhook send, with the secrets the no-config run kept.
	for _, args := range [][]string{
		{"send", "--url", m.HookURL(), "--data-dir", dataDir, "-n", "5", "--concurrency", "2"},
		{"send", "--url", m.HookURL(), "--data-dir", dataDir, "-p", "attio", "-t", "record.updated"},
		{"send", "--url", m.HookURL(), "--data-dir", dataDir, "-p", "standard-webhooks"},
	} {
		if stdout, stderr, err := runCLI(t, nil, args...); err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, stdout, stderr)
		}
	}
	// Every event reaches the stdout sink as a CloudEvent line.
	waitUntil(t, "7 CloudEvents on stdout", func() bool { return strings.Count(out.String(), "\n") >= 7 })
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ce struct {
			SpecVersion string          `json:"specversion"`
			Type        string          `json:"type"`
			Data        json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &ce); err != nil || ce.SpecVersion != "1.0" || len(ce.Data) == 0 {
			t.Fatalf("not a CloudEvent line: %.200s (%v)", line, err)
		}
	}

	// The 5 person.created events are dead for the svc sink (410).
	waitUntil(t, "5 dead letters", func() bool {
		stdout, _, err := runCLI(t, nil, append([]string{"events", "list", "--status", "dead", "--json"}, adminArgs...)...)
		var ds []admin.DeliveryJSON
		return err == nil && json.Unmarshal([]byte(stdout), &ds) == nil && len(ds) == 5
	})
	stdout, _, err := runCLI(t, nil, append([]string{"events", "list", "--type", "person.*"}, adminArgs...)...)
	if err != nil || strings.Count(stdout, " person.created ") != 5 {
		t.Fatalf("events list --type person.*: %v\n%s", err, stdout)
	}
	// Show one event: payload and deliveries.
	var evs []admin.EventJSON
	stdout, _, _ = runCLI(t, nil, append([]string{"events", "list", "--json", "--source", "attio"}, adminArgs...)...)
	if json.Unmarshal([]byte(stdout), &evs) != nil || len(evs) != 1 || evs[0].Type != "record.updated" {
		t.Fatalf("attio events: %s", stdout)
	}
	stdout, _, err = runCLI(t, nil, append([]string{"events", "show", evs[0].ID}, adminArgs...)...)
	if err != nil || !strings.Contains(stdout, `"event_type": "record.updated"`) || !strings.Contains(stdout, "stdout") {
		t.Fatalf("events show: %v\n%s", err, stdout)
	}

	// Replay needs a filter; then the fixed service gets every dead letter.
	if _, _, err := runCLI(t, nil, append([]string{"events", "replay"}, adminArgs...)...); err == nil || !strings.Contains(err.Error(), "needs a filter") {
		t.Fatalf("replay without a filter: %v", err)
	}
	// A sink name that is not configured is named back with the configured ones.
	if _, _, err := runCLI(t, nil, append([]string{"events", "replay", "--status", "dead", "--sink", "nope"}, adminArgs...)...); err == nil ||
		!strings.Contains(err.Error(), `no sink is named "nope"`) || !strings.Contains(err.Error(), "stdout") {
		t.Fatalf("replay --sink nope: %v", err)
	}
	sinkStatus.Store(http.StatusNoContent)
	stdout, _, err = runCLI(t, nil, append([]string{"events", "replay", "--status", "dead"}, adminArgs...)...)
	if err != nil || !strings.Contains(stdout, "replayed 5 deliveries") {
		t.Fatalf("replay: %v %s", err, stdout)
	}
	waitUntil(t, "dead letters delivered", func() bool {
		stdout, _, err := runCLI(t, nil, append([]string{"events", "list", "--status", "dead", "--json"}, adminArgs...)...)
		return err == nil && strings.TrimSpace(stdout) == "[]"
	})

	// The admin API refuses a wrong token; the public listener serves only hooks.
	if _, _, err := runCLI(t, nil, "events", "list", "--admin-url", m.AdminURL(), "--token", "wrong"); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("wrong token: %v", err)
	}
	for _, p := range []string{"/metrics", "/healthz", "/api/events"} {
		res, err := http.Get(m.HookURL() + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 404 {
			t.Errorf("public %s: %d, want 404", p, res.StatusCode)
		}
	}
	// Health, readiness and metrics on the admin listener.
	for p, want := range map[string]string{"/healthz": `"ok": true`, "/readyz": `"ok": true`, "/metrics": `crmhook_requests_total{source="affinity",status="200"} 5`} {
		res, err := http.Get(m.AdminURL() + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("admin %s: %d, want %q in\n%.400s", p, res.StatusCode, want, b)
		}
	}
	res, _ := http.Get(m.AdminURL() + "/metrics")
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, name := range []string{"crmhook_store_commit_seconds", "crmhook_deliveries_total", "crmhook_queue_pending", "crmhook_delivery_seconds"} {
		if !strings.Contains(string(b), name) {
			t.Errorf("metric %s missing", name)
		}
	}
}

func TestRejectionsListedAndReleased(t *testing.T) {
	var sinkStatus atomic.Int32
	sinkStatus.Store(http.StatusOK)
	m, out, dataDir := startApp(t, &sinkStatus)
	adminArgs := []string{"--admin-url", m.AdminURL(), "--data-dir", dataDir}
	s, err := embedded.LoadSecrets(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	// An Affinity delivery from two days ago: outside the 12 h window.
	old := time.Now().Add(-48 * time.Hour).Unix()
	body := `{"type":"person.updated","body":{"id":7,"first_name":"Ada"},"sent_at":` + itoa(old) + `}`
	res, err := http.Post(m.HookURL()+"/hooks/affinity/"+s.AffinityPath, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Fatalf("stale delivery: %d, want 400", res.StatusCode)
	}
	stdout, _, err := runCLI(t, nil, append([]string{"events", "list", "--rejections", "--json"}, adminArgs...)...)
	var rs []admin.RejectionJSON
	if err != nil || json.Unmarshal([]byte(stdout), &rs) != nil || len(rs) != 1 || rs[0].Event.Type != "person.updated" {
		t.Fatalf("rejections: %v %s", err, stdout)
	}
	stdout, _, err = runCLI(t, nil, append([]string{"events", "release", itoa(rs[0].ID)}, adminArgs...)...)
	if err != nil || !strings.Contains(stdout, "released as event") {
		t.Fatalf("release: %v %s", err, stdout)
	}
	waitUntil(t, "released event delivered to stdout", func() bool { return strings.Contains(out.String(), `"first_name":"Ada"`) })
	if !strings.Contains(rs[0].Reason, "outside the replay window") {
		t.Errorf("rejection reason %q does not name the replay window", rs[0].Reason)
	}
	// A second release is a conflict, said in one line without the store's internals.
	_, _, err = runCLI(t, nil, append([]string{"events", "release", itoa(rs[0].ID)}, adminArgs...)...)
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "already released") ||
		strings.Contains(err.Error(), "sqlite") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("second release: %v, want one line: 409, already released", err)
	}
}

func TestInitWritesAConfigThatServes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "crmhook.yaml")
	stdout, _, err := runCLI(t, nil, "init", "-o", path)
	if err != nil || !strings.Contains(stdout, "wrote") {
		t.Fatalf("init: %v %s", err, stdout)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	cfg, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sources) != 3 || len(cfg.Sources[0].Secrets[0]) < config.MinPathSecretLen {
		t.Fatalf("sources %+v", cfg.Sources)
	}
	// Fresh secrets each time, and no silent overwrite.
	if _, _, err := runCLI(t, nil, "init", "-o", path); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second init: %v", err)
	}
	other := filepath.Join(dir, "other.yaml")
	if _, _, err := runCLI(t, nil, "init", "-o", other); err != nil {
		t.Fatal(err)
	}
	cfg2, _ := config.Load(other, func(string) string { return "" })
	if cfg2.Sources[0].Secrets[0] == cfg.Sources[0].Secrets[0] || cfg2.Admin.Token == cfg.Admin.Token {
		t.Fatal("init reused secrets")
	}
}

func TestServeRefusesABadConfigWithTheField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("sources:\n  - name: affinity\n    provider: affinity\n    secrets: [short]\n"), 0o600)
	_, _, err := runCLI(t, nil, "serve", "--config", path)
	if err == nil || !strings.Contains(err.Error(), "sources[0].secrets[0]") {
		t.Fatalf("err = %v, want the field named", err)
	}
}

func TestSendReportsAnUnreachableReceiver(t *testing.T) {
	_, _, err := runCLI(t, nil, "send", "--url", "http://127.0.0.1:1/hooks/affinity/"+strings.Repeat("s", 40))
	if err == nil || !strings.Contains(err.Error(), "could not reach") || strings.Contains(err.Error(), strings.Repeat("s", 40)) {
		t.Fatalf("err = %v (must not show the path secret)", err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// runCLI runs one crmhook command in-process.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = newCLI(&out, &errb, func(k string) string { return env[k] }).run(context.Background(), args)
	return out.String(), errb.String(), err
}

func TestEmbeddedServeTakesTheAttioSecretFromTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	c := newCLI(io.Discard, io.Discard, func(k string) string {
		if k == "ATTIO_WEBHOOK_SECRET" {
			return "attio-issued-secret"
		}
		return ""
	})
	cfg, embedded, err := c.loadServeConfig("", filepath.Join(dir, "data"))
	if err != nil || embedded == nil {
		t.Fatalf("embedded config: %v", err)
	}
	for _, s := range cfg.Sources {
		if s.Name == embedded.Attio && (len(s.Secrets) != 2 || s.Secrets[1] != "attio-issued-secret" || s.Secrets[0] != embedded.Attio) {
			t.Fatalf("attio secrets %d, want the generated one and the environment's", len(s.Secrets))
		}
	}
}
