package sqlstore

import (
	"context"
	"time"

	"github.com/crmhook/crmhook"
)

// PruneChunk is how many rows one pruning statement removes. Each chunk is
// its own short write, so a large prune neither holds the SQLite writer
// nor Postgres's locks for long.
const PruneChunk = 1000

// PruneFunc removes at most limit rows older than t and says how many it
// removed.
type PruneFunc func(ctx context.Context, t time.Time, limit int) (int64, error)

// Prune carries out Store.Prune with a store's statements, one chunk at a
// time until a chunk comes back short: events removes the events received
// and fully delivered before p.DeliveredBefore (their deliveries go with
// them), dedupeKeys the keys whose window ended before p.Now. A zero time
// prunes nothing of its kind. It returns how many events it removed, also
// when a chunk fails.
func Prune(ctx context.Context, p crmhook.PruneParams, events, dedupeKeys PruneFunc) (int, error) {
	removed := 0
	if !p.DeliveredBefore.IsZero() {
		for {
			n, err := events(ctx, p.DeliveredBefore, PruneChunk)
			if err != nil {
				return removed, err
			}
			removed += int(n)
			if n < PruneChunk {
				break
			}
		}
	}
	if !p.Now.IsZero() {
		for {
			n, err := dedupeKeys(ctx, p.Now, PruneChunk)
			if err != nil {
				return removed, err
			}
			if n < PruneChunk {
				break
			}
		}
	}
	return removed, nil
}
