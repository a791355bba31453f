// Package timewindow is the timestamp window shared by the webhook
// verifiers (attio and stdwebhooks): how far a signed timestamp may be in
// the past and in the future, each side either a positive bound or off, the
// clock it is compared with, and the refusal of option values that mean
// nothing. Each verifier keeps its own exported options and error values;
// the setters here are what those options call, and their refusals wrap the
// verifier's own ErrInvalidOption and name the verifier's own options
// (WithTolerance, WithMaxAge, …), which are spelled the same in both.
package timewindow

import (
	"fmt"
	"time"
)

// Side says which side of the window a timestamp is on.
type Side int

const (
	// Within: the timestamp is inside the window (or the side it is on is
	// off).
	Within Side = iota
	// TooOld: the timestamp is further in the past than the window allows.
	TooOld
	// TooNew: the timestamp is further in the future than the window allows.
	TooNew
)

// Err returns nil for Within, tooOld for TooOld and tooNew for TooNew, so
// that each verifier answers with its own error values.
func (s Side) Err(tooOld, tooNew error) error {
	switch s {
	case TooOld:
		return tooOld
	case TooNew:
		return tooNew
	default:
		return nil
	}
}

// Window is what the window options set. Each side is either a positive
// bound or off; off is a flag, never a zero duration. The zero Window is
// not ready for use: make one with New. A Window is a value and may be
// copied.
type Window struct {
	maxAge, maxFuture     time.Duration
	noMaxAge, noMaxFuture bool
	now                   func() time.Time
	invalid               error // the verifier's ErrInvalidOption
}

// New returns a Window of tolerance on each side, reading time.Now, whose
// refusals wrap invalid.
func New(tolerance time.Duration, invalid error) Window {
	return Window{maxAge: tolerance, maxFuture: tolerance, now: time.Now, invalid: invalid}
}

// Refuse returns the refusal of an option: invalid (as given to New),
// followed by ": " and the formatted text.
func (w *Window) Refuse(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{w.invalid}, args...)...)
}

// SetTolerance bounds both sides by d and turns them on (WithTolerance). A
// d that is not positive is refused, and the window is left as it was.
func (w *Window) SetTolerance(d time.Duration) error {
	if d <= 0 {
		return w.Refuse("WithTolerance(%s): the tolerance must be positive (WithoutTolerance skips the timestamp window)", d)
	}
	w.maxAge, w.maxFuture, w.noMaxAge, w.noMaxFuture = d, d, false, false
	return nil
}

// SetMaxAge bounds the past side by d and turns it on (WithMaxAge), leaving
// the future side as it is. A d that is not positive is refused, and the
// window is left as it was.
func (w *Window) SetMaxAge(d time.Duration) error {
	if d <= 0 {
		return w.Refuse("WithMaxAge(%s): the bound must be positive (WithoutMaxAge skips it)", d)
	}
	w.maxAge, w.noMaxAge = d, false
	return nil
}

// SetMaxFuture bounds the future side by d and turns it on (WithMaxFuture),
// leaving the past side as it is. A d that is not positive is refused, and
// the window is left as it was.
func (w *Window) SetMaxFuture(d time.Duration) error {
	if d <= 0 {
		return w.Refuse("WithMaxFuture(%s): the bound must be positive (WithoutMaxFuture skips it)", d)
	}
	w.maxFuture, w.noMaxFuture = d, false
	return nil
}

// DisableTolerance turns both sides off (WithoutTolerance).
func (w *Window) DisableTolerance() { w.noMaxAge, w.noMaxFuture = true, true }

// DisableMaxAge turns the past side off (WithoutMaxAge).
func (w *Window) DisableMaxAge() { w.noMaxAge = true }

// DisableMaxFuture turns the future side off (WithoutMaxFuture).
func (w *Window) DisableMaxFuture() { w.noMaxFuture = true }

// SetNow replaces the clock (WithNow). A nil clock is refused, and the
// clock is left as it was.
func (w *Window) SetNow(now func() time.Time) error {
	if now == nil {
		return w.Refuse("WithNow(nil)")
	}
	w.now = now
	return nil
}

// Now reads the window's clock.
func (w *Window) Now() time.Time { return w.now() }

// Check says which side of the window around now the timestamp ts (Unix
// seconds) is on; the past side is checked first. Bounds are rounded up to
// whole seconds, the timestamp's resolution, and the arithmetic is written
// so that no extreme timestamp can overflow.
func (w *Window) Check(ts int64, now time.Time) Side {
	n := now.Unix()
	if !w.noMaxAge && ts < n-ceilSeconds(w.maxAge) {
		return TooOld
	}
	if !w.noMaxFuture && ts > n+ceilSeconds(w.maxFuture) {
		return TooNew
	}
	return Within
}

func ceilSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}
