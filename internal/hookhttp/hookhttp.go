// Package hookhttp holds the HTTP plumbing the webhook receivers of the SDKs
// (affinity, attio) share: checking and reading a delivery request, mapping
// its failures to the SDK's own errors and to HTTP statuses, and writing the
// JSON answers of a Handler.
package hookhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// Kind says why ReadRequest refused a request.
type Kind int

// The kinds of RequestError, one per HTTP answer a receiver gives.
const (
	// MethodNotAllowed: not a POST (405, Allow: POST).
	MethodNotAllowed Kind = iota + 1
	// UnsupportedMediaType: the Content-Type is not application/json (415).
	UnsupportedMediaType
	// BodyTooLarge: the body is over the limit (413).
	BodyTooLarge
	// ReadBody: the body could not be read, or there is no request (400).
	ReadBody
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case MethodNotAllowed:
		return "method not allowed"
	case UnsupportedMediaType:
		return "unsupported media type"
	case BodyTooLarge:
		return "request body too large"
	case ReadBody:
		return "cannot read request body"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// RequestError is every error of ReadRequest.
type RequestError struct {
	Kind  Kind
	Limit int64 // the body limit, for BodyTooLarge
	Err   error // the cause, for ReadBody
}

func (e *RequestError) Error() string {
	switch {
	case e.Kind == BodyTooLarge:
		return fmt.Sprintf("%v: the limit is %d bytes", e.Kind, e.Limit)
	case e.Err != nil:
		return e.Kind.String() + ": " + e.Err.Error()
	}
	return e.Kind.String()
}

// Unwrap returns the cause of a ReadBody error.
func (e *RequestError) Unwrap() error { return e.Err }

// errNilRequest is the cause of the ReadBody error for a nil request.
var errNilRequest = errors.New("nil request")

// Check is what ReadRequest checks.
type Check struct {
	// Limit is the largest body read, in bytes.
	Limit int64
	// LenientParams accepts an application/json Content-Type whose
	// parameters are malformed (the media type is still readable).
	LenientParams bool
	// CheckLength refuses a request whose Content-Length is over Limit
	// before reading anything.
	CheckLength bool
}

// ReadRequest checks, in this order, that r is a POST, that its
// Content-Type is application/json (any case, any parameters), and reads
// its whole body through http.MaxBytesReader, at most c.Limit bytes. A nil
// body reads as nil. Every error is a *RequestError.
func ReadRequest(r *http.Request, c Check) ([]byte, error) {
	if r == nil {
		return nil, &RequestError{Kind: ReadBody, Err: errNilRequest}
	}
	if r.Method != http.MethodPost {
		return nil, &RequestError{Kind: MethodNotAllowed}
	}
	if !IsJSON(r.Header.Get("Content-Type"), c.LenientParams) {
		return nil, &RequestError{Kind: UnsupportedMediaType}
	}
	if c.CheckLength && r.ContentLength > c.Limit {
		return nil, &RequestError{Kind: BodyTooLarge, Limit: c.Limit}
	}
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, c.Limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &RequestError{Kind: BodyTooLarge, Limit: c.Limit}
		}
		return nil, &RequestError{Kind: ReadBody, Err: err}
	}
	return body, nil
}

// IsJSON reports whether a Content-Type value names application/json, in
// any case and with any parameters. With lenient, malformed parameters are
// allowed too.
func IsJSON(contentType string, lenient bool) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil && !(lenient && errors.Is(err, mime.ErrInvalidMediaParameter)) {
		return false
	}
	return mt == "application/json"
}

// LimitBody caps r's body at limit bytes through the ResponseWriter, so the
// server closes a connection whose client keeps sending.
func LimitBody(w http.ResponseWriter, r *http.Request, limit int64) {
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
}

// Errors are an SDK's exported request errors, the ones ReadRequest's kinds
// stand for.
type Errors struct {
	MethodNotAllowed     error
	UnsupportedMediaType error
	BodyTooLarge         error
	ReadBody             error
	// WrapCause makes a ReadBody error wrap its cause (%w); else it only
	// quotes it (%v).
	WrapCause bool
}

// Map turns a *RequestError into the SDK's error: the sentinel itself for
// MethodNotAllowed and UnsupportedMediaType, the sentinel with the limit
// for BodyTooLarge, the sentinel with the cause for ReadBody. Any other
// error (nil included) is returned as it is.
func (s Errors) Map(err error) error {
	var re *RequestError
	if !errors.As(err, &re) {
		return err
	}
	switch re.Kind {
	case MethodNotAllowed:
		return s.MethodNotAllowed
	case UnsupportedMediaType:
		return s.UnsupportedMediaType
	case BodyTooLarge:
		return s.TooLarge(re.Limit)
	case ReadBody:
		if s.WrapCause {
			return fmt.Errorf("%w: %w", s.ReadBody, re.Err)
		}
		return fmt.Errorf("%w: %v", s.ReadBody, re.Err)
	}
	return err
}

// TooLarge is the BodyTooLarge error for a limit of limit bytes.
func (s Errors) TooLarge(limit int64) error {
	return fmt.Errorf("%w: the limit is %d bytes", s.BodyTooLarge, limit)
}

// Status is the HTTP status for an error matching one of the SDK's request
// errors, and false for any other error.
func (s Errors) Status(err error) (int, bool) {
	switch {
	case errors.Is(err, s.MethodNotAllowed):
		return http.StatusMethodNotAllowed, true
	case errors.Is(err, s.UnsupportedMediaType):
		return http.StatusUnsupportedMediaType, true
	case errors.Is(err, s.BodyTooLarge):
		return http.StatusRequestEntityTooLarge, true
	case errors.Is(err, s.ReadBody):
		return http.StatusBadRequest, true
	}
	return 0, false
}

// Responder writes a Handler's answers and tells its error hook about each
// one that is not a plain success.
type Responder struct {
	// OnError, when not nil, is called before the answer is written.
	OnError func(r *http.Request, status int, err error)
	// NoHandler: a dispatch error matching it is answered 200 (reported).
	NoHandler error
	// Parse: a dispatch error matching it is answered 400, quoting it.
	Parse error
	// HandlerFailed is the message of the 500 for any other dispatch error.
	HandlerFailed string
}

// Report calls the error hook, if any.
func (p Responder) Report(r *http.Request, status int, err error) {
	if p.OnError != nil {
		p.OnError(r, status, err)
	}
}

// Fail reports err and answers status with {"ok":false,"error":msg}.
func (p Responder) Fail(w http.ResponseWriter, r *http.Request, status int, err error, msg string) {
	p.Report(r, status, err)
	text, _ := json.Marshal(msg) // a string always encodes
	WriteJSON(w, status, `{"ok":false,"error":`+string(text)+`}`)
}

// OK answers 200 {"ok":true}.
func (p Responder) OK(w http.ResponseWriter) {
	WriteJSON(w, http.StatusOK, `{"ok":true}`)
}

// Dispatched handles what a Router's Dispatch returned: nil goes on, an
// error matching NoHandler is reported as a 200 and goes on, an error
// matching Parse is answered 400 and any other 500 (HandlerFailed, so a
// handler's error never leaves the process). It reports whether the
// request may go on, that is whether nothing was answered yet.
func (p Responder) Dispatched(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
	case errors.Is(err, p.NoHandler):
		p.Report(r, http.StatusOK, err)
	case errors.Is(err, p.Parse):
		// The event does not decode into its type's struct: a resend would
		// not either.
		p.Fail(w, r, http.StatusBadRequest, err, err.Error())
		return false
	default:
		p.Fail(w, r, http.StatusInternalServerError, err, p.HandlerFailed)
		return false
	}
	return true
}

// WriteJSON answers status with body, a JSON document.
func WriteJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
