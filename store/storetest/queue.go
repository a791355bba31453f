package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
)

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
