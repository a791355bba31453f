package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/storeutil"
	"github.com/jackc/pgx/v5"
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
// (see storeutil.Submit).
func (s *Store) submit(ctx context.Context, r *insertRequest) (crmhook.InsertResult, error) {
	op := r.op()
	if err := s.checkOpen(op); err != nil {
		return crmhook.InsertResult{}, err
	}
	r.ctx = ctx
	r.reply = make(chan insertReply, 1)
	rep, err := storeutil.Submit(ctx, s.inserts, r, r.reply)
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
