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
	"github.com/crmhook/crmhook/store/internal/storeutil"
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
	limit, err := storeutil.ClaimLimit(p)
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
	storeutil.SortClaims(claims)
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

// Complete marks a claimed delivery delivered. The Completes that share a
// group commit are recorded by one statement.
func (s *Store) Complete(ctx context.Context, c crmhook.Claim) error {
	return s.finishOp(ctx, "complete", &c, c, s.stmts.complete, func(now time.Time) []any {
		return []any{now.UnixMicro(), now.UnixMicro()}
	})
}

// completeBatchSQL marks delivered every delivery of ?2, a JSON array of
// ids, whose claim still holds its lease, and returns their ids: a group's
// Completes in one statement instead of one each. ?3 is the JSON array of
// their lease tokens: a token is 128 random bits drawn for one claim of one
// delivery, so a delivery whose token is among them holds the lease of the
// Complete that named it. (id IN (…) and +state make SQLite look each id
// up; a join with json_each, or the index on state, would scan every
// pending delivery.)
const completeBatchSQL = `UPDATE deliveries
	SET leased_until = NULL, lease_token = NULL, lease_owner = NULL,
		state = 'delivered', attempts = attempts + 1, delivered_at = ?1, updated_at = ?1
	WHERE id IN (SELECT value FROM json_each(?2)) AND +state = 'pending'
		AND lease_token IN (SELECT value FROM json_each(?3))
	RETURNING id`

// completeBatch records the Completes among ops in one statement and
// returns those it recorded. A Complete it did not record (its lease was
// lost, its delivery is gone) is left to its own run, which tells why.
func (s *Store) completeBatch(ctx context.Context, tx *groupTx, ops []*writeOp, now time.Time) (map[*writeOp]bool, error) {
	byID := make(map[int64][]*writeOp)
	ids := make([]int64, 0, len(ops))
	tokens := make([]string, 0, len(ops))
	for _, op := range ops {
		if op.complete == nil || op.ctx.Err() != nil {
			continue
		}
		id := op.complete.Delivery.ID
		if len(byID[id]) == 0 {
			ids = append(ids, id)
			tokens = append(tokens, op.complete.Lease)
		}
		byID[id] = append(byID[id], op)
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	tokensJSON, err := json.Marshal(tokens)
	if err != nil {
		return nil, err
	}
	rows, err := tx.stmt(ctx, s.stmts.completeBatch).QueryContext(ctx, now.UnixMicro(), string(idsJSON), string(tokensJSON))
	if err != nil {
		return nil, err
	}
	done := make(map[*writeOp]bool, len(ids))
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		// Of two Completes of one delivery, the first took the lease; the
		// second runs alone and finds it lost.
		done[byID[id][0]] = true
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	return done, nil
}

// Retry records a failed attempt and schedules the next one at next (now
// when zero).
func (s *Store) Retry(ctx context.Context, c crmhook.Claim, next time.Time, lastErr string) error {
	lastErr = storeutil.TruncateLastError(lastErr)
	return s.finish(ctx, "retry", c, s.stmts.retry, func(now time.Time) []any {
		if next.IsZero() {
			next = now
		}
		return []any{next.UnixMicro(), lastErr, now.UnixMicro()}
	})
}

// Kill records a failed attempt and moves the delivery to the dead letters.
func (s *Store) Kill(ctx context.Context, c crmhook.Claim, lastErr string) error {
	lastErr = storeutil.TruncateLastError(lastErr)
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
	return s.finishOp(ctx, op, nil, c, stmt, args)
}

// finishOp is finish for a Complete (complete set) or any other outcome.
func (s *Store) finishOp(ctx context.Context, op string, complete *crmhook.Claim, c crmhook.Claim, stmt *sql.Stmt, args func(now time.Time) []any) error {
	return s.do(ctx, &writeOp{name: op, complete: complete,
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
