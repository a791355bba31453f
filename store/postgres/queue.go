package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
	"github.com/jackc/pgx/v5"
)

// claimSQL leases due pending deliveries in one statement. FOR UPDATE SKIP
// LOCKED makes concurrent claimers, in this process or another, pass over
// the rows another claim is leasing instead of waiting for them or leasing
// them twice; the lease columns then keep them out of later claims until
// the lease runs out. The event rides along through the UPDATE's FROM.
//
// $1 leased until, $2 owner, $3 now, $4 sinks (empty: all), $5 limit.
const claimSQL = `WITH due AS (
	SELECT id FROM deliveries
	WHERE state = 'pending' AND next_attempt_at <= $3
		AND (leased_until IS NULL OR leased_until <= $3)
		AND (cardinality($4::text[]) = 0 OR sink = ANY ($4::text[]))
	ORDER BY next_attempt_at, id
	LIMIT $5
	FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d
SET leased_until = $1, lease_token = gen_random_uuid()::text, lease_owner = $2
FROM due, events e
WHERE d.id = due.id AND e.id = d.event_id
RETURNING d.id, d.event_id, d.sink, d.state, d.attempts, d.next_attempt_at, d.leased_until, d.last_error,
	d.created_at, d.updated_at, d.delivered_at, d.lease_token,
	e.id, e.source, e.provider, e.type, e.dedupe_key, e.occurred_at, e.received_at, e.payload`

// Claim leases due pending deliveries, oldest due first, each under a fresh
// random lease token.
func (s *Store) Claim(ctx context.Context, p crmhook.ClaimParams) ([]crmhook.Claim, error) {
	if err := s.checkOpen("claim"); err != nil {
		return nil, err
	}
	limit, err := sqlstore.ClaimLimit(p)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim: %w", err)
	}
	sinks := p.Sinks
	if sinks == nil {
		sinks = []string{}
	}
	now := s.now()
	rows, err := s.queue.Query(ctx, claimSQL, now.Add(p.Lease), p.Owner, now, sinks, limit)
	if err != nil {
		return nil, s.fail(ctx, "claim", err)
	}
	defer rows.Close()
	var claims []crmhook.Claim
	for rows.Next() {
		var (
			c  crmhook.Claim
			es eventScan
		)
		if c.Delivery, err = scanDelivery(rows, append([]any{&c.Lease}, es.dest()...)...); err != nil {
			return nil, s.fail(ctx, "claim", err)
		}
		c.Event = es.event()
		claims = append(claims, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "claim", err)
	}
	sqlstore.SortClaims(claims)
	return claims, nil
}

// Complete marks a claimed delivery delivered. Completes are group-committed
// like inserts: a completer goroutine takes every Complete waiting and
// records them with one statement in one transaction (one round trip), not
// a transaction each.
func (s *Store) Complete(ctx context.Context, c crmhook.Claim) error {
	if err := s.checkOpen("complete"); err != nil {
		return err
	}
	r := &completeRequest{ctx: ctx, claim: c, reply: make(chan error, 1)}
	recErr, err := sqlstore.Submit(ctx, s.completes, r, r.reply)
	if err != nil {
		return fmt.Errorf("postgres: complete: %w", err)
	}
	if errors.Is(recErr, errNotBatched) {
		// Not recorded by the batch: its lease was lost or the delivery is
		// gone, which finish tells apart (or the batch failed: try alone).
		return s.finish(ctx, "complete", c,
			`state = 'delivered', attempts = attempts + 1, delivered_at = $3, updated_at = $3`, s.now())
	}
	return recErr
}

// completeRequest is one Complete waiting for a completer.
type completeRequest struct {
	ctx   context.Context
	claim crmhook.Claim
	reply chan error
}

// errNotBatched tells Complete that the batch did not record its claim.
var errNotBatched = errors.New("not recorded by the batch")

// completeBatchSQL marks delivered every delivery of the pairs ($2 ids, $3
// lease tokens) whose claim still holds its lease, and returns their ids.
const completeBatchSQL = `UPDATE deliveries d
SET leased_until = NULL, lease_token = NULL, lease_owner = NULL,
	state = 'delivered', attempts = d.attempts + 1, delivered_at = $1, updated_at = $1
FROM unnest($2::bigint[], $3::text[]) AS done (id, token)
WHERE d.id = done.id AND d.lease_token = done.token AND d.state = 'pending'
RETURNING d.id`

// runCompleter is one completer goroutine: one batch at a time until Close.
func (s *Store) runCompleter() {
	defer s.writersDone.Done()
	s.completes.Run(s.completeGroup, func(r *completeRequest) {
		r.reply <- fmt.Errorf("postgres: complete: %w", crmhook.ErrClosed)
	})
}

// completeGroup records first and the Completes queued behind it in one
// statement on the queue pool (see Config.DurableQueueCommits) and
// answers each: nil when recorded, errNotBatched for the caller to sort
// out alone. Rows are locked in id order, so that two batches never
// deadlock.
func (s *Store) completeGroup(first *completeRequest) {
	group := s.completes.Drain([]*completeRequest{first}, s.cfg.BatchMax)
	ctx := context.Background()
	ids := make([]int64, 0, len(group))
	tokens := make([]string, 0, len(group))
	seen := make(map[int64]*completeRequest, len(group))
	slices.SortStableFunc(group, func(a, b *completeRequest) int { return cmp.Compare(a.claim.Delivery.ID, b.claim.Delivery.ID) })
	for _, r := range group {
		if r.ctx.Err() != nil {
			continue
		}
		if _, dup := seen[r.claim.Delivery.ID]; dup {
			continue // the second Complete of one delivery finds its lease lost alone
		}
		seen[r.claim.Delivery.ID] = r
		ids = append(ids, r.claim.Delivery.ID)
		tokens = append(tokens, r.claim.Lease)
	}
	done := make(map[*completeRequest]bool, len(ids))
	if len(ids) > 0 {
		rows, err := s.queue.Query(ctx, completeBatchSQL, s.now(), ids, tokens)
		if err == nil {
			for rows.Next() {
				var id int64
				if err = rows.Scan(&id); err != nil {
					break
				}
				done[seen[id]] = true
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		if err != nil {
			// Each tries alone, and hears its own error.
			clear(done)
		}
	}
	for _, r := range group {
		if done[r] {
			r.reply <- nil
		} else {
			r.reply <- errNotBatched
		}
	}
}

// Retry records a failed attempt and schedules the next one at next (now
// when zero).
func (s *Store) Retry(ctx context.Context, c crmhook.Claim, next time.Time, lastErr string) error {
	now := s.now()
	if next.IsZero() {
		next = now
	}
	return s.finish(ctx, "retry", c,
		`attempts = attempts + 1, next_attempt_at = $3, last_error = $4, updated_at = $5`,
		next, sqlstore.TruncateLastError(lastErr), now)
}

// Kill records a failed attempt and moves the delivery to the dead letters.
func (s *Store) Kill(ctx context.Context, c crmhook.Claim, lastErr string) error {
	return s.finish(ctx, "kill", c,
		`state = 'dead', attempts = attempts + 1, last_error = $3, updated_at = $4`,
		sqlstore.TruncateLastError(lastErr), s.now())
}

// Release gives a claim back, claimable at once, without counting an
// attempt, and wakes the replicas' dispatchers to take it.
func (s *Store) Release(ctx context.Context, c crmhook.Claim) error {
	if err := s.finish(ctx, "release", c, ""); err != nil {
		return err
	}
	s.notify(ctx)
	return nil
}

// finish applies set ($3 on) to the claimed delivery if the claim still
// holds its lease, and ends the lease. Otherwise it tells a lost lease from
// an unknown delivery.
func (s *Store) finish(ctx context.Context, op string, c crmhook.Claim, set string, args ...any) error {
	if err := s.checkOpen(op); err != nil {
		return err
	}
	q := `UPDATE deliveries SET leased_until = NULL, lease_token = NULL, lease_owner = NULL`
	if set != "" {
		q += ", " + set
	}
	q += ` WHERE id = $1 AND lease_token = $2 AND state = 'pending'`
	tag, err := s.queue.Exec(ctx, q, append([]any{c.Delivery.ID, c.Lease}, args...)...)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var one int
	err = s.pool.QueryRow(ctx, `SELECT 1 FROM deliveries WHERE id = $1`, c.Delivery.ID).Scan(&one)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("postgres: %s: delivery %d: %w", op, c.Delivery.ID, crmhook.ErrNotFound)
	case err != nil:
		return s.fail(ctx, op, err)
	}
	return fmt.Errorf("postgres: %s: delivery %d: %w", op, c.Delivery.ID, crmhook.ErrLeaseLost)
}

// notify wakes every replica's subscribers. Best effort: a lost wake-up
// costs one poll interval.
func (s *Store) notify(ctx context.Context) {
	_, _ = s.queue.Exec(ctx, `SELECT pg_notify($1, '')`, s.channel)
}

// Replay makes the selected delivered or dead deliveries pending again, due
// now, attempts reset; pending deliveries are never selected. A zero Limit
// replays all that match.
func (s *Store) Replay(ctx context.Context, f crmhook.DeliveryFilter) (int, error) {
	if err := s.checkOpen("replay"); err != nil {
		return 0, err
	}
	now := s.now()
	w := &where{args: []any{now}}
	deliveryWhere(w, f)
	w.add(`state IN ('delivered', 'dead')`)
	q := `UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $1,
			delivered_at = NULL, leased_until = NULL, lease_token = NULL, lease_owner = NULL
		WHERE id IN (SELECT id FROM deliveries WHERE ` + w.String() + ` ORDER BY id`
	if f.Limit > 0 {
		q += ` LIMIT ` + w.arg(f.Limit)
	}
	q += `)`
	tag, err := s.pool.Exec(ctx, q, w.args...)
	if err != nil {
		return 0, s.fail(ctx, "replay", err)
	}
	if tag.RowsAffected() > 0 {
		s.notify(ctx)
	}
	return int(tag.RowsAffected()), nil
}
