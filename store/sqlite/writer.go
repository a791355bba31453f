package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
)

// writeOp is one write waiting for the writer goroutine: an insert, a
// rejection, a claim, the outcome of a delivery, a replay, a prune chunk.
type writeOp struct {
	ctx  context.Context // the caller's: a request whose caller left is skipped
	name string          // the error label ("insert", "claim", …)
	// durable says the caller must not hear back before the commit is on
	// disk (fsync). See commitGroup for which writes can do without.
	durable bool
	// insert counts the op in OnCommit.
	insert bool
	// multi says run issues more than one writing statement, so that in a
	// shared transaction it needs a savepoint to fail alone. A single
	// statement that fails is undone by SQLite itself, the transaction
	// going on.
	multi bool
	// run does the work in the group's transaction; it keeps its results in
	// its closure, which the caller reads after done.
	run  func(ctx context.Context, tx *groupTx, now time.Time) error
	done chan error
}

// do hands op to the writer and waits for its answer. If ctx ends while the
// writer has op, the call returns ctx's error though op may still commit
// (see sqlstore.Submit).
func (s *Store) do(ctx context.Context, op *writeOp) error {
	if err := s.checkOpen(op.name); err != nil {
		return err
	}
	op.ctx = ctx
	op.done = make(chan error, 1)
	opErr, err := sqlstore.Submit(ctx, s.writes, op, op.done)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", op.name, err)
	}
	return opErr
}

// exec runs one statement through the writer, durably or not (see
// commitGroup), and returns how many rows it changed and the rowid of the
// row it inserted, as SQLite counted them when the statement ran.
func (s *Store) exec(ctx context.Context, op string, durable bool, query string, args ...any) (changed, lastID int64, err error) {
	// The writer sets these; they are read only once do says it finished
	// (a caller whose ctx ended may return while the writer still runs).
	var n, id int64
	err = s.do(ctx, &writeOp{name: op, durable: durable,
		run: func(ctx context.Context, tx *groupTx, _ time.Time) error {
			res, err := tx.ExecContext(ctx, query, args...)
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil {
				return err
			}
			id, err = res.LastInsertId()
			return err
		}})
	if err != nil {
		return 0, 0, err
	}
	return n, id, nil
}

// runWriter is the writer goroutine: one group commit at a time until Close.
func (s *Store) runWriter() {
	defer close(s.writerDone)
	s.writes.Run(s.commitGroup, func(op *writeOp) {
		op.done <- fmt.Errorf("sqlite: %s: %w", op.name, crmhook.ErrClosed)
	})
}

// commitGroup runs first and the writes already queued behind it (up to
// BatchMax in all) in one transaction, commits once and answers everyone:
// group commit for every write, so that the dispatcher's claims and outcomes
// share the fsync of the receiver's inserts instead of each paying their own.
// Each op that needs it runs in its own savepoint, so that a bad one fails
// alone. A failure of the store itself (I/O, disk full, read-only) fails the
// whole group.
//
// Durability: inserts and rejections (and replays) are committed with
// synchronous=FULL, the WAL fsynced before any caller hears back, because a
// 2xx promises the event is on disk. A group holding only queue-state writes
// (claim, complete, retry, kill, release) commits with synchronous=NORMAL: in
// WAL mode that skips the fsync, and a process crash still loses nothing
// (the WAL write is in the OS before COMMIT returns); only a power loss or
// OS crash can lose such a commit, and losing a "delivered" mark (or a claim,
// retry, kill or release) means a redelivery, which at-least-once allows.
// The next FULL commit fsyncs the WAL, and with it every frame before it.
func (s *Store) commitGroup(first *writeOp) {
	// The transaction is the writer's, not any caller's: one caller giving
	// up must not roll back the others' writes.
	ctx := context.Background()
	start := time.Now()
	group := []*writeOp{first}
	var errs []error

	// answer answers everyone: with their own result, or with groupErr when
	// the group failed.
	answer := func(groupErr error) {
		for i, op := range group {
			err := groupErr
			if groupErr == nil && i < len(errs) {
				err = errs[i]
			}
			op.done <- err
		}
	}
	label := func() string {
		if first.name == "insert" || len(group) == 1 {
			return first.name
		}
		return "write"
	}

	conn, err := s.writeDB.Conn(ctx)
	if err != nil {
		answer(s.failTx(ctx, label()+": connect", err))
		return
	}
	defer conn.Close()
	// Drain once the connection is ours, not before: whoever queued while
	// the writer waited for it rides along.
	group = s.writes.Drain(group, s.cfg.BatchMax)

	durable, inserts := false, 0
	for _, op := range group {
		durable = durable || op.durable
		if op.insert {
			inserts++
		}
	}
	// The safety level may not change inside a transaction, so it is set
	// before BEGIN, and only when it differs from the last group's.
	if s.syncLevel != syncLevel(durable) {
		if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = "+syncLevel(durable)); err != nil {
			s.syncLevel = "" // unknown: set it again next time
			answer(s.failTx(ctx, label()+": synchronous", err))
			return
		}
		s.syncLevel = syncLevel(durable)
	}

	now := s.now()
	// Savepoints cost: three more statements per op, and a copy of every
	// page the op changes. Failing ops are rare (a caller reusing an event
	// id, releasing a rejection twice), so the group first runs without
	// them; only if a multi-statement op fails half-way is the transaction
	// rolled back and the group run again, each such op in its savepoint.
	// A lone op never needs one: if it fails, its transaction is rolled back.
	tx, errs, redo, err := s.runGroup(ctx, conn, group, now, false)
	if err == nil && redo {
		tx.Rollback()
		tx, errs, _, err = s.runGroup(ctx, conn, group, now, true)
	}
	if err != nil {
		answer(err)
		return
	}
	if len(group) == 1 && errs[0] != nil {
		tx.Rollback()
		answer(errs[0])
		return
	}
	if err := tx.Commit(); err != nil {
		answer(s.failTx(ctx, label()+": commit", err))
		return
	}
	took := time.Since(start)
	if s.cfg.OnCommit != nil && inserts > 0 {
		s.cfg.OnCommit(inserts, took)
	}
	answer(nil)
}

// runGroup begins a transaction on conn and runs the group's ops in it,
// each multi-statement op in a savepoint when savepoints is set. It returns
// the transaction, still open, with each op's error. redo reports that,
// without savepoints, an op failed after it may have written: the
// transaction must be rolled back and the group run again with them. err is
// a failure of the store, which fails the whole group; the transaction is
// then rolled back already.
func (s *Store) runGroup(ctx context.Context, conn *sql.Conn, group []*writeOp, now time.Time, savepoints bool) (tx *groupTx, errs []error, redo bool, err error) {
	sqlTx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		name := group[0].name
		if len(group) > 1 {
			name = "write"
		}
		return nil, nil, false, s.failTx(ctx, name+": begin", err)
	}
	tx = &groupTx{Tx: sqlTx}
	alone := len(group) == 1
	errs = make([]error, 0, len(group))
	for _, op := range group {
		if err := op.ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("sqlite: %s: %w", op.name, err))
			continue
		}
		var err error
		if savepoints && op.multi && !alone {
			err = s.runInSavepoint(ctx, tx, op, now)
		} else {
			err = op.run(ctx, tx, now)
		}
		if err != nil {
			err = s.fail(ctx, op.name, err)
			if isUnavailable(err) {
				tx.Rollback()
				return nil, nil, false, err
			}
			if !savepoints && op.multi && !alone {
				return tx, nil, true, nil
			}
		}
		errs = append(errs, err)
	}
	return tx, errs, false, nil
}

// groupTx is a group's transaction with its statements bound to it once,
// not once per op (binding costs a lock and allocations in database/sql).
type groupTx struct {
	*sql.Tx
	bound map[*sql.Stmt]*sql.Stmt
}

func (tx *groupTx) stmt(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	if b, ok := tx.bound[st]; ok {
		return b
	}
	if tx.bound == nil {
		tx.bound = make(map[*sql.Stmt]*sql.Stmt, 8)
	}
	b := tx.Tx.StmtContext(ctx, st)
	tx.bound[st] = b
	return b
}

func syncLevel(durable bool) string {
	if durable {
		return "FULL"
	}
	return "NORMAL"
}

// runInSavepoint runs op inside a savepoint of tx. A failure of the
// savepoint statements themselves means the transaction is gone, which
// fails the group.
func (s *Store) runInSavepoint(ctx context.Context, tx *groupTx, op *writeOp, now time.Time) error {
	broken := func(err error) error { return fmt.Errorf("savepoint: %w: %w", crmhook.ErrUnavailable, err) }
	if _, err := tx.stmt(ctx, s.stmts.savepoint).ExecContext(ctx); err != nil {
		return broken(err)
	}
	err := op.run(ctx, tx, now)
	if err != nil {
		if !isAboutRequest(err) && !isSorted(err) {
			// The store failed (disk full, I/O): SQLite may have rolled the
			// whole transaction back already, and the group fails anyway.
			return err
		}
		if _, rbErr := tx.stmt(ctx, s.stmts.rollbackTo).ExecContext(ctx); rbErr != nil {
			return broken(errors.Join(err, rbErr))
		}
	}
	if _, relErr := tx.stmt(ctx, s.stmts.release).ExecContext(ctx); relErr != nil {
		return broken(relErr)
	}
	return err
}

// insertEventSQL inserts an event unless its dedupe key (?5) is live: while
// an event stored under it has a window ending after now (?10), or while
// retention removed that event but kept its key (dedupe_keys). One
// statement, so that a fresh event costs the writer one Exec; the writer
// is the only one, so nothing can come between the check and the insert.
// An empty key is never live.
const insertEventSQL = `INSERT INTO events (` + eventColumns + `, dedupe_until)
	SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
	WHERE ?5 = '' OR (
		NOT EXISTS (SELECT 1 FROM events WHERE dedupe_key = ?5 AND dedupe_until > ?10)
		AND NOT EXISTS (SELECT 1 FROM dedupe_keys WHERE key = ?5 AND expires_at > ?10))`

// liveKeySQL finds the event a live dedupe key belongs to (see
// insertEventSQL): read only when an insert found its key live.
const liveKeySQL = `SELECT id FROM events WHERE dedupe_key = ?1 AND dedupe_until > ?2
	UNION ALL
	SELECT event_id FROM dedupe_keys WHERE key = ?1 AND expires_at > ?2
	LIMIT 1`

// writeStmts are the writer's statements, prepared once on the write
// connection and bound to each group's transaction, so that no write pays
// for parsing SQL.
type writeStmts struct {
	savepoint, rollbackTo, release *sql.Stmt

	liveKey  *sql.Stmt
	event    *sql.Stmt
	delivery *sql.Stmt

	claim          *sql.Stmt
	complete       *sql.Stmt
	retry          *sql.Stmt
	kill           *sql.Stmt
	releaseClaim   *sql.Stmt
	deliveryExists *sql.Stmt
	reject         *sql.Stmt
}

func (w *writeStmts) all() []**sql.Stmt {
	return []**sql.Stmt{&w.savepoint, &w.rollbackTo, &w.release,
		&w.liveKey, &w.event, &w.delivery,
		&w.claim, &w.complete, &w.retry, &w.kill, &w.releaseClaim, &w.deliveryExists, &w.reject}
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
	w.savepoint = prep(`SAVEPOINT op`)
	w.rollbackTo = prep(`ROLLBACK TO op`)
	w.release = prep(`RELEASE op`)

	w.liveKey = prep(liveKeySQL)
	w.event = prep(insertEventSQL)
	w.delivery = prep(`INSERT INTO deliveries (event_id, sink, state, attempts, next_attempt_at, created_at, updated_at, event_received_at)
		VALUES (?, ?, 'pending', 0, ?, ?, ?, ?)`)

	w.claim = prep(claimSQL)
	w.complete = prep(finishSQL(`state = 'delivered', attempts = attempts + 1, delivered_at = ?, updated_at = ?`))
	w.retry = prep(finishSQL(`attempts = attempts + 1, next_attempt_at = ?, last_error = ?, updated_at = ?`))
	w.kill = prep(finishSQL(`state = 'dead', attempts = attempts + 1, last_error = ?, updated_at = ?`))
	w.releaseClaim = prep(finishSQL(``))
	w.deliveryExists = prep(`SELECT 1 FROM deliveries WHERE id = ?`)
	w.reject = prep(`INSERT INTO rejections
		(event_id, source, provider, type, dedupe_key, occurred_at, received_at, payload, reason, rejected_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		w.close()
		return fmt.Errorf("sqlite: prepare: %w", err)
	}
	return nil
}

func (w *writeStmts) close() error {
	var errs []error
	for _, st := range w.all() {
		if *st != nil {
			errs = append(errs, (*st).Close())
		}
	}
	return errors.Join(errs...)
}
