package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/console"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
)

// The console's reads (console.Reader). Each follows an index; the tests
// hold every one of them to its plan with EXPLAIN QUERY PLAN.

var _ console.Reader = (*Store)(nil)

// eventMetaColumns are an event's columns but its payload, of alias e.
const eventMetaColumns = `e.id, e.source, e.provider, e.type, e.dedupe_key, e.occurred_at, e.received_at`

// eventWalk is the walk of f (see sqlstore.Walk): what it reads, the
// columns it goes by (newest first), and the conditions its index answers:
// its key, the time range, the cursor.
type eventWalk struct {
	from, rcv, id string
	where         []string
	args          []any
}

func walkOf(f crmhook.EventFilter) eventWalk {
	w := eventWalk{from: "events e", rcv: "e.received_at", id: "e.id"}
	switch sqlstore.WalkOf(f) {
	case sqlstore.WalkDedupeKey:
		w.where, w.args = append(w.where, "e.dedupe_key = ?"), append(w.args, f.DedupeKey)
	case sqlstore.WalkWaiting:
		w.from, w.rcv, w.id = "deliveries d", "d.event_received_at", "d.event_id"
		// The literal state <> 'delivered' lets SQLite use the partial index.
		w.where, w.args = append(w.where, "d.state <> 'delivered'", "d.state = ?"), append(w.args, string(f.State))
	case sqlstore.WalkSource:
		w.where, w.args = append(w.where, "e.source = ?"), append(w.args, f.Source)
	}
	if !f.Since.IsZero() {
		w.where, w.args = append(w.where, w.rcv+" >= ?"), append(w.args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		w.where, w.args = append(w.where, w.rcv+" < ?"), append(w.args, f.Until.UnixMicro())
	}
	if !f.BeforeReceivedAt.IsZero() {
		// A range on the time, which the index serves; the id decides only
		// between equal times.
		c := f.BeforeReceivedAt.UnixMicro()
		w.where = append(w.where, fmt.Sprintf("%s <= ? AND (%s < ? OR %s < ?)", w.rcv, w.rcv, w.id))
		w.args = append(w.args, c, c, f.BeforeID)
	}
	if len(w.where) == 0 {
		w.where = append(w.where, "1 = 1")
	}
	return w
}

// boundaryQuery finds the ReceivedAt of the walk's scan-th candidate,
// reading the walk's index alone.
func boundaryQuery(f crmhook.EventFilter, scan int) (string, []any) {
	w := walkOf(f)
	return `SELECT ` + w.rcv + ` FROM ` + w.from + ` WHERE ` + strings.Join(w.where, " AND ") +
		` ORDER BY ` + w.rcv + ` DESC LIMIT 1 OFFSET ?`, append(w.args, scan-1)
}

// eventPageQuery reads a page: the walk down to bound (when not zero),
// filtered by the rest of f, newest first, at most limit rows.
func eventPageQuery(f crmhook.EventFilter, bound time.Time, limit int) (string, []any) {
	w := walkOf(f)
	walk := sqlstore.WalkOf(f)
	from, where, args := w.from, w.where, w.args
	if walk == sqlstore.WalkWaiting {
		from += " JOIN events e ON e.id = d.event_id"
	}
	if !bound.IsZero() {
		where, args = append(where, w.rcv+" >= ?"), append(args, bound.UnixMicro())
	}
	if f.Source != "" && walk != sqlstore.WalkSource {
		where, args = append(where, "e.source = ?"), append(args, f.Source)
	}
	if f.Type != "" {
		if sqlstore.IsGlob(f.Type) {
			where, args = append(where, "e.type GLOB ?"), append(args, sqliteGlob(f.Type))
		} else {
			where, args = append(where, "e.type = ?"), append(args, f.Type)
		}
	}
	if f.State != "" && walk != sqlstore.WalkWaiting {
		// +x.state: the event's deliveries are found by event_id (the index
		// of UNIQUE (event_id, sink)), never by state.
		where = append(where, "EXISTS (SELECT 1 FROM deliveries x WHERE x.event_id = e.id AND +x.state = ?)")
		args = append(args, string(f.State))
	}
	return `SELECT ` + eventMetaColumns + ` FROM ` + from + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY ` + w.rcv + ` DESC, ` + w.id + ` DESC LIMIT ?`, append(args, limit)
}

// EventPage lists a page of events (see console.Reader), reading at most
// scan candidates: first the boundary, then the page down to it.
func (s *Store) EventPage(ctx context.Context, f crmhook.EventFilter, scan int) (console.Page, error) {
	if err := s.checkOpen("event page"); err != nil {
		return console.Page{}, err
	}
	var bound time.Time
	if sqlstore.Bounded(f, scan) {
		q, args := boundaryQuery(f, scan)
		var b int64
		switch err := s.readDB.QueryRowContext(ctx, q, args...).Scan(&b); {
		case errors.Is(err, sql.ErrNoRows): // fewer candidates than scan: no boundary
		case err != nil:
			return console.Page{}, s.fail(ctx, "event page: boundary", err)
		default:
			bound = time.UnixMicro(b).UTC()
		}
	}
	want := sqlstore.ListLimit(f.Limit) + 1 // one more: is there a next page?
	var evs []crmhook.Event
	cont := f
	for len(evs) < want {
		need := want - len(evs)
		q, args := eventPageQuery(cont, bound, need)
		got, err := s.queryEventMeta(ctx, q, args)
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
	ids, err := json.Marshal(sqlstore.EventIDs(evs))
	if err != nil {
		return console.Page{}, err
	}
	ds, err := queryDeliveries(ctx, s.readDB, eventDeliveriesSQL, string(ids))
	if err != nil {
		return console.Page{}, s.fail(ctx, "event page: deliveries", err)
	}
	return sqlstore.PageOf(f, evs, ds, bound), nil
}

func (s *Store) queryEventMeta(ctx context.Context, q string, args []any) ([]crmhook.Event, error) {
	rows, err := s.readDB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlstore.Collect(rows, func(rows *sql.Rows) (crmhook.Event, error) { return scanEventMeta(rows) })
}

// eventDeliveriesSQL reads the deliveries of a page's events (a JSON array
// of ids) on the index of UNIQUE (event_id, sink).
const eventDeliveriesSQL = `SELECT ` + deliveryColumns + ` FROM deliveries
	WHERE event_id IN (SELECT value FROM json_each(?)) ORDER BY event_id, id`

// eventMeta scans eventMetaColumns.
type eventMeta struct {
	ev                 crmhook.Event
	provider           string
	occurred, received sql.NullInt64
}

func (m *eventMeta) dest() []any {
	return []any{&m.ev.ID, &m.ev.Source, &m.provider, &m.ev.Type, &m.ev.DedupeKey, &m.occurred, &m.received}
}

func (m *eventMeta) event() crmhook.Event {
	ev := m.ev
	ev.Provider = crmhook.Provider(m.provider)
	ev.OccurredAt = fromMicros(m.occurred)
	ev.ReceivedAt = fromMicros(m.received)
	return ev
}

func scanEventMeta(sc scanner, extra ...any) (crmhook.Event, error) {
	var m eventMeta
	if err := sc.Scan(append(m.dest(), extra...)...); err != nil {
		return crmhook.Event{}, err
	}
	return m.event(), nil
}

// deadLettersQuery reads a sink's dead letters newest event first, on the
// partial index deliveries_waiting: the sink is in the index, so only the
// sink's rows are read.
func deadLettersQuery(sink string, after console.Cursor, limit int) (string, []any) {
	where := []string{"d.state <> 'delivered'", "d.state = 'dead'", "d.sink = ?"}
	args := []any{sink}
	if !after.IsZero() {
		c := after.ReceivedAt.UnixMicro()
		where = append(where, "d.event_received_at <= ? AND (d.event_received_at < ? OR d.event_id < ?)")
		args = append(args, c, c, after.ID)
	}
	args = append(args, sqlstore.ListLimit(limit))
	return `SELECT ` + sqlstore.QualifiedDeliveryColumns("d") + `, ` + eventMetaColumns + `
		FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE ` + strings.Join(where, " AND ") + `
		ORDER BY d.event_received_at DESC, d.event_id DESC LIMIT ?`, args
}

// DeadLetters lists a sink's dead letters with their events (see
// console.Reader).
func (s *Store) DeadLetters(ctx context.Context, sink string, after console.Cursor, limit int) ([]console.DeadLetter, error) {
	if err := s.checkOpen("dead letters"); err != nil {
		return nil, err
	}
	if err := sqlstore.CheckSink(sink); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	q, args := deadLettersQuery(sink, after, limit)
	rows, err := s.readDB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.fail(ctx, "dead letters", err)
	}
	defer rows.Close()
	out, err := sqlstore.Collect(rows, func(rows *sql.Rows) (console.DeadLetter, error) {
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

// queuesSQL counts each sink's waiting deliveries inside the partial
// covering index deliveries_waiting (sorted by sink on the way): as much
// work as there are pending and dead deliveries, whatever the history.
const queuesSQL = `SELECT sink,
		count(*) FILTER (WHERE state = 'pending'),
		count(*) FILTER (WHERE state = 'dead'),
		min(event_received_at) FILTER (WHERE state = 'pending')
	FROM deliveries WHERE state <> 'delivered'
	GROUP BY sink ORDER BY sink`

// Queues counts each sink's pending and dead deliveries (see
// console.Reader).
func (s *Store) Queues(ctx context.Context) ([]console.Queue, error) {
	if err := s.checkOpen("queues"); err != nil {
		return nil, err
	}
	rows, err := s.readDB.QueryContext(ctx, queuesSQL)
	if err != nil {
		return nil, s.fail(ctx, "queues", err)
	}
	defer rows.Close()
	out, err := sqlstore.Collect(rows, func(rows *sql.Rows) (console.Queue, error) {
		var (
			q      console.Queue
			oldest sql.NullInt64
		)
		err := rows.Scan(&q.Sink, &q.Pending, &q.Dead, &oldest)
		q.OldestPending = fromMicros(oldest)
		return q, err
	})
	if err != nil {
		return nil, s.fail(ctx, "queues", err)
	}
	return out, nil
}

// activitySQL counts, for each minute ?1 + i·60 s (i < ?2), three ranges
// of covering indexes: events_received_at, deliveries_delivered_at and
// deliveries_failed_at (the last two partial: the range implies the first's
// WHERE, the second's terms are spelled out). Counting inside an index
// reads as many entries as the minutes hold, and no row.
const activitySQL = `WITH RECURSIVE m(i, t) AS (
		SELECT 0, ?1 UNION ALL SELECT i + 1, t + 60000000 FROM m WHERE i + 1 < ?2)
	SELECT t,
		(SELECT count(*) FROM events WHERE received_at >= m.t AND received_at < m.t + 60000000),
		(SELECT count(*) FROM deliveries WHERE delivered_at >= m.t AND delivered_at < m.t + 60000000),
		(SELECT count(*) FROM deliveries WHERE state <> 'delivered' AND attempts > 0
			AND updated_at >= m.t AND updated_at < m.t + 60000000)
	FROM m`

// Activity counts each minute's received, delivered and failed (see
// console.Reader).
func (s *Store) Activity(ctx context.Context, from time.Time, n int) ([]console.Minute, error) {
	if err := s.checkOpen("activity"); err != nil {
		return nil, err
	}
	if err := sqlstore.CheckMinutes(n); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	from = from.Truncate(time.Minute)
	rows, err := s.readDB.QueryContext(ctx, activitySQL, from.UnixMicro(), n)
	if err != nil {
		return nil, s.fail(ctx, "activity", err)
	}
	defer rows.Close()
	out, err := sqlstore.Collect(rows, func(rows *sql.Rows) (console.Minute, error) {
		var (
			m     console.Minute
			start int64
		)
		err := rows.Scan(&start, &m.Received, &m.Delivered, &m.Failed)
		m.Start = time.UnixMicro(start).UTC()
		return m, err
	})
	if err != nil {
		return nil, s.fail(ctx, "activity", err)
	}
	sqlstore.SortMinutes(out)
	return out, nil
}
