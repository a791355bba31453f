package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/internal/app"
	"github.com/crmhook/crmhook/sim/affinitysim"
	"github.com/crmhook/crmhook/sim/attiosim"
)

// flakyProxy stands between the simulators and the receiver. It forwards
// every request, but answers 502 to the first copy of each delivery even
// though the receiver stored it: the provider then retries the same bytes,
// which is exactly a redelivery the receiver must acknowledge and drop.
type flakyProxy struct {
	target string
	mu     sync.Mutex
	seen   map[[32]byte]int // body hash → requests
}

func (p *flakyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequest(r.Method, p.target+r.URL.Path, bytes.NewReader(body))
	req.Header = r.Header.Clone()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	sum := sha256.Sum256(body)
	p.mu.Lock()
	p.seen[sum]++
	first := p.seen[sum] == 1
	p.mu.Unlock()
	// Affinity's probe must pass at once, or the subscription is refused.
	if first && res.StatusCode == http.StatusOK && !bytes.Contains(body, []byte(`"sample.webhook"`)) {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	w.WriteHeader(res.StatusCode)
}

func (p *flakyProxy) maxCopies() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.seen {
		n = max(n, c)
	}
	return n
}

// TestSimulatorsToSink runs the real wiring with the provider simulators as
// senders: every Affinity event type and filtered Attio events travel from
// the simulators through the receiver to a signed HTTP sink, each exactly
// once although every delivery is retried by its provider.
func TestSimulatorsToSink(t *testing.T) {
	ctx := context.Background()
	sink := newSink(t)

	// Attio first: the webhook's secret, shown once, goes into the config.
	asim, err := attiosim.New(attiosim.Config{TimeScale: 100000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(asim.Close)
	asrv := httptest.NewServer(asim)
	t.Cleanup(asrv.Close)
	ac, err := attio.NewClient(attiosim.DefaultToken, attio.WithBaseURL(asrv.URL+"/v2"))
	if err != nil {
		t.Fatal(err)
	}
	onlyMembers := attio.And(attio.Equals("actor.type", "workspace-member"))
	wh, _, err := ac.Webhooks.Create(ctx, &attio.WebhookCreateRequest{
		TargetURL: "http://127.0.0.1:9/hooks/attio", // moved to the receiver once it listens
		Subscriptions: []attio.Subscription{
			{EventType: "record.created", Filter: onlyMembers},
			{EventType: "list-entry.created"},
			{EventType: "note.created"},
		},
	})
	if err != nil || wh.Secret == "" {
		t.Fatalf("attio create: %v (secret returned: %v)", err, wh != nil && wh.Secret != "")
	}

	logs := &lockedBuffer{}
	cfg := parseConfig(t, cfgOpts{dataDir: t.TempDir(), sinkURL: sink.srv.URL})
	for i := range cfg.Sources {
		if cfg.Sources[i].Name == "attio" {
			cfg.Sources[i].Secrets = []string{wh.Secret}
		}
	}
	run := startApp(t, &app.Main{Config: cfg, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	proxy := &flakyProxy{target: run.hook, seen: map[[32]byte]int{}}
	psrv := httptest.NewServer(proxy)
	t.Cleanup(psrv.Close)

	target := psrv.URL + "/hooks/attio"
	if _, _, err := ac.Webhooks.Update(ctx, wh.ID.WebhookID, &attio.WebhookUpdateRequest{TargetURL: &target}); err != nil {
		t.Fatalf("attio update: %v", err)
	}

	// Affinity: a subscription to every event type; the probe goes through.
	fsim, err := affinitysim.New(affinitysim.Config{TimeScale: 100000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fsim.Close)
	fsrv := httptest.NewServer(fsim)
	t.Cleanup(fsrv.Close)
	fc, err := affinity.NewClient(affinitysim.DefaultAdminKey, affinity.WithBaseURL(fsrv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := fc.Webhooks.Create(ctx, &affinity.CreateWebhookRequest{WebhookURL: psrv.URL + "/hooks/aff/" + pathSecret}); err != nil {
		t.Fatalf("affinity create (probe through the receiver): %v", err)
	}

	types := affinity.EventTypes()
	for _, typ := range types {
		if _, err := fsim.Trigger(ctx, string(typ), nil); err != nil {
			t.Fatalf("trigger %s: %v", typ, err)
		}
	}
	attioWanted := 0
	for _, tc := range []struct {
		typ, override string
		wanted        bool
	}{
		{"record.created", `{"actor":{"type":"workspace-member"}}`, true},
		{"record.created", `{"actor":{"type":"system"}}`, false}, // filtered out by Attio
		{"list-entry.created", "", true},
		{"note.created", "", true},
		{"task.created", "", false}, // not subscribed
	} {
		var override []byte
		if tc.override != "" {
			override = []byte(tc.override)
		}
		if _, err := asim.Trigger(ctx, tc.typ, override); err != nil {
			t.Fatalf("attio trigger %s: %v", tc.typ, err)
		}
		if tc.wanted {
			attioWanted++
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := fsim.WaitIdle(wctx); err != nil {
		t.Fatalf("affinity sim: %v", err)
	}
	if err := asim.WaitIdle(wctx); err != nil {
		t.Fatalf("attio sim: %v", err)
	}

	want := len(types) + attioWanted
	eventually(t, 30*time.Second, "every event at the sink", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.delivered) >= want
	})
	time.Sleep(200 * time.Millisecond) // room for a wrong second delivery to show up
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.delivered) != want {
		t.Errorf("%d distinct events at the sink, want %d (29 Affinity types + %d Attio)", len(sink.delivered), want, attioWanted)
	}
	perType := map[string]int{}
	for key, ids := range sink.delivered {
		if len(ids) != 1 {
			t.Errorf("event %s delivered %d times", key, len(ids))
		}
		perType[strings.SplitN(key, ":", 3)[1]]++
	}
	for _, typ := range types {
		if perType[string(typ)] != 1 {
			t.Errorf("affinity %s reached the sink %d times, want 1", typ, perType[string(typ)])
		}
	}
	if perType["sample.webhook"] != 0 || sink.badSig != 0 {
		t.Errorf("probe delivered %d times, %d bad signatures", perType["sample.webhook"], sink.badSig)
	}
	if n := proxy.maxCopies(); n < 2 {
		t.Errorf("the providers never redelivered (max %d copies); the test proves nothing about dedupe", n)
	}
	for _, d := range asim.Deliveries() {
		if d.StatusCode != 0 && d.StatusCode != 200 && d.StatusCode != 502 {
			t.Errorf("attio delivery answered %d", d.StatusCode)
		}
	}
	t.Logf("%d events at the sink, each once; providers sent up to %d copies of a delivery", len(sink.delivered), proxy.maxCopies())
	run.stop(t)
	assertNoLeaks(t, "simulators run", logs.String())
}
