package timewindow

import (
	"errors"
	"math"
	"testing"
	"time"
)

var errInvalid = errors.New("test: invalid option")

func TestCheck(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	n := now.Unix()
	tests := []struct {
		name  string
		setup func(w *Window)
		ts    int64
		want  Side
	}{
		{"now", nil, n, Within},
		{"oldest allowed", nil, n - 300, Within},
		{"one second too old", nil, n - 301, TooOld},
		{"newest allowed", nil, n + 300, Within},
		{"one second too new", nil, n + 301, TooNew},
		{"bounds round up", func(w *Window) { _ = w.SetTolerance(1500 * time.Millisecond) }, n - 2, Within},
		{"bounds round up, beyond", func(w *Window) { _ = w.SetTolerance(1500 * time.Millisecond) }, n + 3, TooNew},
		{"max age only", func(w *Window) { _ = w.SetMaxAge(time.Hour) }, n - 3600, Within},
		{"max age leaves future", func(w *Window) { _ = w.SetMaxAge(time.Hour) }, n + 301, TooNew},
		{"max future leaves past", func(w *Window) { _ = w.SetMaxFuture(time.Hour) }, n - 301, TooOld},
		{"no max age", func(w *Window) { w.DisableMaxAge() }, math.MinInt64, Within},
		{"no max age keeps future", func(w *Window) { w.DisableMaxAge() }, n + 301, TooNew},
		{"no max future", func(w *Window) { w.DisableMaxFuture() }, math.MaxInt64, Within},
		{"no max future keeps past", func(w *Window) { w.DisableMaxFuture() }, n - 301, TooOld},
		{"no tolerance, min", func(w *Window) { w.DisableTolerance() }, math.MinInt64, Within},
		{"no tolerance, max", func(w *Window) { w.DisableTolerance() }, math.MaxInt64, Within},
		{"extreme past", nil, math.MinInt64, TooOld},
		{"extreme future", nil, math.MaxInt64, TooNew},
		{"tolerance turns sides back on", func(w *Window) { w.DisableTolerance(); _ = w.SetTolerance(time.Second) }, n - 2, TooOld},
		{"max age turns its side back on", func(w *Window) { w.DisableTolerance(); _ = w.SetMaxAge(time.Second) }, n + 1000, Within},
		{"largest tolerance", func(w *Window) { _ = w.SetTolerance(math.MaxInt64) }, math.MinInt64, TooOld},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := New(5*time.Minute, errInvalid)
			if tc.setup != nil {
				tc.setup(&w)
			}
			if got := w.Check(tc.ts, now); got != tc.want {
				t.Errorf("Check(%d) = %v, want %v", tc.ts, got, tc.want)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name string
		set  func(w *Window) error
		want string
	}{
		{"tolerance zero", func(w *Window) error { return w.SetTolerance(0) },
			"test: invalid option: WithTolerance(0s): the tolerance must be positive (WithoutTolerance skips the timestamp window)"},
		{"tolerance negative", func(w *Window) error { return w.SetTolerance(-time.Second) },
			"test: invalid option: WithTolerance(-1s): the tolerance must be positive (WithoutTolerance skips the timestamp window)"},
		{"max age", func(w *Window) error { return w.SetMaxAge(0) },
			"test: invalid option: WithMaxAge(0s): the bound must be positive (WithoutMaxAge skips it)"},
		{"max future", func(w *Window) error { return w.SetMaxFuture(-time.Minute) },
			"test: invalid option: WithMaxFuture(-1m0s): the bound must be positive (WithoutMaxFuture skips it)"},
		{"nil clock", func(w *Window) error { return w.SetNow(nil) },
			"test: invalid option: WithNow(nil)"},
		{"refuse", func(w *Window) error { return w.Refuse("WithX(%d): no", 7) },
			"test: invalid option: WithX(7): no"},
	}
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := New(time.Minute, errInvalid)
			err := tc.set(&w)
			if !errors.Is(err, errInvalid) || err.Error() != tc.want {
				t.Fatalf("got %v, want %q wrapping errInvalid", err, tc.want)
			}
			// A refused value leaves the window as it was.
			if got := w.Check(now.Unix()-61, now); got != TooOld {
				t.Errorf("after refusal, Check = %v, want TooOld", got)
			}
			if got := w.Check(now.Unix()+61, now); got != TooNew {
				t.Errorf("after refusal, Check = %v, want TooNew", got)
			}
			if w.now == nil {
				t.Error("after refusal, the clock is nil")
			}
		})
	}
}

func TestValidSettersReturnNil(t *testing.T) {
	w := New(time.Minute, errInvalid)
	for _, err := range []error{w.SetTolerance(time.Second), w.SetMaxAge(time.Second), w.SetMaxFuture(time.Second), w.SetNow(time.Now)} {
		if err != nil {
			t.Errorf("valid setter returned %v", err)
		}
	}
}

func TestNow(t *testing.T) {
	fixed := time.Unix(42, 0)
	w := New(time.Minute, errInvalid)
	if d := time.Since(w.Now()); d < 0 || d > time.Minute {
		t.Errorf("default clock is off by %s", d)
	}
	if err := w.SetNow(func() time.Time { return fixed }); err != nil {
		t.Fatal(err)
	}
	if got := w.Now(); !got.Equal(fixed) {
		t.Errorf("Now() = %v, want %v", got, fixed)
	}
	// A copy keeps the clock and the bounds.
	c := w
	if got := c.Check(42-61, c.Now()); got != TooOld {
		t.Errorf("copy: Check = %v, want TooOld", got)
	}
}

func TestSideErr(t *testing.T) {
	old, nw := errors.New("old"), errors.New("new")
	if err := Within.Err(old, nw); err != nil {
		t.Errorf("Within.Err = %v", err)
	}
	if err := TooOld.Err(old, nw); err != old {
		t.Errorf("TooOld.Err = %v", err)
	}
	if err := TooNew.Err(old, nw); err != nw {
		t.Errorf("TooNew.Err = %v", err)
	}
}
