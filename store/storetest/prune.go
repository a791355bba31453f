package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
)

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

// testPruneDedupeKeys: a key outlives its event when retention removes the
// event inside the key's window, and Prune forgets it once the window ended.
func testPruneDedupeKeys(t *testing.T, s crmhook.Store) {
	ctx := t.Context()
	start := time.Now()
	short := newEvent("affinity", "person.created")
	short.DedupeUntil = start.Add(300 * time.Millisecond)
	long := newEvent("affinity", "person.created")
	long.DedupeUntil = start.Add(3 * time.Hour)
	mustInsert(t, s, short)
	mustInsert(t, s, long)

	// Retention removes both events (no deliveries) while both windows are open.
	if n, err := s.Prune(ctx, crmhook.PruneParams{DeliveredBefore: start.Add(time.Minute), Now: time.Now()}); err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want the 2 events", n, err)
	}
	for _, ev := range []crmhook.NewEvent{short, long} {
		if _, _, err := s.GetEvent(ctx, ev.Event.ID); !errors.Is(err, crmhook.ErrNotFound) {
			t.Fatalf("GetEvent of a pruned event: %v, want ErrNotFound", err)
		}
	}
	still := newEvent("affinity", "person.created")
	still.Event.DedupeKey = long.Event.DedupeKey
	res, err := s.Insert(ctx, still)
	if err != nil || !res.Duplicate || res.EventID != long.Event.ID {
		t.Errorf("Insert of a key whose event was pruned inside its window = %+v, %v; want a duplicate of %s", res, err, long.Event.ID)
	}

	// Once the short window ended, its key is forgotten: insertable again.
	time.Sleep(time.Until(short.DedupeUntil) + 10*time.Millisecond)
	if _, err := s.Prune(ctx, crmhook.PruneParams{Now: time.Now()}); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	again := newEvent("affinity", "person.created")
	again.Event.DedupeKey = short.Event.DedupeKey
	mustInsert(t, s, again)
	res, err = s.Insert(ctx, still)
	if err != nil || !res.Duplicate || res.EventID != long.Event.ID {
		t.Errorf("Insert of a key whose window is still open after a second Prune = %+v, %v; want a duplicate of %s", res, err, long.Event.ID)
	}
}
