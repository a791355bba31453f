// Package admin is the admin listener's HTTP API: health and readiness for
// orchestrators, Prometheus metrics, the JSON API under /api/ (events,
// deliveries, dead letters, rejections, replay, release) behind the admin
// bearer token, and the console under /ui/: server-rendered pages of the
// same, behind a sign-in with that token (ui.go). Its JSON types and the Go
// client of the CLI live here too.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
)

// Releaser accepts a rejected event after all (the receiver does: it owns
// routing and the dedupe window).
type Releaser interface {
	Release(ctx context.Context, id int64) (crmhook.InsertResult, error)
}

// Server is the admin API over one store.
type Server struct {
	Store    crmhook.Store
	Releaser Releaser
	// Notify wakes the dispatcher after a replay; may be nil.
	Notify func()
	// Sinks are the configured sink names, to refuse a replay to a sink
	// that does not exist.
	Sinks []string
	// Token is the bearer token of /api/; empty refuses every API call.
	Token string
	// Now is crmhook's one clock ("since=2h" is read against it).
	Now func() time.Time
	// Metrics serves /metrics; nil serves none.
	Metrics http.Handler
	// Control is the store's control state (subscriptions, gaps); nil when
	// the store keeps none.
	Control crmhook.ControlStore
	// Logger receives the actions taken and the store errors behind 503s,
	// never payloads.
	Logger *slog.Logger
	// UILogger receives the same of the console; default
	// Logger.With("component", "admin/ui") (which repeats the key when
	// Logger already has a component: give a logger without it here).
	UILogger *slog.Logger
	// SessionTTL is how long a sign-in to the console lasts; default
	// DefaultSessionTTL.
	SessionTTL time.Duration
	// LoginDelay is how long the console answers a wrong token after;
	// default DefaultLoginDelay.
	LoginDelay time.Duration
}

// Handler serves the admin listener: /healthz and /readyz for
// orchestrators, /metrics for Prometheus, the JSON admin API under /api/
// behind the admin bearer token, and the console under /ui/ behind a
// sign-in with the same token.
func (m *Server) Handler() http.Handler {
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	if m.Notify == nil {
		m.Notify = func() {}
	}
	mux := http.NewServeMux()
	// Health never fails because a provider disabled a subscription: that
	// would take the receiver out of its load balancer exactly when it is
	// needed. The subscriptions' state is in the body for people and probes.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		body := map[string]any{"ok": true}
		if m.Control != nil {
			if states, err := m.Control.ListSubscriptionStates(r.Context()); err == nil {
				body["subscriptions"] = convert(states, subscriptionJSON)
			}
		}
		writeJSON(w, http.StatusOK, body)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Store.Ping(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "error": "store unreachable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	if m.Metrics != nil {
		mux.Handle("GET /metrics", m.Metrics)
	}

	api := http.NewServeMux()
	api.HandleFunc("GET /api/stats", m.apiStats)
	api.HandleFunc("GET /api/events", m.apiListEvents)
	api.HandleFunc("GET /api/events/{id}", m.apiGetEvent)
	api.HandleFunc("GET /api/deliveries", m.apiListDeliveries)
	api.HandleFunc("POST /api/replay", m.apiReplay)
	api.HandleFunc("GET /api/rejections", m.apiListRejections)
	api.HandleFunc("POST /api/rejections/{id}/release", m.apiReleaseRejection)
	api.HandleFunc("GET /api/subscriptions", m.apiSubscriptions)
	mux.Handle("/api/", requireToken(m.Token, api))
	mux.Handle("/ui/", newUI(m).handler())
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusSeeOther))
	return mux
}

// requireToken lets a request through only with "Authorization: Bearer
// <token>", compared in constant time. An empty token refuses everything:
// the admin API is never open by accident.
func requireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || token == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="crmhook-admin"`)
			writeJSON(w, http.StatusUnauthorized, apiError{"missing or wrong admin token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

type apiError struct {
	Error string `json:"error"`
}

func (m *Server) apiStats(w http.ResponseWriter, r *http.Request) {
	st, err := m.Store.Stats(r.Context())
	if err != nil {
		m.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, StatsJSON{Pending: st.Pending, Dead: st.Dead, Rejections: st.Rejections, OldestPending: timePtr(st.OldestPending)})
}

func (m *Server) apiListEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := crmhook.EventFilter{Source: q.Get("source"), Type: q.Get("type")}
	var err error
	if f.Since, f.Until, f.Limit, err = commonQuery(m.Now(), q.Get("since"), q.Get("until"), q.Get("limit")); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	evs, err := m.Store.ListEvents(r.Context(), f)
	writeList(m, w, "events", evs, err, func(ev crmhook.Event) EventJSON { return eventJSON(ev, false) })
}

func (m *Server) apiGetEvent(w http.ResponseWriter, r *http.Request) {
	ev, ds, err := m.Store.GetEvent(r.Context(), r.PathValue("id"))
	if err != nil {
		m.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"event": eventJSON(ev, true), "deliveries": convert(ds, deliveryJSON)})
}

func (m *Server) apiListDeliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := crmhook.DeliveryFilter{State: crmhook.DeliveryState(q.Get("state")), Sink: q.Get("sink"), EventID: q.Get("event_id"), Source: q.Get("source")}
	var err error
	if f.Since, f.Until, f.Limit, err = commonQuery(m.Now(), q.Get("since"), q.Get("until"), q.Get("limit")); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	if err := validState(f.State); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	ds, err := m.Store.ListDeliveries(r.Context(), f)
	writeList(m, w, "deliveries", ds, err, deliveryJSON)
}

func (m *Server) apiReplay(w http.ResponseWriter, r *http.Request) {
	var req ReplayRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"invalid replay request: " + err.Error()})
		return
	}
	f := crmhook.DeliveryFilter{State: req.State, Sink: req.Sink, EventID: req.EventID, Source: req.Source,
		Since: req.Since, Until: req.Until, IDs: req.DeliveryIDs}
	n, err := m.replay(r.Context(), m.Logger, f, req.All)
	if err != nil {
		m.actionError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"replayed": n})
}

func (m *Server) apiListRejections(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := crmhook.RejectionFilter{Source: q.Get("source")}
	if v := q.Get("released"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{"released must be true or false"})
			return
		}
		f.Released = &b
	}
	var err error
	if f.Since, f.Until, f.Limit, err = commonQuery(m.Now(), q.Get("since"), q.Get("until"), q.Get("limit")); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	rs, err := m.Store.ListRejections(r.Context(), f)
	writeList(m, w, "rejections", rs, err, func(rj crmhook.Rejection) RejectionJSON {
		return RejectionJSON{ID: rj.ID, Event: eventJSON(rj.Event, false), Reason: rj.Reason, RejectedAt: rj.RejectedAt, ReleasedAt: timePtr(rj.ReleasedAt)}
	})
}

func (m *Server) apiSubscriptions(w http.ResponseWriter, r *http.Request) {
	if m.Control == nil {
		writeJSON(w, http.StatusOK, map[string]any{"subscriptions": []SubscriptionJSON{}, "gaps": []GapJSON{}})
		return
	}
	states, err := m.Control.ListSubscriptionStates(r.Context())
	if err != nil {
		m.storeError(w, err)
		return
	}
	gaps, err := m.Control.ListGaps(r.Context(), r.URL.Query().Get("source"), 100)
	if err != nil {
		m.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": convert(states, subscriptionJSON), "gaps": convert(gaps, gapJSON)})
}

func (m *Server) apiReleaseRejection(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"rejection id must be a number"})
		return
	}
	res, err := m.release(r.Context(), m.Logger, id)
	if err != nil {
		m.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"event_id": res.EventID, "duplicate": res.Duplicate})
}

func commonQuery(now time.Time, since, until, limit string) (s, u time.Time, n int, err error) {
	parse := func(name, v string) (time.Time, error) {
		if v == "" {
			return time.Time{}, nil
		}
		t, err := ParseWhen(v, now)
		if err != nil {
			return t, fmt.Errorf("%s: %w", name, err)
		}
		return t, nil
	}
	if s, err = parse("since", since); err != nil {
		return
	}
	if u, err = parse("until", until); err != nil {
		return
	}
	if limit != "" {
		if n, err = strconv.Atoi(limit); err != nil || n < 0 {
			return s, u, 0, fmt.Errorf("limit: %q is not a non-negative number", limit)
		}
	}
	return s, u, n, nil
}

func validState(s crmhook.DeliveryState) error {
	switch s {
	case "", crmhook.StatePending, crmhook.StateDelivered, crmhook.StateDead:
		return nil
	}
	return fmt.Errorf("state %q is not pending, delivered or dead", s)
}

// writeList answers a listing: the store's error, or the items converted,
// under key ([] when there are none).
func writeList[T, J any](m *Server, w http.ResponseWriter, key string, items []T, err error, conv func(T) J) {
	if err != nil {
		m.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{key: convert(items, conv)})
}

// convert maps items through conv; never nil, so that JSON says [].
func convert[T, J any](items []T, conv func(T) J) []J {
	out := make([]J, 0, len(items))
	for _, it := range items {
		out = append(out, conv(it))
	}
	return out
}

// storeError answers a store error with a stable code and message. The
// error chain stays in the log: it names internals (files, SQL) that are
// no business of an API client.
func (m *Server) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, crmhook.ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{"not found"})
	case errors.Is(err, crmhook.ErrAlreadyReleased):
		writeJSON(w, http.StatusConflict, apiError{"the rejection was already released"})
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeJSON(w, http.StatusServiceUnavailable, apiError{"the request was cancelled or timed out"})
	default:
		m.Logger.Warn("admin: store error", "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, apiError{"the store is unavailable; try again later"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
