// Package receiver is crmhook's public http.Handler. It puts each delivery
// through the layers of defence of the receiver contract, in
// this order — IP allowlist (403), rate limit (429), source and path secret
// (404), method (405), HTTPS (403), content type (415), body size (413),
// signature (401), payload (400), replay window (400, kept as a rejection) —
// then commits the events to the store and answers 200 only once they are
// durable; 503 with Retry-After when the store cannot commit.
package receiver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/crmhook/crmhook"
	"golang.org/x/time/rate"
)

// Source is one provider endpoint, /hooks/{Name}.
type Source struct {
	Name     string
	Provider crmhook.Provider
	// Secrets: path secrets for Affinity, signing secrets for Attio and
	// Standard Webhooks. All are active at once (rotation).
	Secrets []string
	// PathSecrets optionally require a secret path segment on a signed source.
	PathSecrets []string
	// Window bounds the delivery's own timestamp; unset sides take the
	// provider's default (DefaultReplayWindow), Window.Off switches it off.
	Window       ReplayWindow
	BodyLimit    int64          // default DefaultBodyLimit
	AllowIPs     []netip.Prefix // empty: anyone
	RateLimit    rate.Limit     // zero: no limit
	RateBurst    int
	RequireHTTPS bool
	DedupeWindow time.Duration // default DefaultDedupeWindow
}

// Defaults of a Source and a Config.
const (
	DefaultBodyLimit    = 1 << 20
	DefaultDedupeWindow = 7 * 24 * time.Hour
	DefaultRetryAfter   = 5 * time.Second
)

// Observer sees every answer, for metrics. Implementations must be cheap
// and safe for concurrent use.
type Observer interface {
	Request(source string, status int)
	Stored(source string, events int)
	Duplicate(source string)
	Rejected(source string)
	Probe(source string)
}

// Config configures a Handler.
type Config struct {
	Sources []Source
	Store   crmhook.Store
	// Route names the sinks an event must reach.
	Route func(ev *crmhook.Event) []string
	// TrustedProxies are the peers whose X-Forwarded-For and
	// X-Forwarded-Proto headers are believed.
	TrustedProxies []netip.Prefix
	// RetryAfter is sent with 503 answers; default DefaultRetryAfter.
	RetryAfter time.Duration
	// OnStored is called after events were committed (wakes the dispatcher).
	OnStored func()
	Observer Observer
	Logger   *slog.Logger
	// Now is crmhook's one clock (time.Now by default): the replay window,
	// ReceivedAt and the end of each dedupe window are read from it. The
	// store must be given the same clock, since it judges whether a dedupe
	// window has ended.
	Now func() time.Time
}

// Handler serves /hooks/… and nothing else.
type Handler struct {
	cfg      Config
	sources  map[string]*source
	draining atomic.Bool
}

type source struct {
	Source
	adapter adapter
	creds   atomic.Pointer[credentials]
	limiter *rate.Limiter
	log     *slog.Logger // the handler's logger with the source's name, built once
}

// New validates cfg and builds a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("receiver: config: Store is required")
	}
	if cfg.Route == nil {
		cfg.Route = func(*crmhook.Event) []string { return nil }
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg, sources: make(map[string]*source)}
	for i, s := range cfg.Sources {
		if s.Name == "" || strings.Contains(s.Name, "/") {
			return nil, fmt.Errorf("receiver: config: Sources[%d].Name %q is empty or has a slash", i, s.Name)
		}
		if _, dup := h.sources[s.Name]; dup {
			return nil, fmt.Errorf("receiver: config: duplicate source %q", s.Name)
		}
		if s.BodyLimit <= 0 {
			s.BodyLimit = DefaultBodyLimit
		}
		if s.DedupeWindow <= 0 {
			s.DedupeWindow = DefaultDedupeWindow
		}
		if err := s.Window.validate(); err != nil {
			return nil, fmt.Errorf("receiver: config: source %q: %w", s.Name, err)
		}
		s.Window = s.Window.WithDefaults(s.Provider)
		src := &source{Source: s, log: cfg.Logger.With("source", s.Name)}
		switch s.Provider {
		case crmhook.ProviderAffinity:
			src.adapter = affinityAdapter{}
		case crmhook.ProviderAttio:
			src.adapter = newAttioAdapter(s.Window, cfg.Now)
		case crmhook.ProviderStandardWebhooks:
			src.adapter = stdAdapter{now: cfg.Now}
		default:
			return nil, fmt.Errorf("receiver: config: source %q: unknown provider %q", s.Name, s.Provider)
		}
		if err := src.setSecrets(s.Secrets); err != nil {
			return nil, fmt.Errorf("receiver: config: source %q: %w", s.Name, err)
		}
		if s.RateLimit > 0 {
			burst := s.RateBurst
			if burst < 1 {
				burst = int(math.Ceil(float64(s.RateLimit))) + 1
			}
			src.limiter = rate.NewLimiter(s.RateLimit, burst)
		}
		h.sources[s.Name] = src
	}
	return h, nil
}

// setSecrets makes secrets the source's accepted secrets (with its fixed
// path secrets), at once for every request that starts after it.
func (src *source) setSecrets(secrets []string) error {
	c, err := src.adapter.credentials(secrets, src.PathSecrets)
	if err != nil {
		return err
	}
	src.creds.Store(c)
	return nil
}

// SetSecrets replaces the secrets a source accepts (path secrets for
// Affinity, signing secrets otherwise): the secret store of a rotation
// calls it on every replica. Several secrets are accepted at once.
func (h *Handler) SetSecrets(source string, secrets []string) error {
	src := h.sources[source]
	if src == nil {
		return fmt.Errorf("receiver: no source %q", source)
	}
	if err := src.setSecrets(secrets); err != nil {
		return fmt.Errorf("receiver: source %q: %w", source, err)
	}
	return nil
}

func hashAll(secrets []string) [][32]byte {
	out := make([][32]byte, len(secrets))
	for i, s := range secrets {
		out[i] = sha256.Sum256([]byte(s))
	}
	return out
}

// Drain makes every later request answer 503 with Retry-After: the server is
// stopping and the provider should come back (to this or another replica).
func (h *Handler) Drain() { h.draining.Store(true) }

// ServeHTTP answers one delivery by the receiver contract.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, srcName := h.serve(w, r)
	if srcName != "" {
		h.cfg.Observer.Request(srcName, status)
	}
}

// serve returns the status it answered and the known source's name.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (int, string) {
	name, secret, found := splitHookPath(r.URL.EscapedPath())
	if !found {
		return notFound(w), ""
	}
	src := h.sources[name]
	if src == nil {
		return notFound(w), ""
	}
	peer := peerAddr(r)
	trusted := h.trusted(peer)

	// 403: the source's IP allowlist, proxy-aware.
	if len(src.AllowIPs) > 0 && !contains(src.AllowIPs, h.clientIP(r, peer, trusted)) {
		return answer(w, http.StatusForbidden, "forbidden"), name
	}
	// 429: the source's rate limit.
	if src.limiter != nil {
		if res := src.limiter.Reserve(); res.Delay() > 0 {
			wait := res.Delay()
			res.Cancel()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			return answer(w, http.StatusTooManyRequests, "rate limited"), name
		}
	}
	// 404: wrong or missing path secret, indistinguishable from an unknown source.
	creds := src.creds.Load()
	if needsPath := len(creds.path) > 0; needsPath != (secret != "") || (needsPath && !matchSecret(creds.path, secret)) {
		return notFound(w), name
	}
	// 405
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return answer(w, http.StatusMethodNotAllowed, "method not allowed"), name
	}
	// 403: plain HTTP where HTTPS is required.
	if src.RequireHTTPS && !(r.TLS != nil || (trusted && strings.EqualFold(lastValue(r.Header.Get("X-Forwarded-Proto")), "https"))) {
		return answer(w, http.StatusForbidden, "https required"), name
	}
	// 415
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return answer(w, http.StatusUnsupportedMediaType, "content type must be application/json"), name
	}
	// 413: announced too large, or found too large while reading.
	if r.ContentLength > src.BodyLimit {
		return answer(w, http.StatusRequestEntityTooLarge, "body too large"), name
	}
	if h.draining.Load() {
		return h.unavailable(w), name
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, src.BodyLimit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return answer(w, http.StatusRequestEntityTooLarge, "body too large"), name
		}
		return answer(w, http.StatusBadRequest, "could not read body"), name
	}

	// 401 and 400: the provider adapter authenticates and parses.
	now := h.cfg.Now()
	res, err := src.adapter.parse(creds, r, body)
	if err == nil && !res.probe {
		err = src.Window.check(res.signedAt, now)
	}
	log := src.log
	switch {
	case errors.Is(err, errUnauthorized):
		log.Warn("delivery refused", "status", 401, "reason", err.Error())
		return answer(w, http.StatusUnauthorized, "invalid signature"), name
	case errors.Is(err, errStale):
		return h.reject(r.Context(), w, src, res.events, err, now), name
	case err != nil:
		log.Warn("delivery refused", "status", 400, "reason", err.Error())
		return answer(w, http.StatusBadRequest, "invalid payload"), name
	case res.probe:
		h.cfg.Observer.Probe(name)
		log.Info("provider probe answered", "type", res.probeType)
		return ok(w), name
	}
	return h.store(r.Context(), w, src, res.events, now), name
}

// store commits every event of the delivery, then answers 200. Any failure
// answers 503: the provider retries, and the events already stored are then
// deduplicated.
func (h *Handler) store(ctx context.Context, w http.ResponseWriter, src *source, events []crmhook.Event, now time.Time) int {
	log := src.log
	stored := 0
	for i := range events {
		ev := &events[i]
		src.own(ev, now)
		res, err := h.cfg.Store.Insert(ctx, h.newEvent(src, *ev, now))
		if err != nil {
			log.Error("store could not commit; answering 503", "type", ev.Type, "dedupe_key", ev.DedupeKey, "err", err)
			return h.unavailable(w)
		}
		if res.Duplicate {
			h.cfg.Observer.Duplicate(src.Name)
			log.Info("redelivery acknowledged", "type", ev.Type, "dedupe_key", ev.DedupeKey)
			continue
		}
		stored++
		log.Info("event stored", "event_id", ev.ID, "type", ev.Type, "dedupe_key", ev.DedupeKey)
	}
	if stored > 0 {
		h.cfg.Observer.Stored(src.Name, stored)
		if h.cfg.OnStored != nil {
			h.cfg.OnStored()
		}
	}
	return ok(w)
}

// reject keeps authentic events that failed only the replay window, then
// answers 400. If they cannot be kept it answers 503, so nothing well-formed
// is dropped silently.
func (h *Handler) reject(ctx context.Context, w http.ResponseWriter, src *source, events []crmhook.Event, why error, now time.Time) int {
	log := src.log
	reason := why.Error()
	for i := range events {
		ev := events[i]
		src.own(&ev, now)
		if _, err := h.cfg.Store.Reject(ctx, crmhook.Rejection{Event: ev, Reason: reason, RejectedAt: now}); err != nil {
			log.Error("store could not keep a rejection; answering 503", "type", ev.Type, "err", err)
			return h.unavailable(w)
		}
		log.Warn("event rejected and kept", "status", 400, "type", ev.Type, "dedupe_key", ev.DedupeKey, "reason", reason)
	}
	h.cfg.Observer.Rejected(src.Name)
	return answer(w, http.StatusBadRequest, "timestamp outside the replay window")
}

// own makes an adapter's event this source's: a fresh id, the source, and
// the source's name in front of the adapter's dedupe key, so that two
// sources never share a key.
func (src *source) own(ev *crmhook.Event, now time.Time) {
	ev.ID = crmhook.NewEventID()
	ev.Source, ev.Provider, ev.ReceivedAt = src.Name, src.Provider, now
	ev.DedupeKey = src.Name + ":" + ev.DedupeKey
}

// newEvent is ev as the store inserts it: routed to the sinks that want it,
// with the end of its dedupe window.
func (h *Handler) newEvent(src *source, ev crmhook.Event, now time.Time) crmhook.NewEvent {
	return crmhook.NewEvent{Event: ev, Sinks: h.cfg.Route(&ev), DedupeUntil: src.dedupeUntil(now)}
}

// dedupeUntil is the one place a dedupe window's end is computed.
func (src *source) dedupeUntil(now time.Time) time.Time { return now.Add(src.DedupeWindow) }

// Release accepts a rejected event after all, as if it arrived now: it is
// routed by the current sink filters and deduplicated like any delivery
// (a redelivery accepted since makes it a duplicate). It returns
// crmhook.ErrNotFound for an unknown id and crmhook.ErrAlreadyReleased for
// one released before.
func (h *Handler) Release(ctx context.Context, id int64) (crmhook.InsertResult, error) {
	rs, err := h.cfg.Store.ListRejections(ctx, crmhook.RejectionFilter{ID: id, Limit: 1})
	if err != nil {
		return crmhook.InsertResult{}, err
	}
	if len(rs) == 0 {
		return crmhook.InsertResult{}, crmhook.ErrNotFound
	}
	if !rs[0].ReleasedAt.IsZero() {
		return crmhook.InsertResult{}, crmhook.ErrAlreadyReleased
	}
	// A source removed from the config since keeps the default window.
	src := h.sources[rs[0].Event.Source]
	if src == nil {
		src = &source{Source: Source{DedupeWindow: DefaultDedupeWindow}}
	}
	ev := rs[0].Event
	res, err := h.cfg.Store.ReleaseRejection(ctx, id, h.cfg.Route(&ev), src.dedupeUntil(h.cfg.Now()))
	if err == nil && !res.Duplicate && h.cfg.OnStored != nil {
		h.cfg.OnStored()
	}
	return res, err
}

func (h *Handler) unavailable(w http.ResponseWriter) int {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(h.cfg.RetryAfter.Seconds()))))
	return answer(w, http.StatusServiceUnavailable, "temporarily unavailable")
}

// splitHookPath reads /hooks/{source} and /hooks/{source}/{secret}.
func splitHookPath(p string) (name, secret string, ok bool) {
	rest, found := strings.CutPrefix(p, "/hooks/")
	if !found || rest == "" {
		return "", "", false
	}
	name, secret, _ = strings.Cut(rest, "/")
	if name == "" || strings.Contains(secret, "/") {
		return "", "", false
	}
	return name, secret, true
}

// matchSecret compares against every active secret in constant time: the
// hashes have one length, and the loop never exits early.
func matchSecret(hashes [][32]byte, secret string) bool {
	got := sha256.Sum256([]byte(secret))
	match := 0
	for _, want := range hashes {
		match |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return match == 1
}

func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

func (h *Handler) trusted(a netip.Addr) bool { return a.IsValid() && contains(h.cfg.TrustedProxies, a) }

// clientIP is the peer, or — when the peer is a trusted proxy — the
// right-most X-Forwarded-For address that is not itself a trusted proxy.
// Addresses left of that were written by the client and prove nothing.
func (h *Handler) clientIP(r *http.Request, peer netip.Addr, trusted bool) netip.Addr {
	if !trusted {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{} // a garbled chain matches no allowlist
		}
		a = a.Unmap()
		if !h.trusted(a) {
			return a
		}
	}
	return peer
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func lastValue(s string) string {
	if i := strings.LastIndexByte(s, ','); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}

func notFound(w http.ResponseWriter) int {
	w.WriteHeader(http.StatusNotFound)
	return http.StatusNotFound
}

func ok(w http.ResponseWriter) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"ok":true}`)
	return http.StatusOK
}

func answer(w http.ResponseWriter, status int, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"ok":false,"error":%q}`, msg)
	return status
}

type nopObserver struct{}

func (nopObserver) Request(string, int) {}
func (nopObserver) Stored(string, int)  {}
func (nopObserver) Duplicate(string)    {}
func (nopObserver) Rejected(string)     {}
func (nopObserver) Probe(string)        {}
