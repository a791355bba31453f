package receiver_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/receiver"
	"github.com/crmhook/crmhook/stdwebhooks"
)

// memStore keeps dedupe keys in memory: the only store methods the
// receiver calls are Insert and Reject, and fuzzing needs them fast. down
// makes them fail like a full disk.
type memStore struct {
	crmhook.Store // nil: any other call panics, which the fuzzer would report
	mu            sync.Mutex
	keys          map[string]bool
	down          bool
}

func (m *memStore) Insert(_ context.Context, ev crmhook.NewEvent) (crmhook.InsertResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return crmhook.InsertResult{}, fmt.Errorf("memstore: %w", crmhook.ErrUnavailable)
	}
	if m.keys[ev.Event.DedupeKey] {
		return crmhook.InsertResult{Duplicate: true}, nil
	}
	m.keys[ev.Event.DedupeKey] = true
	return crmhook.InsertResult{EventID: ev.Event.ID}, nil
}

func (m *memStore) Reject(context.Context, crmhook.Rejection) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return 0, fmt.Errorf("memstore: %w", crmhook.ErrUnavailable)
	}
	return 1, nil
}

func (m *memStore) setDown(down bool) { m.mu.Lock(); m.down = down; m.mu.Unlock() }

// contractStatuses are the only answers the receiver contract allows.
var contractStatuses = map[int]bool{200: true, 400: true, 401: true, 403: true, 404: true, 405: true, 413: true, 415: true, 429: true, 503: true}

// fuzzPaths are the routes the fuzzer picks from by index.
var fuzzPaths = []string{
	"/hooks/affinity/" + pathSecret,
	"/hooks/affinity/" + pathSecretOld,
	"/hooks/attio",
	"/hooks/std",
	"/hooks/small/" + pathSecret,
	"/hooks/office/" + pathSecret,
	"/hooks/tls/" + pathSecret,
	"/hooks/slow/" + pathSecret,
	"/hooks/affinity",
	"/hooks/affinity/" + pathSecret + "/x",
	"/hooks/",
	"/hooks/unknown/" + pathSecret,
	"/metrics",
	"/",
}

// FuzzHandler drives the whole handler with arbitrary requests: nothing may
// panic, and every answer must be one of the contract's statuses. When sign
// is set the body is signed correctly for Attio and Standard Webhooks (and
// the timestamp header is ts), so the fuzzer reaches the parsers behind the
// signature check.
func FuzzHandler(f *testing.F) {
	store := &memStore{keys: map[string]bool{}}
	h, err := receiver.New(receiver.Config{
		Store: store,
		Sources: []receiver.Source{
			{Name: "affinity", Provider: crmhook.ProviderAffinity, Secrets: []string{pathSecret, pathSecretOld}, Window: receiver.ReplayWindow{MaxAge: 12 * time.Hour, MaxFuture: 2 * time.Minute}},
			{Name: "attio", Provider: crmhook.ProviderAttio, Secrets: []string{attioSecret, attioOld}, Window: receiver.ReplayWindow{MaxAge: 5 * time.Minute, MaxFuture: 5 * time.Minute}},
			{Name: "std", Provider: crmhook.ProviderStandardWebhooks, Secrets: []string{whSecret}, Window: receiver.ReplayWindow{MaxAge: 5 * time.Minute, MaxFuture: 5 * time.Minute}},
			{Name: "small", Provider: crmhook.ProviderAffinity, Secrets: []string{pathSecret}, BodyLimit: 2048},
			{Name: "office", Provider: crmhook.ProviderAffinity, Secrets: []string{pathSecret}, AllowIPs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
			{Name: "tls", Provider: crmhook.ProviderAffinity, Secrets: []string{pathSecret}, RequireHTTPS: true},
			{Name: "slow", Provider: crmhook.ProviderAffinity, Secrets: []string{pathSecret}, RateLimit: 1000, RateBurst: 5},
		},
		Route:          func(*crmhook.Event) []string { return []string{"sink-a"} },
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")},
		Now:            func() time.Time { return t0 },
	})
	if err != nil {
		f.Fatal(err)
	}
	signer, err := stdwebhooks.NewSigner(whSecret)
	if err != nil {
		f.Fatal(err)
	}

	var seeds [][]byte
	for _, pattern := range []string{"../testdata/affinity/*.json", "../testdata/attio/*.json", "../testdata/attio/*/*.json", "../testdata/attio/*/*/*.json"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, b)
		}
	}
	if len(seeds) < 20 {
		f.Fatalf("found %d seed files under testdata; the corpus would be thin", len(seeds))
	}
	now := t0.Unix()
	for i, b := range seeds {
		// Every fixture at the route its provider uses, signed and not.
		route := uint8(i % 4)
		if strings.Contains(string(b), `"events"`) || strings.Contains(string(b), `"event_type"`) {
			route = 2
		}
		f.Add(route, "application/json", true, now, "idem-"+strconv.Itoa(i), "", false, b)
		f.Add(uint8(i%len(fuzzPaths)), "application/json; charset=utf-8", false, now-3600, "", "https", i%7 == 0, b)
	}
	f.Add(uint8(0), "application/json", false, now, "", "", false, []byte(`{"type":"person.created","body":{"id":1},"sent_at":`+strconv.FormatInt(now, 10)+`}`))
	f.Add(uint8(3), "application/json", true, now, "msg_1", "", false, []byte(`{"type":"contact.created","data":{}}`))
	f.Add(uint8(4), "application/json", false, now, "", "", false, []byte(`{"type":"person.created","body":{"pad":"`+strings.Repeat("x", 3000)+`"},"sent_at":1}`))
	f.Add(uint8(0), "text/plain", false, now, "", "", false, []byte(`{}`))
	f.Add(uint8(0), "", false, int64(0), "", "", true, []byte(``))

	f.Fuzz(func(t *testing.T, route uint8, contentType string, sign bool, ts int64, id, forwardedProto string, storeDown bool, body []byte) {
		path := fuzzPaths[int(route)%len(fuzzPaths)]
		req := httptest.NewRequest(http.MethodPost, "http://crmhook.test"+path, strings.NewReader(string(body)))
		if route >= 128 {
			req.Method = http.MethodGet
		}
		req.RemoteAddr = "192.0.2.1:4711"
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("X-Forwarded-Proto", forwardedProto)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		if id != "" {
			req.Header.Set("Idempotency-Key", id)
		}
		if sign {
			req.Header.Set("Attio-Signature", attio.Sign(body, attioSecret))
			signer.SetHeaders(req.Header, id, time.Unix(ts, 0), body)
		} else {
			req.Header.Set(stdwebhooks.HeaderID, id)
			req.Header.Set(stdwebhooks.HeaderTimestamp, strconv.FormatInt(ts, 10))
			req.Header.Set(stdwebhooks.HeaderSignature, "v1,"+id)
		}
		store.setDown(storeDown)
		defer store.setDown(false)

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !contractStatuses[rec.Code] {
			t.Fatalf("%s %s: status %d is not in the receiver contract", req.Method, path, rec.Code)
		}
		if rec.Code == http.StatusOK && storeDown && rec.Body.String() == `{"ok":true}` && !isProbe(body) {
			t.Fatalf("%s: 200 while the store is down", path)
		}
		if rec.Code == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
			t.Fatalf("%s: 503 without Retry-After", path)
		}
	})
}

// isProbe reports an Affinity sample.webhook probe, which is answered 200
// without touching the store.
func isProbe(body []byte) bool { return strings.Contains(string(body), "sample.webhook") }
