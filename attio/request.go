package attio

import (
	"errors"
	"net/http"

	"github.com/crmhook/crmhook/internal/hookhttp"
)

// DefaultMaxBodyBytes is the largest delivery body ParseRequest and Handler
// read unless WithMaxBodyBytes says otherwise: 1 MiB, far above any Attio
// delivery.
const DefaultMaxBodyBytes = 1 << 20

// Request errors from ParseRequest, one per HTTP answer a receiver gives.
// They do not wrap ErrVerification or ErrParse.
var (
	// ErrMethodNotAllowed: the request is not a POST (answer 405 with
	// Allow: POST).
	ErrMethodNotAllowed = errors.New("attio: method not allowed (want POST)")
	// ErrUnsupportedMediaType: the Content-Type is not application/json
	// (answer 415). Parameters such as charset are allowed.
	ErrUnsupportedMediaType = errors.New("attio: unsupported media type (want application/json)")
	// ErrBodyTooLarge: the body is over the limit (answer 413).
	ErrBodyTooLarge = errors.New("attio: request body too large")
	// ErrReadBody: the body could not be read whole (the client went away,
	// a broken chunked encoding…); answer 400.
	ErrReadBody = errors.New("attio: cannot read request body")
)

// requestErrors are the request errors above, for hookhttp.
var requestErrors = hookhttp.Errors{
	MethodNotAllowed:     ErrMethodNotAllowed,
	UnsupportedMediaType: ErrUnsupportedMediaType,
	BodyTooLarge:         ErrBodyTooLarge,
	ReadBody:             ErrReadBody,
}

// ParseRequest checks and parses one delivery from Attio, in the order a
// receiver answers them:
//
//   - the method is POST, else ErrMethodNotAllowed;
//   - the Content-Type is application/json, else ErrUnsupportedMediaType;
//   - the body, read through http.MaxBytesReader, is at most
//     DefaultMaxBodyBytes (or WithMaxBodyBytes), else ErrBodyTooLarge
//     (ErrReadBody when it cannot be read);
//   - the signature verifies against one of secrets (Verify, with opts:
//     every secret compared in constant time), else an error wrapping
//     ErrVerification, or ErrNoSecrets or ErrInvalidOption for a
//     configuration error;
//   - the body parses (Parse), else an error wrapping ErrParse.
//
// When the signature is authentic but X-Attio-Timestamp is outside the
// window, and the body parses, it returns the Delivery together with
// ErrTooOld or ErrTooNew, so the caller may keep it as a rejection; every
// other error comes with a nil Delivery. An invalid option gives
// ErrInvalidOption before anything else. The request body is consumed.
func ParseRequest(r *http.Request, secrets []string, opts ...VerifyOption) (*Delivery, error) {
	cfg, err := newVerifyConfig(opts)
	if err != nil {
		return nil, err
	}
	return cfg.parseRequest(r, secrets)
}

// parseRequest is ParseRequest with the options applied (and valid).
func (cfg *verifyConfig) parseRequest(r *http.Request, secrets []string) (*Delivery, error) {
	body, err := hookhttp.ReadRequest(r, hookhttp.Check{Limit: cfg.maxBody})
	if err != nil {
		return nil, requestErrors.Map(err)
	}
	verr := cfg.verify(body, r.Header, secrets)
	stale := errors.Is(verr, ErrTooOld) || errors.Is(verr, ErrTooNew)
	if verr != nil && !stale {
		return nil, verr
	}
	d, err := Parse(body)
	if err != nil {
		return nil, err
	}
	return d, verr
}
