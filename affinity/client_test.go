package affinity

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testKey = "affinity-test-key-Zq81xPm3"

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

// setup starts a real HTTP server on loopback and a client pointed at it
// (go-github style): tests register handlers on mux with API paths.
func setup(t *testing.T, opts ...Option) (client *Client, mux *http.ServeMux, slept *waits) {
	t.Helper()
	mux = http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client, err := NewClient(testKey, append([]Option{WithBaseURL(srv.URL)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	slept = &waits{}
	client.now = func() time.Time { return fixedNow }
	client.sleep = slept.sleep
	client.jitter = func(n int64) int64 { return n - 1 } // the ceiling, so waits are predictable
	return client, mux, slept
}

// fixture returns a file of testdata/affinity verbatim.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "affinity", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.WriteHeader(status)
	w.Write(body)
}

// noKeyIn fails the test if s holds the API key in any form a request carries it.
func noKeyIn(t *testing.T, what, s string) {
	t.Helper()
	for _, form := range []string{testKey, base64.StdEncoding.EncodeToString([]byte(":" + testKey)), testKey[:16]} {
		if strings.Contains(s, form) {
			t.Errorf("%s holds the API key (%q): %s", what, form, s)
		}
	}
}

func TestNewClientRejectsBadInput(t *testing.T) {
	if _, err := NewClient("  "); !errors.Is(err, ErrNoAPIKey) {
		t.Errorf("empty key: err = %v, want ErrNoAPIKey", err)
	}
	_, err := NewClient("abc def-secret-part")
	if !errors.Is(err, ErrInvalidRequest) || strings.Contains(err.Error(), "secret-part") {
		t.Errorf("key with a space: err = %v", err)
	}
	bad := map[string]Option{
		"relative base URL":     WithBaseURL("api.affinity.co"),
		"ftp base URL":          WithBaseURL("ftp://api.affinity.co"),
		"credentials in URL":    WithBaseURL("https://:" + testKey + "@api.affinity.co"),
		"query in URL":          WithBaseURL("https://api.affinity.co/?x=1"),
		"nil HTTP client":       WithHTTPClient(nil),
		"two-line user agent":   WithUserAgent("a\r\nX-Evil: 1"),
		"negative retries":      WithMaxRetries(-1),
		"zero backoff":          WithBackoff(0, time.Second),
		"cap below base":        WithBackoff(time.Second, time.Millisecond),
		"absurd retries":        WithMaxRetries(1000),
		"credentials with user": WithBaseURL("https://user:pw@api.affinity.co"),
	}
	for name, opt := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := NewClient(testKey, opt)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
			if !strings.HasPrefix(err.Error(), "affinity: ") {
				t.Errorf("unlabelled error %q", err)
			}
			noKeyIn(t, "error", err.Error())
		})
	}
	c, err := NewClient(testKey, WithBaseURL("http://127.0.0.1:7701/"), nil)
	if err != nil || c.BaseURL() != "http://127.0.0.1:7701" {
		t.Errorf("base URL = %v, %v", c, err)
	}
	if c, _ := NewClient(testKey); c.BaseURL() != DefaultBaseURL || c.maxRetries != 3 ||
		c.backoff != (backoffPolicy{500 * time.Millisecond, 30 * time.Second}) {
		t.Errorf("defaults: base %s retries %d backoff %+v", c.BaseURL(), c.maxRetries, c.backoff)
	}
}

func TestNewClientFromEnv(t *testing.T) {
	var gotAuth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pass, _ := r.BasicAuth()
		gotAuth.Store(pass)
		writeBody(w, 200, "application/json", []byte("[]"))
	}))
	t.Cleanup(srv.Close)

	t.Setenv(EnvAPIKey, "")
	t.Setenv(EnvBaseURL, srv.URL)
	_, err := NewClientFromEnv()
	if !errors.Is(err, ErrNoAPIKey) || !strings.Contains(err.Error(), "AFFINITY_API_KEY") {
		t.Fatalf("unset key: err = %v, want ErrNoAPIKey naming AFFINITY_API_KEY", err)
	}

	t.Setenv(EnvAPIKey, testKey)
	c, err := NewClientFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL() != srv.URL {
		t.Errorf("base URL = %s, want %s from %s", c.BaseURL(), srv.URL, EnvBaseURL)
	}
	if _, _, err := c.Webhooks.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	if gotAuth.Load() != testKey {
		t.Errorf("server saw key %v", gotAuth.Load())
	}
	// An explicit option wins over the environment.
	c, err = NewClientFromEnv(WithBaseURL("http://127.0.0.1:9"))
	if err != nil || c.BaseURL() != "http://127.0.0.1:9" {
		t.Errorf("option over env: %v %v", c.BaseURL(), err)
	}
}

func TestAuthAndHeaders(t *testing.T) {
	cases := []struct {
		name   string
		opts   []Option
		check  func(r *http.Request) string
		wantUA string
	}{
		{
			name: "basic with empty user by default",
			check: func(r *http.Request) string {
				user, pass, ok := r.BasicAuth()
				if !ok || user != "" || pass != testKey {
					return "Authorization = " + r.Header.Get("Authorization")
				}
				return ""
			},
			wantUA: defaultUserAgent,
		},
		{
			name: "bearer",
			opts: []Option{WithBearerAuth(), WithUserAgent("my-app/2")},
			check: func(r *http.Request) string {
				if r.Header.Get("Authorization") != "Bearer "+testKey {
					return "Authorization = " + r.Header.Get("Authorization")
				}
				return ""
			},
			wantUA: "my-app/2",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, mux, _ := setup(t, tc.opts...)
			var problems []string
			var mu sync.Mutex
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				if p := tc.check(r); p != "" {
					problems = append(problems, r.Method+" "+p)
				}
				if r.Header.Get("User-Agent") != tc.wantUA || r.Header.Get("Accept") != "application/json" {
					problems = append(problems, "User-Agent/Accept = "+r.Header.Get("User-Agent")+" / "+r.Header.Get("Accept"))
				}
				noKeyIn(t, "request URL", r.URL.String())
				switch r.Method {
				case http.MethodDelete:
					writeBody(w, 200, "application/json", []byte(`{"success":true}`))
				case http.MethodGet:
					if r.URL.Path == "/webhook" {
						writeBody(w, 200, "application/json", []byte("[]"))
						return
					}
					fallthrough
				default:
					writeBody(w, 200, "application/json", fixture(t, "webhook.json"))
				}
			})
			ctx := context.Background()
			if _, _, err := client.Webhooks.List(ctx); err != nil {
				t.Fatal(err)
			}
			if _, _, err := client.Webhooks.Get(ctx, 1234); err != nil {
				t.Fatal(err)
			}
			if _, _, err := client.Webhooks.Create(ctx, &CreateWebhookRequest{WebhookURL: "https://x.test/h"}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := client.Webhooks.Disable(ctx, 1234); err != nil {
				t.Fatal(err)
			}
			if _, err := client.Webhooks.Delete(ctx, 1234); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range problems {
				t.Error(p)
			}
		})
	}
}

func TestAPIErrorsAndSentinels(t *testing.T) {
	all := []error{ErrNotFound, ErrUnauthorized, ErrForbidden, ErrValidation, ErrRateLimited, ErrServer, ErrSubscriptionLimit}
	cases := []struct {
		name        string
		status      int
		contentType string
		body        string
		header      map[string]string
		want        []error
		wantMsg     string
		wantReqID   string
	}{
		{"404 message object", 404, "application/json", `{"message":"Not found"}`, nil,
			[]error{ErrNotFound}, "Not found", ""},
		{"401 plain text", 401, "text/plain", "Unauthorized", map[string]string{"X-Request-Id": "req-401"},
			[]error{ErrUnauthorized}, "Unauthorized", "req-401"},
		{"403 errors array", 403, "application/json", `{"errors":[{"code":"forbidden","message":"A webhook subscription can only be updated by its creator"}]}`, nil,
			[]error{ErrForbidden}, "A webhook subscription can only be updated by its creator", ""},
		{"422 several errors", 422, "application/json", `{"errors":[{"message":"webhook_url is required"},{"message":"subscriptions is bad"}]}`, nil,
			[]error{ErrValidation}, "webhook_url is required; subscriptions is bad", ""},
		{"400 error string", 400, "application/json", `{"error":"invalid parameter"}`, nil,
			[]error{ErrValidation}, "invalid parameter", ""},
		{"400 error object", 400, "application/json", `{"error":{"message":"bad id","code":7}}`, nil,
			[]error{ErrValidation}, "bad id", ""},
		{"400 errors of strings", 400, "application/json", `{"errors":["first","second"]}`, nil,
			[]error{ErrValidation}, "first; second", ""},
		{"422 subscription limit (simulator wording)", 422, "application/json",
			`{"errors":[{"code":"limit_reached","message":"Webhook subscription limit of 3 reached for this instance"}]}`, nil,
			[]error{ErrValidation, ErrSubscriptionLimit}, "Webhook subscription limit of 3 reached for this instance", ""},
		{"400 subscription limit (other wording)", 400, "application/json",
			`{"message":"You can have at most 3 webhooks per instance."}`, nil,
			[]error{ErrValidation, ErrSubscriptionLimit}, "You can have at most 3 webhooks per instance.", ""},
		{"429 rate limit is not the subscription limit", 429, "application/json",
			`{"errors":[{"message":"Rate limit exceeded for webhook subscription API"}]}`, map[string]string{"Retry-After": "7"},
			[]error{ErrRateLimited}, "Rate limit exceeded for webhook subscription API; retry after 7s", ""},
		{"422 probe failure is not the limit", 422, "application/json",
			`{"errors":[{"message":"webhook_url did not respond with a 2xx status to the sample.webhook request: status 500"}]}`, nil,
			[]error{ErrValidation}, "webhook_url did not respond with a 2xx status to the sample.webhook request: status 500", ""},
		{"500 HTML page", 500, "text/html", "<!DOCTYPE html><html><body><h1>Internal\nServer Error</h1></body></html>", nil,
			[]error{ErrServer}, "unexpected response: <!DOCTYPE html><html><body><h1>Internal Server Error</h1></body></html>", ""},
		{"502 empty", 502, "", "", nil,
			[]error{ErrServer}, "empty response body", ""},
		{"409 JSON without message", 409, "application/json", `{"code":12}`, nil,
			nil, `unexpected response: {"code":12}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, mux, _ := setup(t, WithMaxRetries(0))
			mux.HandleFunc("GET /webhook/{id}", func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				writeBody(w, tc.status, tc.contentType, []byte(tc.body))
			})
			_, resp, err := client.Webhooks.Get(context.Background(), 77)
			for _, s := range all {
				if got, want := errors.Is(err, s), slices.Contains(tc.want, s); got != want {
					t.Errorf("errors.Is(err, %v) = %v, want %v", s, got, want)
				}
			}
			apiErr, ok := errors.AsType[*APIError](err)
			if !ok {
				t.Fatalf("err = %T %v, want *APIError", err, err)
			}
			if apiErr.StatusCode != tc.status || apiErr.RequestID != tc.wantReqID || apiErr.Response == nil || apiErr.Response.StatusCode != tc.status {
				t.Errorf("APIError = %+v", apiErr)
			}
			wantErr := "affinity: get webhook 77: " + apiErr.Error()
			if err.Error() != wantErr {
				t.Errorf("err = %q, want %q", err, wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if tc.wantReqID != "" && !strings.HasSuffix(err.Error(), "(request id "+tc.wantReqID+")") {
				t.Errorf("no request id in %q", err)
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Errorf("response = %v, want the %d answer", resp, tc.status)
			}
		})
	}
}

func TestSubscriptionLimitWording(t *testing.T) {
	cases := map[string]bool{
		"Webhook subscription limit of 3 reached for this instance": true,
		"There is a limit of three webhook subscriptions":           true,
		"Maximum number of webhook subscriptions reached":           true,
		"too many webhooks":                                       true,
		"You may only have 3 webhook subscriptions":               true,
		"subscriptions: \"x3y\" is not a supported webhook event": false,
		"webhook_url must be an absolute http or https URL":       false,
		"limit reached": false, // no subject
		"A webhook subscription can only be updated by its creator":                                             false,
		"webhook_url did not respond with a 2xx status to the sample.webhook request: no answer within 3s":      false,
		"webhook_url did not respond with a 2xx status: dial tcp 10.0.0.3:443: connection refused":              false,
		"webhook_url did not respond: dial tcp 10.0.0.3 webhook":                                                false,
		"Webhook subscription limit of 3 subscriptions reached for this instance; delete one to create another": true,
		"Only three active webhook subscriptions are allowed":                                                   true,
	}
	for msg, want := range cases {
		e := &APIError{StatusCode: 422, Message: msg}
		if got := errors.Is(e, ErrSubscriptionLimit); got != want {
			t.Errorf("%q: ErrSubscriptionLimit = %v, want %v", msg, got, want)
		}
	}
	for _, status := range []int{401, 404, 429, 500} {
		e := &APIError{StatusCode: status, Message: "Webhook subscription limit of 3 reached"}
		if errors.Is(e, ErrSubscriptionLimit) {
			t.Errorf("status %d matched ErrSubscriptionLimit", status)
		}
	}
}

func TestRateLimitHeaders(t *testing.T) {
	client, mux, _ := setup(t, WithMaxRetries(0))
	mux.HandleFunc("GET /webhook", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Ratelimit-Limit-User", "900")
		h.Set("X-Ratelimit-Limit-User-Remaining", "899")
		h.Set("X-Ratelimit-Limit-User-Reset", "42")
		h.Set("X-Ratelimit-Limit-Org", "100000")
		h.Set("X-Ratelimit-Limit-Org-Remaining", "12345")
		h.Set("X-Ratelimit-Limit-Org-Reset", "86400")
		writeBody(w, 200, "application/json", []byte("[]"))
	})
	mux.HandleFunc("GET /webhook/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "1": // partial and malformed
			w.Header().Set("X-Ratelimit-Limit-User-Remaining", "0")
			w.Header().Set("X-Ratelimit-Limit-User-Reset", "soon")
			w.Header().Set("X-Ratelimit-Limit-Org", "lots")
			w.Header().Set("Retry-After", "12")
			writeBody(w, 429, "application/json", []byte(`{"errors":[{"message":"Rate limit exceeded"}]}`))
		default: // none
			writeBody(w, 200, "application/json", fixture(t, "webhook.get.json"))
		}
	})
	ctx := context.Background()

	_, resp, err := client.Webhooks.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := RateLimits{Known: true, UserLimit: 900, UserRemaining: 899, UserReset: 42 * time.Second,
		OrgLimit: 100000, OrgRemaining: 12345, OrgReset: 24 * time.Hour}
	if resp.RateLimits != want {
		t.Errorf("rate limits = %+v, want %+v", resp.RateLimits, want)
	}

	_, resp, err = client.Webhooks.Get(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := (RateLimits{UserLimit: -1, UserRemaining: -1, OrgLimit: -1, OrgRemaining: -1}); resp.RateLimits != want {
		t.Errorf("no headers: %+v, want %+v", resp.RateLimits, want)
	}

	_, resp, err = client.Webhooks.Get(ctx, 1)
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v", err)
	}
	if want := (RateLimits{Known: true, UserLimit: -1, UserRemaining: 0, OrgLimit: -1, OrgRemaining: -1}); resp == nil || resp.RateLimits != want {
		t.Errorf("partial headers on 429: %+v, want %+v", resp, want)
	}
	if apiErr, _ := errors.AsType[*APIError](err); apiErr.RetryAfter != 12*time.Second {
		t.Errorf("RetryAfter = %v", apiErr.RetryAfter)
	}
}

func TestGetRetriesRateLimitHonouringRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name, retryAfter string
		want             time.Duration
	}{
		{"seconds", "3", 3 * time.Second},
		{"HTTP date", fixedNow.Add(9 * time.Second).Format(http.TimeFormat), 9 * time.Second},
		{"junk falls back to backoff", "whenever", 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, mux, slept := setup(t)
			var calls atomic.Int32
			mux.HandleFunc("GET /webhook", func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					w.Header().Set("Retry-After", tc.retryAfter)
					writeBody(w, 429, "application/json", []byte(`{"errors":[{"message":"Rate limit exceeded"}]}`))
					return
				}
				writeBody(w, 200, "application/json", fixture(t, "webhook.list.json"))
			})
			whs, _, err := client.Webhooks.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(whs) != 2 || calls.Load() != 2 {
				t.Errorf("got %d webhooks after %d calls", len(whs), calls.Load())
			}
			if got := slept.all(); !slices.Equal(got, []time.Duration{tc.want}) {
				t.Errorf("waits = %v, want [%v]", got, tc.want)
			}
		})
	}
}

func TestGetRetries5xxWithBackoffThenGivesUp(t *testing.T) {
	client, mux, slept := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("GET /webhook/{id}", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		writeBody(w, 503, "text/plain", []byte("upstream unavailable"))
	})
	_, _, err := client.Webhooks.Get(context.Background(), 5)
	if !errors.Is(err, ErrServer) {
		t.Fatalf("err = %v, want ErrServer", err)
	}
	if calls.Load() != 4 {
		t.Errorf("calls = %d, want 4 (1 + 3 retries)", calls.Load())
	}
	// The jitter seam returns the ceiling: base·2^n.
	want := []time.Duration{500*time.Millisecond + 0, time.Second, 2 * time.Second}
	if got := slept.all(); !slices.Equal(got, want) {
		t.Errorf("waits = %v, want %v", got, want)
	}

	// 501 is not worth a retry.
	client2, mux2, _ := setup(t)
	var calls2 atomic.Int32
	mux2.HandleFunc("GET /webhook", func(w http.ResponseWriter, r *http.Request) {
		calls2.Add(1)
		writeBody(w, 501, "", nil)
	})
	if _, _, err := client2.Webhooks.List(context.Background()); !errors.Is(err, ErrServer) || calls2.Load() != 1 {
		t.Errorf("501: err %v after %d calls", err, calls2.Load())
	}
}

func TestBackoffIsFullJitterCapped(t *testing.T) {
	c, err := NewClient(testKey, WithBackoff(100*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var ceilings []int64
	c.jitter = func(n int64) int64 { ceilings = append(ceilings, n); return 0 }
	for attempt := range 7 {
		if d := c.backoffFor(attempt); d != 0 {
			t.Errorf("attempt %d waited %v with zero jitter", attempt, d)
		}
	}
	ms := int64(time.Millisecond)
	want := []int64{100*ms + 1, 200*ms + 1, 400*ms + 1, 800*ms + 1, 1000*ms + 1, 1000*ms + 1, 1000*ms + 1}
	if !slices.Equal(ceilings, want) {
		t.Errorf("jitter ranges = %v, want %v", ceilings, want)
	}
	// The real jitter source stays inside [0, ceiling].
	c2, _ := NewClient(testKey, WithBackoff(time.Millisecond, 4*time.Millisecond))
	for range 200 {
		if d := c2.backoffFor(5); d < 0 || d > 4*time.Millisecond {
			t.Fatalf("wait %v outside [0, 4ms]", d)
		}
	}
}

// hangUpFirst closes the connection of the first n requests before
// answering, which a client sees as a network error. arrivals counts every
// request that reached the server.
func hangUpFirst(t *testing.T, n int32, arrivals *atomic.Int32, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrivals.Add(1) <= n {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close()
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestGetRetriesNetworkErrors(t *testing.T) {
	client, mux, slept := setup(t)
	var served, arrivals atomic.Int32
	mux.Handle("GET /webhook/{id}", hangUpFirst(t, 2, &arrivals, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		writeBody(w, 200, "application/json", fixture(t, "webhook.get.json"))
	})))
	wh, _, err := client.Webhooks.Get(context.Background(), 1234)
	if err != nil {
		t.Fatal(err)
	}
	if wh.ID != 1234 || served.Load() != 1 || len(slept.all()) != 2 {
		t.Errorf("webhook %d, served %d, waits %v", wh.ID, served.Load(), slept.all())
	}

	// Out of retries: the network error comes back, labelled, without the key.
	client2, mux2, _ := setup(t, WithMaxRetries(1))
	var arrivals2 atomic.Int32
	mux2.Handle("GET /webhook", hangUpFirst(t, 100, &arrivals2, http.NotFoundHandler()))
	_, resp, err := client2.Webhooks.List(context.Background())
	if err == nil || resp != nil || !strings.HasPrefix(err.Error(), "affinity: list webhooks: ") {
		t.Fatalf("err = %v, resp = %v", err, resp)
	}
	if _, ok := errors.AsType[*APIError](err); ok {
		t.Error("a network error came back as an APIError")
	}
	if arrivals2.Load() != 2 {
		t.Errorf("arrivals = %d, want 2 (1 + 1 retry)", arrivals2.Load())
	}
	noKeyIn(t, "network error", err.Error())
}

func TestWritesAreNeverRetried(t *testing.T) {
	client, mux, slept := setup(t)
	var calls atomic.Int32
	fail := func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "1")
		writeBody(w, 503, "application/json", []byte(`{"message":"try later"}`))
	}
	mux.HandleFunc("POST /webhook/subscribe", fail)
	mux.HandleFunc("PUT /webhook/{id}", fail)
	mux.HandleFunc("DELETE /webhook/{id}", fail)
	ctx := context.Background()
	url := "https://x.test/h"
	checks := map[string]func() error{
		"create": func() error {
			_, _, err := client.Webhooks.Create(ctx, &CreateWebhookRequest{WebhookURL: url})
			return err
		},
		"update": func() error {
			_, _, err := client.Webhooks.Update(ctx, 1, &UpdateWebhookRequest{WebhookURL: &url})
			return err
		},
		"enable": func() error { _, _, err := client.Webhooks.Enable(ctx, 1); return err },
		"delete": func() error { _, err := client.Webhooks.Delete(ctx, 1); return err },
	}
	for name, call := range checks {
		calls.Store(0)
		if err := call(); !errors.Is(err, ErrServer) || calls.Load() != 1 {
			t.Errorf("%s: err %v after %d calls, want one call", name, err, calls.Load())
		}
	}
	if len(slept.all()) != 0 {
		t.Errorf("writes waited to retry: %v", slept.all())
	}

	// Nor after a network error: the create may have happened.
	client2, mux2, _ := setup(t)
	var arrivals atomic.Int32
	mux2.Handle("POST /webhook/subscribe", hangUpFirst(t, 100, &arrivals, http.NotFoundHandler()))
	if _, _, err := client2.Webhooks.Create(ctx, &CreateWebhookRequest{WebhookURL: url}); err == nil {
		t.Fatal("create over a hung-up connection succeeded")
	}
	if arrivals.Load() != 1 {
		t.Errorf("create reached the server %d times, want 1", arrivals.Load())
	}
}

func TestContextCancelStopsWaiting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, mux, _ := setup(t, WithBackoff(time.Millisecond, 2*time.Hour))
	client.sleep = sleepCtx // real waits for this test
	var calls atomic.Int32
	mux.HandleFunc("GET /webhook", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "3600")
		writeBody(w, 429, "application/json", []byte(`{"message":"slow down"}`))
		cancel() // the caller gives up while the client waits an hour
	})
	done := make(chan error, 1)
	go func() {
		_, _, err := client.Webhooks.List(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("List still waiting an hour after its context was cancelled")
	}
	if calls.Load() != 1 {
		t.Errorf("calls = %d, want 1", calls.Load())
	}

	// A context already done sends nothing.
	if _, _, err := client.Webhooks.List(ctx); !errors.Is(err, context.Canceled) || calls.Load() != 1 {
		t.Errorf("cancelled ctx: err %v, calls %d", err, calls.Load())
	}
}

func TestRetryAfterLongerThanCapIsNotWaited(t *testing.T) {
	client, mux, slept := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("GET /webhook", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "86400") // the org's monthly quota is spent
		writeBody(w, 429, "application/json", []byte(`{"message":"Monthly quota exceeded"}`))
	})
	_, _, err := client.Webhooks.List(context.Background())
	apiErr, ok := errors.AsType[*APIError](err)
	if !ok || apiErr.RetryAfter != 24*time.Hour || calls.Load() != 1 || len(slept.all()) != 0 {
		t.Errorf("err %v, calls %d, waits %v", err, calls.Load(), slept.all())
	}
}

func TestSuccessBodyMustBeJSON(t *testing.T) {
	client, mux, _ := setup(t)
	mux.HandleFunc("GET /webhook", func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, 200, "text/html; charset=utf-8", []byte("<html><body>Please log in</body></html>"))
	})
	mux.HandleFunc("GET /webhook/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "1":
			writeBody(w, 200, "application/json", nil)
		case "2":
			writeBody(w, 200, "application/json", []byte(`{"id":"not a number"}`))
		default:
			writeBody(w, 200, "application/json", []byte(`{}`))
		}
	})
	mux.HandleFunc("DELETE /webhook/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, 200, "application/json", []byte(`{"success":false}`))
	})
	ctx := context.Background()
	_, _, err := client.Webhooks.List(ctx)
	if !errors.Is(err, ErrUnexpectedResponse) || err.Error() != "affinity: list webhooks: unexpected response: 200 answer is not JSON (Content-Type text/html)" {
		t.Errorf("HTML: %v", err)
	}
	for id, want := range map[int64]string{1: "empty body", 2: "decode 200 answer", 3: "no webhook subscription object"} {
		if _, _, err := client.Webhooks.Get(ctx, id); !errors.Is(err, ErrUnexpectedResponse) || !strings.Contains(err.Error(), want) {
			t.Errorf("get %d: %v, want %q", id, err, want)
		}
	}
	if _, err := client.Webhooks.Delete(ctx, 9); !errors.Is(err, ErrUnexpectedResponse) {
		t.Errorf("delete success=false: %v", err)
	}
}

func TestAPIKeyNeverLeaks(t *testing.T) {
	client, mux, _ := setup(t, WithMaxRetries(0))
	basic := base64.StdEncoding.EncodeToString([]byte(":" + testKey))
	mux.HandleFunc("GET /webhook/{id}", func(w http.ResponseWriter, r *http.Request) {
		// A debugging proxy echoing the request back, key and all.
		echo := "Authorization: " + r.Header.Get("Authorization") + "\napi_key=" + testKey +
			"\nother token: ZXhhbXBsZS1zZWNyZXQtdG9rZW4tdGhhdC1pcy1sb25n\n"
		switch r.PathValue("id") {
		case "1":
			writeBody(w, 400, "text/plain", []byte(echo))
		case "2":
			writeBody(w, 422, "application/json", []byte(`{"errors":[{"message":"bad key `+testKey+` (`+basic+`)"}]}`))
		}
	})
	mux.HandleFunc("GET /webhook", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "rid-"+testKey)
		writeBody(w, 500, "", nil)
	})
	ctx := context.Background()
	for _, id := range []int64{1, 2} {
		_, _, err := client.Webhooks.Get(ctx, id)
		apiErr, ok := errors.AsType[*APIError](err)
		if !ok {
			t.Fatalf("get %d: %v", id, err)
		}
		noKeyIn(t, "error", err.Error())
		noKeyIn(t, "Body", apiErr.Body)
		noKeyIn(t, "Message", apiErr.Message)
		if !strings.Contains(err.Error(), "[redacted]") {
			t.Errorf("get %d: nothing redacted in %q", id, err)
		}
		if id == 1 && strings.Contains(apiErr.Body, "ZXhhbXBsZS1zZWNyZXQtdG9rZW4tdGhhdC1pcy1sb25n") {
			t.Errorf("a key-like token survived in Body: %q", apiErr.Body)
		}
	}
	_, _, err := client.Webhooks.List(ctx)
	noKeyIn(t, "error with request id", err.Error())

	// A transport error that quotes the key (a misbehaving RoundTripper).
	leaky, err := NewClient(testKey, WithHTTPClient(&http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return nil, errors.New("proxy refused " + r.Header.Get("Authorization") + " key " + testKey)
	})}), WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = leaky.Webhooks.List(ctx)
	if err == nil {
		t.Fatal("no error")
	}
	noKeyIn(t, "transport error", err.Error())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestErrorBodySnippetIsBounded(t *testing.T) {
	client, mux, _ := setup(t, WithMaxRetries(0))
	long := strings.Repeat("é", 2000) // multi-byte, so a naive cut would split a rune
	mux.HandleFunc("GET /webhook", func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, 400, "text/plain", []byte(long))
	})
	_, _, err := client.Webhooks.List(context.Background())
	apiErr, ok := errors.AsType[*APIError](err)
	if !ok {
		t.Fatal(err)
	}
	if len(apiErr.Body) > 512 || !strings.HasPrefix(long, apiErr.Body) || len(apiErr.Body) < 500 {
		t.Errorf("Body is %d bytes", len(apiErr.Body))
	}
	if n := len([]rune(apiErr.Message)); n > 201 {
		t.Errorf("Message is %d runes", n)
	}
}

func TestHeadIsRetriedLikeGet(t *testing.T) {
	client, mux, slept := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("HEAD /webhook", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(502)
			return
		}
		w.WriteHeader(200)
	})
	resp, err := client.do(context.Background(), http.MethodHead, "/webhook", nil, nil)
	if err != nil || resp.StatusCode != 200 || calls.Load() != 2 || len(slept.all()) != 1 {
		t.Errorf("HEAD: %v, calls %d, waits %v", err, calls.Load(), slept.all())
	}
}

func TestBodyReadErrorIsRetried(t *testing.T) {
	// A server that promises more bytes than it sends: the client sees an
	// unexpected EOF while reading, a network error worth a retry for GET.
	var calls atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(200)
			io.WriteString(w, "[")
			return
		}
		writeBody(w, 200, "application/json", []byte("[]"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	client, err := NewClient(testKey, WithBaseURL("http://"+ln.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	client.sleep = (&waits{}).sleep
	whs, _, err := client.Webhooks.List(context.Background())
	if err != nil || len(whs) != 0 || calls.Load() != 2 {
		t.Errorf("list: %v %v after %d calls", whs, err, calls.Load())
	}
}
