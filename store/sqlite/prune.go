package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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

// pruneEvents removes one chunk of events retention no longer needs. An
// event's dedupe key lives on its row (dedupe_until): one whose window is
// still open when the event goes is kept in dedupe_keys until it ends, so
// that a redelivery is still recognised.
func (s *Store) pruneEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	var n int64
	err := s.do(ctx, &writeOp{name: "prune events", durable: true, multi: true,
		run: func(ctx context.Context, tx *groupTx, now time.Time) error {
			rows, err := tx.QueryContext(ctx, `SELECT e.id FROM events e
				WHERE e.received_at < ?1
					AND NOT EXISTS (
						SELECT 1 FROM deliveries d
						WHERE d.event_id = e.id
							AND (d.state <> 'delivered' OR d.delivered_at IS NULL OR d.delivered_at >= ?1))
				LIMIT ?2`, before.UnixMicro(), limit)
			if err != nil {
				return err
			}
			ids, err := sqlstore.Collect(rows, func(rows *sql.Rows) (id string, err error) {
				err = rows.Scan(&id)
				return id, err
			})
			if err != nil || len(ids) == 0 {
				return err
			}
			set, err := json.Marshal(ids)
			if err != nil {
				return fmt.Errorf("chunk: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO dedupe_keys (key, event_id, expires_at)
				SELECT dedupe_key, id, dedupe_until FROM events
				WHERE id IN (SELECT value FROM json_each(?1)) AND dedupe_key <> '' AND dedupe_until > ?2`,
				string(set), now.UnixMicro()); err != nil {
				return fmt.Errorf("keep open dedupe keys: %w", err)
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))`, string(set))
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		}})
	return n, err
}

func (s *Store) pruneDedupeKeys(ctx context.Context, now time.Time, limit int) (int64, error) {
	n, _, err := s.exec(ctx, "prune dedupe keys", true, `DELETE FROM dedupe_keys WHERE key IN (
		SELECT key FROM dedupe_keys WHERE expires_at < ? LIMIT ?)`, now.UnixMicro(), limit)
	return n, err
}
