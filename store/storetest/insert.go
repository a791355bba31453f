package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
)

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
