package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/embedded"
	"github.com/crmhook/crmhook/sim/affinitysim"
	"github.com/crmhook/crmhook/store/postgres"
	"github.com/crmhook/crmhook/store/postgres/pgtest"
	"github.com/crmhook/crmhook/subscription"
	"github.com/crmhook/crmhook/watchdog"
)

// wdInterval is the watchdog interval of the replicas: shorter than config
// validation allows (1s), so that a second, wrong repair would show within
// a test's second.
const wdInterval = 200 * time.Millisecond

// wdSimSpy counts what the Affinity simulator is asked to do: the PUTs that
// switch a subscription on (disabled: false).
type wdSimSpy struct {
	next    http.Handler
	enables atomic.Int64
}

func (s *wdSimSpy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/webhook/") {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req struct {
			Disabled *bool `json:"disabled"`
		}
		if json.Unmarshal(body, &req) == nil && req.Disabled != nil && !*req.Disabled {
			s.enables.Add(1)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	s.next.ServeHTTP(w, r)
}

// wdFrontDoor is public_url: a load balancer in front of the replicas,
// round robin, slow: it holds each request for delay before passing it on,
// so that a repair (Affinity probes the URL before it re-enables) spans
// several watchdog intervals, as it may over a real network: a second
// watchdog checking meanwhile would find the subscription still disabled.
// Until it has replicas it answers 200 itself (so that the subscription
// can be applied before they run).
type wdFrontDoor struct {
	delay    time.Duration
	backends atomic.Pointer[[]*httputil.ReverseProxy]
	names    []string
	next     atomic.Int64
	mu       sync.Mutex
	served   map[string]int // requests proxied, by replica
}

func (f *wdFrontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bs := f.backends.Load()
	if bs == nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
		return
	}
	time.Sleep(f.delay)
	i := int(f.next.Add(1)) % len(*bs)
	f.mu.Lock()
	f.served[f.names[i]]++
	f.mu.Unlock()
	(*bs)[i].ServeHTTP(w, r)
}

func (f *wdFrontDoor) route(t *testing.T, replicas map[string]*Main) {
	t.Helper()
	var bs []*httputil.ReverseProxy
	for name, m := range replicas {
		u, err := url.Parse(m.HookURL())
		if err != nil {
			t.Fatal(err)
		}
		f.names = append(f.names, name)
		bs = append(bs, httputil.NewSingleHostReverseProxy(u))
	}
	f.backends.Store(&bs)
}

// wdLogs collects one replica's log lines.
type wdLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *wdLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *wdLogs) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// wdAlerts is the alert sink's service: it counts the operational events
// it is handed, by CloudEvent type.
type wdAlerts struct {
	mu     sync.Mutex
	byType map[string]int
}

func (a *wdAlerts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ce struct {
		Type string `json:"type"`
	}
	if err := json.NewDecoder(r.Body).Decode(&ce); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.byType[ce.Type]++
	a.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (a *wdAlerts) count(typ string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byType[typ]
}

// wdConfig is a replica's config: one Affinity source declaring its
// subscription at the simulator, its operational events sent to alertsURL.
func wdConfig(t *testing.T, storeURL, secret, simURL, publicURL, alertsURL string) *config.Config {
	t.Helper()
	cfg := &config.Config{
		Listen:    "127.0.0.1:0",
		Admin:     config.Admin{Listen: "off"},
		DataDir:   t.TempDir(),
		Store:     storeURL,
		PublicURL: publicURL,
		Sources: []config.Source{{Name: "aff", Provider: crmhook.ProviderAffinity, Secrets: []string{secret},
			Subscription: &config.Subscription{API: "v1", APIKey: affinitysim.DefaultAdminKey, APIBaseURL: simURL,
				Events: []config.SubscriptionEvent{{Type: "person.created"}, {Type: "organization.created"}}}}},
		Sinks: []config.Sink{{Name: "alerts", Type: "http", URL: alertsURL, Types: []string{"crmhook.*"}, Concurrency: 1, Timeout: time.Second}},
		Delivery: config.Delivery{
			Lease:        2 * time.Second,
			PollInterval: 100 * time.Millisecond,
			BaseDelay:    50 * time.Millisecond,
			MaxDelay:     200 * time.Millisecond,
		},
		ShutdownGrace: 3 * time.Second,
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.Watchdog.Interval = wdInterval // below the validated minimum, on purpose
	return cfg
}

// wdStartReplica opens and runs one replica until the test ends.
func wdStartReplica(t *testing.T, name string, cfg *config.Config, logs io.Writer) *Main {
	t.Helper()
	m := &Main{Config: cfg, Owner: name, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	if err := m.Open(t.Context()); err != nil {
		t.Fatalf("replica %s: open: %v", name, err)
	}
	if m.Watchdog == nil {
		t.Fatalf("replica %s runs no watchdog", name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica %s: run: %v", name, err)
		}
		m.Close()
	})
	return m
}

// Two receivers on one Postgres: one watchdog acts, not two. Both replicas
// run the watchdog with repair on; Affinity disables the subscription; it is
// re-enabled once (one PUT disabled:false at Affinity, one probe answered by
// a replica), and exactly one gap and one reenabled event are recorded.
func TestWatchdogTwoReplicasOnePostgresRepairOnce(t *testing.T) {
	storeURL := pgtest.Schema(t)
	secret := embedded.RandomSecret(32)

	sim, err := affinitysim.New(affinitysim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	spy := &wdSimSpy{next: sim}
	simSrv := httptest.NewServer(spy)
	t.Cleanup(simSrv.Close)

	front := &wdFrontDoor{delay: 3 * wdInterval, served: map[string]int{}}
	frontSrv := httptest.NewServer(front)
	t.Cleanup(frontSrv.Close)

	alerts := &wdAlerts{byType: map[string]int{}}
	alertsSrv := httptest.NewServer(alerts)
	t.Cleanup(alertsSrv.Close)

	store, err := postgres.Open(t.Context(), postgres.Config{URL: storeURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx := t.Context()

	// `crmhook subscriptions apply`, before serve: the subscription exists.
	applyCfg := wdConfig(t, storeURL, secret, simSrv.URL, frontSrv.URL, alertsSrv.URL)
	mgr := &subscription.Manager{Config: applyCfg, Store: store}
	plan, err := mgr.Plan(ctx, subscription.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Apply(ctx, plan); err != nil {
		t.Fatalf("apply: %v", err)
	}
	whs := sim.Webhooks()
	if len(whs) != 1 || whs[0].Disabled {
		t.Fatalf("after apply the simulator holds %+v, want one active subscription", whs)
	}
	id := whs[0].ID
	idStr := strconv.FormatInt(id, 10)

	// Two replicas behind the front door, both with the watchdog on.
	logs := map[string]*wdLogs{"r0": {}, "r1": {}}
	replicas := map[string]*Main{}
	for _, name := range []string{"r0", "r1"} {
		replicas[name] = wdStartReplica(t, name, wdConfig(t, storeURL, secret, simSrv.URL, frontSrv.URL, alertsSrv.URL), logs[name])
	}
	front.route(t, replicas)

	// The watchdog has seen the subscription healthy.
	waitFor(t, "a healthy check", 10*time.Second, func() bool {
		sts, err := store.ListSubscriptionStates(ctx)
		return err == nil && len(sts) == 1 && sts[0].SubscriptionID == idStr && sts[0].Status == "active" && !sts[0].LastHealthyAt.IsZero()
	})

	// Affinity disables it (here through the SDK, as the 10 hours of
	// failed deliveries would).
	client, err := affinity.NewClient(affinitysim.DefaultAdminKey, affinity.WithBaseURL(simSrv.URL))
	if err != nil {
		t.Fatal(err)
	}
	disabledAt := time.Now()
	if _, _, err := client.Webhooks.Disable(ctx, id); err != nil {
		t.Fatalf("disable: %v", err)
	}

	waitFor(t, "the subscription re-enabled", 15*time.Second, func() bool {
		whs := sim.Webhooks()
		return len(whs) == 1 && !whs[0].Disabled
	})
	reenabled := func() []crmhook.Event {
		evs, err := store.ListEvents(ctx, crmhook.EventFilter{Source: watchdog.OperationalSource, Type: watchdog.TypeReenabled})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	waitFor(t, "the reenabled event stored", 10*time.Second, func() bool { return len(reenabled()) > 0 })
	waitFor(t, "the reenabled event delivered", 10*time.Second, func() bool { return alerts.count(watchdog.TypeReenabled) > 0 })
	// Several more intervals: a second replica acting would show by now.
	time.Sleep(6 * wdInterval)

	if n := spy.enables.Load(); n != 1 {
		t.Errorf("Affinity was asked to enable the subscription %d times, want exactly once", n)
	}
	var probes []affinitysim.Delivery
	for _, p := range sim.Probes() {
		if p.SubscriptionID == id {
			probes = append(probes, p)
		}
	}
	if len(probes) != 1 || !probes[0].OK {
		var got []int // statuses only: the URLs hold the path secret
		for _, p := range probes {
			got = append(got, p.StatusCode)
		}
		t.Errorf("re-enable probes answered %v, want one, answered 2xx", got)
	}
	front.mu.Lock()
	served := front.served["r0"] + front.served["r1"]
	front.mu.Unlock()
	if served != 1 {
		t.Errorf("the replicas answered %d requests at public_url, want the one probe", served)
	}

	gaps, err := store.ListGaps(ctx, "aff", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) != 1 {
		t.Fatalf("gaps %+v, want exactly one", gaps)
	}
	if g := gaps[0]; g.SubscriptionID != idStr || g.From.IsZero() || g.To.Before(g.From) || g.To.Before(disabledAt) || g.To.Sub(g.From) > 10*time.Second {
		t.Errorf("gap %+v: want subscription %s, from the last healthy check to the re-enable (after %v), seconds long", g, idStr, disabledAt)
	}
	evs := reenabled()
	if len(evs) != 1 {
		t.Fatalf("%d reenabled events stored, want exactly one", len(evs))
	}
	var p watchdog.Payload
	if err := json.Unmarshal(evs[0].Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Source != "aff" || p.SubscriptionID != idStr || !p.Repaired || p.Gap == nil || !wdSameMicro(p.Gap.From, gaps[0].From) || !wdSameMicro(p.Gap.To, gaps[0].To) {
		t.Errorf("reenabled payload %s, want aff %s repaired with the recorded gap", evs[0].Payload, idStr)
	}
	disabled, err := store.ListEvents(ctx, crmhook.EventFilter{Source: watchdog.OperationalSource, Type: watchdog.TypeDisabled})
	if err != nil || len(disabled) != 1 {
		t.Errorf("disabled events: %d (%v), want exactly one", len(disabled), err)
	}
	if n := alerts.count(watchdog.TypeReenabled); n != 1 {
		t.Errorf("the alert sink got the reenabled event %d times, want once", n)
	}
	acted := 0
	for name, l := range logs {
		if n := l.count(`msg="watchdog: subscription disabled"`); n > 0 {
			acted++
			t.Logf("%s's watchdog acted (%d report)", name, n)
		}
	}
	if acted != 1 {
		t.Errorf("%d replicas' watchdogs acted, want exactly one", acted)
	}
}

// wdSameMicro compares times as the store keeps them: to the microsecond.
func wdSameMicro(a, b time.Time) bool {
	return a.Sub(b).Abs() < time.Microsecond
}
