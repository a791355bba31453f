package affinity

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook/internal/apiclient"
)

// Sentinels matched by *APIError through errors.Is, so callers branch on the
// kind of failure without looking at status codes.
var (
	ErrNotFound     = errors.New("affinity: not found")         // 404
	ErrUnauthorized = errors.New("affinity: unauthorized")      // 401
	ErrForbidden    = errors.New("affinity: forbidden")         // 403
	ErrValidation   = errors.New("affinity: validation failed") // 400 and 422
	ErrRateLimited  = errors.New("affinity: rate limited")      // 429
	ErrServer       = errors.New("affinity: server error")      // 5xx
	// ErrSubscriptionLimit is a refused create because the instance already
	// holds its three webhook subscriptions. Affinity has no error code for
	// it, so it is recognised by the wording of the message; it matches
	// ErrValidation too when the status is 400 or 422.
	ErrSubscriptionLimit = errors.New("affinity: webhook subscription limit reached")
)

// ErrNoAPIKey is returned by NewClient for an empty API key and by
// NewClientFromEnv when AFFINITY_API_KEY is unset.
var ErrNoAPIKey = errors.New("affinity: no API key (set " + EnvAPIKey + ")")

// ErrInvalidRequest is wrapped by the checks the client makes before sending
// anything (an id that is not positive, an empty webhook URL, an update with
// no fields, a bad option). It is distinct from ErrValidation, which is
// Affinity's own 400/422 answer.
var ErrInvalidRequest = errors.New("affinity: invalid request")

// ErrUnexpectedResponse is wrapped when a 2xx answer is not the JSON the
// call expects (an HTML page from a proxy, a truncated body, …).
var ErrUnexpectedResponse = errors.New("affinity: unexpected response")

// APIError is a non-2xx answer from the Affinity API. Affinity does not
// document its error bodies, so Message is taken from whichever of
// {"errors":[{"message"}]}, {"message"}, {"error"} or plain text came back.
type APIError struct {
	StatusCode int
	// Message is Affinity's explanation on one line, at most 200 characters,
	// with the API key scrubbed.
	Message string
	// RequestID is the X-Request-Id (or Request-Id) header, worth quoting to
	// Affinity support; empty when the answer has none.
	RequestID string
	// Body is a snippet (at most 512 bytes) of the raw answer for debugging,
	// with the API key and anything that looks like a credential scrubbed.
	// It is not part of Error().
	Body string
	// RetryAfter is how long Affinity asked us to wait (Retry-After as
	// seconds or an HTTP date), zero when it did not say.
	RetryAfter time.Duration
	// Response is the HTTP response; its body has been read and closed.
	Response *http.Response
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
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

// Is matches the sentinel for the status code (and, for
// ErrSubscriptionLimit, the message), so errors.Is works through wrapping.
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
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrServer:
		return e.StatusCode >= 500 && e.StatusCode <= 599
	case ErrSubscriptionLimit:
		return e.isSubscriptionLimit()
	}
	return false
}

// Words that, with "subscription" or "webhook", make a refusal the
// subscription limit. The simulator says "Webhook subscription limit of 3
// subscriptions reached for this instance"; Affinity's exact wording is not
// documented, so a few likely phrasings count too ("maximum of 3 webhooks",
// "too many webhook subscriptions", "only 3 webhook subscriptions"). A bare
// "3" counts only right before "webhook"/"subscription": a probe failure
// quoting an address such as 10.0.0.3 must not read as the limit.
var (
	limitWords   = []string{"limit", "maximum", "max ", "too many", "at most", "exceed"}
	subjectWords = []string{"subscription", "webhook"}
	countOfThree = regexp.MustCompile(`(^|[^0-9a-z_.])(3|three)\s+(active\s+)?(webhook|subscription)`)
)

func (e *APIError) isSubscriptionLimit() bool {
	switch {
	case e.StatusCode < 400 || e.StatusCode > 499,
		e.StatusCode == http.StatusUnauthorized,
		e.StatusCode == http.StatusNotFound,
		e.StatusCode == http.StatusTooManyRequests: // "rate limit" is not this limit
		return false
	}
	msg := strings.ToLower(e.Message)
	hasSubject := false
	for _, w := range subjectWords {
		hasSubject = hasSubject || strings.Contains(msg, w)
	}
	if !hasSubject {
		return false
	}
	for _, w := range limitWords {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return countOfThree.MatchString(msg)
}

// Limits on what an error keeps of a response body.
const (
	maxErrorBody    = 64 << 10 // read at most this much of an error answer
	maxBodySnippet  = 512      // APIError.Body
	maxMessageChars = 200      // APIError.Message
)

// newAPIError builds the error for a non-2xx answer. The key is scrubbed from
// everything kept, in case a proxy or debug page echoes the request back.
func newAPIError(resp *http.Response, body []byte, s *apiclient.Redactor, retryAfter time.Duration) *APIError {
	e := &APIError{
		StatusCode: resp.StatusCode,
		RequestID:  oneLine(s.Secrets(apiclient.RequestID(resp.Header)), 128),
		Response:   resp,
		RetryAfter: retryAfter,
	}
	scrubbed := s.All(strings.ToValidUTF8(string(body), ""))
	e.Body = apiclient.Snippet([]byte(scrubbed), maxBodySnippet)
	e.Message = apiclient.MessageOr(oneLine(s.Secrets(errorMessage(body)), maxMessageChars), e.Body, maxMessageChars)
	return e
}

// errorMessage digs the explanation out of an error body of any of the
// shapes Affinity (or a proxy in front of it) may send. It returns "" for a
// body that is not JSON with a message, so the caller falls back to a
// snippet of the text.
func errorMessage(body []byte) string {
	trimmed := strings.TrimSpace(string(body))
	if trimmed == "" {
		return ""
	}
	var v any
	if json.Unmarshal([]byte(trimmed), &v) != nil {
		if looksLikeHTML(trimmed) {
			return ""
		}
		return trimmed // plain text, e.g. "Unauthorized"
	}
	return messageFrom(v, 0)
}

// messageFrom finds a message in a decoded JSON value: errors[] (objects or
// strings, joined with "; "), then "message", then "error" (a string or an
// object holding a message), then "detail".
func messageFrom(v any, depth int) string {
	if depth > 3 {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	case []any:
		var parts []string
		for _, item := range x {
			if m := messageFrom(item, depth+1); m != "" {
				parts = append(parts, m)
			}
		}
		return strings.Join(parts, "; ")
	case map[string]any:
		for _, key := range []string{"errors", "message", "error", "detail", "msg"} {
			if inner, ok := x[key]; ok {
				if m := messageFrom(inner, depth+1); m != "" {
					return m
				}
			}
		}
	}
	return ""
}

func looksLikeHTML(s string) bool {
	l := strings.ToLower(s[:min(len(s), 64)])
	return strings.HasPrefix(l, "<!doctype html") || strings.HasPrefix(l, "<html")
}

// newScrubber returns the redactor for the API key in every form a request
// carries it: as is (Bearer) and as the Basic credentials ":key" in base64.
func newScrubber(key string) *apiclient.Redactor {
	if key == "" {
		return apiclient.NewRedactor()
	}
	return apiclient.NewRedactor(key,
		base64.StdEncoding.EncodeToString([]byte(":"+key)),
		base64.URLEncoding.EncodeToString([]byte(":"+key)))
}

// oneLine collapses whitespace and control characters so an error is always
// a single readable line, and caps its length.
func oneLine(s string, n int) string { return apiclient.OneLine(s, n) }

// kindErrorf formats like fmt.Errorf (%w allowed) and marks the result with
// kind for errors.Is without repeating kind's text, so a labelled error reads
// "affinity: get webhook 7: unexpected response: …" rather than naming the
// package twice.
func kindErrorf(kind error, format string, args ...any) error {
	return apiclient.Mark(kind, fmt.Errorf(format, args...))
}
