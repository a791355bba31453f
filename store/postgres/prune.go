package postgres

import (
	"context"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
)

// Prune removes what retention no longer needs, as sqlstore.Prune says,
// one chunk at a time; each chunk is its own short transaction, so a large
// prune holds no locks for long. Replicas may prune at once: SKIP LOCKED
// keeps them off each other's chunks.
func (s *Store) Prune(ctx context.Context, p crmhook.PruneParams) (int, error) {
	if err := s.checkOpen("prune"); err != nil {
		return 0, err
	}
	return sqlstore.Prune(ctx, p, s.pruneEvents, s.pruneDedupeKeys)
}

func (s *Store) pruneEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM events WHERE id IN (
		SELECT e.id FROM events e
		WHERE e.received_at < $1
			AND NOT EXISTS (
				SELECT 1 FROM deliveries d
				WHERE d.event_id = e.id
					AND (d.state <> 'delivered' OR d.delivered_at IS NULL OR d.delivered_at >= $1))
		LIMIT $2
		FOR UPDATE SKIP LOCKED)`, before, limit)
	if err != nil {
		return 0, s.fail(ctx, "prune events", err)
	}
	return tag.RowsAffected(), nil
}

func (s *Store) pruneDedupeKeys(ctx context.Context, now time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM dedupe_keys WHERE key IN (
		SELECT key FROM dedupe_keys WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, now, limit)
	if err != nil {
		return 0, s.fail(ctx, "prune dedupe keys", err)
	}
	return tag.RowsAffected(), nil
}
