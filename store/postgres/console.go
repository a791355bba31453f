package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/console"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
	"github.com/jackc/pgx/v5"
)

// The console's reads (console.Reader), on the indexes of migration 0003,
// the same walks as the SQLite store's.

var _ console.Reader = (*Store)(nil)

// eventMetaColumns are an event's columns but its payload, of alias e.
const eventMetaColumns = `e.id, e.source, e.provider, e.type, e.dedupe_key, e.occurred_at, e.received_at`

// walkOf adds to w the walk of f (see sqlstore.Walk): its key, the time
// range and the cursor, on the columns it goes by (newest first), and
// returns what it reads and those columns.
func walkOf(w *where, f crmhook.EventFilter) (from, rcv, id string) {
	from, rcv, id = "events e", "e.received_at", "e.id"
	switch sqlstore.WalkOf(f) {
	case sqlstore.WalkDedupeKey:
		w.add("e.dedupe_key = " + w.arg(f.DedupeKey))
	case sqlstore.WalkWaiting:
		from, rcv, id = "deliveries d", "d.event_received_at", "d.event_id"
		w.add("d.state <> 'delivered'")
		w.add("d.state = " + w.arg(string(f.State)))
	case sqlstore.WalkSource:
		w.add("e.source = " + w.arg(f.Source))
	}
	if !f.Since.IsZero() {
		w.add(rcv + " >= " + w.arg(f.Since))
	}
	if !f.Until.IsZero() {
		w.add(rcv + " < " + w.arg(f.Until))
	}
	if !f.BeforeReceivedAt.IsZero() {
		w.add(beforeCursor(rcv, id, w, f.BeforeReceivedAt, f.BeforeID))
	}
	return from, rcv, id
}

// eventPageQuery reads a page: the walk down to bound (when not zero),
// filtered by the rest of f, newest first, at most limit rows.
func eventPageQuery(f crmhook.EventFilter, bound time.Time, limit int) (string, []any) {
	w := &where{}
	from, rcv, id := walkOf(w, f)
	walk := sqlstore.WalkOf(f)
	if walk == sqlstore.WalkWaiting {
		from += " JOIN events e ON e.id = d.event_id"
	}
	if !bound.IsZero() {
		w.add(rcv + " >= " + w.arg(bound))
	}
	if f.Source != "" && walk != sqlstore.WalkSource {
		w.add("e.source = " + w.arg(f.Source))
	}
	if f.Type != "" {
		if sqlstore.IsGlob(f.Type) {
			w.add("e.type ~ " + w.arg(globRegexp(f.Type)))
		} else {
			w.add("e.type = " + w.arg(f.Type))
		}
	}
	if f.State != "" && walk != sqlstore.WalkWaiting {
		w.add("EXISTS (SELECT 1 FROM deliveries x WHERE x.event_id = e.id AND x.state = " + w.arg(string(f.State)) + ")")
	}
	return `SELECT ` + eventMetaColumns + ` FROM ` + from + ` WHERE ` + w.String() +
		` ORDER BY ` + rcv + ` DESC, ` + id + ` DESC LIMIT ` + w.arg(limit), w.args
}

// EventPage lists a page of events (see console.Reader), reading at most
// scan candidates: first the boundary (the ReceivedAt of the walk's scan-th
// candidate, off the walk's index), then the page down to it.
func (s *Store) EventPage(ctx context.Context, f crmhook.EventFilter, scan int) (console.Page, error) {
	if err := s.checkOpen("event page"); err != nil {
		return console.Page{}, err
	}
	var bound time.Time
	if sqlstore.Bounded(f, scan) {
		w := &where{}
		from, rcv, _ := walkOf(w, f)
		var b time.Time
		switch err := s.pool.QueryRow(ctx, `SELECT `+rcv+` FROM `+from+` WHERE `+w.String()+
			` ORDER BY `+rcv+` DESC LIMIT 1 OFFSET `+w.arg(scan-1), w.args...).Scan(&b); {
		case errors.Is(err, pgx.ErrNoRows): // fewer candidates than scan: no boundary
		case err != nil:
			return console.Page{}, s.fail(ctx, "event page: boundary", err)
		default:
			bound = b.UTC()
		}
	}
	want := sqlstore.ListLimit(f.Limit) + 1 // one more: is there a next page?
	var evs []crmhook.Event
	cont := f
	for len(evs) < want {
		need := want - len(evs)
		q, args := eventPageQuery(cont, bound, need)
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			return console.Page{}, s.fail(ctx, "event page", err)
		}
		got, err := sqlstore.Collect(rows, func(rows pgx.Rows) (crmhook.Event, error) {
			var m eventMeta
			err := rows.Scan(m.dest()...)
			return m.event(), err
		})
		rows.Close()
		if err != nil {
			return console.Page{}, s.fail(ctx, "event page", err)
		}
		for _, ev := range got {
			// An event with several deliveries in the walk's state
			// comes once per delivery, in a row.
			if len(evs) == 0 || evs[len(evs)-1].ID != ev.ID {
				evs = append(evs, ev)
			}
		}
		if len(got) < need {
			break
		}
		last := got[len(got)-1]
		cont.BeforeReceivedAt, cont.BeforeID = last.ReceivedAt, last.ID
	}
	ds, err := queryDeliveries(ctx, s.pool, `SELECT `+deliveryColumns+` FROM deliveries
		WHERE event_id = ANY ($1::text[]) ORDER BY event_id, id`, sqlstore.EventIDs(evs))
	if err != nil {
		return console.Page{}, s.fail(ctx, "event page: deliveries", err)
	}
	return sqlstore.PageOf(f, evs, ds, bound), nil
}

// eventMeta scans eventMetaColumns.
type eventMeta struct {
	ev                 crmhook.Event
	provider           string
	occurred, received *time.Time
}

func (m *eventMeta) dest() []any {
	return []any{&m.ev.ID, &m.ev.Source, &m.provider, &m.ev.Type, &m.ev.DedupeKey, &m.occurred, &m.received}
}

func (m *eventMeta) event() crmhook.Event {
	ev := m.ev
	ev.Provider = crmhook.Provider(m.provider)
	ev.OccurredAt = fromNull(m.occurred)
	ev.ReceivedAt = fromNull(m.received)
	return ev
}

// DeadLetters lists a sink's dead letters with their events (see
// console.Reader), on the partial index deliveries_waiting.
func (s *Store) DeadLetters(ctx context.Context, sink string, after console.Cursor, limit int) ([]console.DeadLetter, error) {
	if err := s.checkOpen("dead letters"); err != nil {
		return nil, err
	}
	if err := sqlstore.CheckSink(sink); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	w := &where{}
	w.add("d.state <> 'delivered'")
	w.add("d.state = 'dead'")
	w.add("d.sink = " + w.arg(sink))
	if !after.IsZero() {
		w.add(beforeCursor("d.event_received_at", "d.event_id", w, after.ReceivedAt, after.ID))
	}
	q := `SELECT ` + sqlstore.QualifiedDeliveryColumns("d") + `, ` + eventMetaColumns + `
		FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE ` + w.String() + `
		ORDER BY d.event_received_at DESC, d.event_id DESC LIMIT ` + w.arg(sqlstore.ListLimit(limit))
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, s.fail(ctx, "dead letters", err)
	}
	defer rows.Close()
	out, err := sqlstore.Collect(rows, func(rows pgx.Rows) (console.DeadLetter, error) {
		var (
			dl  console.DeadLetter
			m   eventMeta
			err error
		)
		if dl.Delivery, err = scanDelivery(rows, m.dest()...); err != nil {
			return dl, err
		}
		dl.Event = m.event()
		return dl, nil
	})
	if err != nil {
		return nil, s.fail(ctx, "dead letters", err)
	}
	return out, nil
}

// Queues counts each sink's pending and dead deliveries (see
// console.Reader) off the partial index deliveries_waiting.
func (s *Store) Queues(ctx context.Context) ([]console.Queue, error) {
	if err := s.checkOpen("queues"); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT sink,
			count(*) FILTER (WHERE state = 'pending'),
			count(*) FILTER (WHERE state = 'dead'),
			min(event_received_at) FILTER (WHERE state = 'pending')
		FROM deliveries WHERE state <> 'delivered'
		GROUP BY sink ORDER BY sink`)
	if err != nil {
		return nil, s.fail(ctx, "queues", err)
	}
	defer rows.Close()
	out, err := sqlstore.Collect(rows, func(rows pgx.Rows) (console.Queue, error) {
		var (
			q      console.Queue
			oldest *time.Time
		)
		err := rows.Scan(&q.Sink, &q.Pending, &q.Dead, &oldest)
		q.OldestPending = fromNull(oldest)
		return q, err
	})
	if err != nil {
		return nil, s.fail(ctx, "queues", err)
	}
	return out, nil
}

// Activity counts each minute's received, delivered and failed (see
// console.Reader): three index ranges a minute (events_received_at and the
// partial deliveries_delivered_at and deliveries_failed_at).
func (s *Store) Activity(ctx context.Context, from time.Time, n int) ([]console.Minute, error) {
	if err := s.checkOpen("activity"); err != nil {
		return nil, err
	}
	if err := sqlstore.CheckMinutes(n); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	from = from.Truncate(time.Minute)
	rows, err := s.pool.Query(ctx, `SELECT m.t,
			(SELECT count(*) FROM events WHERE received_at >= m.t AND received_at < m.t + interval '1 minute'),
			(SELECT count(*) FROM deliveries WHERE delivered_at >= m.t AND delivered_at < m.t + interval '1 minute'),
			(SELECT count(*) FROM deliveries WHERE state <> 'delivered' AND attempts > 0
				AND updated_at >= m.t AND updated_at < m.t + interval '1 minute')
		FROM generate_series($1::timestamptz, $1::timestamptz + ($2::int - 1) * interval '1 minute', interval '1 minute') AS m (t)
		ORDER BY m.t`, from, n)
	if err != nil {
		return nil, s.fail(ctx, "activity", err)
	}
	defer rows.Close()
	out, err := sqlstore.Collect(rows, func(rows pgx.Rows) (console.Minute, error) {
		var m console.Minute
		err := rows.Scan(&m.Start, &m.Received, &m.Delivered, &m.Failed)
		m.Start = m.Start.UTC()
		return m, err
	})
	if err != nil {
		return nil, s.fail(ctx, "activity", err)
	}
	return out, nil
}
