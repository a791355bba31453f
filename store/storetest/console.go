package storetest

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/console"
)

// The admin console's reads: the filters it added to ListEvents and
// ListDeliveries (every store), and console.Reader (the stores that
// implement it), held to a reference model of the same events.

// consoleStore is a store with the console's reads.
type consoleStore interface {
	crmhook.Store
	console.Reader
}

// outcome is what becomes of one delivery of the fixture.
type outcome int

const (
	pending   outcome = iota // left pending, never attempted
	retrying                 // one failed attempt, pending again
	delivered                // delivered
	dead                     // dead letter
)

func (o outcome) state() crmhook.DeliveryState {
	switch o {
	case delivered:
		return crmhook.StateDelivered
	case dead:
		return crmhook.StateDead
	}
	return crmhook.StatePending
}

// fixtureEvent is one event of the fixture and its deliveries' outcomes.
type fixtureEvent struct {
	ev    crmhook.Event
	sinks map[string]outcome
}

// consoleFixture is a store filled with events of two sources, several
// types, a shared dedupe key, two events received at the same instant, and
// deliveries in every state, with the model to check listings against.
type consoleFixture struct {
	events []fixtureEvent
	base   time.Time
	key    string // the dedupe key two events share
}

func newConsoleFixture(t *testing.T, s crmhook.Store) *consoleFixture {
	t.Helper()
	ctx := t.Context()
	// Whole seconds: stores keep microseconds, and the model compares times.
	fx := &consoleFixture{base: time.Now().Truncate(time.Second).Add(-40 * time.Minute)}
	type spec struct {
		source, typ string
		minute      int
		sinks       map[string]outcome
		shareKey    bool
	}
	specs := []spec{
		{"src-a", "person.created", 0, map[string]outcome{"sink-x": delivered}, false},
		{"src-a", "person.updated", 1, map[string]outcome{"sink-x": dead, "sink-y": pending}, false},
		{"src-b", "person.created", 2, map[string]outcome{"sink-x": dead}, false},
		{"src-a", "organization.created", 3, map[string]outcome{"sink-x": retrying}, false},
		{"src-b", "persona.created", 4, map[string]outcome{"sink-x": delivered, "sink-y": dead}, false},
		{"src-a", "list_entry.created", 5, nil, false},
		{"src-b", "person.created", 6, map[string]outcome{"sink-x": pending}, true},
		{"src-a", "person.deleted", 7, map[string]outcome{"sink-x": dead, "sink-y": dead}, true},
		{"src-b", "person.created", 8, map[string]outcome{"sink-y": delivered}, false},
		{"src-a", "person.created", 8, map[string]outcome{"sink-x": pending}, false}, // the same instant
		{"src-b", "organization.created", 9, map[string]outcome{"sink-x": dead}, false},
	}
	fx.key = fmt.Sprintf("shared-%d", time.Now().UnixNano())
	for _, sp := range specs {
		var sinks []string
		for sink := range sp.sinks {
			sinks = append(sinks, sink)
		}
		sort.Strings(sinks)
		ne := newEvent(sp.source, sp.typ, sinks...)
		ne.Event.ReceivedAt = fx.base.Add(time.Duration(sp.minute) * time.Minute)
		if sp.shareKey {
			// The first owner's window is over: the second takes the key over.
			ne.Event.DedupeKey = fx.key
			ne.DedupeUntil = time.Now().Add(-time.Hour)
		}
		mustInsert(t, s, ne)
		fx.events = append(fx.events, fixtureEvent{ev: ne.Event, sinks: sp.sinks})
	}
	want := map[string]outcome{}
	for _, fe := range fx.events {
		for sink, o := range fe.sinks {
			want[fe.ev.ID+"/"+sink] = o
		}
	}
	cs := mustClaim(t, s, crmhook.ClaimParams{Limit: 100})
	if len(cs) != len(want) {
		t.Fatalf("Claim returned %d claims, want every one of the %d deliveries", len(cs), len(want))
	}
	for _, c := range cs {
		var err error
		switch want[c.Delivery.EventID+"/"+c.Delivery.Sink] {
		case pending:
			err = s.Release(ctx, c)
		case retrying:
			err = s.Retry(ctx, c, time.Now().Add(time.Hour), "HTTP 503")
		case delivered:
			err = s.Complete(ctx, c)
		case dead:
			err = s.Kill(ctx, c, "HTTP 410")
		}
		if err != nil {
			t.Fatalf("finishing %s/%s: %v", c.Delivery.EventID, c.Delivery.Sink, err)
		}
	}
	return fx
}

// expect lists the ids of the fixture's events f selects, newest first, as
// the model says.
func (fx *consoleFixture) expect(f crmhook.EventFilter) []string {
	var evs []crmhook.Event
	for _, fe := range fx.events {
		ev := fe.ev
		if f.Source != "" && ev.Source != f.Source || f.DedupeKey != "" && ev.DedupeKey != f.DedupeKey {
			continue
		}
		if ok, _ := path.Match(f.Type, ev.Type); f.Type != "" && !ok {
			continue
		}
		if !f.Since.IsZero() && ev.ReceivedAt.Before(f.Since) || !f.Until.IsZero() && !ev.ReceivedAt.Before(f.Until) {
			continue
		}
		if f.State != "" {
			in := false
			for _, o := range fe.sinks {
				in = in || o.state() == f.State
			}
			if !in {
				continue
			}
		}
		evs = append(evs, ev)
	}
	sortNewestFirst(evs)
	return eventIDs(evs)
}

func sortNewestFirst(evs []crmhook.Event) {
	sort.Slice(evs, func(i, j int) bool {
		if !evs[i].ReceivedAt.Equal(evs[j].ReceivedAt) {
			return evs[i].ReceivedAt.After(evs[j].ReceivedAt)
		}
		return evs[i].ID > evs[j].ID
	})
}

func (fx *consoleFixture) filters() []crmhook.EventFilter {
	m := func(n int) time.Time { return fx.base.Add(time.Duration(n) * time.Minute) }
	return []crmhook.EventFilter{
		{},
		{Source: "src-a"},
		{Source: "src-b"},
		{Source: "src-c"},
		{Type: "person.created"},
		{Type: "person.*"},
		{Type: "*.created"},
		{State: crmhook.StateDead},
		{State: crmhook.StatePending},
		{State: crmhook.StateDelivered},
		{State: crmhook.StateDead, Source: "src-b"},
		{State: crmhook.StatePending, Type: "person.*"},
		{State: crmhook.StateDelivered, Source: "src-b"},
		{DedupeKey: fx.key},
		{DedupeKey: fx.key, State: crmhook.StatePending},
		{DedupeKey: "no-such-key"},
		{Since: m(2), Until: m(8)},
		{Since: m(2), Until: m(9), State: crmhook.StateDead},
		{Since: m(8)},
		{Source: "src-a", Type: "person.*", State: crmhook.StatePending},
	}
}

// testListEventsConsoleFilters: ListEvents' State, DedupeKey and cursor,
// against the model; pages of two, followed by their cursors, list every
// event once, in order.
func testListEventsConsoleFilters(t *testing.T, s crmhook.Store) {
	fx := newConsoleFixture(t, s)
	for _, f := range fx.filters() {
		want := fx.expect(f)
		all := f
		all.Limit = 1000
		evs, err := s.ListEvents(t.Context(), all)
		if err != nil {
			t.Fatalf("ListEvents(%s): %v", describe(f), err)
		}
		if got := eventIDs(evs); !slices.Equal(got, want) {
			t.Errorf("ListEvents(%s) = %v, want %v", describe(f), fx.names(got), fx.names(want))
		}
		var paged []string
		page := f
		page.Limit = 2
		for range 20 {
			evs, err := s.ListEvents(t.Context(), page)
			if err != nil {
				t.Fatalf("ListEvents(%s): %v", describe(page), err)
			}
			paged = append(paged, eventIDs(evs)...)
			if len(evs) < 2 {
				break
			}
			last := evs[len(evs)-1]
			page.BeforeReceivedAt, page.BeforeID = last.ReceivedAt, last.ID
		}
		if !slices.Equal(paged, want) {
			t.Errorf("ListEvents(%s) by pages of 2 = %v, want %v", describe(f), fx.names(paged), fx.names(want))
		}
	}
}

// testDeliveryIDs: ListDeliveries and Replay by delivery ids.
func testDeliveryIDs(t *testing.T, s crmhook.Store) {
	ctx := t.Context()
	newConsoleFixture(t, s)
	dead, err := s.ListDeliveries(ctx, crmhook.DeliveryFilter{State: crmhook.StateDead})
	if err != nil {
		t.Fatal(err)
	}
	pendingDs, err := s.ListDeliveries(ctx, crmhook.DeliveryFilter{State: crmhook.StatePending, Limit: 1})
	if err != nil || len(dead) < 3 || len(pendingDs) != 1 {
		t.Fatalf("fixture: %d dead, %d pending, %v", len(dead), len(pendingDs), err)
	}
	ids := []int64{dead[0].ID, dead[2].ID, pendingDs[0].ID, 1 << 40}
	got, err := s.ListDeliveries(ctx, crmhook.DeliveryFilter{IDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []int64
	for _, d := range got {
		gotIDs = append(gotIDs, d.ID)
	}
	slices.Sort(gotIDs)
	wantIDs := slices.Sorted(slices.Values(ids[:3]))
	if !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("ListDeliveries(IDs %v) = %v, want %v", ids, gotIDs, wantIDs)
	}
	if ds, err := s.ListDeliveries(ctx, crmhook.DeliveryFilter{IDs: ids, State: crmhook.StateDead}); err != nil || len(ds) != 2 {
		t.Errorf("ListDeliveries(IDs, dead) = %d deliveries, %v; want 2", len(ds), err)
	}
	// Replay takes the dead ones of the selection and never the pending one.
	n, err := s.Replay(ctx, crmhook.DeliveryFilter{IDs: ids, State: crmhook.StateDead})
	if err != nil || n != 2 {
		t.Fatalf("Replay(IDs, dead) = %d, %v; want 2", n, err)
	}
	for _, d := range []crmhook.Delivery{dead[0], dead[2]} {
		if got := delivery(t, s, d.EventID, d.Sink); got.State != crmhook.StatePending || got.Attempts != 0 {
			t.Errorf("replayed delivery %d: %s with %d attempts, want pending with 0", d.ID, got.State, got.Attempts)
		}
	}
	if got := delivery(t, s, dead[1].EventID, dead[1].Sink); got.State != crmhook.StateDead {
		t.Errorf("delivery %d, not selected, is %s: want still dead", dead[1].ID, got.State)
	}
	if n, err := s.Replay(ctx, crmhook.DeliveryFilter{IDs: []int64{pendingDs[0].ID}}); err != nil || n != 0 {
		t.Errorf("Replay of a pending delivery by id = %d, %v; want 0", n, err)
	}
}

// testConsoleEventPage: EventPage agrees with the model for every filter,
// whole and by pages, with and without a scan bound; it leaves payloads out
// and brings each event's deliveries.
func testConsoleEventPage(t *testing.T, s consoleStore) {
	fx := newConsoleFixture(t, s)
	byID := map[string]fixtureEvent{}
	for _, fe := range fx.events {
		byID[fe.ev.ID] = fe
	}
	for _, f := range fx.filters() {
		want := fx.expect(f)
		whole, err := s.EventPage(t.Context(), f, 0)
		if err != nil {
			t.Fatalf("EventPage(%s): %v", describe(f), err)
		}
		if whole.More || whole.Bounded {
			t.Errorf("EventPage(%s) of the whole fixture: More %v, Bounded %v; want neither", describe(f), whole.More, whole.Bounded)
		}
		var got []string
		for _, r := range whole.Rows {
			got = append(got, r.Event.ID)
			fe := byID[r.Event.ID]
			if r.Event.Payload != nil {
				t.Errorf("EventPage row %s has a payload: want none", r.Event.ID)
			}
			if r.Event.Source != fe.ev.Source || r.Event.Type != fe.ev.Type || r.Event.DedupeKey != fe.ev.DedupeKey ||
				r.Event.Provider != fe.ev.Provider || !near(r.Event.ReceivedAt, fe.ev.ReceivedAt) || !near(r.Event.OccurredAt, fe.ev.OccurredAt) {
				t.Errorf("EventPage row = %+v, want the metadata of %+v", r.Event, fe.ev)
			}
			var sinks []string
			for _, d := range r.Deliveries {
				sinks = append(sinks, d.Sink)
				if d.EventID != r.Event.ID || d.State != fe.sinks[d.Sink].state() {
					t.Errorf("EventPage row %s: delivery %+v, want %s", r.Event.ID, d, fe.sinks[d.Sink].state())
				}
			}
			sort.Strings(sinks)
			var wantSinks []string
			for sink := range fe.sinks {
				wantSinks = append(wantSinks, sink)
			}
			sort.Strings(wantSinks)
			if !slices.Equal(sinks, wantSinks) {
				t.Errorf("EventPage row %s has deliveries to %v, want %v", r.Event.ID, sinks, wantSinks)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("EventPage(%s) = %v, want %v", describe(f), fx.names(got), fx.names(want))
		}
		for _, scan := range []int{0, 1, 3} {
			page := f
			page.Limit = 2
			var paged []string
			for i := 0; ; i++ {
				if i == 40 {
					t.Fatalf("EventPage(%s, scan %d) still had pages after 40", describe(f), scan)
				}
				p, err := s.EventPage(t.Context(), page, scan)
				if err != nil {
					t.Fatalf("EventPage(%s, scan %d): %v", describe(page), scan, err)
				}
				if len(p.Rows) > 2 {
					t.Fatalf("EventPage with Limit 2 returned %d rows", len(p.Rows))
				}
				if scan == 0 && p.Bounded {
					t.Errorf("EventPage without a bound says Bounded")
				}
				if p.Bounded && !p.More {
					t.Errorf("EventPage Bounded without More")
				}
				for _, r := range p.Rows {
					paged = append(paged, r.Event.ID)
				}
				if !p.More {
					break
				}
				if p.Next.IsZero() {
					t.Fatalf("EventPage(%s, scan %d): More without a cursor", describe(page), scan)
				}
				page.BeforeReceivedAt, page.BeforeID = p.Next.ReceivedAt, p.Next.ID
			}
			if !slices.Equal(paged, want) {
				t.Errorf("EventPage(%s) by pages of 2 with scan %d = %v, want %v", describe(f), scan, fx.names(paged), fx.names(want))
			}
		}
	}

	// A bound smaller than the events to skip ends the page early: Bounded,
	// with the cursor at the last event examined.
	f := crmhook.EventFilter{Type: "organization.created", Limit: 5}
	p, err := s.EventPage(t.Context(), f, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Newest first: organization.created (minute 9), then the two of minute 8.
	if len(p.Rows) != 1 || !p.Bounded || !p.More || !near(p.Next.ReceivedAt, fx.base.Add(8*time.Minute)) {
		t.Errorf("EventPage(type organization.created, scan 2) = %d rows, Bounded %v, More %v, next %v; want 1 row, bounded at minute 8",
			len(p.Rows), p.Bounded, p.More, p.Next.ReceivedAt)
	}
}

// testConsoleDeadLetters: a sink's dead letters, newest event first, with
// their events, page by page; a released rejection's delivery lists by the
// time it was released (received).
func testConsoleDeadLetters(t *testing.T, s consoleStore) {
	ctx := t.Context()
	fx := newConsoleFixture(t, s)
	for _, sink := range []string{"sink-x", "sink-y"} {
		var evs []crmhook.Event
		for _, fe := range fx.events {
			if o, ok := fe.sinks[sink]; ok && o == dead {
				evs = append(evs, fe.ev)
			}
		}
		sortNewestFirst(evs)
		want := eventIDs(evs)
		dls, err := s.DeadLetters(ctx, sink, console.Cursor{}, 0)
		if err != nil {
			t.Fatalf("DeadLetters(%s): %v", sink, err)
		}
		var got []string
		for _, dl := range dls {
			got = append(got, dl.Event.ID)
			if dl.Delivery.Sink != sink || dl.Delivery.State != crmhook.StateDead || dl.Delivery.EventID != dl.Event.ID ||
				dl.Delivery.LastError != "HTTP 410" || dl.Delivery.Attempts != 1 || dl.Event.Type == "" || dl.Event.Payload != nil {
				t.Errorf("DeadLetters(%s): %+v", sink, dl)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("DeadLetters(%s) = %v, want %v", sink, fx.names(got), fx.names(want))
		}
		var paged []string
		var after console.Cursor
		for range 20 {
			dls, err := s.DeadLetters(ctx, sink, after, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(dls) == 0 {
				break
			}
			paged = append(paged, dls[0].Event.ID)
			after = console.CursorOf(dls[0].Event)
		}
		if !slices.Equal(paged, want) {
			t.Errorf("DeadLetters(%s) one by one = %v, want %v", sink, fx.names(paged), fx.names(want))
		}
	}
	if dls, err := s.DeadLetters(ctx, "sink-z", console.Cursor{}, 0); err != nil || len(dls) != 0 {
		t.Errorf("DeadLetters of a sink without any = %v, %v", dls, err)
	}
	if _, err := s.DeadLetters(ctx, "", console.Cursor{}, 0); err == nil {
		t.Errorf("DeadLetters without a sink: no error")
	}

	// A released event is received when it is released, and its dead
	// letter lists by that time, not the rejected delivery's.
	ev := newEvent("src-a", "person.created").Event
	ev.ReceivedAt = time.Now().Add(-48 * time.Hour)
	rid, err := s.Reject(ctx, crmhook.Rejection{Event: ev, Reason: "too old"})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if _, err := s.ReleaseRejection(ctx, rid, []string{"sink-r"}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(ctx, claimOne(t, s, "sink-r"), "HTTP 410"); err != nil {
		t.Fatal(err)
	}
	dls, err := s.DeadLetters(ctx, "sink-r", console.Cursor{}, 0)
	if err != nil || len(dls) != 1 || dls[0].Event.ID != ev.ID || !between(dls[0].Event.ReceivedAt, before, time.Now()) {
		t.Errorf("DeadLetters after a release = %+v, %v; want the released event, received at its release", dls, err)
	}
	if dls, err := s.DeadLetters(ctx, "sink-r", console.Cursor{ReceivedAt: before.Add(-time.Millisecond)}, 0); err != nil || len(dls) != 0 {
		t.Errorf("DeadLetters after a cursor older than the release = %d, %v; want none", len(dls), err)
	}
}

// testConsoleQueues: each sink's pending and dead counts and its oldest
// pending event.
func testConsoleQueues(t *testing.T, s consoleStore) {
	if qs, err := s.Queues(t.Context()); err != nil || len(qs) != 0 {
		t.Errorf("Queues of an empty store = %+v, %v; want none", qs, err)
	}
	fx := newConsoleFixture(t, s)
	want := map[string]*console.Queue{}
	for _, fe := range fx.events {
		for sink, o := range fe.sinks {
			q := want[sink]
			if q == nil {
				q = &console.Queue{Sink: sink}
				want[sink] = q
			}
			switch o.state() {
			case crmhook.StatePending:
				q.Pending++
				if q.OldestPending.IsZero() || fe.ev.ReceivedAt.Before(q.OldestPending) {
					q.OldestPending = fe.ev.ReceivedAt
				}
			case crmhook.StateDead:
				q.Dead++
			}
		}
	}
	qs, err := s.Queues(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || qs[0].Sink != "sink-x" || qs[1].Sink != "sink-y" {
		t.Fatalf("Queues = %+v, want sink-x and sink-y in that order", qs)
	}
	for _, q := range qs {
		w := want[q.Sink]
		if q.Pending != w.Pending || q.Dead != w.Dead || !near(q.OldestPending, w.OldestPending) {
			t.Errorf("Queues: %+v, want %+v", q, *w)
		}
	}
}

// testConsoleActivity: events by the minute they were received; deliveries
// by the minute they were delivered, or failed (retrying or dead).
func testConsoleActivity(t *testing.T, s consoleStore) {
	ctx := t.Context()
	from := time.Now().Add(-59 * time.Minute)
	fx := newConsoleFixture(t, s)
	ms, err := s.Activity(ctx, from, 61)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 61 {
		t.Fatalf("Activity of 61 minutes returned %d", len(ms))
	}
	received := map[int64]int64{} // by the minute's unix time
	for _, fe := range fx.events {
		received[fe.ev.ReceivedAt.Truncate(time.Minute).Unix()]++
	}
	var sumDelivered, sumFailed, sumReceived int64
	for i, m := range ms {
		if want := from.Truncate(time.Minute).Add(time.Duration(i) * time.Minute); !m.Start.Equal(want) {
			t.Fatalf("minute %d starts at %v, want %v", i, m.Start, want)
		}
		if want := received[m.Start.Unix()]; m.Received != want {
			t.Errorf("minute %v: %d received, want %d", m.Start, m.Received, want)
		}
		sumReceived += m.Received
		sumDelivered += m.Delivered
		sumFailed += m.Failed
	}
	var wantDelivered, wantFailed int64
	for _, fe := range fx.events {
		for _, o := range fe.sinks {
			switch o {
			case delivered:
				wantDelivered++
			case dead, retrying:
				wantFailed++
			}
		}
	}
	if sumReceived != int64(len(fx.events)) || sumDelivered != wantDelivered || sumFailed != wantFailed {
		t.Errorf("Activity sums: %d received, %d delivered, %d failed; want %d, %d, %d",
			sumReceived, sumDelivered, sumFailed, len(fx.events), wantDelivered, wantFailed)
	}
	// A replayed delivery has no failed attempt any more.
	if _, err := s.Replay(ctx, crmhook.DeliveryFilter{State: crmhook.StateDead}); err != nil {
		t.Fatal(err)
	}
	ms, err = s.Activity(ctx, from, 61)
	if err != nil {
		t.Fatal(err)
	}
	var failed int64
	for _, m := range ms {
		failed += m.Failed
	}
	if failed != 1 {
		t.Errorf("after replaying the dead letters: %d failed, want the 1 retrying", failed)
	}
	for _, n := range []int{0, console.MaxMinutes + 1} {
		if _, err := s.Activity(ctx, from, n); err == nil {
			t.Errorf("Activity of %d minutes: no error", n)
		}
	}
}

// names shows event ids as fixture indexes, for readable failures.
func (fx *consoleFixture) names(ids []string) string {
	idx := map[string]int{}
	for i, fe := range fx.events {
		idx[fe.ev.ID] = i
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		if n, ok := idx[id]; ok {
			parts[i] = fmt.Sprint("#", n)
		} else {
			parts[i] = id
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func describe(f crmhook.EventFilter) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("source", f.Source)
	add("type", f.Type)
	add("state", string(f.State))
	add("dedupe", f.DedupeKey)
	if !f.Since.IsZero() {
		add("since", f.Since.Format(time.TimeOnly))
	}
	if !f.Until.IsZero() {
		add("until", f.Until.Format(time.TimeOnly))
	}
	if !f.BeforeReceivedAt.IsZero() {
		add("before", f.BeforeReceivedAt.Format(time.TimeOnly)+"/"+f.BeforeID)
	}
	if f.Limit != 0 {
		add("limit", fmt.Sprint(f.Limit))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
