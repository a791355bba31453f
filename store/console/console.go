// Package console names the reads of the admin console that crmhook.Store
// has no method for: a page of events whose cost is bounded whatever the
// filter, the dead letters of a sink with their events, each sink's queue,
// and the activity of the last hour minute by minute. Both of crmhook's
// stores implement Reader, each read on an index (store/storetest checks
// the answers, each store's own tests the query plans).
package console

import (
	"context"
	"time"

	"github.com/crmhook/crmhook"
)

// Reader is what the console reads besides crmhook.Store.
type Reader interface {
	// EventPage lists the events f selects, newest first, as ListEvents
	// does (every field of f, its cursor included), without payloads, and
	// with each event's deliveries. It examines at most the scan newest
	// candidates its index walks to (0: no bound), and those received at
	// the same instant as the last of them, so that a filter no index
	// answers (a type, a source with a delivery state) costs a bounded
	// amount of work: when the bound ends the page before it is full,
	// Page.Bounded is set and Page.Next continues just before the last
	// candidate's ReceivedAt.
	EventPage(ctx context.Context, f crmhook.EventFilter, scan int) (Page, error)
	// DeadLetters lists the dead deliveries of sink, newest event first,
	// each with its event (no payload), after the cursor (the zero Cursor
	// starts with the newest), at most limit (0: 100). The cursor of the
	// next page is the last dead letter's event.
	DeadLetters(ctx context.Context, sink string, after Cursor, limit int) ([]DeadLetter, error)
	// Queues counts, for each sink that has any, the pending and the dead
	// deliveries, with the oldest pending event's ReceivedAt; by sink name.
	Queues(ctx context.Context) ([]Queue, error)
	// Activity counts, for each of n minutes from `from` (truncated to the
	// minute), the events received, the deliveries delivered, and the
	// deliveries whose latest attempt failed (retrying or dead), each at
	// the minute it happened. n is at most MaxMinutes.
	Activity(ctx context.Context, from time.Time, n int) ([]Minute, error)
}

// MaxMinutes bounds Activity's n: a day.
const MaxMinutes = 24 * 60

// Cursor is a position in a newest-first listing of events: the
// (ReceivedAt, ID) of the last event of a page. The zero Cursor is the
// start.
type Cursor struct {
	ReceivedAt time.Time
	ID         string
}

// IsZero reports whether c is the start of a listing.
func (c Cursor) IsZero() bool { return c.ReceivedAt.IsZero() }

// CursorOf is the cursor just after ev.
func CursorOf(ev crmhook.Event) Cursor { return Cursor{ReceivedAt: ev.ReceivedAt, ID: ev.ID} }

// Page is one page of events.
type Page struct {
	Rows []Row
	// More says that a next page may hold more events; Next is its cursor.
	More bool
	Next Cursor
	// Bounded says that the scan bound, not the page size, ended the page:
	// the candidates up to Next were examined, and the ones not listed did
	// not match.
	Bounded bool
}

// Row is an event (without its payload) and its deliveries.
type Row struct {
	Event      crmhook.Event
	Deliveries []crmhook.Delivery
}

// DeadLetter is a dead delivery and its event (without its payload).
type DeadLetter struct {
	Delivery crmhook.Delivery
	Event    crmhook.Event
}

// Queue is one sink's backlog.
type Queue struct {
	Sink    string
	Pending int64
	Dead    int64
	// OldestPending is the ReceivedAt of the oldest event with a pending
	// delivery to the sink; zero when none is pending.
	OldestPending time.Time
}

// Minute is one minute of activity.
type Minute struct {
	Start     time.Time
	Received  int64 // events received
	Delivered int64 // deliveries delivered
	Failed    int64 // deliveries whose latest attempt failed in this minute
}
