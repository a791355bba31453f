package watchdog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/store/sqlite"
	"github.com/crmhook/crmhook/subscription"
	"github.com/crmhook/crmhook/watchdog"
)

// The path secret of the Affinity test source (at least 32 characters).
const affSecret = "aff-path-secret-0123456789abcdefghij"

// publicURL is where the test config says providers reach the receiver.
// Nothing listens there: the providers are fakes.
const publicURL = "https://hooks.example.test"

// fakeProvider is an in-memory subscription.Provider whose subscriptions a
// test sets up in any state (disabled, degraded, inactive, missing,
// drifted), counting the calls made to it and failing them on demand.
type fakeProvider struct {
	attio bool

	mu     sync.Mutex
	subs   []subscription.Remote
	nextID int
	calls  map[string]int // by method: list, create, update, enable, delete
	// log records each call that changes something, "enable 1001".
	log []string
	// fail makes the named method (create, update, enable, delete) fail.
	fail map[string]error
	// onList, when set, runs at the start of every List.
	onList func()
}

func newFakeProvider(attio bool) *fakeProvider {
	return &fakeProvider{attio: attio, nextID: 1001, calls: map[string]int{}, fail: map[string]error{}}
}

func (p *fakeProvider) List(ctx context.Context) ([]subscription.Remote, error) {
	p.mu.Lock()
	on := p.onList
	p.calls["list"]++
	out := make([]subscription.Remote, 0, len(p.subs))
	for _, r := range p.subs {
		r.Events = slices.Clone(r.Events)
		out = append(out, r)
	}
	p.mu.Unlock()
	if on != nil {
		on()
	}
	return out, ctx.Err()
}

func (p *fakeProvider) Create(_ context.Context, url string, events []subscription.Event) (subscription.Remote, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls["create"]++
	if err := p.fail["create"]; err != nil {
		return subscription.Remote{}, "", err
	}
	id := strconv.Itoa(p.nextID)
	p.nextID++
	secret := ""
	if p.attio {
		id = "wh-" + id
		secret = "attio-secret-of-" + id
	}
	r := subscription.Remote{ID: id, URL: url, Events: slices.Clone(events), Status: subscription.StatusActive}
	p.subs = append(p.subs, r)
	p.log = append(p.log, "create "+id)
	return r, secret, nil
}

func (p *fakeProvider) Update(_ context.Context, id, url string, events []subscription.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls["update"]++
	if err := p.fail["update"]; err != nil {
		return err
	}
	i := slices.IndexFunc(p.subs, func(r subscription.Remote) bool { return r.ID == id })
	if i < 0 {
		return errors.New("fake: no subscription " + id)
	}
	p.subs[i].URL, p.subs[i].Events = url, slices.Clone(events)
	p.log = append(p.log, "update "+id)
	return nil
}

func (p *fakeProvider) Enable(_ context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls["enable"]++
	if p.attio {
		return subscription.ErrCannotReactivate
	}
	if err := p.fail["enable"]; err != nil {
		return err
	}
	i := slices.IndexFunc(p.subs, func(r subscription.Remote) bool { return r.ID == id })
	if i < 0 {
		return errors.New("fake: no subscription " + id)
	}
	p.subs[i].Status = subscription.StatusActive
	p.log = append(p.log, "enable "+id)
	return nil
}

func (p *fakeProvider) Delete(_ context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls["delete"]++
	if err := p.fail["delete"]; err != nil {
		return err
	}
	p.subs = slices.DeleteFunc(p.subs, func(r subscription.Remote) bool { return r.ID == id })
	p.log = append(p.log, "delete "+id)
	return nil
}

func (p *fakeProvider) Limit() int { return 0 }

// add puts a subscription at the provider.
func (p *fakeProvider) add(r subscription.Remote) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subs = append(p.subs, r)
}

// set changes the subscription id at the provider.
func (p *fakeProvider) set(id string, change func(*subscription.Remote)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.subs {
		if p.subs[i].ID == id {
			change(&p.subs[i])
		}
	}
}

// remove deletes the subscription id at the provider, as someone at the
// provider would.
func (p *fakeProvider) remove(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subs = slices.DeleteFunc(p.subs, func(r subscription.Remote) bool { return r.ID == id })
}

// snapshot returns the provider's subscriptions.
func (p *fakeProvider) snapshot() []subscription.Remote {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.subs)
}

func (p *fakeProvider) count(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[method]
}

// changes returns the calls that changed something, in order.
func (p *fakeProvider) changes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.log)
}

// changeCalls counts the calls that would change something (successful or
// not): create, update, enable, delete.
func (p *fakeProvider) changeCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls["create"] + p.calls["update"] + p.calls["enable"] + p.calls["delete"]
}

// recObserver records what a Watchdog tells its Observer.
type recObserver struct {
	mu       sync.Mutex
	statuses []string // "source subscription status"
	gaps     []string // "source duration"
}

func (o *recObserver) SubscriptionStatus(source, id, status string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.statuses = append(o.statuses, source+" "+id+" "+status)
}

func (o *recObserver) Gap(source string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gaps = append(o.gaps, source+" "+d.String())
}

func (o *recObserver) seen() (statuses, gaps []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.statuses), slices.Clone(o.gaps)
}

// The declared events of the test sources, as the providers hold them.
var (
	affEvents = []subscription.Event{{Type: "person.created"}, {Type: "organization.created"}}
	attEvents = []subscription.Event{{Type: "record.created"}, {Type: "note.created"}}
)

// env is one world to check: a SQLite store, a config declaring the
// Affinity source "aff" and/or the Attio source "att", a fake provider for
// each behind a Manager, and one frozen clock shared by the store, the
// Manager and the watchdog.
type env struct {
	t     *testing.T
	ctx   context.Context
	now   time.Time
	store *sqlite.Store
	cfg   *config.Config
	aff   *fakeProvider
	att   *fakeProvider
	m     *subscription.Manager
	obs   *recObserver
}

type sources struct{ aff, att bool }

// frozen is the instant every clock of a test env reads.
var frozen = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

func newEnv(t *testing.T, which sources) *env {
	t.Helper()
	e := &env{t: t, ctx: t.Context(), now: frozen, aff: newFakeProvider(false), att: newFakeProvider(true), obs: &recObserver{}}
	clock := func() time.Time { return e.now }
	dir := t.TempDir()
	var err error
	e.store, err = sqlite.Open(e.ctx, sqlite.Config{Path: filepath.Join(dir, "crmhook.db"), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.cfg = parseConfig(t, dir, which)
	e.m = &subscription.Manager{Config: e.cfg, Store: e.store, Now: clock,
		Providers: map[string]subscription.Provider{"aff": e.aff, "att": e.att}}
	return e
}

func parseConfig(t *testing.T, dir string, which sources) *config.Config {
	t.Helper()
	y := "listen: 127.0.0.1:0\nadmin: {listen: \"off\"}\npublic_url: " + publicURL + "\n" +
		"store: sqlite://" + filepath.Join(dir, "crmhook.db") + "\n" + `
sinks:
  - {name: alerts, type: file, path: "-", types: ["crmhook.*"]}
  - {name: everything, type: file, path: "-"}
  - {name: affinity-only, type: file, path: "-", sources: [aff]}
sources:
`
	if which.aff {
		y += `
  - name: aff
    provider: affinity
    secrets: [` + affSecret + `]
    subscription:
      api_key: test-key
      api_base_url: http://127.0.0.1:1
      events: [person.created, organization.created]
`
	}
	if which.att {
		y += `
  - name: att
    provider: attio
    secrets: [attio-config-signing-secret]
    subscription:
      api_key: test-token
      api_base_url: http://127.0.0.1:1/v2
      events: [record.created, note.created]
`
	}
	cfg, err := config.Parse([]byte(y), os.Getenv)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return cfg
}

// route names the sinks of the config whose filter wants ev, as serve does.
func (e *env) route(ev *crmhook.Event) []string {
	var names []string
	for _, s := range e.cfg.Sinks {
		if s.Filter().Match(ev) {
			names = append(names, s.Name)
		}
	}
	return names
}

// watchdog returns a Watchdog on the env, with or without repair.
func (e *env) watchdog(repair bool) *watchdog.Watchdog {
	e.t.Helper()
	w, err := watchdog.New(watchdog.Config{
		Manager: e.m, Store: e.store, Interval: time.Minute, Repair: repair, Owner: "test",
		Route: e.route, Observer: e.obs, Now: func() time.Time { return e.now },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// hookURL is the URL a source's subscription must point at.
func (e *env) hookURL(source string) string {
	e.t.Helper()
	u, err := e.m.HookURL(e.ctx, source)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// affinitySub puts an Affinity subscription of ours, as declared, at the
// fake provider.
func (e *env) affinitySub(id string, status subscription.Status) {
	e.aff.add(subscription.Remote{ID: id, URL: e.hookURL("aff"), Events: slices.Clone(affEvents), Status: status})
}

// attioSub puts an Attio webhook of ours, as declared, at the fake provider,
// with its secret in the store.
func (e *env) attioSub(id string, status subscription.Status) {
	e.t.Helper()
	e.att.add(subscription.Remote{ID: id, URL: e.hookURL("att"), Events: slices.Clone(attEvents), Status: status})
	if _, err := e.store.PutSecret(e.ctx, crmhook.SourceSecret{Source: "att", Secret: "attio-secret-of-" + id,
		SubscriptionID: id, State: crmhook.SecretActive, CreatedAt: e.now.Add(-24 * time.Hour)}); err != nil {
		e.t.Fatal(err)
	}
}

// receivedEvent stores an event of source received at at.
func (e *env) receivedEvent(source string, at time.Time) {
	e.t.Helper()
	provider := crmhook.ProviderAffinity
	if source == "att" {
		provider = crmhook.ProviderAttio
	}
	_, err := e.store.Insert(e.ctx, crmhook.NewEvent{Event: crmhook.Event{Source: source, Provider: provider,
		Type: "person.created", ReceivedAt: at, Payload: json.RawMessage(`{"type":"person.created"}`)}})
	if err != nil {
		e.t.Fatal(err)
	}
}

// putState stores what a previous check saw of a subscription.
func (e *env) putState(s crmhook.SubscriptionState) {
	e.t.Helper()
	if err := e.store.PutSubscriptionState(e.ctx, s); err != nil {
		e.t.Fatal(err)
	}
}

// check runs one Check, failing the test on an error.
func (e *env) check(w *watchdog.Watchdog) []watchdog.Finding {
	e.t.Helper()
	fs, err := w.Check(e.ctx)
	if err != nil {
		e.t.Fatalf("check: %v", err)
	}
	return fs
}

// opEvent is a stored operational event with its payload and sinks.
type opEvent struct {
	Event   crmhook.Event
	Payload watchdog.Payload
	Raw     map[string]any
	Sinks   []string
}

// opEvents returns the operational events stored, oldest first.
func (e *env) opEvents() []opEvent {
	e.t.Helper()
	evs, err := e.store.ListEvents(e.ctx, crmhook.EventFilter{Source: watchdog.OperationalSource, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Reverse(evs) // newest first → oldest first (ids are time-ordered)
	out := make([]opEvent, 0, len(evs))
	for _, ev := range evs {
		o := opEvent{Event: ev}
		if err := json.Unmarshal(ev.Payload, &o.Payload); err != nil {
			e.t.Fatalf("event %s: payload %s: %v", ev.Type, ev.Payload, err)
		}
		if err := json.Unmarshal(ev.Payload, &o.Raw); err != nil {
			e.t.Fatal(err)
		}
		_, ds, err := e.store.GetEvent(e.ctx, ev.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, d := range ds {
			o.Sinks = append(o.Sinks, d.Sink)
		}
		slices.Sort(o.Sinks)
		out = append(out, o)
	}
	return out
}

// opTypes lists the types of the stored operational events, oldest first.
func (e *env) opTypes() []string {
	var types []string
	for _, o := range e.opEvents() {
		types = append(types, o.Event.Type)
	}
	return types
}

// states returns the stored subscription states by "source/id".
func (e *env) states() map[string]crmhook.SubscriptionState {
	e.t.Helper()
	sts, err := e.store.ListSubscriptionStates(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]crmhook.SubscriptionState{}
	for _, s := range sts {
		out[s.Source+"/"+s.SubscriptionID] = s
	}
	return out
}

// gaps returns the source's gaps, newest first.
func (e *env) gaps(source string) []crmhook.Gap {
	e.t.Helper()
	gs, err := e.store.ListGaps(e.ctx, source, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return gs
}

// only returns the one finding, failing otherwise.
func only(t *testing.T, fs []watchdog.Finding) watchdog.Finding {
	t.Helper()
	if len(fs) != 1 {
		t.Fatalf("findings: %s, want exactly one", describe(fs))
	}
	return fs[0]
}

func describe(fs []watchdog.Finding) string {
	s := fmt.Sprintf("%d [", len(fs))
	for i, f := range fs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("{%s %s %s %s repaired=%v changes=%q err=%v gap=%v}", f.Source, f.SubscriptionID, f.Type, f.Status, f.Repaired, f.Changes, f.Err, f.Gap != nil)
	}
	return s + "]"
}

// realClockStore opens a SQLite store on the real clock, for Run: lease
// expiry is real time.
func realClockStore(t *testing.T) detachedStore {
	t.Helper()
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "crmhook.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return detachedStore{st}
}

// detachedStore runs the SQLite store's single-statement writes without
// the caller's cancellation. It works around a data race in the store, not
// the watchdog's: sqlite.Store.exec returns its named results (rows changed,
// last id) when the caller's context ends while the writer goroutine, which
// still runs the statement, sets them. Run's context ends mid-check when a
// test stops a watchdog.
type detachedStore struct{ *sqlite.Store }

func (s detachedStore) PutSubscriptionState(ctx context.Context, st crmhook.SubscriptionState) error {
	return s.Store.PutSubscriptionState(context.WithoutCancel(ctx), st)
}

func (s detachedStore) DeleteSubscriptionState(ctx context.Context, source, id string) error {
	return s.Store.DeleteSubscriptionState(context.WithoutCancel(ctx), source, id)
}

func (s detachedStore) RecordGap(ctx context.Context, g crmhook.Gap) (int64, error) {
	return s.Store.RecordGap(context.WithoutCancel(ctx), g)
}

func (s detachedStore) PutSecret(ctx context.Context, sec crmhook.SourceSecret) (int64, error) {
	return s.Store.PutSecret(context.WithoutCancel(ctx), sec)
}

func (s detachedStore) SetSecretState(ctx context.Context, id int64, state crmhook.SecretState, retireAt time.Time) error {
	return s.Store.SetSecretState(context.WithoutCancel(ctx), id, state, retireAt)
}

func (s detachedStore) ReleaseLease(ctx context.Context, name, owner string) error {
	return s.Store.ReleaseLease(context.WithoutCancel(ctx), name, owner)
}
