// Package sqlite is crmhook's embedded default store: one SQLite file in WAL
// mode with synchronous=FULL, through the pure Go driver modernc.org/sqlite.
//
// Every write goes through one connection and one writer goroutine that
// commits them in groups: it takes the first waiting write (an insert, a
// claim, a delivery's outcome…), drains the ones already queued behind it
// (never waiting for more), runs them all in one transaction with a
// savepoint per multi-statement write, commits (one fsync) and answers every
// caller. That is how a receiver that answers 2xx
// only after a durable commit stays fast. Reads use a separate pool, which WAL
// lets run beside the writer. The ControlStore's writes (secrets, rotations,
// leases…) take the same path: there is no other.
//
// The files of this package and of store/postgres share one map: writer.go
// (group commit), insert.go, queue.go (claims and outcomes, replay),
// reject.go, query.go (reads and stats), prune.go, control.go
// (ControlStore), console.go (console.Reader: the admin console's reads),
// errors.go, migrate.go and scan.go.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Config configures a Store. Zero fields take their defaults.
type Config struct {
	// Path is the database file. Its parent directory is created (0700) and
	// so is the file (0600) when missing. Required.
	Path string
	// BatchMax is the most writes (inserts, claims, outcomes…) one commit
	// carries. Default 128.
	BatchMax int
	// BusyTimeout is how long a statement waits for a lock another process
	// holds (a CLI on the same file, say). Default 5s.
	BusyTimeout time.Duration
	// MaxReadConns bounds the read pool. Default 4.
	MaxReadConns int
	// CacheSize bounds the write connection's page cache, in bytes. SQLite
	// fills its cache on demand, so a database smaller than this keeps no
	// more than its own size in memory. Default 4 MiB: the writer's working
	// set (the right edges of the time-ordered indexes, the recent region
	// of the dedupe keys, the interior pages) fits in it whatever the
	// database's size, and a larger cache only keeps pages it will not
	// touch again (measured: 2, 4 and 16 MiB ingest at the same rate).
	CacheSize int64
	// Now is the store's clock: due-ness, leases, dedupe windows. Default time.Now.
	Now func() time.Time
	// OnCommit, when set, is called after every group commit that carried
	// inserts, with the number of inserts and how long the transaction took (for
	// metrics). It runs on the writer goroutine: keep it fast.
	OnCommit func(batch int, took time.Duration)
}

// Defaults.
const (
	DefaultBatchMax     = 128
	DefaultBusyTimeout  = 5 * time.Second
	DefaultMaxReadConns = 4
	DefaultCacheSize    = 4 << 20
)

func (c Config) withDefaults() Config {
	if c.BatchMax == 0 {
		c.BatchMax = DefaultBatchMax
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = DefaultBusyTimeout
	}
	if c.MaxReadConns == 0 {
		c.MaxReadConns = DefaultMaxReadConns
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Path == "":
		return errors.New("sqlite: config: Path is required")
	case c.BatchMax < 1:
		return fmt.Errorf("sqlite: config: BatchMax must be positive, got %d", c.BatchMax)
	case c.BusyTimeout < time.Millisecond:
		return fmt.Errorf("sqlite: config: BusyTimeout must be at least 1ms, got %v", c.BusyTimeout)
	case c.MaxReadConns < 1:
		return fmt.Errorf("sqlite: config: MaxReadConns must be positive, got %d", c.MaxReadConns)
	case c.CacheSize < 64<<10:
		return fmt.Errorf("sqlite: config: CacheSize must be at least 64 KiB, got %d", c.CacheSize)
	}
	return nil
}

// Store is a crmhook.Store on one SQLite file. It is safe for concurrent use.
type Store struct {
	cfg     Config
	writeDB *sql.DB // exactly one connection: every write is serialized on it
	readDB  *sql.DB // query_only connections

	writes     *sqlstore.Handoff[*writeOp] // callers to the writer goroutine
	closing    chan struct{}               // closed by Close
	writerDone chan struct{}               // closed when the writer goroutine has returned
	closed     atomic.Bool
	closeOnce  sync.Once

	stmts writeStmts
	// claimEventsStmt reads claimed deliveries' events on the read pool.
	claimEventsStmt *sql.Stmt
	// syncLevel is the write connection's synchronous pragma as the writer
	// last set it. Only the writer goroutine touches it.
	syncLevel string
}

var _ crmhook.Store = (*Store)(nil)

// Open opens (creating when missing) the database at cfg.Path, applies the
// pending migrations and starts the writer.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := createFile(cfg.Path); err != nil {
		return nil, err
	}

	writeDB, err := sql.Open("sqlite", dsn(cfg, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	writeDB.SetMaxOpenConns(1)
	writeDB.SetMaxIdleConns(1)
	writeDB.SetConnMaxLifetime(0)
	writeDB.SetConnMaxIdleTime(0)

	if err := migrate(ctx, writeDB); err != nil {
		writeDB.Close()
		return nil, err
	}

	readDB, err := sql.Open("sqlite", dsn(cfg, true))
	if err != nil {
		writeDB.Close()
		return nil, fmt.Errorf("sqlite: open read pool: %w", err)
	}
	readDB.SetMaxOpenConns(cfg.MaxReadConns)
	readDB.SetMaxIdleConns(cfg.MaxReadConns)

	closing := make(chan struct{})
	s := &Store{
		cfg:        cfg,
		writeDB:    writeDB,
		readDB:     readDB,
		writes:     sqlstore.NewHandoff[*writeOp](closing),
		syncLevel:  "FULL", // the DSN's
		closing:    closing,
		writerDone: make(chan struct{}),
	}
	if err := s.stmts.prepare(ctx, writeDB); err != nil {
		writeDB.Close()
		readDB.Close()
		return nil, err
	}
	s.claimEventsStmt, err = readDB.PrepareContext(ctx,
		`SELECT `+eventColumns+` FROM events WHERE id IN (SELECT value FROM json_each(?))`)
	if err != nil {
		s.stmts.close()
		writeDB.Close()
		readDB.Close()
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	go s.runWriter()
	return s, nil
}

// createFile makes the parent directory and the file with owner-only modes
// before SQLite opens it, since SQLite would create it 0644. SQLite gives the
// -wal and -shm files the database file's mode.
func createFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sqlite: create directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: create file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: create file: %w", err)
	}
	return nil
}

// dsn builds the connection string. The pragmas are per connection, so they
// go in the DSN, where the driver runs them on every connection it opens.
func dsn(cfg Config, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", cfg.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		// journal_mode is persistent in the file; the write connection,
		// opened first, sets it.
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		// Savepoints and statements that may abort copy the pages they
		// change into a sub-journal; in a temporary file that is a write
		// syscall per page, in memory a copy. It never needs to survive a
		// crash: the WAL is what makes a commit durable.
		q.Add("_pragma", "temp_store(MEMORY)")
		// The page cache (see Config.CacheSize), in KiB.
		q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", cfg.CacheSize>>10))
		// Writers take the write lock when they begin, so a transaction
		// never fails half-way to upgrade its lock.
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: cfg.Path}).EscapedPath() + "?" + q.Encode()
}

// Ping reports whether the store can serve reads from its file.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("sqlite: ping: %w", crmhook.ErrClosed)
	}
	var one int
	if err := s.readDB.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return s.fail(ctx, "ping", err)
	}
	return nil
}

// Close stops taking calls, lets the writer finish the commit it is making,
// answers queued writes with crmhook.ErrClosed and closes the database.
// Calls after Close fail with crmhook.ErrClosed. A second Close returns nil.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.closing)
		<-s.writerDone
		err = errors.Join(s.stmts.close(), s.claimEventsStmt.Close(), s.writeDB.Close(), s.readDB.Close())
		if err != nil {
			err = fmt.Errorf("sqlite: close: %w", err)
		}
	})
	return err
}

func (s *Store) now() time.Time { return s.cfg.Now() }

// checkOpen is the first thing every call does.
func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("sqlite: %s: %w", op, crmhook.ErrClosed)
	}
	return nil
}
