package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/internal/admin"
	"github.com/crmhook/crmhook/store/sqlite"
)

// brokenStore fails every listing, as a store that lost its disk does.
type brokenStore struct{ crmhook.Store }

func (brokenStore) ListEvents(context.Context, crmhook.EventFilter) ([]crmhook.Event, error) {
	return nil, fmt.Errorf("sqlite: list events: disk I/O error at /var/lib/crmhook/crmhook.db: %w", crmhook.ErrUnavailable)
}

type releaser struct{ err error }

func (r releaser) Release(context.Context, int64) (crmhook.InsertResult, error) {
	return crmhook.InsertResult{}, r.err
}

func newServer(t *testing.T, st crmhook.Store, rel admin.Releaser, control crmhook.ControlStore) *httptest.Server {
	t.Helper()
	s := &admin.Server{Store: st, Releaser: rel, Sinks: []string{"svc", "audit"}, Token: "tok", Control: control}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "a.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestErrorsAreStableAndOneLine: no answer carries the store's internal
// error chain; a second release is a 409, not a 503 that asks to retry.
func TestErrorsAreStableAndOneLine(t *testing.T) {
	st := openStore(t)
	srv := newServer(t, brokenStore{st}, releaser{err: fmt.Errorf("rejection 7: %w", crmhook.ErrAlreadyReleased)}, nil)
	code, body := call(t, srv, "GET", "/api/events", "")
	if code != 503 || strings.Contains(body, "disk I/O") || strings.Contains(body, "/var/lib") {
		t.Errorf("store failure: %d %s; want 503 without internals", code, body)
	}
	code, body = call(t, srv, "POST", "/api/rejections/7/release", "")
	if code != http.StatusConflict || !strings.Contains(body, "already released") || strings.Contains(body, "rejection 7") {
		t.Errorf("second release: %d %s; want 409 with a stable message", code, body)
	}
	srv2 := newServer(t, st, releaser{err: fmt.Errorf("x: %w", crmhook.ErrNotFound)}, nil)
	if code, body := call(t, srv2, "POST", "/api/rejections/7/release", ""); code != 404 {
		t.Errorf("unknown rejection: %d %s", code, body)
	}
	code, body = call(t, srv2, "POST", "/api/replay", `{"state":"dead","sink":"nope"}`)
	if code != 400 || !strings.Contains(body, `no sink is named \"nope\"`) || !strings.Contains(body, "svc, audit") {
		t.Errorf("replay to an unknown sink: %d %s", code, body)
	}
	if code, _ := call(t, srv2, "POST", "/api/replay", `{"state":"dead","sink":"svc"}`); code != 200 {
		t.Errorf("replay to a configured sink: %d", code)
	}
}

// TestHealthShowsSubscriptionsAndNeverFailsForThem: a disabled subscription
// shows in /healthz's body, which stays 200.
func TestHealthShowsSubscriptionsAndNeverFailsForThem(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	now := time.Now()
	if err := st.PutSubscriptionState(ctx, crmhook.SubscriptionState{Source: "affinity", SubscriptionID: "17", Status: "disabled", LastCheckedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordGap(ctx, crmhook.Gap{Source: "affinity", SubscriptionID: "17", From: now.Add(-time.Hour), To: now}); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, st, releaser{}, st)
	res, err := http.Get(srv.URL + "/healthz") // no token: health is for orchestrators
	if err != nil {
		t.Fatal(err)
	}
	var health struct {
		OK            bool                     `json:"ok"`
		Subscriptions []admin.SubscriptionJSON `json:"subscriptions"`
	}
	err = json.NewDecoder(res.Body).Decode(&health)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || !health.OK || len(health.Subscriptions) != 1 || health.Subscriptions[0].Status != "disabled" {
		t.Fatalf("healthz: %d %+v %v", res.StatusCode, health, err)
	}
	code, body := call(t, srv, "GET", "/api/subscriptions", "")
	var subs struct {
		Gaps []admin.GapJSON `json:"gaps"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &subs) != nil || len(subs.Gaps) != 1 || subs.Gaps[0].Seconds != 3600 {
		t.Errorf("/api/subscriptions: %d %s", code, body)
	}
}

func TestAPIRefusesWithoutTheToken(t *testing.T) {
	srv := newServer(t, openStore(t), releaser{}, nil)
	res, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d", res.StatusCode)
	}
}
