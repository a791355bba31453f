// Package simdeliver holds the delivery machinery the provider simulators
// share: the exact simulated retry schedule, waits scaled to real time, the
// bookkeeping of running delivery chains behind WaitIdle, and the plain
// HTTP POST. What a provider sends and how it reacts to failures (envelopes,
// signatures, disabling a webhook) stays in each simulator.
package simdeliver

import (
	"bytes"
	"context"
	"errors"
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

// Sleep waits for the real duration wait. It reports false if done closed
// first.
func Sleep(done <-chan struct{}, wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// Firsts receives n first attempts from firsts, in the order they come, or
// returns ctx's error when ctx is done first.
func Firsts[D any](ctx context.Context, firsts <-chan D, n int) ([]D, error) {
	got := make([]D, 0, n)
	for range n {
		select {
		case d := <-firsts:
			got = append(got, d)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return got, nil
}

// Chains is a view of a simulator's delivery-chain bookkeeping: the fields
// live in its Server, guarded by the Server's mutex Mu, which also guards
// the rest of its state.
type Chains struct {
	Mu      *sync.Mutex
	WG      *sync.WaitGroup
	Pending *int             // delivery chains still running
	Waiters *[]chan struct{} // closed when Pending drops to zero
}

// AddLocked counts n new chains; the caller holds Mu and starts n
// goroutines, each of which calls Done when it returns.
func (c Chains) AddLocked(n int) {
	*c.Pending += n
	c.WG.Add(n)
}

// Done ends one chain, waking the WaitIdle callers when it was the last.
func (c Chains) Done() {
	c.Mu.Lock()
	*c.Pending--
	if *c.Pending == 0 {
		for _, ch := range *c.Waiters {
			close(ch)
		}
		*c.Waiters = nil
	}
	c.Mu.Unlock()
	c.WG.Done()
}

// WaitIdle blocks until no chain is running or until ctx is done, when it
// returns ctx's error.
func (c Chains) WaitIdle(ctx context.Context) error {
	c.Mu.Lock()
	if *c.Pending == 0 {
		c.Mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	*c.Waiters = append(*c.Waiters, ch)
	c.Mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NewPost returns a JSON POST of body to rawURL from userAgent.
func NewPost(ctx context.Context, rawURL string, body []byte, userAgent string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	return req, nil
}

// Finish reads a little of an answer's body, so the connection can be
// reused (the providers ignore the body), closes it and returns the status
// code.
func Finish(resp *http.Response) int {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode
}

// ConnectionFailure is the reason given for a POST that failed to connect.
// It never holds the URL: webhook URLs carry path secrets.
func ConnectionFailure(err error) string {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	return "connection failed: " + err.Error()
}
