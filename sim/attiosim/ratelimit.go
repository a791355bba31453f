package attiosim

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// limiter is one of Attio's request budgets (reads or writes), a token
// bucket on Config.Now so tests with a frozen clock see exact behaviour.
type limiter struct {
	lim *rate.Limiter
}

// newLimiter allows perSecond requests a second with a burst of the same
// size (at least 1), starting full at now.
func newLimiter(perSecond float64, now time.Time) *limiter {
	burst := max(1, int(math.Ceil(perSecond)))
	lim := rate.NewLimiter(rate.Limit(perSecond), burst)
	lim.SetLimitAt(now, rate.Limit(perSecond)) // start the bucket on the configured clock
	return &limiter{lim: lim}
}

// take spends one request, or reports when one will be available again.
// retryAt is rounded up to the next whole second, because Retry-After is an
// HTTP date (one-second resolution) and a client waiting until it must find
// a token there.
func (l *limiter) take(now time.Time) (ok bool, retryAt time.Time) {
	if l.lim.AllowN(now, 1) {
		return true, time.Time{}
	}
	r := l.lim.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	r.CancelAt(now) // a refused request costs nothing
	at := now.Add(delay)
	if t := at.Truncate(time.Second); !t.Equal(at) {
		at = t.Add(time.Second)
	}
	return false, at
}
