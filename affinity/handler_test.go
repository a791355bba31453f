package affinity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testPathSecret = "0123456789abcdef-long-random-secret"
	testOldSecret  = "previous-secret-kept-during-rotation"
)

// hookLog records what WithErrorHook reports.
type hookLog struct {
	mu   sync.Mutex
	got  []int
	errs []error
}

func (l *hookLog) hook(r *http.Request, status int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, status)
	l.errs = append(l.errs, err)
}

func (l *hookLog) last() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.got) == 0 {
		return 0, nil
	}
	return l.got[len(l.got)-1], l.errs[len(l.errs)-1]
}

// testHandler is a Handler with a person.created handler, a failing
// note.created handler and no fallback; calls counts what reached handlers.
func testHandler(t *testing.T, opts ...HandlerOption) (*Handler, *hookLog, *[]EventType) {
	t.Helper()
	r := NewRouter()
	var mu sync.Mutex
	calls := &[]EventType{}
	record := func(ev *Event) {
		mu.Lock()
		*calls = append(*calls, ev.Type)
		mu.Unlock()
	}
	On(r, PersonCreated, func(ctx context.Context, ev *Event, p Person) error { record(ev); return nil })
	On(r, NoteCreated, func(ctx context.Context, ev *Event, n Note) error {
		record(ev)
		return errors.New("database down: jane.doe@example.com")
	})
	log := &hookLog{}
	h, err := NewHandler(r, append([]HandlerOption{
		WithPathSecret(testPathSecret, testOldSecret),
		WithParseOptions(parseAtNow()),
		WithErrorHook(log.hook),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return h, log, calls
}

type answer struct {
	status int
	header http.Header
	body   string
}

func serve(h http.Handler, method, path, contentType string, body []byte) answer {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return answer{w.Code, w.Header(), w.Body.String()}
}

func TestHandlerAnswers(t *testing.T) {
	path := "/hooks/affinity/" + testPathSecret
	env := func(typ EventType, body string, at time.Time) []byte {
		return NewEnvelope(typ, json.RawMessage(body), at)
	}
	person := env(PersonCreated, string(SampleBody(PersonCreated)), parseNow)
	cases := []struct {
		name        string
		method      string
		path        string
		ctype       string
		body        []byte
		status      int
		bodyHas     string    // the answer contains this
		hookStatus  int       // 0: the hook must not run
		hookErr     error     // what the hook's error matches
		wantHandled EventType // the handler that must have run, if any
	}{
		{name: "accepted", body: person, status: 200, bodyHas: `{"ok":true}`, wantHandled: PersonCreated},
		{name: "old secret during rotation", path: "/hooks/affinity/" + testOldSecret, body: person, status: 200, wantHandled: PersonCreated},
		{name: "accepted with charset", ctype: "application/json; charset=utf-8", body: person, status: 200, wantHandled: PersonCreated},
		{name: "reordered keys", body: []byte(`{"sent_at":1700000000,"type":"person.created","body":{"id":1}}`), status: 200, wantHandled: PersonCreated},
		{name: "wrong secret", path: "/hooks/affinity/guess", body: person, status: 404, hookStatus: 404, hookErr: ErrPathSecret},
		{name: "secret as a prefix", path: "/hooks/affinity/" + testPathSecret + "x", body: person, status: 404, hookStatus: 404, hookErr: ErrPathSecret},
		{name: "secret not last", path: "/hooks/affinity/" + testPathSecret + "/x", body: person, status: 404, hookStatus: 404, hookErr: ErrPathSecret},
		{name: "trailing slash", path: path + "/", body: person, status: 404, hookStatus: 404, hookErr: ErrPathSecret},
		{name: "no secret", path: "/hooks/affinity/", body: person, status: 404, hookStatus: 404, hookErr: ErrPathSecret},
		{name: "wrong secret beats wrong method", method: http.MethodGet, path: "/x", status: 404, hookStatus: 404, hookErr: ErrPathSecret},
		{name: "GET", method: http.MethodGet, status: 405, hookStatus: 405, hookErr: ErrMethodNotAllowed},
		{name: "PUT", method: http.MethodPut, body: person, status: 405, hookStatus: 405, hookErr: ErrMethodNotAllowed},
		{name: "form", ctype: "application/x-www-form-urlencoded", body: person, status: 415, hookStatus: 415, hookErr: ErrUnsupportedMediaType},
		{name: "no content type", ctype: "-", body: person, status: 415, hookStatus: 415, hookErr: ErrUnsupportedMediaType},
		{name: "too large", body: bytes.Repeat([]byte(" "), DefaultMaxBodyBytes+1), status: 413, hookStatus: 413, hookErr: ErrBodyTooLarge},
		{name: "not JSON", body: []byte(`{"type":`), status: 400, bodyHas: "invalid JSON", hookStatus: 400, hookErr: ErrInvalidJSON},
		{name: "missing key", body: []byte(`{"type":"person.created","sent_at":1700000000}`), status: 400, bodyHas: `missing key \"body\"`, hookStatus: 400, hookErr: ErrMissingKey},
		{name: "case variant", body: []byte(`{"type":"person.created","body":{},"sent_at":1700000000,"Type":"note.created"}`), status: 400,
			bodyHas: `key \"Type\" differs`, hookStatus: 400, hookErr: ErrInvalidPayload},
		{name: "too old", body: env(PersonCreated, `{"id":1}`, parseNow.Add(-13*time.Hour)), status: 400, bodyHas: "too old", hookStatus: 400, hookErr: ErrTooOld},
		{name: "too new", body: env(PersonCreated, `{"id":1}`, parseNow.Add(time.Hour)), status: 400, bodyHas: "future", hookStatus: 400, hookErr: ErrTooNew},
		{name: "body does not decode", body: env(PersonCreated, `{"id":"jane.doe@example.com"}`, parseNow), status: 400, hookStatus: 400, hookErr: ErrInvalidPayload},
		{name: "probe", body: env(SampleWebhook, `{"test":true}`, parseNow), status: 200, bodyHas: `{"ok":true}`},
		{name: "probe, reordered", body: []byte(`{"sent_at":1700000000,"body":{"test":true},"type":"sample.webhook"}`), status: 200},
		{name: "probe, stale", body: env(SampleWebhook, `{"test":true}`, parseNow.Add(-48*time.Hour)), status: 200},
		{name: "handler fails", body: env(NoteCreated, string(SampleBody(NoteCreated)), parseNow), status: 500, bodyHas: "handler failed",
			hookStatus: 500, wantHandled: NoteCreated},
		{name: "no handler", body: env(ListCreated, `{"id":1}`, parseNow), status: 200, bodyHas: `{"ok":true}`, hookStatus: 200, hookErr: ErrNoHandler},
		{name: "unknown type, no handler", body: env("deal.closed", `[1]`, parseNow), status: 200, hookStatus: 200, hookErr: ErrNoHandler},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, log, calls := testHandler(t)
			method, p, ctype := c.method, c.path, c.ctype
			if method == "" {
				method = http.MethodPost
			}
			if p == "" {
				p = path
			}
			switch ctype {
			case "":
				ctype = "application/json"
			case "-":
				ctype = ""
			}
			a := serve(h, method, p, ctype, c.body)
			if a.status != c.status || !strings.Contains(a.body, c.bodyHas) {
				t.Fatalf("answer %d %s, want %d with %s", a.status, a.body, c.status, c.bodyHas)
			}
			switch {
			case c.status == 404:
				if a.body != "" {
					t.Errorf("404 with a body: %q", a.body)
				}
			case c.status == 405:
				if a.header.Get("Allow") != http.MethodPost {
					t.Errorf("405 without Allow: POST: %v", a.header)
				}
				fallthrough
			default:
				var out struct {
					OK    *bool  `json:"ok"`
					Error string `json:"error"`
				}
				if a.header.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(a.body), &out) != nil || out.OK == nil || *out.OK != (c.status == 200) {
					t.Errorf("answer %s (%s) is not {\"ok\":…}", a.body, a.header.Get("Content-Type"))
				}
			}
			if strings.Contains(a.body, "jane.doe@example.com") {
				t.Errorf("the answer leaks a value: %s", a.body)
			}
			status, err := log.last()
			if status != c.hookStatus || (c.hookErr != nil && !errors.Is(err, c.hookErr)) {
				t.Errorf("hook got %d %v, want %d %v", status, err, c.hookStatus, c.hookErr)
			}
			if c.wantHandled == "" && len(*calls) > 0 || c.wantHandled != "" && (len(*calls) != 1 || (*calls)[0] != c.wantHandled) {
				t.Errorf("handlers ran for %v, want %q", *calls, c.wantHandled)
			}
		})
	}
}

// The probe is answered without reaching the fallback or any real handler,
// whatever its age; a stale real event reaches the hook as a *StaleError
// that carries it.
func TestHandlerProbeAndStaleEvents(t *testing.T) {
	r := NewRouter()
	var fellBack []EventType
	r.Fallback(func(ctx context.Context, ev *Event) error { fellBack = append(fellBack, ev.Type); return nil })
	var kept []*Event
	h, err := NewHandler(r, WithParseOptions(parseAtNow()), WithErrorHook(func(_ *http.Request, status int, err error) {
		var stale *StaleError
		if errors.As(err, &stale) {
			kept = append(kept, stale.Event)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	// No WithPathSecret: any path is accepted.
	for _, at := range []time.Time{parseNow, parseNow.Add(-100 * time.Hour), parseNow.Add(time.Hour)} {
		if a := serve(h, http.MethodPost, "/anything", "application/json", NewEnvelope(SampleWebhook, SampleBody(SampleWebhook), at)); a.status != 200 {
			t.Errorf("probe sent at %s: %d %s", at, a.status, a.body)
		}
	}
	if len(fellBack) != 0 || len(kept) != 0 {
		t.Errorf("probe reached the fallback %v or the hook %v", fellBack, kept)
	}
	stale := NewEnvelope(ReminderCreated, SampleBody(ReminderCreated), parseNow.Add(-13*time.Hour))
	if a := serve(h, http.MethodPost, "/", "application/json", stale); a.status != 400 {
		t.Errorf("stale: %d", a.status)
	}
	if len(kept) != 1 || kept[0].Type != ReminderCreated || !bytes.Equal(kept[0].Raw, stale) || len(fellBack) != 0 {
		t.Errorf("kept %v, fell back %v", kept, fellBack)
	}
	// The window is the handler's parse options': off means off.
	h2, err := NewHandler(r, WithParseOptions(parseAtNow(), WithoutMaxAge()))
	if err != nil {
		t.Fatal(err)
	}
	if a := serve(h2, http.MethodPost, "/", "application/json", stale); a.status != 200 || len(fellBack) != 1 {
		t.Errorf("window off: %d, fallback %v", a.status, fellBack)
	}
}

func TestNewHandlerRefusesBadConfiguration(t *testing.T) {
	r := NewRouter()
	cases := map[string]struct {
		router *Router
		opts   []HandlerOption
	}{
		"nil router":          {nil, nil},
		"no secrets":          {r, []HandlerOption{WithPathSecret()}},
		"empty secret":        {r, []HandlerOption{WithPathSecret("good-secret", "")}},
		"secret with slash":   {r, []HandlerOption{WithPathSecret("a/b")}},
		"zero max age":        {r, []HandlerOption{WithParseOptions(WithMaxAge(0))}},
		"negative skew":       {r, []HandlerOption{WithParseOptions(WithMaxFutureSkew(-time.Second))}},
		"zero body limit":     {r, []HandlerOption{WithParseOptions(WithMaxBodyBytes(0))}},
		"bad option kept":     {r, []HandlerOption{WithParseOptions(WithMaxAge(-1)), WithParseOptions(WithMaxAge(time.Hour))}},
		"bad secret later":    {r, []HandlerOption{WithPathSecret("ok-secret"), WithPathSecret("")}},
		"nil options ignored": {r, []HandlerOption{nil, WithParseOptions(nil), WithPathSecret("/")}},
	}
	for name, c := range cases {
		h, err := NewHandler(c.router, c.opts...)
		if h != nil || !errors.Is(err, ErrInvalidOption) || errors.Is(err, ErrParse) || !strings.HasPrefix(err.Error(), "affinity: ") {
			t.Errorf("%s: %v %v", name, h, err)
		}
	}
	if _, err := NewHandler(r, nil, WithParseOptions(nil, WithNow(nil))); err != nil {
		t.Errorf("nil options: %v", err)
	}
}

// Over a real connection: a body larger than the limit, with no declared
// length, is cut off by http.MaxBytesReader and answered 413; a limit set
// with WithMaxBodyBytes applies.
func TestHandlerBodyLimitOverHTTP(t *testing.T) {
	var called bool
	r := NewRouter()
	r.Fallback(func(ctx context.Context, ev *Event) error { called = true; return nil })
	h, err := NewHandler(r, WithPathSecret(testPathSecret), WithParseOptions(WithMaxBodyBytes(256), WithoutMaxAge()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(body []byte) int {
		t.Helper()
		// io.MultiReader hides the length: the request is chunked.
		resp, err := http.Post(srv.URL+"/hooks/affinity/"+testPathSecret, "application/json", io.MultiReader(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	small := []byte(`{"type":"deal.closed","body":{},"sent_at":1}`)
	if got := post(small); got != 200 || !called {
		t.Errorf("small: %d", got)
	}
	large := []byte(`{"type":"deal.closed","body":"` + strings.Repeat("x", 300) + `","sent_at":1}`)
	if got := post(large); got != 413 {
		t.Errorf("large: %d", got)
	}
}

func TestHandlerPathSecretConstantTimeShape(t *testing.T) {
	h, _, _ := testHandler(t)
	// Digests are stored, never the secrets themselves.
	for _, d := range h.secrets {
		if bytes.Contains(d[:], []byte(testPathSecret)) {
			t.Fatal("secret stored in clear")
		}
	}
	if len(h.secrets) != 2 || !h.pathSecretOK("/x/"+testPathSecret) || !h.pathSecretOK(testOldSecret) || h.pathSecretOK("") || h.pathSecretOK("/") {
		t.Error("pathSecretOK")
	}
}
