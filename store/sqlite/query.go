package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
)

// GetEvent returns an event and its deliveries (in the order of the sinks
// it was inserted with), read in one snapshot.
func (s *Store) GetEvent(ctx context.Context, id string) (crmhook.Event, []crmhook.Delivery, error) {
	if err := s.checkOpen("get event"); err != nil {
		return crmhook.Event{}, nil, err
	}
	tx, err := s.readDB.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return crmhook.Event{}, nil, s.fail(ctx, "get event", err)
	}
	defer tx.Rollback()

	ev, err := scanEvent(tx.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return crmhook.Event{}, nil, fmt.Errorf("sqlite: get event %q: %w", id, crmhook.ErrNotFound)
	}
	if err != nil {
		return crmhook.Event{}, nil, s.fail(ctx, "get event", err)
	}
	ds, err := queryDeliveries(ctx, tx, `SELECT `+deliveryColumns+` FROM deliveries WHERE event_id = ? ORDER BY id`, id)
	if err != nil {
		return crmhook.Event{}, nil, s.fail(ctx, "get event: deliveries", err)
	}
	return ev, ds, nil
}

// ListEvents lists events newest first (by ReceivedAt, then id). Type is an
// exact type or a glob ("person.*"); Since is inclusive, Until exclusive.
func (s *Store) ListEvents(ctx context.Context, f crmhook.EventFilter) ([]crmhook.Event, error) {
	if err := s.checkOpen("list events"); err != nil {
		return nil, err
	}
	q, args := listEventsQuery(f)
	rows, err := s.readDB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.fail(ctx, "list events", err)
	}
	defer rows.Close()
	evs, err := sqlstore.Collect(rows, func(rows *sql.Rows) (crmhook.Event, error) { return scanEvent(rows) })
	if err != nil {
		return nil, s.fail(ctx, "list events", err)
	}
	return evs, nil
}

// listEventsQuery is ListEvents' statement for f.
func listEventsQuery(f crmhook.EventFilter) (string, []any) {
	where, args := []string{"1 = 1"}, []any{}
	if f.Source != "" {
		where = append(where, "source = ?")
		args = append(args, f.Source)
	}
	if f.Type != "" {
		if sqlstore.IsGlob(f.Type) {
			where = append(where, "type GLOB ?")
			args = append(args, sqliteGlob(f.Type))
		} else {
			where = append(where, "type = ?")
			args = append(args, f.Type)
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "received_at >= ?")
		args = append(args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where = append(where, "received_at < ?")
		args = append(args, f.Until.UnixMicro())
	}
	if f.State != "" {
		// +d.state: by event_id (UNIQUE (event_id, sink)), never by state.
		where = append(where, "EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND +d.state = ?)")
		args = append(args, string(f.State))
	}
	if f.DedupeKey != "" {
		where = append(where, "dedupe_key = ?")
		args = append(args, f.DedupeKey)
	}
	if !f.BeforeReceivedAt.IsZero() {
		// A range on received_at that any index of events ending in it
		// serves; the id decides only between equal times.
		c := f.BeforeReceivedAt.UnixMicro()
		where = append(where, "received_at <= ? AND (received_at < ? OR id < ?)")
		args = append(args, c, c, f.BeforeID)
	}
	args = append(args, sqlstore.ListLimit(f.Limit))
	return `SELECT ` + eventColumns + ` FROM events WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY received_at DESC, id DESC LIMIT ?`, args
}

// sqliteGlob turns a path.Match pattern into an SQLite GLOB one. They agree
// on *, ? and [...] (with ^ for negation); path.Match's backslash escape
// becomes a one-character class. (path.Match's * stops at "/", which event
// types do not contain.)
func sqliteGlob(pattern string) string {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c == '\\' && i+1 < len(pattern) {
			i++
			b.WriteByte('[')
			b.WriteByte(pattern[i])
			b.WriteByte(']')
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// ListDeliveries lists deliveries newest first. Since is inclusive, Until
// exclusive, both on CreatedAt.
func (s *Store) ListDeliveries(ctx context.Context, f crmhook.DeliveryFilter) ([]crmhook.Delivery, error) {
	if err := s.checkOpen("list deliveries"); err != nil {
		return nil, err
	}
	where, args := deliveryWhere(f)
	args = append(args, sqlstore.ListLimit(f.Limit))
	ds, err := queryDeliveries(ctx, s.readDB, `SELECT `+deliveryColumns+` FROM deliveries WHERE `+
		strings.Join(where, " AND ")+` ORDER BY created_at DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, s.fail(ctx, "list deliveries", err)
	}
	return ds, nil
}

// deliveryWhere turns a filter into conditions on deliveries. Since is
// inclusive and Until exclusive, both on CreatedAt.
func deliveryWhere(f crmhook.DeliveryFilter) (where []string, args []any) {
	where = []string{"1 = 1"}
	switch {
	case len(f.IDs) > 0:
		// A selection is found by id; +state keeps SQLite from walking
		// every delivery in the state instead.
		ids, _ := json.Marshal(f.IDs) // []int64 always marshals
		where = append(where, "id IN (SELECT value FROM json_each(?))")
		args = append(args, string(ids))
		if f.State != "" {
			where = append(where, "+state = ?")
			args = append(args, string(f.State))
		}
	case f.State != "":
		where = append(where, "state = ?")
		args = append(args, string(f.State))
		if f.State != crmhook.StateDelivered {
			// The literal term lets SQLite use the partial indexes of
			// waiting deliveries (a sink's dead letters, say).
			where = append(where, "state <> 'delivered'")
		}
	}
	if f.Sink != "" {
		where = append(where, "sink = ?")
		args = append(args, f.Sink)
	}
	if f.EventID != "" {
		where = append(where, "event_id = ?")
		args = append(args, f.EventID)
	}
	if f.Source != "" {
		where = append(where, "event_id IN (SELECT id FROM events WHERE source = ?)")
		args = append(args, f.Source)
	}
	if !f.Since.IsZero() {
		where = append(where, "created_at >= ?")
		args = append(args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where = append(where, "created_at < ?")
		args = append(args, f.Until.UnixMicro())
	}
	return where, args
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryDeliveries(ctx context.Context, q querier, query string, args ...any) ([]crmhook.Delivery, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlstore.Collect(rows, func(rows *sql.Rows) (crmhook.Delivery, error) { return scanDelivery(rows) })
}

// statsSQL reads the queue's gauges: counts inside indexes (the waiting
// rejections' is partial), the oldest pending delivery off the end of one.
const statsSQL = `SELECT
	(SELECT count(*) FROM deliveries WHERE state = 'pending'),
	(SELECT count(*) FROM deliveries WHERE state = 'dead'),
	(SELECT count(*) FROM rejections WHERE released_at IS NULL),
	(SELECT min(created_at) FROM deliveries WHERE state = 'pending')`

// Stats reads the queue's gauges in one statement.
func (s *Store) Stats(ctx context.Context) (crmhook.Stats, error) {
	if err := s.checkOpen("stats"); err != nil {
		return crmhook.Stats{}, err
	}
	var (
		st     crmhook.Stats
		oldest sql.NullInt64
	)
	err := s.readDB.QueryRowContext(ctx, statsSQL).Scan(&st.Pending, &st.Dead, &st.Rejections, &oldest)
	if err != nil {
		return crmhook.Stats{}, s.fail(ctx, "stats", err)
	}
	st.OldestPending = fromMicros(oldest)
	return st, nil
}
