package app

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves the admin listener: /healthz and /readyz for
// orchestrators, /metrics for Prometheus, and the JSON admin API under /api/
// behind the admin bearer token.
func (m *Main) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Store.Ping(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "error": "store unreachable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Metrics.Registry, promhttp.HandlerOpts{}))

	api := http.NewServeMux()
	api.HandleFunc("GET /api/stats", m.apiStats)
	api.HandleFunc("GET /api/events", m.apiListEvents)
	api.HandleFunc("GET /api/events/{id}", m.apiGetEvent)
	api.HandleFunc("GET /api/deliveries", m.apiListDeliveries)
	api.HandleFunc("POST /api/replay", m.apiReplay)
	api.HandleFunc("GET /api/rejections", m.apiListRejections)
	api.HandleFunc("POST /api/rejections/{id}/release", m.apiReleaseRejection)
	mux.Handle("/api/", requireToken(m.Config.Admin.Token, api))
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

// EventJSON is an event as the admin API shows it.
type EventJSON struct {
	ID         string           `json:"id"`
	Source     string           `json:"source"`
	Provider   crmhook.Provider `json:"provider"`
	Type       string           `json:"type"`
	DedupeKey  string           `json:"dedupe_key"`
	OccurredAt *time.Time       `json:"occurred_at,omitempty"`
	ReceivedAt time.Time        `json:"received_at"`
	Payload    json.RawMessage  `json:"payload,omitempty"`
}

// DeliveryJSON is a delivery as the admin API shows it.
type DeliveryJSON struct {
	ID            int64                 `json:"id"`
	EventID       string                `json:"event_id"`
	Sink          string                `json:"sink"`
	State         crmhook.DeliveryState `json:"state"`
	Attempts      int                   `json:"attempts"`
	NextAttemptAt *time.Time            `json:"next_attempt_at,omitempty"`
	LeasedUntil   *time.Time            `json:"leased_until,omitempty"`
	LastError     string                `json:"last_error,omitempty"`
	CreatedAt     time.Time             `json:"created_at"`
	DeliveredAt   *time.Time            `json:"delivered_at,omitempty"`
}

// RejectionJSON is a rejection as the admin API shows it.
type RejectionJSON struct {
	ID         int64      `json:"id"`
	Event      EventJSON  `json:"event"`
	Reason     string     `json:"reason"`
	RejectedAt time.Time  `json:"rejected_at"`
	ReleasedAt *time.Time `json:"released_at,omitempty"`
}

// StatsJSON is the queue summary.
type StatsJSON struct {
	Pending       int64      `json:"pending"`
	Dead          int64      `json:"dead"`
	Rejections    int64      `json:"rejections"`
	OldestPending *time.Time `json:"oldest_pending,omitempty"`
}

// ReplayRequest selects deliveries to replay. At least one field must be
// set, or All: replaying everything is never an accident.
type ReplayRequest struct {
	State   crmhook.DeliveryState `json:"state,omitempty"`
	Sink    string                `json:"sink,omitempty"`
	EventID string                `json:"event_id,omitempty"`
	Source  string                `json:"source,omitempty"`
	Since   time.Time             `json:"since,omitzero"`
	Until   time.Time             `json:"until,omitzero"`
	All     bool                  `json:"all,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func eventJSON(ev crmhook.Event, withPayload bool) EventJSON {
	out := EventJSON{ID: ev.ID, Source: ev.Source, Provider: ev.Provider, Type: ev.Type, DedupeKey: ev.DedupeKey,
		OccurredAt: timePtr(ev.OccurredAt), ReceivedAt: ev.ReceivedAt}
	if withPayload {
		out.Payload = ev.Payload
	}
	return out
}

func deliveryJSON(d crmhook.Delivery) DeliveryJSON {
	out := DeliveryJSON{ID: d.ID, EventID: d.EventID, Sink: d.Sink, State: d.State, Attempts: d.Attempts,
		LeasedUntil: timePtr(d.LeasedUntil), LastError: d.LastError, CreatedAt: d.CreatedAt, DeliveredAt: timePtr(d.DeliveredAt)}
	if d.State == crmhook.StatePending {
		out.NextAttemptAt = timePtr(d.NextAttemptAt)
	}
	return out
}

func (m *Main) apiStats(w http.ResponseWriter, r *http.Request) {
	st, err := m.Store.Stats(r.Context())
	if err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, StatsJSON{Pending: st.Pending, Dead: st.Dead, Rejections: st.Rejections, OldestPending: timePtr(st.OldestPending)})
}

func (m *Main) apiListEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := crmhook.EventFilter{Source: q.Get("source"), Type: q.Get("type")}
	var err error
	if f.Since, f.Until, f.Limit, err = commonQuery(m.Now(), q.Get("since"), q.Get("until"), q.Get("limit")); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	evs, err := m.Store.ListEvents(r.Context(), f)
	writeList(w, "events", evs, err, func(ev crmhook.Event) EventJSON { return eventJSON(ev, false) })
}

func (m *Main) apiGetEvent(w http.ResponseWriter, r *http.Request) {
	ev, ds, err := m.Store.GetEvent(r.Context(), r.PathValue("id"))
	if err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"event": eventJSON(ev, true), "deliveries": convert(ds, deliveryJSON)})
}

func (m *Main) apiListDeliveries(w http.ResponseWriter, r *http.Request) {
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
	writeList(w, "deliveries", ds, err, deliveryJSON)
}

func (m *Main) apiReplay(w http.ResponseWriter, r *http.Request) {
	var req ReplayRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"invalid replay request: " + err.Error()})
		return
	}
	f := crmhook.DeliveryFilter{State: req.State, Sink: req.Sink, EventID: req.EventID, Source: req.Source, Since: req.Since, Until: req.Until}
	if f == (crmhook.DeliveryFilter{}) && !req.All {
		writeJSON(w, http.StatusBadRequest, apiError{"replay needs a filter (state, sink, event_id, source, since, until) or \"all\": true"})
		return
	}
	if err := validState(f.State); err != nil || f.State == crmhook.StatePending {
		writeJSON(w, http.StatusBadRequest, apiError{"state must be delivered or dead"})
		return
	}
	if f.Sink != "" && !slices.ContainsFunc(m.Config.Sinks, func(s config.Sink) bool { return s.Name == f.Sink }) {
		names := make([]string, 0, len(m.Config.Sinks))
		for _, s := range m.Config.Sinks {
			names = append(names, s.Name)
		}
		writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("no sink is named %q; the configured sinks are: %s", f.Sink, strings.Join(names, ", "))})
		return
	}
	n, err := m.Store.Replay(r.Context(), f)
	if err != nil {
		storeError(w, err)
		return
	}
	if n > 0 {
		m.Dispatcher.Notify()
	}
	writeJSON(w, http.StatusOK, map[string]any{"replayed": n})
}

func (m *Main) apiListRejections(w http.ResponseWriter, r *http.Request) {
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
	writeList(w, "rejections", rs, err, func(rj crmhook.Rejection) RejectionJSON {
		return RejectionJSON{ID: rj.ID, Event: eventJSON(rj.Event, false), Reason: rj.Reason, RejectedAt: rj.RejectedAt, ReleasedAt: timePtr(rj.ReleasedAt)}
	})
}

func (m *Main) apiReleaseRejection(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"rejection id must be a number"})
		return
	}
	res, err := m.Receiver.Release(r.Context(), id)
	if err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"event_id": res.EventID, "duplicate": res.Duplicate})
}

// ParseWhen reads a time the way the admin API and the CLI take them: RFC
// 3339, or a duration that long before now ("2h").
func ParseWhen(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a duration like 2h", v)
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
func writeList[T, J any](w http.ResponseWriter, key string, items []T, err error, conv func(T) J) {
	if err != nil {
		storeError(w, err)
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
func storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, crmhook.ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{"not found"})
	case errors.Is(err, crmhook.ErrAlreadyReleased):
		writeJSON(w, http.StatusConflict, apiError{"the rejection was already released"})
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeJSON(w, http.StatusServiceUnavailable, apiError{"the request was cancelled or timed out"})
	default:
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
