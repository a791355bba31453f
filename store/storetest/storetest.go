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
// A store that also implements crmhook.ControlStore (both of crmhook's
// do) passes the Control tests too, and one that implements console.Reader
// (both do) the Console tests; for any other they are skipped.
//
// The suite is split by area, one file each: insert.go, queue.go (claims
// and outcomes), reject.go, query.go (listings and stats), prune.go,
// errors.go (unknown ids, closed stores), control.go (ControlStore) and
// console.go (the admin console's filters and console.Reader).
//
// The suite knows nothing of any one store. Time is controlled through the
// times it passes in (DedupeUntil, Retry's next, PruneParams); where a store
// reads its own clock (due-ness, claim and named leases) it uses short
// leases and polls with a deadline, so the store's clock must be the real
// one.
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
//     path.Match does; events received at the same instant list by id,
//     greatest first, so that (ReceivedAt, ID) is a cursor;
//   - Replay never touches pending deliveries;
//   - ReleaseRejection keeps the event's payload and dedupe key, receives it
//     now, and fails the second time;
//   - Prune never removes an event with a pending or dead delivery;
//   - after Close every method returns an error wrapping ErrClosed;
//   - ControlStore: secrets are listed oldest first (by CreatedAt), gaps
//     newest first (by RecordedAt, default Limit 100), subscription states
//     in byte order of source and id; a zero CreatedAt, RecordedAt,
//     LastCheckedAt, StartedAt or UpdatedAt is the store's now; a rotation's
//     Data comes back byte for byte; a request the store refuses (a secret
//     without a source, a retiring one without RetireAt, a zero lease ttl…)
//     is an error that is neither ErrUnavailable nor quotes the secret.
package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
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
		{"ListEventsConsoleFilters", testListEventsConsoleFilters},
		{"DeliveryIDs", testDeliveryIDs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
	control := []struct {
		name string
		fn   func(t *testing.T, s controlStore)
	}{
		{"ControlSecrets", testControlSecrets},
		{"ControlSecretsRefused", testControlSecretsRefused},
		{"ControlRotations", testControlRotations},
		{"ControlSubscriptionStates", testControlSubscriptionStates},
		{"ControlGaps", testControlGaps},
		{"ControlLastEventAt", testControlLastEventAt},
		{"ControlLeaseRace", testControlLeaseRace},
		{"ControlLeaseExpires", testControlLeaseExpires},
		{"ControlLeaseRelease", testControlLeaseRelease},
	}
	for _, tc := range control {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			cs, ok := s.(controlStore)
			if !ok {
				t.Skipf("%T does not implement crmhook.ControlStore", s)
			}
			tc.fn(t, cs)
		})
	}
	consoleTests := []struct {
		name string
		fn   func(t *testing.T, s consoleStore)
	}{
		{"ConsoleEventPage", testConsoleEventPage},
		{"ConsoleDeadLetters", testConsoleDeadLetters},
		{"ConsoleQueues", testConsoleQueues},
		{"ConsoleActivity", testConsoleActivity},
	}
	for _, tc := range consoleTests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			cs, ok := s.(consoleStore)
			if !ok {
				t.Skipf("%T does not implement console.Reader", s)
			}
			tc.fn(t, cs)
		})
	}
}

// controlStore is a store that keeps the provider side's state too.
type controlStore interface {
	crmhook.Store
	crmhook.ControlStore
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
