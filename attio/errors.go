package attio

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook/internal/apiclient"
)

// Sentinels matched by *APIError through errors.Is, so callers can branch on
// the kind of failure without looking at status codes.
var (
	ErrNotFound     = errors.New("attio: not found")         // 404
	ErrUnauthorized = errors.New("attio: unauthorized")      // 401
	ErrForbidden    = errors.New("attio: forbidden")         // 403
	ErrValidation   = errors.New("attio: validation failed") // 400 and 422
	ErrConflict     = errors.New("attio: conflict")          // 409
	ErrRateLimited  = errors.New("attio: rate limited")      // 429
	ErrServer       = errors.New("attio: server error")      // 5xx
)

// ErrInvalidRequest is wrapped by the checks the client makes before sending
// anything (an empty id, a target URL that is not https, no subscriptions, a
// bad option…). It is distinct from ErrValidation, which is Attio's own 400
// answer.
var ErrInvalidRequest = errors.New("attio: invalid request")

// ErrUnexpectedResponse is wrapped when a 2xx answer is not the JSON the
// call expects: not JSON at all (an HTML page from a proxy), an empty or
// truncated body, no "data", or data of the wrong shape.
var ErrUnexpectedResponse = errors.New("attio: unexpected response")

// APIError is a non-2xx answer from the Attio API. Attio's error bodies are
// {"status_code", "type", "code", "message"}; when a body is not that (an HTML
// page from a proxy, plain text, nothing) Message still says something useful.
type APIError struct {
	StatusCode int
	Type       string // e.g. "invalid_request_error", "auth_error", "rate_limit_error"
	Code       string // e.g. "not_found", "validation_type", "rate_limit_exceeded"
	Message    string
	// RetryAfter is how long Attio asked us to wait (429 and some 5xx), zero
	// when it did not say.
	RetryAfter time.Duration
	// Body is a short snippet of the raw answer with the API token redacted,
	// kept for debugging; it is not part of Error().
	Body string
	// RequestID is the X-Request-Id (or Request-Id) header, worth quoting to
	// Attio support; empty when the answer has none.
	RequestID string
	// Response is the HTTP response; its body has been read and closed.
	Response *http.Response
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.Code != "" {
		b.WriteString(" (" + e.Code + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RetryAfter > 0 {
		b.WriteString("; retry after " + e.RetryAfter.Round(time.Second).String())
	}
	if e.RequestID != "" {
		b.WriteString(" (request id " + e.RequestID + ")")
	}
	return b.String()
}

// Is matches the sentinel for the status code, so errors.Is(err, ErrNotFound)
// works through any amount of wrapping.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrValidation:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusUnprocessableEntity
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrServer:
		return e.StatusCode >= 500 && e.StatusCode <= 599
	}
	return false
}

// Limits on what an error keeps of a response body.
const (
	maxErrorBody    = 64 << 10 // read at most this much of an error answer
	maxBodySnippet  = 512      // APIError.Body
	maxMessageChars = 200      // a message made up from a non-JSON body
)

// newAPIError builds the error for a non-2xx answer. token is redacted from
// everything kept, in case a proxy echoes the request back.
func newAPIError(resp *http.Response, body []byte, token string, retryAfter time.Duration) *APIError {
	redact := apiclient.NewRedactor(token)
	e := &APIError{
		StatusCode: resp.StatusCode,
		RetryAfter: retryAfter,
		RequestID:  redact.Secrets(apiclient.RequestID(resp.Header)),
		Response:   resp,
	}
	var payload struct {
		StatusCode json.RawMessage `json:"status_code"`
		Type       string          `json:"type"`
		Code       string          `json:"code"`
		Message    string          `json:"message"`
	}
	if json.Unmarshal(body, &payload) == nil {
		e.Type, e.Code, e.Message = payload.Type, payload.Code, payload.Message
	}
	e.Body = redact.Secrets(apiclient.Snippet(body, maxBodySnippet))
	// Not Attio's JSON: say what came back instead of nothing.
	e.Message = apiclient.MessageOr(apiclient.OneLine(redact.Secrets(e.Message), maxMessageChars), e.Body, maxMessageChars)
	return e
}

// requestError labels an error from one API call: "attio: <op>: …".
func requestError(op string, err error) error {
	return errorf("%s: %w", op, err)
}

// errorf is fmt.Errorf (%w allowed, several times) for a message that names
// the package once, at its start, however many of the wrapped errors carry
// their own "attio: " prefix. The result unwraps to everything fmt.Errorf
// wrapped.
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &labelledError{msg: pkgPrefix + strings.ReplaceAll(err.Error(), pkgPrefix, ""), err: err}
}

const pkgPrefix = "attio: "

type labelledError struct {
	msg string
	err error
}

func (e *labelledError) Error() string { return e.msg }
func (e *labelledError) Unwrap() error { return e.err }
