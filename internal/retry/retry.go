// Package retry holds what every retry loop of crmhook shares: the SDK
// clients' request loop, the dispatcher's delivery retries and the HTTP
// sink's reading of a receiver's Retry-After. It has no dependency beyond
// the standard library, so the server does not depend on the SDKs' HTTP
// plumbing to get it.
package retry

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backoff is full jitter: retry n (from 0) waits a uniform duration in
// [0, min(Cap, Base·2^n)], which spreads a burst of failures instead of
// retrying them in lockstep.
type Backoff struct {
	Base, Cap time.Duration
}

// Ceiling is the longest wait before retry n (from 0).
func (b Backoff) Ceiling(n int) time.Duration {
	ceiling := b.Base
	// Stop doubling at the cap so a large n cannot overflow.
	for i := 0; i < n && ceiling < b.Cap; i++ {
		ceiling *= 2
	}
	return min(ceiling, b.Cap)
}

// Wait draws the wait before retry n from jitter, which returns a uniform
// value in [0, m) like rand.Int64N.
func (b Backoff) Wait(n int, jitter func(m int64) int64) time.Duration {
	return time.Duration(jitter(int64(b.Ceiling(n)) + 1))
}

// Sleep waits d or until ctx ends, whichever comes first, and returns
// ctx.Err() in the second case. A d <= 0 only reports whether ctx has ended.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// maxRetryAfter bounds a Retry-After in seconds: anything longer is nonsense.
const maxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After header: delay-seconds (at most a day)
// or an HTTP date, judged against now. Anything else, or a time already
// past, is 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
