package attio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const testToken = "attio-test-token-5f2c9e"

// fixedNow is the clock of every test client, so Retry-After dates give exact waits.
var fixedNow = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

// waits records the sleeps a client asked for instead of sleeping.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

// setup starts a real HTTP server on loopback and a client pointed at its
// /v2 root. Handlers are registered on mux with paths relative to /v2.
func setup(t *testing.T, opts ...Option) (client *Client, mux *http.ServeMux, slept *waits) {
	t.Helper()
	mux = http.NewServeMux()
	api := http.NewServeMux()
	api.Handle("/v2/", http.StripPrefix("/v2", mux))
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	client, err := NewClient(testToken, append([]Option{WithBaseURL(srv.URL + "/v2")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	slept = &waits{}
	client.now = func() time.Time { return fixedNow }
	client.sleep = slept.sleep
	client.jitter = func(n int64) int64 { return n - 1 } // the ceiling, so waits are predictable
	return client, mux, slept
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "attio", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeJSONBody(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func TestNewClientRejectsBadInput(t *testing.T) {
	if _, err := NewClient(""); !errors.Is(err, ErrNoToken) {
		t.Errorf("empty token: err = %v, want ErrNoToken", err)
	}
	if _, err := NewClient("   "); !errors.Is(err, ErrNoToken) {
		t.Errorf("blank token: err = %v, want ErrNoToken", err)
	}
	_, err := NewClient("abc def")
	if !errors.Is(err, ErrInvalidRequest) || strings.Contains(err.Error(), "abc def") {
		t.Errorf("token with space: err = %v", err)
	}
	for _, base := range []string{"api.attio.com/v2", "ftp://x/v2", "://", ""} {
		if _, err := NewClient("t", WithBaseURL(base)); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("base %q: err = %v, want ErrInvalidRequest", base, err)
		}
	}
	if _, err := NewClient("t", WithMaxRetries(-1)); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("negative retries: err = %v", err)
	}
	if _, err := NewClient("t", WithMaxRetries(21)); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("absurd retries: err = %v", err)
	}
	if _, err := NewClient("t", WithBackoff(time.Second, time.Millisecond)); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("backoff cap < base: err = %v", err)
	}
	if _, err := NewClient("t", WithBackoff(0, time.Second)); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("zero backoff: err = %v", err)
	}
	if _, err := NewClient("t", WithHTTPClient(nil)); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("nil http client: err = %v", err)
	}
	c, err := NewClient(" tok\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "tok" || c.BaseURL() != DefaultBaseURL {
		t.Errorf("token %q base %q", c.token, c.BaseURL())
	}
}

func TestNewClientFromEnv(t *testing.T) {
	t.Setenv(EnvAPIKey, "env-token")
	t.Setenv(EnvBaseURL, "http://127.0.0.1:7702/v2/")
	c, err := NewClientFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "env-token" || c.BaseURL() != "http://127.0.0.1:7702/v2" {
		t.Errorf("token %q base %q", c.token, c.BaseURL())
	}
	c, err = NewClientFromEnv(WithBaseURL("https://example.test/v2"))
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL() != "https://example.test/v2" {
		t.Errorf("explicit option lost to env: %q", c.BaseURL())
	}
	t.Setenv(EnvAPIKey, "")
	if _, err := NewClientFromEnv(); !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), EnvAPIKey) {
		t.Errorf("no env token: err = %v", err)
	}
}

func TestRequestHeadersAndEnvelope(t *testing.T) {
	client, mux, _ := setup(t, WithUserAgent("crmhook-test/1"))
	var got struct {
		auth, ua, ctype, accept string
		body                    []byte
	}
	mux.HandleFunc("POST /webhooks", func(w http.ResponseWriter, r *http.Request) {
		got.auth = r.Header.Get("Authorization")
		got.ua = r.Header.Get("User-Agent")
		got.ctype = r.Header.Get("Content-Type")
		got.accept = r.Header.Get("Accept")
		got.body, _ = io.ReadAll(r.Body)
		writeJSONBody(w, 200, string(readFixture(t, "design.create-webhook.response.json")))
	})
	wh, resp, err := client.Webhooks.Create(context.Background(), &WebhookCreateRequest{
		TargetURL: "https://example.com/webhook",
		Subscriptions: []Subscription{
			{EventType: NoteCreated, Filter: And(Equals("parent_object_id", "97052eb9-e65e-443f-a297-f2d9a4a7f795"))},
			{EventType: RecordCreated},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	if got.auth != "Bearer "+testToken || got.ua != "crmhook-test/1" || got.ctype != "application/json" || got.accept != "application/json" {
		t.Errorf("headers: %+v", got)
	}
	// The body sent is exactly DESIGN's create request: wrapped in data, filter null when nil.
	assertSameJSON(t, got.body, readFixture(t, "design.create-webhook.request.json"))
	// The answer is unwrapped from data.
	if wh.ID.WebhookID != "23e42eaf-323a-41da-b5bb-fd67eebda553" || wh.ID.WorkspaceID != "14beef7a-99f7-4534-a87e-70b564330a4c" {
		t.Errorf("id %+v", wh.ID)
	}
	if wh.Secret != "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb" || wh.Status != WebhookActive {
		t.Errorf("secret %q status %q", wh.Secret, wh.Status)
	}
	if !wh.CreatedAt.Equal(time.Date(2023, 4, 27, 13, 22, 49, 61281000, time.UTC)) {
		t.Errorf("created_at %v", wh.CreatedAt)
	}
	if len(wh.Subscriptions) != 2 || wh.Subscriptions[1].Filter != nil || wh.Subscriptions[0].Filter.And[0].Field != "parent_object_id" {
		t.Errorf("subscriptions %+v", wh.Subscriptions)
	}
}

func assertSameJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("JSON differs\n got: %s\nwant: %s", gb, wb)
	}
}

func TestAPIErrorsAndSentinels(t *testing.T) {
	cases := []struct {
		name        string
		status      int
		body        string
		header      map[string]string
		sentinel    error
		code, inMsg string
		retryAfter  time.Duration
	}{
		{"404 attio json", 404, string(readFixture(t, "design.error.404.json")), nil, ErrNotFound, "not_found", "not found", 0},
		{"400 validation", 400, string(readFixture(t, "design.error.400.json")), nil, ErrValidation, "validation_type", "not a valid event type", 0},
		{"422 validation", 422, `{"status_code":422,"type":"invalid_request_error","code":"value_not_found","message":"nope"}`, nil, ErrValidation, "value_not_found", "nope", 0},
		{"401", 401, `{"status_code":401,"type":"auth_error","code":"unauthorized","message":"Invalid API token"}`, nil, ErrUnauthorized, "unauthorized", "Invalid API token", 0},
		{"403", 403, `{"status_code":403,"type":"auth_error","code":"forbidden","message":"Missing scope webhook:read-write"}`, nil, ErrForbidden, "forbidden", "webhook:read-write", 0},
		{"409", 409, `{"status_code":409,"type":"invalid_request_error","code":"conflict","message":"already exists"}`, nil, ErrConflict, "conflict", "already exists", 0},
		{"429 http date", 429, string(readFixture(t, "design.error.429.json")), map[string]string{"Retry-After": fixedNow.Add(90 * time.Second).Format(http.TimeFormat)}, ErrRateLimited, "rate_limit_exceeded", "Rate limit", 90 * time.Second},
		{"429 seconds", 429, `{}`, map[string]string{"Retry-After": "7"}, ErrRateLimited, "", "unexpected response: {}", 7 * time.Second},
		{"502 html page", 502, "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>", nil, ErrServer, "", "unexpected response: <html> <head><title>502 Bad Gateway</title></head> <body>nginx", 0},
		{"500 empty", 500, "", nil, ErrServer, "", "empty response body", 0},
		{"503 plain text", 503, "upstream connect error", nil, ErrServer, "", "upstream connect error", 0},
		{"404 echoing token", 404, "no route for Bearer " + testToken, nil, ErrNotFound, "", "[redacted]", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// One attempt: this test is about parsing, not retrying.
			client, mux, _ := setup(t, WithMaxRetries(0), WithBackoff(time.Millisecond, time.Millisecond))
			mux.HandleFunc("GET /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			_, resp, err := client.Webhooks.Get(context.Background(), "23e42eaf-323a-41da-b5bb-fd67eebda553")
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("err = %v, want %v", err, tc.sentinel)
			}
			for _, other := range []error{ErrNotFound, ErrUnauthorized, ErrForbidden, ErrValidation, ErrConflict, ErrRateLimited, ErrServer} {
				if other != tc.sentinel && errors.Is(err, other) {
					t.Errorf("also matches %v", other)
				}
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("not an *APIError: %T", err)
			}
			if apiErr.StatusCode != tc.status || apiErr.Code != tc.code || apiErr.RetryAfter != tc.retryAfter {
				t.Errorf("got %+v", apiErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.inMsg) || !strings.HasPrefix(msg, "attio: get webhook: ") {
				t.Errorf("message %q does not contain %q", msg, tc.inMsg)
			}
			if strings.ContainsAny(msg, "\n\r") || strings.Contains(msg, testToken) || strings.Contains(apiErr.Body, testToken) {
				t.Errorf("message not one clean line or leaks token: %q / body %q", msg, apiErr.Body)
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Errorf("response not returned with the error")
			}
		})
	}
}

func TestGetRetries429HonouringHTTPDateRetryAfter(t *testing.T) {
	client, mux, slept := setup(t, WithMaxRetries(2), WithBackoff(100*time.Millisecond, time.Minute))
	var calls int
	mux.HandleFunc("GET /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			w.Header().Set("Retry-After", fixedNow.Add(7*time.Second).Format(http.TimeFormat))
			writeJSONBody(w, 429, string(readFixture(t, "design.error.429.json")))
			return
		}
		writeJSONBody(w, 200, string(readFixture(t, "design.webhook.json")))
	})
	wh, _, err := client.Webhooks.Get(context.Background(), "w1")
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 || wh.Status != WebhookDegraded {
		t.Errorf("calls %d status %q", calls, wh.Status)
	}
	if got := slept.all(); len(got) != 1 || got[0] != 7*time.Second {
		t.Errorf("waits %v, want [7s] from Retry-After", got)
	}
}

func TestGetRetries5xxAndNetworkErrorsWithJitteredBackoff(t *testing.T) {
	client, mux, slept := setup(t, WithMaxRetries(3), WithBackoff(100*time.Millisecond, 250*time.Millisecond))
	var calls int
	mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls < 4 {
			writeJSONBody(w, 503, `{"status_code":503,"type":"api_error","code":"unavailable","message":"try later"}`)
			return
		}
		writeJSONBody(w, 200, `{"data":[]}`)
	})
	if _, _, err := client.Webhooks.List(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	// jitter returns the ceiling: 100ms, 200ms, then capped at 250ms.
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond}
	if got := slept.all(); calls != 4 || len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("calls %d waits %v, want %v", calls, got, want)
	}

	// A server that is gone: the GET is retried twice (three attempts), then fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dead, err := NewClient(testToken, WithBaseURL("http://"+addr+"/v2"), WithMaxRetries(2), WithBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	w := &waits{}
	dead.sleep = w.sleep
	_, _, err = dead.Webhooks.List(context.Background(), nil)
	if err == nil || len(w.all()) != 2 || strings.Contains(err.Error(), testToken) {
		t.Errorf("err = %v, waits %v", err, w.all())
	}
}

func TestRetryAfterLongerThanMaxIsNotWaited(t *testing.T) {
	client, mux, slept := setup(t, WithMaxRetries(2), WithBackoff(time.Millisecond, 10*time.Second))
	var calls int
	mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Retry-After", fixedNow.Add(time.Hour).Format(http.TimeFormat))
		writeJSONBody(w, 429, string(readFixture(t, "design.error.429.json")))
	})
	_, _, err := client.Webhooks.List(context.Background(), nil)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.RetryAfter != time.Hour || calls != 1 || len(slept.all()) != 0 {
		t.Errorf("err %v calls %d waits %v", err, calls, slept.all())
	}
}

func TestWritesAreNeverRetried(t *testing.T) {
	for _, method := range []string{"POST", "PATCH", "DELETE"} {
		t.Run(method, func(t *testing.T) {
			client, mux, slept := setup(t, WithMaxRetries(4), WithBackoff(time.Millisecond, time.Second))
			var calls int
			h := func(w http.ResponseWriter, r *http.Request) {
				calls++
				w.Header().Set("Retry-After", "1")
				writeJSONBody(w, 429, string(readFixture(t, "design.error.429.json")))
			}
			mux.HandleFunc("POST /webhooks", h)
			mux.HandleFunc("PATCH /webhooks/{id}", h)
			mux.HandleFunc("DELETE /webhooks/{id}", h)
			ctx := context.Background()
			var err error
			switch method {
			case "POST":
				_, _, err = client.Webhooks.Create(ctx, &WebhookCreateRequest{TargetURL: "https://x.test/h", Subscriptions: []Subscription{{EventType: RecordCreated}}})
			case "PATCH":
				u := "https://x.test/h2"
				_, _, err = client.Webhooks.Update(ctx, "w1", &WebhookUpdateRequest{TargetURL: &u})
			case "DELETE":
				_, err = client.Webhooks.Delete(ctx, "w1")
			}
			if !errors.Is(err, ErrRateLimited) || calls != 1 || len(slept.all()) != 0 {
				t.Errorf("err %v calls %d waits %v", err, calls, slept.all())
			}
		})
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	client, mux, _ := setup(t, WithMaxRetries(4), WithBackoff(time.Millisecond, time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	var calls int
	mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		calls++
		cancel() // the client sees the 503 after ctx is done
		writeJSONBody(w, 503, `{}`)
	})
	client.sleep = sleepCtx // the real sleeper, which returns at once on a done ctx
	_, _, err := client.Webhooks.List(ctx, nil)
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("err %v calls %d", err, calls)
	}
}

func TestSuccessWithoutDataIsAnError(t *testing.T) {
	client, mux, _ := setup(t)
	mux.HandleFunc("GET /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, 200, `{"id":{"webhook_id":"w1"}}`) // not wrapped
	})
	mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, 200, `<html>`)
	})
	if _, _, err := client.Webhooks.Get(context.Background(), "w1"); !errors.Is(err, ErrUnexpectedResponse) || !strings.Contains(err.Error(), `no "data"`) {
		t.Errorf("unwrapped answer: err = %v", err)
	}
	if _, _, err := client.Webhooks.List(context.Background(), nil); !errors.Is(err, ErrUnexpectedResponse) || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("html answer: err = %v", err)
	}
}
