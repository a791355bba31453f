package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
)

// claimSQL leases due pending deliveries and returns them with their fresh
// lease tokens. The limit is "?6 + 0", not "?6": SQLite's planner reads a
// bare parameter's value in LIMIT, which makes the prepared statement be
// re-prepared (parsed and planned again) whenever the limit changes, as it
// does from one claim to the next.
const claimSQL = `UPDATE deliveries
	SET leased_until = ?1, lease_token = lower(hex(randomblob(16))), lease_owner = ?2
	WHERE id IN (
		SELECT id FROM deliveries
		WHERE state = 'pending' AND next_attempt_at <= ?3
			AND (leased_until IS NULL OR leased_until <= ?3)
			AND (?4 = 0 OR sink IN (SELECT value FROM json_each(?5)))
		ORDER BY next_attempt_at, id
		LIMIT ?6 + 0)
	RETURNING ` + deliveryColumns + `, lease_token`

// Claim leases due pending deliveries, oldest due first, in one immediate
// transaction on the write connection (shared with the other writes queued
// at the same moment): no other claim, in this process or another, can
// interleave between choosing a delivery and leasing it. Each claim gets a
// fresh random lease token.
func (s *Store) Claim(ctx context.Context, p crmhook.ClaimParams) ([]crmhook.Claim, error) {
	if err := s.checkOpen("claim"); err != nil {
		return nil, err
	}
	limit, err := sqlstore.ClaimLimit(p)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	sinks, err := json.Marshal(p.Sinks)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	var claims []crmhook.Claim
	err = s.do(ctx, &writeOp{name: "claim", multi: true,
		run: func(ctx context.Context, tx *groupTx, now time.Time) (err error) {
			claims, err = s.claim(ctx, tx, p, limit, string(sinks), now)
			return err
		}})
	if err != nil || len(claims) == 0 {
		return nil, err
	}
	if err := s.claimEvents(ctx, claims); err != nil {
		err = s.fail(ctx, "claim: events", err)
		// Nobody will work on these leases: give them back now rather
		// than when they run out.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, c := range claims {
			_ = s.Release(rctx, c) // best effort: the lease runs out anyway
		}
		return nil, err
	}
	return claims, nil
}

func (s *Store) claim(ctx context.Context, tx *groupTx, p crmhook.ClaimParams, limit int, sinks string, now time.Time) ([]crmhook.Claim, error) {
	rows, err := tx.stmt(ctx, s.stmts.claim).QueryContext(ctx,
		now.Add(p.Lease).UnixMicro(), p.Owner, now.UnixMicro(), len(p.Sinks), sinks, limit)
	if err != nil {
		return nil, err
	}
	var claims []crmhook.Claim
	for rows.Next() {
		var c crmhook.Claim
		if c.Delivery, err = scanDelivery(rows, &c.Lease); err != nil {
			rows.Close()
			return nil, err
		}
		claims = append(claims, c)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	if len(claims) == 0 {
		return nil, nil
	}
	sqlstore.SortClaims(claims)
	return claims, nil
}

// claimEvents fills in the claims' events. It runs after the claim's commit,
// on the read pool, so that the writer, which every write waits for, does
// not spend its time on reads: an event never changes, and one whose
// delivery is pending is never pruned.
func (s *Store) claimEvents(ctx context.Context, claims []crmhook.Claim) error {
	ids := make([]string, 0, len(claims))
	for _, c := range claims {
		ids = append(ids, c.Delivery.EventID)
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	events := make(map[string]crmhook.Event, len(ids))
	rows, err := s.claimEventsStmt.QueryContext(ctx, string(idsJSON))
	if err != nil {
		return err
	}
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			rows.Close()
			return err
		}
		events[ev.ID] = ev
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	for i := range claims {
		claims[i].Event = events[claims[i].Delivery.EventID]
	}
	return nil
}

// finishSQL is the statement that applies set (with its own parameters
// first) to a claimed delivery if the claim still holds its lease, and ends
// the lease.
func finishSQL(set string) string {
	q := `UPDATE deliveries SET leased_until = NULL, lease_token = NULL, lease_owner = NULL`
	if set != "" {
		q += ", " + set
	}
	return q + ` WHERE id = ? AND lease_token = ? AND state = 'pending'`
}

// Complete marks a claimed delivery delivered.
func (s *Store) Complete(ctx context.Context, c crmhook.Claim) error {
	return s.finish(ctx, "complete", c, s.stmts.complete, func(now time.Time) []any {
		return []any{now.UnixMicro(), now.UnixMicro()}
	})
}

// Retry records a failed attempt and schedules the next one at next (now
// when zero).
func (s *Store) Retry(ctx context.Context, c crmhook.Claim, next time.Time, lastErr string) error {
	lastErr = sqlstore.TruncateLastError(lastErr)
	return s.finish(ctx, "retry", c, s.stmts.retry, func(now time.Time) []any {
		if next.IsZero() {
			next = now
		}
		return []any{next.UnixMicro(), lastErr, now.UnixMicro()}
	})
}

// Kill records a failed attempt and moves the delivery to the dead letters.
func (s *Store) Kill(ctx context.Context, c crmhook.Claim, lastErr string) error {
	lastErr = sqlstore.TruncateLastError(lastErr)
	return s.finish(ctx, "kill", c, s.stmts.kill, func(now time.Time) []any {
		return []any{lastErr, now.UnixMicro()}
	})
}

// Release gives a claim back, claimable at once, without counting an attempt.
func (s *Store) Release(ctx context.Context, c crmhook.Claim) error {
	return s.finish(ctx, "release", c, s.stmts.releaseClaim, func(time.Time) []any { return nil })
}

// finish runs one of the finishSQL statements with the arguments args gives
// for the writer's now. If the claim no longer holds its lease, it tells a
// lost lease from an unknown delivery. These are queue-state writes: they
// share a group's commit but do not ask for its fsync (see commitGroup).
func (s *Store) finish(ctx context.Context, op string, c crmhook.Claim, stmt *sql.Stmt, args func(now time.Time) []any) error {
	return s.do(ctx, &writeOp{name: op,
		run: func(ctx context.Context, tx *groupTx, now time.Time) error {
			res, err := tx.stmt(ctx, stmt).ExecContext(ctx, append(args(now), c.Delivery.ID, c.Lease)...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n == 1 {
				return nil
			}
			var one int
			err = tx.stmt(ctx, s.stmts.deliveryExists).QueryRowContext(ctx, c.Delivery.ID).Scan(&one)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("delivery %d: %w", c.Delivery.ID, crmhook.ErrNotFound)
			case err != nil:
				return err
			}
			return fmt.Errorf("delivery %d: %w", c.Delivery.ID, crmhook.ErrLeaseLost)
		}})
}

// Replay makes the selected delivered or dead deliveries pending again, due
// now, attempts reset; pending deliveries are never selected. A zero Limit
// replays all that match.
func (s *Store) Replay(ctx context.Context, f crmhook.DeliveryFilter) (int, error) {
	if err := s.checkOpen("replay"); err != nil {
		return 0, err
	}
	where, args := deliveryWhere(f)
	where = append(where, `state IN ('delivered', 'dead')`)
	limit := f.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	q := `UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?,
			delivered_at = NULL, leased_until = NULL, lease_token = NULL, lease_owner = NULL
		WHERE id IN (SELECT id FROM deliveries WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id LIMIT ?)`
	var n int64
	err := s.do(ctx, &writeOp{name: "replay", durable: true,
		run: func(ctx context.Context, tx *groupTx, now time.Time) error {
			res, err := tx.ExecContext(ctx, q, append(append([]any{now.UnixMicro(), now.UnixMicro()}, args...), limit)...)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		}})
	if err != nil {
		return 0, err
	}
	return int(n), nil
}
