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

func TestSleep(t *testing.T) {
	done := make(chan struct{})
	if !Sleep(done, time.Millisecond) {
		t.Error("Sleep = false before done closed")
	}
	close(done)
	if Sleep(done, time.Hour) {
		t.Error("Sleep = true after done closed")
	}
}

func TestFirsts(t *testing.T) {
	ch := make(chan int, 3)
	ch <- 2
	ch <- 1
	got, err := Firsts(context.Background(), ch, 2)
	if err != nil || len(got) != 2 || got[0] != 2 || got[1] != 1 {
		t.Errorf("Firsts = %v, %v, want [2 1] in arrival order", got, err)
	}
	if got, err := Firsts(context.Background(), ch, 0); err != nil || got == nil || len(got) != 0 {
		t.Errorf("Firsts(0) = %#v, %v, want an empty, non-nil slice", got, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Firsts(ctx, ch, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Firsts after cancel err = %v, want context.Canceled", err)
	}
}

func TestChainsWaitIdle(t *testing.T) {
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		pending int
		waiters []chan struct{}
	)
	c := Chains{Mu: &mu, WG: &wg, Pending: &pending, Waiters: &waiters}
	if err := c.WaitIdle(context.Background()); err != nil {
		t.Fatalf("WaitIdle with nothing running = %v", err)
	}
	mu.Lock()
	c.AddLocked(2)
	mu.Unlock()

	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := c.WaitIdle(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitIdle with chains running = %v, want the deadline", err)
	}

	idle := make(chan error, 1)
	go func() { idle <- c.WaitIdle(context.Background()) }()
	c.Done()
	c.Done()
	if err := <-idle; err != nil {
		t.Errorf("WaitIdle = %v after the last chain ended", err)
	}
	wg.Wait() // returns: every Add was matched by a Done
	if pending != 0 || waiters != nil {
		t.Errorf("pending = %d, waiters = %v, want both cleared", pending, waiters)
	}
}

func TestPost(t *testing.T) {
	var gotType, gotAgent, gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotType, gotAgent = r.Header.Get("Content-Type"), r.Header.Get("User-Agent")
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(strings.Repeat("x", 100<<10)))
	}))
	t.Cleanup(srv.Close)

	req, err := NewPost(context.Background(), srv.URL+"/hook", []byte(`{"a":1}`), "test-agent")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if code := Finish(resp); code != http.StatusAccepted {
		t.Errorf("Finish = %d, want 202", code)
	}
	if gotType != "application/json" || gotAgent != "test-agent" || gotBody != `{"a":1}` {
		t.Errorf("server saw %q %q %q", gotType, gotAgent, gotBody)
	}
	if _, err := NewPost(context.Background(), "://bad", nil, "x"); err == nil {
		t.Error("NewPost accepted an invalid URL")
	}
}

func TestConnectionFailureHidesURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	req, err := NewPost(context.Background(), "http://"+addr+"/secret-path", nil, "x")
	if err != nil {
		t.Fatal(err)
	}
	_, err = http.DefaultClient.Do(req)
	if err == nil {
		t.Fatal("POST to a closed port succeeded")
	}
	reason := ConnectionFailure(err)
	if !strings.HasPrefix(reason, "connection failed: ") || strings.Contains(reason, "secret-path") {
		t.Errorf("ConnectionFailure = %q, want a reason without the URL", reason)
	}
}
