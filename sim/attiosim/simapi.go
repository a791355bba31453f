package attiosim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/crmhook/crmhook/sim/internal/simhttp"
)

// TriggerRequest is the body of POST /_sim/trigger. Event, when given, is
// merged onto the sample event (see Server.Trigger); EventType may then be
// left out if Event holds event_type.
type TriggerRequest struct {
	EventType string          `json:"event_type"`
	Event     json.RawMessage `json:"event,omitempty"`
}

// simControl returns the simulator's own endpoints. They need no token (the
// simulator is a local tool) and exist only under /_sim/:
//
//	POST /_sim/trigger     {"event_type":"record.created","event":{…optional…}} → TriggerResult
//	GET  /_sim/deliveries  the delivery log, []Delivery
//	GET  /_sim/healthz     {"ok":true}
//
// Errors are Attio-shaped ({"status_code", "type", "code", "message"}) so
// one client can read both.
func (s *Server) simControl() simhttp.Control {
	return simhttp.Control{
		Trigger:          s.serveTrigger,
		Deliveries:       func() any { return s.Deliveries() },
		WriteJSON:        writeJSON,
		MethodNotAllowed: methodNotAllowed,
		NotFound: func(w http.ResponseWriter) {
			writeError(w, http.StatusNotFound, "invalid_request_error", "not_found",
				"No such simulator endpoint: use /_sim/trigger, /_sim/deliveries or /_sim/healthz.")
		},
	}
}

func (s *Server) serveTrigger(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxRequestBody)); err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "body_too_large",
			"The trigger body is too large or could not be read.")
		return
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	var req TriggerRequest
	if err := dec.Decode(&req); err != nil || dec.More() {
		writeValidation(w, `The body must be one JSON object {"event_type": "…", "event": {…optional…}}.`)
		return
	}
	res, err := s.Trigger(r.Context(), req.EventType, req.Event)
	switch {
	case errors.Is(err, ErrClosed):
		writeError(w, http.StatusServiceUnavailable, "api_error", "closed", "The simulator is shutting down.")
	case errors.Is(err, ErrUnknownEventType), errors.Is(err, ErrInvalidEvent):
		writeValidation(w, err.Error())
	case err != nil:
		// The caller went away before the first attempts finished; they
		// continue in the background.
		writeError(w, http.StatusServiceUnavailable, "api_error", "cancelled", err.Error())
	default:
		writeJSON(w, http.StatusOK, res)
	}
}
