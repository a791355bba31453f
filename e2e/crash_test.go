package e2e

import (
	"context"
	"flag"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crmhook/crmhook/internal/admin"
)

var crashKillsFlag = flag.Int("crash.kills", 0, "SIGKILLs in TestCrash (default 3, or $CRMHOOK_CRASH_KILLS)")

// crashKills is how many times TestCrash kills the process: a few in the
// normal suite, many by hand.
func crashKills(t *testing.T) int {
	if *crashKillsFlag > 0 {
		return *crashKillsFlag
	}
	if v := os.Getenv("CRMHOOK_CRASH_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CRMHOOK_CRASH_KILLS=%q is not a positive number", v)
		}
		return n
	}
	return 3
}

// loadGen posts unique Affinity events like a provider would: each event is
// retried (same body, so the same dedupe key) until it is acknowledged with
// a 2xx or the load stops.
type loadGen struct {
	url    atomic.Pointer[string]
	next   atomic.Int64
	client *http.Client

	mu    sync.Mutex
	acked []string // dedupe keys answered 2xx
	sent  int      // distinct events attempted
	other map[int]int
	wg    sync.WaitGroup
}

func newLoadGen(url string) *loadGen {
	g := &loadGen{
		client: &http.Client{Timeout: 5 * time.Second},
		other:  map[int]int{},
	}
	g.setURL(url)
	return g
}

func (g *loadGen) setURL(u string) { g.url.Store(&u) }

func (g *loadGen) ackedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.acked)
}

func (g *loadGen) ackedKeys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.acked...)
}

// start runs workers until ctx ends; wait waits for them.
func (g *loadGen) start(ctx context.Context, workers int) {
	for range workers {
		g.wg.Go(func() {
			for ctx.Err() == nil {
				g.one(ctx)
			}
		})
	}
}

func (g *loadGen) wait() { g.wg.Wait() }

func (g *loadGen) one(ctx context.Context) {
	n := g.next.Add(1)
	body, key := affinityEvent(n, time.Now())
	g.mu.Lock()
	g.sent++
	g.mu.Unlock()
	for ctx.Err() == nil {
		status, _ := post(g.client, *g.url.Load(), body, nil)
		if status >= 200 && status < 300 {
			g.mu.Lock()
			g.acked = append(g.acked, key)
			g.mu.Unlock()
			return
		}
		g.mu.Lock()
		g.other[status]++ // 0: connection refused or cut, 503: shutting down
		g.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// crashRig is a config file, a store and a sink shared by the successive
// processes of one test.
type crashRig struct {
	t       *testing.T
	dir     string
	cfgPath string
	sink    *sinkServer
	logs    *lockedBuffer
	conc    int
}

func newCrashRig(t *testing.T) *crashRig {
	t.Helper()
	r := &crashRig{t: t, dir: t.TempDir(), sink: newSink(t), logs: &lockedBuffer{}, conc: 4}
	r.cfgPath = filepath.Join(r.dir, "crmhook.yaml")
	yaml := configYAML(cfgOpts{dataDir: r.dir, sinkURL: r.sink.srv.URL, concurrency: r.conc})
	if err := os.WriteFile(r.cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *crashRig) start() *proc {
	r.t.Helper()
	return startProc(r.t, r.cfgPath, r.logs)
}

func hookAff(p *proc) string { return p.hook + "/hooks/aff/" + pathSecret }

// waitMoreAcks waits until the generator has n more acknowledgements than
// before, so every kill lands under load.
func waitMoreAcks(t *testing.T, g *loadGen, n int) {
	t.Helper()
	base := g.ackedCount()
	eventually(t, 20*time.Second, "acknowledgements under load", func() bool { return g.ackedCount() >= base+n })
}

// verify checks the promise after the last process stopped: every
// acknowledged event is stored exactly once and reached the sink; it
// returns the duplicates the sink received.
func (r *crashRig) verify(acked []string) (lost, duplicated int) {
	t := r.t
	t.Helper()
	stored, stats := storedKeys(t, filepath.Join(r.dir, "crmhook.db"))
	for _, k := range acked {
		if stored[k] == 0 {
			lost++
			t.Errorf("acknowledged event %s is not in the store", k)
		}
	}
	for k, n := range stored {
		if n > 1 {
			t.Errorf("event %s stored %d times: dedupe failed across restarts", k, n)
		}
	}
	if stats.Pending != 0 || stats.Dead != 0 {
		t.Errorf("store stats after drain: %+v, want nothing pending or dead", stats)
	}
	r.sink.mu.Lock()
	defer r.sink.mu.Unlock()
	for _, k := range acked {
		ids := r.sink.delivered[k]
		if len(ids) == 0 {
			lost++
			t.Errorf("acknowledged event %s never reached the sink", k)
			continue
		}
		duplicated += len(ids) - 1
		for _, id := range ids[1:] {
			if id != ids[0] {
				t.Errorf("event %s reached the sink under two webhook-ids (%s, %s): stored twice", k, ids[0], id)
			}
		}
	}
	if r.sink.badSig > 0 {
		t.Errorf("sink saw %d requests with a bad signature", r.sink.badSig)
	}
	return lost, duplicated
}

// waitQueueEmpty polls the admin API until nothing is pending or dead.
func waitQueueEmpty(t *testing.T, adminURL string, within time.Duration) {
	t.Helper()
	var st admin.StatsJSON
	eventually(t, within, "an empty delivery queue", func() bool {
		st = admin.StatsJSON{Pending: -1}
		adminCall(t, adminURL, "GET", "/api/stats", "", &st)
		return st.Pending == 0 && st.Dead == 0
	})
}

// TestCrash kills `crmhook serve` with SIGKILL at random moments under load,
// restarts it on the same store each time, and then checks that every
// acknowledged event is stored and delivered; duplicates are allowed, but
// only as many as deliveries could be in flight at each kill.
func TestCrash(t *testing.T) {
	t.Parallel()
	kills := crashKills(t)
	r := newCrashRig(t)
	p := r.start()
	g := newLoadGen(hookAff(p))
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	g.start(ctx, 4)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for i := range kills {
		waitMoreAcks(t, g, 20)
		// A random moment: somewhere in the next 0–400ms of load.
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		if code := p.signal(t, syscall.SIGKILL); code != -1 {
			t.Logf("kill %d: exit code %d", i+1, code)
		}
		p = r.start()
		g.setURL(hookAff(p))
	}
	waitMoreAcks(t, g, 20)
	stopLoad()
	g.wait()

	acked := g.ackedKeys()
	// Deliveries leased by a killed process come back when the lease (2s) ends.
	r.sink.waitDelivered(t, acked, 60*time.Second)
	// Deliveries that reached the sink just before a kill, but were not yet
	// marked, are delivered again once their lease ends: wait for them too,
	// so the duplicates are counted.
	waitQueueEmpty(t, p.admin, 60*time.Second)
	if code := p.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("SIGTERM: exit code %d, want 0", code)
	}
	lost, dup := r.verify(acked)
	g.mu.Lock()
	sent, other := g.sent, g.other
	g.mu.Unlock()
	t.Logf("crash: kills=%d sent=%d acknowledged=%d lost=%d duplicated=%d non-2xx=%v", kills, sent, len(acked), lost, dup, other)
	// Each kill (and the final graceful stop) can repeat at most the
	// deliveries in flight at that moment: the sink's concurrency.
	if limit := (kills + 1) * r.conc; dup > limit {
		t.Errorf("%d duplicate deliveries, want at most %d (%d stops × concurrency %d)", dup, limit, kills+1, r.conc)
	}
	assertNoLeaks(t, "crash test process logs", r.logs.String())
}

// TestSIGTERMUnderLoad stops the process gracefully while events arrive: it
// exits 0, and after a restart every acknowledged event reaches the sink.
func TestSIGTERMUnderLoad(t *testing.T) {
	t.Parallel()
	r := newCrashRig(t)
	// A slow sink keeps deliveries in flight when SIGTERM arrives.
	r.sink.setBehaviour(func(string, int) reply { return reply{status: 200, delay: 30 * time.Millisecond} })
	p := r.start()
	g := newLoadGen(hookAff(p))
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	g.start(ctx, 4)
	waitMoreAcks(t, g, 50)
	if code := p.signal(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM under load: exit code %d, want 0\n%s", code, r.logs.String())
	}
	stopLoad()
	g.wait()
	acked := g.ackedKeys()
	pending := len(r.sink.missing(acked))

	p = r.start()
	r.sink.setBehaviour(nil)
	r.sink.waitDelivered(t, acked, 30*time.Second)
	waitQueueEmpty(t, p.admin, 30*time.Second)
	if code := p.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("second SIGTERM: exit code %d, want 0", code)
	}
	lost, dup := r.verify(acked)
	t.Logf("sigterm: acknowledged=%d undelivered at stop=%d lost=%d duplicated=%d", len(acked), pending, lost, dup)
	if dup > 2*r.conc {
		t.Errorf("%d duplicates after two graceful stops, want at most %d", dup, 2*r.conc)
	}
	assertNoLeaks(t, "sigterm test process logs", r.logs.String())
}
