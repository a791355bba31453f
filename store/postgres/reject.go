package postgres

import (
	"context"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
	"github.com/jackc/pgx/v5"
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
	err := s.pool.QueryRow(ctx, `INSERT INTO rejections
		(event_id, source, provider, type, dedupe_key, occurred_at, received_at, payload, reason, rejected_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
		ev.ID, ev.Source, string(ev.Provider), ev.Type, ev.DedupeKey, nullTime(ev.OccurredAt),
		ev.ReceivedAt, payload, r.Reason, r.RejectedAt).Scan(&id)
	if err != nil {
		return 0, s.fail(ctx, "reject", err)
	}
	return id, nil
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
		` ORDER BY rejected_at DESC, id DESC LIMIT ` + w.arg(sqlstore.ListLimit(f.Limit))
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, s.fail(ctx, "list rejections", err)
	}
	defer rows.Close()
	rs, err := sqlstore.Collect(rows, func(rows pgx.Rows) (crmhook.Rejection, error) {
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
