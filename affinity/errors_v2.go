package affinity

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook/internal/apiclient"
)

// Sentinels for refusals of Affinity's v2 webhook create and update calls.
// Both come back as a "validation" error on the "url" property; Affinity
// documents the causes (unreachable or invalid URL, embedded credentials, a
// URL already used in the organization) but not the wording of each, so the
// two are told apart by the message. Both match ErrValidation too.
var (
	// ErrTestDeliveryFailed is a create or update refused because the test
	// delivery Affinity POSTs to the URL before accepting it failed (no
	// answer, or not a 2xx), or because Affinity found the URL invalid. The
	// receiver must already be running and answer the probe with a 2xx.
	ErrTestDeliveryFailed = errors.New("affinity: webhook test delivery failed")
	// ErrWebhookURLInUse is a create or update refused because another
	// webhook of the organization already uses the URL: v2 webhook URLs are
	// unique within an organization.
	ErrWebhookURLInUse = errors.New("affinity: webhook URL already used in the organization")
)

// The error codes of Affinity's v2 error bodies.
const (
	V2CodeBadRequest     = "bad-request"
	V2CodeValidation     = "validation"
	V2CodeNotFound       = "not-found"
	V2CodeAuthentication = "authentication"
	V2CodeAuthorization  = "authorization"
	V2CodeRateLimit      = "rate-limit"
	V2CodeConflict       = "conflict"
	V2CodeServer         = "server"
)

// V2ErrorDetail is one entry of a v2 error body {"errors":[…]}.
type V2ErrorDetail struct {
	// Code is the kind of error, e.g. "validation" or "not-found" (see the
	// V2Code constants; others may appear).
	Code string `json:"code"`
	// Message is Affinity's explanation on one line, API key scrubbed.
	Message string `json:"message"`
	// Param names the request property in error, for "validation" errors
	// ("url", "subscriptions", "limit", …); empty otherwise.
	Param string `json:"param,omitempty"`
}

// V2Error is a non-2xx answer from Affinity's API v2, whose error bodies are
// {"errors":[{"code","message","param"?}]}. It embeds the APIError every
// Affinity failure is (status, message, request id, body snippet,
// Retry-After), so errors.As with a **APIError finds it too, and it matches
// the same sentinels through errors.Is: by code, else by status —
//
//	ErrValidation         code validation or bad-request, or 400/422
//	ErrNotFound           code not-found, or 404
//	ErrUnauthorized       code authentication, or 401
//	ErrForbidden          code authorization, or 403
//	ErrRateLimited        code rate-limit, or 429
//	ErrServer             code server, or 5xx
//	ErrTestDeliveryFailed validation on url, not about a URL in use
//	ErrWebhookURLInUse    validation on url saying the URL is taken
//	ErrSubscriptionLimit  a create refused with a bad-request naming no property
type V2Error struct {
	APIError
	// Code and Param are those of the first entry of Errors ("" when the
	// body was not in the v2 shape, e.g. a proxy's page).
	Code  string
	Param string
	// Errors are every entry of the body, in order.
	Errors []V2ErrorDetail

	// atLimit marks a create refused at the organization's webhook limit.
	atLimit bool
}

func (e *V2Error) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	switch {
	case e.Code != "" && e.Param != "":
		b.WriteString(": " + e.Code + " error on " + e.Param)
	case e.Code != "":
		b.WriteString(": " + e.Code)
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

// Is matches the sentinels listed on V2Error.
func (e *V2Error) Is(target error) bool {
	switch target {
	case ErrValidation:
		return e.hasCode(V2CodeValidation) || e.hasCode(V2CodeBadRequest) || e.APIError.Is(target)
	case ErrNotFound:
		return e.hasCode(V2CodeNotFound) || e.APIError.Is(target)
	case ErrUnauthorized:
		return e.hasCode(V2CodeAuthentication) || e.APIError.Is(target)
	case ErrForbidden:
		return e.hasCode(V2CodeAuthorization) || e.APIError.Is(target)
	case ErrRateLimited:
		return e.hasCode(V2CodeRateLimit) || e.APIError.Is(target)
	case ErrServer:
		return e.hasCode(V2CodeServer) || e.APIError.Is(target)
	case ErrTestDeliveryFailed:
		d, ok := e.urlValidation()
		return ok && !urlInUse(d.Message)
	case ErrWebhookURLInUse:
		d, ok := e.urlValidation()
		return ok && urlInUse(d.Message)
	case ErrSubscriptionLimit:
		// The wording check is V1's; a validation error (a failed test
		// delivery may say "exceeded") is never the limit.
		return e.atLimit || (!e.hasCode(V2CodeValidation) && e.APIError.isSubscriptionLimit())
	}
	return false
}

// As lets errors.As find the embedded *APIError, so code written for V1
// errors (status, Retry-After, request id) works on v2 errors unchanged.
func (e *V2Error) As(target any) bool {
	if p, ok := target.(**APIError); ok {
		*p = &e.APIError
		return true
	}
	return false
}

func (e *V2Error) hasCode(code string) bool {
	for _, d := range e.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

// urlValidation returns the validation entry on the url property, if any.
func (e *V2Error) urlValidation() (V2ErrorDetail, bool) {
	for _, d := range e.Errors {
		if d.Code == V2CodeValidation && d.Param == "url" {
			return d, true
		}
	}
	return V2ErrorDetail{}, false
}

// paramlessBadRequest reports a bad-request naming no property: on create,
// Affinity's answer at the organization's webhook limit.
func (e *V2Error) paramlessBadRequest() bool {
	return len(e.Errors) > 0 && e.Errors[0].Code == V2CodeBadRequest && e.Errors[0].Param == ""
}

// urlInUse reports whether a url validation message says the URL belongs to
// another webhook. Affinity documents the rule but not its wording.
func urlInUse(msg string) bool {
	msg = strings.ToLower(msg)
	for _, w := range []string{"already", "unique", "in use", "duplicate", "taken", "exists"} {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}

// newV2Error builds the error for a non-2xx v2 answer: the APIError (with
// its defensive message parsing and scrubbing), plus the codes and params of
// a v2 body.
func newV2Error(resp *http.Response, body []byte, s *apiclient.Redactor, retryAfter time.Duration) *V2Error {
	e := &V2Error{APIError: *newAPIError(resp, body, s, retryAfter)}
	var parsed struct {
		Errors []struct {
			Code    any `json:"code"`
			Message any `json:"message"`
			Param   any `json:"param"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &parsed) != nil {
		return e
	}
	// Fields are read leniently: a number or null where a string belongs
	// must not hide the rest of the answer.
	text := func(v any) string {
		switch x := v.(type) {
		case string:
			return x
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
		return ""
	}
	for _, item := range parsed.Errors {
		e.Errors = append(e.Errors, V2ErrorDetail{
			Code:    oneLine(s.Secrets(text(item.Code)), 64),
			Message: oneLine(s.Secrets(text(item.Message)), maxMessageChars),
			Param:   oneLine(s.Secrets(text(item.Param)), 64),
		})
	}
	if len(e.Errors) > 0 {
		e.Code, e.Param = e.Errors[0].Code, e.Errors[0].Param
	}
	return e
}
