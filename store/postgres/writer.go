package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

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

// submit hands r to a writer and waits for its answer. If ctx ends while
// the writer has r, the call returns ctx's error though r may still commit
// (see sqlstore.Submit).
func (s *Store) submit(ctx context.Context, r *insertRequest) (crmhook.InsertResult, error) {
	op := r.op()
	if err := s.checkOpen(op); err != nil {
		return crmhook.InsertResult{}, err
	}
	r.ctx = ctx
	r.reply = make(chan insertReply, 1)
	rep, err := sqlstore.Submit(ctx, s.inserts, r, r.reply)
	if err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	return rep.res, rep.err
}

// runWriter is one writer goroutine: one group commit at a time until Close.
func (s *Store) runWriter() {
	defer s.writersDone.Done()
	s.inserts.Run(s.commitGroup, func(r *insertRequest) {
		r.reply <- insertReply{err: fmt.Errorf("postgres: %s: %w", r.op(), crmhook.ErrClosed)}
	})
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
	group = s.inserts.Drain(group, s.cfg.BatchMax)

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
	if s.cfg.OnCommit != nil {
		s.cfg.OnCommit(len(live), time.Since(start))
	}
	for i, r := range live {
		r.reply <- replies[i]
	}
}

// errSlowPath says the fast path gave up on the group without a verdict.
var errSlowPath = errors.New("retry one request at a time")

// groupFast inserts the group as one pipelined batch and commits. It
// returns errSlowPath when the group holds a release or a statement failed
// for a reason of its own.
func (s *Store) groupFast(ctx context.Context, group []*insertRequest, now time.Time) ([]insertReply, error) {
	for _, r := range group {
		if r.rejectionID != 0 {
			return nil, errSlowPath
		}
	}
	if len(group) > 1 && distinctKeys(group) {
		return s.groupArrays(ctx, group, now)
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

// distinctKeys reports whether no two requests of the (sorted) group share
// a dedupe key: one statement may not upsert a key twice.
func distinctKeys(group []*insertRequest) bool {
	for i := 1; i < len(group); i++ {
		if k := group[i].ev.Event.DedupeKey; k != "" && k == group[i-1].ev.Event.DedupeKey {
			return false
		}
	}
	return true
}

// insertGroupSQL is insertEventSQL for a whole group, its columns as
// arrays ($1 ids … $9 dedupe untils; $11, $12 the deliveries' event ids
// and sinks) and $10 now: one statement and one round trip per group
// instead of one statement per event. It returns the ids of the events
// stored; the others' keys were live.
const insertGroupSQL = `WITH input AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
		$6::timestamptz[], $7::timestamptz[], $8::bytea[], $9::timestamptz[])
		WITH ORDINALITY AS t (id, source, provider, type, dedupe_key, occurred_at, received_at, payload, until, n)
), k AS (
	INSERT INTO dedupe_keys (key, event_id, expires_at)
	SELECT dedupe_key, id, until FROM input WHERE dedupe_key <> '' ORDER BY n
	ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, expires_at = excluded.expires_at
		WHERE dedupe_keys.expires_at <= $10::timestamptz
	RETURNING event_id
), e AS (
	INSERT INTO events (id, source, provider, type, dedupe_key, occurred_at, received_at, payload)
	SELECT id, source, provider, type, dedupe_key, occurred_at, received_at, payload FROM input
	WHERE dedupe_key = '' OR id IN (SELECT event_id FROM k)
	ORDER BY n
	RETURNING id, received_at
), d AS (
	INSERT INTO deliveries (event_id, sink, state, attempts, next_attempt_at, created_at, updated_at, event_received_at)
	SELECT e.id, s.sink, 'pending', 0, $10::timestamptz, $10::timestamptz, $10::timestamptz, e.received_at
	FROM unnest($11::text[], $12::text[]) WITH ORDINALITY AS s (event_id, sink, n) JOIN e ON e.id = s.event_id
	ORDER BY s.n
	RETURNING 1
)
SELECT id FROM e`

// groupArrays stores the group with insertGroupSQL and the NOTIFY in one
// pipeline, which Postgres runs as one implicit transaction committed at
// its end: one round trip for the group. The owners of live keys are read
// after the commit (READ COMMITTED: the key's owner committed before).
func (s *Store) groupArrays(ctx context.Context, group []*insertRequest, now time.Time) ([]insertReply, error) {
	n := len(group)
	var (
		ids, sources, providers, types, keys = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		occurred, received, untils           = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		payloads                             = make([][]byte, n)
		dEvents, dSinks                      []string
	)
	for i, r := range group {
		a := eventArgs(r.ev, now)
		ev := r.ev.Event
		ids[i], sources[i], providers[i], types[i], keys[i] = ev.ID, ev.Source, string(ev.Provider), ev.Type, ev.DedupeKey
		occurred[i] = pgtype.Timestamptz{Time: ev.OccurredAt, Valid: !ev.OccurredAt.IsZero()}
		received[i] = pgtype.Timestamptz{Time: a[6].(time.Time), Valid: true}
		payloads[i] = a[7].([]byte)
		untils[i] = pgtype.Timestamptz{Time: a[8].(time.Time), Valid: true}
		for _, sink := range a[10].([]string) {
			dEvents, dSinks = append(dEvents, ev.ID), append(dSinks, sink)
		}
	}
	if dEvents == nil {
		dEvents, dSinks = []string{}, []string{}
	}
	var b pgx.Batch
	b.Queue(insertGroupSQL, ids, sources, providers, types, keys, occurred, received, payloads, untils, now, dEvents, dSinks)
	b.Queue(`SELECT pg_notify($1, '')`, s.channel)
	br := s.pool.SendBatch(ctx, &b)
	stored := make(map[string]bool, n)
	rows, err := br.Query()
	if err == nil {
		for rows.Next() {
			var id string
			if err = rows.Scan(&id); err != nil {
				break
			}
			stored[id] = true
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if isAboutRequest(err) {
			return nil, errSlowPath
		}
		return nil, s.failTx(ctx, "insert", err)
	}
	replies := make([]insertReply, n)
	var dupes []string
	for i, r := range group {
		if stored[r.ev.Event.ID] {
			replies[i].res = crmhook.InsertResult{EventID: r.ev.Event.ID}
		} else {
			dupes = append(dupes, r.ev.Event.DedupeKey)
		}
	}
	if len(dupes) > 0 {
		owners := make(map[string]string, len(dupes))
		rows, err := s.pool.Query(ctx, `SELECT key, event_id FROM dedupe_keys WHERE key = ANY ($1::text[])`, dupes)
		if err != nil {
			return nil, s.fail(ctx, "insert: dedupe key owner", err)
		}
		for rows.Next() {
			var k, owner string
			if err := rows.Scan(&k, &owner); err != nil {
				rows.Close()
				return nil, s.fail(ctx, "insert: dedupe key owner", err)
			}
			owners[k] = owner
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, s.fail(ctx, "insert: dedupe key owner", err)
		}
		for i, r := range group {
			if !stored[r.ev.Event.ID] {
				replies[i].res = crmhook.InsertResult{Duplicate: true, EventID: owners[r.ev.Event.DedupeKey]}
			}
		}
	}
	return replies, nil
}
