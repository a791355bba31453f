package affinitysim

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/crmhook/crmhook/sim/internal/simhttp"
)

// User is one Affinity user of the simulated instance. Admins may delete any
// webhook subscription; everyone else only the ones they created.
type User struct {
	ID     int64
	APIKey string
	Admin  bool
}

// The users a zero Config gets: one admin and one ordinary user, so the
// creator-only and creator-or-admin rules can be tried out of the box.
const (
	DefaultAdminKey = "sim-admin-key"
	DefaultUserKey  = "sim-user-key"
)

// Config configures a Server. The zero value is valid: every zero field takes
// the default documented on it, which mirrors Affinity's real behaviour.
type Config struct {
	// Users of the instance. Default: {1, "sim-admin-key", admin} and
	// {2, "sim-user-key", not admin}.
	Users []User

	// MaxSubscriptions is how many webhook subscriptions the instance may
	// hold. Default 3, Affinity's documented limit.
	MaxSubscriptions int

	// RateLimitPerMinute is each user's request budget per minute window.
	// Default 900, Affinity's documented limit.
	RateLimitPerMinute int

	// OrgMonthlyQuota is the instance's request budget per calendar month
	// (UTC). Default 100000.
	OrgMonthlyQuota int

	// ProbeTimeout bounds the sample.webhook probe sent on create and update
	// (real time): the target must answer 2xx within it. Default 3s.
	ProbeTimeout time.Duration

	// RetryWindow is how long failed deliveries are retried, in simulated
	// time, before the subscription is disabled. Default 10h, Affinity's
	// documented window.
	RetryWindow time.Duration

	// InitialBackoff is the simulated wait before the first retry; each
	// further wait doubles. Default 1m.
	InitialBackoff time.Duration

	// DeliveryTimeout bounds each delivery attempt (real time). Default 10s.
	DeliveryTimeout time.Duration

	// TimeScale is how many simulated seconds pass per real second while
	// waiting between retries, so tests can run Affinity's 10 hour window in
	// a second with 36000. Default 1.
	TimeScale float64

	// HTTPClient sends probes and deliveries. Default: a client that does not
	// follow redirects (a 3xx answer is a failed delivery, as for any non-2xx).
	HTTPClient *http.Client

	// Now is the clock for sent_at, the delivery log and the rate-limit
	// windows. Default time.Now.
	Now func() time.Time

	// Logger receives one line per API call and per subscription change. It
	// never receives payloads, webhook URLs (they hold path secrets) or API
	// keys. Default: discard.
	Logger *slog.Logger
}

// ErrInvalidConfig is wrapped by the error New returns for a bad Config.
var ErrInvalidConfig = errors.New("affinitysim: invalid config")

// withDefaults returns a copy of cfg with every zero field set to its
// default, or an error naming each invalid field.
func (cfg Config) withDefaults() (Config, error) {
	var c simhttp.Checker
	if len(cfg.Users) == 0 {
		cfg.Users = []User{
			{ID: 1, APIKey: DefaultAdminKey, Admin: true},
			{ID: 2, APIKey: DefaultUserKey},
		}
	} else {
		cfg.Users = append([]User(nil), cfg.Users...)
		ids := map[int64]bool{}
		keys := map[string]bool{}
		for i, u := range cfg.Users {
			field := fmt.Sprintf("Users[%d]", i)
			if u.ID <= 0 {
				c.Bad(field+".ID", "must be a positive integer")
			} else if ids[u.ID] {
				c.Bad(field+".ID", "duplicate user id %d", u.ID)
			}
			ids[u.ID] = true
			switch {
			case u.APIKey == "":
				c.Bad(field+".APIKey", "must not be empty")
			case strings.TrimSpace(u.APIKey) != u.APIKey || strings.ContainsAny(u.APIKey, " \t\r\n"):
				// The key itself is never echoed: it is a secret even here.
				c.Bad(field+".APIKey", "must not contain whitespace")
			case keys[u.APIKey]:
				c.Bad(field+".APIKey", "same key as an earlier user")
			}
			keys[u.APIKey] = true
		}
	}

	c.Int("MaxSubscriptions", &cfg.MaxSubscriptions, 3)
	c.Int("RateLimitPerMinute", &cfg.RateLimitPerMinute, 900)
	c.Int("OrgMonthlyQuota", &cfg.OrgMonthlyQuota, 100000)
	c.Duration("ProbeTimeout", &cfg.ProbeTimeout, 3*time.Second)
	c.Duration("RetryWindow", &cfg.RetryWindow, 10*time.Hour)
	c.Duration("InitialBackoff", &cfg.InitialBackoff, time.Minute)
	c.Duration("DeliveryTimeout", &cfg.DeliveryTimeout, 10*time.Second)
	c.Positive("TimeScale", &cfg.TimeScale, 1)
	c.Common(&cfg.HTTPClient, &cfg.Now, &cfg.Logger)
	return simhttp.Result(&c, cfg, ErrInvalidConfig)
}
