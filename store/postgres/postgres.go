// Package postgres is crmhook's shared store for running many replicas: any
// number of receivers and dispatchers on one PostgreSQL schema, through
// pgx v5 and its pool.
//
// It keeps the SQLite store's semantics (store/storetest holds both to
// them) and scales them out:
//   - migrations run on Open inside a transaction holding an advisory lock,
//     so replicas starting together apply them once;
//   - a dedupe key is claimed by one INSERT … ON CONFLICT DO UPDATE … WHERE
//     expired, which takes over an expired key atomically and leaves a live
//     one alone, whichever replica races for it;
//   - inserts are group-committed: writer goroutines take the inserts queued
//     at the moment, send them as one pipelined batch inside one transaction
//     and commit once;
//   - claims lease rows chosen with FOR UPDATE SKIP LOCKED, so concurrent
//     dispatchers never wait on, nor take, each other's rows;
//   - a commit that makes work due sends a NOTIFY; Subscribe turns it into
//     wake-ups for every replica's dispatcher, so they need not only poll;
//   - a named lease (ControlStore.AcquireLease, for singleton jobs such as
//     the watchdog) is taken by one INSERT … ON CONFLICT DO UPDATE … WHERE
//     expired OR own, so that of replicas racing for it exactly one holds it.
//
// The store's clock (Config.Now, the host's) decides due-ness, leases and
// dedupe windows, as in SQLite: replicas' clocks must agree to well within
// a lease.
//
// The files of this package and of store/sqlite share one map: writer.go
// (group commit), insert.go, queue.go (claims and outcomes, replay),
// reject.go, query.go (reads and stats), prune.go, control.go
// (ControlStore), console.go (console.Reader: the admin console's reads),
// errors.go, migrate.go and scan.go.
package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config configures a Store. Zero fields take their defaults.
type Config struct {
	// URL is the connection string: postgres://user@host:5432/db?sslmode=…
	// Pool settings such as pool_max_conns are honoured, and any other
	// query parameter (search_path=crmhook, say) is sent to the server as a
	// run-time parameter. The store's tables live in the first schema of the
	// search path, which must exist. Required.
	URL string
	// BatchMax is the most inserts one commit carries. Default 128.
	BatchMax int
	// Writers is how many group commits may be in flight at once. Default 4:
	// while some wait for their commit to reach disk, another collects the
	// next group (Postgres flushes concurrent commits together).
	Writers int
	// Now is the store's clock: due-ness, leases, dedupe windows. Default time.Now.
	Now func() time.Time
	// OnCommit, when set, is called after every group commit with the
	// number of inserts it carried and how long the transaction took.
	OnCommit func(batch int, took time.Duration)
	// Logger receives the listener's reconnects. Default: discard.
	Logger *slog.Logger
	// DurableQueueCommits makes claims and outcomes (Complete, Retry, Kill,
	// Release) wait for their commit to reach disk, as inserts always do.
	// By default they commit asynchronously (synchronous_commit=off on their
	// own pool), which doubles throughput where the disk flush is the cost:
	// a Postgres crash can then forget the last fraction of a second of
	// bookkeeping, which only ever means a delivery is made again, never
	// that an acknowledged event is lost.
	DurableQueueCommits bool
}

// Defaults.
const (
	DefaultBatchMax = 128
	DefaultWriters  = 4
)

func (c Config) withDefaults() Config {
	if c.BatchMax == 0 {
		c.BatchMax = DefaultBatchMax
	}
	if c.Writers == 0 {
		c.Writers = DefaultWriters
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.URL == "":
		return errors.New("postgres: config: URL is required")
	case c.BatchMax < 1:
		return fmt.Errorf("postgres: config: BatchMax must be positive, got %d", c.BatchMax)
	case c.Writers < 1:
		return fmt.Errorf("postgres: config: Writers must be positive, got %d", c.Writers)
	}
	return nil
}

// Store is a crmhook.Store on one PostgreSQL schema. It is safe for
// concurrent use, by any number of processes.
type Store struct {
	cfg     Config
	pool    *pgxpool.Pool // inserts, listings, migrations: commits wait for the disk
	queue   *pgxpool.Pool // claims and outcomes: see Config.DurableQueueCommits
	schema  string        // the schema the tables live in
	channel string        // the NOTIFY channel of this schema

	inserts     *sqlstore.Handoff[*insertRequest]   // callers to the writer goroutines
	completes   *sqlstore.Handoff[*completeRequest] // Completes to the completer goroutines
	closing     chan struct{}                       // closed by Close
	writersDone sync.WaitGroup
	closed      atomic.Bool
	closeOnce   sync.Once

	listenerDone chan struct{}
	subsMu       sync.Mutex
	subs         map[*subscription]struct{}
}

var _ crmhook.Store = (*Store)(nil)

// Open connects, applies the pending migrations, and starts the writers and
// the NOTIFY listener.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgx's message may quote the URL with its password: do not wrap it.
		return nil, errors.New("postgres: config: URL is not a valid connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w: %w", crmhook.ErrUnavailable, err)
	}
	queue := pool
	if !cfg.DurableQueueCommits {
		qcfg := pcfg.Copy()
		qcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
		if queue, err = pgxpool.NewWithConfig(ctx, qcfg); err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: connect: %w: %w", crmhook.ErrUnavailable, err)
		}
	}
	closing := make(chan struct{})
	s := &Store{
		cfg:          cfg,
		pool:         pool,
		queue:        queue,
		inserts:      sqlstore.NewHandoff[*insertRequest](closing),
		completes:    sqlstore.NewHandoff[*completeRequest](closing),
		closing:      closing,
		listenerDone: make(chan struct{}),
		subs:         map[*subscription]struct{}{},
	}
	if err := s.migrate(ctx); err != nil {
		s.closePools()
		return nil, err
	}
	// Channels are database-wide; schemas sharing a database get their own.
	sum := sha256.Sum256([]byte(s.schema))
	s.channel = "crmhook_" + hex.EncodeToString(sum[:8])

	listenConn, err := s.listen(ctx)
	if err != nil {
		s.closePools()
		return nil, err
	}
	for range cfg.Writers {
		s.writersDone.Add(1)
		go s.runWriter()
	}
	// Two completers: while one waits for its statement, the other
	// collects the next batch.
	for range 2 {
		s.writersDone.Add(1)
		go s.runCompleter()
	}
	go s.runListener(listenConn)
	return s, nil
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.checkOpen("ping"); err != nil {
		return err
	}
	if err := s.pool.Ping(ctx); err != nil {
		return s.fail(ctx, "ping", err)
	}
	return nil
}

// Close stops taking calls, lets the writers and completers finish the
// commits they are making, answers queued inserts and Completes with
// crmhook.ErrClosed, stops the listener
// and closes the pool. A second Close returns nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.closing)
		s.writersDone.Wait()
		<-s.listenerDone
		s.closePools()
	})
	return nil
}

func (s *Store) closePools() {
	if s.queue != s.pool {
		s.queue.Close()
	}
	s.pool.Close()
}

func (s *Store) now() time.Time { return s.cfg.Now() }

// checkOpen is the first thing every call does.
func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: %s: %w", op, crmhook.ErrClosed)
	}
	return nil
}

// subscription is one Subscribe caller.
type subscription struct{ fn func() }

// Subscribe calls fn whenever some replica committed work that may be due
// now (an insert, a replay, a release), until ctx ends. fn runs on the
// listener goroutine: it must not block (Dispatcher.Notify does not). After
// the listener reconnects, fn is called once, since a notification may
// have been missed meanwhile.
func (s *Store) Subscribe(ctx context.Context, fn func()) {
	sub := &subscription{fn: fn}
	s.subsMu.Lock()
	s.subs[sub] = struct{}{}
	s.subsMu.Unlock()
	context.AfterFunc(ctx, func() {
		s.subsMu.Lock()
		delete(s.subs, sub)
		s.subsMu.Unlock()
	})
}

func (s *Store) wakeSubscribers() {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for sub := range s.subs {
		sub.fn()
	}
}

// listen takes a connection out of the pool for good and LISTENs on it.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: listen: %w: %w", crmhook.ErrUnavailable, err)
	}
	conn := c.Hijack()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("postgres: listen: %w: %w", crmhook.ErrUnavailable, err)
	}
	return conn, nil
}

// runListener waits for notifications until Close, reconnecting with a
// capped backoff when the connection breaks.
func (s *Store) runListener(conn *pgx.Conn) {
	defer close(s.listenerDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := 100 * time.Millisecond
	for {
		for conn != nil {
			if _, err := conn.WaitForNotification(ctx); err != nil {
				conn.Close(context.Background())
				conn = nil
				if ctx.Err() != nil {
					return
				}
				s.cfg.Logger.Warn("postgres: notification listener lost its connection", "err", err)
				break
			}
			backoff = 100 * time.Millisecond
			s.wakeSubscribers()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		var err error
		if conn, err = s.listen(ctx); err != nil {
			conn = nil
			continue
		}
		s.wakeSubscribers() // something may have been missed while away
	}
}
