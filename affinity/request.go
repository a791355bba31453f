package affinity

import (
	"errors"
	"net/http"

	"github.com/crmhook/crmhook/internal/hookhttp"
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

// requestErrors are the request errors above, for hookhttp.
var requestErrors = hookhttp.Errors{
	MethodNotAllowed:     ErrMethodNotAllowed,
	UnsupportedMediaType: ErrUnsupportedMediaType,
	BodyTooLarge:         ErrBodyTooLarge,
	ReadBody:             ErrReadBody,
	WrapCause:            true,
}

func bodyTooLarge(limit int64) error {
	return requestErrors.TooLarge(limit)
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
	limit := c.maxBody
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	data, err := hookhttp.ReadRequest(r, hookhttp.Check{
		Limit: limit,
		// A malformed parameter still leaves the media type readable.
		LenientParams: true,
		CheckLength:   true,
	})
	if err != nil {
		return nil, requestErrors.Map(err)
	}
	c.maxBody = limit
	return c.parse(data)
}
