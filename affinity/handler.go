package affinity

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/crmhook/crmhook/internal/hookhttp"
)

// ErrPathSecret is what a Handler reports (WithErrorHook) for a request
// whose path does not end in one of its secrets; the answer is a bare 404.
var ErrPathSecret = errors.New("affinity: wrong or missing path secret")

// Handler is a complete receiver for Affinity deliveries: an http.Handler
// that checks a request, parses it and hands the event to a Router. Make it
// with NewHandler. It answers, checking in this order:
//
//	path secret wrong or missing (WithPathSecret)       404, empty body
//	method other than POST                              405, Allow: POST
//	Content-Type not application/json                   415
//	body over the limit (http.MaxBytesReader)           413
//	not a valid envelope (Parse's rules)                400
//	sent_at outside the replay window                   400
//	the sample.webhook probe (whatever its sent_at)     200 {"ok":true}
//	body does not decode into its type's struct         400
//	a handler returned an error                         500
//	dispatched, or no handler for the type              200 {"ok":true}
//
// The probe goes to the Router, which runs only a handler registered for
// sample.webhook, never the fallback nor the handlers of real events.
//
// Error answers are JSON {"ok":false,"error":"…"}. A 400 quotes the parse
// error, which names keys and never values; a 500 says only that a handler
// failed, so what a handler's error holds never leaves the process.
//
// Handlers run before the answer is written, so keep them quick (or hand the
// event to a queue): Affinity expects a fast 2xx. A handler error is a 500
// so that Affinity delivers the event again (it retries for up to 10 hours,
// then disables the subscription). An event of a type nobody handles
// (ErrNoHandler) is answered 200: Affinity resending it cannot help, and
// failing it for 10 hours would get the whole subscription disabled;
// register a Fallback to see those events, or WithErrorHook to be told.
//
// Affinity signs nothing, so without WithPathSecret anyone who knows the URL
// can post events: use a long random secret as the last path segment, and
// HTTPS.
type Handler struct {
	router  *Router
	parse   parseConfig
	secrets [][sha256.Size]byte // digests of the path secrets
	onError func(r *http.Request, status int, err error)
}

// HandlerOption configures a Handler.
type HandlerOption func(*Handler) error

// WithPathSecret makes the Handler answer 404 unless the last segment of the
// request's path is one of secrets, compared in constant time (give two
// during a rotation). A secret must be non-empty and hold no '/'. Each call
// replaces the secrets of earlier ones.
func WithPathSecret(secrets ...string) HandlerOption {
	return func(h *Handler) error {
		if len(secrets) == 0 {
			return &optionError{msg: "WithPathSecret needs at least one secret"}
		}
		h.secrets = h.secrets[:0]
		for _, s := range secrets {
			if s == "" || strings.Contains(s, "/") {
				return &optionError{msg: "a path secret must be non-empty and hold no '/'"}
			}
			h.secrets = append(h.secrets, sha256.Sum256([]byte(s)))
		}
		return nil
	}
}

// WithParseOptions sets the options the Handler parses deliveries with: the
// replay window (WithMaxAge, WithoutMaxAge, …), the clock and the body
// limit (WithMaxBodyBytes, default DefaultMaxBodyBytes). Options of several
// calls add up.
func WithParseOptions(opts ...ParseOption) HandlerOption {
	return func(h *Handler) error {
		for _, o := range opts {
			if o != nil {
				o(&h.parse)
			}
		}
		return nil
	}
}

// WithErrorHook has the Handler call fn for every request it does not
// simply accept: each non-2xx answer, and each event answered 200 without a
// handler (err wraps ErrNoHandler). status is the answer's status code; err
// says why, and for a delivery refused only for its age it is a
// *StaleError carrying the event (errors.As), so it can be kept. Parse
// errors never quote payload values; handler errors are passed on as the
// handlers returned them. fn runs before the answer is written.
func WithErrorHook(fn func(r *http.Request, status int, err error)) HandlerOption {
	return func(h *Handler) error {
		h.onError = fn
		return nil
	}
}

// NewHandler returns a Handler that dispatches deliveries to router. It
// refuses a nil router and invalid options (errors matching
// ErrInvalidOption), so a misconfigured receiver fails at start-up, not at
// the first delivery.
func NewHandler(router *Router, opts ...HandlerOption) (*Handler, error) {
	if router == nil {
		return nil, &optionError{msg: "NewHandler needs a router"}
	}
	h := &Handler{router: router, parse: newParseConfig(nil)}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(h); err != nil {
			return nil, err
		}
	}
	if h.parse.err != nil {
		return nil, h.parse.err
	}
	if h.parse.now == nil {
		h.parse.now = time.Now
	}
	if h.parse.maxBody <= 0 {
		h.parse.maxBody = DefaultMaxBodyBytes
	}
	return h, nil
}

// ServeHTTP answers one delivery; see Handler for the answers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resp := answers
	resp.OnError = h.onError
	if !h.pathSecretOK(r.URL.Path) {
		resp.Report(r, http.StatusNotFound, ErrPathSecret)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		resp.Fail(w, r, http.StatusMethodNotAllowed, ErrMethodNotAllowed, ErrMethodNotAllowed.Error())
		return
	}
	hookhttp.LimitBody(w, r, h.parse.maxBody)
	ev, err := h.parse.parseRequest(r)
	var stale *StaleError
	if errors.As(err, &stale) && stale.Event != nil && stale.Event.Type == SampleWebhook {
		// The probe is answered whatever its age: refusing it fails the
		// subscription call.
		ev, err = stale.Event, nil
	}
	if err != nil {
		status, ok := requestErrors.Status(err)
		if !ok { // ErrParse, a stale delivery: a bad request
			status = http.StatusBadRequest
		}
		resp.Fail(w, r, status, err, err.Error())
		return
	}
	if !resp.Dispatched(w, r, h.router.Dispatch(r.Context(), ev)) {
		return
	}
	resp.OK(w)
}

// answers are the Handler's answers to what the Router's Dispatch returns
// (Handler tells its error hook).
var answers = hookhttp.Responder{
	NoHandler:     ErrNoHandler,
	Parse:         ErrParse,
	HandlerFailed: "affinity: event handler failed",
}

// pathSecretOK compares the last path segment with every secret, in
// constant time whatever matches.
func (h *Handler) pathSecretOK(path string) bool {
	if len(h.secrets) == 0 {
		return true
	}
	seg := path[strings.LastIndexByte(path, '/')+1:]
	sum := sha256.Sum256([]byte(seg))
	match := 0
	for i := range h.secrets {
		match |= subtle.ConstantTimeCompare(sum[:], h.secrets[i][:])
	}
	return match == 1 && seg != ""
}
