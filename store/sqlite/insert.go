package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/crmhook/crmhook"
)

// Insert commits the event, its deliveries and its dedupe key in one
// transaction, shared with the other writes queued at the same moment, and
// returns after the commit is on disk. An empty Event.ID gets a fresh one,
// a zero ReceivedAt the store's now. An empty DedupeKey is never a duplicate.
func (s *Store) Insert(ctx context.Context, ne crmhook.NewEvent) (crmhook.InsertResult, error) {
	if ne.Event.ID == "" {
		ne.Event.ID = crmhook.NewEventID()
	}
	var res crmhook.InsertResult
	err := s.do(ctx, &writeOp{name: "insert", durable: true, insert: true, multi: true,
		run: func(ctx context.Context, tx *groupTx, now time.Time) (err error) {
			res, err = s.insertOne(ctx, tx, ne, now)
			return err
		}})
	if err != nil {
		return crmhook.InsertResult{}, err
	}
	return res, nil
}

// ReleaseRejection inserts the rejected event, received now, with
// deliveries to sinks, and marks the rejection released, in one transaction.
// If its dedupe key is taken meanwhile, the result is a duplicate and the
// rejection is still marked released. Releasing twice is an error.
func (s *Store) ReleaseRejection(ctx context.Context, id int64, sinks []string, dedupeUntil time.Time) (crmhook.InsertResult, error) {
	var res crmhook.InsertResult
	ne := crmhook.NewEvent{Sinks: sinks, DedupeUntil: dedupeUntil}
	err := s.do(ctx, &writeOp{name: "release rejection", durable: true, insert: true, multi: true,
		run: func(ctx context.Context, tx *groupTx, now time.Time) (err error) {
			res, err = s.releaseOne(ctx, tx, id, ne, now)
			return err
		}})
	if err != nil {
		return crmhook.InsertResult{}, err
	}
	return res, nil
}

func (s *Store) insertOne(ctx context.Context, tx *groupTx, ne crmhook.NewEvent, now time.Time) (crmhook.InsertResult, error) {
	ev := ne.Event
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = now
	}
	dedupeUntil := int64(0)
	if ev.DedupeKey != "" {
		dedupeUntil = micros(ne.DedupeUntil)
	}
	payload := []byte(ev.Payload)
	if payload == nil {
		payload = []byte{}
	}
	// An Exec and its change count cost the writer less than a lookup
	// followed by an insert.
	res, err := tx.stmt(ctx, s.stmts.event).ExecContext(ctx,
		ev.ID, ev.Source, string(ev.Provider), ev.Type, ev.DedupeKey,
		nullMicros(ev.OccurredAt), micros(ev.ReceivedAt), payload, dedupeUntil, now.UnixMicro())
	var inserted int64
	if err == nil {
		inserted, err = res.RowsAffected()
	}
	if err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("event: %w", err)
	}
	if inserted == 0 {
		// The key is inside its window: a redelivery.
		var owner string
		if err := tx.stmt(ctx, s.stmts.liveKey).QueryRowContext(ctx, ev.DedupeKey, now.UnixMicro()).Scan(&owner); err != nil {
			return crmhook.InsertResult{}, fmt.Errorf("dedupe key owner: %w", err)
		}
		return crmhook.InsertResult{Duplicate: true, EventID: owner}, nil
	}
	seen := make(map[string]bool, len(ne.Sinks))
	for _, sink := range ne.Sinks {
		if seen[sink] {
			continue
		}
		seen[sink] = true
		if _, err := tx.stmt(ctx, s.stmts.delivery).ExecContext(ctx,
			ev.ID, sink, now.UnixMicro(), now.UnixMicro(), now.UnixMicro(), micros(ev.ReceivedAt)); err != nil {
			return crmhook.InsertResult{}, fmt.Errorf("delivery to %q: %w", sink, err)
		}
	}
	return crmhook.InsertResult{EventID: ev.ID}, nil
}

func (s *Store) releaseOne(ctx context.Context, tx *groupTx, rejectionID int64, ne crmhook.NewEvent, now time.Time) (crmhook.InsertResult, error) {
	var released sql.NullInt64
	ev, err := scanEvent(tx.QueryRowContext(ctx,
		`SELECT event_id, source, provider, type, dedupe_key, occurred_at, received_at, payload, released_at
		FROM rejections WHERE id = ?`, rejectionID), &released)
	if errors.Is(err, sql.ErrNoRows) {
		return crmhook.InsertResult{}, fmt.Errorf("rejection %d: %w", rejectionID, crmhook.ErrNotFound)
	}
	if err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("rejection %d: %w", rejectionID, err)
	}
	if released.Valid {
		return crmhook.InsertResult{}, fmt.Errorf("rejection %d: %w", rejectionID, errAlreadyReleased)
	}
	ev.ReceivedAt = now
	ne.Event = ev
	res, err := s.insertOne(ctx, tx, ne, now)
	if err != nil {
		return crmhook.InsertResult{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE rejections SET released_at = ? WHERE id = ?`, now.UnixMicro(), rejectionID); err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("mark rejection %d released: %w", rejectionID, err)
	}
	return res, nil
}
