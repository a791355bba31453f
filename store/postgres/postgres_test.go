package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/postgres"
	"github.com/crmhook/crmhook/store/postgres/pgtest"
	"github.com/crmhook/crmhook/store/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{URL: url})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) crmhook.Store {
		return open(t, pgtest.Schema(t))
	})
}

// The schema comes from the URL's search_path, which pgx sends as a run-time
// parameter: the tables land there and nowhere else.
func TestSchemaFromSearchPath(t *testing.T) {
	url := pgtest.Schema(t)
	s := open(t, url)
	schema := s.Schema()
	if !strings.HasPrefix(schema, "crmhook_test_") || !strings.Contains(url, "search_path="+schema) {
		t.Fatalf("store schema = %q, want the one in %s", schema, url)
	}
	conn, err := pgx.Connect(t.Context(), pgtest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tables []string
	rows, _ := conn.Query(t.Context(), `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name COLLATE "C"`, schema)
	tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := "[dedupe_keys deliveries events gaps leases rejections rotations schema_migrations secrets subscription_states]"
	if got := fmt.Sprint(tables); got != want {
		t.Errorf("tables in %s = %s, want %s", schema, got, want)
	}
}

func TestOpenWithoutSchemaFails(t *testing.T) {
	url := pgtest.Schema(t)
	missing := strings.Replace(url, "search_path=crmhook_test_", "search_path=crmhook_missing_", 1)
	s, err := postgres.Open(t.Context(), postgres.Config{URL: missing})
	if err == nil {
		s.Close()
		t.Fatal("Open with a search_path naming no existing schema succeeded")
	}
	if !strings.Contains(err.Error(), "CREATE SCHEMA") {
		t.Errorf("error %q does not say to create the schema", err)
	}
}

// Replicas starting at once all migrate the same new schema: the advisory
// lock lets one apply the migrations and the others find them applied.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	url := pgtest.Schema(t)
	const n = 6
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(t.Context(), postgres.Config{URL: url}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if t.Failed() {
		return
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var count int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	if count != len(files) {
		t.Errorf("schema_migrations has %d rows, want %d", count, len(files))
	}
}

// Two stores on one schema are two replicas: a key inserted concurrently
// through both is stored once, and both agree on the winner.
func TestDedupeAcrossReplicas(t *testing.T) {
	url := pgtest.Schema(t)
	a, b := open(t, url), open(t, url)
	const n = 40
	results := make([]crmhook.InsertResult, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			res, err := s.Insert(t.Context(), crmhook.NewEvent{
				Event: crmhook.Event{
					ID: crmhook.NewEventID(), Source: "affinity", Provider: crmhook.ProviderAffinity,
					Type: "person.created", DedupeKey: fmt.Sprint("shared-", i%n), ReceivedAt: time.Now(),
					Payload: []byte(`{}`),
				},
				Sinks:       []string{"sink-a"},
				DedupeUntil: time.Now().Add(time.Hour),
			})
			if err != nil {
				t.Errorf("Insert %d: %v", i, err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	for k := range n {
		x, y := results[k], results[k+n]
		if x.Duplicate == y.Duplicate || x.EventID != y.EventID {
			t.Errorf("key %d: results %+v and %+v, want one stored and one duplicate of it", k, x, y)
		}
	}
	if st, err := a.Stats(t.Context()); err != nil || st.Pending != n {
		t.Errorf("Stats = %+v, %v; want %d pending", st, err, n)
	}
}

// Claims from two replicas never overlap (SKIP LOCKED), and together they
// take everything.
func TestClaimAcrossReplicas(t *testing.T) {
	url := pgtest.Schema(t)
	a, b := open(t, url), open(t, url)
	const events = 60
	for i := range events {
		if _, err := a.Insert(t.Context(), crmhook.NewEvent{
			Event:       crmhook.Event{Source: "s", Type: "t", DedupeKey: fmt.Sprint("k", i), Payload: []byte(`{}`)},
			Sinks:       []string{"sink-a"},
			DedupeUntil: time.Now().Add(time.Hour),
		}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		seen = map[int64]int{}
		wg   sync.WaitGroup
	)
	for w := range 6 {
		s := []*postgres.Store{a, b}[w%2]
		wg.Go(func() {
			for {
				cs, err := s.Claim(t.Context(), crmhook.ClaimParams{Owner: fmt.Sprint("w", w), Limit: 4, Lease: time.Minute})
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if len(cs) == 0 {
					return
				}
				mu.Lock()
				for _, c := range cs {
					seen[c.Delivery.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != events {
		t.Errorf("claimed %d deliveries, want %d", len(seen), events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("delivery %d claimed %d times", id, n)
		}
	}
}

// An insert through one replica wakes the subscribers of another through
// LISTEN/NOTIFY; a subscription ends with its context.
func TestSubscribeWakesOtherReplicas(t *testing.T) {
	url := pgtest.Schema(t)
	a, b := open(t, url), open(t, url)
	woken := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	b.Subscribe(ctx, func() {
		select {
		case woken <- struct{}{}:
		default:
		}
	})
	insert := func() {
		t.Helper()
		if _, err := a.Insert(t.Context(), crmhook.NewEvent{
			Event: crmhook.Event{Source: "s", Type: "t", Payload: []byte(`{}`)},
			Sinks: []string{"sink-a"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	insert()
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("the other replica's subscriber was not woken within 10s")
	}
	cancel()
	// A second subscription is the barrier: the listener calls every
	// subscription for one notification at once, so once the second has
	// seen a notification sent after cancel, the first would have too.
	barrier := make(chan struct{}, 1)
	b.Subscribe(t.Context(), func() {
		select {
		case barrier <- struct{}{}:
		default:
		}
	})
	// Let the cancellation land (AfterFunc runs on its own goroutine).
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-woken:
		case <-barrier:
		default:
		}
		insert()
		select {
		case <-barrier:
		case <-time.After(10 * time.Second):
			t.Fatal("the live subscription was not woken within 10s")
		}
		select {
		case <-woken:
			if time.Now().After(deadline) {
				t.Fatal("a cancelled subscription is still called")
			}
			continue
		default:
		}
		return
	}
}

// Whatever the store cannot do for want of a server is ErrUnavailable, not
// a request error: the receiver answers 503 and the provider retries.
func TestUnavailable(t *testing.T) {
	_, err := postgres.Open(t.Context(), postgres.Config{URL: "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"})
	if !errors.Is(err, crmhook.ErrUnavailable) {
		t.Errorf("Open of an unreachable server: %v, want ErrUnavailable", err)
	}
	if _, err := postgres.Open(t.Context(), postgres.Config{}); err == nil {
		t.Error("Open without a URL succeeded")
	}
}

// One bad insert among concurrent ones (its event id is taken) fails alone:
// whether it shared a group commit or not, the others are stored.
func TestBadInsertFailsAlone(t *testing.T) {
	s := open(t, pgtest.Schema(t))
	taken := crmhook.NewEventID()
	if _, err := s.Insert(t.Context(), crmhook.NewEvent{Event: crmhook.Event{ID: taken, Source: "s", Type: "t", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	const n = 64
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		id := crmhook.NewEventID()
		if i == n/2 {
			id = taken
		}
		wg.Go(func() {
			_, errs[i] = s.Insert(t.Context(), crmhook.NewEvent{
				Event:       crmhook.Event{ID: id, Source: "batch", Type: "t", DedupeKey: fmt.Sprint("bad-alone-", i), Payload: []byte(`{}`)},
				Sinks:       []string{"sink-a"},
				DedupeUntil: time.Now().Add(time.Hour),
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == n/2 {
			if err == nil || errors.Is(err, crmhook.ErrUnavailable) {
				t.Errorf("insert reusing an event id: %v, want a request error", err)
			}
		} else if err != nil {
			t.Errorf("insert %d: %v", i, err)
		}
	}
	evs, err := s.ListEvents(t.Context(), crmhook.EventFilter{Source: "batch", Limit: 1000})
	if err != nil || len(evs) != n-1 {
		t.Errorf("stored %d events, %v; want %d", len(evs), err, n-1)
	}
}

// Replicas race for one lease through their own stores: exactly one owner
// holds it, whichever replica asked first.
func TestLeaseAcrossReplicas(t *testing.T) {
	url := pgtest.Schema(t)
	stores := []*postgres.Store{open(t, url), open(t, url), open(t, url)}
	const perReplica = 12
	var (
		mu   sync.Mutex
		held = map[string]int{}
		wg   sync.WaitGroup
	)
	for i := range perReplica * len(stores) {
		r := i % len(stores)
		wg.Go(func() {
			owner := fmt.Sprint("replica-", r)
			ok, err := stores[r].AcquireLease(t.Context(), "watchdog", owner, time.Minute)
			if err != nil {
				t.Errorf("AcquireLease: %v", err)
				return
			}
			if ok {
				mu.Lock()
				held[owner]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(held) != 1 {
		t.Fatalf("owners holding the lease: %v, want exactly one", held)
	}
	for owner, n := range held {
		if n != perReplica {
			t.Errorf("%s held the lease in %d of its %d calls, want all", owner, n, perReplica)
		}
	}
}

// The store's clock decides when a lease has run out.
func TestLeaseExpiryByTheStoreClock(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s, err := postgres.Open(t.Context(), postgres.Config{URL: pgtest.Schema(t), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	acquire := func(owner string) bool {
		t.Helper()
		held, err := s.AcquireLease(t.Context(), "watchdog", owner, time.Minute)
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

// LastEventAt can read the end of the (source, received_at) index instead
// of scanning events.
func TestLastEventAtUsesTheIndex(t *testing.T) {
	url := pgtest.Schema(t)
	s := open(t, url)
	for range 3 {
		if _, err := s.Insert(t.Context(), crmhook.NewEvent{Event: crmhook.Event{Source: "attio", Type: "t", Payload: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	// A table this small would be read whole, index or not: ask whether
	// the index can serve.
	if _, err := tx.Exec(t.Context(), `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	rows, _ := tx.Query(t.Context(), `EXPLAIN `+postgres.LastEventAtSQL, "attio")
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "Index Only Scan Backward using events_source_received_at") || strings.Contains(plan, "Seq Scan") {
		t.Errorf("LastEventAt's plan does not read the end of events_source_received_at:\n%s", plan)
	}
}

// An error of a statement on secrets never carries the row Postgres
// failed on: the secret is one of its columns.
func TestSecretNotInErrors(t *testing.T) {
	url := pgtest.Schema(t)
	s := open(t, url)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	const value = "whsec-do-not-quote-me"
	// A constraint of the operator's own that this secret breaks: Postgres
	// reports the failing row in the error's detail.
	if _, err := conn.Exec(t.Context(), `ALTER TABLE secrets ADD CONSTRAINT not_this_one CHECK (secret <> '`+value+`')`); err != nil {
		t.Fatal(err)
	}
	_, err = s.PutSecret(t.Context(), crmhook.SourceSecret{Source: "attio", Secret: value})
	if err == nil {
		t.Fatal("PutSecret broke a constraint and succeeded")
	}
	if errors.Is(err, crmhook.ErrUnavailable) {
		t.Errorf("a constraint violation: %v, want a request error", err)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23514" {
		t.Errorf("PutSecret's error %v lost its SQLSTATE", err)
	}
	if strings.Contains(err.Error(), value) || pe != nil && strings.Contains(fmt.Sprintf("%#v", *pe), value) {
		t.Errorf("PutSecret's error carries the secret")
	}
}
