package attiosim

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/crmhook/crmhook/sim/internal/simhttp"
)

// DefaultToken is the bearer token a zero Config accepts.
const DefaultToken = "sim-attio-token"

// DefaultWorkspaceID is the workspace a zero Config simulates.
const DefaultWorkspaceID = "14beef7a-99f7-4534-a87e-70b564330a4c"

// Defaults of the fields of Config.
const (
	DefaultReadRate        = 100 // GET requests per second, Attio's documented limit
	DefaultWriteRate       = 25  // other requests per second, Attio's documented limit
	DefaultMaxRetries      = 10  // retries of one message after its first attempt, as Attio
	DefaultInitialBackoff  = 4*time.Minute + 15*time.Second
	DefaultDeliveryTimeout = 10 * time.Second
	DefaultInactiveAfter   = 7 * 24 * time.Hour
)

// Config configures a Server. The zero value is valid: every zero field takes
// the default documented on it, which mirrors Attio where Attio documents
// the behaviour.
type Config struct {
	// Token is the accepted bearer token. Default DefaultToken.
	Token string

	// WorkspaceID is the id of the simulated workspace (a UUID); it appears
	// in every webhook id and every event id. Default DefaultWorkspaceID.
	WorkspaceID string

	// ReadRate and WriteRate are the request budgets, per second, for GET
	// and for every other method of the /v2 API. Each allows a burst of its
	// rate (at least 1). Past them the answer is 429 with Retry-After as an
	// HTTP date. Defaults DefaultReadRate and DefaultWriteRate.
	ReadRate  float64
	WriteRate float64

	// MaxRetries is how many times a message that was not accepted is
	// retried after its first attempt; when the last retry fails too, the
	// webhook becomes "degraded". Default DefaultMaxRetries (10, as Attio).
	MaxRetries int

	// InitialBackoff is the simulated wait before the first retry; each
	// further wait doubles. The default, 4m15s, makes 10 retries span about
	// 3 days (72.5 h), Attio's documented spread; Attio does not publish its
	// exact schedule.
	InitialBackoff time.Duration

	// InactiveAfter is how long (simulated) a webhook stays degraded without
	// a successful delivery before it becomes "inactive" and receives
	// nothing more. Default 7 days, as Attio.
	InactiveAfter time.Duration

	// TimeScale is how many simulated seconds pass per real second, for the
	// waits between retries and for InactiveAfter. Tests use large values
	// (1e6 turns a minute into 60µs). Default 1.
	TimeScale float64

	// DeliveryTimeout bounds each delivery attempt, in real time; no answer
	// within it is a failed attempt. Default 10s.
	DeliveryTimeout time.Duration

	// HTTPClient sends deliveries. Default: a client that does not follow
	// redirects (a 3xx answer is a failed delivery, like any answer other
	// than 200 and 202).
	HTTPClient *http.Client

	// Now is the clock for created_at, the delivery log, the rate limits and
	// InactiveAfter. Waits between retries use real timers (scaled by
	// TimeScale), not this clock. Default time.Now.
	Now func() time.Time

	// Logger receives one line per API call, webhook change and delivery
	// attempt. It never receives payloads, secrets, tokens or target URLs
	// (they may hold path secrets). Default: discard.
	Logger *slog.Logger
}

// ErrInvalidConfig is wrapped by the error New returns for a bad Config.
var ErrInvalidConfig = errors.New("attiosim: invalid config")

// withDefaults returns a copy of cfg with every zero field set to its
// default, or one error naming each invalid field.
func (cfg Config) withDefaults() (Config, error) {
	var c simhttp.Checker
	switch {
	case cfg.Token == "":
		cfg.Token = DefaultToken
	case strings.ContainsFunc(cfg.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		// The token itself is never echoed: it is a secret even here.
		c.Bad("Token", "must not contain whitespace or control characters")
	}

	if cfg.WorkspaceID == "" {
		cfg.WorkspaceID = DefaultWorkspaceID
	} else if !isUUID(cfg.WorkspaceID) {
		c.Bad("WorkspaceID", "%q is not a UUID", cfg.WorkspaceID)
	}

	c.Positive("ReadRate", &cfg.ReadRate, DefaultReadRate)
	c.Positive("WriteRate", &cfg.WriteRate, DefaultWriteRate)
	c.Positive("TimeScale", &cfg.TimeScale, 1)
	c.Int("MaxRetries", &cfg.MaxRetries, DefaultMaxRetries)
	c.Duration("InitialBackoff", &cfg.InitialBackoff, DefaultInitialBackoff)
	c.Duration("InactiveAfter", &cfg.InactiveAfter, DefaultInactiveAfter)
	c.Duration("DeliveryTimeout", &cfg.DeliveryTimeout, DefaultDeliveryTimeout)
	c.Common(&cfg.HTTPClient, &cfg.Now, &cfg.Logger)
	return simhttp.Result(&c, cfg, ErrInvalidConfig)
}

// isUUID reports whether s is a UUID in its canonical 36-character form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}
