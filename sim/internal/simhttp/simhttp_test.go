package simhttp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestControlRoutes(t *testing.T) {
	var triggered bool
	c := Control{
		Trigger: func(w http.ResponseWriter, _ *http.Request) {
			triggered = true
			w.WriteHeader(http.StatusNoContent)
		},
		Deliveries: func() any { return []int{1, 2} },
		Extra:      map[string]func() any{"/_sim/probes": func() any { return []int{3} }},
		WriteJSON:  writeJSON,
		MethodNotAllowed: func(w http.ResponseWriter, allow string) {
			w.Header().Set("Allow", allow)
			w.WriteHeader(http.StatusMethodNotAllowed)
		},
		NotFound: func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) },
	}
	tests := []struct {
		method, path string
		status       int
		body, allow  string
	}{
		{http.MethodPost, "/_sim/trigger", http.StatusNoContent, "", ""},
		{http.MethodGet, "/_sim/trigger", http.StatusMethodNotAllowed, "", http.MethodPost},
		{http.MethodGet, "/_sim/deliveries", http.StatusOK, "[1,2]\n", ""},
		{http.MethodDelete, "/_sim/deliveries", http.StatusMethodNotAllowed, "", http.MethodGet},
		{http.MethodGet, "/_sim/probes", http.StatusOK, "[3]\n", ""},
		{http.MethodPost, "/_sim/probes", http.StatusMethodNotAllowed, "", http.MethodGet},
		{http.MethodGet, "/_sim/healthz", http.StatusOK, "{\"ok\":true}\n", ""},
		{http.MethodHead, "/_sim/healthz", http.StatusMethodNotAllowed, "", http.MethodGet},
		{http.MethodGet, "/_sim/nothing", http.StatusNotFound, "", ""},
		{http.MethodGet, "/_sim/deliveries/", http.StatusNotFound, "", ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.status || rec.Body.String() != tt.body || rec.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d %q Allow %q, want %d %q Allow %q", tt.method, tt.path,
				rec.Code, rec.Body, rec.Header().Get("Allow"), tt.status, tt.body, tt.allow)
		}
	}
	if !triggered {
		t.Error("the trigger handler never ran")
	}
}

func TestStatusRecorder(t *testing.T) {
	rec := NewStatusRecorder(httptest.NewRecorder())
	if rec.Status != http.StatusOK {
		t.Errorf("Status before WriteHeader = %d, want 200", rec.Status)
	}
	rec.WriteHeader(http.StatusTeapot)
	if rec.Status != http.StatusTeapot || rec.ResponseWriter.(*httptest.ResponseRecorder).Code != http.StatusTeapot {
		t.Errorf("Status = %d, want 418 recorded and passed on", rec.Status)
	}
}

var errInvalid = errors.New("testsim: invalid config")

type config struct {
	n     int
	d     time.Duration
	f     float64
	label string
}

func TestCheckerFillsZeroFields(t *testing.T) {
	var c Checker
	cfg := config{label: "kept"}
	c.Int("N", &cfg.n, 3)
	c.Duration("D", &cfg.d, time.Minute)
	c.Positive("F", &cfg.f, 1.5)
	got, err := Result(&c, cfg, errInvalid)
	if err != nil || got != (config{n: 3, d: time.Minute, f: 1.5, label: "kept"}) {
		t.Errorf("Result = %+v, %v, want the defaults", got, err)
	}

	set := config{n: 7, d: time.Second, f: 0.5}
	c.Int("N", &set.n, 3)
	c.Duration("D", &set.d, time.Minute)
	c.Positive("F", &set.f, 1.5)
	if got, err := Result(&c, set, errInvalid); err != nil || got != (config{n: 7, d: time.Second, f: 0.5}) {
		t.Errorf("Result = %+v, %v, want the values kept", got, err)
	}
}

func TestCheckerCommon(t *testing.T) {
	var c Checker
	var (
		client *http.Client
		now    func() time.Time
		logger *slog.Logger
	)
	c.Common(&client, &now, &logger)
	if client == nil || now == nil || logger == nil {
		t.Fatal("Common left a nil field")
	}
	if client.CheckRedirect == nil || client.CheckRedirect(nil, nil) != http.ErrUseLastResponse {
		t.Error("the default client follows redirects")
	}
	if logger.Enabled(context.Background(), slog.LevelError) {
		t.Error("the default logger does not discard")
	}

	givenClient, givenLogger := &http.Client{}, slog.Default()
	client, logger = givenClient, givenLogger
	now = func() time.Time { return time.Unix(42, 0) }
	c.Common(&client, &now, &logger)
	if client != givenClient || logger != givenLogger || now().Unix() != 42 {
		t.Error("Common replaced fields that were set")
	}
}

func TestCheckerNamesEveryProblemOnOneLine(t *testing.T) {
	var c Checker
	cfg := config{n: -1, d: -time.Second, f: math.NaN(), label: "x"}
	c.Int("N", &cfg.n, 3)
	c.Duration("D", &cfg.d, time.Minute)
	c.Positive("F", &cfg.f, 1)
	c.Bad("Label", "%q is not allowed", cfg.label)
	for _, f := range []float64{-1, math.Inf(1)} {
		c.Positive("G", &f, 1)
	}
	got, err := Result(&c, cfg, errInvalid)
	if !errors.Is(err, errInvalid) {
		t.Fatalf("err = %v, want errInvalid", err)
	}
	if got != (config{}) {
		t.Errorf("Result returned %+v with an error, want the zero config", got)
	}
	want := "testsim: invalid config: Config.N: must not be negative, got -1; " +
		"Config.D: must not be negative, got -1s; " +
		"Config.F: must be a positive finite number, got NaN; " +
		`Config.Label: "x" is not allowed; ` +
		"Config.G: must be a positive finite number, got -1; " +
		"Config.G: must be a positive finite number, got +Inf"
	if err.Error() != want {
		t.Errorf("err =\n%s\nwant\n%s", err, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Error("the error is not one line")
	}
}
