package attiosim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// setup starts the simulator behind a real loopback HTTP server and returns
// it with its base URL. Both are closed when the test ends.
func setup(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	sim, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		srv.Close()
		sim.Close()
	})
	return sim, srv.URL
}

// testCtx is a context that ends with the test, with a generous deadline so
// a bug cannot hang the suite.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// received is one request a target got.
type received struct {
	Header http.Header
	Body   []byte
}

// target is a webhook receiver on loopback that records every request and
// answers with the status respond picks from the number of requests before
// this one.
type target struct {
	srv *httptest.Server

	mu      sync.Mutex
	reqs    []received
	respond func(n int) int
	hold    func(n int) // when set, runs before the answer, outside the lock
}

func newTarget(t *testing.T, respond func(n int) int) *target {
	t.Helper()
	return newHoldingTarget(t, respond, nil)
}

func newHoldingTarget(t *testing.T, respond func(n int) int, hold func(n int)) *target {
	t.Helper()
	tg := &target{respond: respond, hold: hold}
	if tg.respond == nil {
		tg.respond = func(int) int { return http.StatusOK }
	}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tg.mu.Lock()
		n := len(tg.reqs)
		tg.reqs = append(tg.reqs, received{Header: r.Header.Clone(), Body: body})
		status := tg.respond(n)
		tg.mu.Unlock()
		if tg.hold != nil {
			tg.hold(n)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *target) URL() string { return tg.srv.URL + "/hooks/attio" }

func (tg *target) requests() []received {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]received(nil), tg.reqs...)
}

// api makes one request to the simulator's API and returns the status and
// the decoded JSON answer.
func api(t *testing.T, method, url, token, body string) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %q", method, url, raw)
		}
		switch v := v.(type) {
		case map[string]any:
			out = v
		default:
			out = map[string]any{"_": v}
		}
	}
	return resp.StatusCode, resp.Header, out
}

// wantAPIError checks Attio's error shape.
func wantAPIError(t *testing.T, got map[string]any, status int, typ, code string) {
	t.Helper()
	if got["status_code"] != float64(status) || got["type"] != typ || got["code"] != code {
		t.Fatalf("error = %v, want status_code %d type %q code %q", got, status, typ, code)
	}
	if msg, _ := got["message"].(string); msg == "" {
		t.Fatalf("error %v has no message", got)
	}
}

// createWebhook creates a webhook through the API and returns its id and
// secret.
func createWebhook(t *testing.T, base, targetURL string, subs string) (id, secret string) {
	t.Helper()
	status, _, out := api(t, http.MethodPost, base+"/v2/webhooks", DefaultToken,
		`{"data":{"target_url":`+quoteJSON(targetURL)+`,"subscriptions":`+subs+`}}`)
	if status != http.StatusOK {
		t.Fatalf("create: status %d: %v", status, out)
	}
	data := out["data"].(map[string]any)
	return data["id"].(map[string]any)["webhook_id"].(string), data["secret"].(string)
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitIdle waits for every delivery chain to finish.
func waitIdle(t *testing.T, sim *Server) {
	t.Helper()
	if err := sim.WaitIdle(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// testStart is where the tests' clocks stand until they move them.
var testStart = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
