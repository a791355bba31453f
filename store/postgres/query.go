package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/storeutil"
	"github.com/jackc/pgx/v5"
)

// DefaultListLimit is the Limit of a listing filter that gives none.
const DefaultListLimit = storeutil.DefaultListLimit

func listLimit(n int) int { return storeutil.ListLimit(n) }

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
		if storeutil.IsGlob(f.Type) {
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
	q := `SELECT ` + eventColumns + ` FROM events WHERE ` + w.String() +
		` ORDER BY received_at DESC, id DESC LIMIT ` + w.arg(listLimit(f.Limit))
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, s.fail(ctx, "list events", err)
	}
	defer rows.Close()
	evs, err := storeutil.Collect(rows, func(rows pgx.Rows) (crmhook.Event, error) { return scanEvent(rows) })
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
		` ORDER BY created_at DESC, id DESC LIMIT ` + w.arg(listLimit(f.Limit))
	ds, err := queryDeliveries(ctx, s.pool, q, w.args...)
	if err != nil {
		return nil, s.fail(ctx, "list deliveries", err)
	}
	return ds, nil
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
	return storeutil.Collect(rows, func(rows pgx.Rows) (crmhook.Delivery, error) { return scanDelivery(rows) })
}

// ListRejections lists rejections newest first (by RejectedAt). Since is
// inclusive, Until exclusive, both on RejectedAt.
func (s *Store) ListRejections(ctx context.Context, f crmhook.RejectionFilter) ([]crmhook.Rejection, error) {
	if err := s.checkOpen("list rejections"); err != nil {
		return nil, err
	}
	w := &where{}
	if f.ID != 0 {
		w.add("id = " + w.arg(f.ID))
	}
	if f.Source != "" {
		w.add("source = " + w.arg(f.Source))
	}
	if f.Released != nil {
		if *f.Released {
			w.add("released_at IS NOT NULL")
		} else {
			w.add("released_at IS NULL")
		}
	}
	if !f.Since.IsZero() {
		w.add("rejected_at >= " + w.arg(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("rejected_at < " + w.arg(f.Until))
	}
	q := `SELECT ` + rejectionEventColumns + `, id, reason, rejected_at, released_at FROM rejections WHERE ` + w.String() +
		` ORDER BY rejected_at DESC, id DESC LIMIT ` + w.arg(listLimit(f.Limit))
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, s.fail(ctx, "list rejections", err)
	}
	defer rows.Close()
	rs, err := storeutil.Collect(rows, func(rows pgx.Rows) (crmhook.Rejection, error) {
		var (
			r                  crmhook.Rejection
			rejected, released *time.Time
		)
		ev, err := scanEvent(rows, &r.ID, &r.Reason, &rejected, &released)
		if err != nil {
			return crmhook.Rejection{}, err
		}
		r.Event = ev
		r.RejectedAt = fromNull(rejected)
		r.ReleasedAt = fromNull(released)
		return r, nil
	})
	if err != nil {
		return nil, s.fail(ctx, "list rejections", err)
	}
	return rs, nil
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

// pruneChunk is how many rows one pruning statement removes: each chunk is
// its own short transaction, so a large prune holds no locks for long.
const pruneChunk = 1000

// Prune removes the events received and fully delivered before
// p.DeliveredBefore (with their deliveries; an event with a pending or dead
// delivery stays), and the dedupe keys whose window ended before p.Now. A
// zero time prunes nothing of its kind. It returns how many events it
// removed. Replicas may prune at once: SKIP LOCKED keeps them off each
// other's chunks.
func (s *Store) Prune(ctx context.Context, p crmhook.PruneParams) (int, error) {
	if err := s.checkOpen("prune"); err != nil {
		return 0, err
	}
	removed := 0
	if !p.DeliveredBefore.IsZero() {
		for {
			tag, err := s.pool.Exec(ctx, `DELETE FROM events WHERE id IN (
				SELECT e.id FROM events e
				WHERE e.received_at < $1
					AND NOT EXISTS (
						SELECT 1 FROM deliveries d
						WHERE d.event_id = e.id
							AND (d.state <> 'delivered' OR d.delivered_at IS NULL OR d.delivered_at >= $1))
				LIMIT $2
				FOR UPDATE SKIP LOCKED)`, p.DeliveredBefore, pruneChunk)
			if err != nil {
				return removed, s.fail(ctx, "prune events", err)
			}
			n := int(tag.RowsAffected())
			removed += n
			if n < pruneChunk {
				break
			}
		}
	}
	if !p.Now.IsZero() {
		for {
			tag, err := s.pool.Exec(ctx, `DELETE FROM dedupe_keys WHERE key IN (
				SELECT key FROM dedupe_keys WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, p.Now, pruneChunk)
			if err != nil {
				return removed, s.fail(ctx, "prune dedupe keys", err)
			}
			if tag.RowsAffected() < pruneChunk {
				break
			}
		}
	}
	return removed, nil
}
