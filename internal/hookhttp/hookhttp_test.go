package hookhttp

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func post(body, contentType string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

func kindOf(t *testing.T, err error) Kind {
	t.Helper()
	var re *RequestError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *RequestError", err)
	}
	return re.Kind
}

func TestReadRequest(t *testing.T) {
	body, err := ReadRequest(post(`{"a":1}`, "Application/JSON; charset=utf-8"), Check{Limit: 16})
	if err != nil || string(body) != `{"a":1}` {
		t.Fatalf("ReadRequest = %q, %v", body, err)
	}

	get := httptest.NewRequest(http.MethodGet, "/hook", nil)
	if _, err := ReadRequest(get, Check{Limit: 16}); kindOf(t, err) != MethodNotAllowed {
		t.Errorf("GET: %v", err)
	}
	for _, ct := range []string{"", "text/plain", "application/jsonx", "application/json; charset"} {
		if _, err := ReadRequest(post("{}", ct), Check{Limit: 16}); kindOf(t, err) != UnsupportedMediaType {
			t.Errorf("Content-Type %q: %v", ct, err)
		}
	}
	if _, err := ReadRequest(post("{}", "application/json; charset"), Check{Limit: 16, LenientParams: true}); err != nil {
		t.Errorf("lenient malformed parameter: %v", err)
	}

	_, err = ReadRequest(post(strings.Repeat("x", 17), "application/json"), Check{Limit: 16})
	if kindOf(t, err) != BodyTooLarge || err.Error() != "request body too large: the limit is 16 bytes" {
		t.Errorf("too large: %v", err)
	}

	// CheckLength refuses on Content-Length alone, before reading.
	r := post("{}", "application/json")
	r.ContentLength = 100
	if _, err := ReadRequest(r, Check{Limit: 16, CheckLength: true}); kindOf(t, err) != BodyTooLarge {
		t.Errorf("CheckLength: %v", err)
	}
	r = post("{}", "application/json")
	r.ContentLength = 100
	if _, err := ReadRequest(r, Check{Limit: 16}); err != nil {
		t.Errorf("without CheckLength: %v", err)
	}

	r = post("", "application/json")
	r.Body = io.NopCloser(failingReader{})
	_, err = ReadRequest(r, Check{Limit: 16})
	if kindOf(t, err) != ReadBody || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("read failure: %v", err)
	}

	r = post("", "application/json")
	r.Body = nil
	if body, err := ReadRequest(r, Check{Limit: 16}); body != nil || err != nil {
		t.Errorf("nil body: %q, %v", body, err)
	}

	_, err = ReadRequest(nil, Check{Limit: 16})
	if kindOf(t, err) != ReadBody || err.Error() != "cannot read request body: nil request" {
		t.Errorf("nil request: %v", err)
	}
}

var (
	errMethod = errors.New("sdk: method")
	errMedia  = errors.New("sdk: media")
	errLarge  = errors.New("sdk: large")
	errRead   = errors.New("sdk: read")
	errOther  = errors.New("sdk: other")
)

func TestErrorsMapAndStatus(t *testing.T) {
	cause := errors.New("eof")
	for _, wrap := range []bool{false, true} {
		s := Errors{errMethod, errMedia, errLarge, errRead, wrap}
		cases := []struct {
			in     error
			want   error
			msg    string
			status int
		}{
			{&RequestError{Kind: MethodNotAllowed}, errMethod, "sdk: method", 405},
			{&RequestError{Kind: UnsupportedMediaType}, errMedia, "sdk: media", 415},
			{&RequestError{Kind: BodyTooLarge, Limit: 9}, errLarge, "sdk: large: the limit is 9 bytes", 413},
			{&RequestError{Kind: ReadBody, Err: cause}, errRead, "sdk: read: eof", 400},
		}
		for _, c := range cases {
			got := s.Map(c.in)
			if !errors.Is(got, c.want) || got.Error() != c.msg {
				t.Errorf("Map(%v) = %v, want %q", c.in, got, c.msg)
			}
			if st, ok := s.Status(got); !ok || st != c.status {
				t.Errorf("Status(%v) = %d, %v, want %d", got, st, ok, c.status)
			}
		}
		if got := s.Map(&RequestError{Kind: ReadBody, Err: cause}); errors.Is(got, cause) != wrap {
			t.Errorf("WrapCause %v: wraps the cause = %v", wrap, !wrap)
		}
		if got := s.Map(&RequestError{Kind: MethodNotAllowed}); got != errMethod {
			t.Errorf("Map gives %v, want the sentinel itself", got)
		}
		if got := s.Map(errOther); got != errOther {
			t.Errorf("Map(other) = %v", got)
		}
		if got := s.Map(nil); got != nil {
			t.Errorf("Map(nil) = %v", got)
		}
		if _, ok := s.Status(errOther); ok {
			t.Error("Status(other) is ok")
		}
	}
}

func TestResponder(t *testing.T) {
	errNoHandler := errors.New("no handler")
	errParse := errors.New("parse")
	type report struct {
		status int
		err    error
	}
	var got []report
	p := Responder{
		OnError:       func(_ *http.Request, status int, err error) { got = append(got, report{status, err}) },
		NoHandler:     errNoHandler,
		Parse:         errParse,
		HandlerFailed: "sdk: handler failed",
	}
	r := httptest.NewRequest(http.MethodPost, "/", nil)

	cases := []struct {
		err      error
		goOn     bool
		status   int
		body     string
		reported bool
	}{
		{nil, true, 0, "", false},
		{errNoHandler, true, 0, "", true},
		{errors.Join(errParse, errors.New(`key "x"`)), false, 400, `{"ok":false,"error":"parse\nkey \"x\""}`, true},
		{errors.New("secret detail"), false, 500, `{"ok":false,"error":"sdk: handler failed"}`, true},
	}
	for _, c := range cases {
		got = nil
		w := httptest.NewRecorder()
		if goOn := p.Dispatched(w, r, c.err); goOn != c.goOn {
			t.Errorf("Dispatched(%v) = %v", c.err, goOn)
		}
		if len(got) == 1 != c.reported || (c.reported && got[0].err != c.err) {
			t.Errorf("Dispatched(%v) reported %v", c.err, got)
		}
		if c.goOn {
			if w.Body.Len() != 0 {
				t.Errorf("Dispatched(%v) answered %q", c.err, w.Body)
			}
			continue
		}
		if w.Code != c.status || w.Body.String() != c.body {
			t.Errorf("Dispatched(%v) answered %d %s", c.err, w.Code, w.Body)
		}
		if got[0].status != c.status {
			t.Errorf("reported status %d", got[0].status)
		}
	}

	w := httptest.NewRecorder()
	p.OK(w)
	if w.Code != 200 || w.Body.String() != `{"ok":true}` ||
		w.Header().Get("Content-Type") != "application/json" ||
		w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("OK answered %d %v %s", w.Code, w.Header(), w.Body)
	}

	// No hook: Report and Fail still work.
	w = httptest.NewRecorder()
	Responder{}.Fail(w, r, 413, errLarge, "too large")
	if w.Code != 413 || w.Body.String() != `{"ok":false,"error":"too large"}` {
		t.Errorf("Fail answered %d %s", w.Code, w.Body)
	}
}

func TestLimitBody(t *testing.T) {
	w := httptest.NewRecorder()
	r := post(strings.Repeat("x", 10), "application/json")
	LimitBody(w, r, 4)
	if _, err := io.ReadAll(r.Body); err == nil {
		t.Error("read past the limit")
	}
	r.Body = nil
	LimitBody(w, r, 4) // no body: nothing to cap
	if r.Body != nil {
		t.Error("LimitBody made a body")
	}
}

func TestKindString(t *testing.T) {
	if MethodNotAllowed.String() != "method not allowed" || Kind(0).String() != "Kind(0)" {
		t.Error(MethodNotAllowed.String(), Kind(0).String())
	}
}
