package affinitysim

import (
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

// received is one request a target got.
type received struct {
	Type        string // the envelope's type
	Body        []byte
	ContentType string
	At          time.Time // real time of arrival
}

// target is a webhook receiver on loopback that records every request and
// answers with the status its respond func picks. respond gets the envelope
// type and how many requests of that type came before; it may return 0 to
// hang until the sender gives up.
type target struct {
	srv *httptest.Server

	mu      sync.Mutex
	reqs    []received
	respond func(eventType string, n int) int
}

func newTarget(t *testing.T, respond func(eventType string, n int) int) *target {
	t.Helper()
	tg := &target{respond: respond}
	if tg.respond == nil {
		tg.respond = func(string, int) int { return http.StatusOK }
	}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var env struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(body, &env)
		tg.mu.Lock()
		n := 0
		for _, q := range tg.reqs {
			if q.Type == env.Type {
				n++
			}
		}
		tg.reqs = append(tg.reqs, received{Type: env.Type, Body: body, ContentType: r.Header.Get("Content-Type"), At: time.Now()})
		respond := tg.respond
		tg.mu.Unlock()
		status := respond(env.Type, n)
		if status == 0 {
			<-r.Context().Done() // hang until the sender times out
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

// setRespond changes how the target answers from now on.
func (tg *target) setRespond(f func(eventType string, n int) int) {
	tg.mu.Lock()
	tg.respond = f
	tg.mu.Unlock()
}

// requests returns what the target got, optionally only of one type.
func (tg *target) requests(eventType string) []received {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	var out []received
	for _, q := range tg.reqs {
		if eventType == "" || q.Type == eventType {
			out = append(out, q)
		}
	}
	return out
}

func (tg *target) url() string { return tg.srv.URL + "/hooks/affinity/s3cr3t-path-segment" }

// auth decorates a request with credentials.
type auth func(*http.Request)

func basic(key string) auth { return func(r *http.Request) { r.SetBasicAuth("", key) } }
func bearer(key string) auth {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
}
func noAuth(*http.Request) {}

var (
	admin = basic(DefaultAdminKey)
	user2 = bearer(DefaultUserKey)
)

// response is a finished HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// call makes one request. A string body is sent as is with contentType
// (none if empty); any other non-nil body is sent as JSON.
func call(t *testing.T, a auth, method, url string, body any, contentType ...string) response {
	t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
		if len(contentType) > 0 {
			ct = contentType[0]
		}
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(raw))
		ct = "application/json"
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	a(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// decode unmarshals a response body or fails the test.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decode %T from %d %q: %v", v, r.Status, r.Body, err)
	}
	return v
}

// wantStatus fails the test unless r has the status.
func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
}

// errorMessage returns errors[0].message of an {"errors":[…]} answer,
// failing the test if the answer is not in that shape.
func errorMessage(t *testing.T, r response) string {
	t.Helper()
	body := decode[struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}](t, r)
	if len(body.Errors) != 1 || body.Errors[0].Message == "" || body.Errors[0].Code == "" {
		t.Fatalf("error body = %s, want one error with code and message", r.Body)
	}
	return body.Errors[0].Message
}

// createWebhook subscribes url with the given event types and returns the
// new subscription.
func createWebhook(t *testing.T, a auth, base, url string, subs ...string) Webhook {
	t.Helper()
	body := map[string]any{"webhook_url": url}
	if subs != nil {
		body["subscriptions"] = subs
	}
	r := call(t, a, http.MethodPost, base+"/webhook/subscribe", body)
	wantStatus(t, r, http.StatusOK)
	return decode[Webhook](t, r)
}
