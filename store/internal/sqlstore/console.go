package sqlstore

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/console"
)

// Walk is the index an EventPage follows. A page reads at most the
// candidates of its walk down to a boundary: the ReceivedAt of the walk's
// scan-th candidate, found first by a count inside the index alone. The
// page's query then filters (source, type, state…) in the store's engine,
// newest first, and stops at the page's end or at the boundary, whichever
// comes first; so a filter that matches rarely costs scan candidates,
// never the store.
type Walk int

// The walks, the most selective first.
const (
	// WalkDedupeKey follows the events of one dedupe key (a handful: no
	// boundary).
	WalkDedupeKey Walk = iota
	// WalkWaiting follows the deliveries in a state other than delivered
	// (the partial index deliveries_waiting) by their event's ReceivedAt:
	// an event with several deliveries in the state is one candidate per
	// delivery, and listed once.
	WalkWaiting
	// WalkSource follows the events of one source.
	WalkSource
	// WalkAll follows every event.
	WalkAll
)

// WalkOf chooses the walk of f.
func WalkOf(f crmhook.EventFilter) Walk {
	switch {
	case f.DedupeKey != "":
		return WalkDedupeKey
	case f.State == crmhook.StatePending || f.State == crmhook.StateDead:
		return WalkWaiting
	case f.Source != "":
		return WalkSource
	}
	return WalkAll
}

// Bounded reports whether a page of f over scan candidates needs a
// boundary.
func Bounded(f crmhook.EventFilter, scan int) bool {
	return scan > 0 && WalkOf(f) != WalkDedupeKey
}

// PageOf makes a page of the rows the page's query returned (at most the
// filter's limit plus one, newest first) and the deliveries of their events
// (in any order). bound is the walk's boundary, zero when the walk had
// fewer than scan candidates (or no bound applies): the page then ends
// there, and the next goes on strictly before it.
func PageOf(f crmhook.EventFilter, rows []crmhook.Event, ds []crmhook.Delivery, bound time.Time) console.Page {
	limit := ListLimit(f.Limit)
	var page console.Page
	full := len(rows) > limit
	if full {
		rows = rows[:limit]
	}
	idx := make(map[string]int, len(rows))
	for i, ev := range rows {
		ev.Payload = nil
		idx[ev.ID] = i
		page.Rows = append(page.Rows, console.Row{Event: ev})
	}
	for _, d := range ds {
		if i, ok := idx[d.EventID]; ok {
			page.Rows[i].Deliveries = append(page.Rows[i].Deliveries, d)
		}
	}
	switch {
	case full:
		page.More, page.Next = true, console.CursorOf(rows[limit-1])
	case !bound.IsZero():
		// Every candidate down to the boundary was read, those received
		// at that instant included: the next page begins just before it.
		page.More, page.Bounded, page.Next = true, true, console.Cursor{ReceivedAt: bound}
	}
	return page
}

// EventIDs are the ids of events.
func EventIDs(evs []crmhook.Event) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	return ids
}

// QualifiedDeliveryColumns are DeliveryColumns of the table alias a.
func QualifiedDeliveryColumns(a string) string {
	cols := strings.Split(DeliveryColumns, ", ")
	for i, c := range cols {
		cols[i] = a + "." + c
	}
	return strings.Join(cols, ", ")
}

// CheckSink refuses DeadLetters without a sink.
func CheckSink(sink string) error {
	if sink == "" {
		return fmt.Errorf("dead letters: no sink")
	}
	return nil
}

// CheckMinutes refuses an Activity of more than console.MaxMinutes.
func CheckMinutes(n int) error {
	if n < 1 || n > console.MaxMinutes {
		return fmt.Errorf("activity: %d minutes; want 1 to %d", n, console.MaxMinutes)
	}
	return nil
}

// SortMinutes puts an Activity's minutes in order.
func SortMinutes(ms []console.Minute) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Start.Before(ms[j].Start) })
}
