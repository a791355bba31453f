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
	"unicode"
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
	// RequestID is the X-Request-Id header, worth quoting to Affinity support.
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
func newAPIError(resp *http.Response, body []byte, s *scrubber, now time.Time) *APIError {
	e := &APIError{
		StatusCode: resp.StatusCode,
		RequestID:  oneLine(s.key(resp.Header.Get("X-Request-Id")), 128),
		Response:   resp,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
	}
	scrubbed := s.all(strings.ToValidUTF8(string(body), ""))
	e.Body = truncateUTF8(scrubbed, maxBodySnippet)
	e.Message = oneLine(s.key(errorMessage(body)), maxMessageChars)
	if e.Message == "" {
		switch text := oneLine(e.Body, maxMessageChars); {
		case text == "":
			e.Message = "empty response body"
		default:
			e.Message = "unexpected response: " + text
		}
	}
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

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date. Past
// dates and junk give zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(24 * time.Hour / time.Second) // anything longer is nonsense
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// scrubber removes the API key, in every form a request carries it, from
// text kept in errors.
type scrubber struct {
	forms []string // the key, and its Basic (":key" base64) form
}

const redacted = "[redacted]"

func newScrubber(key string) *scrubber {
	s := &scrubber{}
	if key != "" {
		s.forms = append(s.forms, key,
			base64.StdEncoding.EncodeToString([]byte(":"+key)),
			base64.URLEncoding.EncodeToString([]byte(":"+key)))
	}
	return s
}

// key scrubs the API key's exact forms only (for messages: keeps them readable).
func (s *scrubber) key(text string) string {
	for _, f := range s.forms {
		text = strings.ReplaceAll(text, f, redacted)
	}
	return text
}

// Patterns of credentials in echoed text: auth headers, key=value pairs with
// a secret-sounding name, and long opaque tokens (API keys are long runs of
// letters and digits; nothing else in an error body needs 32 of them).
var (
	authHeaderRE = regexp.MustCompile(`(?i)\b(basic|bearer|token)(\s+)[A-Za-z0-9+/=._~-]{8,}`)
	secretPairRE = regexp.MustCompile(`(?i)((?:api[_-]?key|apikey|token|password|passwd|secret|authorization)["']?\s*[:=]\s*["']?)[^"'&\s,;}]+`)
	longTokenRE  = regexp.MustCompile(`[A-Za-z0-9_-]{32,}`)
)

// all scrubs the key and anything that looks like a credential (for Body).
func (s *scrubber) all(text string) string {
	text = s.key(text)
	text = authHeaderRE.ReplaceAllString(text, "${1}${2}"+redacted)
	text = secretPairRE.ReplaceAllString(text, "${1}"+redacted)
	return longTokenRE.ReplaceAllString(text, redacted)
}

// scrubbedError hides the API key in a transport error's text while keeping
// the original for errors.Is / errors.As (context.Canceled, *url.Error, …).
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

func (s *scrubber) wrap(err error) error {
	if err == nil {
		return nil
	}
	return &scrubbedError{msg: s.key(err.Error()), err: err}
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// oneLine collapses whitespace and control characters so an error is always
// a single readable line, and caps its length.
func oneLine(s string, n int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}

// kindError carries a sentinel for errors.Is without repeating the
// sentinel's text, so a labelled error reads "affinity: get webhook 7:
// unexpected response: …" rather than naming the package twice.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string        { return e.err.Error() }
func (e *kindError) Unwrap() error        { return e.err }
func (e *kindError) Is(target error) bool { return target == e.kind }

// kindErrorf formats like fmt.Errorf (%w allowed) and marks the result with kind.
func kindErrorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}
