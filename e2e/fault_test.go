package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/admin"
	"github.com/crmhook/crmhook/internal/app"
	"github.com/crmhook/crmhook/store/sqlite"
)

// harness is one in-process crmhook with a JSON debug log captured for the
// leak check, and its sink.
type harness struct {
	t    *testing.T
	run  *appRun
	sink *sinkServer
	logs *lockedBuffer
	dir  string
	cfg  *config.Config
	next atomic.Int64
}

// newHarness starts an app on a fresh SQLite store. mod may change the
// config or the Main before Open.
func newHarness(t *testing.T, sink *sinkServer, o cfgOpts, mod func(*app.Main)) *harness {
	t.Helper()
	if sink == nil {
		sink = newSink(t)
	}
	h := &harness{t: t, sink: sink, logs: &lockedBuffer{}}
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	h.dir = o.dataDir
	if o.sinkURL == "" {
		o.sinkURL = sink.srv.URL
	}
	h.cfg = parseConfig(t, o)
	m := &app.Main{
		Config: h.cfg,
		Logger: slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(m)
	}
	// Registered first, so it runs after the app stopped and logged it all.
	t.Cleanup(func() {
		if !t.Failed() {
			assertNoLeaks(t, t.Name()+" logs", h.logs.String())
		}
	})
	h.run = startApp(t, m)
	return h
}

// send posts a fresh Affinity event and returns its dedupe key and status.
func (h *harness) send() (string, int, http.Header) {
	body, key := affinityEvent(h.next.Add(1), time.Now())
	status, hdr := post(http.DefaultClient, h.run.hook+"/hooks/aff/"+pathSecret, body, nil)
	return key, status, hdr
}

// sendOK posts n fresh events, each of which must be acknowledged.
func (h *harness) sendOK(n int) []string {
	h.t.Helper()
	keys := make([]string, 0, n)
	for range n {
		key, status, _ := h.send()
		if status != http.StatusOK {
			h.t.Fatalf("POST event: status %d, want 200", status)
		}
		keys = append(keys, key)
	}
	return keys
}

func (h *harness) deliveries(state string) []admin.DeliveryJSON {
	h.t.Helper()
	var out deliveriesAnswer
	if code := adminCall(h.t, h.run.admin, "GET", "/api/deliveries?limit=1000&state="+state, "", &out); code != http.StatusOK {
		h.t.Fatalf("GET /api/deliveries?state=%s: status %d", state, code)
	}
	return out.Deliveries
}

// TestSinkFaults puts the HTTP sink through the faults a real receiver shows.
func TestSinkFaults(t *testing.T) {
	t.Parallel()

	t.Run("down for a while then back", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens: connection refused
		// A secret in the sink URL must stay out of errors and logs.
		h := newHarness(t, &sinkServer{}, cfgOpts{sinkURL: "http://" + addr + "/in/" + pathSecret2}, nil)
		keys := h.sendOK(10)
		eventually(t, 20*time.Second, "several failed attempts while the sink is down", func() bool {
			ds := h.deliveries("pending")
			return len(ds) == len(keys) && ds[0].Attempts >= 3 && ds[0].LastError != ""
		})
		for _, d := range h.deliveries("pending") {
			if strings.Contains(d.LastError, pathSecret2) {
				t.Errorf("last_error holds the sink URL's secret path")
			}
		}
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("sink back on %s: %v", addr, err)
		}
		sink := newSinkOn(t, ln)
		sink.waitDelivered(t, keys, 20*time.Second)
		waitQueueEmpty(t, h.run.admin, 10*time.Second)
		if dead := h.deliveries("dead"); len(dead) != 0 {
			t.Errorf("%d deliveries dead-lettered, want none within the budget", len(dead))
		}
	})

	t.Run("slow answers and timeouts", func(t *testing.T) {
		t.Parallel()
		sink := newSink(t)
		var first atomic.Pointer[string]
		sink.setBehaviour(func(key string, attempt int) reply {
			if first.CompareAndSwap(nil, &key) {
				return reply{status: 200, delay: 1500 * time.Millisecond} // over the 1s sink timeout
			}
			return reply{status: 200, delay: 200 * time.Millisecond}
		})
		h := newHarness(t, sink, cfgOpts{}, nil)
		keys := h.sendOK(6)
		sink.waitDelivered(t, keys, 20*time.Second)
		waitQueueEmpty(t, h.run.admin, 10*time.Second)
		slow := *first.Load()
		if n := len(sink.attemptTimes(slow)); n < 2 {
			t.Errorf("event answered after the timeout was attempted %d times, want a retry", n)
		}
		for _, k := range keys {
			if k != slow && len(sink.attemptTimes(k)) != 1 {
				t.Errorf("slow but timely event attempted %d times, want 1", len(sink.attemptTimes(k)))
			}
		}
	})

	t.Run("429 with Retry-After", func(t *testing.T) {
		t.Parallel()
		sink := newSink(t)
		sink.setBehaviour(func(_ string, attempt int) reply {
			if attempt == 1 {
				return reply{status: http.StatusTooManyRequests, retryAfter: "1"}
			}
			return reply{status: 200}
		})
		h := newHarness(t, sink, cfgOpts{}, nil)
		keys := h.sendOK(3)
		sink.waitDelivered(t, keys, 20*time.Second)
		for _, k := range keys {
			at := sink.attemptTimes(k)
			if len(at) != 2 {
				t.Fatalf("attempts %d, want 2 (429 then 200)", len(at))
			}
			// The policy's own backoff is 50–400ms: only Retry-After explains a 1s wait.
			if gap := at[1].Sub(at[0]); gap < 900*time.Millisecond {
				t.Errorf("retried %s after a 429 with Retry-After: 1", gap)
			}
		}
	})

	t.Run("410 dead letter then replay", func(t *testing.T) {
		t.Parallel()
		sink := newSink(t)
		sink.setBehaviour(func(string, int) reply { return reply{status: http.StatusGone} })
		h := newHarness(t, sink, cfgOpts{}, nil)
		keys := h.sendOK(2)
		var dead []admin.DeliveryJSON
		eventually(t, 10*time.Second, "dead letters visible in the admin API", func() bool {
			dead = h.deliveries("dead")
			return len(dead) == len(keys)
		})
		for _, d := range dead {
			if d.Attempts != 1 || !strings.Contains(d.LastError, "410") {
				t.Errorf("dead delivery: attempts %d, last_error %q; want 1 attempt and a 410", d.Attempts, d.LastError)
			}
		}
		for _, k := range keys {
			if n := sink.deliveredCount(k); n != 0 {
				t.Fatalf("a 410 counted as delivered %d times", n)
			}
		}
		sink.setBehaviour(nil) // the receiver is fixed
		var replayed struct {
			Replayed int `json:"replayed"`
		}
		if code := adminCall(t, h.run.admin, "POST", "/api/replay", `{"state":"dead"}`, &replayed); code != http.StatusOK || replayed.Replayed != len(keys) {
			t.Fatalf("POST /api/replay: status %d, replayed %d; want 200 and %d", code, replayed.Replayed, len(keys))
		}
		sink.waitDelivered(t, keys, 10*time.Second)
		waitQueueEmpty(t, h.run.admin, 10*time.Second)
		for _, k := range keys {
			if n := sink.deliveredCount(k); n != 1 {
				t.Errorf("replayed event delivered %d times, want once", n)
			}
		}
	})

	t.Run("garbage 2xx bodies are success", func(t *testing.T) {
		t.Parallel()
		sink := newSink(t)
		var n atomic.Int64
		sink.setBehaviour(func(string, int) reply {
			switch n.Add(1) % 3 {
			case 0:
				return reply{status: 200, body: "<html><body>\x00\xff not json"}
			case 1:
				return reply{status: 202, body: strings.Repeat("{", 100000)}
			default:
				return reply{status: 204}
			}
		})
		h := newHarness(t, sink, cfgOpts{}, nil)
		keys := h.sendOK(6)
		sink.waitDelivered(t, keys, 10*time.Second)
		waitQueueEmpty(t, h.run.admin, 10*time.Second)
		for _, k := range keys {
			if a := len(sink.attemptTimes(k)); a != 1 {
				t.Errorf("event attempted %d times, want 1", a)
			}
		}
	})
}

// faultStore fails every insert and rejection while failing is set, like a
// store whose disk is full.
type faultStore struct {
	crmhook.Store
	failing atomic.Bool
}

func (f *faultStore) Insert(ctx context.Context, ev crmhook.NewEvent) (crmhook.InsertResult, error) {
	if f.failing.Load() {
		return crmhook.InsertResult{}, fmt.Errorf("faultstore: %w", crmhook.ErrUnavailable)
	}
	return f.Store.Insert(ctx, ev)
}

func (f *faultStore) Reject(ctx context.Context, r crmhook.Rejection) (int64, error) {
	if f.failing.Load() {
		return 0, fmt.Errorf("faultstore: %w", crmhook.ErrUnavailable)
	}
	return f.Store.Reject(ctx, r)
}

// diskFault is a store that can be made unable to commit, then healed.
type diskFault interface {
	fill(t *testing.T)
	heal(t *testing.T)
}

// tmpfsFault fills a small real filesystem.
type tmpfsFault struct{ dir string }

func (f tmpfsFault) fill(t *testing.T) {
	t.Helper()
	file, err := os.Create(filepath.Join(f.dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := file.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	// Take the last partial blocks too.
	for {
		if _, err := file.Write(chunk[:512]); err != nil {
			return
		}
	}
}

func (f tmpfsFault) heal(t *testing.T) {
	t.Helper()
	if err := os.Remove(filepath.Join(f.dir, "filler")); err != nil {
		t.Fatal(err)
	}
}

type wrapperFault struct{ st *faultStore }

func (f wrapperFault) fill(*testing.T) { f.st.failing.Store(true) }
func (f wrapperFault) heal(*testing.T) { f.st.failing.Store(false) }

// mountTmpfs mounts a small tmpfs at dir, or says why it cannot.
func mountTmpfs(t *testing.T, dir string) error {
	t.Helper()
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return nil
}

// TestStoreCannotCommit fills the store's disk: the receiver answers 503
// with Retry-After and never a 2xx for an event it did not store, and it
// accepts again once the disk has room.
func TestStoreCannotCommit(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var fault diskFault
	var mod func(*app.Main)
	if err := mountTmpfs(t, dir); err == nil {
		fault = tmpfsFault{dir: dir}
		t.Log("store on a 4 MiB tmpfs")
	} else {
		t.Logf("no tmpfs (%v): injecting a failing store through Main.Store", err)
		st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "crmhook.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fs := &faultStore{Store: st}
		fault = wrapperFault{st: fs}
		mod = func(m *app.Main) { m.Store = fs }
	}
	h := newHarness(t, nil, cfgOpts{dataDir: dir}, mod)
	acked := h.sendOK(5)
	h.sink.waitDelivered(t, acked, 10*time.Second)

	fault.fill(t)
	var refused []string
	bodies := map[string][]byte{}
	for i := 0; i < 2000 && len(refused) < 5; i++ {
		body, key := affinityEvent(h.next.Add(1), time.Now())
		bodies[key] = body
		status, hdr := post(http.DefaultClient, h.run.hook+"/hooks/aff/"+pathSecret, body, nil)
		switch status {
		case http.StatusOK:
			acked = append(acked, key) // it must then be on disk
		case http.StatusServiceUnavailable:
			if hdr.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			refused = append(refused, key)
		default:
			t.Fatalf("full disk: status %d, want 200 (stored) or 503", status)
		}
	}
	if len(refused) == 0 {
		t.Fatalf("%d events accepted on a full disk and none refused", len(acked))
	}
	t.Logf("full disk: %d acknowledged (fit in space already allocated), %d refused with 503", len(acked)-5, len(refused))

	fault.heal(t)
	// The provider retries what was refused: once healed, it is accepted.
	for _, key := range refused {
		eventually(t, 10*time.Second, "the healed store to accept again", func() bool {
			status, _ := post(http.DefaultClient, h.run.hook+"/hooks/aff/"+pathSecret, bodies[key], nil)
			return status == http.StatusOK
		})
		acked = append(acked, key)
	}
	acked = append(acked, h.sendOK(3)...)
	h.sink.waitDelivered(t, acked, 20*time.Second)
	waitQueueEmpty(t, h.run.admin, 20*time.Second)

	h.run.stop(t)
	if mod != nil {
		return // the wrapped store is still open; the sink has it all
	}
	stored, _ := storedKeys(t, filepath.Join(dir, "crmhook.db"))
	for _, k := range acked {
		if stored[k] != 1 {
			t.Errorf("acknowledged event %s stored %d times, want 1", k, stored[k])
		}
	}
}
