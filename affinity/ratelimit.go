package affinity

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The rate-limit headers Affinity sets on API answers.
const (
	HeaderUserLimit     = "X-Ratelimit-Limit-User"
	HeaderUserRemaining = "X-Ratelimit-Limit-User-Remaining"
	HeaderUserReset     = "X-Ratelimit-Limit-User-Reset"
	HeaderOrgLimit      = "X-Ratelimit-Limit-Org"
	HeaderOrgRemaining  = "X-Ratelimit-Limit-Org-Remaining"
	HeaderOrgReset      = "X-Ratelimit-Limit-Org-Reset"
)

// RateLimits are Affinity's two budgets as one answer reported them: requests
// per user per minute (900) and the organisation's monthly quota. A count
// whose header was missing or malformed is -1; a reset whose header was
// missing is 0. Known is false when the answer carried none of the headers
// (a proxy error page, a transport that strips them).
type RateLimits struct {
	Known bool

	UserLimit     int
	UserRemaining int
	UserReset     time.Duration // until the user's minute window resets

	OrgLimit     int
	OrgRemaining int
	OrgReset     time.Duration // until the org's monthly quota resets
}

// parseRateLimits reads the X-Ratelimit-* headers. Resets are whole seconds
// (fractions are accepted, should Affinity send them).
func parseRateLimits(h http.Header) RateLimits {
	rl := RateLimits{}
	count := func(name string) int {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			return -1
		}
		rl.Known = true
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return -1
		}
		return n
	}
	reset := func(name string) time.Duration {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			return 0
		}
		rl.Known = true
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || !(secs >= 0 && secs <= float64(366*24*time.Hour/time.Second)) { // NaN too
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	rl.UserLimit = count(HeaderUserLimit)
	rl.UserRemaining = count(HeaderUserRemaining)
	rl.UserReset = reset(HeaderUserReset)
	rl.OrgLimit = count(HeaderOrgLimit)
	rl.OrgRemaining = count(HeaderOrgRemaining)
	rl.OrgReset = reset(HeaderOrgReset)
	return rl
}
