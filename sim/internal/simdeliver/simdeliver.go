// Package simdeliver holds the delivery machinery the provider simulators
// share: the exact simulated retry schedule, waits scaled to real time, the
// Runner that counts running delivery chains for WaitIdle, stops them on
// Close and makes each POST. What a provider sends and how it reacts to
// failures (envelopes, signatures, disabling a webhook) stays in each
// simulator.
package simdeliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Schedule is the retry schedule of one delivery chain, counted in
// simulated time from the planned waits alone, so it is exact and the same
// on a slow machine: with backoff b, attempts are planned at 0, b, 3b, 7b…
type Schedule struct {
	Offset  time.Duration // simulated time between the first attempt and the next one
	Backoff time.Duration // the wait before the attempt after the next one
}

// NewSchedule starts a schedule whose first retry waits initial.
func NewSchedule(initial time.Duration) Schedule {
	return Schedule{Backoff: initial}
}

// Advance moves past one wait of Backoff: Offset grows by it and the
// backoff doubles, saturating rather than overflowing.
func (s *Schedule) Advance() {
	s.Offset += s.Backoff
	if s.Backoff <= math.MaxInt64/2 {
		s.Backoff *= 2
	}
}

// RealWait converts a simulated duration into real time at timeScale
// (simulated seconds per real second), saturating instead of overflowing
// for tiny time scales.
func RealWait(simulated time.Duration, timeScale float64) time.Duration {
	// float64(MaxInt64) rounds up to 2^63, which does not fit: compare first.
	if f := float64(simulated) / timeScale; f < math.MaxInt64 {
		return time.Duration(f)
	}
	return math.MaxInt64
}

// sleep waits for the real duration wait. It reports false if done closed
// first.
func sleep(done <-chan struct{}, wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// Start runs chain(target, first) in its own goroutine for each target,
// which the caller has counted with Runner.AddLocked, and returns the first
// attempts the chains send on first, in the order they come, or ctx's error
// when ctx is done first (the chains go on).
func Start[T, D any](ctx context.Context, targets []T, chain func(target T, first chan<- D)) ([]D, error) {
	firsts := make(chan D, len(targets))
	for _, t := range targets {
		go chain(t, firsts)
	}
	got := make([]D, 0, len(targets))
	for range targets {
		select {
		case d := <-firsts:
			got = append(got, d)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return got, nil
}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	// Name prefixes the errors the Runner returns: the simulator's package
	// name, e.g. "affinitysim".
	Name string
	// Client sends every POST.
	Client *http.Client
	// OwnsClient says Client was made for the simulator, so Close drops its
	// idle connections; a client the caller gave is left alone.
	OwnsClient bool
	// UserAgent is the User-Agent header of every POST.
	UserAgent string
	// TimeScale is how many simulated seconds pass per real second in Sleep.
	TimeScale float64
	// Closing is the cause Close cancels Context with: a POST cut short by
	// Close reports "cancelled: " and its text. Nil means context.Canceled.
	Closing error
}

// Runner runs one simulator's delivery chains (a first attempt and its
// retries, in one goroutine): it counts them for WaitIdle, holds the
// context Close cancels, scales retry waits to real time and makes each
// POST.
//
// Its count and closed flag are guarded by the simulator's own mutex, which
// also guards the rest of the simulator's state, so a trigger can choose
// its targets and count them (AddLocked) under one lock.
type Runner struct {
	cfg    RunnerConfig
	mu     *sync.Mutex
	base   context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	// Guarded by mu.
	closed  bool
	pending int             // delivery chains still running
	waiters []chan struct{} // closed when pending drops to zero
}

// NewRunner returns a Runner whose state is guarded by mu.
func NewRunner(mu *sync.Mutex, cfg RunnerConfig) *Runner {
	base, cancel := context.WithCancelCause(context.Background())
	return &Runner{cfg: cfg, mu: mu, base: base, cancel: cancel}
}

// Context is cancelled by Close; it bounds every delivery attempt and retry
// wait.
func (r *Runner) Context() context.Context { return r.base }

// AddLocked counts n new chains, which the caller then starts (Start), each
// calling Done when it returns; the caller holds mu. After Close it counts
// nothing and returns false: no chain may start then.
func (r *Runner) AddLocked(n int) bool {
	if r.closed {
		return false
	}
	r.pending += n
	r.wg.Add(n)
	return true
}

// Done ends one chain, waking the WaitIdle callers when it was the last.
func (r *Runner) Done() {
	r.mu.Lock()
	r.pending--
	if r.pending == 0 {
		for _, ch := range r.waiters {
			close(ch)
		}
		r.waiters = nil
	}
	r.mu.Unlock()
	r.wg.Done()
}

// WaitIdle blocks until no chain is running or until ctx is done, when it
// returns ctx's error, wrapped.
func (r *Runner) WaitIdle(ctx context.Context) error {
	r.mu.Lock()
	if r.pending == 0 {
		r.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	r.waiters = append(r.waiters, ch)
	r.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: wait idle: %w", r.cfg.Name, ctx.Err())
	}
}

// Sleep waits for the simulated duration d, scaled to real time by
// TimeScale. It reports false if Close was called meanwhile.
func (r *Runner) Sleep(d time.Duration) bool {
	return sleep(r.base.Done(), RealWait(d, r.cfg.TimeScale))
}

// Close marks the Runner closed, cancels Context (stopping the retry waits
// and the attempts in flight), waits for every chain to return and drops
// the idle connections of a client it owns.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel(r.cfg.Closing)
	r.wg.Wait()
	if r.cfg.OwnsClient {
		r.cfg.Client.CloseIdleConnections()
	}
}

// Post sends body as a JSON POST to rawURL, with header's fields added,
// and returns the status code, or a short reason why no answer came:
// "invalid URL", "no answer within <timeout>", "cancelled: <cause>" when
// parent ended first, or "connection failed: …". The reason never holds the
// URL: webhook URLs carry path secrets. The answer's body is ignored, as
// the providers ignore it.
func (r *Runner) Post(parent context.Context, rawURL string, body []byte, header http.Header, timeout time.Duration) (int, string) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return 0, "invalid URL"
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", r.cfg.UserAgent)
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return 0, fmt.Sprintf("no answer within %s", timeout)
		case parent.Err() != nil:
			return 0, "cancelled: " + context.Cause(parent).Error()
		}
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return 0, "connection failed: " + err.Error()
	}
	// Read a little of the body so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, ""
}
