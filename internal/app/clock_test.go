package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
)

// TestOneClockFreezesEveryComponent runs a whole Main on a clock frozen in
// 2031: the receiver's window, the store's dedupe windows and timestamps,
// the dispatcher, the HTTP sink's signature and the admin release all read
// it, so the run behaves as it would on that date.
func TestOneClockFreezesEveryComponent(t *testing.T) {
	frozen := time.Date(2031, 7, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return frozen }
	var sinkStamp atomic.Value
	sinkStamp.Store("")
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sinkStamp.Store(r.Header.Get("webhook-timestamp"))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()
	secret := strings.Repeat("k", 40)
	cfg := &config.Config{
		Listen:   "127.0.0.1:0",
		Admin:    config.Admin{Listen: "127.0.0.1:0", Token: "admin-token"},
		DataDir:  t.TempDir(),
		Sources:  []config.Source{{Name: "affinity", Provider: crmhook.ProviderAffinity, Secrets: []string{secret}}},
		Sinks:    []config.Sink{{Name: "svc", Type: "http", URL: sink.URL, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Concurrency: 1, Timeout: time.Second}},
		Delivery: config.Delivery{PollInterval: 20 * time.Millisecond},
	}
	cfg.Store = "sqlite://" + filepath.Join(cfg.DataDir, "c.db")
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: cfg, Now: clock}
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done; m.Close() }()

	post := func(sentAt time.Time) int {
		body := fmt.Sprintf(`{"type":"person.created","body":{"id":1},"sent_at":%d}`, sentAt.Unix())
		res, err := http.Post(m.HookURL()+"/hooks/affinity/"+secret, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	// In the window on the frozen date, though years from today.
	if code := post(frozen.Add(-time.Minute)); code != 200 {
		t.Fatalf("in-window delivery: %d", code)
	}
	// The same delivery again is a redelivery: its dedupe window is judged
	// on the frozen clock by the store too.
	if code := post(frozen.Add(-time.Minute)); code != 200 {
		t.Fatalf("redelivery: %d", code)
	}
	evs, err := m.Store.ListEvents(t.Context(), crmhook.EventFilter{})
	if err != nil || len(evs) != 1 || !evs[0].ReceivedAt.Equal(frozen) {
		t.Fatalf("events %+v %v: want one, received at %v", evs, err, frozen)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sinkStamp.Load().(string) == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got, want := sinkStamp.Load().(string), fmt.Sprint(frozen.Unix()); got != want {
		t.Errorf("sink webhook-timestamp %q, want the frozen clock's %s", got, want)
	}
	// A delivery 13 hours old on the frozen clock is kept as a rejection,
	// and releasing it stores the event as received at the frozen instant.
	if code := post(frozen.Add(-13 * time.Hour)); code != 400 {
		t.Fatalf("stale delivery: %d", code)
	}
	rs, err := m.Store.ListRejections(t.Context(), crmhook.RejectionFilter{})
	if err != nil || len(rs) != 1 || !rs[0].RejectedAt.Equal(frozen) {
		t.Fatalf("rejections %+v %v", rs, err)
	}
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/rejections/%d/release", m.AdminURL(), rs[0].ID), nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	for i, want := range []int{200, 409} {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("release #%d: %d %s, want %d", i+1, res.StatusCode, b, want)
		}
		if want == 409 && (strings.Contains(string(b), "sqlite") || !strings.Contains(string(b), "already released")) {
			t.Errorf("409 body %s: want a stable message without internals", b)
		}
	}
}
