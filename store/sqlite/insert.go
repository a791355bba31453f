package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/crmhook/crmhook"
)

// writeStmts are the group commit's statements, prepared once on the write
// connection and bound to each batch's transaction.
type writeStmts struct {
	claimKey *sql.Stmt
	keyOwner *sql.Stmt
	event    *sql.Stmt
	delivery *sql.Stmt
}

func (w *writeStmts) prepare(ctx context.Context, db *sql.DB) error {
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = db.PrepareContext(ctx, q)
		return st
	}
	// The dedupe key is claimed by one atomic upsert: a new key is inserted,
	// an expired one is taken over, and a live one is left alone, which
	// RETURNING reports as no row. Never check-then-insert.
	w.claimKey = prep(`INSERT INTO dedupe_keys (key, event_id, expires_at) VALUES (?1, ?2, ?3)
		ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, expires_at = excluded.expires_at
		WHERE dedupe_keys.expires_at <= ?4
		RETURNING event_id`)
	w.keyOwner = prep(`SELECT event_id FROM dedupe_keys WHERE key = ?`)
	w.event = prep(`INSERT INTO events (` + eventColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	w.delivery = prep(`INSERT INTO deliveries (event_id, sink, state, attempts, next_attempt_at, created_at, updated_at)
		VALUES (?, ?, 'pending', 0, ?, ?, ?)`)
	if err != nil {
		w.close()
		return fmt.Errorf("sqlite: prepare: %w", err)
	}
	return nil
}

func (w *writeStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{w.claimKey, w.keyOwner, w.event, w.delivery} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// insertRequest is one Insert or ReleaseRejection waiting for the writer.
type insertRequest struct {
	ctx         context.Context
	ev          crmhook.NewEvent
	rejectionID int64 // non-zero: release this rejection instead of inserting ev.Event
	reply       chan insertReply
}

type insertReply struct {
	res crmhook.InsertResult
	err error
}

// Insert commits the event, its deliveries and its dedupe key in one
// transaction, shared with the other inserts queued at the same moment, and
// returns after the commit is on disk. An empty Event.ID gets a fresh one,
// a zero ReceivedAt the store's now. An empty DedupeKey is never a duplicate.
func (s *Store) Insert(ctx context.Context, ne crmhook.NewEvent) (crmhook.InsertResult, error) {
	if ne.Event.ID == "" {
		ne.Event.ID = crmhook.NewEventID()
	}
	return s.submit(ctx, "insert", &insertRequest{ev: ne})
}

// ReleaseRejection inserts the rejected event, received now, with
// deliveries to sinks, and marks the rejection released, in one transaction.
// If its dedupe key is taken meanwhile, the result is a duplicate and the
// rejection is still marked released. Releasing twice is an error.
func (s *Store) ReleaseRejection(ctx context.Context, id int64, sinks []string, dedupeUntil time.Time) (crmhook.InsertResult, error) {
	return s.submit(ctx, "release rejection", &insertRequest{
		ev:          crmhook.NewEvent{Sinks: sinks, DedupeUntil: dedupeUntil},
		rejectionID: id,
	})
}

// submit hands r to the writer and waits for its answer. If ctx ends while
// the writer has r, the call returns ctx's error though r may still commit:
// at least once, the provider's retry then meets the dedupe key.
func (s *Store) submit(ctx context.Context, op string, r *insertRequest) (crmhook.InsertResult, error) {
	if err := s.checkOpen(op); err != nil {
		return crmhook.InsertResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	r.ctx = ctx
	r.reply = make(chan insertReply, 1)
	s.queued.Add(1)
	select {
	case s.inserts <- r:
	case <-s.closing:
		s.queued.Add(-1)
		return crmhook.InsertResult{}, fmt.Errorf("sqlite: %s: %w", op, crmhook.ErrClosed)
	case <-ctx.Done():
		s.queued.Add(-1)
		return crmhook.InsertResult{}, fmt.Errorf("sqlite: %s: %w", op, ctx.Err())
	}
	select {
	case rep := <-r.reply:
		return rep.res, rep.err
	case <-ctx.Done():
		return crmhook.InsertResult{}, fmt.Errorf("sqlite: %s: %w", op, ctx.Err())
	}
}

// runWriter is the writer goroutine: one group commit at a time until Close.
func (s *Store) runWriter() {
	defer close(s.writerDone)
	for {
		select {
		case first := <-s.inserts:
			s.queued.Add(-1)
			s.commitGroup(first)
		case <-s.closing:
			for {
				select {
				case r := <-s.inserts:
					s.queued.Add(-1)
					r.reply <- insertReply{err: fmt.Errorf("sqlite: insert: %w", crmhook.ErrClosed)}
				default:
					return
				}
			}
		}
	}
}

// commitGroup runs first and the requests already queued behind it (up to
// BatchMax in all) in one transaction, each in its own savepoint so that a
// bad event fails alone, commits once and answers everyone. A failure of the
// store itself (I/O, disk full, read-only) fails the whole group.
func (s *Store) commitGroup(first *insertRequest) {
	// The transaction is the writer's, not any caller's: one caller giving
	// up must not roll back the others' events.
	ctx := context.Background()
	start := time.Now()
	group := []*insertRequest{first}
	replies := make([]insertReply, 0, s.cfg.BatchMax)

	// answer replies to everyone: with their own result, or with groupErr
	// when the group failed (a request that failed alone keeps its error).
	answer := func(groupErr error) {
		for i, r := range group {
			rep := insertReply{err: groupErr}
			if i < len(replies) && (groupErr == nil || replies[i].err != nil) {
				rep = replies[i]
			}
			r.reply <- rep
		}
	}

	tx, err := s.writeDB.BeginTx(ctx, nil)
	if err != nil {
		answer(s.failTx(ctx, "insert: begin", err))
		return
	}
	// Drain after BEGIN, not before: whoever queued while the transaction
	// waited for the connection rides along.
drain:
	for len(group) < s.cfg.BatchMax {
		select {
		case r := <-s.inserts:
			s.queued.Add(-1)
			group = append(group, r)
		default:
			break drain
		}
	}

	now := s.now()
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			replies = append(replies, insertReply{err: fmt.Errorf("sqlite: insert: %w", err)})
			continue
		}
		res, err := s.insertInSavepoint(ctx, tx, r, now)
		if err != nil {
			op := "insert"
			if r.rejectionID != 0 {
				op = "release rejection"
			}
			err = s.fail(ctx, op, err)
			if isUnavailable(err) {
				tx.Rollback()
				replies = replies[:0]
				answer(err)
				return
			}
		}
		replies = append(replies, insertReply{res: res, err: err})
	}
	if err := tx.Commit(); err != nil {
		answer(s.failTx(ctx, "insert: commit", err))
		return
	}
	took := time.Since(start)
	s.commits.Add(1)
	s.committedIns.Add(int64(len(group)))
	if s.cfg.OnCommit != nil {
		s.cfg.OnCommit(len(group), took)
	}
	answer(nil)
}

// insertInSavepoint runs one request inside a savepoint of tx. A failure of
// the savepoint statements themselves means the transaction is gone, which
// fails the group.
func (s *Store) insertInSavepoint(ctx context.Context, tx *sql.Tx, r *insertRequest, now time.Time) (crmhook.InsertResult, error) {
	broken := func(err error) error { return fmt.Errorf("savepoint: %w: %w", crmhook.ErrUnavailable, err) }
	if _, err := tx.ExecContext(ctx, `SAVEPOINT ev`); err != nil {
		return crmhook.InsertResult{}, broken(err)
	}
	var (
		res crmhook.InsertResult
		err error
	)
	if r.rejectionID != 0 {
		res, err = s.releaseOne(ctx, tx, r, now)
	} else {
		res, err = s.insertOne(ctx, tx, r.ev, now)
	}
	if err != nil {
		if !isAboutRequest(err) && !isSorted(err) {
			// The store failed (disk full, I/O): SQLite may have rolled the
			// whole transaction back already, and the group fails anyway.
			return crmhook.InsertResult{}, err
		}
		if _, rbErr := tx.ExecContext(ctx, `ROLLBACK TO ev`); rbErr != nil {
			return crmhook.InsertResult{}, broken(errors.Join(err, rbErr))
		}
	}
	if _, relErr := tx.ExecContext(ctx, `RELEASE ev`); relErr != nil {
		return crmhook.InsertResult{}, broken(relErr)
	}
	return res, err
}

func (s *Store) insertOne(ctx context.Context, tx *sql.Tx, ne crmhook.NewEvent, now time.Time) (crmhook.InsertResult, error) {
	ev := ne.Event
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = now
	}
	if ev.DedupeKey != "" {
		var owner string
		err := tx.StmtContext(ctx, s.stmts.claimKey).QueryRowContext(ctx,
			ev.DedupeKey, ev.ID, micros(ne.DedupeUntil), now.UnixMicro()).Scan(&owner)
		if errors.Is(err, sql.ErrNoRows) {
			// The key is inside its window: a redelivery.
			if err := tx.StmtContext(ctx, s.stmts.keyOwner).QueryRowContext(ctx, ev.DedupeKey).Scan(&owner); err != nil {
				return crmhook.InsertResult{}, fmt.Errorf("dedupe key owner: %w", err)
			}
			return crmhook.InsertResult{Duplicate: true, EventID: owner}, nil
		}
		if err != nil {
			return crmhook.InsertResult{}, fmt.Errorf("dedupe key: %w", err)
		}
	}
	payload := []byte(ev.Payload)
	if payload == nil {
		payload = []byte{}
	}
	if _, err := tx.StmtContext(ctx, s.stmts.event).ExecContext(ctx,
		ev.ID, ev.Source, string(ev.Provider), ev.Type, ev.DedupeKey,
		nullMicros(ev.OccurredAt), micros(ev.ReceivedAt), payload); err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("event: %w", err)
	}
	seen := make(map[string]bool, len(ne.Sinks))
	for _, sink := range ne.Sinks {
		if seen[sink] {
			continue
		}
		seen[sink] = true
		if _, err := tx.StmtContext(ctx, s.stmts.delivery).ExecContext(ctx,
			ev.ID, sink, now.UnixMicro(), now.UnixMicro(), now.UnixMicro()); err != nil {
			return crmhook.InsertResult{}, fmt.Errorf("delivery to %q: %w", sink, err)
		}
	}
	return crmhook.InsertResult{EventID: ev.ID}, nil
}

func (s *Store) releaseOne(ctx context.Context, tx *sql.Tx, r *insertRequest, now time.Time) (crmhook.InsertResult, error) {
	var released sql.NullInt64
	ev, err := scanEvent(tx.QueryRowContext(ctx,
		`SELECT event_id, source, provider, type, dedupe_key, occurred_at, received_at, payload, released_at
		FROM rejections WHERE id = ?`, r.rejectionID), &released)
	if errors.Is(err, sql.ErrNoRows) {
		return crmhook.InsertResult{}, fmt.Errorf("rejection %d: %w", r.rejectionID, crmhook.ErrNotFound)
	}
	if err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("rejection %d: %w", r.rejectionID, err)
	}
	if released.Valid {
		return crmhook.InsertResult{}, fmt.Errorf("rejection %d: %w", r.rejectionID, errAlreadyReleased)
	}
	ev.ReceivedAt = now
	ne := r.ev
	ne.Event = ev
	res, err := s.insertOne(ctx, tx, ne, now)
	if err != nil {
		return crmhook.InsertResult{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE rejections SET released_at = ? WHERE id = ?`, now.UnixMicro(), r.rejectionID); err != nil {
		return crmhook.InsertResult{}, fmt.Errorf("mark rejection %d released: %w", r.rejectionID, err)
	}
	return res, nil
}
