package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/sim/affinitysim"
	"github.com/crmhook/crmhook/sim/attiosim"
	"github.com/crmhook/crmhook/watchdog"
)

// outageSink is an HTTP sink target that keeps every CloudEvent it gets.
type outageSink struct {
	mu     sync.Mutex
	events []outageEvent
	srv    *httptest.Server
}

type outageEvent struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

func newOutageSink(t *testing.T) *outageSink {
	s := &outageSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev outageEvent
		b, _ := io.ReadAll(r.Body)
		if json.Unmarshal(b, &ev) == nil {
			s.mu.Lock()
			s.events = append(s.events, ev)
			s.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// of returns the events of type typ received so far.
func (s *outageSink) of(typ string) []outageEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []outageEvent
	for _, e := range s.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// outageReceiver is one `crmhook serve` on a fixed address, so that it can
// be stopped and started again where the provider sends.
type outageReceiver struct {
	t      *testing.T
	cfg    *config.Config
	m      *Main
	cancel context.CancelFunc
	done   chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (r *outageReceiver) start() {
	r.t.Helper()
	r.m = &Main{Config: r.cfg, Stdout: io.Discard, SecretsRefresh: 100 * time.Millisecond}
	if err := r.m.Open(context.Background()); err != nil {
		r.t.Fatalf("open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.m.Run(ctx) }()
}

func (r *outageReceiver) stop() {
	r.t.Helper()
	if r.m == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("run: %v", err)
	}
	r.m.Close()
	r.m = nil
}

func outageConfig(t *testing.T, addr, sources string, sink string) *config.Config {
	t.Helper()
	y := "listen: " + addr + "\nadmin: {listen: \"off\"}\npublic_url: http://" + addr + "\n" +
		"store: sqlite://" + filepath.Join(t.TempDir(), "c.db") + "\nwatchdog: {interval: 1s}\n" +
		"delivery: {base_delay: 50ms, max_delay: 200ms, poll_interval: 50ms}\n" + sources +
		"sinks:\n  - {name: all, type: http, url: " + sink + "}\n"
	cfg, err := config.Parse([]byte(y), os.Getenv)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return cfg
}

var personSeq atomic.Int64

// personBody is a person.created body with its own id: Affinity's dedupe
// key is type, sent_at (seconds) and the body, so two samples sent within a
// second would be one redelivery.
func personBody() json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":%d,"type":0,"first_name":"Ada","last_name":"Lovelace","primary_email":"ada@example.com","emails":["ada@example.com"],"organization_ids":[]}`, personSeq.Add(1)))
}

// TestOutageAffinityReenabledWithGap: the receiver is down, Affinity
// retries for its (time-scaled) 10 hours and disables the subscription;
// the receiver starts again and within one watchdog interval the
// subscription is active again, the sinks have crmhook.subscription.reenabled
// with the gap, and events triggered after that arrive.
func TestOutageAffinityReenabledWithGap(t *testing.T) {
	sim, err := affinitysim.New(affinitysim.Config{TimeScale: 200000, DeliveryTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	sink := newOutageSink(t)
	addr := freeAddr(t)
	secret := strings.Repeat("s", 43)
	cfg := outageConfig(t, addr, `sources:
  - name: affinity
    provider: affinity
    secrets: [`+secret+`]
    subscription: {api: v1, api_key: sim-admin-key, api_base_url: `+simSrv.URL+`, events: [person.created]}
`, sink.srv.URL)
	r := &outageReceiver{t: t, cfg: cfg}
	r.start()
	t.Cleanup(r.stop)

	// Declared, so the watchdog makes it so: the subscription is created.
	waitFor(t, "the watchdog to create the subscription", 10*time.Second, func() bool { return len(sim.Webhooks()) == 1 })
	waitFor(t, "crmhook.subscription.missing in the sink", 10*time.Second, func() bool { return len(sink.of(watchdog.TypeMissing)) == 1 })
	ctx := context.Background()
	if _, err := sim.Trigger(ctx, "person.created", personBody()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first event in the sink", 10*time.Second, func() bool { return len(sink.of("affinity.person.created")) == 1 })
	cs := r.m.controlStore()
	lastEvent, err := cs.LastEventAt(ctx, "affinity")
	if err != nil || lastEvent.IsZero() {
		t.Fatalf("last event: %v %v", lastEvent, err)
	}

	// The outage: Affinity's retries run out and it disables the subscription.
	r.stop()
	outageStart := time.Now()
	for range 3 {
		if _, err := sim.Trigger(ctx, "person.created", personBody()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "Affinity to disable the subscription", 20*time.Second, func() bool {
		whs := sim.Webhooks()
		return len(whs) == 1 && whs[0].Disabled
	})
	if res, err := sim.Trigger(ctx, "person.created", personBody()); err != nil || len(res.Deliveries) != 0 {
		t.Fatalf("a disabled subscription still receives: %+v %v", res, err)
	}

	// Back up: within one watchdog interval it is enabled again.
	restart := time.Now()
	r.start()
	waitFor(t, "the subscription re-enabled", 3*time.Second, func() bool {
		whs := sim.Webhooks()
		return len(whs) == 1 && !whs[0].Disabled
	})
	t.Logf("re-enabled %s after the restart (outage %s)", time.Since(restart).Round(time.Millisecond), restart.Sub(outageStart).Round(time.Millisecond))
	waitFor(t, "crmhook.subscription.reenabled in the sink", 10*time.Second, func() bool { return len(sink.of(watchdog.TypeReenabled)) == 1 })
	if n := len(sink.of(watchdog.TypeDisabled)); n != 1 {
		t.Errorf("%d crmhook.subscription.disabled events, want 1", n)
	}
	var p watchdog.Payload
	if err := json.Unmarshal(sink.of(watchdog.TypeReenabled)[0].Data, &p); err != nil || p.Gap == nil {
		t.Fatalf("reenabled payload %s: %v", sink.of(watchdog.TypeReenabled)[0].Data, err)
	}
	if !p.Gap.From.Equal(lastEvent) || p.Gap.To.Before(restart) || p.Gap.Seconds <= 0 || p.Source != "affinity" || !p.Repaired {
		t.Errorf("gap %+v (payload %+v): want from the last event %v to the re-enable after %v", p.Gap, p, lastEvent, restart)
	}
	gaps, err := r.m.controlStore().ListGaps(ctx, "affinity", 0)
	if err != nil || len(gaps) != 1 || !gaps[0].From.Equal(lastEvent) {
		t.Fatalf("stored gaps %+v %v", gaps, err)
	}
	states, err := r.m.controlStore().ListSubscriptionStates(ctx)
	if err != nil || len(states) != 1 || states[0].Status != "active" {
		t.Errorf("subscription states %+v %v", states, err)
	}

	// Events after the re-enable arrive; the ones of the outage are lost at
	// Affinity, which is what the gap says.
	if _, err := sim.Trigger(ctx, "person.created", personBody()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an event after the re-enable", 10*time.Second, func() bool { return len(sink.of("affinity.person.created")) == 2 })
}

// TestOutageAttioInactiveRecreated: the receiver is down long enough for
// Attio to mark the webhook degraded, then inactive (time-scaled); when the
// receiver is back, the watchdog recreates the webhook (Attio cannot
// reactivate one), stores its new secret, deletes the old one, records the
// gap, and events after that arrive signed with the new secret.
func TestOutageAttioInactiveRecreated(t *testing.T) {
	sim, err := attiosim.New(attiosim.Config{TimeScale: 1e6, DeliveryTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	sink := newOutageSink(t)
	addr := freeAddr(t)
	cfg := outageConfig(t, addr, `sources:
  - name: attio
    provider: attio
    secrets: [unused-config-secret]
    subscription: {api_key: `+sim.Token()+`, api_base_url: `+simSrv.URL+`/v2, events: [record.created]}
`, sink.srv.URL)
	r := &outageReceiver{t: t, cfg: cfg}
	r.start()
	t.Cleanup(r.stop)

	waitFor(t, "the watchdog to create the webhook", 15*time.Second, func() bool {
		whs := sim.Webhooks()
		return len(whs) == 1 && len(whs[0].Subscriptions) == 1 && whs[0].Subscriptions[0].EventType == "record.created" && whs[0].Subscriptions[0].Filter == nil
	})
	oldID := sim.Webhooks()[0].ID.WebhookID
	ctx := context.Background()
	if _, err := sim.Trigger(ctx, "record.created", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first event in the sink", 10*time.Second, func() bool { return len(sink.of("attio.record.created")) == 1 })

	r.stop()
	if _, err := sim.Trigger(ctx, "record.created", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Attio to mark the webhook inactive", 20*time.Second, func() bool {
		whs := sim.Webhooks()
		return len(whs) == 1 && whs[0].Status == "inactive"
	})

	r.start()
	waitFor(t, "the webhook recreated", 15*time.Second, func() bool {
		whs := sim.Webhooks()
		return len(whs) == 1 && whs[0].ID.WebhookID != oldID && whs[0].Status == "active" && len(whs[0].Subscriptions) == 1 &&
			whs[0].Subscriptions[0].EventType == "record.created" && whs[0].Subscriptions[0].Filter == nil
	})
	// The first creation reported missing then recreated; this one inactive then recreated.
	waitFor(t, "crmhook.subscription.inactive and .recreated in the sink", 10*time.Second, func() bool {
		return len(sink.of(watchdog.TypeInactive)) == 1 && len(sink.of(watchdog.TypeRecreated)) == 2
	})
	var p watchdog.Payload
	if err := json.Unmarshal(sink.of(watchdog.TypeInactive)[0].Data, &p); err != nil || p.Gap == nil || p.Gap.Seconds <= 0 || p.SubscriptionID != oldID {
		t.Errorf("inactive payload %s: %v; want the old webhook and its gap", sink.of(watchdog.TypeInactive)[0].Data, err)
	}
	newID := sim.Webhooks()[0].ID.WebhookID
	secrets, err := r.m.controlStore().ListSecrets(ctx, "attio")
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]crmhook.SecretState{}
	for _, s := range secrets {
		states[s.SubscriptionID] = s.State
	}
	if states[newID] != crmhook.SecretActive || states[oldID] != crmhook.SecretRetiring {
		t.Errorf("stored secrets by webhook: %v; want the new one active and the old one retiring", states)
	}
	if gaps, err := r.m.controlStore().ListGaps(ctx, "attio", 0); err != nil || len(gaps) != 1 {
		t.Errorf("gaps %+v %v, want one", gaps, err)
	}
	// Signed with the new secret, which every receiver now accepts.
	if _, err := sim.Trigger(ctx, "record.created", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an event through the new webhook", 10*time.Second, func() bool { return len(sink.of("attio.record.created")) == 2 })
	for _, d := range sim.Deliveries() {
		if d.WebhookID == newID && d.StatusCode == http.StatusUnauthorized {
			t.Errorf("a delivery of the new webhook was answered 401")
		}
	}
}
