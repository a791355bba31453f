package apiclient

import (
	"regexp"
	"strings"
	"unicode"
)

// OneLine collapses whitespace and control characters so an error is always
// a single readable line, and caps it at n runes (marking the cut with "…").
func OneLine(s string, n int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}

// Snippet is at most the first n bytes of b as valid UTF-8 (a rune cut in
// two, or any invalid byte, is dropped).
func Snippet(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return strings.ToValidUTF8(string(b), "")
}

// MessageOr returns message, or when it is empty a message made from the
// body snippet: "empty response body" or "unexpected response: <text>", on
// one line of at most n runes of text. An API error then always says
// something, even for an HTML page from a proxy.
func MessageOr(message, body string, n int) string {
	if message != "" {
		return message
	}
	if text := OneLine(body, n); text != "" {
		return "unexpected response: " + text
	}
	return "empty response body"
}

// Redacted replaces a secret in text kept in errors.
const Redacted = "[redacted]"

// Redactor removes secrets, in every form a request carries them (the key,
// a Basic auth encoding of it, …), from text kept in errors. The zero value
// removes nothing.
type Redactor struct {
	forms []string
}

// NewRedactor returns a redactor for the given forms of a secret; empty
// forms are ignored.
func NewRedactor(forms ...string) *Redactor {
	r := &Redactor{}
	for _, f := range forms {
		if f != "" {
			r.forms = append(r.forms, f)
		}
	}
	return r
}

// Secrets replaces the secret's exact forms only, which keeps a message
// readable.
func (r *Redactor) Secrets(text string) string {
	for _, f := range r.forms {
		text = strings.ReplaceAll(text, f, Redacted)
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

// All replaces the secret's forms and anything that looks like a credential
// (for raw body snippets, which may echo someone else's request).
func (r *Redactor) All(text string) string {
	text = r.Secrets(text)
	text = authHeaderRE.ReplaceAllString(text, "${1}${2}"+Redacted)
	text = secretPairRE.ReplaceAllString(text, "${1}"+Redacted)
	return longTokenRE.ReplaceAllString(text, Redacted)
}

// Wrap hides the secret in err's text while keeping err for errors.Is and
// errors.As (context.Canceled, *url.Error, …). Wrap(nil) is nil.
func (r *Redactor) Wrap(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: r.Secrets(err.Error()), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
