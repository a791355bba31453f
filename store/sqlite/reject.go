package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
)

// Reject keeps a rejection. An empty Event.ID gets a fresh one (the id the
// event keeps when released), a zero RejectedAt the store's now. ReleasedAt
// is ignored: a rejection starts unreleased.
func (s *Store) Reject(ctx context.Context, r crmhook.Rejection) (int64, error) {
	if err := s.checkOpen("reject"); err != nil {
		return 0, err
	}
	r, payload := sqlstore.NewRejection(r, s.now)
	ev := r.Event
	var id int64
	err := s.do(ctx, &writeOp{name: "reject", durable: true,
		run: func(ctx context.Context, tx *groupTx, _ time.Time) error {
			res, err := tx.stmt(ctx, s.stmts.reject).ExecContext(ctx,
				ev.ID, ev.Source, string(ev.Provider), ev.Type, ev.DedupeKey, nullMicros(ev.OccurredAt),
				micros(ev.ReceivedAt), payload, r.Reason, r.RejectedAt.UnixMicro())
			if err != nil {
				return err
			}
			id, err = res.LastInsertId()
			return err
		}})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// ListRejections lists rejections newest first (by RejectedAt). Since is
// inclusive, Until exclusive, both on RejectedAt.
func (s *Store) ListRejections(ctx context.Context, f crmhook.RejectionFilter) ([]crmhook.Rejection, error) {
	if err := s.checkOpen("list rejections"); err != nil {
		return nil, err
	}
	q, args := listRejectionsQuery(f)
	rows, err := s.readDB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.fail(ctx, "list rejections", err)
	}
	defer rows.Close()
	rs, err := sqlstore.Collect(rows, func(rows *sql.Rows) (crmhook.Rejection, error) {
		var (
			r                  crmhook.Rejection
			rejected, released sql.NullInt64
			sc                 = prefixScanner{rows, []any{&r.ID, &r.Reason, &rejected, &released}}
		)
		ev, err := scanEvent(sc)
		if err != nil {
			return crmhook.Rejection{}, err
		}
		r.Event = ev
		r.RejectedAt = fromMicros(rejected)
		r.ReleasedAt = fromMicros(released)
		return r, nil
	})
	if err != nil {
		return nil, s.fail(ctx, "list rejections", err)
	}
	return rs, nil
}

// listRejectionsQuery is ListRejections' statement for f.
func listRejectionsQuery(f crmhook.RejectionFilter) (string, []any) {
	where, args := []string{"1 = 1"}, []any{}
	if f.ID != 0 {
		where = append(where, "id = ?")
		args = append(args, f.ID)
	}
	if f.Source != "" {
		where = append(where, "source = ?")
		args = append(args, f.Source)
	}
	if f.Released != nil {
		if *f.Released {
			where = append(where, "released_at IS NOT NULL")
		} else {
			where = append(where, "released_at IS NULL")
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "rejected_at >= ?")
		args = append(args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where = append(where, "rejected_at < ?")
		args = append(args, f.Until.UnixMicro())
	}
	args = append(args, sqlstore.ListLimit(f.Limit))
	return `SELECT id, reason, rejected_at, released_at,
			event_id, source, provider, type, dedupe_key, occurred_at, received_at, payload
		FROM rejections WHERE ` + strings.Join(where, " AND ") + ` ORDER BY rejected_at DESC, id DESC LIMIT ?`, args
}

// prefixScanner scans leading columns into prefix before the caller's.
type prefixScanner struct {
	sc     scanner
	prefix []any
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.sc.Scan(append(append([]any(nil), p.prefix...), dest...)...)
}
