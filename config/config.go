// Package config reads crmhook's YAML configuration: ${ENV} references are
// expanded inside values, unknown keys are refused, defaults are filled in and
// every problem is reported with the path of the field that has it.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/deliver"
	"github.com/crmhook/crmhook/receiver"
	"github.com/crmhook/crmhook/sink"
	"github.com/crmhook/crmhook/sink/natssink"
	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration of `crmhook serve`.
type Config struct {
	Listen         string   `yaml:"listen"`          // public listener: /hooks/… only
	TLS            TLS      `yaml:"tls"`             // optional TLS on the public listener
	TrustedProxies []string `yaml:"trusted_proxies"` // CIDRs whose X-Forwarded-* headers are believed
	Admin          Admin    `yaml:"admin"`
	DataDir        string   `yaml:"data_dir"`
	Store          string   `yaml:"store"` // sqlite:///path, a plain path, or postgres://…
	Log            Log      `yaml:"log"`
	// DedupeWindow is how long a dedupe key lives: a redelivery inside it
	// is acknowledged and dropped. It must exceed every replay window, or a
	// provider retry could arrive after its key expired and be delivered twice.
	DedupeWindow time.Duration `yaml:"dedupe_window"`
	// Retention is how long fully delivered events are kept.
	Retention time.Duration `yaml:"retention"`
	Delivery  Delivery      `yaml:"delivery"`
	Sources   []Source      `yaml:"sources"`
	Sinks     []Sink        `yaml:"sinks"`
	// ShutdownGrace bounds a graceful stop (in-flight requests and deliveries).
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`

	// PublicURL is how providers reach the public listener
	// (https://hooks.example.com); declared subscriptions point there.
	PublicURL string `yaml:"public_url"`
	// Watchdog keeps declared subscriptions healthy while serve runs.
	Watchdog Watchdog `yaml:"watchdog"`

	// Deprecations lists the deprecated keys the file used, each with what
	// replaces it; serve logs them once at start.
	Deprecations []string `yaml:"-"`
}

// TLS names the certificate and key files for the public listener.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Admin is the separate listener for health, metrics and the admin API.
type Admin struct {
	Listen string `yaml:"listen"` // default 127.0.0.1:8081; "off" disables it
	Token  string `yaml:"token"`  // bearer token for /api/…; generated on first run when empty
}

// Log configures structured logging. Payloads and secrets are never logged.
type Log struct {
	Format string `yaml:"format"` // text or json
	Level  string `yaml:"level"`  // debug, info, warn, error
}

// Delivery is the dispatcher's retry budget and pacing.
type Delivery struct {
	MaxAttempts int `yaml:"max_attempts"`
	// GiveUpAfter is how long after its event arrived a failing delivery is
	// retried before it is dead-lettered. The key was called max_age before;
	// that name is still read (see UnmarshalYAML) and reported deprecated.
	GiveUpAfter  time.Duration `yaml:"give_up_after"`
	BaseDelay    time.Duration `yaml:"base_delay"`
	MaxDelay     time.Duration `yaml:"max_delay"`
	Lease        time.Duration `yaml:"lease"`
	PollInterval time.Duration `yaml:"poll_interval"`

	deprecatedMaxAge bool // the file used max_age
}

// UnmarshalYAML reads the delivery block, taking the deprecated key max_age
// as give_up_after (both at once is an error: they would disagree).
func (d *Delivery) UnmarshalYAML(n *yaml.Node) error {
	type plain Delivery
	var v struct {
		plain  `yaml:",inline"`
		MaxAge *time.Duration `yaml:"max_age"`
	}
	if err := n.Decode(&v); err != nil {
		return err
	}
	*d = Delivery(v.plain)
	if v.MaxAge != nil {
		if d.GiveUpAfter != 0 {
			return fmt.Errorf("line %d: delivery: max_age is the old name of give_up_after; set only give_up_after", n.Line)
		}
		d.GiveUpAfter, d.deprecatedMaxAge = *v.MaxAge, true
	}
	return nil
}

// Source is one provider endpoint under /hooks/{name}.
type Source struct {
	Name     string           `yaml:"name"`
	Provider crmhook.Provider `yaml:"provider"`
	// Secrets authenticate deliveries: for affinity the URL path secrets, for
	// attio and standard-webhooks the signing secrets. Several may be active
	// at once while one is rotated.
	Secrets []string `yaml:"secrets"`
	// PathSecrets optionally add a secret path segment to a signed source.
	PathSecrets  []string     `yaml:"path_secrets"`
	ReplayWindow ReplayWindow `yaml:"replay_window"`
	BodyLimit    ByteSize     `yaml:"body_limit"`
	AllowIPs     []string     `yaml:"allow_ips"` // CIDRs or addresses; empty = anyone
	RateLimit    RateLimit    `yaml:"rate_limit"`
	RequireHTTPS bool         `yaml:"require_https"`
	// Subscription declares the provider subscription that feeds this
	// source; `crmhook subscriptions apply` makes it so and the watchdog
	// keeps it so. Nil: the source's subscription is managed by hand.
	Subscription *Subscription `yaml:"subscription"`
}

// Subscription is a source's declared provider subscription.
type Subscription struct {
	// API is Affinity's webhooks API: v1 (the default) or v2.
	API string `yaml:"api"`
	// Events the subscription receives; none means every event type
	// (Affinity only: an Attio webhook needs at least one).
	Events []SubscriptionEvent `yaml:"events"`
	// APIKey authenticates to the provider (usually ${AFFINITY_API_KEY} or
	// ${ATTIO_API_KEY}). Never logged.
	APIKey string `yaml:"api_key"`
	// APIBaseURL is the provider API's base; default the provider's own.
	APIBaseURL string `yaml:"api_base_url"`
}

// SubscriptionEvent is one event type, with an Attio filter when given.
// YAML writes it as a plain type ("person.created") or as a mapping
// {type, filter} whose filter is Attio's {"$and": […]} / {"$or": […]}.
type SubscriptionEvent struct {
	Type   string
	Filter json.RawMessage // JSON, nil when there is none
}

// UnmarshalYAML reads the plain or the mapping form.
func (e *SubscriptionEvent) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		e.Type = n.Value
		return nil
	}
	var v struct {
		Type   string `yaml:"type"`
		Filter any    `yaml:"filter"`
	}
	if err := n.Decode(&v); err != nil {
		return err
	}
	e.Type = v.Type
	if v.Filter != nil {
		b, err := json.Marshal(v.Filter)
		if err != nil {
			return fmt.Errorf("line %d: filter: %v", n.Line, err)
		}
		e.Filter = b
	}
	return nil
}

// Watchdog is the subscription watchdog of `crmhook serve`. It runs only
// when a source declares a subscription.
type Watchdog struct {
	// Off switches the watchdog off (`watchdog: off`).
	Off bool `yaml:"off"`
	// Interval between two checks of every declared subscription.
	Interval time.Duration `yaml:"interval"`
	// Repair re-enables, recreates and corrects what it finds broken;
	// false only reports. Default true.
	Repair *bool `yaml:"repair"`
}

// UnmarshalYAML reads `off` or a mapping {interval, repair}.
func (w *Watchdog) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value != "off" {
			return fmt.Errorf("line %d: watchdog: %q is neither off nor a mapping {interval, repair}", n.Line, n.Value)
		}
		*w = Watchdog{Off: true}
		return nil
	}
	type plain Watchdog
	return n.Decode((*plain)(w))
}

// HookURL is the public URL of source's hook: public_url/hooks/{source},
// then /{pathSecret} when the source takes one (Affinity always).
func (c *Config) HookURL(source, pathSecret string) string {
	u := c.PublicURL + "/hooks/" + source
	if pathSecret != "" {
		u += "/" + pathSecret
	}
	return u
}

// Repairs says whether the watchdog repairs what it finds.
func (w Watchdog) Repairs() bool { return w.Repair == nil || *w.Repair }

// ReplayWindow bounds how old, or how far in the future, a delivery's own
// timestamp may be. Each side that is not written takes the provider's
// default for that side (receiver.DefaultReplayWindow). "Off" is written
// `replay_window: off` or `{disabled: true}`; a zero duration is refused,
// never taken to mean off.
type ReplayWindow struct {
	MaxAge    time.Duration `yaml:"max_age"`
	MaxFuture time.Duration `yaml:"max_future"`
	Disabled  bool          `yaml:"disabled"`
}

// UnmarshalYAML reads `off` or a mapping, and refuses a side written as
// zero or negative.
func (w *ReplayWindow) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value != "off" {
			return fmt.Errorf("line %d: replay_window: %q is neither off nor a mapping {max_age, max_future}", n.Line, n.Value)
		}
		*w = ReplayWindow{Disabled: true}
		return nil
	}
	var v struct {
		MaxAge    *time.Duration `yaml:"max_age"`
		MaxFuture *time.Duration `yaml:"max_future"`
		Disabled  bool           `yaml:"disabled"`
	}
	if err := n.Decode(&v); err != nil {
		return err
	}
	*w = ReplayWindow{Disabled: v.Disabled}
	for _, side := range []struct {
		key string
		val *time.Duration
		dst *time.Duration
	}{{"max_age", v.MaxAge, &w.MaxAge}, {"max_future", v.MaxFuture, &w.MaxFuture}} {
		if side.val == nil {
			continue
		}
		if *side.val <= 0 {
			return fmt.Errorf("line %d: replay_window.%s must be positive; to switch the window off write replay_window: off", n.Line, side.key)
		}
		*side.dst = *side.val
	}
	if w.Disabled && (w.MaxAge != 0 || w.MaxFuture != 0) {
		return fmt.Errorf("line %d: replay_window: disabled together with max_age or max_future; choose one", n.Line)
	}
	return nil
}

// Receiver is the window as the receiver takes it.
func (w ReplayWindow) Receiver() receiver.ReplayWindow {
	return receiver.ReplayWindow{Off: w.Disabled, MaxAge: w.MaxAge, MaxFuture: w.MaxFuture}
}

// RateLimit is a token bucket per source; zero RPS means no limit.
type RateLimit struct {
	RPS   float64 `yaml:"rps"`
	Burst int     `yaml:"burst"`
}

// Sink is one destination. Type chooses which of the type-specific fields apply.
type Sink struct {
	Name        string   `yaml:"name"`
	Type        string   `yaml:"type"` // http, exec, file, nats
	Sources     []string `yaml:"sources"`
	Types       []string `yaml:"types"` // globs: "person.*"
	Concurrency int      `yaml:"concurrency"`

	// http
	URL     string            `yaml:"url"`
	Secret  string            `yaml:"secret"` // whsec_… to sign with Standard Webhooks headers
	Headers map[string]string `yaml:"headers"`
	Timeout time.Duration     `yaml:"timeout"`
	// exec
	Command []string          `yaml:"command"`
	Env     map[string]string `yaml:"env"`
	// file
	Path string `yaml:"path"` // "-" is stdout
	// nats
	NATSURL string `yaml:"nats_url"`
	Subject string `yaml:"subject"` // template, default crmhook.{source}.{type}
	Stream  string `yaml:"stream"`  // optional: create/extend this JetStream stream to capture the subjects
}

// Filter is the sink's event filter.
func (s Sink) Filter() crmhook.SinkFilter {
	return crmhook.SinkFilter{Sources: s.Sources, Types: s.Types}
}

// ByteSize is a size in bytes that YAML may write as 1048576, "1MiB" or "512KiB".
type ByteSize int64

// UnmarshalYAML reads a plain integer or a number with a KiB/MiB/GiB (or KB/MB/GB) suffix.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// ParseByteSize reads "1048576", "1MiB", "64KB" and the like.
func ParseByteSize(s string) (ByteSize, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("invalid size %q (want bytes or a number with KiB, MiB, GiB)", s)
	}
	return ByteSize(n * mult), nil
}

// Provider defaults.
const (
	DefaultListen       = "127.0.0.1:8080"
	DefaultAdminListen  = "127.0.0.1:8081"
	DefaultDataDir      = ".crmhook"
	DefaultBodyLimit    = ByteSize(receiver.DefaultBodyLimit)
	DefaultDedupeWindow = receiver.DefaultDedupeWindow
	DefaultRetention    = 7 * 24 * time.Hour
	// DefaultShutdownGrace bounds a graceful stop of `crmhook serve`.
	DefaultShutdownGrace = 15 * time.Second
	// DefaultWatchdogInterval is how often the watchdog checks declared
	// subscriptions: well inside Affinity's 10 hours of retries, and a few
	// list calls per interval, far below the providers' rate limits.
	DefaultWatchdogInterval = 5 * time.Minute
	// MinPathSecretLen: a path secret is the only authentication of an
	// Affinity delivery, so it must be at least 32 characters of
	// cryptographically random data.
	MinPathSecretLen = 32
)

// Load reads and validates the file at path, expanding ${ENV} with getenv.
func Load(path string, getenv func(string) string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b, getenv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML, expands ${ENV} references in values, applies defaults
// and validates.
func Parse(data []byte, getenv func(string) string) (*Config, error) {
	// ${NAME} is not valid YAML everywhere (inside a flow sequence such as
	// `secrets: [${SECRET}]` its braces are flow indicators), so each
	// reference is first replaced by a placeholder that is a plain word in
	// any YAML context, and expanded inside the parsed values.
	var refs []string
	data = envRef.ReplaceAllFunc(data, func(m []byte) []byte {
		refs = append(refs, string(m))
		return []byte(envPlaceholder + strconv.Itoa(len(refs)-1) + "x")
	})
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	if err := expandNode(&root, refs, getenv); err != nil {
		return nil, err
	}
	// Re-encode the expanded tree so the strict decoder can refuse unknown keys.
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	var c Config
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// envPlaceholder stands for the n-th ${…} reference as envPlaceholder+n+"x"
// while the YAML is parsed.
const envPlaceholder = "crmhookenvref"

var envPlaceholderRef = regexp.MustCompile(envPlaceholder + `([0-9]+)x`)

// expandNode replaces ${NAME} and ${NAME:-default} in every scalar value;
// "$$" stands for a literal "$". An unset variable without a default is an
// error naming it and the line, so a missing secret never becomes "".
// References in comments are never expanded.
func expandNode(n *yaml.Node, refs []string, getenv func(string) string) error {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, envPlaceholder) {
		var missing []string
		n.Value = envPlaceholderRef.ReplaceAllStringFunc(n.Value, func(p string) string {
			i, _ := strconv.Atoi(envPlaceholderRef.FindStringSubmatch(p)[1])
			m := refs[i]
			if m == "$$" {
				return "$"
			}
			sub := envRef.FindStringSubmatch(m)
			if v := getenv(sub[1]); v != "" {
				return v
			}
			if sub[2] != "" {
				return sub[3]
			}
			missing = append(missing, sub[1])
			return ""
		})
		if len(missing) > 0 {
			return fmt.Errorf("line %d: environment variable %s is not set", n.Line, strings.Join(missing, ", "))
		}
		// An expanded value is data, never YAML: keep it a string unless it
		// was written plainly and still reads as the same kind.
		if n.Style == 0 && n.Tag == "!!str" {
			n.Style = yaml.DoubleQuotedStyle
		}
	}
	for _, c := range n.Content {
		if err := expandNode(c, refs, getenv); err != nil {
			return err
		}
	}
	return nil
}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Listen, DefaultListen)
	def(&c.Admin.Listen, DefaultAdminListen)
	def(&c.DataDir, DefaultDataDir)
	def(&c.Store, "sqlite://"+path.Join(c.DataDir, "crmhook.db"))
	def(&c.Log.Format, "text")
	def(&c.Log.Level, "info")
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if !c.Watchdog.Off && c.Watchdog.Interval == 0 {
		c.Watchdog.Interval = DefaultWatchdogInterval
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	d := &c.Delivery
	if d.MaxAttempts == 0 {
		d.MaxAttempts = deliver.DefaultMaxAttempts
	}
	if d.GiveUpAfter == 0 {
		d.GiveUpAfter = deliver.DefaultGiveUpAfter
	}
	if d.deprecatedMaxAge && !slices.Contains(c.Deprecations, deprecatedDeliveryMaxAge) {
		c.Deprecations = append(c.Deprecations, deprecatedDeliveryMaxAge)
	}
	if d.BaseDelay == 0 {
		d.BaseDelay = deliver.DefaultBaseDelay
	}
	if d.MaxDelay == 0 {
		d.MaxDelay = deliver.DefaultMaxDelay
	}
	if d.Lease == 0 {
		d.Lease = deliver.DefaultLease
	}
	if d.PollInterval == 0 {
		d.PollInterval = deliver.DefaultPollInterval
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Subscription != nil && s.Subscription.API == "" && s.Provider == crmhook.ProviderAffinity {
			s.Subscription.API = "v1"
		}
		if s.BodyLimit == 0 {
			s.BodyLimit = DefaultBodyLimit
		}
		rw := s.ReplayWindow.Receiver().WithDefaults(s.Provider)
		s.ReplayWindow = ReplayWindow{Disabled: rw.Off, MaxAge: rw.MaxAge, MaxFuture: rw.MaxFuture}
		if s.RateLimit.RPS > 0 && s.RateLimit.Burst == 0 {
			s.RateLimit.Burst = int(2*s.RateLimit.RPS) + 1
		}
	}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		if s.Concurrency == 0 {
			s.Concurrency = deliver.DefaultConcurrency
		}
		if s.Timeout == 0 {
			s.Timeout = map[string]time.Duration{"exec": sink.DefaultExecTimeout, "nats": natssink.DefaultTimeout}[s.Type]
			if s.Timeout == 0 {
				s.Timeout = sink.DefaultHTTPTimeout
			}
		}
		if s.Type == "nats" && s.Subject == "" {
			s.Subject = natssink.DefaultSubject
		}
	}
}

const deprecatedDeliveryMaxAge = "delivery.max_age is deprecated: it is now delivery.give_up_after (replay_window.max_age is a different thing)"

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate reports every problem, each prefixed by the path of its field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if _, err := netip.ParseAddrPort(c.Listen); err != nil && !strings.HasPrefix(c.Listen, ":") {
		bad("listen", "%q is not host:port", c.Listen)
	}
	if c.Admin.Listen != "off" {
		if _, err := netip.ParseAddrPort(c.Admin.Listen); err != nil && !strings.HasPrefix(c.Admin.Listen, ":") {
			bad("admin.listen", "%q is not host:port (or \"off\")", c.Admin.Listen)
		}
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "cert and key must be given together")
	}
	for i, p := range c.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			bad(fmt.Sprintf("trusted_proxies[%d]", i), "%v", err)
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
			bad("public_url", "must be an absolute http(s) URL without credentials or query")
		}
	}
	if !c.Watchdog.Off && c.Watchdog.Interval < time.Second {
		bad("watchdog.interval", "%s is shorter than 1s (watchdog: off switches it off)", c.Watchdog.Interval)
	}
	if _, err := ParseStoreURL(c.Store); err != nil {
		bad("store", "%v", err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if c.Delivery.MaxAttempts < 1 {
		bad("delivery.max_attempts", "must be at least 1")
	}
	if c.Delivery.BaseDelay <= 0 || c.Delivery.MaxDelay < c.Delivery.BaseDelay {
		bad("delivery.base_delay", "must be positive and at most delivery.max_delay")
	}
	if c.Delivery.Lease < time.Second {
		bad("delivery.lease", "%s is shorter than 1s", c.Delivery.Lease)
	}
	if len(c.Sources) == 0 {
		bad("sources", "at least one source is required")
	}
	names := map[string]bool{}
	for i, s := range c.Sources {
		f := fmt.Sprintf("sources[%d]", i)
		if !namePattern.MatchString(s.Name) {
			bad(f+".name", "%q must be 1-63 lowercase letters, digits, '-' or '_'", s.Name)
		} else if names[s.Name] {
			bad(f+".name", "duplicate source name %q", s.Name)
		} else if s.Name == string(crmhook.ProviderCrmhook) {
			bad(f+".name", "%q is reserved for crmhook's own events (the watchdog's findings)", s.Name)
		}
		names[s.Name] = true
		switch s.Provider {
		case crmhook.ProviderAffinity:
			if len(s.Secrets) == 0 {
				bad(f+".secrets", "affinity sources need at least one path secret (Affinity does not sign deliveries)")
			}
			if len(s.PathSecrets) > 0 {
				bad(f+".path_secrets", "an affinity source's secrets are its path secrets; path_secrets applies only to signed sources (attio, standard-webhooks)")
			}
			for j, sec := range s.Secrets {
				if len(sec) < MinPathSecretLen {
					bad(fmt.Sprintf("%s.secrets[%d]", f, j), "path secret is %d characters; at least %d random URL-safe characters are required", len(sec), MinPathSecretLen)
				} else if !urlSafe(sec) {
					bad(fmt.Sprintf("%s.secrets[%d]", f, j), "path secret must use only URL-safe characters (A-Z a-z 0-9 - _)")
				}
			}
		case crmhook.ProviderAttio, crmhook.ProviderStandardWebhooks:
			if len(s.Secrets) == 0 {
				bad(f+".secrets", "%s sources need at least one signing secret", s.Provider)
			}
			for j, sec := range s.Secrets {
				if sec == "" {
					bad(fmt.Sprintf("%s.secrets[%d]", f, j), "empty signing secret")
				}
			}
		default:
			bad(f+".provider", "%q is not affinity, attio or standard-webhooks", s.Provider)
		}
		for j, sec := range s.PathSecrets {
			if len(sec) < MinPathSecretLen || !urlSafe(sec) {
				bad(fmt.Sprintf("%s.path_secrets[%d]", f, j), "path secret must be at least %d URL-safe characters", MinPathSecretLen)
			}
		}
		if s.BodyLimit < 1024 {
			bad(f+".body_limit", "%d bytes is too small (at least 1KiB)", s.BodyLimit)
		}
		rw := s.ReplayWindow
		if !rw.Disabled && (rw.MaxAge <= 0 || rw.MaxFuture <= 0) {
			bad(f+".replay_window", "max_age and max_future must be positive (replay_window: off switches the window off)")
		}
		if !rw.Disabled && rw.MaxAge >= c.DedupeWindow {
			bad("dedupe_window", "%s must be longer than %s.replay_window.max_age (%s): a redelivery accepted by the replay window after its dedupe key expired would be delivered twice", c.DedupeWindow, f, rw.MaxAge)
		}
		if s.Subscription != nil {
			c.validateSubscription(f+".subscription", s, bad)
		}
		for j, p := range s.AllowIPs {
			if _, err := ParsePrefix(p); err != nil {
				bad(fmt.Sprintf("%s.allow_ips[%d]", f, j), "%v", err)
			}
		}
		if s.RateLimit.RPS < 0 || s.RateLimit.Burst < 0 {
			bad(f+".rate_limit", "rps and burst must not be negative")
		}
	}
	sinkNames := map[string]bool{}
	for i, s := range c.Sinks {
		f := fmt.Sprintf("sinks[%d]", i)
		if !namePattern.MatchString(s.Name) {
			bad(f+".name", "%q must be 1-63 lowercase letters, digits, '-' or '_'", s.Name)
		} else if sinkNames[s.Name] {
			bad(f+".name", "duplicate sink name %q", s.Name)
		}
		sinkNames[s.Name] = true
		switch s.Type {
		case "http":
			if !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://") {
				bad(f+".url", "http sinks need an http:// or https:// url")
			}
		case "exec":
			if len(s.Command) == 0 || s.Command[0] == "" {
				bad(f+".command", "exec sinks need a command (a list: program and arguments)")
			}
		case "file":
			if s.Path == "" {
				bad(f+".path", "file sinks need a path (\"-\" for stdout)")
			}
		case "nats":
			if s.NATSURL == "" {
				bad(f+".nats_url", "nats sinks need nats_url")
			}
		default:
			bad(f+".type", "%q is not http, exec, file or nats", s.Type)
		}
		for j, src := range s.Sources {
			if _, err := path.Match(src, ""); err != nil {
				bad(fmt.Sprintf("%s.sources[%d]", f, j), "bad pattern %q", src)
			}
		}
		for j, t := range s.Types {
			if _, err := path.Match(t, ""); err != nil {
				bad(fmt.Sprintf("%s.types[%d]", f, j), "bad pattern %q", t)
			}
		}
		if s.Concurrency < 1 {
			bad(f+".concurrency", "must be at least 1")
		}
		if s.Timeout >= c.Delivery.Lease*8/10 {
			bad(f+".timeout", "%s must be shorter than 80%% of delivery.lease (%s), or another dispatcher could take the delivery over mid-attempt", s.Timeout, c.Delivery.Lease)
		}
	}
	return errors.Join(errs...)
}

// StoreURL is a parsed store URL: which store, and where.
type StoreURL struct {
	Driver string // "sqlite" or "postgres"
	Path   string // sqlite: the database file
	URL    string // postgres: the connection URL, as given
}

// ParseStoreURL is the one reader of store URLs: sqlite://rel/path.db,
// sqlite:///abs/path.db, sqlite:path.db or a plain path for the embedded
// store; postgres:// or postgresql:// for the shared one.
func ParseStoreURL(raw string) (StoreURL, error) {
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		return StoreURL{Driver: "postgres", URL: raw}, nil
	case strings.HasPrefix(raw, "sqlite:"):
		u, err := url.Parse(raw)
		if err != nil {
			return StoreURL{}, fmt.Errorf("store URL %q: %v", redactURL(raw), err)
		}
		path := u.Host + u.Path
		if u.Opaque != "" {
			path = u.Opaque
		}
		if path == "" {
			return StoreURL{}, fmt.Errorf("store URL %q names no file", raw)
		}
		return StoreURL{Driver: "sqlite", Path: path}, nil
	case raw == "":
		return StoreURL{}, errors.New("no store URL")
	case !strings.Contains(raw, "://"):
		return StoreURL{Driver: "sqlite", Path: raw}, nil
	}
	return StoreURL{}, fmt.Errorf("unsupported store URL scheme in %q (want sqlite:// or postgres://)", redactURL(raw))
}

func (c *Config) validateSubscription(f string, s Source, bad func(field, format string, args ...any)) {
	sub := s.Subscription
	if c.PublicURL == "" {
		bad("public_url", "a declared subscription (%s) needs public_url, the URL providers reach the public listener at", f)
	}
	if sub.APIKey == "" {
		bad(f+".api_key", "a declared subscription needs the provider's API key (usually ${AFFINITY_API_KEY} or ${ATTIO_API_KEY})")
	}
	if sub.APIBaseURL != "" {
		if u, err := url.Parse(sub.APIBaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad(f+".api_base_url", "must be an absolute http(s) URL")
		}
	}
	switch s.Provider {
	case crmhook.ProviderAffinity:
		if sub.API != "v1" && sub.API != "v2" {
			bad(f+".api", "%q is not v1 or v2", sub.API)
		}
		for j, e := range sub.Events {
			if e.Type == "" {
				bad(fmt.Sprintf("%s.events[%d]", f, j), "empty event type")
			}
			if e.Filter != nil {
				bad(fmt.Sprintf("%s.events[%d].filter", f, j), "Affinity subscriptions take no filters")
			}
		}
	case crmhook.ProviderAttio:
		if sub.API != "" {
			bad(f+".api", "api applies only to Affinity sources")
		}
		if len(sub.Events) == 0 {
			bad(f+".events", "an Attio webhook needs at least one event type")
		}
		for j, e := range sub.Events {
			if e.Type == "" {
				bad(fmt.Sprintf("%s.events[%d].type", f, j), "empty event type")
			}
			if e.Filter != nil {
				var flt attio.Filter
				if err := json.Unmarshal(e.Filter, &flt); err != nil {
					bad(fmt.Sprintf("%s.events[%d].filter", f, j), "%v", err)
				} else if err := flt.Validate(); err != nil {
					bad(fmt.Sprintf("%s.events[%d].filter", f, j), "%v", err)
				}
			}
		}
	default:
		bad(f, "%s sources have no provider subscription API; remove the subscription block", s.Provider)
	}
}

// ParsePrefix reads a CIDR ("10.0.0.0/8") or a single address ("192.0.2.7").
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func urlSafe(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// redactURL drops a password from a URL before it appears in an error.
func redactURL(s string) string {
	if at := strings.LastIndex(s, "@"); at > 0 {
		if scheme := strings.Index(s, "://"); scheme >= 0 && scheme < at {
			return s[:scheme+3] + "…@" + s[at+1:]
		}
	}
	return s
}
