package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
)

// secretIDs returns the ids of secrets, in order.
func secretIDs(secs []crmhook.SourceSecret) []int64 {
	ids := make([]int64, len(secs))
	for i, sec := range secs {
		ids[i] = sec.ID
	}
	return ids
}

func listSecrets(t *testing.T, s controlStore, source string, want ...int64) []crmhook.SourceSecret {
	t.Helper()
	secs, err := s.ListSecrets(t.Context(), source)
	if err != nil {
		t.Fatalf("ListSecrets(%q): %v", source, err)
	}
	if got := secretIDs(secs); !slices.Equal(got, want) {
		t.Errorf("ListSecrets(%q) = %v, want %v", source, got, want)
	}
	return secs
}

// checkSecret compares what a store returned with what was put, without
// ever printing a secret's value.
func checkSecret(t *testing.T, got, want crmhook.SourceSecret) {
	t.Helper()
	if got.ID != want.ID || got.Source != want.Source || got.SubscriptionID != want.SubscriptionID || got.State != want.State {
		t.Errorf("secret = {%d %s %q %s}, want {%d %s %q %s}", got.ID, got.Source, got.SubscriptionID, got.State,
			want.ID, want.Source, want.SubscriptionID, want.State)
	}
	if got.Secret != want.Secret {
		t.Errorf("secret %d came back with another value (%d bytes, want %d)", got.ID, len(got.Secret), len(want.Secret))
	}
	if !near(got.CreatedAt, want.CreatedAt) || !near(got.RetireAt, want.RetireAt) {
		t.Errorf("secret %d created %v, retiring at %v; want %v, %v", got.ID, got.CreatedAt, got.RetireAt, want.CreatedAt, want.RetireAt)
	}
}

func testControlSecrets(t *testing.T, s controlStore) {
	ctx := t.Context()
	listSecrets(t, s, "")
	base := time.Now().Add(-time.Hour)
	put := func(sec crmhook.SourceSecret) crmhook.SourceSecret {
		t.Helper()
		id, err := s.PutSecret(ctx, sec)
		if err != nil {
			t.Fatalf("PutSecret: %v", err)
		}
		sec.ID = id
		return sec
	}
	a1 := put(crmhook.SourceSecret{Source: "attio", Secret: "whsec-a1", SubscriptionID: "wh-1",
		State: crmhook.SecretActive, CreatedAt: base.Add(time.Minute)})
	b1 := put(crmhook.SourceSecret{Source: "standard", Secret: "whsec_c2VjcmV0IGI=",
		State: crmhook.SecretActive, CreatedAt: base.Add(2 * time.Minute)})
	// Created before a1: oldest first goes by CreatedAt, not by id.
	a0 := put(crmhook.SourceSecret{Source: "attio", Secret: "whsec-a0 with spaces & ünïcode", SubscriptionID: "wh-0",
		State: crmhook.SecretRetiring, CreatedAt: base, RetireAt: base.Add(24 * time.Hour)})
	if a1.ID == b1.ID || b1.ID == a0.ID || a0.ID == a1.ID {
		t.Fatalf("PutSecret returned ids %d %d %d, want distinct", a1.ID, b1.ID, a0.ID)
	}

	all := listSecrets(t, s, "", a0.ID, a1.ID, b1.ID)
	if len(all) == 3 {
		checkSecret(t, all[0], a0)
		checkSecret(t, all[1], a1)
		checkSecret(t, all[2], b1)
	}
	listSecrets(t, s, "attio", a0.ID, a1.ID)
	listSecrets(t, s, "affinity")

	// What the store fills in: an active state and its own now.
	before := time.Now()
	id, err := s.PutSecret(ctx, crmhook.SourceSecret{Source: "standard", Secret: "whsec_ZmlsbGVk"})
	after := time.Now()
	if err != nil {
		t.Fatalf("PutSecret without State and CreatedAt: %v", err)
	}
	filled := listSecrets(t, s, "standard", b1.ID, id)
	if len(filled) == 2 {
		if f := filled[1]; f.State != crmhook.SecretActive || !between(f.CreatedAt, before, after) || !f.RetireAt.IsZero() {
			t.Errorf("secret put without State and CreatedAt: %s, created %v, retiring at %v; want active, created within [%v, %v], no RetireAt",
				f.State, f.CreatedAt, f.RetireAt, before, after)
		}
	}

	// State changes. RetireAt is kept for a retiring secret only.
	retireAt := time.Now().Add(48 * time.Hour)
	setState := func(target int64, state crmhook.SecretState, retireAt time.Time, wantRetireAt time.Time) {
		t.Helper()
		if err := s.SetSecretState(ctx, target, state, retireAt); err != nil {
			t.Fatalf("SetSecretState(%d, %s): %v", target, state, err)
		}
		for _, sec := range listSecrets(t, s, "", a0.ID, a1.ID, b1.ID, id) {
			if sec.ID == target && (sec.State != state || !near(sec.RetireAt, wantRetireAt)) {
				t.Errorf("after SetSecretState(%d, %s, %v): %s retiring at %v, want %s retiring at %v",
					target, state, retireAt, sec.State, sec.RetireAt, state, wantRetireAt)
			}
		}
	}
	setState(a1.ID, crmhook.SecretRetiring, retireAt, retireAt)
	setState(a1.ID, crmhook.SecretRetired, retireAt, time.Time{})
	setState(a0.ID, crmhook.SecretActive, retireAt, time.Time{})
	setState(b1.ID, crmhook.SecretRetired, time.Time{}, time.Time{})

	if err := s.SetSecretState(ctx, 987654321, crmhook.SecretRetired, time.Time{}); !errors.Is(err, crmhook.ErrNotFound) {
		t.Errorf("SetSecretState of an unknown id: %v, want ErrNotFound", err)
	}
}

func testControlSecretsRefused(t *testing.T, s controlStore) {
	ctx := t.Context()
	const value = "whsec-must-never-be-quoted"
	refuse := func(name string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: accepted", name)
			return
		}
		if errors.Is(err, crmhook.ErrUnavailable) || errors.Is(err, crmhook.ErrNotFound) {
			t.Errorf("%s: %v, want a request error (neither ErrUnavailable nor ErrNotFound)", name, err)
		}
		if strings.Contains(err.Error(), value) {
			t.Errorf("%s: the error quotes the secret", name)
		}
	}
	for name, sec := range map[string]crmhook.SourceSecret{
		"without a source":           {Secret: value},
		"without a secret":           {Source: "attio"},
		"in an unknown state":        {Source: "attio", Secret: value, State: "compromised"},
		"retiring without RetireAt":  {Source: "attio", Secret: value, State: crmhook.SecretRetiring},
		"in a state of another case": {Source: "attio", Secret: value, State: "Active"},
	} {
		_, err := s.PutSecret(ctx, sec)
		refuse("PutSecret "+name, err)
	}
	listSecrets(t, s, "")

	id, err := s.PutSecret(ctx, crmhook.SourceSecret{Source: "attio", Secret: value})
	if err != nil {
		t.Fatalf("PutSecret: %v", err)
	}
	refuse("SetSecretState to an unknown state", s.SetSecretState(ctx, id, "compromised", time.Time{}))
	refuse("SetSecretState to retiring without RetireAt", s.SetSecretState(ctx, id, crmhook.SecretRetiring, time.Time{}))
	if secs := listSecrets(t, s, "attio", id); len(secs) == 1 && secs[0].State != crmhook.SecretActive {
		t.Errorf("a refused SetSecretState changed the secret to %s", secs[0].State)
	}
}

func checkRotation(t *testing.T, got, want crmhook.Rotation) {
	t.Helper()
	if got.Source != want.Source || got.Phase != want.Phase || got.NewSecretID != want.NewSecretID || got.Grace != want.Grace {
		t.Errorf("rotation = {%s %s %d %v}, want {%s %s %d %v}", got.Source, got.Phase, got.NewSecretID, got.Grace,
			want.Source, want.Phase, want.NewSecretID, want.Grace)
	}
	if !near(got.StartedAt, want.StartedAt) || !near(got.UpdatedAt, want.UpdatedAt) {
		t.Errorf("rotation started %v, updated %v; want %v, %v", got.StartedAt, got.UpdatedAt, want.StartedAt, want.UpdatedAt)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("rotation data = %q, want exactly %q", got.Data, want.Data)
	}
}

func testControlRotations(t *testing.T, s controlStore) {
	ctx := t.Context()
	if _, err := s.GetRotation(ctx, "attio"); !errors.Is(err, crmhook.ErrNotFound) {
		t.Fatalf("GetRotation with none: %v, want ErrNotFound", err)
	}
	get := func(source string) crmhook.Rotation {
		t.Helper()
		r, err := s.GetRotation(ctx, source)
		if err != nil {
			t.Fatalf("GetRotation(%q): %v", source, err)
		}
		return r
	}
	started := time.Now().Add(-time.Hour)
	first := crmhook.Rotation{
		Source: "attio", Phase: "created", NewSecretID: 42, Grace: 36*time.Hour + 1,
		StartedAt: started, UpdatedAt: started.Add(time.Minute),
		Data: json.RawMessage(`{"old_webhook":"wh-1",  "new_webhook": "wh-2"}` + "\n"),
	}
	if err := s.PutRotation(ctx, first); err != nil {
		t.Fatalf("PutRotation: %v", err)
	}
	checkRotation(t, get("attio"), first)

	other := crmhook.Rotation{Source: "standard", Phase: "generated", StartedAt: started, UpdatedAt: started}
	if err := s.PutRotation(ctx, other); err != nil {
		t.Fatalf("PutRotation: %v", err)
	}
	checkRotation(t, get("standard"), other)

	// Put again: the rotation is replaced, whole.
	next := first
	next.Phase, next.NewSecretID, next.Grace = "old-disabled", 43, time.Hour
	next.UpdatedAt = started.Add(2 * time.Minute)
	next.Data = json.RawMessage(`{"old_webhook":"wh-1"}`)
	if err := s.PutRotation(ctx, next); err != nil {
		t.Fatalf("PutRotation (replace): %v", err)
	}
	checkRotation(t, get("attio"), next)
	checkRotation(t, get("standard"), other)

	if err := s.DeleteRotation(ctx, "attio"); err != nil {
		t.Fatalf("DeleteRotation: %v", err)
	}
	if _, err := s.GetRotation(ctx, "attio"); !errors.Is(err, crmhook.ErrNotFound) {
		t.Errorf("GetRotation after DeleteRotation: %v, want ErrNotFound", err)
	}
	checkRotation(t, get("standard"), other)
	if err := s.DeleteRotation(ctx, "attio"); err != nil {
		t.Errorf("DeleteRotation twice: %v, want nil", err)
	}
	if err := s.DeleteRotation(ctx, "never-rotated"); err != nil {
		t.Errorf("DeleteRotation of a source without one: %v, want nil", err)
	}

	// Zero times are the store's now.
	before := time.Now()
	if err := s.PutRotation(ctx, crmhook.Rotation{Source: "fresh", Phase: "start"}); err != nil {
		t.Fatalf("PutRotation without times: %v", err)
	}
	after := time.Now()
	if r := get("fresh"); !between(r.StartedAt, before, after) || !between(r.UpdatedAt, before, after) || len(r.Data) != 0 {
		t.Errorf("rotation put without times: started %v, updated %v, data %q; want both within [%v, %v], no data",
			r.StartedAt, r.UpdatedAt, r.Data, before, after)
	}

	if err := s.PutRotation(ctx, crmhook.Rotation{Phase: "created"}); err == nil || errors.Is(err, crmhook.ErrUnavailable) {
		t.Errorf("PutRotation without a source: %v, want a request error", err)
	}
}

func testControlSubscriptionStates(t *testing.T, s controlStore) {
	ctx := t.Context()
	list := func(want ...crmhook.SubscriptionState) {
		t.Helper()
		got, err := s.ListSubscriptionStates(ctx)
		if err != nil {
			t.Fatalf("ListSubscriptionStates: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("ListSubscriptionStates returned %d states, want %d: %+v", len(got), len(want), got)
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.Source != w.Source || g.SubscriptionID != w.SubscriptionID || g.Status != w.Status ||
				!near(g.LastCheckedAt, w.LastCheckedAt) || !near(g.LastHealthyAt, w.LastHealthyAt) {
				t.Errorf("state %d = %+v, want %+v", i, g, w)
			}
		}
	}
	list()
	now := time.Now()
	put := func(st crmhook.SubscriptionState) crmhook.SubscriptionState {
		t.Helper()
		if err := s.PutSubscriptionState(ctx, st); err != nil {
			t.Fatalf("PutSubscriptionState: %v", err)
		}
		return st
	}
	// Byte order: "Zeta" sorts before "alpha", whatever the database's collation.
	alphaB := put(crmhook.SubscriptionState{Source: "alpha", SubscriptionID: "wh-b", Status: "active",
		LastCheckedAt: now, LastHealthyAt: now})
	alphaA := put(crmhook.SubscriptionState{Source: "alpha", SubscriptionID: "wh-a", Status: "disabled",
		LastCheckedAt: now.Add(-time.Minute), LastHealthyAt: now.Add(-time.Hour)})
	zeta := put(crmhook.SubscriptionState{Source: "Zeta", SubscriptionID: "sub-9", Status: "missing",
		LastCheckedAt: now.Add(-2 * time.Minute)}) // never healthy
	list(zeta, alphaA, alphaB)

	// Put again: replaced, not added.
	alphaA.Status, alphaA.LastCheckedAt, alphaA.LastHealthyAt = "active", now.Add(time.Second), now.Add(time.Second)
	put(alphaA)
	list(zeta, alphaA, alphaB)

	// Delete one; deleting what is not there is no error.
	tmp := put(crmhook.SubscriptionState{Source: "alpha", SubscriptionID: "gone", Status: "missing", LastCheckedAt: now})
	list(zeta, tmp, alphaA, alphaB)
	for range 2 {
		if err := s.DeleteSubscriptionState(ctx, "alpha", "gone"); err != nil {
			t.Fatalf("DeleteSubscriptionState: %v", err)
		}
	}
	list(zeta, alphaA, alphaB)

	before := time.Now()
	if err := s.PutSubscriptionState(ctx, crmhook.SubscriptionState{Source: "alpha", SubscriptionID: "wh-c", Status: "degraded"}); err != nil {
		t.Fatalf("PutSubscriptionState without LastCheckedAt: %v", err)
	}
	after := time.Now()
	got, err := s.ListSubscriptionStates(ctx)
	if err != nil || len(got) != 4 {
		t.Fatalf("ListSubscriptionStates = %d states, %v; want 4", len(got), err)
	}
	if c := got[3]; c.SubscriptionID != "wh-c" || !between(c.LastCheckedAt, before, after) || !c.LastHealthyAt.IsZero() {
		t.Errorf("state put without LastCheckedAt = %+v, want wh-c checked within [%v, %v], never healthy", c, before, after)
	}
	if err := s.PutSubscriptionState(ctx, crmhook.SubscriptionState{SubscriptionID: "wh"}); err == nil || errors.Is(err, crmhook.ErrUnavailable) {
		t.Errorf("PutSubscriptionState without a source: %v, want a request error", err)
	}
}

func testControlGaps(t *testing.T, s controlStore) {
	ctx := t.Context()
	base := time.Now().Add(-time.Hour)
	record := func(g crmhook.Gap) crmhook.Gap {
		t.Helper()
		id, err := s.RecordGap(ctx, g)
		if err != nil {
			t.Fatalf("RecordGap: %v", err)
		}
		g.ID = id
		return g
	}
	list := func(source string, limit int, want ...crmhook.Gap) []crmhook.Gap {
		t.Helper()
		got, err := s.ListGaps(ctx, source, limit)
		if err != nil {
			t.Fatalf("ListGaps(%q, %d): %v", source, limit, err)
		}
		var gotIDs, wantIDs []int64
		for _, g := range got {
			gotIDs = append(gotIDs, g.ID)
		}
		for _, g := range want {
			wantIDs = append(wantIDs, g.ID)
		}
		if !slices.Equal(gotIDs, wantIDs) {
			t.Errorf("ListGaps(%q, %d) = %v, want %v", source, limit, gotIDs, wantIDs)
		}
		return got
	}
	list("", 0)
	g1 := record(crmhook.Gap{Source: "attio", SubscriptionID: "wh-1", From: base.Add(-3 * time.Hour), To: base.Add(-2 * time.Hour), RecordedAt: base})
	g2 := record(crmhook.Gap{Source: "affinity", SubscriptionID: "7", From: base.Add(-time.Hour), To: base, RecordedAt: base.Add(time.Minute)})
	g3 := record(crmhook.Gap{Source: "attio", SubscriptionID: "wh-2", From: base.Add(-30 * time.Minute), To: base.Add(time.Minute), RecordedAt: base.Add(2 * time.Minute)})
	if g1.ID == g2.ID || g2.ID == g3.ID || g1.ID == g3.ID {
		t.Fatalf("RecordGap returned ids %d %d %d, want distinct", g1.ID, g2.ID, g3.ID)
	}
	all := list("", 0, g3, g2, g1)
	for i, want := range []crmhook.Gap{g3, g2, g1} {
		if i >= len(all) {
			break
		}
		got := all[i]
		if got.Source != want.Source || got.SubscriptionID != want.SubscriptionID ||
			!near(got.From, want.From) || !near(got.To, want.To) || !near(got.RecordedAt, want.RecordedAt) {
			t.Errorf("gap %d = %+v, want %+v", got.ID, got, want)
		}
	}
	list("attio", 0, g3, g1)
	list("affinity", 0, g2)
	list("", 2, g3, g2)
	list("attio", 1, g3)
	list("nobody", 0)

	// A zero RecordedAt is the store's now; a zero To stays zero.
	before := time.Now()
	id, err := s.RecordGap(ctx, crmhook.Gap{Source: "attio", SubscriptionID: "wh-3", From: base})
	after := time.Now()
	if err != nil {
		t.Fatalf("RecordGap without To and RecordedAt: %v", err)
	}
	if got := list("attio", 1, crmhook.Gap{ID: id}); len(got) == 1 && (!between(got[0].RecordedAt, before, after) || !got[0].To.IsZero()) {
		t.Errorf("gap recorded without times: recorded %v, to %v; want within [%v, %v], zero", got[0].RecordedAt, got[0].To, before, after)
	}

	for name, g := range map[string]crmhook.Gap{
		"without a source":   {From: base, To: base.Add(time.Minute)},
		"without a From":     {Source: "attio", To: base},
		"ending before From": {Source: "attio", From: base, To: base.Add(-time.Minute)},
	} {
		if _, err := s.RecordGap(ctx, g); err == nil || errors.Is(err, crmhook.ErrUnavailable) {
			t.Errorf("RecordGap %s: %v, want a request error", name, err)
		}
	}

	// Without a limit, a default of 100.
	var wg sync.WaitGroup
	for i := range 105 {
		wg.Go(func() {
			if _, err := s.RecordGap(ctx, crmhook.Gap{Source: "bulk", SubscriptionID: fmt.Sprint(i), From: base}); err != nil {
				t.Errorf("RecordGap: %v", err)
			}
		})
	}
	wg.Wait()
	if got, err := s.ListGaps(ctx, "bulk", 0); err != nil || len(got) != 100 {
		t.Errorf("ListGaps without a limit = %d gaps of 105, %v; want the default 100", len(got), err)
	}
}

func testControlLastEventAt(t *testing.T, s controlStore) {
	ctx := t.Context()
	last := func(source string) time.Time {
		t.Helper()
		at, err := s.LastEventAt(ctx, source)
		if err != nil {
			t.Fatalf("LastEventAt(%q): %v", source, err)
		}
		return at
	}
	if at := last("src-a"); !at.IsZero() {
		t.Errorf("LastEventAt of a store without events = %v, want zero", at)
	}
	base := time.Now().Add(-time.Hour)
	for _, ev := range []struct {
		source string
		at     time.Duration
	}{{"src-a", 0}, {"src-a", 2 * time.Minute}, {"src-a", time.Minute}, {"src-b", 5 * time.Minute}, {"src-ab", 9 * time.Minute}} {
		ne := newEvent(ev.source, "person.created", "sink-a")
		ne.Event.ReceivedAt = base.Add(ev.at)
		mustInsert(t, s, ne)
	}
	if at := last("src-a"); !near(at, base.Add(2*time.Minute)) {
		t.Errorf("LastEventAt(src-a) = %v, want its newest event's %v", at, base.Add(2*time.Minute))
	}
	if at := last("src-b"); !near(at, base.Add(5*time.Minute)) {
		t.Errorf("LastEventAt(src-b) = %v, want %v", at, base.Add(5*time.Minute))
	}
	if at := last("src"); !at.IsZero() {
		t.Errorf("LastEventAt of a source without events = %v, want zero", at)
	}
}

// acquire calls AcquireLease and fails the test on an error.
func acquire(t *testing.T, s controlStore, name, owner string, ttl time.Duration) bool {
	t.Helper()
	held, err := s.AcquireLease(t.Context(), name, owner, ttl)
	if err != nil {
		t.Fatalf("AcquireLease(%q, %q): %v", name, owner, err)
	}
	return held
}

func testControlLeaseRace(t *testing.T, s controlStore) {
	const perOwner = 16
	owners := []string{"replica-a", "replica-b"}
	var (
		mu   sync.Mutex
		held = map[string]int{}
		wg   sync.WaitGroup
	)
	for i := range perOwner * len(owners) {
		owner := owners[i%len(owners)]
		wg.Go(func() {
			ok, err := s.AcquireLease(t.Context(), "watchdog", owner, longLease)
			if err != nil {
				t.Errorf("AcquireLease: %v", err)
				return
			}
			if ok {
				mu.Lock()
				held[owner]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(held) != 1 {
		t.Fatalf("owners holding the lease after the race: %v, want exactly one", held)
	}
	var winner, loser string
	for owner, n := range held {
		winner = owner
		// Once it held the lease, each of its calls renewed it.
		if n != perOwner {
			t.Errorf("%s held the lease in %d of its %d calls, want all (renewals)", owner, n, perOwner)
		}
	}
	loser = owners[0]
	if winner == loser {
		loser = owners[1]
	}
	if !acquire(t, s, "watchdog", winner, longLease) {
		t.Errorf("the holder could not renew its lease")
	}
	if acquire(t, s, "watchdog", loser, longLease) {
		t.Errorf("%s took a live lease of %s", loser, winner)
	}
	// Leases are independent by name.
	if !acquire(t, s, "pruner", loser, longLease) {
		t.Errorf("%s could not take a free lease of another name", loser)
	}
	if acquire(t, s, "pruner", winner, longLease) {
		t.Errorf("%s took the other lease, held by %s", winner, loser)
	}
}

func testControlLeaseExpires(t *testing.T, s controlStore) {
	if !acquire(t, s, "watchdog", "replica-a", longLease) {
		t.Fatal("AcquireLease of a free lease = false")
	}
	// A renewal sets the expiry anew, shorter here: the lease runs out soon.
	if !acquire(t, s, "watchdog", "replica-a", 200*time.Millisecond) {
		t.Fatal("the holder could not renew its lease")
	}
	if acquire(t, s, "watchdog", "replica-b", longLease) {
		t.Fatal("replica-b took the lease before it ran out")
	}
	deadline := time.Now().Add(pollDeadline)
	for !acquire(t, s, "watchdog", "replica-b", longLease) {
		if time.Now().After(deadline) {
			t.Fatalf("replica-b could not take the lease within %v of its expiry", pollDeadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if acquire(t, s, "watchdog", "replica-a", longLease) {
		t.Error("the former holder took the lease back from its new holder")
	}
}

func testControlLeaseRelease(t *testing.T, s controlStore) {
	ctx := t.Context()
	if !acquire(t, s, "watchdog", "replica-a", longLease) {
		t.Fatal("AcquireLease of a free lease = false")
	}
	// Releasing a lease one does not hold does nothing.
	if err := s.ReleaseLease(ctx, "watchdog", "replica-b"); err != nil {
		t.Fatalf("ReleaseLease by a non-holder: %v", err)
	}
	if acquire(t, s, "watchdog", "replica-b", longLease) {
		t.Fatal("ReleaseLease by a non-holder freed the lease")
	}
	if !acquire(t, s, "watchdog", "replica-a", longLease) {
		t.Fatal("ReleaseLease by a non-holder took the lease from its holder")
	}
	if err := s.ReleaseLease(ctx, "watchdog", "replica-a"); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	if !acquire(t, s, "watchdog", "replica-b", longLease) {
		t.Fatal("a released lease could not be taken at once")
	}
	if err := s.ReleaseLease(ctx, "watchdog", "replica-a"); err != nil {
		t.Errorf("ReleaseLease by the former holder: %v", err)
	}
	if acquire(t, s, "watchdog", "replica-a", longLease) {
		t.Error("a second ReleaseLease by the former holder freed the new holder's lease")
	}
	if err := s.ReleaseLease(ctx, "never-taken", "replica-a"); err != nil {
		t.Errorf("ReleaseLease of a lease nobody took: %v", err)
	}

	for name, call := range map[string]func() error{
		"AcquireLease with a zero ttl": func() error { _, err := s.AcquireLease(ctx, "x", "me", 0); return err },
		"AcquireLease without a name":  func() error { _, err := s.AcquireLease(ctx, "", "me", time.Minute); return err },
		"AcquireLease without owner":   func() error { _, err := s.AcquireLease(ctx, "x", "", time.Minute); return err },
		"ReleaseLease without owner":   func() error { return s.ReleaseLease(ctx, "x", "") },
	} {
		if err := call(); err == nil || errors.Is(err, crmhook.ErrUnavailable) {
			t.Errorf("%s: %v, want a request error", name, err)
		}
	}
}
