package attio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

const recordCreated = `{"webhook_id":"wh1","events":[{"event_type":"record.created","id":{"workspace_id":"w","object_id":"o","record_id":"r1"},"actor":{"type":"api-token","id":"t"}}]}`

// signedRequest is what Attio POSTs: the body signed with secret.
func signedRequest(body, secret string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/attio", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	SignRequestHeaders(r.Header, []byte(body), secret)
	return r
}

func TestParseRequest(t *testing.T) {
	d, err := ParseRequest(signedRequest(recordCreated, otherSecret), []string{testSecret, otherSecret})
	if err != nil || d.WebhookID != "wh1" || len(d.Events) != 1 || d.Events[0].Type != RecordCreated {
		t.Fatalf("valid request: %+v %v", d, err)
	}
	charset := signedRequest(recordCreated, testSecret)
	charset.Header.Set("Content-Type", "Application/JSON; charset=utf-8")
	if _, err := ParseRequest(charset, []string{testSecret}); err != nil {
		t.Errorf("content type with charset: %v", err)
	}

	big := `{"webhook_id":"wh1","pad":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `","events":[]}`
	cases := []struct {
		name   string
		req    func() *http.Request
		want   error
		others []error // sentinels it must not match
	}{
		{"GET", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) }, ErrMethodNotAllowed, nil},
		{"PUT", func() *http.Request {
			r := signedRequest(recordCreated, testSecret)
			r.Method = http.MethodPut
			return r
		}, ErrMethodNotAllowed, nil},
		{"no content type", func() *http.Request {
			r := signedRequest(recordCreated, testSecret)
			r.Header.Del("Content-Type")
			return r
		}, ErrUnsupportedMediaType, nil},
		{"form", func() *http.Request {
			r := signedRequest(recordCreated, testSecret)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, ErrUnsupportedMediaType, nil},
		{"json suffix type", func() *http.Request {
			r := signedRequest(recordCreated, testSecret)
			r.Header.Set("Content-Type", "application/problem+json")
			return r
		}, ErrUnsupportedMediaType, nil},
		{"over 1 MiB", func() *http.Request { return signedRequest(big, testSecret) }, ErrBodyTooLarge, []error{ErrVerification, ErrParse}},
		{"unreadable body", func() *http.Request {
			r := signedRequest(recordCreated, testSecret)
			r.Body = io.NopCloser(iotest.ErrReader(io.ErrUnexpectedEOF))
			return r
		}, ErrReadBody, nil},
		{"unsigned", func() *http.Request {
			r := signedRequest(recordCreated, testSecret)
			r.Header.Del(HeaderSignature)
			r.Header.Del(HeaderSignatureLegacy)
			return r
		}, ErrNotSigned, []error{ErrParse}},
		{"wrong secret", func() *http.Request { return signedRequest(recordCreated, "not-the-secret") }, ErrBadSignature, []error{ErrParse}},
		{"signed but not a delivery", func() *http.Request { return signedRequest(`{"webhook_id":"wh1","events":[]}`, testSecret) }, ErrParse, []error{ErrVerification}},
		{"signed but case-variant key", func() *http.Request {
			return signedRequest(strings.Replace(recordCreated, `"actor"`, `"Event_Type":"x","actor"`, 1), testSecret)
		}, ErrInvalidPayload, []error{ErrVerification}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseRequest(tc.req(), []string{testSecret})
			if !errors.Is(err, tc.want) || d != nil {
				t.Fatalf("got %+v, %v; want %v", d, err, tc.want)
			}
			for _, o := range tc.others {
				if errors.Is(err, o) {
					t.Errorf("%v also matches %v", err, o)
				}
			}
		})
	}

	// The request sentinels are distinct.
	sentinels := []error{ErrMethodNotAllowed, ErrUnsupportedMediaType, ErrBodyTooLarge, ErrReadBody, ErrVerification, ErrParse}
	for i, a := range sentinels {
		for j, b := range sentinels {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v matches %v", a, b)
			}
		}
	}

	// Authentic but outside the window: the delivery comes back with the error.
	now := time.Unix(1700000000, 0)
	stale := signedRequest(recordCreated, testSecret)
	stale.Header.Set(HeaderSignature, SignWithTimestamp([]byte(recordCreated), testSecret, now.Add(-time.Hour)))
	stale.Header.Del(HeaderSignatureLegacy)
	stale.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Add(-time.Hour).Unix(), 10))
	d, err = ParseRequest(stale, []string{testSecret}, WithNow(func() time.Time { return now }))
	if !errors.Is(err, ErrTooOld) || d == nil || d.WebhookID != "wh1" {
		t.Errorf("stale: %+v %v", d, err)
	}
	// A smaller body limit.
	if _, err := ParseRequest(signedRequest(recordCreated, testSecret), []string{testSecret}, WithMaxBodyBytes(16)); !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("16-byte limit: %v", err)
	}
	// Configuration errors.
	if _, err := ParseRequest(signedRequest(recordCreated, testSecret), nil); !errors.Is(err, ErrNoSecrets) {
		t.Errorf("no secrets: %v", err)
	}
	if _, err := ParseRequest(signedRequest(recordCreated, testSecret), []string{testSecret}, WithTolerance(0)); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("zero tolerance: %v", err)
	}
}

func TestHandlerAnswers(t *testing.T) {
	var handled []string
	router := NewRouter()
	On(router, RecordCreated, func(ctx context.Context, ev *Event, rec RecordEvent) error {
		handled = append(handled, rec.ID.RecordID)
		if rec.ID.RecordID == "fail" {
			return errors.New("database down")
		}
		return nil
	})
	var reported []int
	hook := WithErrorHook(func(r *http.Request, status int, err error) {
		if status == http.StatusOK && !errors.Is(err, ErrNoHandler) {
			t.Errorf("200 reported with %v", err)
		}
		reported = append(reported, status)
	})
	h, err := NewHandler([]string{testSecret}, router, nil, hook)
	if err != nil {
		t.Fatal(err)
	}

	withRecord := func(id string) string { return strings.Replace(recordCreated, `"r1"`, `"`+id+`"`, 1) }
	twoEvents := `{"webhook_id":"wh1","events":[` +
		`{"event_type":"task.created","id":{"workspace_id":"w","task_id":"t1"}},` +
		`{"event_type":"record.created","id":{"workspace_id":"w","object_id":"o","record_id":"r2"}}]}`
	cases := []struct {
		name    string
		req     func() *http.Request
		status  int
		handled string
	}{
		{"delivered", func() *http.Request { return signedRequest(recordCreated, testSecret) }, 200, "r1"},
		{"no handler for a type is skipped", func() *http.Request { return signedRequest(twoEvents, testSecret) }, 200, "r2"},
		{"handler error", func() *http.Request { return signedRequest(withRecord("fail"), testSecret) }, 500, "fail"},
		{"event does not decode", func() *http.Request {
			return signedRequest(`{"webhook_id":"wh1","events":[{"event_type":"record.created","id":{"workspace_id":"w"}}]}`, testSecret)
		}, 400, ""},
		{"GET", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/hooks/attio", nil) }, 405, ""},
		{"text/plain", func() *http.Request {
			r := signedRequest(recordCreated, testSecret)
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, 415, ""},
		{"too large", func() *http.Request {
			return signedRequest(`{"pad":"`+strings.Repeat("x", DefaultMaxBodyBytes)+`"}`, testSecret)
		}, 413, ""},
		{"missing signature", func() *http.Request {
			r := signedRequest(recordCreated, testSecret)
			r.Header.Del(HeaderSignature)
			r.Header.Del(HeaderSignatureLegacy)
			return r
		}, 401, ""},
		{"bad signature", func() *http.Request { return signedRequest(recordCreated, otherSecret) }, 401, ""},
		{"bad payload", func() *http.Request { return signedRequest(`{"webhook_id":"wh1"}`, testSecret) }, 400, ""},
		{"stale timestamp", func() *http.Request {
			old := time.Now().Add(-time.Hour)
			r := signedRequest(recordCreated, testSecret)
			r.Header.Set(HeaderSignature, SignWithTimestamp([]byte(recordCreated), testSecret, old))
			r.Header.Del(HeaderSignatureLegacy)
			r.Header.Set(HeaderTimestamp, strconv.FormatInt(old.Unix(), 10))
			return r
		}, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			handled, reported = nil, nil
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tc.req())
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d (body %s)", w.Code, tc.status, w.Body)
			}
			if strings.Join(handled, ",") != tc.handled {
				t.Errorf("handled %v, want %q", handled, tc.handled)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.status == 200 {
				// A skipped event is reported with 200 and ErrNoHandler.
				skipped := strings.Count(tc.name, "skipped")
				if strings.TrimSpace(w.Body.String()) != `{"ok":true}` || len(reported) != skipped {
					t.Errorf("body %s, reported %v", w.Body, reported)
				}
				return
			}
			if len(reported) != 1 || reported[0] != tc.status {
				t.Errorf("OnError saw %v", reported)
			}
			if strings.Contains(w.Body.String(), "database") || strings.Contains(w.Body.String(), "api-token") || !strings.Contains(w.Body.String(), `"ok":false`) {
				t.Errorf("error body %s", w.Body)
			}
			if got := w.Header().Get("Allow"); (tc.status == 405) != (got == "POST") {
				t.Errorf("Allow %q for %d", got, tc.status)
			}
		})
	}

	// Over a real connection too.
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", bytes.NewReader([]byte(recordCreated)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("unsigned POST over HTTP: %d", resp.StatusCode)
	}
}

func TestNewHandlerRefusesBadConfiguration(t *testing.T) {
	if _, err := NewHandler(nil, NewRouter()); !errors.Is(err, ErrNoSecrets) {
		t.Errorf("no secrets: %v", err)
	}
	if _, err := NewHandler([]string{testSecret, ""}, NewRouter()); !errors.Is(err, ErrNoSecrets) {
		t.Errorf("empty secret: %v", err)
	}
	if _, err := NewHandler([]string{testSecret}, nil); !errors.Is(err, ErrInvalidOption) || !strings.HasPrefix(err.Error(), "attio: ") {
		t.Errorf("nil router: %v", err)
	}
	if _, err := NewHandler([]string{testSecret}, NewRouter(), WithVerifyOptions(WithMaxAge(-time.Second))); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("negative max age: %v", err)
	}
	if _, err := NewHandler([]string{testSecret}, NewRouter(), WithVerifyOptions(WithMaxBodyBytes(0))); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("zero body limit: %v", err)
	}
	// Verify options reach the handler: a smaller body limit, no window.
	h, err := NewHandler([]string{testSecret}, NewRouter(), WithVerifyOptions(WithMaxBodyBytes(64), WithoutTolerance()))
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, signedRequest(recordCreated, testSecret))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("64-byte limit: status %d", w.Code)
	}
	h, _ = NewHandler([]string{testSecret}, NewRouter(), WithVerifyOptions(WithoutTolerance()))
	old := time.Unix(1000, 0)
	stale := signedRequest(recordCreated, testSecret)
	stale.Header.Set(HeaderSignature, SignWithTimestamp([]byte(recordCreated), testSecret, old))
	stale.Header.Del(HeaderSignatureLegacy)
	stale.Header.Set(HeaderTimestamp, strconv.FormatInt(old.Unix(), 10))
	w = httptest.NewRecorder()
	h.ServeHTTP(w, stale)
	if w.Code != http.StatusOK {
		t.Errorf("WithoutTolerance, old timestamp: status %d", w.Code)
	}

	// The handler keeps its own copy of the secrets.
	secrets := []string{testSecret}
	h, err = NewHandler(secrets, NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	secrets[0] = "changed"
	w = httptest.NewRecorder()
	h.ServeHTTP(w, signedRequest(recordCreated, testSecret))
	if w.Code != 200 {
		t.Errorf("status %d after the caller's slice changed", w.Code)
	}
}
