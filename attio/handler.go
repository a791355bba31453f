package attio

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/crmhook/crmhook/internal/hookhttp"
)

// Handler is a complete receiver for Attio deliveries: an http.Handler that
// checks a request, verifies and parses it and hands each event to a
// Router. Make it with NewHandler. It answers, checking in this order:
//
//	method other than POST                           405, Allow: POST
//	Content-Type not application/json                415
//	body over the limit (http.MaxBytesReader)        413
//	signature missing or wrong                       401
//	not a valid delivery (Parse's rules)             400
//	X-Attio-Timestamp outside the window             400
//	an event does not decode into its handler's type 400
//	a handler returned an error                      500
//	dispatched, or no handler for a type (skipped)   200 {"ok":true}
//
// Error answers are JSON {"ok":false,"error":"…"}. A 4xx quotes the error,
// which names keys and never payload values; a 500 says only that a handler
// failed, so what a handler's error holds never leaves the process.
//
// Events are dispatched in order and the first failure ends the request.
// Attio retries any answer but 200 and 202, redelivering the whole
// delivery, so handlers should be idempotent (Idempotency-Key is the same
// on every retry) and quick: Attio expects a fast answer. An event of a type
// nobody handles is answered 200: a resend cannot help, and failing it
// would get the webhook marked degraded; register a Fallback to see those
// events, or WithErrorHook to be told.
type Handler struct {
	secrets []string
	router  *Router
	verify  verifyConfig
	onError func(r *http.Request, status int, err error)
}

// HandlerOption configures a Handler.
type HandlerOption func(*Handler) error

// WithVerifyOptions sets the options the Handler verifies and reads
// deliveries with: the timestamp window (WithTolerance, WithoutTolerance,
// WithMaxAge, …), the clock and the body limit (WithMaxBodyBytes, default
// DefaultMaxBodyBytes). Options of several calls add up.
func WithVerifyOptions(opts ...VerifyOption) HandlerOption {
	return func(h *Handler) error {
		for _, o := range opts {
			if o != nil {
				o(&h.verify)
			}
		}
		return h.verify.err
	}
}

// WithErrorHook has the Handler call fn for every request it does not
// simply accept: each non-2xx answer, and each event answered 200 without a
// handler (err wraps ErrNoHandler). status is the answer's status code and
// err says why. Errors from this package never quote payload values;
// handler errors are passed on as the handlers returned them. fn runs
// before the answer is written.
func WithErrorHook(fn func(r *http.Request, status int, err error)) HandlerOption {
	return func(h *Handler) error {
		h.onError = fn
		return nil
	}
}

// NewHandler returns a Handler verifying deliveries against secrets (any
// of them matches, for a rotation) and dispatching their events to router.
// Nil options are skipped. It returns ErrNoSecrets when secrets is empty or
// holds an empty secret, and an error matching ErrInvalidOption for a nil
// router or an invalid option, so a misconfigured receiver fails at
// start-up, not at the first delivery.
func NewHandler(secrets []string, router *Router, opts ...HandlerOption) (*Handler, error) {
	if router == nil {
		return nil, fmt.Errorf("%w: NewHandler needs a router", ErrInvalidOption)
	}
	if len(secrets) == 0 {
		return nil, ErrNoSecrets
	}
	for i, s := range secrets {
		if s == "" {
			return nil, fmt.Errorf("%w: secret %d is empty", ErrNoSecrets, i)
		}
	}
	cfg, _ := newVerifyConfig(nil)
	h := &Handler{secrets: slices.Clone(secrets), router: router, verify: cfg}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(h); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// ServeHTTP answers one delivery; see Handler for the answers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resp := answers
	resp.OnError = h.onError
	hookhttp.LimitBody(w, r, h.verify.maxBody)
	d, err := h.verify.parseRequest(r, h.secrets)
	if err != nil {
		status := requestStatus(err)
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		msg := err.Error()
		if status == http.StatusInternalServerError {
			msg = "attio: receiver misconfigured"
		}
		resp.Fail(w, r, status, err, msg)
		return
	}
	for _, ev := range d.Events {
		if !resp.Dispatched(w, r, h.router.Dispatch(r.Context(), ev)) {
			return
		}
	}
	resp.OK(w)
}

// answers are the Handler's answers to what the Router's Dispatch returns
// (Handler tells its error hook).
var answers = hookhttp.Responder{
	NoHandler:     ErrNoHandler,
	Parse:         ErrParse,
	HandlerFailed: "attio: event handler failed",
}

// requestStatus maps a ParseRequest error to its HTTP status.
func requestStatus(err error) int {
	if status, ok := requestErrors.Status(err); ok {
		return status
	}
	switch {
	case errors.Is(err, ErrTooOld), errors.Is(err, ErrTooNew):
		return http.StatusBadRequest // authentic, but outside the window
	case errors.Is(err, ErrVerification):
		return http.StatusUnauthorized
	case errors.Is(err, ErrParse):
		return http.StatusBadRequest
	default: // ErrNoSecrets, ErrInvalidOption: the receiver's configuration
		return http.StatusInternalServerError
	}
}
