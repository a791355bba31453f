package receiver

import (
	"errors"
	"fmt"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/stdwebhooks"
)

// ReplayWindow bounds how far a delivery's own timestamp may lie from the
// receiver's clock. Each side is checked on its own. Off is the one way to
// switch the check off: a zero side means "the provider's default for that
// side", never "off", and a negative side is refused.
type ReplayWindow struct {
	Off       bool
	MaxAge    time.Duration // how old the timestamp may be
	MaxFuture time.Duration // how far ahead of the clock it may be
}

// DefaultReplayWindow is the window a source gets for the sides it does not
// set. Affinity's is long because Affinity retries a failed delivery for up
// to 10 hours and does not say whether a retry keeps its first sent_at.
func DefaultReplayWindow(p crmhook.Provider) ReplayWindow {
	switch p {
	case crmhook.ProviderAffinity:
		return ReplayWindow{MaxAge: affinity.DefaultMaxAge, MaxFuture: affinity.DefaultMaxFutureSkew}
	case crmhook.ProviderAttio:
		return ReplayWindow{MaxAge: attio.DefaultTolerance, MaxFuture: attio.DefaultTolerance}
	default:
		return ReplayWindow{MaxAge: stdwebhooks.DefaultTolerance, MaxFuture: stdwebhooks.DefaultTolerance}
	}
}

// WithDefaults fills each unset side with the provider's default for it.
func (w ReplayWindow) WithDefaults(p crmhook.Provider) ReplayWindow {
	if w.Off {
		return ReplayWindow{Off: true}
	}
	d := DefaultReplayWindow(p)
	if w.MaxAge == 0 {
		w.MaxAge = d.MaxAge
	}
	if w.MaxFuture == 0 {
		w.MaxFuture = d.MaxFuture
	}
	return w
}

func (w ReplayWindow) validate() error {
	if !w.Off && (w.MaxAge < 0 || w.MaxFuture < 0) {
		return errors.New("replay window sides must be positive (set Off to switch the window off)")
	}
	return nil
}

// check returns nil when ts is inside the window (or the window is off, or
// the delivery carries no timestamp), else an error wrapping errStale that
// says which side was crossed and by how much.
func (w ReplayWindow) check(ts, now time.Time) error {
	if w.Off || ts.IsZero() {
		return nil
	}
	if age := now.Sub(ts); age > w.MaxAge {
		return fmt.Errorf("%w: the timestamp is %s old, the source accepts at most %s", errStale, age.Round(time.Second), w.MaxAge)
	}
	if ahead := ts.Sub(now); ahead > w.MaxFuture {
		return fmt.Errorf("%w: the timestamp is %s ahead of this receiver's clock, the source accepts at most %s", errStale, ahead.Round(time.Second), w.MaxFuture)
	}
	return nil
}
