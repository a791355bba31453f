// Package storetest is the conformance suite every crmhook.Store passes.
// A store's own test calls Run with a constructor of fresh, empty stores:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) crmhook.Store {
//			s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "crmhook.db")})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite knows nothing of any one store. Time is controlled through the
// times it passes in (DedupeUntil, Retry's next, PruneParams); where a store
// reads its own clock (due-ness, leases) it uses short leases and polls with
// a deadline, so the store's clock must be the real one.
//
// Beyond the doc comments of crmhook.Store, the suite holds stores to these
// conventions, so that every backend answers the CLI and the dispatcher alike:
//   - payloads come back byte for byte (no JSON normalisation); times to the
//     millisecond at least; a zero OccurredAt stays zero;
//   - an event whose insert fails (a reused event id, a cancelled context)
//     leaves nothing: no deliveries and no dedupe key;
//   - Complete, Retry, Kill and Release of an unknown delivery return
//     ErrNotFound; of a delivery whose lease token no longer matches (taken
//     over, or already finished) ErrLeaseLost;
//   - listings are newest first with a default Limit of 100; EventFilter
//     times apply to ReceivedAt, DeliveryFilter times to CreatedAt,
//     RejectionFilter times to RejectedAt; EventFilter.Type globs as
//     path.Match does;
//   - Replay never touches pending deliveries;
//   - ReleaseRejection keeps the event's payload and dedupe key, receives it
//     now, and fails the second time;
//   - Prune never removes an event with a pending or dead delivery;
//   - after Close every method returns an error wrapping ErrClosed.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
)

// Run runs the suite. newStore returns a fresh, empty store and arranges
// its Close in t.Cleanup; the suite also closes some stores itself, so
// Close must tolerate a second call (its result is the constructor's to judge).
func Run(t *testing.T, newStore func(t *testing.T) crmhook.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s crmhook.Store)
	}{
		{"InsertGetRoundTrip", testInsertGetRoundTrip},
		{"InsertWithoutSinks", testInsertWithoutSinks},
		{"DedupeConcurrent", testDedupeConcurrent},
		{"DedupeWindowEnds", testDedupeWindowEnds},
		{"InsertIsAtomic", testInsertIsAtomic},
		{"ClaimConcurrentClaimersEachOnce", testClaimConcurrent},
		{"ClaimLeaseHolds", testClaimLeaseHolds},
		{"ClaimLeaseExpires", testClaimLeaseExpires},
		{"ClaimLimit", testClaimLimit},
		{"ClaimSinks", testClaimSinks},
		{"ClaimOldestDueFirst", testClaimOldestDueFirst},
		{"ClaimSkipsNotDue", testClaimSkipsNotDue},
		{"Complete", testComplete},
		{"Retry", testRetry},
		{"Kill", testKill},
		{"Release", testRelease},
		{"Replay", testReplay},
		{"Rejections", testRejections},
		{"PruneEvents", testPruneEvents},
		{"PruneDedupeKeys", testPruneDedupeKeys},
		{"ListEvents", testListEvents},
		{"ListDeliveries", testListDeliveries},
		{"Stats", testStats},
		{"NotFound", testNotFound},
		{"Ping", testPing},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// A minute-long lease never runs out during a test.
const longLease = time.Minute

// pollDeadline bounds every wait for the store's clock.
const pollDeadline = 10 * time.Second

var seq struct {
	sync.Mutex
	n int
}

// newEvent returns an event to insert with a unique id and dedupe key, a
// payload that is not canonical JSON (so byte-exactness shows), received now.
func newEvent(source, typ string, sinks ...string) crmhook.NewEvent {
	seq.Lock()
	seq.n++
	n := seq.n
	seq.Unlock()
	now := time.Now()
	return crmhook.NewEvent{
		Event: crmhook.Event{
			ID:         crmhook.NewEventID(),
			Source:     source,
			Provider:   crmhook.ProviderAffinity,
			Type:       typ,
			DedupeKey:  fmt.Sprintf("key-%d-%d", now.UnixNano(), n),
			OccurredAt: now.Add(-time.Minute),
			ReceivedAt: now,
			Payload:    json.RawMessage(fmt.Sprintf(`{"type": %q,  "n":%d, "body":{"z":1,"a":"\u00e9 é <&>"}}`+"\n", typ, n)),
		},
		Sinks:       sinks,
		DedupeUntil: now.Add(time.Hour),
	}
}

func mustInsert(t *testing.T, s crmhook.Store, ne crmhook.NewEvent) string {
	t.Helper()
	res, err := s.Insert(t.Context(), ne)
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if res.Duplicate {
		t.Fatalf("Insert of a fresh key reported a duplicate of %s", res.EventID)
	}
	if res.EventID != ne.Event.ID {
		t.Fatalf("Insert returned event id %q, want %q", res.EventID, ne.Event.ID)
	}
	return res.EventID
}

func mustClaim(t *testing.T, s crmhook.Store, p crmhook.ClaimParams) []crmhook.Claim {
	t.Helper()
	if p.Lease == 0 {
		p.Lease = longLease
	}
	if p.Owner == "" {
		p.Owner = "storetest"
	}
	cs, err := s.Claim(t.Context(), p)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return cs
}

func mustGet(t *testing.T, s crmhook.Store, id string) (crmhook.Event, []crmhook.Delivery) {
	t.Helper()
	ev, ds, err := s.GetEvent(t.Context(), id)
	if err != nil {
		t.Fatalf("GetEvent(%s): %v", id, err)
	}
	return ev, ds
}

// delivery returns the delivery of event id to sink.
func delivery(t *testing.T, s crmhook.Store, id, sink string) crmhook.Delivery {
	t.Helper()
	_, ds := mustGet(t, s, id)
	for _, d := range ds {
		if d.Sink == sink {
			return d
		}
	}
	t.Fatalf("event %s has no delivery to %q (has %d)", id, sink, len(ds))
	return crmhook.Delivery{}
}

// claimOne claims the single due delivery of sink.
func claimOne(t *testing.T, s crmhook.Store, sink string) crmhook.Claim {
	t.Helper()
	cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10, Sinks: []string{sink}})
	if len(cs) != 1 {
		t.Fatalf("Claim for sink %q returned %d claims, want 1", sink, len(cs))
	}
	return cs[0]
}

// pollClaim claims until something comes back or the deadline passes.
func pollClaim(t *testing.T, s crmhook.Store, p crmhook.ClaimParams) []crmhook.Claim {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for {
		if cs := mustClaim(t, s, p); len(cs) > 0 {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing became claimable within %v", pollDeadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stats(t *testing.T, s crmhook.Store) crmhook.Stats {
	t.Helper()
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

// near reports whether a and b are within a millisecond: stores keep at
// least milliseconds, and may round rather than truncate.
func near(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() && b.IsZero()
	}
	d := a.Sub(b)
	return d < time.Millisecond && d > -time.Millisecond
}

// between reports whether t lies in [from, to], give or take a millisecond.
func between(t, from, to time.Time) bool {
	return !t.Before(from.Add(-time.Millisecond)) && !t.After(to.Add(time.Millisecond))
}

func eventIDs(evs []crmhook.Event) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	return ids
}

func sinksOf(ds []crmhook.Delivery) []string {
	var sinks []string
	for _, d := range ds {
		sinks = append(sinks, d.Sink)
	}
	sort.Strings(sinks)
	return sinks
}

func checkEvent(t *testing.T, got, want crmhook.Event) {
	t.Helper()
	if got.ID != want.ID || got.Source != want.Source || got.Provider != want.Provider ||
		got.Type != want.Type || got.DedupeKey != want.DedupeKey {
		t.Errorf("event = {%s %s %s %s %s}, want {%s %s %s %s %s}",
			got.ID, got.Source, got.Provider, got.Type, got.DedupeKey,
			want.ID, want.Source, want.Provider, want.Type, want.DedupeKey)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("payload = %q, want exactly %q", got.Payload, want.Payload)
	}
	if !near(got.OccurredAt, want.OccurredAt) {
		t.Errorf("OccurredAt = %v, want %v", got.OccurredAt, want.OccurredAt)
	}
	if !near(got.ReceivedAt, want.ReceivedAt) {
		t.Errorf("ReceivedAt = %v, want %v", got.ReceivedAt, want.ReceivedAt)
	}
}

func testInsertGetRoundTrip(t *testing.T, s crmhook.Store) {
	ne := newEvent("affinity", "person.created", "sink-a", "sink-b")
	before := time.Now()
	mustInsert(t, s, ne)
	after := time.Now()

	ev, ds := mustGet(t, s, ne.Event.ID)
	checkEvent(t, ev, ne.Event)
	if got := sinksOf(ds); !slices.Equal(got, []string{"sink-a", "sink-b"}) {
		t.Fatalf("deliveries to %v, want one to each of [sink-a sink-b]", got)
	}
	if ds[0].ID == 0 || ds[0].ID == ds[1].ID {
		t.Errorf("delivery ids %d and %d: want distinct, non-zero", ds[0].ID, ds[1].ID)
	}
	for _, d := range ds {
		if d.EventID != ne.Event.ID || d.State != crmhook.StatePending || d.Attempts != 0 || d.LastError != "" {
			t.Errorf("new delivery = %+v, want pending for %s with no attempts", d, ne.Event.ID)
		}
		if !d.LeasedUntil.IsZero() || !d.DeliveredAt.IsZero() {
			t.Errorf("new delivery leased until %v, delivered at %v: want both zero", d.LeasedUntil, d.DeliveredAt)
		}
		if !between(d.CreatedAt, before, after) {
			t.Errorf("CreatedAt %v not within the Insert call [%v, %v]", d.CreatedAt, before, after)
		}
		if d.NextAttemptAt.After(after.Add(time.Millisecond)) {
			t.Errorf("NextAttemptAt %v is after the Insert returned (%v): want due now", d.NextAttemptAt, after)
		}
	}

	// Due now: both are claimable at once, with their event.
	cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10})
	if len(cs) != 2 {
		t.Fatalf("Claim returned %d claims, want 2", len(cs))
	}
	if cs[0].Lease == "" || cs[0].Lease == cs[1].Lease {
		t.Errorf("leases %q and %q: want distinct, non-empty", cs[0].Lease, cs[1].Lease)
	}
	for _, c := range cs {
		checkEvent(t, c.Event, ne.Event)
		if !c.Delivery.LeasedUntil.After(time.Now()) {
			t.Errorf("claimed delivery leased until %v: want a lease in the future", c.Delivery.LeasedUntil)
		}
	}

	// The zero OccurredAt survives as zero.
	ne2 := newEvent("attio", "record.created")
	ne2.Event.OccurredAt = time.Time{}
	ne2.Event.Provider = crmhook.ProviderAttio
	mustInsert(t, s, ne2)
	ev2, _ := mustGet(t, s, ne2.Event.ID)
	checkEvent(t, ev2, ne2.Event)
}

func testInsertWithoutSinks(t *testing.T, s crmhook.Store) {
	ne := newEvent("affinity", "sample.webhook")
	mustInsert(t, s, ne)
	ev, ds := mustGet(t, s, ne.Event.ID)
	checkEvent(t, ev, ne.Event)
	if len(ds) != 0 {
		t.Errorf("event without sinks has %d deliveries", len(ds))
	}
	if cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10}); len(cs) != 0 {
		t.Errorf("Claim returned %d claims for an event without sinks", len(cs))
	}
	if st := stats(t, s); st.Pending != 0 {
		t.Errorf("Stats.Pending = %d, want 0", st.Pending)
	}
	// Still deduplicated.
	again := newEvent("affinity", "sample.webhook")
	again.Event.DedupeKey = ne.Event.DedupeKey
	res, err := s.Insert(t.Context(), again)
	if err != nil || !res.Duplicate || res.EventID != ne.Event.ID {
		t.Errorf("Insert of the same key = %+v, %v; want a duplicate of %s", res, err, ne.Event.ID)
	}
}

func testDedupeConcurrent(t *testing.T, s crmhook.Store) {
	const n = 50
	key := newEvent("affinity", "person.updated").Event.DedupeKey
	results := make([]crmhook.InsertResult, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		ne := newEvent("same-key", "person.updated", "sink-a")
		ne.Event.DedupeKey = key
		ids[i] = ne.Event.ID
		wg.Go(func() {
			res, err := s.Insert(t.Context(), ne)
			if err != nil {
				t.Errorf("Insert %d: %v", i, err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	winner := ""
	for i, res := range results {
		if !res.Duplicate {
			if winner != "" {
				t.Fatalf("two inserts of one key were stored: %s and %s", winner, res.EventID)
			}
			if res.EventID != ids[i] {
				t.Errorf("stored insert returned id %s, want its own %s", res.EventID, ids[i])
			}
			winner = res.EventID
		}
	}
	if winner == "" {
		t.Fatal("every insert of a fresh key was a duplicate")
	}
	for i, res := range results {
		if res.Duplicate && res.EventID != winner {
			t.Errorf("duplicate %d reported event %q, want the stored %s", i, res.EventID, winner)
		}
	}
	evs, err := s.ListEvents(t.Context(), crmhook.EventFilter{Source: "same-key", Limit: 1000})
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	if got := eventIDs(evs); !slices.Equal(got, []string{winner}) {
		t.Errorf("stored events %v, want only %s", got, winner)
	}
	if st := stats(t, s); st.Pending != 1 {
		t.Errorf("Stats.Pending = %d, want 1 (the stored event's one delivery)", st.Pending)
	}

	// Distinct keys, concurrently: every one is stored.
	for range n {
		ne := newEvent("distinct-keys", "person.updated", "sink-a")
		wg.Go(func() {
			res, err := s.Insert(t.Context(), ne)
			if err != nil || res.Duplicate {
				t.Errorf("Insert of a fresh key = %+v, %v", res, err)
			}
		})
	}
	wg.Wait()
	evs, err = s.ListEvents(t.Context(), crmhook.EventFilter{Source: "distinct-keys", Limit: 1000})
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	if len(evs) != n {
		t.Errorf("stored %d events with distinct keys, want %d", len(evs), n)
	}
}

func testDedupeWindowEnds(t *testing.T, s crmhook.Store) {
	first := newEvent("affinity", "person.created", "sink-a")
	first.DedupeUntil = time.Now().Add(-time.Minute) // its window is already over
	mustInsert(t, s, first)

	second := newEvent("affinity", "person.created", "sink-a")
	second.Event.DedupeKey = first.Event.DedupeKey
	res, err := s.Insert(t.Context(), second)
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if res.Duplicate || res.EventID != second.Event.ID {
		t.Fatalf("Insert after the window ended = %+v, want stored as %s", res, second.Event.ID)
	}
	mustGet(t, s, first.Event.ID)
	mustGet(t, s, second.Event.ID)

	// The key now belongs to the second event, inside its window.
	third := newEvent("affinity", "person.created", "sink-a")
	third.Event.DedupeKey = first.Event.DedupeKey
	res, err = s.Insert(t.Context(), third)
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if !res.Duplicate || res.EventID != second.Event.ID {
		t.Errorf("Insert inside the new window = %+v, want a duplicate of %s", res, second.Event.ID)
	}
}

func testInsertIsAtomic(t *testing.T, s crmhook.Store) {
	// A cancelled insert stores nothing, not even its dedupe key.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	gone := newEvent("affinity", "person.created", "sink-a")
	if _, err := s.Insert(ctx, gone); err == nil {
		t.Fatal("Insert with a cancelled context succeeded")
	}
	if _, _, err := s.GetEvent(t.Context(), gone.Event.ID); !errors.Is(err, crmhook.ErrNotFound) {
		t.Errorf("GetEvent of a cancelled insert: %v, want ErrNotFound", err)
	}
	retry := newEvent("affinity", "person.created", "sink-a")
	retry.Event.DedupeKey = gone.Event.DedupeKey
	mustInsert(t, s, retry)

	// An insert that fails half-way (its event id is taken) leaves neither
	// deliveries nor its dedupe key behind.
	orig := newEvent("affinity", "person.created", "sink-a", "sink-b")
	mustInsert(t, s, orig)
	clash := newEvent("affinity", "organization.created", "sink-c")
	clash.Event.ID = orig.Event.ID
	if res, err := s.Insert(t.Context(), clash); err == nil {
		t.Fatalf("Insert reusing event id %s = %+v, want an error", orig.Event.ID, res)
	}
	ev, ds := mustGet(t, s, orig.Event.ID)
	checkEvent(t, ev, orig.Event)
	if got := sinksOf(ds); !slices.Equal(got, []string{"sink-a", "sink-b"}) {
		t.Errorf("after a failed insert the event's deliveries go to %v, want [sink-a sink-b]", got)
	}
	again := newEvent("affinity", "organization.created", "sink-c")
	again.Event.DedupeKey = clash.Event.DedupeKey
	mustInsert(t, s, again) // the failed insert did not keep the key
	if st := stats(t, s); st.Pending != 4 {
		t.Errorf("Stats.Pending = %d, want 4", st.Pending)
	}
}

func testClaimConcurrent(t *testing.T, s crmhook.Store) {
	const events, claimers = 40, 8
	var wg sync.WaitGroup
	for range events {
		ne := newEvent("affinity", "person.created", "sink-a")
		wg.Go(func() {
			if _, err := s.Insert(t.Context(), ne); err != nil {
				t.Errorf("Insert: %v", err)
			}
		})
	}
	wg.Wait()

	var (
		mu      sync.Mutex
		claimed = map[int64]int{}
		leases  = map[string]bool{}
		total   int
	)
	for w := range claimers {
		wg.Go(func() {
			for {
				cs, err := s.Claim(t.Context(), crmhook.ClaimParams{Owner: fmt.Sprint("claimer-", w), Limit: 3, Lease: longLease})
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if len(cs) == 0 {
					return
				}
				mu.Lock()
				total += len(cs)
				for _, c := range cs {
					claimed[c.Delivery.ID]++
					leases[c.Lease] = true
				}
				overclaimed := total > events
				mu.Unlock()
				if overclaimed {
					return // a bug hands out deliveries twice; do not loop forever
				}
			}
		})
	}
	wg.Wait()
	if len(claimed) != events {
		t.Errorf("%d deliveries claimed, want all %d", len(claimed), events)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("delivery %d claimed %d times while its lease held", id, n)
		}
	}
	if len(leases) != events {
		t.Errorf("%d distinct leases for %d claims", len(leases), events)
	}
	if cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 100}); len(cs) != 0 {
		t.Errorf("Claim while every lease holds returned %d claims", len(cs))
	}
}

func testClaimLeaseHolds(t *testing.T, s crmhook.Store) {
	mustInsert(t, s, newEvent("affinity", "person.created", "sink-a"))
	if cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10}); len(cs) != 1 {
		t.Fatalf("Claim returned %d claims, want 1", len(cs))
	}
	if cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10}); len(cs) != 0 {
		t.Errorf("a leased delivery was claimed again while its lease held")
	}
}

func testClaimLeaseExpires(t *testing.T, s crmhook.Store) {
	id := mustInsert(t, s, newEvent("affinity", "person.created", "sink-a"))
	old := mustClaim(t, s, crmhook.ClaimParams{Limit: 10, Lease: 200 * time.Millisecond})
	if len(old) != 1 {
		t.Fatalf("Claim returned %d claims, want 1", len(old))
	}
	// Once the lease runs out the delivery is claimable again (a crashed
	// dispatcher's work is not lost).
	cs := pollClaim(t, s, crmhook.ClaimParams{Limit: 10})
	if len(cs) != 1 || cs[0].Delivery.ID != old[0].Delivery.ID {
		t.Fatalf("after the lease ran out Claim returned %d claims, want delivery %d", len(cs), old[0].Delivery.ID)
	}
	if cs[0].Lease == old[0].Lease {
		t.Fatal("the new claim has the old lease")
	}
	if cs[0].Delivery.Attempts != 0 {
		t.Errorf("an expired lease counted an attempt: Attempts = %d", cs[0].Delivery.Attempts)
	}
	ctx := t.Context()
	for name, err := range map[string]error{
		"Complete": s.Complete(ctx, old[0]),
		"Retry":    s.Retry(ctx, old[0], time.Now(), "late"),
		"Kill":     s.Kill(ctx, old[0], "late"),
		"Release":  s.Release(ctx, old[0]),
	} {
		if !errors.Is(err, crmhook.ErrLeaseLost) {
			t.Errorf("%s with the taken-over lease: %v, want ErrLeaseLost", name, err)
		}
	}
	if d := delivery(t, s, id, "sink-a"); d.State != crmhook.StatePending || d.Attempts != 0 {
		t.Errorf("the old claim changed the delivery: %+v", d)
	}
	if err := s.Complete(ctx, cs[0]); err != nil {
		t.Fatalf("Complete with the live lease: %v", err)
	}
	if err := s.Complete(ctx, cs[0]); !errors.Is(err, crmhook.ErrLeaseLost) {
		t.Errorf("Complete twice: %v, want ErrLeaseLost", err)
	}
}

func testClaimLimit(t *testing.T, s crmhook.Store) {
	for range 5 {
		mustInsert(t, s, newEvent("affinity", "person.created", "sink-a"))
	}
	if cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 2}); len(cs) != 2 {
		t.Errorf("Claim with Limit 2 returned %d", len(cs))
	}
	if cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10}); len(cs) != 3 {
		t.Errorf("Claim with Limit 10 returned %d, want the 3 left", len(cs))
	}
}

func testClaimSinks(t *testing.T, s crmhook.Store) {
	mustInsert(t, s, newEvent("affinity", "person.created", "sink-a", "sink-b", "sink-c"))
	cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10, Sinks: []string{"sink-b"}})
	if len(cs) != 1 || cs[0].Delivery.Sink != "sink-b" {
		t.Fatalf("Claim for sink-b returned %d claims (%v)", len(cs), cs)
	}
	cs = mustClaim(t, s, crmhook.ClaimParams{Limit: 10, Sinks: []string{"sink-c", "sink-a", "sink-z"}})
	var got []string
	for _, c := range cs {
		got = append(got, c.Delivery.Sink)
	}
	sort.Strings(got)
	if !slices.Equal(got, []string{"sink-a", "sink-c"}) {
		t.Errorf("Claim for sink-a and sink-c returned %v", got)
	}
}

func testClaimOldestDueFirst(t *testing.T, s crmhook.Store) {
	var ids []string
	for range 3 {
		ids = append(ids, mustInsert(t, s, newEvent("affinity", "person.created", "sink-a")))
	}
	cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10})
	if got := claimedEvents(cs); !slices.Equal(got, ids) {
		t.Fatalf("claimed %v, want the insertion order %v", got, ids)
	}
	// Reschedule them due in the reverse order: due-ness, not insertion, decides.
	now := time.Now()
	for i, c := range cs {
		if err := s.Retry(t.Context(), c, now.Add(-time.Duration(i+1)*time.Hour), "retry"); err != nil {
			t.Fatalf("Retry: %v", err)
		}
	}
	first := mustClaim(t, s, crmhook.ClaimParams{Limit: 1})
	rest := mustClaim(t, s, crmhook.ClaimParams{Limit: 10})
	if got := claimedEvents(append(first, rest...)); !slices.Equal(got, []string{ids[2], ids[1], ids[0]}) {
		t.Errorf("claimed %v, want the oldest due first %v", got, []string{ids[2], ids[1], ids[0]})
	}
}

func claimedEvents(cs []crmhook.Claim) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.Delivery.EventID)
	}
	return ids
}

func testClaimSkipsNotDue(t *testing.T, s crmhook.Store) {
	id := mustInsert(t, s, newEvent("affinity", "person.created", "sink-a"))
	c := claimOne(t, s, "sink-a")
	next := time.Now().Add(time.Hour)
	if err := s.Retry(t.Context(), c, next, "sink answered 503"); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	if cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10}); len(cs) != 0 {
		t.Errorf("a delivery due in an hour was claimed")
	}
	if d := delivery(t, s, id, "sink-a"); !near(d.NextAttemptAt, next) {
		t.Errorf("NextAttemptAt = %v, want %v", d.NextAttemptAt, next)
	}
}

func testComplete(t *testing.T, s crmhook.Store) {
	id := mustInsert(t, s, newEvent("affinity", "person.created", "sink-a"))
	c := claimOne(t, s, "sink-a")
	before := time.Now()
	if err := s.Complete(t.Context(), c); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	after := time.Now()
	d := delivery(t, s, id, "sink-a")
	if d.State != crmhook.StateDelivered || d.Attempts != 1 {
		t.Errorf("completed delivery: state %s, attempts %d; want delivered, 1", d.State, d.Attempts)
	}
	if !between(d.DeliveredAt, before, after) {
		t.Errorf("DeliveredAt %v not within the Complete call [%v, %v]", d.DeliveredAt, before, after)
	}
	if !d.LeasedUntil.IsZero() {
		t.Errorf("a delivered delivery is still leased until %v", d.LeasedUntil)
	}
	if cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10}); len(cs) != 0 {
		t.Errorf("a delivered delivery was claimed")
	}
	if st := stats(t, s); st.Pending != 0 || st.Dead != 0 {
		t.Errorf("Stats = %+v, want nothing pending or dead", st)
	}
}

func testRetry(t *testing.T, s crmhook.Store) {
	id := mustInsert(t, s, newEvent("affinity", "person.created", "sink-a"))
	c := claimOne(t, s, "sink-a")
	next := time.Now().Add(300 * time.Millisecond)
	if err := s.Retry(t.Context(), c, next, "sink answered 503"); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	d := delivery(t, s, id, "sink-a")
	if d.State != crmhook.StatePending || d.Attempts != 1 || d.LastError != "sink answered 503" {
		t.Errorf("retried delivery: %s, %d attempts, last error %q; want pending, 1, the error", d.State, d.Attempts, d.LastError)
	}
	if !near(d.NextAttemptAt, next) {
		t.Errorf("NextAttemptAt = %v, want %v", d.NextAttemptAt, next)
	}
	// Not before next. (Only a claim that ends before next proves a bug:
	// a slow machine may legitimately be past next already.)
	cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10})
	if len(cs) != 0 && time.Now().Before(next) {
		t.Fatal("a retried delivery was claimed before its next attempt")
	}
	if len(cs) == 0 {
		cs = pollClaim(t, s, crmhook.ClaimParams{Limit: 10})
	}
	if time.Now().Before(next) {
		t.Fatal("a retried delivery was claimed before its next attempt")
	}
	if len(cs) != 1 || cs[0].Delivery.Attempts != 1 || cs[0].Delivery.LastError != "sink answered 503" {
		t.Fatalf("claim after next = %+v, want the delivery with 1 attempt and its last error", cs)
	}
	if err := s.Kill(t.Context(), cs[0], "sink answered 410"); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	d = delivery(t, s, id, "sink-a")
	if d.State != crmhook.StateDead || d.Attempts != 2 || d.LastError != "sink answered 410" {
		t.Errorf("killed delivery: %s, %d attempts, last error %q; want dead, 2, the error", d.State, d.Attempts, d.LastError)
	}
}

func testKill(t *testing.T, s crmhook.Store) {
	id := mustInsert(t, s, newEvent("affinity", "person.created", "sink-a", "sink-b"))
	c := claimOne(t, s, "sink-a")
	if err := s.Kill(t.Context(), c, "sink answered 410"); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	d := delivery(t, s, id, "sink-a")
	if d.State != crmhook.StateDead || d.Attempts != 1 || d.LastError != "sink answered 410" {
		t.Errorf("killed delivery: %s, %d attempts, last error %q; want dead, 1, the error", d.State, d.Attempts, d.LastError)
	}
	if cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10, Sinks: []string{"sink-a"}}); len(cs) != 0 {
		t.Errorf("a dead delivery was claimed")
	}
	if st := stats(t, s); st.Dead != 1 || st.Pending != 1 {
		t.Errorf("Stats = %+v, want 1 dead, 1 pending", st)
	}
}

func testRelease(t *testing.T, s crmhook.Store) {
	id := mustInsert(t, s, newEvent("affinity", "person.created", "sink-a"))
	c := claimOne(t, s, "sink-a")
	if err := s.Release(t.Context(), c); err != nil {
		t.Fatalf("Release: %v", err)
	}
	again := claimOne(t, s, "sink-a") // claimable at once
	if again.Delivery.ID != c.Delivery.ID || again.Delivery.Attempts != 0 {
		t.Errorf("claim after Release = delivery %d with %d attempts, want %d with 0",
			again.Delivery.ID, again.Delivery.Attempts, c.Delivery.ID)
	}
	if err := s.Release(t.Context(), again); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if d := delivery(t, s, id, "sink-a"); d.State != crmhook.StatePending || d.Attempts != 0 {
		t.Errorf("released delivery: %s with %d attempts, want pending with 0", d.State, d.Attempts)
	}
}

func testReplay(t *testing.T, s crmhook.Store) {
	a := mustInsert(t, s, newEvent("affinity", "person.created", "sink-x", "sink-y"))
	b := mustInsert(t, s, newEvent("attio", "record.created", "sink-x"))
	c := mustInsert(t, s, newEvent("attio", "record.updated", "sink-z"))
	byKey := map[string]crmhook.Claim{}
	for _, cl := range mustClaim(t, s, crmhook.ClaimParams{Limit: 10}) {
		byKey[cl.Delivery.EventID+"/"+cl.Delivery.Sink] = cl
	}
	ctx := t.Context()
	if err := s.Complete(ctx, byKey[a+"/sink-x"]); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(ctx, byKey[a+"/sink-y"], "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(ctx, byKey[b+"/sink-x"], "gone"); err != nil {
		t.Fatal(err)
	}
	// c/sink-z stays pending (and leased).

	replay := func(f crmhook.DeliveryFilter, want int) {
		t.Helper()
		n, err := s.Replay(ctx, f)
		if err != nil {
			t.Fatalf("Replay(%+v): %v", f, err)
		}
		if n != want {
			t.Errorf("Replay(%+v) changed %d, want %d", f, n, want)
		}
	}
	replay(crmhook.DeliveryFilter{State: crmhook.StatePending}, 0)
	replay(crmhook.DeliveryFilter{State: crmhook.StateDead, Sink: "sink-y"}, 1)
	if d := delivery(t, s, a, "sink-y"); d.State != crmhook.StatePending || d.Attempts != 0 || d.NextAttemptAt.After(time.Now()) {
		t.Errorf("replayed delivery: %s, %d attempts, due %v; want pending, 0, due now", d.State, d.Attempts, d.NextAttemptAt)
	}
	if d := delivery(t, s, b, "sink-x"); d.State != crmhook.StateDead {
		t.Errorf("Replay by sink touched another sink's delivery: %s", d.State)
	}
	replay(crmhook.DeliveryFilter{EventID: b}, 1)
	replay(crmhook.DeliveryFilter{}, 1) // what is left: a/sink-x, delivered
	replay(crmhook.DeliveryFilter{}, 0)

	cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 10})
	got := map[string]int{}
	for _, cl := range cs {
		got[cl.Delivery.EventID+"/"+cl.Delivery.Sink] = cl.Delivery.Attempts
	}
	want := map[string]int{a + "/sink-x": 0, a + "/sink-y": 0, b + "/sink-x": 0}
	if len(got) != len(want) {
		t.Errorf("after replay Claim returned %v, want %v", got, want)
	}
	for k, v := range want {
		if n, ok := got[k]; !ok || n != v {
			t.Errorf("after replay Claim returned %v, want %v", got, want)
			break
		}
	}
	if d := delivery(t, s, c, "sink-z"); d.State != crmhook.StatePending || d.LeasedUntil.IsZero() {
		t.Errorf("Replay touched a leased pending delivery: %+v", d)
	}
}

func testRejections(t *testing.T, s crmhook.Store) {
	ctx := t.Context()
	base := time.Now().Add(-time.Hour)
	var ids []int64
	var events []crmhook.Event
	for i, src := range []string{"affinity", "attio", "affinity"} {
		ev := newEvent(src, "person.created").Event
		events = append(events, ev)
		id, err := s.Reject(ctx, crmhook.Rejection{
			Event:      ev,
			Reason:     fmt.Sprint("timestamp too old #", i),
			RejectedAt: base.Add(time.Duration(i) * time.Minute),
		})
		if err != nil {
			t.Fatalf("Reject: %v", err)
		}
		ids = append(ids, id)
	}
	if ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Fatalf("Reject returned ids %v, want distinct", ids)
	}

	list := func(f crmhook.RejectionFilter, want ...int64) []crmhook.Rejection {
		t.Helper()
		rs, err := s.ListRejections(ctx, f)
		if err != nil {
			t.Fatalf("ListRejections: %v", err)
		}
		var got []int64
		for _, r := range rs {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("ListRejections(%+v) = %v, want %v", f, got, want)
		}
		return rs
	}
	no, yes := false, true
	all := list(crmhook.RejectionFilter{}, ids[2], ids[1], ids[0])
	for i, r := range all {
		n := 2 - i
		checkEvent(t, r.Event, events[n])
		if r.Reason != fmt.Sprint("timestamp too old #", n) || !near(r.RejectedAt, base.Add(time.Duration(n)*time.Minute)) || !r.ReleasedAt.IsZero() {
			t.Errorf("rejection %d = reason %q, rejected %v, released %v", r.ID, r.Reason, r.RejectedAt, r.ReleasedAt)
		}
	}
	list(crmhook.RejectionFilter{Source: "affinity"}, ids[2], ids[0])
	list(crmhook.RejectionFilter{ID: ids[1]}, ids[1])
	list(crmhook.RejectionFilter{Limit: 1}, ids[2])
	list(crmhook.RejectionFilter{Since: base.Add(30 * time.Second)}, ids[2], ids[1])
	list(crmhook.RejectionFilter{Until: base.Add(90 * time.Second)}, ids[1], ids[0])
	list(crmhook.RejectionFilter{Released: &no}, ids[2], ids[1], ids[0])
	list(crmhook.RejectionFilter{Released: &yes})
	if st := stats(t, s); st.Rejections != 3 {
		t.Errorf("Stats.Rejections = %d, want 3", st.Rejections)
	}

	before := time.Now()
	res, err := s.ReleaseRejection(ctx, ids[0], []string{"sink-a", "sink-b"}, time.Now().Add(time.Hour))
	after := time.Now()
	if err != nil {
		t.Fatalf("ReleaseRejection: %v", err)
	}
	if res.Duplicate || res.EventID == "" {
		t.Fatalf("ReleaseRejection = %+v, want a stored event", res)
	}
	ev, ds := mustGet(t, s, res.EventID)
	if ev.Source != events[0].Source || ev.Type != events[0].Type || !bytes.Equal(ev.Payload, events[0].Payload) ||
		ev.DedupeKey != events[0].DedupeKey {
		t.Errorf("released event = %s %s %q, want the rejected one", ev.Source, ev.Type, ev.Payload)
	}
	if !between(ev.ReceivedAt, before, after) {
		t.Errorf("released event received at %v, want now (within [%v, %v])", ev.ReceivedAt, before, after)
	}
	if got := sinksOf(ds); !slices.Equal(got, []string{"sink-a", "sink-b"}) {
		t.Errorf("released event delivers to %v, want [sink-a sink-b]", got)
	}
	for _, d := range ds {
		if d.State != crmhook.StatePending {
			t.Errorf("released event's delivery is %s, want pending", d.State)
		}
	}
	released := list(crmhook.RejectionFilter{Released: &yes}, ids[0])
	if len(released) == 1 && !between(released[0].ReleasedAt, before, after) {
		t.Errorf("ReleasedAt = %v, want within [%v, %v]", released[0].ReleasedAt, before, after)
	}
	list(crmhook.RejectionFilter{Released: &no}, ids[2], ids[1])
	if st := stats(t, s); st.Rejections != 2 || st.Pending != 2 {
		t.Errorf("Stats = %+v, want 2 rejections, 2 pending", st)
	}

	if _, err := s.ReleaseRejection(ctx, ids[0], []string{"sink-a"}, time.Now().Add(time.Hour)); !errors.Is(err, crmhook.ErrAlreadyReleased) || errors.Is(err, crmhook.ErrUnavailable) {
		t.Errorf("releasing a rejection twice: %v, want crmhook.ErrAlreadyReleased (and not ErrUnavailable)", err)
	}
	evs, err := s.ListEvents(ctx, crmhook.EventFilter{})
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	if len(evs) != 1 {
		t.Errorf("after releasing twice the store has %d events, want 1", len(evs))
	}
	if st := stats(t, s); st.Pending != 2 {
		t.Errorf("after releasing twice Stats.Pending = %d, want 2", st.Pending)
	}
}

func testPruneEvents(t *testing.T, s crmhook.Store) {
	ctx := t.Context()
	done := mustInsert(t, s, newEvent("affinity", "person.created", "s1a", "s1b"))
	half := mustInsert(t, s, newEvent("affinity", "person.created", "s2a", "s2b"))
	dead := mustInsert(t, s, newEvent("affinity", "person.created", "s3"))
	bySink := map[string]crmhook.Claim{}
	for _, c := range mustClaim(t, s, crmhook.ClaimParams{Limit: 10}) {
		bySink[c.Delivery.Sink] = c
	}
	for _, sink := range []string{"s1a", "s1b", "s2a"} {
		if err := s.Complete(ctx, bySink[sink]); err != nil {
			t.Fatalf("Complete %s: %v", sink, err)
		}
	}
	if err := s.Kill(ctx, bySink["s3"], "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, bySink["s2b"]); err != nil {
		t.Fatal(err)
	}

	n, err := s.Prune(ctx, crmhook.PruneParams{DeliveredBefore: time.Now().Add(-time.Hour)})
	if err != nil || n != 0 {
		t.Fatalf("Prune before anything was delivered = %d, %v; want 0", n, err)
	}
	mustGet(t, s, done)

	n, err = s.Prune(ctx, crmhook.PruneParams{DeliveredBefore: time.Now().Add(time.Hour)})
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1 (the fully delivered event)", n, err)
	}
	if _, _, err := s.GetEvent(ctx, done); !errors.Is(err, crmhook.ErrNotFound) {
		t.Errorf("GetEvent of a pruned event: %v, want ErrNotFound", err)
	}
	if _, ds := mustGet(t, s, half); len(ds) != 2 {
		t.Errorf("an event with a pending delivery lost deliveries: %d left", len(ds))
	}
	if _, ds := mustGet(t, s, dead); len(ds) != 1 || ds[0].State != crmhook.StateDead {
		t.Errorf("an event with a dead delivery was pruned: %v", ds)
	}
	ds, err := s.ListDeliveries(ctx, crmhook.DeliveryFilter{EventID: done})
	if err != nil || len(ds) != 0 {
		t.Errorf("a pruned event's deliveries: %d, %v; want none", len(ds), err)
	}
	if st := stats(t, s); st.Pending != 1 || st.Dead != 1 {
		t.Errorf("Stats after Prune = %+v, want 1 pending, 1 dead", st)
	}
}

func testPruneDedupeKeys(t *testing.T, s crmhook.Store) {
	ctx := t.Context()
	now := time.Now()
	short := newEvent("affinity", "person.created")
	short.DedupeUntil = now.Add(time.Hour)
	long := newEvent("affinity", "person.created")
	long.DedupeUntil = now.Add(3 * time.Hour)
	mustInsert(t, s, short)
	mustInsert(t, s, long)

	if _, err := s.Prune(ctx, crmhook.PruneParams{Now: now.Add(2 * time.Hour)}); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	again := newEvent("affinity", "person.created")
	again.Event.DedupeKey = short.Event.DedupeKey
	mustInsert(t, s, again) // its key was pruned: insertable again
	still := newEvent("affinity", "person.created")
	still.Event.DedupeKey = long.Event.DedupeKey
	res, err := s.Insert(ctx, still)
	if err != nil || !res.Duplicate || res.EventID != long.Event.ID {
		t.Errorf("Insert of a key whose window is still open after Prune = %+v, %v; want a duplicate of %s", res, err, long.Event.ID)
	}
}

func testListEvents(t *testing.T, s crmhook.Store) {
	ctx := t.Context()
	base := time.Now().Add(-time.Hour)
	specs := []struct{ source, typ string }{
		{"src-a", "person.created"},
		{"src-a", "person.updated"},
		{"src-b", "person.created"},
		{"src-a", "organization.created"},
		{"src-b", "persona.created"}, // "person.*" must not match: the dot is literal
		{"src-a", "list_entry.created"},
	}
	ids := make([]string, len(specs))
	for i, sp := range specs {
		ne := newEvent(sp.source, sp.typ, "sink-a")
		ne.Event.ReceivedAt = base.Add(time.Duration(i) * time.Minute)
		ids[i] = mustInsert(t, s, ne)
	}
	check := func(f crmhook.EventFilter, want ...int) {
		t.Helper()
		evs, err := s.ListEvents(ctx, f)
		if err != nil {
			t.Fatalf("ListEvents(%+v): %v", f, err)
		}
		var wantIDs []string
		for _, i := range want {
			wantIDs = append(wantIDs, ids[i])
		}
		if got := eventIDs(evs); !slices.Equal(got, wantIDs) {
			t.Errorf("ListEvents(%+v) = %v, want events %v (%v)", f, got, want, wantIDs)
		}
	}
	check(crmhook.EventFilter{}, 5, 4, 3, 2, 1, 0)
	check(crmhook.EventFilter{Source: "src-a"}, 5, 3, 1, 0)
	check(crmhook.EventFilter{Type: "person.created"}, 2, 0)
	check(crmhook.EventFilter{Type: "person.*"}, 2, 1, 0)
	check(crmhook.EventFilter{Type: "*.created"}, 5, 4, 3, 2, 0)
	check(crmhook.EventFilter{Since: base.Add(30 * time.Second)}, 5, 4, 3, 2, 1)
	check(crmhook.EventFilter{Until: base.Add(150 * time.Second)}, 2, 1, 0)
	check(crmhook.EventFilter{Since: base.Add(90 * time.Second), Until: base.Add(270 * time.Second)}, 4, 3, 2)
	check(crmhook.EventFilter{Limit: 2}, 5, 4)
	check(crmhook.EventFilter{Source: "src-a", Type: "person.*", Since: base.Add(30 * time.Second)}, 1)
	check(crmhook.EventFilter{Source: "src-c"})

	// Without a Limit, a default of 100.
	var wg sync.WaitGroup
	for range 105 {
		ne := newEvent("bulk", "person.created")
		wg.Go(func() {
			if _, err := s.Insert(ctx, ne); err != nil {
				t.Errorf("Insert: %v", err)
			}
		})
	}
	wg.Wait()
	evs, err := s.ListEvents(ctx, crmhook.EventFilter{Source: "bulk"})
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	if len(evs) != 100 {
		t.Errorf("ListEvents without a Limit returned %d of 105, want the default 100", len(evs))
	}
}

func testListDeliveries(t *testing.T, s crmhook.Store) {
	ctx := t.Context()
	before := time.Now()
	a := mustInsert(t, s, newEvent("src-a", "person.created", "sink-x", "sink-y"))
	b := mustInsert(t, s, newEvent("src-b", "person.created", "sink-x"))
	after := time.Now()
	if err := s.Kill(ctx, claimOne(t, s, "sink-y"), "gone"); err != nil {
		t.Fatal(err)
	}
	check := func(f crmhook.DeliveryFilter, want ...string) {
		t.Helper()
		ds, err := s.ListDeliveries(ctx, f)
		if err != nil {
			t.Fatalf("ListDeliveries(%+v): %v", f, err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, d.EventID+"/"+d.Sink)
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("ListDeliveries(%+v) = %v, want %v", f, got, want)
		}
	}
	ax, ay, bx := a+"/sink-x", a+"/sink-y", b+"/sink-x"
	check(crmhook.DeliveryFilter{}, ax, ay, bx)
	check(crmhook.DeliveryFilter{Sink: "sink-x"}, ax, bx)
	check(crmhook.DeliveryFilter{EventID: a}, ax, ay)
	check(crmhook.DeliveryFilter{Source: "src-b"}, bx)
	check(crmhook.DeliveryFilter{State: crmhook.StateDead}, ay)
	check(crmhook.DeliveryFilter{State: crmhook.StatePending, Sink: "sink-x"}, ax, bx)
	check(crmhook.DeliveryFilter{State: crmhook.StateDelivered})
	check(crmhook.DeliveryFilter{Since: before.Add(-time.Second)}, ax, ay, bx)
	check(crmhook.DeliveryFilter{Since: after.Add(time.Minute)})
	check(crmhook.DeliveryFilter{Until: before.Add(-time.Minute)})
	ds, err := s.ListDeliveries(ctx, crmhook.DeliveryFilter{Limit: 2})
	if err != nil || len(ds) != 2 {
		t.Errorf("ListDeliveries with Limit 2 = %d, %v", len(ds), err)
	}
}

func testStats(t *testing.T, s crmhook.Store) {
	if st := stats(t, s); st != (crmhook.Stats{}) {
		t.Errorf("Stats of an empty store = %+v, want zero", st)
	}
	first := mustInsert(t, s, newEvent("affinity", "person.created", "sink-a"))
	mustInsert(t, s, newEvent("affinity", "person.created", "sink-a", "sink-b"))
	if err := s.Kill(t.Context(), claimOne(t, s, "sink-b"), "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reject(t.Context(), crmhook.Rejection{Event: newEvent("affinity", "person.created").Event, Reason: "too old"}); err != nil {
		t.Fatal(err)
	}
	st := stats(t, s)
	if st.Pending != 2 || st.Dead != 1 || st.Rejections != 1 {
		t.Errorf("Stats = %+v, want 2 pending, 1 dead, 1 rejection", st)
	}
	if oldest := delivery(t, s, first, "sink-a").CreatedAt; !near(st.OldestPending, oldest) {
		t.Errorf("OldestPending = %v, want the first delivery's CreatedAt %v", st.OldestPending, oldest)
	}
}

func testNotFound(t *testing.T, s crmhook.Store) {
	ctx := t.Context()
	if _, _, err := s.GetEvent(ctx, crmhook.NewEventID()); !errors.Is(err, crmhook.ErrNotFound) {
		t.Errorf("GetEvent of an unknown id: %v, want ErrNotFound", err)
	}
	if _, err := s.ReleaseRejection(ctx, 424242, []string{"sink-a"}, time.Now().Add(time.Hour)); !errors.Is(err, crmhook.ErrNotFound) {
		t.Errorf("ReleaseRejection of an unknown id: %v, want ErrNotFound", err)
	}
	ghost := crmhook.Claim{Delivery: crmhook.Delivery{ID: 987654321}, Lease: "no-such-lease"}
	for name, err := range map[string]error{
		"Complete": s.Complete(ctx, ghost),
		"Retry":    s.Retry(ctx, ghost, time.Now(), "x"),
		"Kill":     s.Kill(ctx, ghost, "x"),
		"Release":  s.Release(ctx, ghost),
	} {
		if !errors.Is(err, crmhook.ErrNotFound) {
			t.Errorf("%s of an unknown delivery: %v, want ErrNotFound", name, err)
		}
	}
}

func testPing(t *testing.T, s crmhook.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping of an open store: %v", err)
	}
}

func testClosed(t *testing.T, s crmhook.Store) {
	ctx := t.Context()
	id := mustInsert(t, s, newEvent("affinity", "person.created", "sink-a"))
	c := claimOne(t, s, "sink-a")
	rid, err := s.Reject(ctx, crmhook.Rejection{Event: newEvent("affinity", "person.created").Event, Reason: "too old"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := map[string]error{}
	_, calls["Insert"] = s.Insert(ctx, newEvent("affinity", "person.created", "sink-a"))
	_, calls["Reject"] = s.Reject(ctx, crmhook.Rejection{Event: newEvent("affinity", "person.created").Event})
	_, calls["ListRejections"] = s.ListRejections(ctx, crmhook.RejectionFilter{})
	_, calls["ReleaseRejection"] = s.ReleaseRejection(ctx, rid, []string{"sink-a"}, time.Now().Add(time.Hour))
	_, calls["Claim"] = s.Claim(ctx, crmhook.ClaimParams{Limit: 1, Lease: longLease})
	calls["Complete"] = s.Complete(ctx, c)
	calls["Retry"] = s.Retry(ctx, c, time.Now(), "x")
	calls["Kill"] = s.Kill(ctx, c, "x")
	calls["Release"] = s.Release(ctx, c)
	_, calls["Replay"] = s.Replay(ctx, crmhook.DeliveryFilter{})
	_, _, calls["GetEvent"] = s.GetEvent(ctx, id)
	_, calls["ListEvents"] = s.ListEvents(ctx, crmhook.EventFilter{})
	_, calls["ListDeliveries"] = s.ListDeliveries(ctx, crmhook.DeliveryFilter{})
	_, calls["Prune"] = s.Prune(ctx, crmhook.PruneParams{DeliveredBefore: time.Now(), Now: time.Now()})
	_, calls["Stats"] = s.Stats(ctx)
	calls["Ping"] = s.Ping(ctx)
	for name, err := range calls {
		if !errors.Is(err, crmhook.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
