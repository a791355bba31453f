package storetest

import (
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
)

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
