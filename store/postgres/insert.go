package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/jackc/pgx/v5"
)

// insertEventSQL stores one event in one statement. The dedupe key is
// claimed first by an atomic upsert: a new key is inserted, an expired one
// is taken over, a live one is left alone, which RETURNING reports as no
// row; the event and its deliveries are inserted only if the key was
// claimed (or there is none). Never check-then-insert: the upsert waits for
// a concurrent transaction holding the same key and then decides on its
// committed row. Being one statement, a failure (a reused event id) leaves
// nothing, not even the key.
//
// $1 id, $2 source, $3 provider, $4 type, $5 dedupe key, $6 occurred at,
// $7 received at, $8 payload, $9 dedupe until, $10 now, $11 sinks.
const insertEventSQL = `WITH k AS (
	INSERT INTO dedupe_keys (key, event_id, expires_at)
	SELECT $5::text, $1::text, $9::timestamptz WHERE $5::text <> ''
	ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, expires_at = excluded.expires_at
		WHERE dedupe_keys.expires_at <= $10::timestamptz
	RETURNING 1
), e AS (
	INSERT INTO events (id, source, provider, type, dedupe_key, occurred_at, received_at, payload)
	SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::timestamptz, $7::timestamptz, $8::bytea
	WHERE $5::text = '' OR EXISTS (SELECT 1 FROM k)
	RETURNING id
), d AS (
	INSERT INTO deliveries (event_id, sink, state, attempts, next_attempt_at, created_at, updated_at, event_received_at)
	SELECT e.id, s.sink, 'pending', 0, $10::timestamptz, $10::timestamptz, $10::timestamptz, $7::timestamptz
	FROM e CROSS JOIN unnest($11::text[]) WITH ORDINALITY AS s (sink, n)
	ORDER BY s.n
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM e)`

const keyOwnerSQL = `SELECT event_id FROM dedupe_keys WHERE key = $1`

// Insert commits the event, its deliveries and its dedupe key in one
// transaction, shared with the other inserts queued at the same moment, and
// returns after the commit. An empty Event.ID gets a fresh one, a zero
// ReceivedAt the store's now. An empty DedupeKey is never a duplicate.
func (s *Store) Insert(ctx context.Context, ne crmhook.NewEvent) (crmhook.InsertResult, error) {
	if ne.Event.ID == "" {
		ne.Event.ID = crmhook.NewEventID()
	}
	return s.submit(ctx, &insertRequest{ev: ne})
}

// ReleaseRejection inserts the rejected event, received now, with
// deliveries to sinks, and marks the rejection released, in one transaction.
// If its dedupe key is taken meanwhile, the result is a duplicate and the
// rejection is still marked released. Releasing twice is an error.
func (s *Store) ReleaseRejection(ctx context.Context, id int64, sinks []string, dedupeUntil time.Time) (crmhook.InsertResult, error) {
	return s.submit(ctx, &insertRequest{
		ev:          crmhook.NewEvent{Sinks: sinks, DedupeUntil: dedupeUntil},
		rejectionID: id,
	})
}

// eventArgs are insertEventSQL's arguments for ne.
func eventArgs(ne crmhook.NewEvent, now time.Time) []any {
	ev := ne.Event
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = now
	}
	payload := []byte(ev.Payload)
	if payload == nil {
		payload = []byte{}
	}
	sinks := make([]string, 0, len(ne.Sinks))
	for _, sink := range ne.Sinks {
		if !slices.Contains(sinks, sink) {
			sinks = append(sinks, sink)
		}
	}
	until := ne.DedupeUntil
	if until.IsZero() {
		until = time.Unix(0, 0) // as SQLite stores it: a window already over
	}
	return []any{ev.ID, ev.Source, string(ev.Provider), ev.Type, ev.DedupeKey,
		nullTime(ev.OccurredAt), ev.ReceivedAt, payload, until, now, sinks}
}

func insertOne(ctx context.Context, tx pgx.Tx, ne crmhook.NewEvent, now time.Time) (crmhook.InsertResult, error) {
	var stored bool
	if err := tx.QueryRow(ctx, insertEventSQL, eventArgs(ne, now)...).Scan(&stored); err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("event: %w", err)
	}
	if stored {
		return crmhook.InsertResult{EventID: ne.Event.ID}, nil
	}
	var owner string
	if err := tx.QueryRow(ctx, keyOwnerSQL, ne.Event.DedupeKey).Scan(&owner); err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("dedupe key owner: %w", err)
	}
	return crmhook.InsertResult{Duplicate: true, EventID: owner}, nil
}

func (s *Store) releaseOne(ctx context.Context, tx pgx.Tx, r *insertRequest, now time.Time) (crmhook.InsertResult, error) {
	var released *time.Time
	ev, err := scanEvent(tx.QueryRow(ctx, `SELECT `+rejectionEventColumns+`, released_at
		FROM rejections WHERE id = $1 FOR UPDATE`, r.rejectionID), &released)
	if errors.Is(err, pgx.ErrNoRows) {
		return crmhook.InsertResult{}, fmt.Errorf("rejection %d: %w", r.rejectionID, crmhook.ErrNotFound)
	}
	if err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("rejection %d: %w", r.rejectionID, err)
	}
	if released != nil {
		return crmhook.InsertResult{}, fmt.Errorf("rejection %d: %w", r.rejectionID, errAlreadyReleased)
	}
	ev.ReceivedAt = now
	ne := r.ev
	ne.Event = ev
	res, err := insertOne(ctx, tx, ne, now)
	if err != nil {
		return crmhook.InsertResult{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE rejections SET released_at = $1 WHERE id = $2`, now, r.rejectionID); err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("mark rejection %d released: %w", r.rejectionID, err)
	}
	return res, nil
}
