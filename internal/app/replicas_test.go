package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/embedded"
	"github.com/crmhook/crmhook/store/postgres"
	"github.com/crmhook/crmhook/store/postgres/pgtest"
)

// countingSink is the one service every replica's "svc" sink posts to, each
// replica under its own path. It counts the events it answered 2xx by the
// Affinity body id they carry. A replica's path can be made to hang: such
// requests are held until the client gives up, and never answered 2xx.
type countingSink struct {
	mu        sync.Mutex
	delivered map[int]int            // body id → 2xx answers
	byReplica map[int]string         // body id → replica whose 2xx delivered it (last)
	hung      map[int]bool           // body ids whose request hung
	hangPath  atomic.Pointer[string] // requests to this path hang
	total     atomic.Int64
}

func newCountingSink(t *testing.T) (*countingSink, *httptest.Server) {
	cs := &countingSink{delivered: map[int]int{}, byReplica: map[int]string{}, hung: map[int]bool{}}
	srv := httptest.NewServer(cs)
	t.Cleanup(srv.Close)
	return cs, srv
}

func (cs *countingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var ce struct {
		Data struct {
			Body struct {
				ID int `json:"id"`
			} `json:"body"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &ce); err != nil || ce.Data.Body.ID == 0 {
		http.Error(w, "not a CloudEvent of a test event", http.StatusBadRequest)
		return
	}
	id := ce.Data.Body.ID
	replica := strings.TrimPrefix(r.URL.Path, "/")
	if p := cs.hangPath.Load(); p != nil && *p == r.URL.Path {
		cs.mu.Lock()
		cs.hung[id] = true
		cs.mu.Unlock()
		<-r.Context().Done() // the crashed replica's attempt is cut off by its deadline
		return
	}
	cs.mu.Lock()
	cs.delivered[id]++
	cs.byReplica[id] = replica
	cs.mu.Unlock()
	cs.total.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func (cs *countingSink) snapshot() (delivered map[int]int, byReplica map[int]string, hung map[int]bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delivered, byReplica, hung = map[int]int{}, map[int]string{}, map[int]bool{}
	for k, v := range cs.delivered {
		delivered[k] = v
	}
	for k, v := range cs.byReplica {
		byReplica[k] = v
	}
	for k, v := range cs.hung {
		hung[k] = v
	}
	return delivered, byReplica, hung
}

// crashableStore lets a test kill a replica without it releasing anything:
// once crashed, every call fails as if the process were gone, so the
// leases it holds stay until they run out.
type crashableStore struct {
	crmhook.Store
	crashed atomic.Bool
}

var errCrashed = fmt.Errorf("replica crashed: %w", crmhook.ErrUnavailable)

func (c *crashableStore) Insert(ctx context.Context, ne crmhook.NewEvent) (crmhook.InsertResult, error) {
	if c.crashed.Load() {
		return crmhook.InsertResult{}, errCrashed
	}
	return c.Store.Insert(ctx, ne)
}

func (c *crashableStore) Claim(ctx context.Context, p crmhook.ClaimParams) ([]crmhook.Claim, error) {
	if c.crashed.Load() {
		return nil, errCrashed
	}
	return c.Store.Claim(ctx, p)
}

func (c *crashableStore) Complete(ctx context.Context, cl crmhook.Claim) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.Store.Complete(ctx, cl)
}

func (c *crashableStore) Retry(ctx context.Context, cl crmhook.Claim, next time.Time, lastErr string) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.Store.Retry(ctx, cl, next, lastErr)
}

func (c *crashableStore) Kill(ctx context.Context, cl crmhook.Claim, lastErr string) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.Store.Kill(ctx, cl, lastErr)
}

func (c *crashableStore) Release(ctx context.Context, cl crmhook.Claim) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.Store.Release(ctx, cl)
}

const replicaLease = 2 * time.Second

// startReplica runs one app.Main on the shared schema whose "svc" sink posts
// to sinkURL/name. store, when set, is used instead of opening one.
func startReplica(t *testing.T, name, storeURL, secret, sinkURL string, store crmhook.Store) *Main {
	t.Helper()
	cfg := &config.Config{
		Listen:  "127.0.0.1:0",
		Admin:   config.Admin{Listen: "off"},
		DataDir: t.TempDir(),
		Store:   storeURL,
		Sources: []config.Source{{Name: "affinity", Provider: crmhook.ProviderAffinity, Secrets: []string{secret}}},
		Sinks:   []config.Sink{{Name: "svc", Type: "http", URL: sinkURL + "/" + name, Concurrency: 4, Timeout: time.Second}},
		Delivery: config.Delivery{
			Lease:        replicaLease,
			PollInterval: 100 * time.Millisecond,
			BaseDelay:    50 * time.Millisecond,
			MaxDelay:     200 * time.Millisecond,
		},
		ShutdownGrace: 3 * time.Second,
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	m := &Main{Config: cfg, Owner: name, Store: store}
	if err := m.Open(t.Context()); err != nil {
		t.Fatalf("replica %s: open: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica %s: run: %v", name, err)
		}
		m.Close()
	})
	return m
}

// sendAffinity posts one Affinity event with body id n and answers its status.
func sendAffinity(t *testing.T, m *Main, secret string, n int, sentAt int64) int {
	t.Helper()
	body := fmt.Sprintf(`{"type":"person.created","body":{"id":%d,"first_name":"Ada"},"sent_at":%d}`, n, sentAt)
	res, err := http.Post(m.HookURL()+"/hooks/affinity/"+secret, "application/json", strings.NewReader(body))
	if err != nil {
		t.Errorf("send %d: %v", n, err)
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// Several replicas on one Postgres schema, one shared service behind their
// sinks: every event, redeliveries to other replicas included, reaches the
// service exactly once; and a replica that crashes holding leases loses
// nothing: the others take its deliveries over once the leases run out.
func TestReplicasDeliverExactlyOnceAndSurviveACrash(t *testing.T) {
	storeURL := pgtest.Schema(t)
	secret := embedded.RandomSecret(32)
	sink, srv := newCountingSink(t)

	// The victim's store is the test's, so that the test can crash it.
	realStore, err := postgres.Open(t.Context(), postgres.Config{URL: storeURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { realStore.Close() })
	victimStore := &crashableStore{Store: realStore}

	replicas := []*Main{
		startReplica(t, "r0", storeURL, secret, srv.URL, nil),
		startReplica(t, "r1", storeURL, secret, srv.URL, nil),
		startReplica(t, "r2", storeURL, secret, srv.URL, nil),
	}
	victim := startReplica(t, "victim", storeURL, secret, srv.URL, victimStore)
	all := append(append([]*Main(nil), replicas...), victim)

	// Phase 1: 60 events spread over all four replicas, each third one sent
	// again, the same body, to another replica (a provider redelivery).
	const first = 60
	sentAt := time.Now().Unix()
	var wg sync.WaitGroup
	for n := 1; n <= first; n++ {
		wg.Go(func() {
			if n%3 == 0 {
				// Racing the original: the dedupe key decides across replicas.
				wg.Go(func() {
					if code := sendAffinity(t, all[(n+1)%len(all)], secret, n, sentAt); code != http.StatusOK {
						t.Errorf("redelivery of %d: status %d, want 200", n, code)
					}
				})
			}
			if code := sendAffinity(t, all[n%len(all)], secret, n, sentAt); code != http.StatusOK {
				t.Errorf("event %d: status %d, want 200", n, code)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	waitFor(t, "phase 1 delivered", 30*time.Second, func() bool { return sink.total.Load() >= first })
	waitFor(t, "nothing pending", 30*time.Second, func() bool {
		st, err := realStore.Stats(t.Context())
		return err == nil && st.Pending == 0
	})
	delivered, byReplica, _ := sink.snapshot()
	for n := 1; n <= first; n++ {
		if delivered[n] != 1 {
			t.Errorf("event %d reached the service %d times, want exactly once", n, delivered[n])
		}
	}
	if len(delivered) != first {
		t.Errorf("the service got %d distinct events, want %d", len(delivered), first)
	}
	if t.Failed() {
		return
	}
	// Work was shared: more than one replica delivered.
	seen := map[string]bool{}
	for _, r := range byReplica {
		seen[r] = true
	}
	t.Logf("phase 1: %d events delivered by replicas %v", first, seen)

	// Phase 2: the victim's service path hangs, events arrive at the
	// victim, and it crashes while its attempts hang, holding their leases.
	hang := "/victim"
	sink.hangPath.Store(&hang)
	const second = 30
	for n := first + 1; n <= first+second; n++ {
		if code := sendAffinity(t, victim, secret, n, sentAt); code != http.StatusOK {
			t.Fatalf("event %d to the victim: status %d, want 200", n, code)
		}
	}
	waitFor(t, "the victim to hold a hung delivery", 10*time.Second, func() bool {
		_, _, hung := sink.snapshot()
		return len(hung) > 0
	})
	victimStore.crashed.Store(true)

	waitFor(t, "every event delivered", 30*time.Second, func() bool { return sink.total.Load() >= first+second })
	waitFor(t, "nothing pending after the crash", 30*time.Second, func() bool {
		st, err := realStore.Stats(t.Context())
		return err == nil && st.Pending == 0
	})
	delivered, byReplica, hung := sink.snapshot()
	for n := 1; n <= first+second; n++ {
		if delivered[n] != 1 {
			t.Errorf("event %d reached the service %d times, want exactly once", n, delivered[n])
		}
	}
	for n := range hung {
		if r := byReplica[n]; r == "" || r == "victim" {
			t.Errorf("event %d, hung at the crashed victim, was delivered by %q, want a surviving replica", n, r)
		}
	}
	ds, err := realStore.ListDeliveries(t.Context(), crmhook.DeliveryFilter{State: crmhook.StatePending, Limit: 1000})
	if err != nil || len(ds) != 0 {
		t.Errorf("pending deliveries left: %d, %v", len(ds), err)
	}
	t.Logf("phase 2: %d events hung at the crashed victim, taken over by the others", len(hung))
}
