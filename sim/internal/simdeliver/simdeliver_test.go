package simdeliver

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestScheduleIsExactAndSaturates(t *testing.T) {
	s := NewSchedule(time.Second)
	var offsets []time.Duration
	for range 4 {
		offsets = append(offsets, s.Offset)
		s.Advance()
	}
	want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}
	for i := range want {
		if offsets[i] != want[i] {
			t.Fatalf("offsets = %v, want %v", offsets, want)
		}
	}
	big := Schedule{Backoff: math.MaxInt64/2 + 1}
	big.Advance()
	if big.Backoff != math.MaxInt64/2+1 {
		t.Errorf("Backoff after Advance = %d, want it kept instead of overflowing", big.Backoff)
	}
}

func TestRealWait(t *testing.T) {
	if got := RealWait(10*time.Second, 1000); got != 10*time.Millisecond {
		t.Errorf("RealWait(10s, 1000) = %v, want 10ms", got)
	}
	if got := RealWait(time.Duration(math.MaxInt64), 1e-9); got != math.MaxInt64 {
		t.Errorf("RealWait at a tiny scale = %v, want it saturated", got)
	}
}

func TestStart(t *testing.T) {
	// Each chain sends its first attempt after its target's delay, so the
	// attempts come in the reverse order of the targets.
	chain := func(delay time.Duration, first chan<- time.Duration) {
		time.Sleep(delay)
		first <- delay
	}
	got, err := Start(context.Background(), []time.Duration{40 * time.Millisecond, 0}, chain)
	if err != nil || len(got) != 2 || got[0] != 0 || got[1] != 40*time.Millisecond {
		t.Errorf("Start = %v, %v, want [0 40ms] in arrival order", got, err)
	}
	if got, err := Start(context.Background(), nil, chain); err != nil || got == nil || len(got) != 0 {
		t.Errorf("Start with no targets = %#v, %v, want an empty, non-nil slice", got, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	never := func(_ int, _ chan<- int) {}
	if _, err := Start(ctx, []int{1}, never); !errors.Is(err, context.Canceled) {
		t.Errorf("Start after cancel err = %v, want context.Canceled", err)
	}
}

// newRunner returns a Runner for tests, closed at the end of the test.
func newRunner(t *testing.T, cfg RunnerConfig) (*Runner, *sync.Mutex) {
	t.Helper()
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 1
	}
	var mu sync.Mutex
	r := NewRunner(&mu, cfg)
	t.Cleanup(r.Close)
	return r, &mu
}

func TestRunnerSleepScalesAndStopsOnClose(t *testing.T) {
	r, _ := newRunner(t, RunnerConfig{TimeScale: 3600})
	start := time.Now()
	if !r.Sleep(time.Second) {
		t.Fatal("Sleep = false before Close")
	}
	if elapsed := time.Since(start); elapsed > 500*time.Millisecond {
		t.Errorf("Sleep(1s) at scale 3600 took %s", elapsed)
	}
	r.Close()
	if r.Sleep(time.Hour * 24 * 365) {
		t.Error("Sleep = true after Close")
	}
}

func TestRunnerWaitIdle(t *testing.T) {
	r, mu := newRunner(t, RunnerConfig{Name: "testsim"})
	if err := r.WaitIdle(context.Background()); err != nil {
		t.Fatalf("WaitIdle with nothing running = %v", err)
	}
	mu.Lock()
	r.AddLocked(2)
	mu.Unlock()

	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := r.WaitIdle(short); !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "testsim: wait idle: ") {
		t.Fatalf("WaitIdle with chains running = %v, want the deadline, named", err)
	}

	idle := make(chan error, 1)
	go func() { idle <- r.WaitIdle(context.Background()) }()
	r.Done()
	r.Done()
	if err := <-idle; err != nil {
		t.Errorf("WaitIdle = %v after the last chain ended", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if r.pending != 0 || r.waiters != nil {
		t.Errorf("pending = %d, waiters = %v, want both cleared", r.pending, r.waiters)
	}
}

func TestRunnerCloseCancelsAndWaits(t *testing.T) {
	closing := errors.New("the test is closing")
	r, mu := newRunner(t, RunnerConfig{Closing: closing})
	mu.Lock()
	if !r.AddLocked(1) {
		t.Error("AddLocked = false before Close")
	}
	mu.Unlock()
	var returned atomic.Bool
	go func() {
		defer r.Done()
		r.Sleep(time.Hour) // returns when Close cancels the context
		returned.Store(true)
	}()

	r.Close()
	if !returned.Load() {
		t.Error("Close returned before the chain did")
	}
	mu.Lock()
	started := r.AddLocked(1)
	mu.Unlock()
	if started {
		t.Error("AddLocked = true after Close")
	}
	if err := r.WaitIdle(context.Background()); err != nil {
		t.Errorf("WaitIdle after Close = %v, want nothing counted", err)
	}
	if cause := context.Cause(r.Context()); !errors.Is(cause, closing) {
		t.Errorf("Context's cause = %v, want the Closing error", cause)
	}
}

// idleCounter is a transport that counts CloseIdleConnections calls.
type idleCounter struct {
	http.RoundTripper
	closes atomic.Int32
}

func (c *idleCounter) CloseIdleConnections() { c.closes.Add(1) }

func TestRunnerCloseDropsOwnedConnectionsOnly(t *testing.T) {
	for _, owns := range []bool{true, false} {
		tr := &idleCounter{}
		var mu sync.Mutex
		r := NewRunner(&mu, RunnerConfig{Client: &http.Client{Transport: tr}, OwnsClient: owns, TimeScale: 1})
		r.Close()
		want := int32(0)
		if owns {
			want = 1
		}
		if got := tr.closes.Load(); got != want {
			t.Errorf("OwnsClient %v: idle connections closed %d times, want %d", owns, got, want)
		}
	}
}

func TestRunnerPost(t *testing.T) {
	var gotType, gotAgent, gotKey, gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotType, gotAgent = r.Header.Get("Content-Type"), r.Header.Get("User-Agent")
		gotKey = r.Header.Get("Idempotency-Key")
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(strings.Repeat("x", 100<<10)))
	}))
	t.Cleanup(srv.Close)
	r, _ := newRunner(t, RunnerConfig{Client: srv.Client(), UserAgent: "test-agent"})

	header := http.Header{"Idempotency-Key": {"k1"}}
	code, reason := r.Post(context.Background(), srv.URL+"/hook", []byte(`{"a":1}`), header, time.Minute)
	if code != http.StatusAccepted || reason != "" {
		t.Errorf("Post = %d, %q, want 202 and no reason", code, reason)
	}
	if gotType != "application/json" || gotAgent != "test-agent" || gotKey != "k1" || gotBody != `{"a":1}` {
		t.Errorf("server saw %q %q %q %q", gotType, gotAgent, gotKey, gotBody)
	}
	if code, reason := r.Post(context.Background(), "://bad", nil, nil, time.Minute); code != 0 || reason != "invalid URL" {
		t.Errorf("Post to an invalid URL = %d, %q", code, reason)
	}
}

func TestRunnerPostTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	r, _ := newRunner(t, RunnerConfig{Client: srv.Client(), Closing: errors.New("the test is closing")})
	if _, reason := r.Post(context.Background(), srv.URL, nil, nil, 20*time.Millisecond); reason != "no answer within 20ms" {
		t.Errorf("timeout reason = %q", reason)
	}

	// A POST in flight when Close is called reports Closing.
	done := make(chan string, 1)
	go func() {
		_, reason := r.Post(r.Context(), srv.URL, nil, nil, time.Minute)
		done <- reason
	}()
	time.Sleep(20 * time.Millisecond)
	r.Close()
	if reason := <-done; reason != "cancelled: the test is closing" {
		t.Errorf("reason after Close = %q", reason)
	}

	// Without Closing, and for any other parent, the cause is the context's.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, reason := r.Post(ctx, srv.URL, nil, nil, time.Minute); reason != "cancelled: context canceled" {
		t.Errorf("reason for a cancelled parent = %q", reason)
	}
}

func TestRunnerPostConnectionFailureHidesURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	r, _ := newRunner(t, RunnerConfig{})
	code, reason := r.Post(context.Background(), "http://"+addr+"/secret-path", nil, nil, time.Minute)
	if code != 0 || !strings.HasPrefix(reason, "connection failed: ") || strings.Contains(reason, "secret-path") {
		t.Errorf("Post to a closed port = %d, %q, want a reason without the URL", code, reason)
	}
}
