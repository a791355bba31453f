package sink

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/stdwebhooks"
)

// receivedRequest is what a test receiver saw.
type receivedRequest struct {
	header http.Header
	body   []byte
	path   string
}

// newReceiver starts a loopback receiver that records each request and
// answers with respond.
func newReceiver(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, <-chan receivedRequest) {
	t.Helper()
	got := make(chan receivedRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: read body: %v", err)
		}
		select {
		case got <- receivedRequest{header: r.Header.Clone(), body: body, path: r.URL.Path}:
		default:
		}
		respond(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func newHTTPSink(t *testing.T, cfg HTTPConfig) *HTTP {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "webhook"
	}
	s, err := NewHTTP(cfg)
	if err != nil {
		t.Fatalf("NewHTTP: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestHTTPSignedCloudEvent(t *testing.T) {
	secret := stdwebhooks.NewSecret()
	srv, got := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	s := newHTTPSink(t, HTTPConfig{URL: srv.URL + "/in", Secret: secret, Headers: map[string]string{"Authorization": "Bearer abc"}})

	ev := testEvent()
	if err := s.Deliver(context.Background(), ev, 1); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	req := <-got
	verifier, err := stdwebhooks.NewVerifier([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	if err := verifier.Verify(req.body, req.header); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	if id := req.header.Get(stdwebhooks.HeaderID); id != ev.ID {
		t.Errorf("webhook-id = %q, want the event id %q", id, ev.ID)
	}
	if ct := req.header.Get("Content-Type"); ct != ContentTypeCloudEvents {
		t.Errorf("Content-Type = %q", ct)
	}
	if a := req.header.Get("Authorization"); a != "Bearer abc" {
		t.Errorf("configured header not sent: Authorization = %q", a)
	}
	if req.path != "/in" {
		t.Errorf("path = %q", req.path)
	}
	doc := decodeCE(t, req.body)
	if doc.ID != ev.ID || doc.Type != "affinity.person.created" || doc.Source != "/crmhook/affinity" || string(doc.Data) != string(ev.Payload) {
		t.Errorf("CloudEvent = %+v", doc)
	}

	// A different secret must not verify: the signature really uses the sink's.
	other, _ := stdwebhooks.NewVerifier([]string{stdwebhooks.NewSecret()})
	if err := other.Verify(req.body, req.header); !errors.Is(err, stdwebhooks.ErrBadSignature) {
		t.Errorf("verify with another secret = %v, want ErrBadSignature", err)
	}
}

func TestHTTPRetriesKeepWebhookID(t *testing.T) {
	srv, got := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {})
	s := newHTTPSink(t, HTTPConfig{URL: srv.URL, Secret: stdwebhooks.NewSecret()})
	ev := testEvent()
	for attempt := 1; attempt <= 2; attempt++ {
		if err := s.Deliver(context.Background(), ev, attempt); err != nil {
			t.Fatal(err)
		}
	}
	first, second := <-got, <-got
	if first.header.Get(stdwebhooks.HeaderID) != second.header.Get(stdwebhooks.HeaderID) {
		t.Error("webhook-id changed between attempts; receivers could not dedupe")
	}
	if decodeCE(t, first.body).ID != decodeCE(t, second.body).ID {
		t.Error("CloudEvent id changed between attempts")
	}
}

func TestHTTPUnsigned(t *testing.T) {
	srv, got := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {})
	s := newHTTPSink(t, HTTPConfig{URL: srv.URL})
	if err := s.Deliver(context.Background(), testEvent(), 1); err != nil {
		t.Fatal(err)
	}
	req := <-got
	if sig := req.header.Get(stdwebhooks.HeaderSignature); sig != "" {
		t.Errorf("unsigned sink sent webhook-signature %q", sig)
	}
	if req.header.Get(stdwebhooks.HeaderID) == "" || req.header.Get(stdwebhooks.HeaderTimestamp) == "" {
		t.Error("unsigned sink should still send webhook-id and webhook-timestamp")
	}
}

func TestHTTPStatusOutcomes(t *testing.T) {
	tests := []struct {
		status     int
		retryAfter string
		wantOK     bool
		permanent  bool
		wantAfter  time.Duration
	}{
		{status: 200, wantOK: true},
		{status: 201, wantOK: true},
		{status: 202, wantOK: true},
		{status: 204, wantOK: true},
		{status: 410, permanent: true},
		{status: 408},
		{status: 429, retryAfter: "120", wantAfter: 2 * time.Minute},
		{status: 429, retryAfter: "86400", wantAfter: MaxRetryAfter},
		{status: 503, retryAfter: time.Now().Add(48 * time.Hour).UTC().Format(http.TimeFormat), wantAfter: MaxRetryAfter},
		{status: 503, retryAfter: "soon"},
		{status: 500},
		{status: 502},
		{status: 400},
		{status: 401},
		{status: 404},
		{status: 301},
		{status: 302},
		{status: 304},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status)+"/"+tt.retryAfter, func(t *testing.T) {
			var redirectHit atomic.Bool
			srv, _ := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" {
					redirectHit.Store(true)
					return
				}
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				if tt.status >= 300 && tt.status < 400 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, "response body with private details")
			})
			s := newHTTPSink(t, HTTPConfig{URL: srv.URL + "/in"})
			err := s.Deliver(context.Background(), testEvent(), 1)
			if redirectHit.Load() {
				t.Error("the sink followed a redirect")
			}
			if tt.wantOK {
				if err != nil {
					t.Fatalf("Deliver = %v, want nil", err)
				}
				return
			}
			var de *crmhook.DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("Deliver = %v, want a *DeliveryError", err)
			}
			if de.Permanent != tt.permanent {
				t.Errorf("Permanent = %v, want %v", de.Permanent, tt.permanent)
			}
			if de.RetryAfter != tt.wantAfter {
				t.Errorf("RetryAfter = %v, want %v", de.RetryAfter, tt.wantAfter)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != tt.status {
				t.Errorf("error %v does not carry status %d", err, tt.status)
			}
			if msg := err.Error(); !strings.Contains(msg, "status "+strconv.Itoa(tt.status)) || strings.Contains(msg, "private details") {
				t.Errorf("error message %q: want the status and no response body", msg)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"30", 30 * time.Second},
		{" 30 ", 30 * time.Second},
		{"3600", time.Hour},
		{"99999999999999999999", 0}, // not an int64 and not a date
		{"9999999999", MaxRetryAfter},
		{"Wed, 01 May 2024 12:01:30 GMT", 90 * time.Second},
		{"Wednesday, 01-May-24 12:00:10 GMT", 10 * time.Second}, // RFC 850
		{"Wed May  1 12:00:05 2024", 5 * time.Second},           // ANSI C
		{"Wed, 01 May 2024 11:00:00 GMT", 0},                    // past
		{"Thu, 02 May 2024 12:00:00 GMT", MaxRetryAfter},
		{"tomorrow", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestHTTPTimeoutIsRetryable(t *testing.T) {
	release := make(chan struct{})
	srv, _ := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close: handlers return first
	s := newHTTPSink(t, HTTPConfig{URL: srv.URL, Timeout: 50 * time.Millisecond})
	err := s.Deliver(context.Background(), testEvent(), 1)
	var de *crmhook.DeliveryError
	if !errors.As(err, &de) || de.Permanent {
		t.Fatalf("Deliver = %v, want a retryable *DeliveryError", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Deliver = %v, want it to wrap context.DeadlineExceeded", err)
	}
}

func TestHTTPNetworkErrorHidesURLAndPayload(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hooks/src/topsecretpath?token=topsecrettoken"
	srv.Close() // nothing listens any more
	secret := stdwebhooks.NewSecret()
	s := newHTTPSink(t, HTTPConfig{URL: url, Secret: secret})
	ev := testEvent()
	err := s.Deliver(context.Background(), ev, 1)
	var de *crmhook.DeliveryError
	if !errors.As(err, &de) || de.Permanent {
		t.Fatalf("Deliver = %v, want a retryable *DeliveryError", err)
	}
	msg := err.Error()
	for _, leak := range []string{"topsecretpath", "topsecrettoken", secret, "Ada", "first_name"} {
		if strings.Contains(msg, leak) {
			t.Errorf("error %q leaks %q", msg, leak)
		}
	}
}

func TestHTTPDrainsLargeResponses(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	srv, _ := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big) })
	s := newHTTPSink(t, HTTPConfig{URL: srv.URL})
	for i := range 3 {
		if err := s.Deliver(context.Background(), testEvent(), i+1); err != nil {
			t.Fatalf("Deliver %d: %v", i, err)
		}
	}
}

func TestHTTPInvalidPayloadIsPermanent(t *testing.T) {
	var hits atomic.Int32
	srv, _ := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	s := newHTTPSink(t, HTTPConfig{URL: srv.URL})
	ev := testEvent()
	ev.Payload = []byte("not json")
	err := s.Deliver(context.Background(), ev, 1)
	var de *crmhook.DeliveryError
	if !errors.As(err, &de) || !de.Permanent {
		t.Fatalf("Deliver = %v, want a permanent *DeliveryError", err)
	}
	if hits.Load() != 0 {
		t.Error("an invalid event was sent")
	}
}

func TestNewHTTPValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  HTTPConfig
		want string
	}{
		{"no name", HTTPConfig{URL: "http://x"}, "name is required"},
		{"no url", HTTPConfig{Name: "a"}, "url must be"},
		{"relative url", HTTPConfig{Name: "a", URL: "/hooks"}, "url must be"},
		{"ftp url", HTTPConfig{Name: "a", URL: "ftp://host/x"}, "url must be"},
		{"bad secret", HTTPConfig{Name: "a", URL: "http://x", Secret: "whsec_short"}, "secret"},
		{"negative timeout", HTTPConfig{Name: "a", URL: "http://x", Timeout: -time.Second}, "negative"},
		{"bad header name", HTTPConfig{Name: "a", URL: "http://x", Headers: map[string]string{"Bad Header": "v"}}, "not a valid"},
		{"reserved header", HTTPConfig{Name: "a", URL: "http://x", Headers: map[string]string{"webhook-signature": "v"}}, "set by the sink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewHTTP(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewHTTP = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	s, err := NewHTTP(HTTPConfig{Name: "a", URL: "https://example.com/x"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "a" || s.cfg.Timeout != DefaultHTTPTimeout {
		t.Errorf("defaults: name %q timeout %v", s.Name(), s.cfg.Timeout)
	}
}

func TestHTTPConcurrentDeliveries(t *testing.T) {
	secret := stdwebhooks.NewSecret()
	verifier, _ := stdwebhooks.NewVerifier([]string{secret})
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifier.Verify(body, r.Header); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		seen[r.Header.Get(stdwebhooks.HeaderID)] = true
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s := newHTTPSink(t, HTTPConfig{URL: srv.URL, Secret: secret})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			ev := testEvent()
			ev.ID = "event-" + strconv.Itoa(i)
			errs <- s.Deliver(context.Background(), ev, 1)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if len(seen) != 40 {
		t.Errorf("receiver saw %d distinct events, want 40", len(seen))
	}
}

func BenchmarkHTTPSink(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s, err := NewHTTP(HTTPConfig{Name: "bench", URL: srv.URL, Secret: stdwebhooks.NewSecret()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ev := testEvent()
	b.SetBytes(int64(len(ev.Payload)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Deliver(context.Background(), ev, 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
