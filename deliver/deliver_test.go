package deliver_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/deliver"
	"github.com/crmhook/crmhook/store/sqlite"
)

// recordingSink answers with fn and records every attempt.
type recordingSink struct {
	name     string
	fn       func(ctx context.Context, ev *crmhook.Event, attempt int) error
	mu       sync.Mutex
	got      map[string]int // event id → successful deliveries
	attempts atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
}

func newSink(name string, fn func(ctx context.Context, ev *crmhook.Event, attempt int) error) *recordingSink {
	return &recordingSink{name: name, fn: fn, got: map[string]int{}}
}

func (s *recordingSink) Name() string { return s.name }

func (s *recordingSink) Deliver(ctx context.Context, ev *crmhook.Event, attempt int) error {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxIn.Load()
		if n <= m || s.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	s.attempts.Add(1)
	var err error
	if s.fn != nil {
		err = s.fn(ctx, ev, attempt)
	}
	if err == nil {
		s.mu.Lock()
		s.got[ev.ID]++
		s.mu.Unlock()
	}
	return err
}

func (s *recordingSink) delivered() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.got))
	for k, v := range s.got {
		out[k] = v
	}
	return out
}

func openStore(t *testing.T) crmhook.Store { return openStoreOn(t, time.Now) }

// openStoreOn opens a store on the given clock, the one the dispatcher
// under test must share.
func openStoreOn(t *testing.T, now func() time.Time) crmhook.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "d.db"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func insert(t *testing.T, st crmhook.Store, n int, sinks ...string) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := range n {
		ev := crmhook.Event{ID: crmhook.NewEventID(), Source: "affinity", Provider: crmhook.ProviderAffinity, Type: "person.created",
			DedupeKey: fmt.Sprintf("k-%s-%d", t.Name(), i), ReceivedAt: time.Now(), Payload: []byte(`{"type":"person.created","body":{},"sent_at":1}`)}
		res, err := st.Insert(context.Background(), crmhook.NewEvent{Event: ev, Sinks: sinks, DedupeUntil: time.Now().Add(time.Hour)})
		if err != nil || res.Duplicate {
			t.Fatalf("insert: %v %+v", err, res)
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

// start runs a dispatcher until the test ends (or stop is called).
func start(t *testing.T, cfg deliver.Config) (stop func()) {
	t.Helper()
	d, err := deliver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // a hang guard, not a timing assertion
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func deliveries(t *testing.T, st crmhook.Store, state crmhook.DeliveryState) []crmhook.Delivery {
	t.Helper()
	ds, err := st.ListDeliveries(context.Background(), crmhook.DeliveryFilter{State: state, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

var fast = deliver.RetryPolicy{MaxAttempts: 5, MaxAge: time.Hour, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

func TestEveryEventReachesEverySinkOnceWithinConcurrency(t *testing.T) {
	st := openStore(t)
	slow := func(ctx context.Context, _ *crmhook.Event, _ int) error { time.Sleep(time.Millisecond); return nil }
	a, b := newSink("a", slow), newSink("b", slow)
	ids := insert(t, st, 60, "a", "b")
	start(t, deliver.Config{Store: st, Sinks: []deliver.SinkConfig{{Sink: a, Concurrency: 3}, {Sink: b, Concurrency: 1}}, PollInterval: 10 * time.Millisecond, Retry: fast})
	waitFor(t, "all delivered", func() bool { return len(deliveries(t, st, crmhook.StateDelivered)) == 120 })
	for _, s := range []*recordingSink{a, b} {
		got := s.delivered()
		for _, id := range ids {
			if got[id] != 1 {
				ds, _ := st.ListDeliveries(context.Background(), crmhook.DeliveryFilter{EventID: id})
				t.Fatalf("sink %s got event %s %d times; its deliveries: %+v", s.name, id, got[id], ds)
			}
		}
	}
	if m := a.maxIn.Load(); m > 3 {
		t.Errorf("sink a had %d in flight, limit 3", m)
	}
	if m := b.maxIn.Load(); m > 1 {
		t.Errorf("sink b had %d in flight, limit 1", m)
	}
}

func TestFailuresAreRetriedUntilDelivered(t *testing.T) {
	st := openStore(t)
	s := newSink("a", func(_ context.Context, _ *crmhook.Event, attempt int) error {
		if attempt < 3 {
			return errors.New("connection refused")
		}
		return nil
	})
	insert(t, st, 5, "a")
	start(t, deliver.Config{Store: st, Sinks: []deliver.SinkConfig{{Sink: s}}, PollInterval: 5 * time.Millisecond, Retry: fast})
	waitFor(t, "delivered", func() bool { return len(deliveries(t, st, crmhook.StateDelivered)) == 5 })
	for _, d := range deliveries(t, st, crmhook.StateDelivered) {
		if d.Attempts != 3 {
			t.Errorf("delivery %d: %d attempts, want 3", d.ID, d.Attempts)
		}
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	st := openStore(t)
	s := newSink("a", func(context.Context, *crmhook.Event, int) error {
		return &crmhook.DeliveryError{Err: errors.New("HTTP 429"), RetryAfter: time.Hour}
	})
	insert(t, st, 1, "a")
	before := time.Now()
	start(t, deliver.Config{Store: st, Sinks: []deliver.SinkConfig{{Sink: s}}, PollInterval: 5 * time.Millisecond, Retry: deliver.RetryPolicy{MaxAttempts: 5, MaxAge: 72 * time.Hour, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}})
	waitFor(t, "one attempt", func() bool {
		ds := deliveries(t, st, crmhook.StatePending)
		return len(ds) == 1 && ds[0].Attempts == 1
	})
	d := deliveries(t, st, crmhook.StatePending)[0]
	if d.NextAttemptAt.Before(before.Add(time.Hour - time.Second)) {
		t.Errorf("next attempt at %v, want at least an hour after %v (Retry-After)", d.NextAttemptAt, before)
	}
	if d.LastError != "HTTP 429" {
		t.Errorf("last error %q", d.LastError)
	}
}

func TestPermanentFailureIsDeadAtOnce(t *testing.T) {
	st := openStore(t)
	s := newSink("a", func(context.Context, *crmhook.Event, int) error {
		return &crmhook.DeliveryError{Err: errors.New("HTTP 410 Gone"), Permanent: true}
	})
	insert(t, st, 2, "a")
	start(t, deliver.Config{Store: st, Sinks: []deliver.SinkConfig{{Sink: s}}, PollInterval: 5 * time.Millisecond, Retry: fast})
	waitFor(t, "dead", func() bool { return len(deliveries(t, st, crmhook.StateDead)) == 2 })
	if n := s.attempts.Load(); n != 2 {
		t.Errorf("%d attempts, want 2 (one each)", n)
	}
}

func TestBudgetSpentGoesToDeadLettersAndReplayDelivers(t *testing.T) {
	st := openStore(t)
	var healthy atomic.Bool
	s := newSink("a", func(context.Context, *crmhook.Event, int) error {
		if healthy.Load() {
			return nil
		}
		return errors.New("HTTP 503")
	})
	insert(t, st, 3, "a")
	start(t, deliver.Config{Store: st, Sinks: []deliver.SinkConfig{{Sink: s}}, PollInterval: 5 * time.Millisecond, Retry: fast})
	waitFor(t, "dead", func() bool { return len(deliveries(t, st, crmhook.StateDead)) == 3 })
	for _, d := range deliveries(t, st, crmhook.StateDead) {
		if d.Attempts != fast.MaxAttempts || d.LastError != "HTTP 503" {
			t.Errorf("dead delivery %+v, want %d attempts and the last error", d, fast.MaxAttempts)
		}
	}
	healthy.Store(true)
	n, err := st.Replay(context.Background(), crmhook.DeliveryFilter{State: crmhook.StateDead})
	if err != nil || n != 3 {
		t.Fatalf("replay: %d %v", n, err)
	}
	waitFor(t, "replayed deliveries delivered", func() bool { return len(deliveries(t, st, crmhook.StateDelivered)) == 3 })
}

func TestMaxAgeEndsRetries(t *testing.T) {
	// One clock for the store and the dispatcher, moved two hours on after
	// the insert: the delivery is then older than the budget everywhere.
	var ahead atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	st := openStoreOn(t, clock)
	s := newSink("a", func(context.Context, *crmhook.Event, int) error { return errors.New("timeout") })
	insert(t, st, 1, "a")
	ahead.Store(int64(2 * time.Hour))
	start(t, deliver.Config{Store: st, Sinks: []deliver.SinkConfig{{Sink: s}}, PollInterval: 5 * time.Millisecond,
		Now:   clock,
		Retry: deliver.RetryPolicy{MaxAttempts: 100, MaxAge: time.Hour, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}})
	waitFor(t, "dead", func() bool { return len(deliveries(t, st, crmhook.StateDead)) == 1 })
	if n := s.attempts.Load(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestShutdownReleasesInFlightWork(t *testing.T) {
	st := openStore(t)
	entered := make(chan struct{}, 10)
	s := newSink("a", func(ctx context.Context, _ *crmhook.Event, _ int) error {
		entered <- struct{}{}
		<-ctx.Done() // a sink that hangs until cancelled
		return ctx.Err()
	})
	insert(t, st, 2, "a")
	stop := start(t, deliver.Config{Store: st, Sinks: []deliver.SinkConfig{{Sink: s, Concurrency: 2}}, PollInterval: 5 * time.Millisecond, ShutdownGrace: 50 * time.Millisecond, Retry: fast})
	<-entered
	<-entered
	stop()
	ds := deliveries(t, st, crmhook.StatePending)
	if len(ds) != 2 {
		t.Fatalf("%d pending after shutdown, want 2", len(ds))
	}
	for _, d := range ds {
		if d.Attempts != 0 || !d.LeasedUntil.IsZero() && d.LeasedUntil.After(time.Now()) {
			t.Errorf("delivery %+v not released uncounted", d)
		}
	}
	// Released work is claimable at once by the next dispatcher.
	ok := newSink("a", nil)
	start(t, deliver.Config{Store: st, Sinks: []deliver.SinkConfig{{Sink: ok}}, PollInterval: 5 * time.Millisecond, Retry: fast})
	waitFor(t, "delivered after restart", func() bool { return len(deliveries(t, st, crmhook.StateDelivered)) == 2 })
}

func TestTwoDispatchersShareWorkWithoutDoubleDelivery(t *testing.T) {
	st := openStore(t)
	var mu sync.Mutex
	count := map[string]int{}
	fn := func(_ context.Context, ev *crmhook.Event, _ int) error {
		mu.Lock()
		count[ev.ID]++
		mu.Unlock()
		return nil
	}
	ids := insert(t, st, 100, "a")
	for i := range 2 {
		start(t, deliver.Config{Store: st, Owner: fmt.Sprint("d", i), Sinks: []deliver.SinkConfig{{Sink: newSink("a", fn), Concurrency: 4}}, PollInterval: 5 * time.Millisecond, Retry: fast})
	}
	waitFor(t, "all delivered", func() bool { return len(deliveries(t, st, crmhook.StateDelivered)) == 100 })
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if count[id] != 1 {
			t.Fatalf("event %s delivered %d times", id, count[id])
		}
	}
}

func TestBackoffIsFullJitterWithinCaps(t *testing.T) {
	p := deliver.RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: 2 * time.Second}
	for attempts := 1; attempts <= 50; attempts++ {
		ceiling := min(p.MaxDelay, p.BaseDelay<<min(attempts-1, 30))
		var lo, hi time.Duration = time.Hour, 0
		for range 200 {
			d := p.Backoff(attempts)
			if d <= 0 || d > ceiling+time.Millisecond {
				t.Fatalf("Backoff(%d) = %v, outside (0, %v]", attempts, d, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if attempts >= 3 && hi-lo < ceiling/4 {
			t.Errorf("Backoff(%d) spread %v..%v: not jittered", attempts, lo, hi)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	st := openStore(t)
	s := newSink("a", nil)
	for name, cfg := range map[string]deliver.Config{
		"no store":       {Sinks: []deliver.SinkConfig{{Sink: s}}},
		"duplicate sink": {Store: st, Sinks: []deliver.SinkConfig{{Sink: s}, {Sink: newSink("a", nil)}}},
		"nil sink":       {Store: st, Sinks: []deliver.SinkConfig{{}}},
		"short lease":    {Store: st, Lease: time.Millisecond},
		"bad delays":     {Store: st, Retry: deliver.RetryPolicy{BaseDelay: time.Hour, MaxDelay: time.Second}},
	} {
		if _, err := deliver.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
