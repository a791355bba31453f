package receiver_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
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
	"github.com/crmhook/crmhook/store/sqlite"
)

// Secrets of the test sources. Path secrets are 43 URL-safe characters, as
// `crmhook init` makes them.
const (
	pathSecret    = "Zk3v9QpX1mB7cT2rW8yL5nH0dS4aF6gJ-eU_oIiKqPw"
	pathSecretOld = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V"
	attioSecret   = "attio-secret-current-0123456789abcdef"
	attioOld      = "attio-secret-previous-0123456789abcdef"
	attioRetired  = "attio-secret-retired-0123456789abcdef"
)

var (
	whSecret = stdwebhooks.NewSecret()
	t0       = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
)

// env is a receiver on a real loopback listener over a real SQLite file.
type env struct {
	t     *testing.T
	url   string
	store crmhook.Store
	h     *receiver.Handler
}

// faultStore fails inserts and rejections while failing is set.
type faultStore struct {
	crmhook.Store
	mu      sync.Mutex
	failing bool
}

func (f *faultStore) fail(on bool) { f.mu.Lock(); f.failing = on; f.mu.Unlock() }
func (f *faultStore) broken() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.failing }
func (f *faultStore) Insert(ctx context.Context, ev crmhook.NewEvent) (crmhook.InsertResult, error) {
	if f.broken() {
		return crmhook.InsertResult{}, fmt.Errorf("disk full: %w", crmhook.ErrUnavailable)
	}
	return f.Store.Insert(ctx, ev)
}
func (f *faultStore) Reject(ctx context.Context, r crmhook.Rejection) (int64, error) {
	if f.broken() {
		return 0, fmt.Errorf("disk full: %w", crmhook.ErrUnavailable)
	}
	return f.Store.Reject(ctx, r)
}

// openStore opens a real SQLite store on the test's clock: the store judges
// whether a dedupe window has ended, so it must read the receiver's clock.
func openStore(t *testing.T, now func() time.Time) crmhook.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "crmhook.db"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func setup(t *testing.T, tweak func(*receiver.Config)) *env { return setupAt(t, t0, tweak) }

// setupAt runs the receiver and its store on one clock frozen at now.
func setupAt(t *testing.T, now time.Time, tweak func(*receiver.Config)) *env {
	t.Helper()
	clock := func() time.Time { return now }
	e := &env{t: t, store: openStore(t, clock)}
	hour := receiver.ReplayWindow{MaxAge: time.Hour, MaxFuture: time.Minute}
	cfg := receiver.Config{
		Store: e.store,
		Sources: []receiver.Source{
			{Name: "affinity", Provider: crmhook.ProviderAffinity, Secrets: []string{pathSecret, pathSecretOld}, Window: receiver.ReplayWindow{MaxAge: 12 * time.Hour, MaxFuture: 2 * time.Minute}},
			{Name: "attio", Provider: crmhook.ProviderAttio, Secrets: []string{attioSecret, attioOld}, Window: receiver.ReplayWindow{MaxAge: 5 * time.Minute, MaxFuture: 5 * time.Minute}},
			{Name: "std", Provider: crmhook.ProviderStandardWebhooks, Secrets: []string{whSecret}, Window: receiver.ReplayWindow{MaxAge: 5 * time.Minute, MaxFuture: 5 * time.Minute}},
			{Name: "small", Provider: crmhook.ProviderAffinity, Secrets: []string{pathSecret}, BodyLimit: 2048, Window: hour},
			{Name: "office", Provider: crmhook.ProviderAffinity, Secrets: []string{pathSecret}, AllowIPs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, Window: hour},
			{Name: "tls", Provider: crmhook.ProviderAffinity, Secrets: []string{pathSecret}, RequireHTTPS: true, Window: hour},
			{Name: "slow", Provider: crmhook.ProviderAffinity, Secrets: []string{pathSecret}, RateLimit: 0.001, RateBurst: 1, Window: hour},
		},
		Route:          func(*crmhook.Event) []string { return []string{"sink-a"} },
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Now:            clock,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	h, err := receiver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// req is one request of the table.
type req struct {
	method, path string
	body         []byte
	header       http.Header
	chunked      bool // hide the length: Transfer-Encoding: chunked
	contentLen   int64
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(r req) resp {
	e.t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	if r.contentLen != 0 {
		return e.raw(method, r)
	}
	var body io.Reader = bytes.NewReader(r.body)
	if r.chunked {
		body = io.MultiReader(bytes.NewReader(r.body)) // unknown length → chunked
	}
	hr, err := http.NewRequest(method, e.url+r.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	for k, vs := range r.header {
		hr.Header.Del(k)
		for _, v := range vs {
			if v != "" {
				hr.Header.Add(k, v)
			}
		}
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, r.path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

// raw writes the request by hand, for headers Go's client refuses to send
// (a Content-Length that lies).
func (e *env) raw(method string, r req) resp {
	e.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", method, r.path, r.contentLen)
	conn.Write(r.body)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

func (e *env) events() []crmhook.Event {
	e.t.Helper()
	evs, err := e.store.ListEvents(context.Background(), crmhook.EventFilter{Limit: 10000})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) rejections() []crmhook.Rejection {
	e.t.Helper()
	rs, err := e.store.ListRejections(context.Background(), crmhook.RejectionFilter{Limit: 10000})
	if err != nil {
		e.t.Fatal(err)
	}
	return rs
}

// affinityBody is an Affinity delivery with sent_at written as given.
func affinityBody(typ, sentAt string) []byte {
	return []byte(`{"type":"` + typ + `","body":{"id":42,"first_name":"Jane","last_name":"Doe","primary_email":"jane.doe@example.com"},"sent_at":` + sentAt + `}`)
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

var (
	hookAff = "/hooks/affinity/" + pathSecret
	okBody  = affinityBody("person.created", unix(t0))
)

// attioDelivery is a signed Attio delivery with n record.created events.
func attioDelivery(n int, key string) ([]byte, http.Header) {
	var evs []string
	for i := range n {
		evs = append(evs, fmt.Sprintf(`{"event_type":"record.created","id":{"workspace_id":"14beef7a-99f7-4534-a87e-70b564330a4c","object_id":"97052eb9-e65e-443f-a297-f2d9a4a7f795","record_id":"bf071e1f-6035-429d-b874-d83ea64ea13%d"},"actor":{"type":"workspace-member","id":"50cf242c-7fa3-4cad-87d0-75b1af71c57b"}}`, i))
	}
	body := []byte(`{"webhook_id":"5ff8d55e-55a1-4bc5-8a21-4f8b7c3c2f3a","events":[` + strings.Join(evs, ",") + `]}`)
	h := http.Header{}
	h.Set("Attio-Signature", attio.Sign(body, attioSecret))
	if key != "" {
		h.Set("Idempotency-Key", key)
	}
	return body, h
}

func hmacHex(secret string, parts ...[]byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	for _, p := range parts {
		m.Write(p)
	}
	return hex.EncodeToString(m.Sum(nil))
}

func stdHeaders(body []byte, id string, ts time.Time, secret string) http.Header {
	s, err := stdwebhooks.NewSigner(secret)
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	s.SetHeaders(h, id, ts, body)
	return h
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func nested(depth int) []byte {
	return []byte(`{"type":"person.created","body":{"x":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `},"sent_at":` + unix(t0) + `}`)
}

// TestContract sends every row of the receiver contract, and the bad input
// around it, through a real listener, and checks the answer and what each
// request (not) stored. It runs with the clock frozen at two dates years
// apart, neither of them today: a frozen clock must pass on any date.
func TestContract(t *testing.T) {
	for _, at := range []time.Time{t0, time.Date(2031, 6, 15, 3, 30, 0, 0, time.UTC)} {
		t.Run(at.Format("2006-01-02"), func(t *testing.T) { contract(t, at) })
	}
}

func contract(t *testing.T, t0 time.Time) {
	okBody := affinityBody("person.created", unix(t0))
	attioOK, attioH := attioDelivery(1, "idem-1")
	attioTwo, attioTwoH := attioDelivery(2, "idem-2")
	attioVariant := []byte(`{"webhook_id":"5ff8d55e-55a1-4bc5-8a21-4f8b7c3c2f3a","events":[{"event_type":"record.created","id":{"workspace_id":"w","object_id":"o","record_id":"r"},"actor":{"type":"system","id":null},"Event_Type":"note.created"}]}`)
	attioVariantH := hdr("Attio-Signature", attio.Sign(attioVariant, attioSecret), "Idempotency-Key", "idem-variant")
	stdBody := []byte(`{"type":"contact.created","timestamp":"2026-11-23T12:00:00Z","data":{"id":"c_1"}}`)
	big := append(append([]byte(`{"type":"person.created","body":{"pad":"`), bytes.Repeat([]byte("x"), 4096)...), []byte(`"},"sent_at":`+unix(t0)+`}`)...)
	tsHeader := strconv.FormatInt(t0.Unix(), 10)
	oldTS := strconv.FormatInt(t0.Add(-time.Hour).Unix(), 10)

	cases := []struct {
		name       string
		r          req
		status     int
		stored     int // events stored by this request
		rejected   int // rejections kept by this request
		emptyBody  bool
		wantHeader [2]string
	}{
		// Routing and path secrets: 404 with an empty body, whatever is wrong.
		{name: "root path", r: req{method: "GET", path: "/"}, status: 404, emptyBody: true},
		{name: "metrics not on the public listener", r: req{method: "GET", path: "/metrics"}, status: 404, emptyBody: true},
		{name: "admin API not on the public listener", r: req{path: "/api/events"}, status: 404, emptyBody: true},
		{name: "hooks without source", r: req{path: "/hooks/", body: okBody}, status: 404, emptyBody: true},
		{name: "unknown source", r: req{path: "/hooks/hubspot/" + pathSecret, body: okBody}, status: 404, emptyBody: true},
		{name: "affinity without path secret", r: req{path: "/hooks/affinity", body: okBody}, status: 404, emptyBody: true},
		{name: "path secret differs in the last character", r: req{path: "/hooks/affinity/" + pathSecret[:len(pathSecret)-1] + "x", body: okBody}, status: 404, emptyBody: true},
		{name: "path secret one character short", r: req{path: "/hooks/affinity/" + pathSecret[:len(pathSecret)-1], body: okBody}, status: 404, emptyBody: true},
		{name: "path secret with a trailing character", r: req{path: "/hooks/affinity/" + pathSecret + "A", body: okBody}, status: 404, emptyBody: true},
		{name: "path secret with extra segment", r: req{path: hookAff + "/x", body: okBody}, status: 404, emptyBody: true},
		{name: "path secret upper-cased", r: req{path: "/hooks/affinity/" + strings.ToUpper(pathSecret), body: okBody}, status: 404, emptyBody: true},
		// Method, content type, size.
		{name: "GET on a hook", r: req{method: "GET", path: hookAff}, status: 405, wantHeader: [2]string{"Allow", "POST"}},
		{name: "PUT on a hook", r: req{method: "PUT", path: hookAff, body: okBody}, status: 405, wantHeader: [2]string{"Allow", "POST"}},
		{name: "text/plain", r: req{path: hookAff, body: okBody, header: hdr("Content-Type", "text/plain")}, status: 415},
		{name: "form encoded", r: req{path: hookAff, body: okBody, header: hdr("Content-Type", "application/x-www-form-urlencoded")}, status: 415},
		{name: "no content type", r: req{path: hookAff, body: okBody, header: http.Header{"Content-Type": {""}}}, status: 415},
		{name: "json with charset", r: req{path: hookAff, body: affinityBody("person.updated", unix(t0)), header: hdr("Content-Type", "application/json; charset=utf-8")}, status: 200, stored: 1},
		{name: "oversize body with length", r: req{path: "/hooks/small/" + pathSecret, body: big}, status: 413},
		{name: "oversize body chunked", r: req{path: "/hooks/small/" + pathSecret, body: big, chunked: true}, status: 413},
		{name: "content length lies short", r: req{path: hookAff, body: okBody, contentLen: 10}, status: 400},
		// Affinity payloads: strict JSON, one object, type/body/sent_at.
		{name: "empty body", r: req{path: hookAff, body: nil}, status: 400},
		{name: "not JSON", r: req{path: hookAff, body: []byte(`type=person.created`)}, status: 400},
		{name: "truncated JSON", r: req{path: hookAff, body: okBody[:len(okBody)-1]}, status: 400},
		{name: "trailing data", r: req{path: hookAff, body: append(append([]byte{}, okBody...), []byte(` {}`)...)}, status: 400},
		{name: "top-level array", r: req{path: hookAff, body: []byte(`[` + string(okBody) + `]`)}, status: 400},
		{name: "top-level string", r: req{path: hookAff, body: []byte(`"person.created"`)}, status: 400},
		{name: "invalid UTF-8", r: req{path: hookAff, body: []byte("{\"type\":\"person.created\",\"body\":{\"n\":\"\xff\xfe\"},\"sent_at\":" + unix(t0) + "}")}, status: 400},
		{name: "deeply nested JSON", r: req{path: hookAff, body: nested(20000)}, status: 400},
		{name: "duplicate type key", r: req{path: hookAff, body: []byte(`{"type":"person.created","type":"person.deleted","body":{},"sent_at":` + unix(t0) + `}`)}, status: 400},
		{name: "type is a number", r: req{path: hookAff, body: []byte(`{"type":7,"body":{},"sent_at":` + unix(t0) + `}`)}, status: 400},
		{name: "missing type", r: req{path: hookAff, body: []byte(`{"body":{},"sent_at":` + unix(t0) + `}`)}, status: 400},
		{name: "missing body", r: req{path: hookAff, body: []byte(`{"type":"person.created","sent_at":` + unix(t0) + `}`)}, status: 400},
		{name: "missing sent_at", r: req{path: hookAff, body: []byte(`{"type":"person.created","body":{}}`)}, status: 400},
		{name: "keys in another order are accepted", r: req{path: hookAff, body: []byte(`{"sent_at":` + unix(t0) + `,"type":"person.created","body":{}}`)}, status: 200, stored: 1},
		{name: "an unknown extra key is accepted", r: req{path: hookAff, body: []byte(`{"type":"person.updated","body":{},"sent_at":` + unix(t0) + `,"webhook_id":7}`)}, status: 200, stored: 1},
		{name: "case-variant type key after sent_at", r: req{path: hookAff, body: []byte(`{"type":"person.created","body":{},"sent_at":` + unix(t0) + `,"Type":"note.created"}`)}, status: 400},
		{name: "case-variant key first", r: req{path: hookAff, body: []byte(`{"TYPE":"note.created","type":"person.created","body":{},"sent_at":` + unix(t0) + `}`)}, status: 400},
		{name: "duplicate sent_at last", r: req{path: hookAff, body: []byte(`{"type":"person.created","body":{},"sent_at":` + unix(t0) + `,"sent_at":1}`)}, status: 400},
		{name: "reordered probe answered, not stored", r: req{path: hookAff, body: []byte(`{"sent_at":` + unix(t0) + `,"body":{"test":true},"type":"sample.webhook"}`)}, status: 200},
		{name: "sent_at integral float", r: req{path: hookAff, body: affinityBody("person.deleted", unix(t0)+".0")}, status: 200, stored: 1},
		{name: "sent_at fractional float", r: req{path: hookAff, body: affinityBody("person.created", unix(t0)+".5")}, status: 400},
		{name: "sent_at negative", r: req{path: hookAff, body: affinityBody("person.created", "-1")}, status: 400},
		{name: "sent_at huge", r: req{path: hookAff, body: affinityBody("person.created", "99999999999999999999999")}, status: 400},
		{name: "sent_at digit string", r: req{path: hookAff, body: affinityBody("organization.created", `"`+unix(t0)+`"`)}, status: 200, stored: 1},
		{name: "sent_at word string", r: req{path: hookAff, body: affinityBody("person.created", `"yesterday"`)}, status: 400},
		{name: "sent_at null", r: req{path: hookAff, body: affinityBody("person.created", `null`)}, status: 400},
		{name: "sent_at too old is kept as a rejection", r: req{path: hookAff, body: affinityBody("person.created", unix(t0.Add(-13*time.Hour)))}, status: 400, rejected: 1},
		{name: "sent_at in the future is kept as a rejection", r: req{path: hookAff, body: affinityBody("person.created", unix(t0.Add(10*time.Minute)))}, status: 400, rejected: 1},
		{name: "probe answered, not stored", r: req{path: hookAff, body: []byte(`{"type":"sample.webhook","body":{"test":true},"sent_at":` + unix(t0) + `}`)}, status: 200},
		{name: "accepted", r: req{path: hookAff, body: okBody}, status: 200, stored: 1},
		{name: "redelivery acknowledged, not stored", r: req{path: hookAff, body: okBody}, status: 200},
		{name: "rotated path secret accepted", r: req{path: "/hooks/affinity/" + pathSecretOld, body: affinityBody("note.created", unix(t0))}, status: 200, stored: 1},
		{name: "unknown event type kept", r: req{path: hookAff, body: affinityBody("widget.exploded", unix(t0))}, status: 200, stored: 1},
		// Attio: signature before payload.
		{name: "attio unsigned", r: req{path: "/hooks/attio", body: attioOK}, status: 401},
		{name: "attio wrong signature", r: req{path: "/hooks/attio", body: attioOK, header: hdr("Attio-Signature", hmacHex("nope", attioOK))}, status: 401},
		{name: "attio tampered body", r: req{path: "/hooks/attio", body: bytes.Replace(attioOK, []byte("record.created"), []byte("record.deleted"), 1), header: attioH}, status: 401},
		{name: "attio truncated signature", r: req{path: "/hooks/attio", body: attioOK, header: hdr("Attio-Signature", attio.Sign(attioOK, attioSecret)[:63])}, status: 401},
		{name: "attio upper-cased signature", r: req{path: "/hooks/attio", body: attioOK, header: hdr("Attio-Signature", strings.ToUpper(attio.Sign(attioOK, attioSecret)))}, status: 401},
		{name: "attio rotated-out secret", r: req{path: "/hooks/attio", body: attioOK, header: hdr("Attio-Signature", attio.Sign(attioOK, attioRetired))}, status: 401},
		{name: "attio path secret on a signed source", r: req{path: "/hooks/attio/" + pathSecret, body: attioOK, header: attioH}, status: 404, emptyBody: true},
		{name: "attio signed", r: req{path: "/hooks/attio", body: attioOK, header: attioH}, status: 200, stored: 1},
		{name: "attio redelivery (same Idempotency-Key)", r: req{path: "/hooks/attio", body: attioOK, header: attioH}, status: 200},
		{name: "attio previous secret during rotation", r: req{path: "/hooks/attio", body: attioOK, header: hdr("X-Attio-Signature", attio.Sign(attioOK, attioOld), "Idempotency-Key", "idem-3")}, status: 200, stored: 1},
		{name: "attio batch of two", r: req{path: "/hooks/attio", body: attioTwo, header: attioTwoH}, status: 200, stored: 2},
		{name: "attio case-variant event type", r: req{path: "/hooks/attio", body: attioVariant, header: attioVariantH}, status: 400},
		{name: "attio timestamp variant in window", r: req{path: "/hooks/attio", body: attioOK, header: hdr("X-Attio-Timestamp", tsHeader, "X-Attio-Signature", hmacHex(attioSecret, []byte(tsHeader+"."), attioOK), "Idempotency-Key", "idem-4")}, status: 200, stored: 1},
		{name: "attio timestamp variant too old", r: req{path: "/hooks/attio", body: attioOK, header: hdr("X-Attio-Timestamp", oldTS, "X-Attio-Signature", hmacHex(attioSecret, []byte(oldTS+"."), attioOK), "Idempotency-Key", "idem-5")}, status: 400, rejected: 1},
		{name: "attio signed array", r: req{path: "/hooks/attio", body: []byte(`[]`), header: hdr("Attio-Signature", attio.Sign([]byte(`[]`), attioSecret))}, status: 400},
		{name: "attio events not a list", r: req{path: "/hooks/attio", body: []byte(`{"webhook_id":"w","events":{}}`), header: hdr("Attio-Signature", attio.Sign([]byte(`{"webhook_id":"w","events":{}}`), attioSecret))}, status: 400},
		// Standard Webhooks.
		{name: "std unsigned", r: req{path: "/hooks/std", body: stdBody}, status: 401},
		{name: "std wrong secret", r: req{path: "/hooks/std", body: stdBody, header: stdHeaders(stdBody, "msg_1", t0, stdwebhooks.NewSecret())}, status: 401},
		{name: "std signed", r: req{path: "/hooks/std", body: stdBody, header: stdHeaders(stdBody, "msg_1", t0, whSecret)}, status: 200, stored: 1},
		{name: "std redelivery (same webhook-id)", r: req{path: "/hooks/std", body: stdBody, header: stdHeaders(stdBody, "msg_1", t0.Add(time.Second), whSecret)}, status: 200},
		{name: "std too old is kept as a rejection", r: req{path: "/hooks/std", body: stdBody, header: stdHeaders(stdBody, "msg_2", t0.Add(-time.Hour), whSecret)}, status: 400, rejected: 1},
		// Guards before everything else.
		{name: "ip outside allowlist", r: req{path: "/hooks/office/" + pathSecret, body: okBody}, status: 403},
		{name: "allowlisted ip via trusted proxy", r: req{path: "/hooks/office/" + pathSecret, body: affinityBody("list.created", unix(t0)), header: hdr("X-Forwarded-For", "198.51.100.9, 203.0.113.7")}, status: 200, stored: 1},
		{name: "allowlist checked before the path secret", r: req{path: "/hooks/office/wrong", body: okBody}, status: 403},
		{name: "plain http where https is required", r: req{path: "/hooks/tls/" + pathSecret, body: okBody}, status: 403},
		{name: "https via trusted proxy", r: req{path: "/hooks/tls/" + pathSecret, body: affinityBody("file.created", unix(t0)), header: hdr("X-Forwarded-Proto", "https")}, status: 200, stored: 1},
		{name: "rate limit: first request passes", r: req{path: "/hooks/slow/" + pathSecret, body: affinityBody("field.created", unix(t0))}, status: 200, stored: 1},
		{name: "rate limit: second answers 429", r: req{path: "/hooks/slow/" + pathSecret, body: okBody}, status: 429},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	e := setupAt(t, t0, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			storedBefore, rejectedBefore := len(e.events()), len(e.rejections())
			r := e.do(tc.r)
			if r.status != tc.status {
				t.Fatalf("status %d (%q), want %d", r.status, r.body, tc.status)
			}
			if tc.emptyBody && r.body != "" {
				t.Errorf("body %q, want empty", r.body)
			}
			if tc.wantHeader[0] != "" && r.header.Get(tc.wantHeader[0]) != tc.wantHeader[1] {
				t.Errorf("%s = %q, want %q", tc.wantHeader[0], r.header.Get(tc.wantHeader[0]), tc.wantHeader[1])
			}
			if r.status == 429 && r.header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			if r.status == 200 && strings.TrimSpace(r.body) != `{"ok":true}` {
				t.Errorf("200 body %q", r.body)
			}
			if got := len(e.events()) - storedBefore; got != tc.stored {
				t.Errorf("this request stored %d events, want %d", got, tc.stored)
			}
			if got := len(e.rejections()) - rejectedBefore; got != tc.rejected {
				t.Errorf("this request kept %d rejections, want %d", got, tc.rejected)
			}
		})
	}
	t.Logf("%d contract cases", len(cases))
}

func TestUntrustedForwardedHeadersIgnored(t *testing.T) {
	e := setup(t, func(c *receiver.Config) { c.TrustedProxies = nil })
	if r := e.do(req{path: "/hooks/office/" + pathSecret, body: okBody, header: hdr("X-Forwarded-For", "203.0.113.7")}); r.status != 403 {
		t.Errorf("X-Forwarded-For from an untrusted peer: %d, want 403", r.status)
	}
	if r := e.do(req{path: "/hooks/tls/" + pathSecret, body: okBody, header: hdr("X-Forwarded-Proto", "https")}); r.status != 403 {
		t.Errorf("X-Forwarded-Proto from an untrusted peer: %d, want 403", r.status)
	}
	if n := len(e.events()); n != 0 {
		t.Errorf("%d events stored", n)
	}
}

func TestStoreFailureAnswers503AndHeals(t *testing.T) {
	fs := &faultStore{}
	e := setup(t, func(c *receiver.Config) { fs.Store = c.Store; c.Store = fs })
	fs.fail(true)
	r := e.do(req{path: hookAff, body: okBody})
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("store down: %d Retry-After %q, want 503 with Retry-After", r.status, r.header.Get("Retry-After"))
	}
	old := affinityBody("person.created", unix(t0.Add(-24*time.Hour)))
	if r := e.do(req{path: hookAff, body: old}); r.status != 503 {
		t.Fatalf("rejection while store down: %d, want 503 (nothing well-formed dropped)", r.status)
	}
	if n := len(e.events()); n != 0 {
		t.Fatalf("%d events stored while failing", n)
	}
	fs.fail(false)
	if r := e.do(req{path: hookAff, body: okBody}); r.status != 200 {
		t.Fatalf("healed: %d", r.status)
	}
	if r := e.do(req{path: hookAff, body: old}); r.status != 400 {
		t.Fatalf("healed rejection: %d", r.status)
	}
	if n, m := len(e.events()), len(e.rejections()); n != 1 || m != 1 {
		t.Fatalf("after healing: %d events %d rejections, want 1 and 1", n, m)
	}
}

func TestAttioPartialBatchFailureIsRetriedWithoutDuplicates(t *testing.T) {
	// The provider retries the whole delivery after a 503; events of the
	// batch that were already stored are then dropped as redeliveries.
	fs := &faultStore{}
	e := setup(t, func(c *receiver.Config) { fs.Store = c.Store; c.Store = fs })
	body, h := attioDelivery(3, "idem-batch")
	fs.fail(true)
	if r := e.do(req{path: "/hooks/attio", body: body, header: h}); r.status != 503 {
		t.Fatalf("status %d", r.status)
	}
	fs.fail(false)
	for range 2 {
		if r := e.do(req{path: "/hooks/attio", body: body, header: h}); r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
	}
	if n := len(e.events()); n != 3 {
		t.Fatalf("%d events, want 3", n)
	}
}

func TestDrainAnswers503(t *testing.T) {
	e := setup(t, nil)
	e.h.Drain()
	r := e.do(req{path: hookAff, body: okBody})
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("draining: %d, want 503 with Retry-After", r.status)
	}
}

func TestStoredEventFields(t *testing.T) {
	e := setup(t, nil)
	if r := e.do(req{path: hookAff, body: okBody}); r.status != 200 {
		t.Fatal(r.status)
	}
	evs := e.events()
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	ev, ds, err := e.store.GetEvent(context.Background(), evs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Source != "affinity" || ev.Provider != crmhook.ProviderAffinity || ev.Type != "person.created" {
		t.Errorf("event %+v", ev)
	}
	if !bytes.Equal(ev.Payload, okBody) {
		t.Errorf("payload not kept verbatim")
	}
	if !ev.OccurredAt.Equal(t0) || !ev.ReceivedAt.Equal(t0) {
		t.Errorf("occurred %v received %v, want %v", ev.OccurredAt, ev.ReceivedAt, t0)
	}
	sum := sha256.Sum256(okBody)
	if want := "affinity:person.created:" + unix(t0) + ":" + hex.EncodeToString(sum[:])[:16]; ev.DedupeKey != want {
		t.Errorf("dedupe key %q, want %q", ev.DedupeKey, want)
	}
	if len(ds) != 1 || ds[0].Sink != "sink-a" || ds[0].State != crmhook.StatePending {
		t.Errorf("deliveries %+v", ds)
	}
}

func TestConcurrentRedeliveriesStoreOnce(t *testing.T) {
	e := setup(t, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 32 {
		wg.Go(func() {
			hr, _ := http.NewRequest("POST", e.url+hookAff, bytes.NewReader(okBody))
			hr.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(hr)
			if err != nil {
				return
			}
			res.Body.Close()
			mu.Lock()
			codes[res.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[200] != 32 {
		t.Fatalf("statuses %v, want 32×200", codes)
	}
	if n := len(e.events()); n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}
}

// TestReplayWindowOffIsNamed: "off" is Window.Off, never a zero side. An
// unset side takes its provider's default on its own, and off lets every
// timestamp through while the signature is still checked.
func TestReplayWindowOffIsNamed(t *testing.T) {
	yearOld := unix(t0.AddDate(-1, 0, 0))
	tenSec := strconv.FormatInt(t0.Add(-10*time.Second).Unix(), 10)
	attioBody, _ := attioDelivery(1, "")
	attioStamped := func(ts, secret string) http.Header {
		return hdr("X-Attio-Timestamp", ts, "X-Attio-Signature", hmacHex(secret, []byte(ts+"."), attioBody), "Idempotency-Key", "k-"+ts+secret)
	}
	stdBody := []byte(`{"type":"contact.created"}`)
	for _, tc := range []struct {
		name   string
		window receiver.ReplayWindow
		r      func(src string) req
		status int
	}{
		{"affinity off takes a year-old delivery", receiver.ReplayWindow{Off: true},
			func(src string) req {
				return req{path: "/hooks/" + src + "/" + pathSecret, body: affinityBody("person.created", yearOld)}
			}, 200},
		{"affinity max_future alone keeps the default max age", receiver.ReplayWindow{MaxFuture: time.Minute},
			func(src string) req {
				return req{path: "/hooks/" + src + "/" + pathSecret, body: affinityBody("person.created", yearOld)}
			}, 400},
		{"affinity max_age alone keeps the default max future", receiver.ReplayWindow{MaxAge: time.Hour},
			func(src string) req {
				return req{path: "/hooks/" + src + "/" + pathSecret, body: affinityBody("person.created", unix(t0.Add(time.Hour)))}
			}, 400},
		{"attio off takes a 10 s old timestamp", receiver.ReplayWindow{Off: true},
			func(src string) req {
				return req{path: "/hooks/" + src, body: attioBody, header: attioStamped(tenSec, attioSecret)}
			}, 200},
		{"attio off still checks the signature", receiver.ReplayWindow{Off: true},
			func(src string) req {
				return req{path: "/hooks/" + src, body: attioBody, header: attioStamped(tenSec, "not-the-secret")}
			}, 401},
		{"attio default takes a 10 s old timestamp", receiver.ReplayWindow{},
			func(src string) req {
				return req{path: "/hooks/" + src, body: attioBody, header: attioStamped(tenSec, attioSecret)}
			}, 200},
		{"std off takes a year-old timestamp", receiver.ReplayWindow{Off: true},
			func(src string) req {
				return req{path: "/hooks/" + src, body: stdBody, header: stdHeaders(stdBody, "msg_off", t0.AddDate(-1, 0, 0), whSecret)}
			}, 200},
		{"std max_age alone keeps the default max future", receiver.ReplayWindow{MaxAge: 24 * time.Hour},
			func(src string) req {
				return req{path: "/hooks/" + src, body: stdBody, header: stdHeaders(stdBody, "msg_fut", t0.Add(time.Hour), whSecret)}
			}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var provider crmhook.Provider
			switch {
			case strings.HasPrefix(tc.name, "affinity"):
				provider = crmhook.ProviderAffinity
			case strings.HasPrefix(tc.name, "attio"):
				provider = crmhook.ProviderAttio
			default:
				provider = crmhook.ProviderStandardWebhooks
			}
			secrets := map[crmhook.Provider][]string{crmhook.ProviderAffinity: {pathSecret}, crmhook.ProviderAttio: {attioSecret}, crmhook.ProviderStandardWebhooks: {whSecret}}[provider]
			e := setup(t, func(c *receiver.Config) {
				c.Sources = []receiver.Source{{Name: "w", Provider: provider, Secrets: secrets, Window: tc.window}}
			})
			if r := e.do(tc.r("w")); r.status != tc.status {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tc.status)
			}
		})
	}
}

func TestReplayWindowRefusesNegativeSides(t *testing.T) {
	_, err := receiver.New(receiver.Config{Store: openStore(t, time.Now), Sources: []receiver.Source{
		{Name: "a", Provider: crmhook.ProviderAffinity, Secrets: []string{pathSecret}, Window: receiver.ReplayWindow{MaxAge: -time.Second}},
	}})
	if err == nil || !strings.Contains(err.Error(), "Off") {
		t.Fatalf("New with a negative max age: %v, want an error naming Off", err)
	}
}

// TestRejectionReasonNamesTheWindow: a too-old event is kept with a reason
// that says it is outside the replay window, and by how much.
func TestRejectionReasonNamesTheWindow(t *testing.T) {
	e := setup(t, nil)
	if r := e.do(req{path: hookAff, body: affinityBody("person.created", unix(t0.Add(-13*time.Hour)))}); r.status != 400 {
		t.Fatalf("status %d", r.status)
	}
	rs := e.rejections()
	if len(rs) != 1 {
		t.Fatalf("%d rejections", len(rs))
	}
	if !strings.Contains(rs[0].Reason, "outside the replay window") || !strings.Contains(rs[0].Reason, "13h0m0s old") || strings.Contains(rs[0].Reason, "cannot parse") {
		t.Errorf("reason %q", rs[0].Reason)
	}
}

// TestReleaseUsesTheOneClock: releasing a rejection inserts it with a dedupe
// window computed from the receiver's clock, and a second release is
// crmhook.ErrAlreadyReleased.
func TestReleaseUsesTheOneClock(t *testing.T) {
	at := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	e := setupAt(t, at, nil)
	old := affinityBody("person.created", unix(at.Add(-13*time.Hour)))
	if r := e.do(req{path: hookAff, body: old}); r.status != 400 {
		t.Fatalf("status %d", r.status)
	}
	id := e.rejections()[0].ID
	res, err := e.h.Release(context.Background(), id)
	if err != nil || res.Duplicate {
		t.Fatalf("Release: %+v, %v", res, err)
	}
	ev, _, err := e.store.GetEvent(context.Background(), res.EventID)
	if err != nil || !ev.ReceivedAt.Equal(at) {
		t.Fatalf("released event received at %v (%v), want the frozen clock %v", ev.ReceivedAt, err, at)
	}
	if _, err := e.h.Release(context.Background(), id); !errors.Is(err, crmhook.ErrAlreadyReleased) {
		t.Fatalf("second Release: %v, want ErrAlreadyReleased", err)
	}
	if _, err := e.h.Release(context.Background(), 987654); !errors.Is(err, crmhook.ErrNotFound) {
		t.Fatalf("Release of an unknown id: %v, want ErrNotFound", err)
	}
}

// TestSetSecretsSwapsWhatIsAccepted: a rotation replaces a source's secrets
// at once; both are accepted while both are listed.
func TestSetSecretsSwapsWhatIsAccepted(t *testing.T) {
	e := setup(t, nil)
	newSecret := strings.Repeat("N", 43)
	if err := e.h.SetSecrets("affinity", []string{pathSecret, newSecret}); err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{pathSecret, newSecret} {
		if r := e.do(req{path: "/hooks/affinity/" + s, body: affinityBody("person.created", unix(t0.Add(time.Duration(-i)*time.Second)))}); r.status != 200 {
			t.Fatalf("secret %d during the overlap: %d", i, r.status)
		}
	}
	if err := e.h.SetSecrets("affinity", []string{newSecret}); err != nil {
		t.Fatal(err)
	}
	if r := e.do(req{path: "/hooks/affinity/" + pathSecret, body: okBody}); r.status != 404 {
		t.Fatalf("retired secret: %d, want 404", r.status)
	}
	if err := e.h.SetSecrets("affinity", nil); err == nil {
		t.Error("SetSecrets with no secret: no error")
	}
	if err := e.h.SetSecrets("nope", []string{newSecret}); err == nil {
		t.Error("SetSecrets on an unknown source: no error")
	}
	if r := e.do(req{path: "/hooks/affinity/" + newSecret, body: affinityBody("person.updated", unix(t0))}); r.status != 200 {
		t.Fatalf("current secret after a refused change: %d", r.status)
	}
}
