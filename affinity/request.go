package affinity

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// DefaultMaxBodyBytes is the largest delivery ParseRequest and Handler read
// unless WithMaxBodyBytes says otherwise: 1 MiB, far above any Affinity
// event.
const DefaultMaxBodyBytes = 1 << 20

// Request errors of ParseRequest, one per HTTP answer a receiver gives. None
// of them matches ErrParse: the payload was never looked at.
var (
	// ErrMethodNotAllowed: the request is not a POST (answer 405 with
	// Allow: POST).
	ErrMethodNotAllowed = errors.New("affinity: method not allowed: deliveries are POST requests")
	// ErrUnsupportedMediaType: the Content-Type is not application/json
	// (answer 415).
	ErrUnsupportedMediaType = errors.New("affinity: unsupported media type: deliveries are application/json")
	// ErrBodyTooLarge: the body is over the limit (answer 413).
	ErrBodyTooLarge = errors.New("affinity: request body too large")
	// ErrReadBody: the body could not be read (the client hung up, …).
	ErrReadBody = errors.New("affinity: cannot read request body")
)

func bodyTooLarge(limit int64) error {
	return fmt.Errorf("%w: the limit is %d bytes", ErrBodyTooLarge, limit)
}

// ParseRequest reads and parses a delivery from an HTTP request, as a
// receiver gets it from Affinity. It checks, in this order, that the method
// is POST (ErrMethodNotAllowed), that the Content-Type is application/json,
// parameters such as charset allowed (ErrUnsupportedMediaType), and that
// the body is at most DefaultMaxBodyBytes or WithMaxBodyBytes
// (ErrBodyTooLarge); then it reads the whole body and parses it with Parse
// and the same options, so its results and errors are Parse's (a
// *StaleError for a delivery outside the replay window).
//
// ParseRequest does not authenticate the request: Affinity signs nothing,
// so check a secret in the URL path first (Handler does, with
// WithPathSecret).
func ParseRequest(r *http.Request, opts ...ParseOption) (*Event, error) {
	cfg := newParseConfig(opts)
	if cfg.err != nil {
		return nil, cfg.err
	}
	return cfg.parseRequest(r)
}

// parseRequest is ParseRequest with the options already applied (and valid).
func (c parseConfig) parseRequest(r *http.Request) (*Event, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil request", ErrReadBody)
	}
	if r.Method != http.MethodPost {
		return nil, ErrMethodNotAllowed
	}
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return nil, ErrUnsupportedMediaType
	}
	limit := c.maxBody
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	if r.ContentLength > limit {
		return nil, bodyTooLarge(limit)
	}
	var data []byte
	if r.Body != nil {
		var err error
		data, err = io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return nil, bodyTooLarge(limit)
		case err != nil:
			return nil, fmt.Errorf("%w: %w", ErrReadBody, err)
		}
	}
	c.maxBody = limit
	return c.parse(data)
}

// isJSONContentType reports whether a Content-Type header names
// application/json, whatever its case and parameters.
func isJSONContentType(v string) bool {
	if v == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(v)
	// A malformed parameter still leaves the media type readable.
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return false
	}
	return mt == "application/json"
}
