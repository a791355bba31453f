package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	INSERT INTO deliveries (event_id, sink, state, attempts, next_attempt_at, created_at, updated_at)
	SELECT e.id, s.sink, 'pending', 0, $10::timestamptz, $10::timestamptz, $10::timestamptz
	FROM e CROSS JOIN unnest($11::text[]) WITH ORDINALITY AS s (sink, n)
	ORDER BY s.n
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM e)`

const keyOwnerSQL = `SELECT event_id FROM dedupe_keys WHERE key = $1`

// insertRequest is one Insert or ReleaseRejection waiting for a writer.
type insertRequest struct {
	ctx         context.Context
	ev          crmhook.NewEvent
	rejectionID int64 // non-zero: release this rejection instead of inserting ev.Event
	reply       chan insertReply
}

func (r *insertRequest) op() string {
	if r.rejectionID != 0 {
		return "release rejection"
	}
	return "insert"
}

type insertReply struct {
	res crmhook.InsertResult
	err error
}

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

// submit hands r to a writer and waits for its answer. If ctx ends while
// the writer has r, the call returns ctx's error though r may still commit:
// at least once, the provider's retry then meets the dedupe key.
func (s *Store) submit(ctx context.Context, r *insertRequest) (crmhook.InsertResult, error) {
	op := r.op()
	if err := s.checkOpen(op); err != nil {
		return crmhook.InsertResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	r.ctx = ctx
	r.reply = make(chan insertReply, 1)
	select {
	case s.inserts <- r:
	case <-s.closing:
		return crmhook.InsertResult{}, fmt.Errorf("postgres: %s: %w", op, crmhook.ErrClosed)
	case <-ctx.Done():
		return crmhook.InsertResult{}, fmt.Errorf("postgres: %s: %w", op, ctx.Err())
	}
	select {
	case rep := <-r.reply:
		return rep.res, rep.err
	case <-ctx.Done():
		return crmhook.InsertResult{}, fmt.Errorf("postgres: %s: %w", op, ctx.Err())
	}
}

// runWriter is one writer goroutine: one group commit at a time until Close.
func (s *Store) runWriter() {
	defer s.writersDone.Done()
	for {
		select {
		case first := <-s.inserts:
			s.commitGroup(first)
		case <-s.closing:
			for {
				select {
				case r := <-s.inserts:
					r.reply <- insertReply{err: fmt.Errorf("postgres: %s: %w", r.op(), crmhook.ErrClosed)}
				default:
					return
				}
			}
		}
	}
}

// commitGroup runs first and the requests already queued behind it (up to
// BatchMax) in one transaction and answers everyone. The fast path sends
// every insert as one pipelined batch; if any statement fails (a reused
// event id, a release), the group runs again one savepoint per request, so
// that a bad request fails alone. A failure of the store itself fails the
// whole group.
func (s *Store) commitGroup(first *insertRequest) {
	// The transaction is the writer's, not any caller's: one caller giving
	// up must not roll back the others' events.
	ctx := context.Background()
	start := time.Now()
	group := []*insertRequest{first}
drain:
	for len(group) < s.cfg.BatchMax {
		select {
		case r := <-s.inserts:
			group = append(group, r)
		default:
			break drain
		}
	}

	now := s.now()
	live := group[:0:0]
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.reply <- insertReply{err: fmt.Errorf("postgres: %s: %w", r.op(), err)}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	// Every transaction takes its dedupe keys' row locks in key order, so
	// two replicas' groups wait on each other instead of deadlocking. Stable:
	// of two inserts of one key in a group, the first to arrive wins.
	slices.SortStableFunc(live, func(a, b *insertRequest) int { return strings.Compare(a.ev.Event.DedupeKey, b.ev.Event.DedupeKey) })

	var replies []insertReply
	var err error
	for try := 0; ; try++ {
		replies, err = s.groupFast(ctx, live, now)
		if errors.Is(err, errSlowPath) {
			replies, err = s.groupSlow(ctx, live, now)
		}
		// Key order rules deadlocks out between groups, but not against
		// every other writer of the tables: one more try, then 503.
		if try > 0 || !isTransient(err) {
			break
		}
	}
	if err != nil {
		for _, r := range live {
			r.reply <- insertReply{err: err}
		}
		return
	}
	s.commits.Add(1)
	s.committedIns.Add(int64(len(live)))
	if s.cfg.OnCommit != nil {
		s.cfg.OnCommit(len(live), time.Since(start))
	}
	for i, r := range live {
		r.reply <- replies[i]
	}
}

// errSlowPath says the fast path gave up on the group without a verdict.
var errSlowPath = errors.New("retry one request at a time")

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

// groupFast inserts the group as one pipelined batch and commits. It
// returns errSlowPath when the group holds a release or a statement failed
// for a reason of its own.
func (s *Store) groupFast(ctx context.Context, group []*insertRequest, now time.Time) ([]insertReply, error) {
	for _, r := range group {
		if r.rejectionID != 0 {
			return nil, errSlowPath
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, s.failTx(ctx, "insert: begin", err)
	}
	defer tx.Rollback(context.Background())

	var b pgx.Batch
	for _, r := range group {
		b.Queue(insertEventSQL, eventArgs(r.ev, now)...)
	}
	b.Queue(`SELECT pg_notify($1, '')`, s.channel)
	br := tx.SendBatch(ctx, &b)
	replies := make([]insertReply, len(group))
	var dupes []int
	for i, r := range group {
		var stored bool
		if err := br.QueryRow().Scan(&stored); err != nil {
			br.Close()
			if isAboutRequest(err) {
				return nil, errSlowPath
			}
			return nil, s.fail(ctx, "insert", err)
		}
		if stored {
			replies[i].res = crmhook.InsertResult{EventID: r.ev.Event.ID}
		} else {
			dupes = append(dupes, i)
		}
	}
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, s.fail(ctx, "insert: notify", err)
	}
	if err := br.Close(); err != nil {
		return nil, s.fail(ctx, "insert", err)
	}

	// The owners of live keys, read after the batch: in READ COMMITTED each
	// statement sees what committed before it, including the transaction
	// whose key the upsert waited for.
	if len(dupes) > 0 {
		var ob pgx.Batch
		for _, i := range dupes {
			ob.Queue(keyOwnerSQL, group[i].ev.Event.DedupeKey)
		}
		obr := tx.SendBatch(ctx, &ob)
		for _, i := range dupes {
			var owner string
			if err := obr.QueryRow().Scan(&owner); err != nil {
				obr.Close()
				return nil, s.fail(ctx, "insert: dedupe key owner", err)
			}
			replies[i].res = crmhook.InsertResult{Duplicate: true, EventID: owner}
		}
		if err := obr.Close(); err != nil {
			return nil, s.fail(ctx, "insert: dedupe key owner", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, s.failTx(ctx, "insert: commit", err)
	}
	return replies, nil
}

// groupSlow runs each request of the group in its own savepoint, so that a
// request the database refuses fails alone, and commits the rest.
func (s *Store) groupSlow(ctx context.Context, group []*insertRequest, now time.Time) ([]insertReply, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, s.failTx(ctx, "insert: begin", err)
	}
	defer tx.Rollback(context.Background())

	replies := make([]insertReply, len(group))
	for i, r := range group {
		if _, err := tx.Exec(ctx, `SAVEPOINT ev`); err != nil {
			return nil, s.fail(ctx, "insert: savepoint", err)
		}
		var res crmhook.InsertResult
		if r.rejectionID != 0 {
			res, err = s.releaseOne(ctx, tx, r, now)
		} else {
			res, err = insertOne(ctx, tx, r.ev, now)
		}
		if err != nil {
			err = s.fail(ctx, r.op(), err)
			if isUnavailable(err) {
				return nil, err
			}
			if _, rbErr := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT ev`); rbErr != nil {
				return nil, s.fail(ctx, "insert: rollback to savepoint", rbErr)
			}
		}
		if _, relErr := tx.Exec(ctx, `RELEASE SAVEPOINT ev`); relErr != nil {
			return nil, s.fail(ctx, "insert: release savepoint", relErr)
		}
		replies[i] = insertReply{res: res, err: err}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, s.channel); err != nil {
		return nil, s.fail(ctx, "insert: notify", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, s.failTx(ctx, "insert: commit", err)
	}
	return replies, nil
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
