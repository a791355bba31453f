package affinity_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/sim/affinitysim"
)

const v2Key = "affinity-v2-test-key-Jx93LmQ0pR"

// v2Request is one request a v2 test server saw.
type v2Request struct {
	Method, Path, Query, Auth, ContentType, Body string
}

// v2Server is an httptest server whose handler is set per test; it records
// every request.
type v2Server struct {
	srv *httptest.Server
	mu  sync.Mutex
	log []v2Request
	mux *http.ServeMux
}

func newV2Server(t *testing.T) *v2Server {
	t.Helper()
	s := &v2Server{mux: http.NewServeMux()}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.log = append(s.log, v2Request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)})
		s.mu.Unlock()
		s.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *v2Server) requests() []v2Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

func (s *v2Server) last() v2Request {
	reqs := s.requests()
	if len(reqs) == 0 {
		return v2Request{}
	}
	return reqs[len(reqs)-1]
}

// client returns a client of s with Basic auth configured (the default):
// the v2 service must send a bearer token anyway.
func (s *v2Server) client(t *testing.T, opts ...affinity.Option) *affinity.Client {
	t.Helper()
	c, err := affinity.NewClient(v2Key, append([]affinity.Option{
		affinity.WithBaseURL(s.srv.URL),
		affinity.WithBackoff(time.Millisecond, 5*time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

const v2WebhookJSON = `{"id":7,"url":"https://hooks.example.com/hooks/affinity/s3cr3t","subscriptions":["person.created","smart_interaction_value.updated"],` +
	`"status":"active","creator":{"id":42},"createdAt":"2026-01-01T00:00:00Z","updatedAt":null}`

func TestWebhooksV2CRUDWireFormat(t *testing.T) {
	s := newV2Server(t)
	s.mux.HandleFunc("POST /v2/webhooks", func(w http.ResponseWriter, r *http.Request) { answer(w, 201, v2WebhookJSON) })
	s.mux.HandleFunc("GET /v2/webhooks/7", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, `{"id":7,"url":"https://h.example/x","subscriptions":[],"status":"disabled","creator":null,`+
			`"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-02-03T04:05:06.789Z"}`)
	})
	s.mux.HandleFunc("POST /v2/webhooks/7", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	s.mux.HandleFunc("DELETE /v2/webhooks/7", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	client := s.client(t)
	v2 := client.WebhooksV2()
	ctx := context.Background()

	// Create: both keys always sent; no subscriptions is [] (every event).
	wh, resp, err := v2.Create(ctx, "https://hooks.example.com/hooks/affinity/s3cr3t", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := s.last()
	if got.Method != "POST" || got.Path != "/v2/webhooks" || got.Auth != "Bearer "+v2Key || got.ContentType != "application/json" ||
		got.Body != `{"url":"https://hooks.example.com/hooks/affinity/s3cr3t","subscriptions":[]}` {
		t.Errorf("create sent %+v", got)
	}
	if resp.StatusCode != 201 {
		t.Errorf("status %d", resp.StatusCode)
	}
	want := &affinity.WebhookV2{ID: 7, URL: "https://hooks.example.com/hooks/affinity/s3cr3t",
		Subscriptions: []affinity.EventType{affinity.PersonCreated, affinity.SmartInteractionValueUpdated},
		Status:        affinity.WebhookV2Active, Creator: &affinity.WebhookV2Creator{ID: 42},
		CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if !equalV2(wh, want) || wh.UpdatedAt != nil || !wh.Active() || wh.AllEvents() || !wh.Wants(affinity.PersonCreated) || wh.Wants(affinity.NoteCreated) {
		t.Errorf("created %+v, want %+v", wh, want)
	}
	if _, _, err := v2.Create(ctx, "https://hooks.example.com/a", []affinity.EventType{affinity.NoteCreated}); err != nil {
		t.Fatal(err)
	}
	if b := s.last().Body; b != `{"url":"https://hooks.example.com/a","subscriptions":["note.created"]}` {
		t.Errorf("create with events sent %s", b)
	}

	// Get: null creator, an updatedAt, all events.
	wh, _, err = v2.Get(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if wh.Creator != nil || wh.UpdatedAt == nil || !wh.UpdatedAt.Equal(time.Date(2026, 2, 3, 4, 5, 6, 789e6, time.UTC)) ||
		wh.Status != affinity.WebhookV2Disabled || wh.Subscriptions == nil || !wh.AllEvents() || !wh.Wants("anything.new") {
		t.Errorf("get = %+v", wh)
	}
	if got := s.last(); got.Auth != "Bearer "+v2Key || got.Body != "" {
		t.Errorf("get sent %+v", got)
	}

	// Update: POST, only the fields given, 204 with no body is success.
	disabled := affinity.WebhookV2Disabled
	newURL := "https://hooks.example.com/b"
	for _, tc := range []struct {
		name string
		call func() (*affinity.Response, error)
		body string
	}{
		{"status", func() (*affinity.Response, error) {
			return v2.Update(ctx, 7, &affinity.UpdateWebhookV2Request{Status: &disabled})
		}, `{"status":"disabled"}`},
		{"url", func() (*affinity.Response, error) {
			return v2.Update(ctx, 7, &affinity.UpdateWebhookV2Request{URL: &newURL})
		}, `{"url":"https://hooks.example.com/b"}`},
		{"all events", func() (*affinity.Response, error) {
			return v2.Update(ctx, 7, &affinity.UpdateWebhookV2Request{Subscriptions: &[]affinity.EventType{}})
		}, `{"subscriptions":[]}`},
		{"nil list is all events too", func() (*affinity.Response, error) {
			var none []affinity.EventType
			return v2.Update(ctx, 7, &affinity.UpdateWebhookV2Request{Subscriptions: &none})
		}, `{"subscriptions":[]}`},
		{"enable", func() (*affinity.Response, error) { return v2.Enable(ctx, 7) }, `{"status":"active"}`},
		{"disable", func() (*affinity.Response, error) { return v2.Disable(ctx, 7) }, `{"status":"disabled"}`},
	} {
		resp, err := tc.call()
		if err != nil || resp.StatusCode != 204 {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := s.last(); got.Method != "POST" || got.Path != "/v2/webhooks/7" || got.Body != tc.body || got.Auth != "Bearer "+v2Key {
			t.Errorf("%s sent %+v, want body %s", tc.name, got, tc.body)
		}
	}

	// Delete: 204.
	if resp, err := v2.Delete(ctx, 7); err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete: %v", err)
	}
	if got := s.last(); got.Method != "DELETE" || got.Path != "/v2/webhooks/7" {
		t.Errorf("delete sent %+v", got)
	}
}

func equalV2(a, b *affinity.WebhookV2) bool {
	if a == nil || b == nil {
		return a == b
	}
	sameCreator := (a.Creator == nil) == (b.Creator == nil) && (a.Creator == nil || *a.Creator == *b.Creator)
	sameUpdated := (a.UpdatedAt == nil) == (b.UpdatedAt == nil) && (a.UpdatedAt == nil || a.UpdatedAt.Equal(*b.UpdatedAt))
	return a.ID == b.ID && a.URL == b.URL && slices.Equal(a.Subscriptions, b.Subscriptions) && a.Status == b.Status &&
		sameCreator && a.CreatedAt.Equal(b.CreatedAt) && sameUpdated
}

func TestWebhooksV2ListOnePage(t *testing.T) {
	s := newV2Server(t)
	s.mux.HandleFunc("GET /v2/webhooks", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, `{"data":[`+v2WebhookJSON+`],"pagination":{"nextUrl":"https://api.affinity.co/v2/webhooks?cursor=YWZ0ZXI6Nw&limit=1","prevUrl":null,"totalCount":3}}`)
	})
	v2 := s.client(t).WebhooksV2()
	page, resp, err := v2.List(context.Background(), &affinity.WebhookV2ListOptions{Limit: 1, Cursor: "abc", Filter: "id=7|id=8", TotalCount: true})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.ParseQuery(s.last().Query)
	if q.Get("limit") != "1" || q.Get("cursor") != "abc" || q.Get("filter") != "id=7|id=8" || q.Get("totalCount") != "true" || s.last().Auth != "Bearer "+v2Key {
		t.Errorf("list sent %+v", s.last())
	}
	if resp.StatusCode != 200 || len(page.Data) != 1 || page.Data[0].ID != 7 || page.NextCursor() != "YWZ0ZXI6Nw" || page.PrevCursor() != "" ||
		page.Pagination.PrevURL != "" || page.Pagination.TotalCount == nil || *page.Pagination.TotalCount != 3 {
		t.Errorf("page = %+v", page)
	}
	// No options: no query at all.
	if _, _, err := v2.List(context.Background(), nil); err != nil || s.last().Query != "" {
		t.Errorf("list(nil) sent %q: %v", s.last().Query, err)
	}
}

func TestWebhooksV2ListAllFollowsNextURLOnTheBaseURL(t *testing.T) {
	s := newV2Server(t)
	pages := map[string]string{
		"":     `{"data":[{"id":1,"url":"https://a.example/1","subscriptions":[],"status":"active","creator":null,"createdAt":"2026-01-01T00:00:00Z","updatedAt":null}],` + `"pagination":{"nextUrl":"https://elsewhere.example/v2/webhooks?cursor=c2&limit=1","prevUrl":null}}`,
		"c2":   `{"data":[{"id":2,"url":"https://a.example/2","subscriptions":[],"status":"active","creator":null,"createdAt":"2026-01-01T00:00:00Z","updatedAt":null}],` + `"pagination":{"nextUrl":"https://elsewhere.example/v2/webhooks?cursor=c3&limit=1","prevUrl":"x"}}`,
		"c3":   `{"data":[{"id":3,"url":"https://a.example/3","subscriptions":[],"status":"disabled","creator":{"id":1},"createdAt":"2026-01-01T00:00:00Z","updatedAt":null}],` + `"pagination":{"nextUrl":null,"prevUrl":"x"}}`,
		"loop": `{"data":[],"pagination":{"nextUrl":"https://api.affinity.co/v2/webhooks?cursor=loop","prevUrl":null}}`,
	}
	s.mux.HandleFunc("GET /v2/webhooks", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, pages[r.URL.Query().Get("cursor")])
	})
	v2 := s.client(t).WebhooksV2()
	ctx := context.Background()

	var ids []int64
	for wh, err := range v2.ListAll(ctx, &affinity.WebhookV2ListOptions{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, wh.ID)
	}
	reqs := s.requests()
	if !slices.Equal(ids, []int64{1, 2, 3}) || len(reqs) != 3 {
		t.Fatalf("ids %v after %d requests", ids, len(reqs))
	}
	// Every page went to the test server (the base URL), never to the host
	// nextUrl names, with nextUrl's query.
	for i, want := range []string{"limit=1", "cursor=c2&limit=1", "cursor=c3&limit=1"} {
		if reqs[i].Query != want || reqs[i].Auth != "Bearer "+v2Key {
			t.Errorf("page %d: query %q auth %q, want %q", i, reqs[i].Query, reqs[i].Auth, want)
		}
	}

	// Stopping early requests no further page.
	before := len(s.requests())
	for range v2.ListAll(ctx, nil) {
		break
	}
	if n := len(s.requests()) - before; n != 1 {
		t.Errorf("break after the first item made %d requests, want 1", n)
	}

	// A nextUrl that repeats a page ends the sequence with an error.
	var lastErr error
	n := 0
	for _, err := range v2.ListAll(ctx, &affinity.WebhookV2ListOptions{Cursor: "loop"}) {
		lastErr = err
		n++
	}
	if n != 1 || !errors.Is(lastErr, affinity.ErrUnexpectedResponse) {
		t.Errorf("loop: %d yields, last error %v", n, lastErr)
	}
}

func TestWebhooksV2ErrorsMatchSentinels(t *testing.T) {
	all := []error{affinity.ErrValidation, affinity.ErrNotFound, affinity.ErrUnauthorized, affinity.ErrForbidden,
		affinity.ErrRateLimited, affinity.ErrServer, affinity.ErrTestDeliveryFailed, affinity.ErrWebhookURLInUse, affinity.ErrSubscriptionLimit}
	for _, tc := range []struct {
		name       string
		create     bool // the call is Create (else Get)
		status     int
		body       string
		matches    []error
		code       string
		param      string
		errContain string
	}{
		{"test delivery failed", true, 400, `{"errors":[{"code":"validation","message":"The test delivery to url failed: it answered 500","param":"url"}]}`,
			[]error{affinity.ErrValidation, affinity.ErrTestDeliveryFailed}, "validation", "url", "400 Bad Request: validation error on url: The test delivery to url failed: it answered 500"},
		{"test delivery timed out (exceeded is not the limit)", true, 400, `{"errors":[{"code":"validation","message":"webhook test delivery exceeded 5s","param":"url"}]}`,
			[]error{affinity.ErrValidation, affinity.ErrTestDeliveryFailed}, "validation", "url", "validation error on url"},
		{"url in use", true, 400, `{"errors":[{"code":"validation","message":"url is already used by another webhook","param":"url"}]}`,
			[]error{affinity.ErrValidation, affinity.ErrWebhookURLInUse}, "validation", "url", "already used"},
		{"other validation", true, 400, `{"errors":[{"code":"validation","message":"bad type","param":"subscriptions"}]}`,
			[]error{affinity.ErrValidation}, "validation", "subscriptions", "validation error on subscriptions: bad type"},
		{"limit on create", true, 400, `{"errors":[{"code":"bad-request","message":"Organization webhook quota reached"}]}`,
			[]error{affinity.ErrValidation, affinity.ErrSubscriptionLimit}, "bad-request", "", "bad-request: Organization"},
		{"paramless bad request on get is not the limit", false, 400, `{"errors":[{"code":"bad-request","message":"Organization quota reached"}]}`,
			[]error{affinity.ErrValidation}, "bad-request", "", ""},
		{"not found", false, 404, `{"errors":[{"code":"not-found","message":"Webhook not found"}]}`,
			[]error{affinity.ErrNotFound}, "not-found", "", "404 Not Found: not-found: Webhook not found"},
		{"authentication", false, 401, `{"errors":[{"code":"authentication","message":"bad key ` + v2Key + `"}]}`,
			[]error{affinity.ErrUnauthorized}, "authentication", "", "[redacted]"},
		{"authorization", false, 403, `{"errors":[{"code":"authorization","message":"no"}]}`,
			[]error{affinity.ErrForbidden}, "authorization", "", ""},
		{"code wins over an odd status", false, 400, `{"errors":[{"code":"not-found","message":"gone"}]}`,
			[]error{affinity.ErrNotFound, affinity.ErrValidation}, "not-found", "", ""},
		{"not the v2 shape", false, 502, `<html>bad gateway</html>`,
			[]error{affinity.ErrServer}, "", "", "502 Bad Gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newV2Server(t)
			s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { answer(w, tc.status, tc.body) })
			v2 := s.client(t, affinity.WithMaxRetries(0)).WebhooksV2()
			var err error
			if tc.create {
				_, _, err = v2.Create(context.Background(), "https://hooks.example.com/x", nil)
			} else {
				_, _, err = v2.Get(context.Background(), 9)
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, sentinel := range all {
				if got, want := errors.Is(err, sentinel), slices.Contains(tc.matches, sentinel); got != want {
					t.Errorf("errors.Is(%v) = %v, want %v (err %v)", sentinel, got, want, err)
				}
			}
			v2e, ok := errors.AsType[*affinity.V2Error](err)
			if !ok || v2e.Code != tc.code || v2e.Param != tc.param || v2e.StatusCode != tc.status {
				t.Fatalf("V2Error = %+v (ok %v)", v2e, ok)
			}
			if apiErr, ok := errors.AsType[*affinity.APIError](err); !ok || apiErr.StatusCode != tc.status {
				t.Errorf("errors.As *APIError: %v %+v", ok, apiErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.errContain) || strings.Contains(msg, "\n") || strings.Contains(msg, v2Key) {
				t.Errorf("error text %q, want it to contain %q on one line without the key", msg, tc.errContain)
			}
		})
	}
}

func TestWebhooksV2RateLimitAndRetries(t *testing.T) {
	s := newV2Server(t)
	var mu sync.Mutex
	gets := 0
	s.mux.HandleFunc("GET /v2/webhooks/5", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gets++
		n := gets
		mu.Unlock()
		w.Header().Set("x-ratelimit-limit-user", "900")
		w.Header().Set("x-ratelimit-limit-user-remaining", "12")
		if n == 1 {
			w.Header().Set("Retry-After", "0")
			answer(w, 429, `{"errors":[{"code":"rate-limit","message":"slow down"}]}`)
			return
		}
		answer(w, 200, strings.Replace(v2WebhookJSON, `"id":7`, `"id":5`, 1))
	})
	s.mux.HandleFunc("POST /v2/webhooks", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 503, `{"errors":[{"code":"server","message":"try later"}]}`)
	})
	v2 := s.client(t).WebhooksV2()
	wh, resp, err := v2.Get(context.Background(), 5)
	if err != nil || wh.ID != 5 || gets != 2 {
		t.Fatalf("get after a 429: %v, %d requests", err, gets)
	}
	if rl := resp.RateLimits; !rl.Known || rl.UserLimit != 900 || rl.UserRemaining != 12 {
		t.Errorf("rate limits %+v", rl)
	}
	// Writes are sent once, whatever the answer.
	before := len(s.requests())
	_, _, err = v2.Create(context.Background(), "https://hooks.example.com/x", nil)
	if !errors.Is(err, affinity.ErrServer) || len(s.requests())-before != 1 {
		t.Errorf("create: %v after %d requests", err, len(s.requests())-before)
	}
}

func TestWebhooksV2RefusesBadInputBeforeSending(t *testing.T) {
	s := newV2Server(t)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { answer(w, 500, `{}`) })
	v2 := s.client(t).WebhooksV2()
	ctx := context.Background()
	bogus := affinity.WebhookV2Status("paused")
	u := "https://hooks.example.com/x"
	tooMany := make([]affinity.EventType, 101)
	for i := range tooMany {
		tooMany[i] = affinity.PersonCreated
	}
	for _, tc := range []struct {
		name  string
		isURL bool
		call  func() error
	}{
		{"empty url", true, func() error { _, _, err := v2.Create(ctx, "", nil); return err }},
		{"relative url", true, func() error { _, _, err := v2.Create(ctx, "/hooks/x", nil); return err }},
		{"plain http elsewhere", true, func() error { _, _, err := v2.Create(ctx, "http://hooks.example.com/x", nil); return err }},
		{"credentials", true, func() error { _, _, err := v2.Create(ctx, "https://user:pass@hooks.example.com/x", nil); return err }},
		{"user only", true, func() error { _, _, err := v2.Create(ctx, "https://user@hooks.example.com/x", nil); return err }},
		{"fragment", true, func() error { _, _, err := v2.Create(ctx, "https://hooks.example.com/x#frag", nil); return err }},
		{"trailing space", true, func() error { _, _, err := v2.Create(ctx, "https://hooks.example.com/x ", nil); return err }},
		{"ftp", true, func() error { _, _, err := v2.Create(ctx, "ftp://hooks.example.com/x", nil); return err }},
		{"update url", true, func() error {
			bad := "https://a:b@hooks.example.com"
			_, err := v2.Update(ctx, 1, &affinity.UpdateWebhookV2Request{URL: &bad})
			return err
		}},
		{"empty event type", false, func() error { _, _, err := v2.Create(ctx, u, []affinity.EventType{""}); return err }},
		{"101 event types", false, func() error { _, _, err := v2.Create(ctx, u, tooMany); return err }},
		{"bad status", false, func() error {
			_, err := v2.Update(ctx, 1, &affinity.UpdateWebhookV2Request{Status: &bogus})
			return err
		}},
		{"nothing to update", false, func() error { _, err := v2.Update(ctx, 1, &affinity.UpdateWebhookV2Request{}); return err }},
		{"nil update", false, func() error { _, err := v2.Update(ctx, 1, nil); return err }},
		{"zero id get", false, func() error { _, _, err := v2.Get(ctx, 0); return err }},
		{"negative id delete", false, func() error { _, err := v2.Delete(ctx, -1); return err }},
		{"limit 101", false, func() error {
			_, _, err := v2.List(ctx, &affinity.WebhookV2ListOptions{Limit: 101})
			return err
		}},
	} {
		err := tc.call()
		if !errors.Is(err, affinity.ErrInvalidRequest) || errors.Is(err, affinity.ErrValidation) {
			t.Errorf("%s: %v, want ErrInvalidRequest", tc.name, err)
		}
		if got := errors.Is(err, affinity.ErrInvalidWebhookURL); got != tc.isURL {
			t.Errorf("%s: errors.Is(ErrInvalidWebhookURL) = %v", tc.name, got)
		}
		if err != nil && strings.Contains(err.Error(), "pass@") {
			t.Errorf("%s: error quotes the URL: %v", tc.name, err)
		}
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
	// Loopback receivers may use plain http.
	for _, ok := range []string{"http://127.0.0.1:8080/hooks/x", "http://localhost/x", "http://[::1]:9/x", "https://hooks.example.com/x?a=b"} {
		if err := affinity.ValidateWebhookV2URL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// v2SimTarget is a webhook receiver on loopback answering with a settable
// status and recording the envelope types it got.
type v2SimTarget struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status int
	types  []string
}

func newV2SimTarget(t *testing.T, status int) *v2SimTarget {
	tg := &v2SimTarget{status: status}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			Type string `json:"type"`
		}
		json.NewDecoder(r.Body).Decode(&env)
		tg.mu.Lock()
		tg.types = append(tg.types, env.Type)
		status := tg.status
		tg.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *v2SimTarget) url(name string) string { return tg.srv.URL + "/hooks/affinity/" + name }

func (tg *v2SimTarget) probes() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	n := 0
	for _, t := range tg.types {
		if t == string(affinity.SampleWebhook) {
			n++
		}
	}
	return n
}

func (tg *v2SimTarget) setStatus(status int) {
	tg.mu.Lock()
	tg.status = status
	tg.mu.Unlock()
}

func TestWebhooksV2AgainstSimulator(t *testing.T) {
	clock := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	sim, err := affinitysim.New(affinitysim.Config{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	newClient := func(key string) *affinity.Client {
		c, err := affinity.NewClient(key, affinity.WithBaseURL(srv.URL), affinity.WithBackoff(time.Millisecond, 5*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	admin := newClient(affinitysim.DefaultAdminKey) // user 1, Basic for V1, Bearer for v2
	user := newClient(affinitysim.DefaultUserKey)   // user 2
	ok, failing := newV2SimTarget(t, 200), newV2SimTarget(t, 500)
	ctx := context.Background()

	// Create through v2: 201, probed first, visible through V1 as the same subscription.
	wh, resp, err := admin.WebhooksV2().Create(ctx, ok.url("one"), []affinity.EventType{affinity.PersonCreated, affinity.NoteCreated})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 201 || wh.ID <= 0 || wh.URL != ok.url("one") || wh.Status != affinity.WebhookV2Active ||
		wh.Creator == nil || wh.Creator.ID != 1 || !wh.CreatedAt.Equal(clock) || wh.UpdatedAt != nil ||
		!slices.Equal(wh.Subscriptions, []affinity.EventType{affinity.PersonCreated, affinity.NoteCreated}) {
		t.Fatalf("created %+v (status %d)", wh, resp.StatusCode)
	}
	if ok.probes() != 1 {
		t.Errorf("probes = %d, want 1", ok.probes())
	}
	if rl := resp.RateLimits; !rl.Known || rl.UserLimit != 900 {
		t.Errorf("rate limits %+v", rl)
	}
	v1, _, err := admin.Webhooks.Get(ctx, wh.ID)
	if err != nil || v1.WebhookURL != wh.URL || v1.Disabled || v1.CreatedBy != 1 || !slices.Equal(v1.Subscriptions, wh.Subscriptions) {
		t.Fatalf("V1 view %+v, %v", v1, err)
	}

	// Disable through v2: no probe; V1 sees disabled. Enable: probed.
	clock = clock.Add(time.Hour)
	if _, err := admin.WebhooksV2().Disable(ctx, wh.ID); err != nil {
		t.Fatal(err)
	}
	if v1, _, _ := admin.Webhooks.Get(ctx, wh.ID); !v1.Disabled || ok.probes() != 1 {
		t.Errorf("after v2 disable: V1 %+v, probes %d", v1, ok.probes())
	}
	got, _, err := admin.WebhooksV2().Get(ctx, wh.ID)
	if err != nil || got.Status != affinity.WebhookV2Disabled || got.UpdatedAt == nil || !got.UpdatedAt.Equal(clock) {
		t.Fatalf("after disable: %+v, %v", got, err)
	}
	// V1 enables it back: v2 shows it active.
	if _, _, err := admin.Webhooks.Enable(ctx, wh.ID); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := admin.WebhooksV2().Get(ctx, wh.ID); got.Status != affinity.WebhookV2Active || ok.probes() != 2 {
		t.Errorf("after V1 enable: %+v, probes %d", got, ok.probes())
	}

	// A URL whose test delivery fails: refused, nothing changes.
	bad := failing.url("two")
	_, err = admin.WebhooksV2().Update(ctx, wh.ID, &affinity.UpdateWebhookV2Request{URL: &bad})
	if !errors.Is(err, affinity.ErrTestDeliveryFailed) || !errors.Is(err, affinity.ErrValidation) {
		t.Fatalf("update to a failing URL: %v", err)
	}
	if v2e, _ := errors.AsType[*affinity.V2Error](err); v2e == nil || v2e.Param != "url" || v2e.Code != "validation" {
		t.Errorf("V2Error %+v", v2e)
	}
	if got, _, _ := admin.WebhooksV2().Get(ctx, wh.ID); got.URL != ok.url("one") {
		t.Errorf("URL changed to %s after a failed test delivery", got.URL)
	}
	if _, _, err := admin.WebhooksV2().Create(ctx, bad, nil); !errors.Is(err, affinity.ErrTestDeliveryFailed) {
		t.Errorf("create to a failing URL: %v", err)
	}

	// URLs are unique in the organization.
	if _, _, err := user.WebhooksV2().Create(ctx, ok.url("one"), nil); !errors.Is(err, affinity.ErrWebhookURLInUse) || errors.Is(err, affinity.ErrTestDeliveryFailed) {
		t.Errorf("duplicate URL: %v", err)
	}

	// The user's own webhook, created through V1; each user sees only their own through v2, the admin every one.
	failing.setStatus(200)
	mine, _, err := user.Webhooks.Create(ctx, &affinity.CreateWebhookRequest{WebhookURL: failing.url("user")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := user.WebhooksV2().Get(ctx, wh.ID); !errors.Is(err, affinity.ErrNotFound) {
		t.Errorf("user reads the admin's webhook: %v", err)
	}
	if _, err := user.WebhooksV2().Delete(ctx, wh.ID); !errors.Is(err, affinity.ErrNotFound) {
		t.Errorf("user deletes the admin's webhook: %v", err)
	}
	userPage, _, err := user.WebhooksV2().List(ctx, nil)
	if err != nil || len(userPage.Data) != 1 || userPage.Data[0].ID != mine.ID || !userPage.Data[0].AllEvents() || userPage.Data[0].Creator.ID != 2 {
		t.Fatalf("user's list %+v, %v", userPage, err)
	}

	// The third subscription fills the instance for both APIs.
	third, _, err := admin.WebhooksV2().Create(ctx, ok.url("three"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = admin.WebhooksV2().Create(ctx, ok.url("four"), nil)
	if !errors.Is(err, affinity.ErrSubscriptionLimit) {
		t.Errorf("fourth through v2: %v", err)
	}
	if _, _, err := admin.Webhooks.Create(ctx, &affinity.CreateWebhookRequest{WebhookURL: ok.url("four")}); !errors.Is(err, affinity.ErrSubscriptionLimit) {
		t.Errorf("fourth through V1: %v", err)
	}

	// ListAll pages one at a time, in id order.
	var ids []int64
	for w, err := range admin.WebhooksV2().ListAll(ctx, &affinity.WebhookV2ListOptions{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, w.ID)
	}
	if !slices.Equal(ids, []int64{wh.ID, mine.ID, third.ID}) {
		t.Errorf("ListAll ids %v", ids)
	}

	// Delete through v2: gone from V1 too.
	if resp, err := admin.WebhooksV2().Delete(ctx, third.ID); err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete: %v", err)
	}
	if _, _, err := admin.Webhooks.Get(ctx, third.ID); !errors.Is(err, affinity.ErrNotFound) {
		t.Errorf("V1 get after v2 delete: %v", err)
	}
	if _, _, err := admin.WebhooksV2().Get(ctx, third.ID); !errors.Is(err, affinity.ErrNotFound) {
		t.Errorf("v2 get after delete: %v", err)
	}
}
