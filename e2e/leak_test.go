package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/internal/admin"
	"github.com/crmhook/crmhook/internal/app"
	"github.com/crmhook/crmhook/stdwebhooks"
	"github.com/crmhook/crmhook/store/sqlite"
)

// leakNeedles are the strings that must never appear in a log line: the
// payloads' PII and every secret of the configuration.
func leakNeedles() map[string]string {
	return map[string]string{
		"payload email":        piiEmail,
		"payload first_name":   piiFirst,
		"payload last_name":    piiLast,
		"path secret":          pathSecret,
		"second path secret":   pathSecret2,
		"attio signing secret": attioSecret,
		"std signing secret":   stdSecret,
		"std signing key":      strings.TrimPrefix(stdSecret, "whsec_"),
		"sink signing secret":  sinkSecret,
		"sink signing key":     strings.TrimPrefix(sinkSecret, "whsec_"),
		"admin token":          adminToken,
	}
}

// assertNoLeaks fails for every log line that holds a needle. The line is
// shown with the needle masked, so the failure does not leak it further.
func assertNoLeaks(t *testing.T, what, logs string) {
	t.Helper()
	if strings.TrimSpace(logs) == "" {
		t.Errorf("%s: no log output captured; the leak check would prove nothing", what)
		return
	}
	needles := leakNeedles()
	for i, line := range strings.Split(logs, "\n") {
		for name, needle := range needles {
			if strings.Contains(line, needle) {
				t.Errorf("%s: line %d leaks the %s: %s", what, i+1, name, strings.ReplaceAll(line, needle, "<"+name+">"))
			}
		}
	}
}

// TestLogLeaks runs contract cases with PII in every payload, and sink and
// store faults, through an app logging JSON at debug level, then searches
// every line for the PII and the secrets. (Every other in-process test and
// the process tests run the same check on their own logs.) The event type and
// the dedupe key are logged by design: they are provider identifiers (type
// names, Idempotency-Key, webhook-id), not payload data.
func TestLogLeaks(t *testing.T) {
	t.Parallel()
	sink := newSink(t)
	var calls atomic.Int64
	sink.setBehaviour(func(string, int) reply {
		switch calls.Add(1) {
		case 1:
			return reply{status: http.StatusInternalServerError, body: piiEmail}
		case 2:
			return reply{status: http.StatusGone, body: piiFirst}
		case 3:
			return reply{status: http.StatusTooManyRequests, retryAfter: "0"}
		case 4:
			return reply{status: 200, delay: 1500 * time.Millisecond} // over the sink timeout
		}
		return reply{status: 200}
	})
	var fs *faultStore
	h := newHarness(t, sink, cfgOpts{sinkURL: sink.srv.URL + "/in/" + pathSecret2 + "?token=" + adminToken}, func(m *app.Main) {
		st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "crmhook.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fs = &faultStore{Store: st}
		m.Store = fs
	})
	now := time.Now()
	person := fmt.Sprintf(`{"id":7,"type":0,"first_name":%q,"last_name":%q,"primary_email":%q,"emails":[%q]}`, piiFirst, piiLast, piiEmail, piiEmail)
	aff := func(typ, body, sentAt string) []byte {
		return []byte(`{"type":` + typ + `,"body":` + body + `,"sent_at":` + sentAt + `}`)
	}
	unix := strconv.FormatInt(now.Unix(), 10)
	attioEvent := fmt.Sprintf(`{"webhook_id":"5ff8d55e-55a1-4bc5-8a21-4f8b7c3c2f3a","events":[{"event_type":"record.created","id":{"workspace_id":"w","object_id":"o","record_id":"r"},"actor":{"type":"workspace-member","id":"a"},"email":%q,"first_name":%q}]}`, piiEmail, piiFirst)
	attioSigned := func(body string, secret string) http.Header {
		return http.Header{"Attio-Signature": {attio.Sign([]byte(body), secret)}, "Idempotency-Key": {"idem-1"}}
	}
	stdBody := fmt.Sprintf(`{"type":"contact.created","data":{"email":%q,"first_name":%q}}`, piiEmail, piiFirst)
	stdSigned := func(body, secret, id string) http.Header {
		s, err := stdwebhooks.NewSigner(secret)
		if err != nil {
			t.Fatal(err)
		}
		hd := http.Header{}
		s.SetHeaders(hd, id, now, []byte(body))
		return hd
	}
	affURL := h.run.hook + "/hooks/aff/" + pathSecret
	attioURL := h.run.hook + "/hooks/attio"
	stdURL := h.run.hook + "/hooks/std/" + pathSecret2
	cases := []struct {
		name   string
		url    string
		body   []byte
		header http.Header
		status int
	}{
		{"affinity accepted", affURL, aff(`"person.created"`, person, unix), nil, 200},
		{"affinity redelivery", affURL, aff(`"person.created"`, person, unix), nil, 200},
		{"affinity old secret", h.run.hook + "/hooks/aff/" + pathSecret2, aff(`"person.updated"`, person, unix), nil, 200},
		{"affinity unknown type", affURL, aff(`"person.archived"`, person, unix), nil, 200},
		{"affinity stale, kept as rejection", affURL, aff(`"person.created"`, person, strconv.FormatInt(now.Add(-13*time.Hour).Unix(), 10)), nil, 400},
		{"affinity sent_at holds PII", affURL, aff(`"person.created"`, person, strconv.Quote(piiEmail)), nil, 400},
		{"affinity body is a string", affURL, aff(`"person.created"`, strconv.Quote(piiEmail), unix), nil, 400},
		{"affinity truncated", affURL, aff(`"person.created"`, person, unix)[:60], nil, 400},
		{"affinity type is a number", affURL, aff(`7`, person, unix), nil, 400},
		{"affinity unknown key", affURL, []byte(`{"type":"person.created","body":` + person + `,"sent_at":` + unix + `,"` + piiEmail + `":1}`), nil, 0}, // tolerated or refused: either way not logged
		{"affinity not UTF-8", affURL, aff(`"person.created"`, `{"n":"`+piiFirst+"\xff"+`"}`, unix), nil, 400},
		{"affinity wrong path secret", h.run.hook + "/hooks/aff/" + pathSecret[1:] + "x", aff(`"person.created"`, person, unix), nil, 404},
		{"affinity text/plain", affURL, aff(`"person.created"`, person, unix), http.Header{"Content-Type": {"text/plain; " + piiEmail}}, 415},
		{"secure over plain HTTP", h.run.hook + "/hooks/secure/" + pathSecret, aff(`"person.created"`, person, unix), nil, 403},
		{"attio accepted", attioURL, []byte(attioEvent), attioSigned(attioEvent, attioSecret), 200},
		{"attio bad signature", attioURL, []byte(attioEvent), attioSigned(attioEvent, attioSecret+"x"), 401},
		{"attio signature of another body", attioURL, []byte(attioEvent), attioSigned(attioEvent+" ", attioSecret), 401},
		{"attio bad JSON", attioURL, []byte(attioEvent[:80]), attioSigned(attioEvent[:80], attioSecret), 400},
		{"attio no events", attioURL, []byte(`{"webhook_id":"` + piiEmail + `","events":[]}`), attioSigned(`{"webhook_id":"`+piiEmail+`","events":[]}`, attioSecret), 400},
		{"std accepted", stdURL, []byte(stdBody), stdSigned(stdBody, stdSecret, "msg_1"), 200},
		{"std bad signature", stdURL, []byte(stdBody), stdSigned(stdBody, stdwebhooks.NewSecret(), "msg_2"), 401},
		{"std not an object", stdURL, []byte(`["` + piiEmail + `"]`), stdSigned(`["`+piiEmail+`"]`, stdSecret, "msg_3"), 400},
	}
	for _, c := range cases {
		status, _ := post(http.DefaultClient, c.url, c.body, c.header)
		if c.status != 0 && status != c.status {
			t.Errorf("%s: status %d, want %d", c.name, status, c.status)
		}
	}
	// The store fails: 503s are logged with the store's error.
	fs.failing.Store(true)
	if status, _ := post(http.DefaultClient, affURL, aff(`"person.deleted"`, person, unix), nil); status != http.StatusServiceUnavailable {
		t.Errorf("store down: status %d, want 503", status)
	}
	if status, _ := post(http.DefaultClient, affURL, aff(`"person.created"`, person, strconv.FormatInt(now.Add(-13*time.Hour).Unix(), 10)), nil); status != http.StatusServiceUnavailable {
		t.Errorf("store down, stale event: status %d, want 503", status)
	}
	fs.failing.Store(false)
	// Wait for the sink faults to play out: every accepted event delivered or dead.
	eventually(t, 20*time.Second, "the sink faults to play out", func() bool {
		var st admin.StatsJSON
		adminCall(t, h.run.admin, "GET", "/api/stats", "", &st)
		return calls.Load() >= 5 && st.Pending == 0
	})
	// Admin API traffic, right and wrong.
	adminCall(t, h.run.admin, "GET", "/api/events?limit=5", "", nil)
	adminCall(t, h.run.admin, "POST", "/api/replay", `{"state":"dead"}`, nil)
	req, _ := http.NewRequest("GET", h.run.admin+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken+"-wrong-"+piiEmail)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
	}
	// Server-level errors reach the log through http.Server.ErrorLog.
	conn := rawConn(t, h.run.hook)
	fmt.Fprintf(conn, "POST /hooks/aff/%s HTTP/1.1\r\nHost: %s\r\nX-Bad\r\n\r\n", pathSecret, piiEmail)
	serverHangsUp(t, conn)

	h.run.stop(t)
	logs := h.logs.String()
	if !strings.Contains(logs, `"level":"DEBUG"`) || !strings.Contains(logs, "event stored") {
		t.Fatalf("the log holds no debug and store lines; the check would prove nothing")
	}
	assertNoLeaks(t, "debug JSON log", logs)
}
