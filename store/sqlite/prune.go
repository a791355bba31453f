package sqlite

import (
	"context"
	"time"

	"github.com/crmhook/crmhook"
)

// pruneChunk is how many rows one pruning statement removes. Each chunk is
// its own short write, so inserts interleave with a large prune instead of
// waiting behind it.
const pruneChunk = 1000

// Prune removes the events received and fully delivered before
// p.DeliveredBefore (with their deliveries; an event with a pending or dead
// delivery stays), and the dedupe keys whose window ended before p.Now. A
// zero time prunes nothing of its kind. It returns how many events it removed.
func (s *Store) Prune(ctx context.Context, p crmhook.PruneParams) (int, error) {
	if err := s.checkOpen("prune"); err != nil {
		return 0, err
	}
	removed := 0
	if !p.DeliveredBefore.IsZero() {
		before := p.DeliveredBefore.UnixMicro()
		for {
			n, err := s.pruneChunk(ctx, "prune events", `DELETE FROM events WHERE id IN (
				SELECT e.id FROM events e
				WHERE e.received_at < ?1
					AND NOT EXISTS (
						SELECT 1 FROM deliveries d
						WHERE d.event_id = e.id
							AND (d.state <> 'delivered' OR d.delivered_at IS NULL OR d.delivered_at >= ?1))
				LIMIT ?2)`, before, pruneChunk)
			if err != nil {
				return removed, err
			}
			removed += int(n)
			if n < pruneChunk {
				break
			}
		}
	}
	if !p.Now.IsZero() {
		for {
			n, err := s.pruneChunk(ctx, "prune dedupe keys", `DELETE FROM dedupe_keys WHERE key IN (
				SELECT key FROM dedupe_keys WHERE expires_at < ? LIMIT ?)`, p.Now.UnixMicro(), pruneChunk)
			if err != nil {
				return removed, err
			}
			if n < pruneChunk {
				break
			}
		}
	}
	return removed, nil
}

// pruneChunk runs one pruning statement through the writer and returns how
// many rows it removed.
func (s *Store) pruneChunk(ctx context.Context, op, q string, args ...any) (int64, error) {
	var n int64
	err := s.do(ctx, &writeOp{name: op, durable: true,
		run: func(ctx context.Context, tx *groupTx, _ time.Time) error {
			res, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		}})
	return n, err
}
