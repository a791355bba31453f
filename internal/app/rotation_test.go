package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/sim/affinitysim"
	"github.com/crmhook/crmhook/sim/attiosim"
	"github.com/crmhook/crmhook/stdwebhooks"
	"github.com/crmhook/crmhook/subscription"
)

// The rotation tests run a real receiver (Main on SQLite) fed by the
// Affinity and Attio simulators over loopback HTTP, and rotate with a
// subscription.Manager on its own handle of the store, as `crmhook secrets
// rotate` does from another process: the receiver learns of the new secret
// only by reloading the store every rotRefresh.
const (
	rotRefresh = 100 * time.Millisecond
	// rotSettle is the Manager's SecretSettle: more than two reloads, so the
	// receiver accepts a new secret before the provider is sent to it.
	rotSettle = 3*rotRefresh + 50*time.Millisecond
	rotGrace  = time.Hour
	// rotEvery is the pause between two triggers of the continuous load.
	rotEvery = 5 * time.Millisecond
	// rotAround is how many deliveries the load makes before the rotation
	// starts and after it ends, at the least.
	rotAround = 20

	rotAffSecret   = "rot-affinity-config-secret-0123456789abcdef"
	rotAttioSecret = "rot-attio-config-signing-secret"
	rotStdSecret   = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// rotClock is the one clock of a rotation test: real time plus an offset
// the test moves forward, shared by the receiver (and its store), the
// Manager and the simulators, so that a grace period of an hour ends at
// once.
type rotClock struct{ off atomic.Int64 }

func (c *rotClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *rotClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// rotWorld is a running receiver and a Manager over the same store file.
type rotWorld struct {
	t     *testing.T
	clock *rotClock
	cfg   *config.Config
	main  *Main
	cs    crmhook.ControlStore // the Manager's own handle on the store
	mgr   *subscription.Manager
}

// rotStart runs a receiver on a config with the given sources block and
// returns it with a Manager (SecretSettle rotSettle) on the same clock.
func rotStart(t *testing.T, clock *rotClock, sources string) *rotWorld {
	t.Helper()
	dir := t.TempDir()
	y := "listen: 127.0.0.1:0\nadmin: {listen: \"off\"}\nwatchdog: off\n" +
		"public_url: http://127.0.0.1:1\nstore: sqlite://" + filepath.Join(dir, "crmhook.db") + "\n" + sources
	cfg, err := config.Parse([]byte(y), os.Getenv)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	w := &rotWorld{t: t, clock: clock, cfg: cfg}
	w.main = &Main{Config: cfg, Stdout: io.Discard, Now: clock.Now, SecretsRefresh: rotRefresh}
	if err := w.main.Open(context.Background()); err != nil {
		t.Fatalf("open: %v", err)
	}
	// The public URL is known once the listener is bound; the receiver
	// never reads it, the Manager does.
	cfg.PublicURL = w.main.HookURL()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.main.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("receiver: %v", err)
		}
		w.main.Close()
	})

	st, err := OpenStore(context.Background(), cfg.Store, StoreOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w.cs = st.(crmhook.ControlStore)
	w.mgr = &subscription.Manager{Config: cfg, Store: w.cs, Now: clock.Now, SecretSettle: rotSettle}
	return w
}

// apply makes the declared subscriptions exist.
func (w *rotWorld) apply() {
	w.t.Helper()
	p, err := w.mgr.Plan(context.Background(), subscription.PlanOptions{})
	if err != nil {
		w.t.Fatalf("plan: %v", err)
	}
	if err := w.mgr.Apply(context.Background(), p); err != nil {
		w.t.Fatalf("apply: %v", err)
	}
}

func (w *rotWorld) secrets(source string) []crmhook.SourceSecret {
	w.t.Helper()
	s, err := w.cs.ListSecrets(context.Background(), source)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// events returns every stored event of source.
func (w *rotWorld) events(source string) []crmhook.Event {
	w.t.Helper()
	evs, err := w.main.Store.ListEvents(context.Background(), crmhook.EventFilter{Source: source, Limit: 1 << 20})
	if err != nil {
		w.t.Fatal(err)
	}
	return evs
}

// noRotationLeft checks that no rotation of source is under way.
func (w *rotWorld) noRotationLeft(source string) {
	w.t.Helper()
	if rot, err := w.cs.GetRotation(context.Background(), source); !errors.Is(err, crmhook.ErrNotFound) {
		w.t.Errorf("rotation of %s still recorded: phase %q, %v", source, rot.Phase, err)
	}
}

// rotRequests reads crmhook_requests_total of source from the receiver's
// metrics: answers by HTTP status.
func rotRequests(t *testing.T, m *Main, source string) map[string]int {
	t.Helper()
	mfs, err := m.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() != "crmhook_requests_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var src, status string
			for _, l := range mt.GetLabel() {
				switch l.GetName() {
				case "source":
					src = l.GetValue()
				case "status":
					status = l.GetValue()
				}
			}
			if src == source {
				out[status] += int(mt.GetCounter().GetValue())
			}
		}
	}
	return out
}

// rotPost POSTs a JSON body to url with the extra headers and returns the
// status.
func rotPost(t *testing.T, url string, body []byte, h http.Header) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// rotLoad calls trigger with 1, 2, 3… every rotEvery until halted: the
// provider delivering continuously.
type rotLoad struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
	n    atomic.Int64 // triggers made
	err  error        // the first failure; read after halt
}

func rotRun(trigger func(i int64) error) *rotLoad {
	l := &rotLoad{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := int64(1); ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			if err := trigger(i); err != nil {
				l.err = fmt.Errorf("trigger %d: %w", i, err)
				return
			}
			l.n.Add(1)
			select {
			case <-l.stop:
				return
			case <-time.After(rotEvery):
			}
		}
	}()
	return l
}

// halt stops the load and waits for its last trigger; it may be called
// again (deferred), and reports a failed trigger once.
func (l *rotLoad) halt(t *testing.T) {
	t.Helper()
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		if l.err != nil {
			t.Errorf("load: %v", l.err)
		}
	})
}

// rotPersonBody is a person.created body with its own id: Affinity's dedupe
// key is type, sent_at (seconds) and the body, so two identical samples
// within a second would be one redelivery.
func rotPersonBody(id int64) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":%d,"type":0,"first_name":"Ada","last_name":"Lovelace","primary_email":"ada@example.com","emails":["ada@example.com"],"organization_ids":[]}`, id))
}

// rotAffinityProbe is Affinity's sample.webhook probe: answered 200 when the
// path secret is accepted, 404 otherwise, and never stored.
func rotAffinityProbe(now time.Time) []byte {
	return fmt.Appendf(nil, `{"type":"sample.webhook","body":{"test":true},"sent_at":%d}`, now.Unix())
}

func rotAffinitySim(t *testing.T, clock *rotClock) (*affinitysim.Server, string) {
	t.Helper()
	sim, err := affinitysim.New(affinitysim.Config{Now: clock.Now, DeliveryTimeout: 10 * time.Second, ProbeTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close) // first: no retry is left running against a stopped receiver
	return sim, srv.URL
}

func rotAttioSim(t *testing.T, clock *rotClock) (*attiosim.Server, string) {
	t.Helper()
	sim, err := attiosim.New(attiosim.Config{Now: clock.Now, DeliveryTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	return sim, srv.URL
}

func rotAffinitySources(simURL string) string {
	return `sources:
  - name: aff
    provider: affinity
    secrets: [` + rotAffSecret + `]
    subscription: {api: v1, api_key: ` + affinitysim.DefaultAdminKey + `, api_base_url: ` + simURL + `, events: [person.created]}
`
}

func rotAttioSources(simURL string) string {
	return `sources:
  - name: attio
    provider: attio
    secrets: [` + rotAttioSecret + `]
    subscription: {api_key: ` + attiosim.DefaultToken + `, api_base_url: ` + simURL + `/v2, events: [record.created]}
`
}

// rotSameInstant compares times as the store keeps them: to the microsecond.
func rotSameInstant(a, b time.Time) bool {
	return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond))
}

// rotNewActive returns the source's one active stored secret.
func rotNewActive(t *testing.T, stored []crmhook.SourceSecret) crmhook.SourceSecret {
	t.Helper()
	var active []crmhook.SourceSecret
	for _, s := range stored {
		if s.State == crmhook.SecretActive {
			active = append(active, s)
		}
	}
	if len(active) != 1 {
		t.Fatalf("%d active stored secrets, want exactly one (the new one): %v", len(active), stored)
	}
	return active[0]
}

// rotateSettled rotates source's secret and checks what every provider's
// rotation promises: it waited SecretSettle before it moved the provider
// (moved says how), and the old secret retires the grace period after the
// rotation ended. It returns the result and how long the rotation took.
func (w *rotWorld) rotateSettled(t *testing.T, ctx context.Context, clock *rotClock, source, moved string) (subscription.RotationResult, time.Duration) {
	t.Helper()
	before, start := clock.Now(), time.Now()
	res, err := w.mgr.Rotate(ctx, source, rotGrace)
	took, after := time.Since(start), clock.Now()
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if took < rotSettle {
		t.Errorf("the rotation took %s: it did not wait SecretSettle (%s) before %s", took, rotSettle, moved)
	}
	if res.RetireAt.Before(before.Add(rotGrace)) || res.RetireAt.After(after.Add(rotGrace)) {
		t.Errorf("retire at %v, want the rotation's end + %s (between %v and %v)", res.RetireAt, rotGrace, before.Add(rotGrace), after.Add(rotGrace))
	}
	return res, took
}

// TestRotationUnderLoadAffinity: while Affinity delivers an event every few
// milliseconds, `secrets rotate` stores a new path secret, waits until the
// receiver accepts it, moves the subscription's URL to it (Affinity's probe
// reaches the new URL) and retires the old secret after the grace period.
// No delivery is answered anything but 200, every event is stored exactly
// once, and the old URL works until the grace period ends, then answers 404.
func TestRotationUnderLoadAffinity(t *testing.T) {
	clock := &rotClock{}
	sim, simURL := rotAffinitySim(t, clock)
	w := rotStart(t, clock, rotAffinitySources(simURL))
	ctx := t.Context()
	w.apply()
	whs := sim.Webhooks()
	oldURL := w.cfg.HookURL("aff", rotAffSecret)
	if len(whs) != 1 || whs[0].WebhookURL != oldURL {
		t.Fatalf("after apply: %+v, want one subscription at the config secret's URL", whs)
	}
	subID := whs[0].ID

	load := rotRun(func(i int64) error {
		_, err := sim.Trigger(ctx, "person.created", rotPersonBody(i))
		return err
	})
	defer load.halt(t)
	waitFor(t, "deliveries before the rotation", 10*time.Second, func() bool { return load.n.Load() >= rotAround })

	res, took := w.rotateSettled(t, ctx, clock, "aff", "moving Affinity")
	newSecret := rotNewActive(t, w.secrets("aff")).Secret
	newURL := w.cfg.HookURL("aff", newSecret)
	atNew := func() int {
		n := 0
		for _, d := range sim.Deliveries() {
			if d.URL == newURL {
				n++
			}
		}
		return n
	}
	waitFor(t, "deliveries after the rotation", 10*time.Second, func() bool { return atNew() >= rotAround })
	load.halt(t)
	idle, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sim.WaitIdle(idle); err != nil {
		t.Fatalf("deliveries still pending (a refused delivery waits for a retry): %v", err)
	}
	// The receiver's own count, before this test sends anything itself.
	answers := rotRequests(t, w.main, "aff")

	// The result and the state at Affinity.
	if res.Resumed || res.Manual || res.Secret != "" || res.SubscriptionID != "" || res.Source != "aff" {
		t.Errorf("result %+v", res)
	}
	if res.HookURL != newURL || newURL == oldURL || !strings.HasSuffix(newURL, "/hooks/aff/"+newSecret) || len(newSecret) < config.MinPathSecretLen {
		t.Errorf("result's hook URL %s, want the new secret's %s", subscription.RedactURL(res.HookURL), subscription.RedactURL(newURL))
	}
	if whs := sim.Webhooks(); len(whs) != 1 || whs[0].ID != subID || whs[0].WebhookURL != newURL || whs[0].Disabled {
		t.Errorf("at Affinity after the rotation: %d subscriptions, want subscription %d moved to the new URL", len(whs), subID)
	}
	w.noRotationLeft("aff")

	// The stored secrets: the new one active, a retiring copy of the
	// config's, nothing else.
	stored := w.secrets("aff")
	if len(stored) != 2 {
		t.Errorf("%d stored secrets, want the new one and the config's retiring: %v", len(stored), stored)
	}
	for _, s := range stored {
		switch {
		case s.Secret == newSecret && s.State == crmhook.SecretActive:
		case s.Secret == rotAffSecret && s.State == crmhook.SecretRetiring && rotSameInstant(s.RetireAt, res.RetireAt):
		default:
			t.Errorf("unexpected stored secret %v (retire at %v)", s, s.RetireAt)
		}
	}

	// Every delivery attempt was answered 200: none refused, none retried.
	statuses := map[int]int{}
	var toOld, toNew int
	for _, d := range sim.Deliveries() {
		statuses[d.StatusCode]++
		if !d.OK || d.Attempt != 1 {
			t.Errorf("delivery of %s to %s: attempt %d answered %d %s", d.EventType, subscription.RedactURL(d.URL), d.Attempt, d.StatusCode, d.Error)
		}
		switch d.URL {
		case oldURL:
			toOld++
		case newURL:
			toNew++
		default:
			t.Errorf("a delivery went to %s", subscription.RedactURL(d.URL))
		}
	}
	probes := sim.Probes()
	for _, p := range probes {
		if !p.OK {
			t.Errorf("Affinity's probe of %s answered %d %s", subscription.RedactURL(p.URL), p.StatusCode, p.Error)
		}
	}
	if len(probes) != 2 || probes[1].URL != newURL {
		t.Errorf("%d probes, want two: the create's and the URL change's (at the new URL)", len(probes))
	}
	triggered := int(load.n.Load())
	deliveries := toOld + toNew
	if deliveries != triggered {
		t.Errorf("%d deliveries for %d events triggered, want one each", deliveries, triggered)
	}
	if answers["401"] != 0 || answers["404"] != 0 || len(answers) != 1 || answers["200"] != deliveries+len(probes) {
		t.Errorf("the receiver answered %v, want only 200 (%d deliveries + %d probes)", answers, deliveries, len(probes))
	}

	// Every triggered event is stored exactly once.
	perID := map[int64]int{}
	for _, ev := range w.events("aff") {
		var env struct {
			Type string `json:"type"`
			Body struct {
				ID int64 `json:"id"`
			} `json:"body"`
		}
		if err := json.Unmarshal(ev.Payload, &env); err != nil || env.Type != "person.created" || ev.Type != "person.created" {
			t.Fatalf("stored event %s: %v", ev.Type, err)
		}
		perID[env.Body.ID]++
	}
	var missing, twice int
	for i := int64(1); i <= int64(triggered); i++ {
		switch n := perID[i]; {
		case n == 0:
			missing++
		case n > 1:
			twice++
		}
	}
	if missing != 0 || twice != 0 || len(perID) != triggered {
		t.Errorf("stored %d distinct events for %d triggered: %d missing, %d stored more than once", len(perID), triggered, missing, twice)
	}
	t.Logf("Affinity: %d events triggered (%d delivered to the old URL, %d to the new), %d stored, answers %v (401: %d, 404: %d); rotation took %s",
		triggered, toOld, toNew, len(perID), answers, answers["401"], answers["404"], took.Round(time.Millisecond))

	// The old URL is accepted during the grace period, refused after it.
	if code := rotPost(t, oldURL, rotAffinityProbe(clock.Now()), nil); code != http.StatusOK {
		t.Errorf("old URL during the grace period: %d, want 200", code)
	}
	if code := rotPost(t, newURL, rotAffinityProbe(clock.Now()), nil); code != http.StatusOK {
		t.Errorf("new URL: %d, want 200", code)
	}
	clock.advance(rotGrace + time.Second)
	waitFor(t, "the old URL refused after the grace period", 5*time.Second, func() bool {
		return rotPost(t, oldURL, rotAffinityProbe(clock.Now()), nil) == http.StatusNotFound
	})
	if code := rotPost(t, newURL, rotAffinityProbe(clock.Now()), nil); code != http.StatusOK {
		t.Errorf("new URL after the grace period: %d, want 200", code)
	}
}

// rotDeclared says an Attio webhook receives what rotAttioSources declares:
// record.created, unfiltered.
func rotDeclared(subs []attio.Subscription) bool {
	return len(subs) == 1 && subs[0].EventType == attio.RecordCreated && subs[0].Filter == nil
}

// rotAttioMsg is what an Attio trigger produced: the event's record id and
// the first attempt to each webhook.
type rotAttioMsg struct {
	recordID string
	firsts   []attiosim.Delivery
}

// rotRecordID reads id.record_id of an Attio record event.
func rotRecordID(event []byte) (string, error) {
	var ev struct {
		ID struct {
			RecordID string `json:"record_id"`
		} `json:"id"`
	}
	if err := json.Unmarshal(event, &ev); err != nil || ev.ID.RecordID == "" {
		return "", fmt.Errorf("record event without id.record_id: %v", err)
	}
	return ev.ID.RecordID, nil
}

// rotAttioDelivery is a delivery of one record.created event, signed with
// secret as Attio signs.
func rotAttioDelivery(t *testing.T, webhookID, secret, key string) ([]byte, http.Header) {
	t.Helper()
	ev, err := attiosim.SampleEvent("record.created", "")
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Appendf(nil, `{"webhook_id":%q,"events":[%s]}`, webhookID, ev)
	h := http.Header{}
	h.Set(attio.HeaderIdempotencyKey, key)
	attio.SignRequestHeaders(h, body, secret)
	return body, h
}

// TestRotationUnderLoadAttio: while Attio delivers an event every few
// milliseconds, `secrets rotate` creates a new webhook receiving nothing,
// stores its secret, waits until the receiver accepts it, sets its events
// and deletes the old webhook. No delivery is answered 401; each delivery
// (an Idempotency-Key) is stored exactly once; every event is stored at
// least once — the ones Attio sent through both webhooks during the
// overlap are two deliveries with two keys, so they are stored twice, as
// any receiver of two Attio webhooks would. The old webhook's secret is
// accepted until the grace period ends.
func TestRotationUnderLoadAttio(t *testing.T) {
	clock := &rotClock{}
	sim, simURL := rotAttioSim(t, clock)
	w := rotStart(t, clock, rotAttioSources(simURL))
	ctx := t.Context()
	w.apply()
	whs := sim.Webhooks()
	if len(whs) != 1 || len(whs[0].Subscriptions) != 1 || whs[0].Subscriptions[0].EventType != "record.created" {
		t.Fatalf("after apply: %+v, want one webhook receiving record.created", whs)
	}
	oldID := whs[0].ID.WebhookID
	oldSecret := rotNewActive(t, w.secrets("attio"))
	if oldSecret.SubscriptionID != oldID {
		t.Fatalf("the stored secret belongs to %q, want the webhook %s", oldSecret.SubscriptionID, oldID)
	}

	var msgs []rotAttioMsg // written by the load only, read after halt
	load := rotRun(func(int64) error {
		res, err := sim.Trigger(ctx, "record.created", nil)
		if err != nil {
			return err
		}
		rid, err := rotRecordID(res.Event)
		msgs = append(msgs, rotAttioMsg{recordID: rid, firsts: res.Deliveries})
		return err
	})
	defer load.halt(t)
	waitFor(t, "deliveries before the rotation", 10*time.Second, func() bool { return load.n.Load() >= rotAround })

	res, took := w.rotateSettled(t, ctx, clock, "attio", "setting the new webhook's events")
	newID := res.SubscriptionID
	atNew := func() int {
		n := 0
		for _, d := range sim.Deliveries() {
			if d.WebhookID == newID {
				n++
			}
		}
		return n
	}
	atReturn := atNew()
	waitFor(t, "deliveries after the rotation", 10*time.Second, func() bool { return atNew() >= atReturn+rotAround })
	load.halt(t)
	idle, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sim.WaitIdle(idle); err != nil {
		t.Fatalf("deliveries still pending (a refused delivery waits for a retry): %v", err)
	}
	answers := rotRequests(t, w.main, "attio")

	// Exactly one webhook of ours: the new one, with the declared events.
	if res.Resumed || res.Manual || res.Secret != "" || newID == "" || newID == oldID {
		t.Errorf("result %+v (old webhook %s)", res, oldID)
	}
	whs = sim.Webhooks()
	if len(whs) != 1 || whs[0].ID.WebhookID != newID || whs[0].TargetURL != w.cfg.HookURL("attio", "") || whs[0].Status != attio.WebhookActive ||
		!rotDeclared(whs[0].Subscriptions) {
		t.Errorf("at Attio after the rotation: %+v, want only the new webhook %s receiving record.created", whs, newID)
	}
	w.noRotationLeft("attio")

	// Stored secrets: the new webhook's active, the old webhook's and the
	// config's retiring at RetireAt.
	stored := w.secrets("attio")
	newSecret := rotNewActive(t, stored)
	if newSecret.SubscriptionID != newID {
		t.Errorf("the active secret belongs to %q, want the new webhook %s", newSecret.SubscriptionID, newID)
	}
	if len(stored) != 3 {
		t.Errorf("%d stored secrets, want 3 (new active, old and config retiring): %v", len(stored), stored)
	}
	for _, s := range stored {
		if s.ID == newSecret.ID {
			continue
		}
		if s.State != crmhook.SecretRetiring || !rotSameInstant(s.RetireAt, res.RetireAt) || (s.Secret != oldSecret.Secret && s.Secret != rotAttioSecret) {
			t.Errorf("stored secret %v retiring at %v, want the old webhook's or the config's, retiring at %v", s, s.RetireAt, res.RetireAt)
		}
	}

	// Every delivery attempt was answered 200; none was retried.
	byKey := map[string]attiosim.Delivery{}
	perWebhook := map[string]int{}
	for _, d := range sim.Deliveries() {
		if !d.OK || d.Attempt != 1 {
			t.Errorf("delivery %s of webhook %s: attempt %d answered %d %s", d.IdempotencyKey, d.WebhookID, d.Attempt, d.StatusCode, d.Error)
		}
		if _, dup := byKey[d.IdempotencyKey]; dup {
			t.Errorf("Idempotency-Key %s delivered twice", d.IdempotencyKey)
		}
		byKey[d.IdempotencyKey] = d
		perWebhook[d.WebhookID]++
	}
	if len(perWebhook) != 2 || perWebhook[oldID] == 0 || perWebhook[newID] == 0 {
		t.Errorf("deliveries by webhook %v: want some through the old and the new", perWebhook)
	}
	if answers["401"] != 0 || answers["404"] != 0 || len(answers) != 1 || answers["200"] != len(byKey) {
		t.Errorf("the receiver answered %v, want only 200, one per delivery (%d)", answers, len(byKey))
	}

	// Each delivery stored exactly once, under its Idempotency-Key.
	storedKeys := map[string]string{} // dedupe key → record id
	perRecord := map[string][]string{}
	for _, ev := range w.events("attio") {
		rid, err := rotRecordID(ev.Payload)
		if err != nil {
			t.Fatalf("stored event %s: %v", ev.DedupeKey, err)
		}
		storedKeys[ev.DedupeKey] = rid
		perRecord[rid] = append(perRecord[rid], ev.DedupeKey)
	}
	for key := range byKey {
		if _, ok := storedKeys["attio:"+key+":0"]; !ok {
			t.Errorf("delivery %s was answered 200 but is not stored", key)
		}
	}
	if len(storedKeys) != len(byKey) {
		t.Errorf("%d events stored for %d deliveries, want one each", len(storedKeys), len(byKey))
	}

	// Every triggered event stored at least once; those sent through both
	// webhooks (the overlap) twice, once per webhook.
	var missing, twice, vanished int
	for _, m := range msgs {
		keys := perRecord[m.recordID]
		switch {
		case len(keys) == 0:
			missing++
		case len(keys) == 2:
			twice++
			a, b := byKey[strings.TrimSuffix(strings.TrimPrefix(keys[0], "attio:"), ":0")], byKey[strings.TrimSuffix(strings.TrimPrefix(keys[1], "attio:"), ":0")]
			if a.WebhookID == b.WebhookID {
				t.Errorf("record %s stored twice through the same webhook %s", m.recordID, a.WebhookID)
			}
		case len(keys) > 2:
			t.Errorf("record %s stored %d times", m.recordID, len(keys))
		}
		for _, d := range m.firsts {
			if d.StatusCode == 0 {
				vanished++ // the webhook was deleted between Attio's choice and the attempt
			}
		}
	}
	if missing != 0 {
		t.Errorf("%d of %d triggered events were not stored at all", missing, len(msgs))
	}
	if len(perRecord) != len(msgs) {
		t.Errorf("%d distinct events stored for %d triggered", len(perRecord), len(msgs))
	}
	t.Logf("Attio: %d events triggered, %d deliveries (old webhook %d, new %d), %d stored (%d events stored twice: sent through both webhooks during the overlap; %d messages to the deleted webhook never attempted), answers %v (401: %d); rotation took %s",
		len(msgs), len(byKey), perWebhook[oldID], perWebhook[newID], len(storedKeys), twice, vanished, answers, answers["401"], took.Round(time.Millisecond))

	// The old webhook's secret is accepted during the grace period and
	// refused after it.
	hook := w.cfg.HookURL("attio", "")
	var seq int
	post := func(webhookID, secret string) int {
		seq++
		body, h := rotAttioDelivery(t, webhookID, secret, fmt.Sprintf("rot-manual-%d", seq))
		return rotPost(t, hook, body, h)
	}
	if code := post(oldID, oldSecret.Secret); code != http.StatusOK {
		t.Errorf("signed with the old webhook's secret during the grace period: %d, want 200", code)
	}
	clock.advance(rotGrace + time.Second)
	waitFor(t, "the old secret refused after the grace period", 5*time.Second, func() bool {
		return post(oldID, oldSecret.Secret) == http.StatusUnauthorized
	})
	if code := post(oldID, rotAttioSecret); code != http.StatusUnauthorized {
		t.Errorf("signed with the config's secret after the grace period: %d, want 401", code)
	}
	if code := post(newID, newSecret.Secret); code != http.StatusOK {
		t.Errorf("signed with the new secret after the grace period: %d, want 200", code)
	}
}

// rotFlaky wraps a Provider to make one of its calls fail or to act when a
// webhook has been created.
type rotFlaky struct {
	subscription.Provider
	mu          sync.Mutex
	failUpdates int // the next Update calls that fail before reaching the provider
	failDeletes int
	afterCreate func() // called once a Create has succeeded
	creates     int
}

var errRotInjected = errors.New("injected failure")

func (p *rotFlaky) Update(ctx context.Context, id, url string, events []subscription.Event) error {
	p.mu.Lock()
	fail := p.failUpdates > 0
	if fail {
		p.failUpdates--
	}
	p.mu.Unlock()
	if fail {
		return errRotInjected
	}
	return p.Provider.Update(ctx, id, url, events)
}

func (p *rotFlaky) Delete(ctx context.Context, id string) error {
	p.mu.Lock()
	fail := p.failDeletes > 0
	if fail {
		p.failDeletes--
	}
	p.mu.Unlock()
	if fail {
		return errRotInjected
	}
	return p.Provider.Delete(ctx, id)
}

func (p *rotFlaky) Create(ctx context.Context, url string, events []subscription.Event) (subscription.Remote, string, error) {
	r, secret, err := p.Provider.Create(ctx, url, events)
	p.mu.Lock()
	p.creates++
	after := p.afterCreate
	p.mu.Unlock()
	if err == nil && after != nil {
		after()
	}
	return r, secret, err
}

// rotHookedStore calls afterPutSecret once a secret is stored.
type rotHookedStore struct {
	crmhook.ControlStore
	afterPutSecret func()
}

func (s *rotHookedStore) PutSecret(ctx context.Context, sec crmhook.SourceSecret) (int64, error) {
	id, err := s.ControlStore.PutSecret(ctx, sec)
	if err == nil {
		s.afterPutSecret()
	}
	return id, err
}

// flaky puts a rotFlaky in front of source's provider.
func (w *rotWorld) flaky(source string) *rotFlaky {
	w.t.Helper()
	for _, src := range w.cfg.Sources {
		if src.Name == source {
			p, err := subscription.NewProvider(w.cfg, src, nil)
			if err != nil {
				w.t.Fatal(err)
			}
			f := &rotFlaky{Provider: p}
			w.mgr.Providers = map[string]subscription.Provider{source: f}
			return f
		}
	}
	w.t.Fatalf("no source %s", source)
	return nil
}

func (w *rotWorld) phase(source string) string {
	w.t.Helper()
	rot, err := w.cs.GetRotation(context.Background(), source)
	if err != nil {
		w.t.Fatalf("rotation of %s: %v", source, err)
	}
	return rot.Phase
}

// TestRotationResumesAfterACrash: a rotation that stops part-way is
// recorded; running Rotate again reports Resumed, finishes it without
// redoing what was done, and leaves the state a clean rotation leaves.
func TestRotationResumesAfterACrash(t *testing.T) {
	t.Run("affinity URL update fails once", func(t *testing.T) {
		clock := &rotClock{}
		sim, simURL := rotAffinitySim(t, clock)
		w := rotStart(t, clock, rotAffinitySources(simURL))
		w.apply()
		oldURL := w.cfg.HookURL("aff", rotAffSecret)
		f := w.flaky("aff")
		f.failUpdates = 1

		if _, err := w.mgr.Rotate(t.Context(), "aff", rotGrace); !errors.Is(err, errRotInjected) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("rotate with a failing URL update: %v", err)
		}
		// Stopped after its first phase: the new secret is stored and
		// accepted, Affinity still sends to the old URL, which still works.
		if p := w.phase("aff"); p != "new-secret" {
			t.Fatalf("phase %q after the failure, want new-secret", p)
		}
		first := rotNewActive(t, w.secrets("aff"))
		if whs := sim.Webhooks(); len(whs) != 1 || whs[0].WebhookURL != oldURL {
			t.Fatal("the subscription moved although its update failed")
		}
		if len(w.secrets("aff")) != 1 {
			t.Errorf("the config's secret was retired before the provider moved: %v", w.secrets("aff"))
		}
		newURL := w.cfg.HookURL("aff", first.Secret)
		waitFor(t, "the receiver to accept the new secret", 5*time.Second, func() bool {
			return rotPost(t, newURL, rotAffinityProbe(clock.Now()), nil) == http.StatusOK
		})
		if code := rotPost(t, oldURL, rotAffinityProbe(clock.Now()), nil); code != http.StatusOK {
			t.Errorf("old URL while the rotation is stopped: %d", code)
		}

		res, err := w.mgr.Rotate(t.Context(), "aff", 2*rotGrace) // the stored grace wins
		if err != nil {
			t.Fatalf("resume: %v", err)
		}
		if !res.Resumed || res.HookURL != newURL {
			t.Errorf("resumed result %+v, want Resumed and the first run's secret's URL", res)
		}
		if d := res.RetireAt.Sub(clock.Now()); d > rotGrace || d < rotGrace-time.Minute {
			t.Errorf("retire in %s, want the grace of the first run (%s)", d, rotGrace)
		}
		// As after a clean rotation: one new secret (the first run's), the
		// config's retiring, the subscription at the new URL.
		stored := w.secrets("aff")
		if got := rotNewActive(t, stored); got.ID != first.ID || len(stored) != 2 {
			t.Errorf("stored after the resume: %v, want the first run's secret active and the config's retiring", stored)
		}
		for _, s := range stored {
			if s.ID != first.ID && (s.Secret != rotAffSecret || s.State != crmhook.SecretRetiring || !rotSameInstant(s.RetireAt, res.RetireAt)) {
				t.Errorf("stored %v, want the config's secret retiring at %v", s, res.RetireAt)
			}
		}
		if whs := sim.Webhooks(); len(whs) != 1 || whs[0].WebhookURL != newURL {
			t.Error("the subscription is not at the new URL after the resume")
		}
		w.noRotationLeft("aff")
		for _, d := range append(sim.Deliveries(), sim.Probes()...) {
			if !d.OK {
				t.Errorf("Affinity's %s to %s answered %d", d.EventType, subscription.RedactURL(d.URL), d.StatusCode)
			}
		}
	})

	t.Run("attio stops between creating the webhook and setting its events", func(t *testing.T) {
		clock := &rotClock{}
		sim, simURL := rotAttioSim(t, clock)
		w := rotStart(t, clock, rotAttioSources(simURL))
		w.apply()
		oldID := sim.Webhooks()[0].ID.WebhookID
		oldSecret := rotNewActive(t, w.secrets("attio"))
		f := w.flaky("attio")
		// The process dies during SecretSettle: once the new webhook's
		// secret is stored, before its events are set.
		ctx, cancel := context.WithCancel(t.Context())
		hooked := &rotHookedStore{ControlStore: w.cs, afterPutSecret: cancel}
		w.mgr.Store = hooked

		if _, err := w.mgr.Rotate(ctx, "attio", rotGrace); !errors.Is(err, context.Canceled) {
			t.Fatalf("rotate cancelled during SecretSettle: %v", err)
		}
		if p := w.phase("attio"); p != "started" {
			t.Fatalf("phase %q, want started", p)
		}
		whs := sim.Webhooks()
		if len(whs) != 2 {
			t.Fatalf("%d webhooks after the crash, want the old one and the new one", len(whs))
		}
		halfID := whs[1].ID.WebhookID
		if subs := whs[1].Subscriptions; len(subs) != 1 || subs[0].Filter == nil {
			t.Fatalf("the new webhook receives %+v before the crash was resumed, want nothing (a filter no event matches)", subs)
		}

		w.mgr.Store = w.cs
		start := time.Now()
		res, err := w.mgr.Rotate(t.Context(), "attio", rotGrace)
		if err != nil {
			t.Fatalf("resume: %v", err)
		}
		if !res.Resumed || res.SubscriptionID != halfID {
			t.Errorf("resumed result %+v, want Resumed with the webhook the first run created (%s)", res, halfID)
		}
		if f.creates != 1 {
			t.Errorf("%d webhooks created, want 1: the resume must finish the first run's webhook, not make another", f.creates)
		}
		if took := time.Since(start); took < rotSettle {
			t.Errorf("the resume set the events after %s, less than SecretSettle", took)
		}
		// As after a clean rotation: only the new webhook, with its events;
		// its secret active, the old one's and the config's retiring.
		whs = sim.Webhooks()
		if len(whs) != 1 || whs[0].ID.WebhookID != halfID || halfID == oldID || !rotDeclared(whs[0].Subscriptions) {
			t.Fatalf("at Attio after the resume: %+v, want only %s receiving record.created", whs, halfID)
		}
		stored := w.secrets("attio")
		if got := rotNewActive(t, stored); got.SubscriptionID != halfID || len(stored) != 3 {
			t.Errorf("stored after the resume: %v", stored)
		}
		for _, s := range stored {
			if s.State == crmhook.SecretActive {
				continue
			}
			if s.State != crmhook.SecretRetiring || !rotSameInstant(s.RetireAt, res.RetireAt) || (s.ID != oldSecret.ID && s.Secret != rotAttioSecret) {
				t.Errorf("stored %v, want the old webhook's or the config's secret retiring at %v", s, res.RetireAt)
			}
		}
		w.noRotationLeft("attio")
		// Events reach the receiver through the new webhook, signed with a
		// secret it accepts.
		res2, err := sim.Trigger(t.Context(), "record.created", nil)
		if err != nil || len(res2.Deliveries) != 1 || res2.Deliveries[0].WebhookID != halfID || !res2.Deliveries[0].OK {
			t.Fatalf("an event after the resume: %+v %v", res2.Deliveries, err)
		}
	})

	t.Run("attio stops between creating the webhook and storing its secret", func(t *testing.T) {
		clock := &rotClock{}
		sim, simURL := rotAttioSim(t, clock)
		w := rotStart(t, clock, rotAttioSources(simURL))
		w.apply()
		oldID := sim.Webhooks()[0].ID.WebhookID
		f := w.flaky("attio")
		// The process dies once Attio created the webhook: its secret is
		// never stored, and the webhook is not deleted either.
		ctx, cancel := context.WithCancel(t.Context())
		f.afterCreate = cancel
		if _, err := w.mgr.Rotate(ctx, "attio", rotGrace); !errors.Is(err, context.Canceled) {
			t.Fatalf("rotate cancelled after the create: %v", err)
		}
		whs := sim.Webhooks()
		if len(whs) != 2 || len(w.secrets("attio")) != 1 {
			t.Fatalf("%d webhooks and %d stored secrets after the crash, want an orphan webhook whose secret is unknown", len(whs), len(w.secrets("attio")))
		}
		orphanID := whs[1].ID.WebhookID

		f.afterCreate = nil
		res, err := w.mgr.Rotate(t.Context(), "attio", rotGrace)
		if err != nil || !res.Resumed {
			t.Fatalf("resume: %+v %v", res, err)
		}
		// A new webhook whose secret is known replaces the orphan as well as
		// the old one.
		whs = sim.Webhooks()
		if f.creates != 2 || len(whs) != 1 || whs[0].ID.WebhookID != res.SubscriptionID || res.SubscriptionID == oldID || res.SubscriptionID == orphanID || !rotDeclared(whs[0].Subscriptions) {
			t.Fatalf("after the resume: %d created, webhooks %+v; want only the new one %s", f.creates, whs, res.SubscriptionID)
		}
		if got := rotNewActive(t, w.secrets("attio")); got.SubscriptionID != res.SubscriptionID || len(w.secrets("attio")) != 3 {
			t.Errorf("stored after the resume: %v", w.secrets("attio"))
		}
		w.noRotationLeft("attio")
		res2, err := sim.Trigger(t.Context(), "record.created", nil)
		if err != nil || len(res2.Deliveries) != 1 || !res2.Deliveries[0].OK {
			t.Fatalf("an event after the resume: %+v %v", res2.Deliveries, err)
		}
	})

	t.Run("attio old webhook's deletion fails once", func(t *testing.T) {
		clock := &rotClock{}
		sim, simURL := rotAttioSim(t, clock)
		w := rotStart(t, clock, rotAttioSources(simURL))
		w.apply()
		oldID := sim.Webhooks()[0].ID.WebhookID
		f := w.flaky("attio")
		f.failDeletes = 1
		if _, err := w.mgr.Rotate(t.Context(), "attio", rotGrace); !errors.Is(err, errRotInjected) {
			t.Fatalf("rotate with a failing delete: %v", err)
		}
		if p := w.phase("attio"); p != "new-secret" {
			t.Fatalf("phase %q, want new-secret", p)
		}
		if n := len(sim.Webhooks()); n != 2 {
			t.Fatalf("%d webhooks, want the old and the new", n)
		}
		res, err := w.mgr.Rotate(t.Context(), "attio", rotGrace)
		if err != nil || !res.Resumed {
			t.Fatalf("resume: %+v %v", res, err)
		}
		whs := sim.Webhooks()
		if f.creates != 1 || len(whs) != 1 || whs[0].ID.WebhookID == oldID || whs[0].ID.WebhookID != res.SubscriptionID || !rotDeclared(whs[0].Subscriptions) {
			t.Fatalf("after the resume: %d created, webhooks %+v; want only the new one %s", f.creates, whs, res.SubscriptionID)
		}
		if got := rotNewActive(t, w.secrets("attio")); got.SubscriptionID != res.SubscriptionID || len(w.secrets("attio")) != 3 {
			t.Errorf("stored after the resume: %v", w.secrets("attio"))
		}
		w.noRotationLeft("attio")
	})
}

// rotStdPost sends a Standard Webhooks delivery signed with secret.
func rotStdPost(t *testing.T, url, secret string, id int, now time.Time) int {
	t.Helper()
	s, err := stdwebhooks.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Appendf(nil, `{"type":"invoice.paid","data":{"n":%d}}`, id)
	h := http.Header{}
	s.SetHeaders(h, fmt.Sprintf("msg_rot_%d", id), now, body)
	return rotPost(t, url, body, h)
}

// TestRotationStandardWebhooks: the new whsec_ secret is returned once and
// stored; deliveries signed with either secret are accepted during the
// grace period, only the new one's after it.
func TestRotationStandardWebhooks(t *testing.T) {
	clock := &rotClock{}
	w := rotStart(t, clock, `sources:
  - name: std
    provider: standard-webhooks
    secrets: [`+rotStdSecret+`]
`)
	hook := w.cfg.HookURL("std", "")
	var seq int
	post := func(secret string) int {
		seq++
		return rotStdPost(t, hook, secret, seq, clock.Now())
	}
	if code := post(rotStdSecret); code != http.StatusOK {
		t.Fatalf("before the rotation: %d", code)
	}

	res, err := w.mgr.Rotate(t.Context(), "std", rotGrace)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if !strings.HasPrefix(res.Secret, stdwebhooks.SecretPrefix) || res.Secret == rotStdSecret || res.Resumed || res.Manual || res.HookURL != "" || res.SubscriptionID != "" {
		t.Fatalf("result %+v: want a new whsec_ secret", res)
	}
	if _, err := stdwebhooks.DecodeSecret(res.Secret); err != nil {
		t.Errorf("the new secret does not decode: %v", err)
	}
	stored := w.secrets("std")
	if got := rotNewActive(t, stored); got.Secret != res.Secret || len(stored) != 2 {
		t.Errorf("stored %v, want the returned secret active and the config's retiring", stored)
	}
	for _, s := range stored {
		if s.State == crmhook.SecretRetiring && (s.Secret != rotStdSecret || !rotSameInstant(s.RetireAt, res.RetireAt)) {
			t.Errorf("retiring %v at %v", s, s.RetireAt)
		}
	}
	w.noRotationLeft("std")

	// The receiver takes the new secret at its next reload; the old one
	// stays accepted.
	waitFor(t, "the new secret accepted", 5*time.Second, func() bool { return post(res.Secret) == http.StatusOK })
	if code := post(rotStdSecret); code != http.StatusOK {
		t.Errorf("old secret during the grace period: %d", code)
	}
	// Returned once: a second rotation makes another secret and retires the first.
	clock.advance(time.Minute)
	res2, err := w.mgr.Rotate(t.Context(), "std", rotGrace)
	if err != nil || res2.Secret == res.Secret || res2.Secret == "" {
		t.Fatalf("second rotation: %v (a new secret: %v)", err, res2.Secret != res.Secret)
	}
	if got := rotNewActive(t, w.secrets("std")); got.Secret != res2.Secret {
		t.Error("the second rotation's secret is not the active one")
	}
	waitFor(t, "the second secret accepted", 5*time.Second, func() bool { return post(res2.Secret) == http.StatusOK })
	for _, s := range []string{rotStdSecret, res.Secret} {
		if code := post(s); code != http.StatusOK {
			t.Errorf("a rotated-out secret during its grace period: %d", code)
		}
	}

	clock.advance(rotGrace + time.Second)
	waitFor(t, "the old secrets refused after the grace period", 5*time.Second, func() bool {
		return post(rotStdSecret) == http.StatusUnauthorized && post(res.Secret) == http.StatusUnauthorized
	})
	if code := post(res2.Secret); code != http.StatusOK {
		t.Errorf("the newest secret after the grace period: %d", code)
	}
	if answers := rotRequests(t, w.main, "std"); answers["404"] != 0 {
		t.Errorf("answers %v: no 404 expected for a signed source", answers)
	}
}
