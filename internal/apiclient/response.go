package apiclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// ErrUnexpectedResponse is wrapped by every error of DecodeJSON and
// Unexpected: a 2xx answer that is not what the call expects (not JSON, an
// empty body, the wrong shape, too large). Each SDK marks these errors with
// its own sentinel through Mark, so callers match affinity's or attio's
// ErrUnexpectedResponse.
var ErrUnexpectedResponse = errors.New("unexpected response")

// Unexpected formats an error wrapping ErrUnexpectedResponse, reading
// "unexpected response: <text>".
func Unexpected(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnexpectedResponse}, args...)...)
}

// DecodeJSON decodes a 2xx answer's body into out. Every error wraps
// ErrUnexpectedResponse and says what came back without quoting it: an
// empty body, a body that is not JSON at all (a captive portal, a proxy's
// HTML page: the error names the Content-Type), or JSON of the wrong shape.
func DecodeJSON(resp *http.Response, body []byte, out any) error {
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return Unexpected("%d answer has an empty body, want JSON", status)
	}
	if !json.Valid(trimmed) {
		ct := ""
		if resp != nil {
			ct = resp.Header.Get("Content-Type")
		}
		if mt, _, err := mime.ParseMediaType(ct); err == nil {
			ct = mt
		}
		if ct == "" {
			ct = "none"
		}
		return Unexpected("%d answer is not JSON (Content-Type %s)", status, OneLine(ct, 64))
	}
	if err := json.Unmarshal(trimmed, out); err != nil {
		return Unexpected("decode %d answer: %w", status, err)
	}
	return nil
}

// maxRequestID caps a request id kept in an error.
const maxRequestID = 128

// RequestID is the request id an API answer carries, for quoting to the
// provider's support: the X-Request-Id header, else Request-Id, on one line
// of at most 128 characters; empty when the answer has neither.
func RequestID(h http.Header) string {
	for _, name := range []string{"X-Request-Id", "Request-Id"} {
		if v := strings.TrimSpace(h.Get(name)); v != "" {
			return OneLine(v, maxRequestID)
		}
	}
	return ""
}

// Mark returns an error that reads and unwraps like err and also matches
// kind with errors.Is, without repeating kind's text in the message. A
// labelled error then reads "affinity: get webhook 7: unexpected response:
// …" rather than naming the package twice. Mark(kind, nil) is nil.
func Mark(kind, err error) error {
	if err == nil {
		return nil
	}
	return &markedError{kind: kind, err: err}
}

type markedError struct {
	kind error
	err  error
}

func (e *markedError) Error() string        { return e.err.Error() }
func (e *markedError) Unwrap() error        { return e.err }
func (e *markedError) Is(target error) bool { return target == e.kind }
