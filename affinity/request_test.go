package affinity

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func deliveryRequest(method, contentType string, body []byte) *http.Request {
	r := httptest.NewRequest(method, "/hooks/affinity/secret", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

func TestParseRequest(t *testing.T) {
	body := NewEnvelope(PersonCreated, SampleBody(PersonCreated), parseNow)
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON", "application/json; charset"} {
		ev, err := ParseRequest(deliveryRequest(http.MethodPost, ct, body), parseAtNow())
		if err != nil || ev.Type != PersonCreated || !bytes.Equal(ev.Raw, body) {
			t.Errorf("%q: %v %+v", ct, err, ev)
		}
	}
	// Parse's rules and results: reordered keys are fine, a stale delivery
	// is a *StaleError with no event beside it.
	reordered := []byte(`{"sent_at":1700000000,"body":{"test":true},"type":"sample.webhook"}`)
	if ev, err := ParseRequest(deliveryRequest(http.MethodPost, "application/json", reordered), parseAtNow()); err != nil || ev.Type != SampleWebhook {
		t.Errorf("reordered probe: %v", err)
	}
	old := NewEnvelope(PersonCreated, SampleBody(PersonCreated), parseNow.Add(-13*time.Hour))
	ev, err := ParseRequest(deliveryRequest(http.MethodPost, "application/json", old), parseAtNow())
	var stale *StaleError
	if ev != nil || !errors.As(err, &stale) || !errors.Is(err, ErrTooOld) || stale.Event.Type != PersonCreated {
		t.Errorf("stale: %v %+v", err, ev)
	}
	if _, err := ParseRequest(deliveryRequest(http.MethodPost, "application/json", old), parseAtNow(), WithoutMaxAge()); err != nil {
		t.Errorf("options are Parse's: %v", err)
	}
}

// Each refusal has its own sentinel, none of them ErrParse, checked in the
// order method, content type, size, payload.
func TestParseRequestErrors(t *testing.T) {
	good := NewEnvelope(PersonCreated, SampleBody(PersonCreated), parseNow)
	big := append(append([]byte(`{"type":"x","body":"`), bytes.Repeat([]byte("a"), DefaultMaxBodyBytes)...), `","sent_at":1700000000}`...)
	unknownLength := func(b []byte) *http.Request {
		r := deliveryRequest(http.MethodPost, "application/json", nil)
		r.Body = io.NopCloser(bytes.NewReader(b)) // no Content-Length: read to find out
		r.ContentLength = -1
		return r
	}
	cases := []struct {
		name string
		r    *http.Request
		opts []ParseOption
		want error
	}{
		{"GET", deliveryRequest(http.MethodGet, "application/json", good), nil, ErrMethodNotAllowed},
		{"PUT, wrong type too", deliveryRequest(http.MethodPut, "text/plain", good), nil, ErrMethodNotAllowed},
		{"no content type", deliveryRequest(http.MethodPost, "", good), nil, ErrUnsupportedMediaType},
		{"form", deliveryRequest(http.MethodPost, "application/x-www-form-urlencoded", good), nil, ErrUnsupportedMediaType},
		{"json suffix", deliveryRequest(http.MethodPost, "application/problem+json", good), nil, ErrUnsupportedMediaType},
		{"garbage content type", deliveryRequest(http.MethodPost, "json;;", good), nil, ErrUnsupportedMediaType},
		{"over the default limit, declared", deliveryRequest(http.MethodPost, "application/json", big), nil, ErrBodyTooLarge},
		{"over the default limit, streamed", unknownLength(big), nil, ErrBodyTooLarge},
		{"over a set limit", unknownLength(good), []ParseOption{WithMaxBodyBytes(int64(len(good)) - 1)}, ErrBodyTooLarge},
		{"bad payload", deliveryRequest(http.MethodPost, "application/json", []byte(`{"type":"x"}`)), nil, ErrMissingKey},
		{"empty body", deliveryRequest(http.MethodPost, "application/json", nil), nil, ErrInvalidJSON},
		{"bad option", deliveryRequest(http.MethodPost, "application/json", good), []ParseOption{WithMaxAge(0)}, ErrInvalidOption},
		{"nil request", nil, nil, ErrReadBody},
	}
	requestErrors := []error{ErrMethodNotAllowed, ErrUnsupportedMediaType, ErrBodyTooLarge, ErrReadBody, ErrInvalidOption}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := ParseRequest(c.r, append([]ParseOption{parseAtNow()}, c.opts...)...)
			if ev != nil || !errors.Is(err, c.want) {
				t.Fatalf("%v %+v, want %v", err, ev, c.want)
			}
			for _, other := range requestErrors {
				if other != c.want && errors.Is(err, other) {
					t.Errorf("%v also matches %v", err, other)
				}
			}
			if errors.Is(err, ErrParse) != errors.Is(c.want, ErrParse) {
				t.Errorf("%v: ErrParse match is %v", err, errors.Is(err, ErrParse))
			}
		})
	}
	// Exactly at the limit is fine.
	if _, err := ParseRequest(unknownLength(good), parseAtNow(), WithMaxBodyBytes(int64(len(good)))); err != nil {
		t.Error(err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestParseRequestReadError(t *testing.T) {
	r := deliveryRequest(http.MethodPost, "application/json", nil)
	r.Body = io.NopCloser(failingReader{})
	r.ContentLength = -1
	_, err := ParseRequest(r)
	if !errors.Is(err, ErrReadBody) || errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("%v", err)
	}
}
