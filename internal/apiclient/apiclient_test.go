package apiclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmhook/crmhook/internal/retry"
)

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// waits records the waits a Retrier asks for instead of sleeping. Do runs
// its attempts one after another, so no lock is needed.
type waits []time.Duration

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	*w = append(*w, d)
	return ctx.Err()
}

func (w *waits) all() []time.Duration { return *w }

func retryable(code int) bool { return code == 429 || code == 503 }

// server answers with the statuses of script in turn (repeating the last)
// and counts calls.
func server(t *testing.T, script []int, header http.Header) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(calls.Add(1)) - 1
		code := script[min(n, len(script)-1)]
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(code)
		io.WriteString(w, `{"status":`+http.StatusText(code)+`}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func sender(srv *httptest.Server) Sender {
	return func(ctx context.Context) (*http.Response, []byte, error) {
		req, err := NewRequest(ctx, http.MethodGet, srv.URL, nil, "ua")
		if err != nil {
			return nil, nil, err
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		data, _, err := ReadBounded(resp.Body, 1<<10)
		if err != nil {
			return nil, nil, err
		}
		return resp, data, nil
	}
}

func retrier(w *waits, maxRetries int) Retrier {
	return Retrier{
		MaxRetries: maxRetries,
		Backoff:    retry.Backoff{Base: 100 * time.Millisecond, Cap: 10 * time.Second},
		Retryable:  retryable,
		Now:        func() time.Time { return fixedNow },
		Sleep:      w.sleep,
		Jitter:     func(n int64) int64 { return n - 1 }, // the ceiling
	}
}

func TestDoRetriesRetryableStatusWithBackoff(t *testing.T) {
	srv, calls := server(t, []int{503, 429, 200}, nil)
	w := &waits{}
	ans, err := retrier(w, 3).Do(context.Background(), sender(srv))
	if err != nil || ans == nil || !ans.OK() || calls.Load() != 3 {
		t.Fatalf("ans %+v err %v calls %d", ans, err, calls.Load())
	}
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}; !slices.Equal(w.all(), want) {
		t.Errorf("waits %v, want %v", w.all(), want)
	}
}

func TestDoStopsAtMaxRetriesAndOnFinalStatus(t *testing.T) {
	srv, calls := server(t, []int{503}, nil)
	w := &waits{}
	ans, err := retrier(w, 2).Do(context.Background(), sender(srv))
	if err != nil || ans.Response.StatusCode != 503 || calls.Load() != 3 || len(w.all()) != 2 {
		t.Errorf("503: ans %v err %v calls %d waits %v", ans.Response.StatusCode, err, calls.Load(), w.all())
	}
	srv2, calls2 := server(t, []int{404, 200}, nil)
	ans, err = retrier(w, 2).Do(context.Background(), sender(srv2))
	if err != nil || ans.Response.StatusCode != 404 || calls2.Load() != 1 {
		t.Errorf("404: ans %v err %v calls %d", ans.Response.StatusCode, err, calls2.Load())
	}
	srv3, calls3 := server(t, []int{503, 200}, nil)
	ans, err = retrier(w, 0).Do(context.Background(), sender(srv3))
	if err != nil || ans.Response.StatusCode != 503 || calls3.Load() != 1 {
		t.Errorf("no retries: ans %v err %v calls %d", ans.Response.StatusCode, err, calls3.Load())
	}
	if string(ans.Body) != `{"status":Service Unavailable}` {
		t.Errorf("body %q", ans.Body)
	}
}

func TestDoHonoursRetryAfterAndItsCap(t *testing.T) {
	srv, calls := server(t, []int{429, 200}, http.Header{"Retry-After": {"3"}})
	w := &waits{}
	ans, err := retrier(w, 3).Do(context.Background(), sender(srv))
	if err != nil || !ans.OK() || calls.Load() != 2 || !slices.Equal(w.all(), []time.Duration{3 * time.Second}) {
		t.Errorf("seconds: ans %+v err %v calls %d waits %v", ans, err, calls.Load(), w.all())
	}
	date := fixedNow.Add(5 * time.Second).Format(http.TimeFormat)
	srv2, _ := server(t, []int{503, 200}, http.Header{"Retry-After": {date}})
	w2 := &waits{}
	if _, err := retrier(w2, 3).Do(context.Background(), sender(srv2)); err != nil || !slices.Equal(w2.all(), []time.Duration{5 * time.Second}) {
		t.Errorf("date: err %v waits %v", err, w2.all())
	}
	// Longer than the cap: give up at once with the answer and its RetryAfter.
	srv3, calls3 := server(t, []int{429, 200}, http.Header{"Retry-After": {"60"}})
	w3 := &waits{}
	ans, err = retrier(w3, 3).Do(context.Background(), sender(srv3))
	if err != nil || ans.Response.StatusCode != 429 || ans.RetryAfter != time.Minute || calls3.Load() != 1 || len(w3.all()) != 0 {
		t.Errorf("over cap: ans %+v err %v calls %d waits %v", ans, err, calls3.Load(), w3.all())
	}
}

func TestDoRetriesNetworkErrorsAndReturnsTheLast(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens: every attempt is a connection error
	var calls int
	send := func(ctx context.Context) (*http.Response, []byte, error) {
		calls++
		req, _ := NewRequest(ctx, http.MethodGet, addr, nil, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		resp.Body.Close()
		return resp, nil, nil
	}
	w := &waits{}
	ans, err := retrier(w, 2).Do(context.Background(), send)
	var ue *url.Error
	if ans != nil || !errors.As(err, &ue) || calls != 3 || !slices.Equal(w.all(), []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}) {
		t.Errorf("ans %v err %v calls %d waits %v", ans, err, calls, w.all())
	}
}

func TestDoReturnsAnswerWithErrorAtOnce(t *testing.T) {
	srv, calls := server(t, []int{200}, nil)
	tooLarge := errors.New("too large")
	send := func(ctx context.Context) (*http.Response, []byte, error) {
		resp, _, err := sender(srv)(ctx)
		if err != nil {
			return nil, nil, err
		}
		return resp, nil, tooLarge
	}
	ans, err := retrier(&waits{}, 3).Do(context.Background(), send)
	if ans == nil || !errors.Is(err, tooLarge) || calls.Load() != 1 {
		t.Errorf("ans %v err %v calls %d", ans, err, calls.Load())
	}
}

func TestDoEndsWithContext(t *testing.T) {
	srv, calls := server(t, []int{503}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	r := retrier(nil, 5)
	r.Sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		return retry.Sleep(ctx, d)
	}
	ans, err := r.Do(ctx, sender(srv))
	if !errors.Is(err, context.Canceled) || ans == nil || ans.Response.StatusCode != 503 || calls.Load() != 1 {
		t.Errorf("cut wait: ans %v err %v calls %d", ans, err, calls.Load())
	}
	// A request that fails because ctx already ended returns ctx.Err() itself.
	ans, err = retrier(&waits{}, 5).Do(ctx, sender(srv))
	if ans != nil || err != context.Canceled {
		t.Errorf("ended ctx: ans %v err %#v", ans, err)
	}
}

func TestNewRequestHeaders(t *testing.T) {
	req, err := NewRequest(context.Background(), http.MethodPost, "http://127.0.0.1/x", []byte(`{}`), "ua/1")
	if err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("Accept") != "application/json" || req.Header.Get("Content-Type") != "application/json" || req.Header.Get("User-Agent") != "ua/1" {
		t.Errorf("headers %v", req.Header)
	}
	req, _ = NewRequest(context.Background(), http.MethodGet, "http://127.0.0.1/x", nil, "")
	if req.Header.Get("Content-Type") != "" || req.Header.Get("User-Agent") != "" || req.Body != nil {
		t.Errorf("GET headers %v body %v", req.Header, req.Body)
	}
}

func TestReadBounded(t *testing.T) {
	data, over, err := ReadBounded(strings.NewReader("abcdef"), 6)
	if err != nil || over || string(data) != "abcdef" {
		t.Errorf("at limit: %q %v %v", data, over, err)
	}
	data, over, err = ReadBounded(strings.NewReader("abcdefg"), 6)
	if err != nil || !over || string(data) != "abcdef" {
		t.Errorf("over: %q %v %v", data, over, err)
	}
	_, _, err = ReadBounded(io.MultiReader(strings.NewReader("ab"), errReader{}), 6)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.HasPrefix(err.Error(), "read response: ") {
		t.Errorf("read error: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
