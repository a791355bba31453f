package apiclient

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	resp := func(ct string) *http.Response {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		return &http.Response{StatusCode: 200, Header: h}
	}
	var out struct {
		N int `json:"n"`
	}
	if err := DecodeJSON(resp("application/json"), []byte(" {\"n\":7}\n"), &out); err != nil || out.N != 7 {
		t.Fatalf("valid: %+v %v", out, err)
	}
	cases := []struct {
		name, ct, body, want string
	}{
		{"empty", "application/json", "  ", "unexpected response: 200 answer has an empty body, want JSON"},
		{"html", "text/html; charset=utf-8", "<html>secret page</html>", "unexpected response: 200 answer is not JSON (Content-Type text/html)"},
		{"no content type", "", "plain words", "unexpected response: 200 answer is not JSON (Content-Type none)"},
		{"wrong shape", "application/json", `{"n":"seven"}`, "unexpected response: decode 200 answer: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := DecodeJSON(resp(tc.ct), []byte(tc.body), &out)
			if !errors.Is(err, ErrUnexpectedResponse) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret page") || strings.Contains(err.Error(), "seven") {
				t.Errorf("error quotes the body: %v", err)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	h := http.Header{}
	if got := RequestID(h); got != "" {
		t.Errorf("none: %q", got)
	}
	h.Set("Request-Id", "alt")
	if got := RequestID(h); got != "alt" {
		t.Errorf("Request-Id: %q", got)
	}
	h.Set("X-Request-Id", " main\r\nInjected: 1 ")
	if got := RequestID(h); got != "main Injected: 1" {
		t.Errorf("X-Request-Id wins, on one line: %q", got)
	}
	h.Set("X-Request-Id", strings.Repeat("a", 500))
	if got := RequestID(h); len([]rune(got)) != maxRequestID+1 {
		t.Errorf("not capped: %d runes", len([]rune(got)))
	}
}

func TestMark(t *testing.T) {
	kind := errors.New("sdk: unexpected response")
	inner := Unexpected("%d answer is over %d bytes", 200, 10)
	err := Mark(kind, inner)
	if !errors.Is(err, kind) || !errors.Is(err, ErrUnexpectedResponse) || err.Error() != "unexpected response: 200 answer is over 10 bytes" {
		t.Errorf("Mark = %v", err)
	}
	if Mark(kind, nil) != nil {
		t.Error("Mark(kind, nil) is not nil")
	}
}
