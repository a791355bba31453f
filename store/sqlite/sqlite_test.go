package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
	"github.com/crmhook/crmhook/store/storetest"
	msqlite "modernc.org/sqlite"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) crmhook.Store {
		return openTest(t, Config{})
	})
}

// openTest opens a store on a fresh file (cfg.Path, when empty) and closes
// it at the end of the test.
func openTest(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "crmhook.db")
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testEvent(sinks ...string) crmhook.NewEvent {
	id := crmhook.NewEventID()
	return crmhook.NewEvent{
		Event: crmhook.Event{
			ID:         id,
			Source:     "affinity",
			Provider:   crmhook.ProviderAffinity,
			Type:       "person.created",
			DedupeKey:  "key-" + id,
			ReceivedAt: time.Now(),
			Payload:    json.RawMessage(`{"type":"person.created","body":{"id":1}}`),
		},
		Sinks:       sinks,
		DedupeUntil: time.Now().Add(time.Hour),
	}
}

// holdWriter takes the only write connection, so that the writer waits in
// BEGIN and inserts queue up behind it; the returned func gives it back.
func holdWriter(t *testing.T, s *Store) func() {
	t.Helper()
	conn, err := s.writeDB.Conn(t.Context())
	if err != nil {
		t.Fatalf("take the write connection: %v", err)
	}
	var once sync.Once
	release := func() { once.Do(func() { conn.Close() }) }
	t.Cleanup(release)
	return release
}

// waitQueued polls until n writes wait to be taken by the writer: n
// callers blocked handing their write over (see sqlstore.Handoff).
func waitQueued(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := queuedWrites()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// queuedWrites counts the goroutines blocked in sqlstore's Handoff.send.
// The tests of this package run one at a time, so every such goroutine
// belongs to the test's store.
func queuedWrites() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "sqlstore.(*Handoff[...]).send(") {
			count++
		}
	}
	return count
}

// commitCounter counts the writer's commits, of every kind of write,
// through SQLite's commit hook on the one write connection, and the inserts
// they carried through Config.OnCommit.
type commitCounter struct {
	commits, inserts atomic.Int64
	mu               sync.Mutex
	batches          []int // OnCommit's, in order
}

func (c *commitCounter) stats() (commits, inserts int64) { return c.commits.Load(), c.inserts.Load() }

// openCounting is openTest with a commitCounter watching the writer.
func openCounting(t testing.TB, cfg Config) (*Store, *commitCounter) {
	t.Helper()
	c := &commitCounter{}
	cfg.OnCommit = func(batch int, _ time.Duration) {
		c.inserts.Add(int64(batch))
		c.mu.Lock()
		c.batches = append(c.batches, batch)
		c.mu.Unlock()
	}
	s := openTest(t, cfg)
	conn, err := s.writeDB.Conn(context.Background())
	if err != nil {
		t.Fatalf("take the write connection: %v", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		hr, ok := dc.(msqlite.HookRegisterer)
		if !ok {
			return fmt.Errorf("driver connection %T registers no hooks", dc)
		}
		hr.RegisterCommitHook(func() int32 {
			c.commits.Add(1)
			return 0 // let the commit go on
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestPragmas(t *testing.T) {
	s := openTest(t, Config{BusyTimeout: 1500 * time.Millisecond})
	ctx := t.Context()
	pragma := func(db *sql.DB, name string) string {
		t.Helper()
		var v string
		if err := db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		return v
	}
	for name, want := range map[string]string{
		"synchronous":  "2", // FULL: every commit is fsynced
		"journal_mode": "wal",
		"foreign_keys": "1",
		"busy_timeout": "1500",
		"query_only":   "0",
		"temp_store":   "2", // MEMORY: savepoints journal pages in memory
	} {
		if got := pragma(s.writeDB, name); got != want {
			t.Errorf("write connection: PRAGMA %s = %s, want %s", name, got, want)
		}
	}
	for name, want := range map[string]string{
		"journal_mode": "wal",
		"foreign_keys": "1",
		"busy_timeout": "1500",
		"query_only":   "1",
	} {
		if got := pragma(s.readDB, name); got != want {
			t.Errorf("read connection: PRAGMA %s = %s, want %s", name, got, want)
		}
	}
}

// syncPragma reads the write connection's synchronous level once the
// writer has given the connection back.
func syncPragma(t *testing.T, s *Store) string {
	t.Helper()
	var v string
	if err := s.writeDB.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&v); err != nil {
		t.Fatalf("PRAGMA synchronous: %v", err)
	}
	return v
}

func TestQueueWritesSkipFsyncInsertsDoNot(t *testing.T) {
	s := openTest(t, Config{})
	ctx := t.Context()
	if _, err := s.Insert(ctx, testEvent("sink-a")); err != nil {
		t.Fatal(err)
	}
	if got := syncPragma(t, s); got != "2" {
		t.Fatalf("after an insert: synchronous = %s, want 2 (FULL)", got)
	}
	cs, err := s.Claim(ctx, crmhook.ClaimParams{Limit: 1, Lease: time.Minute})
	if err != nil || len(cs) != 1 {
		t.Fatalf("Claim = %d, %v", len(cs), err)
	}
	if got := syncPragma(t, s); got != "1" {
		t.Errorf("after a claim alone: synchronous = %s, want 1 (NORMAL)", got)
	}
	if err := s.Complete(ctx, cs[0]); err != nil {
		t.Fatal(err)
	}
	if got := syncPragma(t, s); got != "1" {
		t.Errorf("after a complete alone: synchronous = %s, want 1 (NORMAL)", got)
	}
	if _, err := s.Reject(ctx, crmhook.Rejection{Event: testEvent().Event, Reason: "too old"}); err != nil {
		t.Fatal(err)
	}
	if got := syncPragma(t, s); got != "2" {
		t.Errorf("after a rejection: synchronous = %s, want 2 (FULL)", got)
	}
	if _, err := s.Insert(ctx, testEvent("sink-a")); err != nil {
		t.Fatal(err)
	}
	if got := syncPragma(t, s); got != "2" {
		t.Errorf("after an insert: synchronous = %s, want 2 (FULL)", got)
	}
}

func TestClaimsAndOutcomesShareTheInsertsCommit(t *testing.T) {
	s, counter := openCounting(t, Config{})
	ctx := t.Context()
	if _, err := s.Insert(ctx, testEvent("sink-a")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Insert(ctx, testEvent("sink-a")); err != nil {
		t.Fatal(err)
	}
	held, err := s.Claim(ctx, crmhook.ClaimParams{Limit: 1, Lease: time.Minute})
	if err != nil || len(held) != 1 {
		t.Fatalf("Claim = %d, %v", len(held), err)
	}
	commitsBefore, _ := counter.stats()

	release := holdWriter(t, s)
	waitsBefore := s.writeDB.Stats().WaitCount
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := s.Insert(ctx, testEvent("sink-a")); err != nil {
			t.Errorf("Insert: %v", err)
		}
	})
	// The writer takes the insert first and waits for the connection.
	deadline := time.Now().Add(10 * time.Second)
	for s.writeDB.Stats().WaitCount == waitsBefore {
		if time.Now().After(deadline) {
			t.Fatal("the writer never waited for the held connection")
		}
		time.Sleep(time.Millisecond)
	}
	var claimed []crmhook.Claim
	wg.Go(func() {
		var err error
		if claimed, err = s.Claim(ctx, crmhook.ClaimParams{Limit: 5, Lease: time.Minute}); err != nil {
			t.Errorf("Claim: %v", err)
		}
	})
	wg.Go(func() {
		if err := s.Complete(ctx, held[0]); err != nil {
			t.Errorf("Complete: %v", err)
		}
	})
	wg.Go(func() {
		bogus := held[0]
		bogus.Lease = "not-the-lease"
		if err := s.Retry(ctx, bogus, time.Now(), "x"); !errors.Is(err, crmhook.ErrLeaseLost) {
			t.Errorf("Retry with a wrong lease: %v, want ErrLeaseLost", err)
		}
	})
	waitQueued(t, 3)
	release()
	wg.Wait()

	if commits, _ := counter.stats(); commits != commitsBefore+1 {
		t.Errorf("an insert, a claim and two outcomes took %d commits, want 1", commits-commitsBefore)
	}
	// The claim ran in the insert's transaction, after it: it sees the
	// inserted delivery besides the unleased old one, and finds each event
	// on the read pool.
	if len(claimed) != 2 {
		t.Fatalf("claimed %d deliveries, want the 2 pending unleased ones", len(claimed))
	}
	for _, c := range claimed {
		if len(c.Event.Payload) == 0 || c.Event.ID != c.Delivery.EventID {
			t.Errorf("claim came without its event: %+v", c.Event)
		}
	}
	if st, err := s.Stats(ctx); err != nil || st.Pending != 2 {
		t.Errorf("Stats = %+v, %v; want 2 pending (one delivered)", st, err)
	}
	if got := syncPragma(t, s); got != "2" {
		t.Errorf("a group with an insert: synchronous = %s, want 2 (FULL)", got)
	}
}

func TestClaimLimitsVary(t *testing.T) {
	s := openTest(t, Config{})
	ctx := t.Context()
	for range 20 {
		if _, err := s.Insert(ctx, testEvent("sink-a")); err != nil {
			t.Fatal(err)
		}
	}
	// One prepared statement serves every limit (see claimSQL).
	total := 0
	for _, limit := range []int{3, 1, 7, 2, 5, 10} {
		cs, err := s.Claim(ctx, crmhook.ClaimParams{Limit: limit, Lease: time.Minute, Sinks: []string{"sink-a"}})
		if err != nil {
			t.Fatal(err)
		}
		want := min(limit, 20-total)
		if len(cs) != want {
			t.Errorf("Claim with Limit %d = %d claims, want %d", limit, len(cs), want)
		}
		total += len(cs)
	}
}

func TestReopenKeepsDataAndMigrationsAreIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crmhook.db")
	ne := testEvent("sink-a")
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Insert(t.Context(), ne); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s := openTest(t, Config{Path: path})
		ev, ds, err := s.GetEvent(t.Context(), ne.Event.ID)
		if err != nil || string(ev.Payload) != string(ne.Event.Payload) || len(ds) != 1 {
			t.Fatalf("after reopen GetEvent = %v, %d deliveries, %v", ev, len(ds), err)
		}
		ms, err := sqlstore.LoadMigrations(migrationFiles, "migrations")
		if err != nil {
			t.Fatal(err)
		}
		var applied, max int
		if err := s.readDB.QueryRowContext(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&applied, &max); err != nil {
			t.Fatal(err)
		}
		if applied != len(ms) || max != ms[len(ms)-1].Version {
			t.Errorf("schema_migrations has %d rows up to %d, want %d up to %d", applied, max, len(ms), ms[len(ms)-1].Version)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMigrationFromTheFutureRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crmhook.db")
	s := openTest(t, Config{Path: path})
	if _, err := s.writeDB.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(t.Context(), Config{Path: path}); err == nil {
		s2.Close()
		t.Fatal("Open of a file with an unknown migration succeeded")
	}
}

func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "crmhook")
	path := filepath.Join(dir, "crmhook.db")
	s := openTest(t, Config{Path: path})
	if _, err := s.Insert(t.Context(), testEvent("sink-a")); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600, path + "-wal": 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", filepath.Base(p), fi.Mode(), want)
		}
	}
}

func TestGroupCommitBatches(t *testing.T) {
	const n = 200
	s, counter := openCounting(t, Config{})
	release := holdWriter(t, s)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		ne := testEvent("sink-a")
		wg.Go(func() {
			if _, err := s.Insert(t.Context(), ne); err != nil {
				failed.Add(1)
				t.Errorf("Insert: %v", err)
			}
		})
	}
	waitQueued(t, n-1) // the writer holds the first one, waiting for the connection
	release()
	wg.Wait()

	commits, inserts := counter.stats()
	if inserts != n {
		t.Fatalf("commits carried %d inserts, want %d", inserts, n)
	}
	if commits >= inserts {
		t.Errorf("%d inserts took %d commits: no grouping", inserts, commits)
	}
	// All but the first were queued when the writer began: at most BatchMax per commit.
	if want := int64((n + DefaultBatchMax - 1) / DefaultBatchMax); commits > want+1 {
		t.Errorf("%d commits for %d queued inserts, want about %d", commits, n, want)
	}
	counter.mu.Lock()
	batches := counter.batches
	counter.mu.Unlock()
	sum := 0
	for _, b := range batches {
		if b > DefaultBatchMax {
			t.Errorf("a commit carried %d inserts, more than BatchMax %d", b, DefaultBatchMax)
		}
		sum += b
	}
	if int64(len(batches)) != commits || sum != n {
		t.Errorf("OnCommit saw %d commits of %d inserts, want %d of %d", len(batches), sum, commits, n)
	}
	st, err := s.Stats(t.Context())
	if err != nil || st.Pending != n {
		t.Errorf("Stats = %+v, %v; want %d pending", st, err, n)
	}
}

func TestBatchMaxOneNeverGroups(t *testing.T) {
	s, counter := openCounting(t, Config{BatchMax: 1})
	release := holdWriter(t, s)
	var wg sync.WaitGroup
	for range 5 {
		ne := testEvent("sink-a")
		wg.Go(func() {
			if _, err := s.Insert(t.Context(), ne); err != nil {
				t.Errorf("Insert: %v", err)
			}
		})
	}
	waitQueued(t, 4)
	release()
	wg.Wait()
	if commits, inserts := counter.stats(); commits != 5 || inserts != 5 {
		t.Errorf("%d commits, %d inserts; want 5, 5", commits, inserts)
	}
}

func TestSavepointIsolatesBadEvent(t *testing.T) {
	s, counter := openCounting(t, Config{})
	ctx := t.Context()
	release := holdWriter(t, s)

	a, b, c := testEvent("sink-a"), testEvent("sink-b"), testEvent("sink-c")
	b.Event.ID = a.Event.ID // one of a and b cannot be stored
	type outcome struct {
		name string
		err  error
	}
	out := make(chan outcome, 3)
	for name, ne := range map[string]crmhook.NewEvent{"a": a, "b": b, "c": c} {
		go func() {
			_, err := s.Insert(ctx, ne)
			out <- outcome{name, err}
		}()
	}
	waitQueued(t, 2)
	release()
	errs := map[string]error{}
	for range 3 {
		o := <-out
		errs[o.name] = o.err
	}
	if errs["c"] != nil {
		t.Errorf("the good event failed with the bad one: %v", errs["c"])
	}
	if (errs["a"] == nil) == (errs["b"] == nil) {
		t.Fatalf("inserts sharing an event id: a: %v, b: %v; want exactly one error", errs["a"], errs["b"])
	}
	loser, winner := b, a
	if errs["a"] != nil {
		loser, winner = a, b
	}
	if errors.Is(errs["a"], crmhook.ErrUnavailable) || errors.Is(errs["b"], crmhook.ErrUnavailable) {
		t.Errorf("a bad event reported the store unavailable: %v %v", errs["a"], errs["b"])
	}
	if commits, inserts := counter.stats(); commits != 1 || inserts != 3 {
		t.Errorf("%d commits, %d inserts; want all three in 1 commit", commits, inserts)
	}
	_, ds, err := s.GetEvent(ctx, a.Event.ID)
	if err != nil || len(ds) != 1 || ds[0].Sink != winner.Sinks[0] {
		t.Errorf("the shared id has deliveries %v (%v), want only %s's", ds, err, winner.Sinks[0])
	}
	// The failed event's savepoint took its dedupe key with it.
	retry := testEvent("sink-x")
	retry.Event.DedupeKey = loser.Event.DedupeKey
	if res, err := s.Insert(ctx, retry); err != nil || res.Duplicate {
		t.Errorf("Insert with the failed event's key = %+v, %v; want stored", res, err)
	}
}

func TestReadOnlyDatabaseIsUnavailable(t *testing.T) {
	s := openTest(t, Config{})
	ctx := t.Context()
	if _, err := s.Insert(ctx, testEvent("sink-a")); err != nil {
		t.Fatal(err)
	}
	// The tests run as root, whom file modes do not stop; query_only makes
	// SQLite refuse writes with the same SQLITE_READONLY a read-only file
	// (or a file system remounted read-only) gives.
	if _, err := s.writeDB.ExecContext(ctx, `PRAGMA query_only = ON`); err != nil {
		t.Fatal(err)
	}
	_, err := s.Insert(ctx, testEvent("sink-a"))
	if !errors.Is(err, crmhook.ErrUnavailable) {
		t.Fatalf("Insert into a read-only database: %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "readonly") {
		t.Errorf("the error hides its cause: %v", err)
	}
	if _, err := s.Claim(ctx, crmhook.ClaimParams{Limit: 1, Lease: time.Minute}); !errors.Is(err, crmhook.ErrUnavailable) {
		t.Errorf("Claim on a read-only database: %v, want ErrUnavailable", err)
	}
	if _, err := s.Reject(ctx, crmhook.Rejection{Event: testEvent().Event, Reason: "too old"}); !errors.Is(err, crmhook.ErrUnavailable) {
		t.Errorf("Reject on a read-only database: %v, want ErrUnavailable", err)
	}
	// Reads still serve.
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestDiskFullIsUnavailableAndRecovers(t *testing.T) {
	s := openTest(t, Config{})
	ctx := t.Context()
	var pages int
	if err := s.writeDB.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	// Cap the file at its current size: the next page it needs is "disk full".
	if _, err := s.writeDB.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	big := testEvent("sink-a")
	big.Event.Payload = json.RawMessage(`{"pad":"` + strings.Repeat("x", 256<<10) + `"}`)
	_, err := s.Insert(ctx, big)
	if !errors.Is(err, crmhook.ErrUnavailable) {
		t.Fatalf("Insert into a full database: %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "full") {
		t.Errorf("the error hides its cause: %v", err)
	}
	if _, _, err := s.GetEvent(ctx, big.Event.ID); !errors.Is(err, crmhook.ErrNotFound) {
		t.Errorf("the event that did not fit: %v, want ErrNotFound", err)
	}
	if _, err := s.writeDB.ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Insert(ctx, big); err != nil || res.Duplicate {
		t.Errorf("Insert once there is room = %+v, %v; want stored (the failed one kept no key)", res, err)
	}
}

func TestLostDatabaseHandleIsUnavailable(t *testing.T) {
	s := openTest(t, Config{})
	// What the writer finds when its connection is gone from under it.
	if err := s.writeDB.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Insert(t.Context(), testEvent("sink-a")); !errors.Is(err, crmhook.ErrUnavailable) {
		t.Errorf("Insert without a database: %v, want ErrUnavailable", err)
	}
	if _, err := s.Claim(t.Context(), crmhook.ClaimParams{Limit: 1, Lease: time.Minute}); !errors.Is(err, crmhook.ErrUnavailable) {
		t.Errorf("Claim without a database: %v, want ErrUnavailable", err)
	}
}

func TestInsertFillsIDAndReceivedAt(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := openTest(t, Config{Now: func() time.Time { return now }})
	ne := testEvent("sink-a")
	ne.Event.ID = ""
	ne.Event.ReceivedAt = time.Time{}
	res, err := s.Insert(t.Context(), ne)
	if err != nil || res.EventID == "" {
		t.Fatalf("Insert = %+v, %v", res, err)
	}
	ev, ds, err := s.GetEvent(t.Context(), res.EventID)
	if err != nil {
		t.Fatal(err)
	}
	if !ev.ReceivedAt.Equal(now) || !ds[0].CreatedAt.Equal(now) || !ds[0].NextAttemptAt.Equal(now) {
		t.Errorf("received %v, created %v, due %v; want the store clock's %v", ev.ReceivedAt, ds[0].CreatedAt, ds[0].NextAttemptAt, now)
	}
}

func TestInsertDuplicateSinksOnce(t *testing.T) {
	s := openTest(t, Config{})
	ne := testEvent("sink-a", "sink-b", "sink-a")
	if _, err := s.Insert(t.Context(), ne); err != nil {
		t.Fatal(err)
	}
	if _, ds, err := s.GetEvent(t.Context(), ne.Event.ID); err != nil || len(ds) != 2 {
		t.Errorf("deliveries = %d, %v; want one per distinct sink", len(ds), err)
	}
}

func TestEmptyDedupeKeyNeverDuplicate(t *testing.T) {
	s := openTest(t, Config{})
	for range 2 {
		ne := testEvent("sink-a")
		ne.Event.DedupeKey = ""
		if res, err := s.Insert(t.Context(), ne); err != nil || res.Duplicate {
			t.Fatalf("Insert without a dedupe key = %+v, %v", res, err)
		}
	}
}

// A dedupe key lives on its event's row: inserts write nothing to
// dedupe_keys (two B-trees fewer per event), and the lookup searches
// indexes only.
func TestDedupeKeyLivesOnTheEvent(t *testing.T) {
	s := openTest(t, Config{})
	ne := testEvent("sink-a")
	ne.DedupeUntil = time.Now().Add(time.Hour)
	if res, err := s.Insert(t.Context(), ne); err != nil || res.Duplicate {
		t.Fatalf("Insert = %+v, %v", res, err)
	}
	again := testEvent("sink-a")
	again.Event.DedupeKey = ne.Event.DedupeKey
	if res, err := s.Insert(t.Context(), again); err != nil || !res.Duplicate || res.EventID != ne.Event.ID {
		t.Fatalf("Insert of the same key = %+v, %v; want a duplicate of %s", res, err, ne.Event.ID)
	}
	var keys int
	if err := s.readDB.QueryRowContext(t.Context(), `SELECT count(*) FROM dedupe_keys`).Scan(&keys); err != nil || keys != 0 {
		t.Errorf("dedupe_keys holds %d rows (%v) after inserts; want none", keys, err)
	}
	now := time.Now().UnixMicro()
	for name, plan := range map[string][]string{
		"insert": queryPlan(t, s, insertEventSQL, "id", "affinity", "affinity", "t", ne.Event.DedupeKey, nil, now, []byte("{}"), now, now),
		"owner":  queryPlan(t, s, liveKeySQL, ne.Event.DedupeKey, now),
	} {
		var viaEvents, viaKeys bool
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN") && step != "SCAN CONSTANT ROW" {
				t.Errorf("the dedupe %s scans: %q (plan %q)", name, step, plan)
			}
			viaEvents = viaEvents || strings.Contains(step, "INDEX events_dedupe_key (dedupe_key=?)")
			viaKeys = viaKeys || strings.Contains(step, "SEARCH dedupe_keys USING PRIMARY KEY (key=?)")
		}
		if !viaEvents || !viaKeys {
			t.Errorf("the dedupe %s's plan %q does not search events_dedupe_key and dedupe_keys' key", name, plan)
		}
	}
}

// A database from before migration 0004 keeps its events' keys in
// dedupe_keys; they stay live there until their window ends.
func TestDedupeKeysFromBeforeTheMigrationStayLive(t *testing.T) {
	s := openTest(t, Config{})
	now := time.Now()
	for key, until := range map[string]time.Time{"live": now.Add(time.Hour), "ended": now.Add(-time.Second)} {
		if _, err := s.writeDB.ExecContext(t.Context(), `INSERT INTO dedupe_keys (key, event_id, expires_at) VALUES (?, ?, ?)`,
			key, "old-"+key, until.UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	live := testEvent("sink-a")
	live.Event.DedupeKey = "live"
	if res, err := s.Insert(t.Context(), live); err != nil || !res.Duplicate || res.EventID != "old-live" {
		t.Errorf("Insert of a key live in dedupe_keys = %+v, %v; want a duplicate of old-live", res, err)
	}
	ended := testEvent("sink-a")
	ended.Event.DedupeKey = "ended"
	if res, err := s.Insert(t.Context(), ended); err != nil || res.Duplicate {
		t.Errorf("Insert of a key whose window ended in dedupe_keys = %+v, %v; want stored", res, err)
	}
}

// Every insert that returned nil is in the file after Close and reopen;
// inserts racing Close fail with ErrClosed, none hangs.
func TestCloseUnderLoadKeepsAcknowledged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crmhook.db")
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for {
				ne := testEvent("sink-a")
				_, err := s.Insert(context.Background(), ne)
				if errors.Is(err, crmhook.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Insert: %v", err)
					return
				}
				mu.Lock()
				acked = append(acked, ne.Event.ID)
				mu.Unlock()
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d inserts in 10s", n)
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	s = openTest(t, Config{Path: path})
	for _, id := range acked {
		if _, _, err := s.GetEvent(t.Context(), id); err != nil {
			t.Fatalf("acknowledged event %s: %v", id, err)
		}
	}
}

func TestLeaseTokensAreFreshPerClaim(t *testing.T) {
	s := openTest(t, Config{})
	if _, err := s.Insert(t.Context(), testEvent("sink-a", "sink-b")); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Claim(t.Context(), crmhook.ClaimParams{Limit: 2, Lease: time.Minute})
	if err != nil || len(cs) != 2 {
		t.Fatalf("Claim = %d, %v", len(cs), err)
	}
	for _, c := range cs {
		if len(c.Lease) != 32 {
			t.Errorf("lease %q: want 128 random bits in hex", c.Lease)
		}
	}
	if cs[0].Lease == cs[1].Lease {
		t.Error("two claims share a lease")
	}
	if _, err := s.Claim(t.Context(), crmhook.ClaimParams{Limit: 1}); err == nil {
		t.Error("Claim without a lease duration succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no path":           {},
		"negative BatchMax": {Path: "x.db", BatchMax: -1},
		"tiny BusyTimeout":  {Path: "x.db", BusyTimeout: time.Microsecond},
		"negative reads":    {Path: "x.db", MaxReadConns: -2},
	} {
		if err := cfg.withDefaults().validate(); err == nil {
			t.Errorf("%s: validate accepted %+v", name, cfg)
		}
	}
	cfg := Config{Path: "x.db"}.withDefaults()
	if err := cfg.validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if cfg.BatchMax != DefaultBatchMax || cfg.BusyTimeout != DefaultBusyTimeout || cfg.MaxReadConns != DefaultMaxReadConns || cfg.Now == nil {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestSQLiteGlob(t *testing.T) {
	for in, want := range map[string]string{
		"person.*":    "person.*",
		`list\*`:      "list[*]",
		"a?c[^x]":     "a?c[^x]",
		`trailing\`:   `trailing\`,
		"plain.event": "plain.event",
	} {
		if got := sqliteGlob(in); got != want {
			t.Errorf("sqliteGlob(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkInsertSerial(b *testing.B) {
	s, counter := openCounting(b, Config{})
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Insert(ctx, testEvent("sink-a")); err != nil {
			b.Fatal(err)
		}
	}
	reportCommits(b, counter)
}

func BenchmarkInsertParallel(b *testing.B) {
	s, counter := openCounting(b, Config{})
	ctx := context.Background()
	b.SetParallelism(16) // receivers serve many connections at once
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Insert(ctx, testEvent("sink-a")); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportCommits(b, counter)
}

func reportCommits(b *testing.B, c *commitCounter) {
	commits, inserts := c.stats()
	if commits > 0 {
		b.ReportMetric(float64(inserts)/float64(commits), "inserts/commit")
	}
}

// BenchmarkClaimComplete is the dispatcher's side of the writer: claim eight
// deliveries of one sink, complete them, from a queue kept a few thousand deep.
func BenchmarkClaimComplete(b *testing.B) {
	s := openTest(b, Config{})
	ctx := context.Background()
	fill := func(n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if _, err := s.Insert(ctx, testEvent("sink-a")); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	fill(4000)
	b.ResetTimer()
	for b.Loop() {
		cs, err := s.Claim(ctx, crmhook.ClaimParams{Limit: 8 + rand.IntN(24), Lease: time.Minute, Sinks: []string{"sink-a"}})
		if err != nil {
			b.Fatal(err)
		}
		if len(cs) == 0 {
			b.StopTimer()
			fill(4000)
			b.StartTimer()
			continue
		}
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Go(func() {
				if err := s.Complete(ctx, c); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		fill(len(cs)) // what the receiver adds meanwhile
	}
}

// LastEventAt reads the end of the (source, received_at) index: one
// search, never a scan of events.
func TestLastEventAtUsesTheIndex(t *testing.T) {
	s := openTest(t, Config{})
	if _, err := s.Insert(t.Context(), testEvent("sink-a")); err != nil {
		t.Fatal(err)
	}
	plan := queryPlan(t, s, lastEventAtSQL, "affinity")
	searches := false
	for _, step := range plan {
		if strings.HasPrefix(step, "SCAN") {
			t.Errorf("LastEventAt's plan scans: %q (plan %q)", step, plan)
		}
		if strings.HasPrefix(step, "SEARCH events USING") && strings.Contains(step, "INDEX events_source_received_at (source=?)") {
			searches = true
		}
	}
	if !searches {
		t.Errorf("LastEventAt's plan %q does not search events_source_received_at", plan)
	}
}

// Every ControlStore write goes through the writer; those that must
// survive a power loss (secrets above all: Attio shows one once) commit
// with synchronous=FULL, leases with NORMAL like claims.
func TestControlWritesDurability(t *testing.T) {
	s := openTest(t, Config{})
	ctx := t.Context()
	if _, err := s.Insert(ctx, testEvent("sink-a")); err != nil {
		t.Fatal(err)
	}
	id, err := s.PutSecret(ctx, crmhook.SourceSecret{Source: "attio", Secret: "whsec-1"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, w := range []struct {
		name    string
		durable bool
		call    func() error
	}{
		{"AcquireLease", false, func() error { _, err := s.AcquireLease(ctx, "watchdog", "me", time.Minute); return err }},
		{"PutSecret", true, func() error {
			_, err := s.PutSecret(ctx, crmhook.SourceSecret{Source: "attio", Secret: "whsec-2"})
			return err
		}},
		{"ReleaseLease", false, func() error { return s.ReleaseLease(ctx, "watchdog", "me") }},
		{"SetSecretState", true, func() error { return s.SetSecretState(ctx, id, crmhook.SecretRetiring, now.Add(time.Hour)) }},
		{"AcquireLease", false, func() error { _, err := s.AcquireLease(ctx, "watchdog", "me", time.Minute); return err }},
		{"PutRotation", true, func() error { return s.PutRotation(ctx, crmhook.Rotation{Source: "attio", Phase: "created"}) }},
		{"AcquireLease", false, func() error { _, err := s.AcquireLease(ctx, "watchdog", "me", time.Minute); return err }},
		{"DeleteRotation", true, func() error { return s.DeleteRotation(ctx, "attio") }},
		{"AcquireLease", false, func() error { _, err := s.AcquireLease(ctx, "watchdog", "me", time.Minute); return err }},
		{"PutSubscriptionState", true, func() error {
			return s.PutSubscriptionState(ctx, crmhook.SubscriptionState{Source: "attio", SubscriptionID: "wh", Status: "active"})
		}},
		{"AcquireLease", false, func() error { _, err := s.AcquireLease(ctx, "watchdog", "me", time.Minute); return err }},
		{"RecordGap", true, func() error {
			_, err := s.RecordGap(ctx, crmhook.Gap{Source: "attio", SubscriptionID: "wh", From: now.Add(-time.Hour), To: now})
			return err
		}},
	} {
		if err := w.call(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		want := map[bool]string{true: "2", false: "1"}[w.durable]
		if got := syncPragma(t, s); got != want {
			t.Errorf("after %s alone: synchronous = %s, want %s", w.name, got, want)
		}
	}
}

// ControlStore writes share the group commit of whatever else is queued:
// there is one write path.
func TestControlWritesShareTheWriter(t *testing.T) {
	s, counter := openCounting(t, Config{})
	ctx := t.Context()
	release := holdWriter(t, s)
	waitsBefore := s.writeDB.Stats().WaitCount
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := s.Insert(ctx, testEvent("sink-a")); err != nil {
			t.Errorf("Insert: %v", err)
		}
	})
	// The writer takes the insert first and waits for the connection.
	deadline := time.Now().Add(10 * time.Second)
	for s.writeDB.Stats().WaitCount == waitsBefore {
		if time.Now().After(deadline) {
			t.Fatal("the writer never waited for the held connection")
		}
		time.Sleep(time.Millisecond)
	}
	wg.Go(func() {
		if _, err := s.PutSecret(ctx, crmhook.SourceSecret{Source: "attio", Secret: "whsec-1"}); err != nil {
			t.Errorf("PutSecret: %v", err)
		}
	})
	wg.Go(func() {
		if held, err := s.AcquireLease(ctx, "watchdog", "me", time.Minute); err != nil || !held {
			t.Errorf("AcquireLease = %v, %v", held, err)
		}
	})
	wg.Go(func() {
		if _, err := s.RecordGap(ctx, crmhook.Gap{Source: "attio", From: time.Now().Add(-time.Hour)}); err != nil {
			t.Errorf("RecordGap: %v", err)
		}
	})
	waitQueued(t, 3)
	release()
	wg.Wait()
	if commits, inserts := counter.stats(); commits != 1 || inserts != 1 {
		t.Errorf("an insert and three control writes took %d commits (%d inserts), want 1", commits, inserts)
	}
}

// The store's clock, not the caller's nor the wall's, decides when a lease
// has run out.
func TestLeaseExpiryByTheStoreClock(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := openTest(t, Config{Now: clock})
	ctx := t.Context()
	acquire := func(owner string) bool {
		t.Helper()
		held, err := s.AcquireLease(ctx, "watchdog", owner, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return held
	}
	if !acquire("a") {
		t.Fatal("a could not take a free lease")
	}
	advance(59 * time.Second)
	if acquire("b") {
		t.Fatal("b took the lease a second before it ran out")
	}
	advance(time.Second)
	if !acquire("b") {
		t.Fatal("b could not take the lease once it ran out by the store's clock")
	}
	if acquire("a") {
		t.Fatal("a took back the lease b holds")
	}
}

// A secret is never in an error, even one from a failing database.
func TestSecretNotInErrors(t *testing.T) {
	s := openTest(t, Config{})
	ctx := t.Context()
	const value = "whsec-do-not-quote-me"
	if _, err := s.writeDB.ExecContext(ctx, `PRAGMA query_only = ON`); err != nil {
		t.Fatal(err)
	}
	_, err := s.PutSecret(ctx, crmhook.SourceSecret{Source: "attio", Secret: value})
	if !errors.Is(err, crmhook.ErrUnavailable) {
		t.Fatalf("PutSecret into a read-only database: %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), value) {
		t.Errorf("the error quotes the secret")
	}
}
