// Package apiclient holds the HTTP plumbing the affinity and attio SDKs
// share: the retry loop for idempotent reads (full-jitter backoff, Retry-After
// honoured and capped, waits that end with the context), bounded body reads,
// Retry-After parsing and redaction of credentials from text kept in errors.
// Authentication, error bodies and sentinels stay in each SDK. The backoff
// ceiling and Retry-After parsing also serve the dispatcher and the HTTP sink,
// so that every retry in crmhook follows the same rules.
package apiclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/crmhook/crmhook/internal/retry"
)

// Retrier runs the request loop. Build one per call from the client's
// current settings; the zero value sends once and never waits.
type Retrier struct {
	// MaxRetries is how many times a retryable failure is retried (0: never).
	// Callers set it to 0 for writes that must not be repeated.
	MaxRetries int
	Backoff    retry.Backoff
	// Retryable says which status codes are worth another attempt.
	Retryable func(status int) bool
	// Now is the clock Retry-After dates are read against (time.Now if nil).
	Now func() time.Time
	// Sleep waits between attempts (Sleep if nil).
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter draws a uniform value in [0, n) (no jitter, the full ceiling,
	// if nil).
	Jitter func(n int64) int64
}

// Sender makes one HTTP exchange and returns the whole (bounded) body. A nil
// response with an error is a failure with no usable answer (network error,
// unreadable body), retried like a 5xx; a response with an error is an answer
// that must be returned as it is, without a retry.
type Sender func(ctx context.Context) (*http.Response, []byte, error)

// Answer is the last HTTP answer of a call.
type Answer struct {
	Response *http.Response
	Body     []byte
	// RetryAfter is the answer's Retry-After (seconds or an HTTP date) as a
	// duration, zero when absent, in the past or unreadable. It is only
	// read for answers outside 2xx.
	RetryAfter time.Duration
}

// OK reports whether the answer is a 2xx.
func (a *Answer) OK() bool {
	return a.Response.StatusCode >= 200 && a.Response.StatusCode <= 299
}

// Do calls send until an answer is final: a 2xx, a status that is not
// retryable, the last allowed attempt, or a Retry-After longer than
// Backoff.Cap (the caller returns that answer at once rather than wait longer
// than it is allowed to). Between attempts it waits Retry-After when given,
// else the backoff.
//
// It returns a nil *Answer with an error when no answer arrived: ctx ended
// (ctx.Err() itself), or the network failure of the last attempt. It returns
// an *Answer with a nil error for a final answer, whatever its status, and an
// *Answer with an error when send returned both or the wait before a retry
// was cut short by ctx.
func (r Retrier) Do(ctx context.Context, send Sender) (*Answer, error) {
	now, sleep, jitter := r.Now, r.Sleep, r.Jitter
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = retry.Sleep
	}
	if jitter == nil {
		jitter = func(n int64) int64 { return n - 1 }
	}
	for attempt := 0; ; attempt++ {
		resp, body, err := send(ctx)
		if resp == nil {
			if err == nil {
				err = errors.New("no response")
			}
			// No answer: a network error, or our own context ending.
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, ctxErr
			}
			if attempt >= r.MaxRetries {
				return nil, err
			}
			if werr := sleep(ctx, r.Backoff.Wait(attempt, jitter)); werr != nil {
				return nil, werr
			}
			continue
		}
		ans := &Answer{Response: resp, Body: body}
		if err != nil || ans.OK() {
			return ans, err
		}
		ans.RetryAfter = retry.ParseRetryAfter(resp.Header.Get("Retry-After"), now())
		if attempt >= r.MaxRetries || r.Retryable == nil || !r.Retryable(resp.StatusCode) {
			return ans, nil
		}
		wait := ans.RetryAfter
		if wait == 0 {
			wait = r.Backoff.Wait(attempt, jitter)
		}
		if wait > r.Backoff.Cap {
			return ans, nil // asked to wait longer than we are allowed to
		}
		if werr := sleep(ctx, wait); werr != nil {
			return ans, werr
		}
	}
}

// NewRequest builds a request with the headers every JSON API call carries:
// Accept, Content-Type when payload is not nil, and User-Agent when not
// empty. The caller adds authentication.
func NewRequest(ctx context.Context, method, target string, payload []byte, userAgent string) (*http.Request, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if userAgent != "" {
		req.Header.Set("User-Agent", userAgent)
	}
	return req, nil
}

// ReadBounded reads r up to limit bytes. over reports that more was there;
// data then holds the first limit bytes. A read error is labelled
// "read response".
func ReadBounded(r io.Reader, limit int64) (data []byte, over bool, err error) {
	data, err = io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("read response: %w", err)
	}
	if int64(len(data)) > limit {
		return data[:limit], true, nil
	}
	return data, false, nil
}
