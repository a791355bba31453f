package affinity

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// These tests pin the behaviour the attio SDK shares with this one.

func TestParityNilOptionsAreSkipped(t *testing.T) {
	c, err := NewClient(testKey, nil, WithBaseURL("http://127.0.0.1:7701"), nil)
	if err != nil || c.BaseURL() != "http://127.0.0.1:7701" {
		t.Errorf("NewClient with nil options: %v, %v", c, err)
	}
}

// WithMaxRetries(n) means n retries after the first attempt.
func TestParityMaxRetriesCountsRetries(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		client, mux, slept := setup(t, WithMaxRetries(n), WithBackoff(time.Millisecond, time.Millisecond))
		var calls atomic.Int32
		mux.HandleFunc("GET /webhook", func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			writeBody(w, 503, "application/json", []byte(`{}`))
		})
		_, _, err := client.Webhooks.List(context.Background())
		if !errors.Is(err, ErrServer) || int(calls.Load()) != n+1 || len(slept.all()) != n {
			t.Errorf("WithMaxRetries(%d): %d attempts, %d waits, err %v; want %d attempts", n, calls.Load(), len(slept.all()), err, n+1)
		}
	}
}

// A 2xx answer that is not JSON matches ErrUnexpectedResponse and is not an
// *APIError.
func TestParityNonJSONSuccessIsUnexpectedResponse(t *testing.T) {
	client, mux, _ := setup(t)
	mux.HandleFunc("GET /webhook", func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, 200, "text/html", []byte("<html><body>Please log in</body></html>"))
	})
	_, resp, err := client.Webhooks.List(context.Background())
	if !errors.Is(err, ErrUnexpectedResponse) || !strings.Contains(err.Error(), "not JSON (Content-Type text/html)") {
		t.Errorf("err = %v", err)
	}
	if _, isAPIErr := errors.AsType[*APIError](err); isAPIErr || resp == nil || resp.StatusCode != 200 {
		t.Errorf("APIError %v, response %v", isAPIErr, resp)
	}
	if strings.Count(err.Error(), "affinity:") != 1 {
		t.Errorf("package named more than once: %q", err)
	}
}

// APIError carries the request id (X-Request-Id, else Request-Id) and the
// *http.Response.
func TestParityAPIErrorCarriesRequestIDAndResponse(t *testing.T) {
	client, mux, _ := setup(t, WithMaxRetries(0))
	mux.HandleFunc("GET /webhook/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "2" {
			w.Header().Set("Request-Id", "req-alt")
		} else {
			w.Header().Set("X-Request-Id", "req-123")
		}
		writeBody(w, 404, "application/json", []byte(`{"message":"Webhook not found"}`))
	})
	_, resp, err := client.Webhooks.Get(context.Background(), 1)
	apiErr, ok := errors.AsType[*APIError](err)
	if !ok || apiErr.RequestID != "req-123" || !strings.Contains(err.Error(), "(request id req-123)") {
		t.Fatalf("err = %v", err)
	}
	if apiErr.Response == nil || apiErr.Response.StatusCode != 404 || resp == nil || apiErr.Response != resp.Response {
		t.Errorf("response %+v", apiErr.Response)
	}
	_, _, err = client.Webhooks.Get(context.Background(), 2)
	if apiErr, ok := errors.AsType[*APIError](err); !ok || apiErr.RequestID != "req-alt" {
		t.Errorf("Request-Id fallback: %v", err)
	}
}
