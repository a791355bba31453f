package affinitysim

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/crmhook/crmhook/sim/internal/simhttp"
)

// TriggerRequest is the body of POST /_sim/trigger. A missing or null Body
// sends the sample body for Type.
type TriggerRequest struct {
	Type string          `json:"type"`
	Body json.RawMessage `json:"body,omitempty"`
}

// simControl returns the simulator's own endpoints. They need no API key
// (the simulator is a local tool) and exist only under /_sim/:
//
//	POST /_sim/trigger     {"type":"person.created","body":{…optional…}} → TriggerResult
//	GET  /_sim/deliveries  the delivery log (bodies base64, exact bytes)
//	GET  /_sim/probes      the sample.webhook probes
//	GET  /_sim/healthz     {"ok":true}
func (s *Server) simControl() simhttp.Control {
	return simhttp.Control{
		Trigger:          s.serveTrigger,
		Deliveries:       func() any { return s.Deliveries() },
		Extra:            map[string]func() any{"/_sim/probes": func() any { return s.Probes() }},
		WriteJSON:        writeJSON,
		MethodNotAllowed: methodNotAllowed,
		NotFound:         writeNotFound,
	}
}

func (s *Server) serveTrigger(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	var req TriggerRequest
	if err := dec.Decode(&req); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			bodyError(err, "").write(w)
			return
		}
		writeErrors(w, http.StatusBadRequest, "invalid_json",
			`the body must be a JSON object {"type": "…", "body": {…optional…}}: `+err.Error())
		return
	}
	var body json.RawMessage
	if len(req.Body) > 0 && string(req.Body) != "null" {
		body = req.Body
	}
	res, err := s.Trigger(r.Context(), req.Type, body)
	switch {
	case errors.Is(err, ErrClosed):
		writeErrors(w, http.StatusServiceUnavailable, "closed", "the simulator is shutting down")
	case errors.Is(err, ErrUnknownEventType), errors.Is(err, ErrInvalidBody):
		writeErrors(w, http.StatusBadRequest, "invalid_params", err.Error())
	case err != nil:
		// The caller went away before the first attempts finished; they
		// continue in the background.
		writeErrors(w, http.StatusServiceUnavailable, "cancelled", err.Error())
	default:
		writeJSON(w, http.StatusOK, res)
	}
}
