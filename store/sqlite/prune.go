package sqlite

import (
	"context"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
)

// Prune removes what retention no longer needs, as sqlstore.Prune says,
// one chunk at a time; each chunk is its own short write through the
// writer, so inserts interleave with a large prune instead of waiting
// behind it.
func (s *Store) Prune(ctx context.Context, p crmhook.PruneParams) (int, error) {
	if err := s.checkOpen("prune"); err != nil {
		return 0, err
	}
	return sqlstore.Prune(ctx, p, s.pruneEvents, s.pruneDedupeKeys)
}

func (s *Store) pruneEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	n, _, err := s.exec(ctx, "prune events", true, `DELETE FROM events WHERE id IN (
		SELECT e.id FROM events e
		WHERE e.received_at < ?1
			AND NOT EXISTS (
				SELECT 1 FROM deliveries d
				WHERE d.event_id = e.id
					AND (d.state <> 'delivered' OR d.delivered_at IS NULL OR d.delivered_at >= ?1))
		LIMIT ?2)`, before.UnixMicro(), limit)
	return n, err
}

func (s *Store) pruneDedupeKeys(ctx context.Context, now time.Time, limit int) (int64, error) {
	n, _, err := s.exec(ctx, "prune dedupe keys", true, `DELETE FROM dedupe_keys WHERE key IN (
		SELECT key FROM dedupe_keys WHERE expires_at < ? LIMIT ?)`, now.UnixMicro(), limit)
	return n, err
}
