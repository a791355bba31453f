// Package simhttp holds what the provider simulators share around their
// HTTP surface: the routing of the local /_sim/ control API, the status
// recorder behind each request's log line, and the checking of a Config's
// fields with the defaults every simulator has (the HTTP client, the clock,
// the logger). Each simulator keeps its own error bodies and JSON writer.
package simhttp

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"
)

// Control is a simulator's /_sim/ control API. It needs no credentials (a
// simulator is a local tool) and serves, by exact path:
//
//	POST /_sim/trigger     Trigger
//	GET  /_sim/deliveries  Deliveries(), the delivery log
//	GET  /_sim/healthz     {"ok":true}
//
// and a GET endpoint for each entry of Extra. Answers and errors are written
// in the simulator's own style, by its WriteJSON, MethodNotAllowed and
// NotFound.
type Control struct {
	Trigger    http.HandlerFunc
	Deliveries func() any
	Extra      map[string]func() any // further GET endpoints by path, e.g. "/_sim/probes"

	WriteJSON func(w http.ResponseWriter, status int, v any)
	// MethodNotAllowed answers a known path asked with another method;
	// allow is the endpoint's method.
	MethodNotAllowed func(w http.ResponseWriter, allow string)
	// NotFound answers a path with no endpoint.
	NotFound func(w http.ResponseWriter)
}

// ServeHTTP serves r with the endpoint for its path.
func (c Control) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method, serve := c.endpoint(r.URL.Path)
	switch {
	case serve == nil:
		c.NotFound(w)
	case r.Method != method:
		c.MethodNotAllowed(w, method)
	default:
		serve(w, r)
	}
}

// endpoint returns the method and handler for path, or a nil handler.
func (c Control) endpoint(path string) (string, http.HandlerFunc) {
	switch path {
	case "/_sim/trigger":
		return http.MethodPost, c.Trigger
	case "/_sim/deliveries":
		return http.MethodGet, c.get(c.Deliveries)
	case "/_sim/healthz":
		return http.MethodGet, c.get(func() any { return map[string]bool{"ok": true} })
	}
	if value, ok := c.Extra[path]; ok {
		return http.MethodGet, c.get(value)
	}
	return "", nil
}

// get answers 200 with value().
func (c Control) get(value func() any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { c.WriteJSON(w, http.StatusOK, value()) }
}

// StatusRecorder remembers the status code written, for the request's log
// line. Status starts at 200, what a handler that never calls WriteHeader
// answers.
type StatusRecorder struct {
	http.ResponseWriter
	Status int
}

// NewStatusRecorder wraps w.
func NewStatusRecorder(w http.ResponseWriter) *StatusRecorder {
	return &StatusRecorder{ResponseWriter: w, Status: http.StatusOK}
}

// WriteHeader records code and passes it on.
func (r *StatusRecorder) WriteHeader(code int) {
	r.Status = code
	r.ResponseWriter.WriteHeader(code)
}

// Checker fills the zero fields of a simulator's Config with their defaults
// and collects a problem for each invalid field, so one error can name them
// all. Its zero value is ready to use.
type Checker struct {
	problems []string
}

// Bad records a problem with field, the name of a Config field.
func (c *Checker) Bad(field, format string, args ...any) {
	c.problems = append(c.problems, "Config."+field+": "+fmt.Sprintf(format, args...))
}

// Int sets a zero *v to def and refuses a negative one.
func (c *Checker) Int(field string, v *int, def int) {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		c.Bad(field, "must not be negative, got %d", *v)
	}
}

// Duration sets a zero *v to def and refuses a negative one.
func (c *Checker) Duration(field string, v *time.Duration, def time.Duration) {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		c.Bad(field, "must not be negative, got %s", *v)
	}
}

// Positive sets a zero *v to def and refuses a negative, infinite or NaN
// one.
func (c *Checker) Positive(field string, v *float64, def float64) {
	switch {
	case *v == 0:
		*v = def
	case math.IsNaN(*v) || math.IsInf(*v, 0) || *v < 0:
		c.Bad(field, "must be a positive finite number, got %v", *v)
	}
}

// Common fills the fields every simulator's Config has: a nil client
// becomes one that does not follow redirects (a 3xx answer is a failed
// delivery), a nil clock time.Now, a nil logger one that discards.
func (c *Checker) Common(client **http.Client, now *func() time.Time, logger **slog.Logger) {
	if *client == nil {
		*client = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if *now == nil {
		*now = time.Now
	}
	if *logger == nil {
		*logger = slog.New(slog.DiscardHandler)
	}
}

// Result returns cfg, or the zero C and an error wrapping invalid that
// names every problem on one line, so a CLI can print it as its single
// error line.
func Result[C any](c *Checker, cfg C, invalid error) (C, error) {
	if len(c.problems) > 0 {
		var zero C
		return zero, fmt.Errorf("%w: %s", invalid, strings.Join(c.problems, "; "))
	}
	return cfg, nil
}
