package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/crmhook/crmhook"
)

// DefaultClaimLimit is the Limit of a ClaimParams that gives none.
const DefaultClaimLimit = 1

// maxLastError bounds what a failure leaves in last_error.
const maxLastError = 4096

// Claim leases due pending deliveries, oldest due first, in one immediate
// transaction on the write connection: no other claim, in this process or
// another, can interleave between choosing a delivery and leasing it. Each
// claim gets a fresh random lease token.
func (s *Store) Claim(ctx context.Context, p crmhook.ClaimParams) ([]crmhook.Claim, error) {
	if err := s.checkOpen("claim"); err != nil {
		return nil, err
	}
	if p.Lease <= 0 {
		return nil, fmt.Errorf("sqlite: claim: lease must be positive, got %v", p.Lease)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultClaimLimit
	}
	sinks, err := json.Marshal(p.Sinks)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	now := s.now()

	tx, err := s.writeDB.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.failTx(ctx, "claim: begin", err)
	}
	defer tx.Rollback()

	rows, err := tx.QueryContext(ctx, `UPDATE deliveries
		SET leased_until = ?1, lease_token = lower(hex(randomblob(16))), lease_owner = ?2
		WHERE id IN (
			SELECT id FROM deliveries
			WHERE state = 'pending' AND next_attempt_at <= ?3
				AND (leased_until IS NULL OR leased_until <= ?3)
				AND (?4 = 0 OR sink IN (SELECT value FROM json_each(?5)))
			ORDER BY next_attempt_at, id
			LIMIT ?6)
		RETURNING `+deliveryColumns+`, lease_token`,
		now.Add(p.Lease).UnixMicro(), p.Owner, now.UnixMicro(), len(p.Sinks), string(sinks), limit)
	if err != nil {
		return nil, s.fail(ctx, "claim", err)
	}
	var claims []crmhook.Claim
	for rows.Next() {
		var c crmhook.Claim
		if c.Delivery, err = scanDelivery(rows, &c.Lease); err != nil {
			rows.Close()
			return nil, s.fail(ctx, "claim", err)
		}
		claims = append(claims, c)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, s.fail(ctx, "claim", err)
	}
	if len(claims) == 0 {
		return nil, nil
	}
	// RETURNING does not promise an order.
	sort.Slice(claims, func(i, j int) bool {
		a, b := claims[i].Delivery, claims[j].Delivery
		if !a.NextAttemptAt.Equal(b.NextAttemptAt) {
			return a.NextAttemptAt.Before(b.NextAttemptAt)
		}
		return a.ID < b.ID
	})

	ids := make([]string, 0, len(claims))
	for _, c := range claims {
		ids = append(ids, c.Delivery.EventID)
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	events := make(map[string]crmhook.Event, len(ids))
	rows, err = tx.QueryContext(ctx, `SELECT `+eventColumns+` FROM events WHERE id IN (SELECT value FROM json_each(?))`, string(idsJSON))
	if err != nil {
		return nil, s.fail(ctx, "claim: events", err)
	}
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			rows.Close()
			return nil, s.fail(ctx, "claim: events", err)
		}
		events[ev.ID] = ev
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, s.fail(ctx, "claim: events", err)
	}
	for i := range claims {
		claims[i].Event = events[claims[i].Delivery.EventID]
	}
	if err := tx.Commit(); err != nil {
		return nil, s.failTx(ctx, "claim: commit", err)
	}
	return claims, nil
}

// Complete marks a claimed delivery delivered.
func (s *Store) Complete(ctx context.Context, c crmhook.Claim) error {
	now := s.now().UnixMicro()
	return s.finish(ctx, "complete", c,
		`state = 'delivered', attempts = attempts + 1, delivered_at = ?, updated_at = ?`, now, now)
}

// Retry records a failed attempt and schedules the next one at next (now
// when zero).
func (s *Store) Retry(ctx context.Context, c crmhook.Claim, next time.Time, lastErr string) error {
	now := s.now()
	if next.IsZero() {
		next = now
	}
	return s.finish(ctx, "retry", c,
		`attempts = attempts + 1, next_attempt_at = ?, last_error = ?, updated_at = ?`,
		next.UnixMicro(), truncateError(lastErr), now.UnixMicro())
}

// Kill records a failed attempt and moves the delivery to the dead letters.
func (s *Store) Kill(ctx context.Context, c crmhook.Claim, lastErr string) error {
	now := s.now().UnixMicro()
	return s.finish(ctx, "kill", c,
		`state = 'dead', attempts = attempts + 1, last_error = ?, updated_at = ?`,
		truncateError(lastErr), now)
}

// Release gives a claim back, claimable at once, without counting an attempt.
func (s *Store) Release(ctx context.Context, c crmhook.Claim) error {
	return s.finish(ctx, "release", c, "")
}

// finish applies set to the claimed delivery if the claim still holds its
// lease, and ends the lease. Otherwise it tells a lost lease from an
// unknown delivery.
func (s *Store) finish(ctx context.Context, op string, c crmhook.Claim, set string, args ...any) error {
	if err := s.checkOpen(op); err != nil {
		return err
	}
	q := `UPDATE deliveries SET leased_until = NULL, lease_token = NULL, lease_owner = NULL`
	if set != "" {
		q += ", " + set
	}
	q += ` WHERE id = ? AND lease_token = ? AND state = 'pending'`
	res, err := s.writeDB.ExecContext(ctx, q, append(args, c.Delivery.ID, c.Lease)...)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.fail(ctx, op, err)
	}
	if n == 1 {
		return nil
	}
	var one int
	err = s.readDB.QueryRowContext(ctx, `SELECT 1 FROM deliveries WHERE id = ?`, c.Delivery.ID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: %s: delivery %d: %w", op, c.Delivery.ID, crmhook.ErrNotFound)
	case err != nil:
		return s.fail(ctx, op, err)
	}
	return fmt.Errorf("sqlite: %s: delivery %d: %w", op, c.Delivery.ID, crmhook.ErrLeaseLost)
}

func truncateError(s string) string {
	if len(s) <= maxLastError {
		return s
	}
	s = s[:maxLastError]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
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
	now := s.now().UnixMicro()
	q := `UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?,
			delivered_at = NULL, leased_until = NULL, lease_token = NULL, lease_owner = NULL
		WHERE id IN (SELECT id FROM deliveries WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id LIMIT ?)`
	res, err := s.writeDB.ExecContext(ctx, q, append(append([]any{now, now}, args...), limit)...)
	if err != nil {
		return 0, s.fail(ctx, "replay", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail(ctx, "replay", err)
	}
	return int(n), nil
}

// deliveryWhere turns a filter into conditions on deliveries. Since is
// inclusive and Until exclusive, both on CreatedAt.
func deliveryWhere(f crmhook.DeliveryFilter) (where []string, args []any) {
	where = []string{"1 = 1"}
	if f.State != "" {
		where = append(where, "state = ?")
		args = append(args, string(f.State))
	}
	if f.Sink != "" {
		where = append(where, "sink = ?")
		args = append(args, f.Sink)
	}
	if f.EventID != "" {
		where = append(where, "event_id = ?")
		args = append(args, f.EventID)
	}
	if f.Source != "" {
		where = append(where, "event_id IN (SELECT id FROM events WHERE source = ?)")
		args = append(args, f.Source)
	}
	if !f.Since.IsZero() {
		where = append(where, "created_at >= ?")
		args = append(args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where = append(where, "created_at < ?")
		args = append(args, f.Until.UnixMicro())
	}
	return where, args
}

// Reject keeps a rejection. An empty Event.ID gets a fresh one (the id the
// event keeps when released), a zero RejectedAt the store's now. ReleasedAt
// is ignored: a rejection starts unreleased.
func (s *Store) Reject(ctx context.Context, r crmhook.Rejection) (int64, error) {
	if err := s.checkOpen("reject"); err != nil {
		return 0, err
	}
	ev := r.Event
	if ev.ID == "" {
		ev.ID = crmhook.NewEventID()
	}
	if r.RejectedAt.IsZero() {
		r.RejectedAt = s.now()
	}
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = r.RejectedAt
	}
	payload := []byte(ev.Payload)
	if payload == nil {
		payload = []byte{}
	}
	res, err := s.writeDB.ExecContext(ctx, `INSERT INTO rejections
		(event_id, source, provider, type, dedupe_key, occurred_at, received_at, payload, reason, rejected_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ev.ID, ev.Source, string(ev.Provider), ev.Type, ev.DedupeKey, nullMicros(ev.OccurredAt),
		micros(ev.ReceivedAt), payload, r.Reason, r.RejectedAt.UnixMicro())
	if err != nil {
		return 0, s.fail(ctx, "reject", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, s.fail(ctx, "reject", err)
	}
	return id, nil
}
