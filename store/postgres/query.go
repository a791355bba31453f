package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
	"github.com/jackc/pgx/v5"
)

// GetEvent returns an event and its deliveries (in the order of the sinks
// it was inserted with), read in one snapshot.
func (s *Store) GetEvent(ctx context.Context, id string) (crmhook.Event, []crmhook.Delivery, error) {
	if err := s.checkOpen("get event"); err != nil {
		return crmhook.Event{}, nil, err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return crmhook.Event{}, nil, s.failTx(ctx, "get event: begin", err)
	}
	defer tx.Rollback(context.Background())

	ev, err := scanEvent(tx.QueryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return crmhook.Event{}, nil, fmt.Errorf("postgres: get event %q: %w", id, crmhook.ErrNotFound)
	}
	if err != nil {
		return crmhook.Event{}, nil, s.fail(ctx, "get event", err)
	}
	ds, err := queryDeliveries(ctx, tx, `SELECT `+deliveryColumns+` FROM deliveries WHERE event_id = $1 ORDER BY id`, id)
	if err != nil {
		return crmhook.Event{}, nil, s.fail(ctx, "get event: deliveries", err)
	}
	return ev, ds, nil
}

// ListEvents lists events newest first (by ReceivedAt). Type is an exact
// type or a glob ("person.*") as path.Match reads it; Since is inclusive,
// Until exclusive.
func (s *Store) ListEvents(ctx context.Context, f crmhook.EventFilter) ([]crmhook.Event, error) {
	if err := s.checkOpen("list events"); err != nil {
		return nil, err
	}
	w := &where{}
	if f.Source != "" {
		w.add("source = " + w.arg(f.Source))
	}
	if f.Type != "" {
		if sqlstore.IsGlob(f.Type) {
			w.add("type ~ " + w.arg(globRegexp(f.Type)))
		} else {
			w.add("type = " + w.arg(f.Type))
		}
	}
	if !f.Since.IsZero() {
		w.add("received_at >= " + w.arg(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("received_at < " + w.arg(f.Until))
	}
	if f.State != "" {
		w.add("EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.state = " + w.arg(string(f.State)) + ")")
	}
	if f.DedupeKey != "" {
		w.add("dedupe_key = " + w.arg(f.DedupeKey))
	}
	if !f.BeforeReceivedAt.IsZero() {
		w.add(beforeCursor("received_at", "id", w, f.BeforeReceivedAt, f.BeforeID))
	}
	q := `SELECT ` + eventColumns + ` FROM events WHERE ` + w.String() +
		` ORDER BY received_at DESC, id DESC LIMIT ` + w.arg(sqlstore.ListLimit(f.Limit))
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, s.fail(ctx, "list events", err)
	}
	defer rows.Close()
	evs, err := sqlstore.Collect(rows, func(rows pgx.Rows) (crmhook.Event, error) { return scanEvent(rows) })
	if err != nil {
		return nil, s.fail(ctx, "list events", err)
	}
	return evs, nil
}

// globRegexp turns a path.Match pattern into an anchored POSIX regular
// expression: * and ? stop at "/" as in path.Match, [...] classes (with ^
// for negation) carry over, and everything else, a backslash-escaped
// character included, is literal.
func globRegexp(pattern string) string {
	var b strings.Builder
	b.WriteByte('^')
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*':
			b.WriteString(`[^/]*`)
		case '?':
			b.WriteString(`[^/]`)
		case '\\':
			if i+1 < len(pattern) {
				i++
				b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
			}
		case '[':
			end := strings.IndexByte(pattern[i+1:], ']')
			if end < 0 {
				b.WriteString(`\[`)
				continue
			}
			class := pattern[i+1 : i+1+end]
			class = strings.ReplaceAll(class, `\`, `\\`)
			b.WriteString("[" + class + "]")
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteByte('$')
	return b.String()
}

// ListDeliveries lists deliveries newest first. Since is inclusive, Until
// exclusive, both on CreatedAt.
func (s *Store) ListDeliveries(ctx context.Context, f crmhook.DeliveryFilter) ([]crmhook.Delivery, error) {
	if err := s.checkOpen("list deliveries"); err != nil {
		return nil, err
	}
	w := &where{}
	deliveryWhere(w, f)
	q := `SELECT ` + deliveryColumns + ` FROM deliveries WHERE ` + w.String() +
		` ORDER BY created_at DESC, id DESC LIMIT ` + w.arg(sqlstore.ListLimit(f.Limit))
	ds, err := queryDeliveries(ctx, s.pool, q, w.args...)
	if err != nil {
		return nil, s.fail(ctx, "list deliveries", err)
	}
	return ds, nil
}

// beforeCursor is the condition of keyset paging newest first on (rcv,
// id): a range on rcv that an index ending in it serves, the id deciding
// only between equal times.
func beforeCursor(rcv, id string, w *where, at time.Time, beforeID string) string {
	c := w.arg(at)
	return fmt.Sprintf("%s <= %s AND (%s < %s OR %s < %s)", rcv, c, rcv, c, id, w.arg(beforeID))
}

// where builds a WHERE clause with numbered parameters.
type where struct {
	conds []string
	args  []any
}

// arg adds a parameter and returns its placeholder.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return fmt.Sprintf("$%d", len(w.args))
}

func (w *where) add(cond string) { w.conds = append(w.conds, cond) }

func (w *where) String() string {
	if len(w.conds) == 0 {
		return "true"
	}
	return strings.Join(w.conds, " AND ")
}

// deliveryWhere turns a filter into conditions on deliveries. Since is
// inclusive and Until exclusive, both on CreatedAt.
func deliveryWhere(w *where, f crmhook.DeliveryFilter) {
	if f.State != "" {
		w.add("state = " + w.arg(string(f.State)))
		if f.State != crmhook.StateDelivered {
			// Spelled out for the partial indexes of waiting deliveries.
			w.add("state <> 'delivered'")
		}
	}
	if len(f.IDs) > 0 {
		w.add("id = ANY (" + w.arg(f.IDs) + "::bigint[])")
	}
	if f.Sink != "" {
		w.add("sink = " + w.arg(f.Sink))
	}
	if f.EventID != "" {
		w.add("event_id = " + w.arg(f.EventID))
	}
	if f.Source != "" {
		w.add("event_id IN (SELECT id FROM events WHERE source = " + w.arg(f.Source) + ")")
	}
	if !f.Since.IsZero() {
		w.add("created_at >= " + w.arg(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("created_at < " + w.arg(f.Until))
	}
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func queryDeliveries(ctx context.Context, q querier, query string, args ...any) ([]crmhook.Delivery, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlstore.Collect(rows, func(rows pgx.Rows) (crmhook.Delivery, error) { return scanDelivery(rows) })
}

// Stats reads the queue's gauges in one statement.
func (s *Store) Stats(ctx context.Context) (crmhook.Stats, error) {
	if err := s.checkOpen("stats"); err != nil {
		return crmhook.Stats{}, err
	}
	var (
		st     crmhook.Stats
		oldest *time.Time
	)
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM deliveries WHERE state = 'pending'),
		(SELECT count(*) FROM deliveries WHERE state = 'dead'),
		(SELECT count(*) FROM rejections WHERE released_at IS NULL),
		(SELECT min(created_at) FROM deliveries WHERE state = 'pending')`).
		Scan(&st.Pending, &st.Dead, &st.Rejections, &oldest)
	if err != nil {
		return crmhook.Stats{}, s.fail(ctx, "stats", err)
	}
	st.OldestPending = fromNull(oldest)
	return st, nil
}
