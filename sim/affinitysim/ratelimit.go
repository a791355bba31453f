package affinitysim

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// rateLimiter keeps Affinity's two budgets: requests per user per minute and
// requests per instance (org) per month. Both are fixed windows on the
// configured clock: the minute window is the wall-clock minute and the month
// is the UTC calendar month, so Reset values are easy to predict in tests.
type rateLimiter struct {
	perUser int
	perOrg  int

	mu        sync.Mutex
	users     map[int64]*minuteWindow
	orgMonth  time.Time // first instant of the counted month (UTC)
	orgCount  int
	orgExists bool
}

type minuteWindow struct {
	start time.Time
	count int
}

// rateState is what the X-Ratelimit-* headers report after a request.
type rateState struct {
	userLimit, userRemaining int
	userReset                time.Duration
	orgLimit, orgRemaining   int
	orgReset                 time.Duration
	allowed                  bool
	retryAfter               time.Duration // set when !allowed
}

func newRateLimiter(perUser, perOrg int) *rateLimiter {
	return &rateLimiter{perUser: perUser, perOrg: perOrg, users: map[int64]*minuteWindow{}}
}

// take spends one request of userID's minute budget and of the org's monthly
// budget, unless either is spent already; refused requests cost nothing.
func (rl *rateLimiter) take(userID int64, now time.Time) rateState {
	rl.mu.Lock()
	defer rl.mu.Unlock()

	minute := now.Truncate(time.Minute)
	w := rl.users[userID]
	if w == nil || !w.start.Equal(minute) {
		w = &minuteWindow{start: minute}
		rl.users[userID] = w
	}
	utc := now.UTC()
	month := time.Date(utc.Year(), utc.Month(), 1, 0, 0, 0, 0, time.UTC)
	if !rl.orgExists || !rl.orgMonth.Equal(month) {
		rl.orgMonth, rl.orgCount, rl.orgExists = month, 0, true
	}

	st := rateState{
		userLimit: rl.perUser,
		userReset: minute.Add(time.Minute).Sub(now),
		orgLimit:  rl.perOrg,
		orgReset:  month.AddDate(0, 1, 0).Sub(now),
	}
	userOver := w.count >= rl.perUser
	orgOver := rl.orgCount >= rl.perOrg
	if userOver || orgOver {
		if userOver {
			st.retryAfter = st.userReset
		}
		if orgOver && st.orgReset > st.retryAfter {
			st.retryAfter = st.orgReset
		}
	} else {
		w.count++
		rl.orgCount++
		st.allowed = true
	}
	st.userRemaining = rl.perUser - w.count
	st.orgRemaining = rl.perOrg - rl.orgCount
	return st
}

// setHeaders writes Affinity's rate-limit headers (names as Affinity spells
// them; Go's canonical form of each is the same spelling).
func (st rateState) setHeaders(h http.Header) {
	h.Set("X-Ratelimit-Limit-User", strconv.Itoa(st.userLimit))
	h.Set("X-Ratelimit-Limit-User-Remaining", strconv.Itoa(st.userRemaining))
	h.Set("X-Ratelimit-Limit-User-Reset", seconds(st.userReset))
	h.Set("X-Ratelimit-Limit-Org", strconv.Itoa(st.orgLimit))
	h.Set("X-Ratelimit-Limit-Org-Remaining", strconv.Itoa(st.orgRemaining))
	h.Set("X-Ratelimit-Limit-Org-Reset", seconds(st.orgReset))
	if !st.allowed {
		h.Set("Retry-After", seconds(st.retryAfter))
	}
}

// seconds renders d as whole seconds, rounded up so a client that waits that
// long is always past the reset.
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}
