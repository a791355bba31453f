package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook/sim/affinitysim"
)

// simAffinitySyncBuffer is a bytes.Buffer safe for the concurrent writes of a
// running command (its log lines) and the test's reads.
type simAffinitySyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *simAffinitySyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *simAffinitySyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// simAffinityRunning is a `crmhook sim affinity` started by a test.
type simAffinityRunning struct {
	url    string
	stdout *simAffinitySyncBuffer
	stderr *simAffinitySyncBuffer
	cancel context.CancelFunc
	done   chan error
}

var simAffinityListenLine = regexp.MustCompile(`listening on (http://127\.0\.0\.1:[0-9]+) `)

// startSimAffinity runs `crmhook sim affinity --addr 127.0.0.1:0 args…` in
// process until the test ends (cancelling its context is what SIGINT does
// through main's signal.NotifyContext), and returns once it printed where it
// listens.
func startSimAffinity(t *testing.T, args ...string) *simAffinityRunning {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &simAffinityRunning{
		stdout: &simAffinitySyncBuffer{},
		stderr: &simAffinitySyncBuffer{},
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() {
		r.done <- newCLI(r.stdout, r.stderr, func(string) string { return "" }).
			run(ctx, append([]string{"sim", "affinity", "--addr", "127.0.0.1:0"}, args...))
	}()
	t.Cleanup(func() { r.stop(t) })

	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := simAffinityListenLine.FindStringSubmatch(r.stdout.String()); m != nil {
			r.url = m[1]
			return r
		}
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("sim affinity exited before listening: %v; stderr: %s", err, r.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sim affinity printed no listen line; stdout: %q", r.stdout.String())
		}
	}
}

// stop cancels the command and returns its error; it fails the test if the
// command does not stop.
func (r *simAffinityRunning) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // later calls see the same result
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("sim affinity did not stop after its context was cancelled")
		return nil
	}
}

// runSimAffinityCLI runs one short command and returns its output.
func runSimAffinityCLI(t *testing.T, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newCLI(&out, &errb, func(string) string { return "" }).rootCmd()
	if stdin != nil {
		root.SetIn(stdin)
	}
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// simAffinityTarget is a webhook receiver that records every delivery.
type simAffinityTarget struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	status int // answer to events (probes always get 200)
}

func newSimAffinityTarget(t *testing.T, status int) *simAffinityTarget {
	t.Helper()
	tg := &simAffinityTarget{status: status}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"type":"sample.webhook"`)) {
			return // 200 to the probe
		}
		tg.mu.Lock()
		tg.bodies = append(tg.bodies, body)
		status := tg.status
		tg.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *simAffinityTarget) received() [][]byte {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([][]byte(nil), tg.bodies...)
}

// simAffinitySubscribe creates a subscription through the simulator's
// Affinity API, as a client of Affinity would.
func simAffinitySubscribe(t *testing.T, simURL, key, target string, types ...string) affinitysim.Webhook {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"webhook_url": target, "subscriptions": types})
	resp := simAffinityAPI(t, simURL, key, http.MethodPost, "/webhook/subscribe", body)
	if resp.status != http.StatusOK {
		t.Fatalf("subscribe: %d %s", resp.status, resp.body)
	}
	var wh affinitysim.Webhook
	if err := json.Unmarshal(resp.body, &wh); err != nil {
		t.Fatal(err)
	}
	return wh
}

type simAffinityResponse struct {
	status int
	header http.Header
	body   []byte
}

func simAffinityAPI(t *testing.T, simURL, key, method, path string, body []byte) simAffinityResponse {
	t.Helper()
	req, err := http.NewRequest(method, simURL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("", key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return simAffinityResponse{status: resp.StatusCode, header: resp.Header, body: raw}
}

func TestSimAffinityCLITriggerAndDeliveries(t *testing.T) {
	sim := startSimAffinity(t, "--admin-key", "cli-admin-key-1", "--user-key", "cli-user-key-2")
	line := sim.stdout.String()
	for _, want := range []string{"cli-admin-key-1", "cli-user-key-2", "crmhook sim affinity trigger", "--sim-url " + sim.url} {
		if !strings.Contains(line, want) {
			t.Errorf("listen line %q does not mention %q", line, want)
		}
	}
	if n := strings.Count(line, "\n"); n != 1 {
		t.Errorf("startup printed %d lines, want 1: %q", n, line)
	}
	// The configured keys are the ones that work.
	if r := simAffinityAPI(t, sim.url, affinitysim.DefaultAdminKey, http.MethodGet, "/webhook", nil); r.status != http.StatusUnauthorized {
		t.Errorf("default admin key still accepted: %d", r.status)
	}

	people := newSimAffinityTarget(t, http.StatusOK)
	all := newSimAffinityTarget(t, http.StatusOK)
	peopleSub := simAffinitySubscribe(t, sim.url, "cli-admin-key-1", people.srv.URL+"/hooks/affinity/path-secret-1", "person.created")
	allSub := simAffinitySubscribe(t, sim.url, "cli-user-key-2", all.srv.URL+"/hooks/affinity/path-secret-2")

	// trigger with the sample body: both subscriptions get it.
	out, _, err := runSimAffinityCLI(t, nil, "sim", "affinity", "trigger", "person.created", "--sim-url", sim.url)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "person.created") || !strings.Contains(out, "sent to 2 subscription(s)") ||
		!strings.Contains(out, fmt.Sprint(peopleSub.ID)) || !strings.Contains(out, fmt.Sprint(allSub.ID)) ||
		strings.Count(out, "delivered") != 2 {
		t.Errorf("trigger output:\n%s", out)
	}
	if strings.Contains(out, "path-secret") {
		t.Errorf("trigger output shows the webhook URL's path secret:\n%s", out)
	}
	for _, tg := range []*simAffinityTarget{people, all} {
		got := tg.received()
		var env struct {
			Type   string          `json:"type"`
			Body   json.RawMessage `json:"body"`
			SentAt int64           `json:"sent_at"`
		}
		if len(got) != 1 || json.Unmarshal(got[0], &env) != nil || env.Type != "person.created" || env.SentAt == 0 ||
			!bytes.Contains(env.Body, []byte(`"first_name"`)) {
			t.Fatalf("target got %q, want one person.created with a sample body", got)
		}
	}

	// trigger --body FILE --json: the file's body goes to the all-events
	// subscription only (list.created is not a people event).
	bodyFile := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(bodyFile, []byte("{\n  \"id\": 4242,\n  \"ip_address\": \"192.0.2.7\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = runSimAffinityCLI(t, nil, "sim", "affinity", "trigger", "list.created", "--body", bodyFile, "--json", "--sim-url", sim.url)
	if err != nil {
		t.Fatal(err)
	}
	var res affinitysim.TriggerResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("trigger --json output %q: %v", out, err)
	}
	if res.Type != "list.created" || len(res.Deliveries) != 1 || res.Deliveries[0].SubscriptionID != allSub.ID || !res.Deliveries[0].OK {
		t.Fatalf("trigger --json = %+v", res)
	}
	if got := all.received(); len(got) != 2 || !bytes.Contains(got[1], []byte(`"body":{"id":4242,"ip_address":"192.0.2.7"}`)) {
		t.Errorf("all-events target got %q", got)
	}

	// --body - reads standard input; an unknown type is allowed with a body.
	out, _, err = runSimAffinityCLI(t, strings.NewReader(`{"id":1}`), "sim", "affinity", "trigger", "person.archived", "--body", "-", "--sim-url", sim.url)
	if err != nil || !strings.Contains(out, "sent to 1 subscription(s)") {
		t.Fatalf("trigger from stdin: %v\n%s", err, out)
	}

	// Nothing wants note.created after the all-events subscription is deleted.
	if r := simAffinityAPI(t, sim.url, "cli-admin-key-1", http.MethodDelete, fmt.Sprintf("/webhook/%d", allSub.ID), nil); r.status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	out, _, err = runSimAffinityCLI(t, nil, "sim", "affinity", "trigger", "note.created", "--sim-url", sim.url)
	if err != nil || !strings.Contains(out, "nothing was sent") {
		t.Fatalf("trigger with no subscriber: %v\n%s", err, out)
	}

	// deliveries: a table with one row per attempt, then the same as JSON.
	out, _, err = runSimAffinityCLI(t, nil, "sim", "affinity", "deliveries", "--sim-url", sim.url)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[0], "SUBSCRIPTION") ||
		!strings.Contains(lines[0], "TYPE") || !strings.Contains(lines[0], "ATTEMPT") || !strings.Contains(lines[0], "STATUS") {
		t.Fatalf("deliveries table:\n%s", out)
	}
	for i, want := range []string{"person.created", "person.created", "list.created", "person.archived"} {
		if f := strings.Fields(lines[i+1]); len(f) != 5 || f[2] != want || f[3] != "1" || f[4] != "200" {
			t.Errorf("deliveries row %d = %q, want a %s attempt 1 answered 200", i+1, lines[i+1], want)
		}
	}
	out, _, err = runSimAffinityCLI(t, nil, "sim", "affinity", "deliveries", "--json", "--sim-url", sim.url)
	if err != nil {
		t.Fatal(err)
	}
	var log []affinitysim.Delivery
	if err := json.Unmarshal([]byte(out), &log); err != nil || len(log) != 4 || log[2].EventType != "list.created" || log[2].SubscriptionID != allSub.ID {
		t.Fatalf("deliveries --json (%v):\n%s", err, out)
	}

	// Cancelling the context (what SIGINT does) stops it cleanly.
	if err := sim.stop(t); err != nil {
		t.Fatalf("sim affinity returned %v on shutdown", err)
	}
	if _, _, err := runSimAffinityCLI(t, nil, "sim", "affinity", "deliveries", "--sim-url", sim.url); err == nil ||
		!strings.Contains(err.Error(), "is the simulator running") {
		t.Errorf("deliveries after stop: err = %v, want a connection error", err)
	}
}

func TestSimAffinityCLIRetriesAndDisables(t *testing.T) {
	// Affinity's 10 hour retry window in 0.1s.
	sim := startSimAffinity(t, "--time-scale", "360000")
	failing := newSimAffinityTarget(t, http.StatusInternalServerError)
	wh := simAffinitySubscribe(t, sim.url, affinitysim.DefaultAdminKey, failing.srv.URL+"/hook")

	out, _, err := runSimAffinityCLI(t, nil, "sim", "affinity", "trigger", "opportunity.updated", "--sim-url", sim.url)
	if err != nil || !strings.Contains(out, "failed, will retry") || !strings.Contains(out, "500") {
		t.Fatalf("trigger: %v\n%s", err, out)
	}
	// Poll until Affinity's schedule played out and the subscription is disabled.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var cur affinitysim.Webhook
		r := simAffinityAPI(t, sim.url, affinitysim.DefaultAdminKey, http.MethodGet, fmt.Sprintf("/webhook/%d", wh.ID), nil)
		if err := json.Unmarshal(r.body, &cur); err != nil {
			t.Fatalf("get webhook: %d %s", r.status, r.body)
		}
		if cur.Disabled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("subscription still enabled after the retry window")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// 10 attempts: 0, 1, 3, …, 511 minutes; the next would be past 10 hours.
	out, _, err = runSimAffinityCLI(t, nil, "sim", "affinity", "deliveries", "--sim-url", sim.url)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 11 || !strings.Contains(lines[10], "opportunity.updated") || strings.Fields(lines[10])[3] != "10" {
		t.Fatalf("deliveries after the window:\n%s", out)
	}
	if n := len(failing.received()); n != 10 {
		t.Errorf("target got %d attempts, want 10", n)
	}
}

func TestSimAffinityCLIRateLimit(t *testing.T) {
	sim := startSimAffinity(t, "--rate-limit", "2")
	for i, want := range []int{200, 200, 429} {
		r := simAffinityAPI(t, sim.url, affinitysim.DefaultUserKey, http.MethodGet, "/webhook", nil)
		if r.status != want {
			t.Fatalf("request %d: %d, want %d", i+1, r.status, want)
		}
		if got := r.header.Get("X-Ratelimit-Limit-User"); got != "2" {
			t.Errorf("X-Ratelimit-Limit-User = %q, want 2", got)
		}
	}
}

func TestSimAffinityCLIErrors(t *testing.T) {
	sim := startSimAffinity(t)

	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown type without body", []string{"trigger", "person.exploded", "--sim-url", sim.url}, "no sample body"},
		{"missing body file", []string{"trigger", "person.created", "--body", filepath.Join(t.TempDir(), "nope.json"), "--sim-url", sim.url}, "--body"},
		{"bad sim url", []string{"deliveries", "--sim-url", "ftp://x"}, "--sim-url"},
		{"no type", []string{"trigger", "--sim-url", sim.url}, "accepts 1 arg"},
		{"rate limit zero", []string{"--rate-limit", "0"}, "--rate-limit"},
		{"time scale negative", []string{"--time-scale", "-1"}, "--time-scale"},
		{"same keys", []string{"--admin-key", "k", "--user-key", "k"}, "must differ"},
		{"address in use", []string{"--addr", strings.TrimPrefix(sim.url, "http://")}, "listen"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := runSimAffinityCLI(t, nil, append([]string{"sim", "affinity"}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, c.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}

	invalid := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(invalid, []byte(`{"id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runSimAffinityCLI(t, nil, "sim", "affinity", "trigger", "person.created", "--body", invalid, "--sim-url", sim.url); err == nil ||
		!strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("invalid --body: err = %v", err)
	}
}

func TestSimAffinityBaseURL(t *testing.T) {
	cases := map[string]string{
		"127.0.0.1:7701": "http://127.0.0.1:7701",
		"0.0.0.0:80":     "http://127.0.0.1:80",
		"[::]:5000":      "http://127.0.0.1:5000",
		"[::1]:5000":     "http://[::1]:5000",
	}
	for addr, want := range cases {
		if got := simBaseURL(simAffinityAddr(addr)); got != want {
			t.Errorf("simBaseURL(%s) = %s, want %s", addr, got, want)
		}
	}
}

// simAffinityAddr is a net.Addr with a fixed String.
type simAffinityAddr string

func (a simAffinityAddr) Network() string { return "tcp" }
func (a simAffinityAddr) String() string  { return string(a) }
