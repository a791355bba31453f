package affinity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Parse errors. Every error from Parse, ParseString and ParseMap wraps
// ErrParse. Malformed input also matches ErrInvalidJSON or ErrInvalidPayload
// (a missing key, through *MissingKeyError, ErrMissingKey too); a sent_at
// that is not a valid timestamp matches ErrInvalidSentAt and
// ErrInvalidPayload; a well-formed sent_at outside the replay window matches
// ErrTooOld or ErrTooNew, which both match ErrInvalidSentAt (and not
// ErrInvalidPayload: the payload itself is fine). Messages name keys, never
// values: payloads hold personal data.
var (
	ErrParse          = errors.New("affinity: cannot parse webhook payload")
	ErrInvalidJSON    = fmt.Errorf("%w: invalid JSON", ErrParse)
	ErrInvalidPayload = fmt.Errorf("%w: invalid payload", ErrParse)
	ErrMissingKey     = fmt.Errorf("%w: missing key", ErrInvalidPayload)
	ErrInvalidSentAt  = fmt.Errorf("%w: invalid sent_at", ErrParse)
	ErrTooOld         = fmt.Errorf("%w: too old", ErrInvalidSentAt)
	ErrTooNew         = fmt.Errorf("%w: too far in the future", ErrInvalidSentAt)
)

// MissingKeyError reports a required envelope key ("type", "body" or
// "sent_at") that is absent.
type MissingKeyError struct {
	Key string
}

func (e *MissingKeyError) Error() string {
	return ErrMissingKey.Error() + " " + strconv.Quote(e.Key)
}

// Is makes a *MissingKeyError match ErrMissingKey, ErrInvalidPayload and ErrParse.
func (e *MissingKeyError) Is(target error) bool {
	return target == ErrMissingKey || target == ErrInvalidPayload || target == ErrParse
}

// badSentAtError is a sent_at that is not a timestamp at all: it matches
// both ErrInvalidSentAt and ErrInvalidPayload.
type badSentAtError struct{ reason string }

func (e *badSentAtError) Error() string { return ErrInvalidSentAt.Error() + ": " + e.reason }

func (e *badSentAtError) Is(target error) bool {
	return target == ErrInvalidSentAt || target == ErrInvalidPayload || target == ErrParse
}

// Replay-window defaults of the SDK (seed 000's 5 minutes). The crmhook
// receiver configures its own, longer window for Affinity, whose retries
// last up to 10 hours.
const (
	DefaultMaxAge         = 300 * time.Second
	DefaultMaxFutureSkew  = 120 * time.Second
	maxSentAtUnix         = 253402300799 // 9999-12-31T23:59:59Z
	maxEnvelopeKeyInError = 64
)

// ParseOption configures Parse.
type ParseOption func(*parseConfig)

type parseConfig struct {
	now         func() time.Time
	maxAge      time.Duration
	checkAge    bool
	maxFuture   time.Duration
	checkFuture bool
}

func newParseConfig(opts []ParseOption) parseConfig {
	c := parseConfig{
		now:    time.Now,
		maxAge: DefaultMaxAge, checkAge: true,
		maxFuture: DefaultMaxFutureSkew, checkFuture: true,
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// WithNow sets the clock the replay window is checked against (tests,
// or a receiver that stamps arrival once). nil means time.Now.
func WithNow(now func() time.Time) ParseOption {
	return func(c *parseConfig) { c.now = now }
}

// WithMaxAge sets how old sent_at may be (default DefaultMaxAge). A
// negative d counts as 0.
func WithMaxAge(d time.Duration) ParseOption {
	return func(c *parseConfig) { c.maxAge, c.checkAge = max(d, 0), true }
}

// WithoutMaxAge switches the age check off.
func WithoutMaxAge() ParseOption {
	return func(c *parseConfig) { c.checkAge = false }
}

// WithMaxFutureSkew sets how far in the future sent_at may be, for clock
// skew (default DefaultMaxFutureSkew). A negative d counts as 0.
func WithMaxFutureSkew(d time.Duration) ParseOption {
	return func(c *parseConfig) { c.maxFuture, c.checkFuture = max(d, 0), true }
}

// WithoutMaxFutureSkew switches the future check off.
func WithoutMaxFutureSkew() ParseOption {
	return func(c *parseConfig) { c.checkFuture = false }
}

// envelopeKeys are the keys every delivery starts with, in this order.
var envelopeKeys = [3]string{"type", "body", "sent_at"}

// Parse parses a delivery as Affinity POSTs it. The rules:
//
//   - data is UTF-8 JSON holding exactly one object, with nothing after it
//     and no duplicate keys (ErrInvalidJSON, ErrInvalidPayload);
//   - the object starts with "type", "body", "sent_at", in that order;
//     other keys may follow them. A missing key is a *MissingKeyError, a key
//     out of order ErrInvalidPayload naming it;
//   - "type" is a non-empty string. Unknown types are kept, never refused;
//   - "body" is an object for the 29 known types. For sample.webhook and
//     unknown types it is kept whatever JSON value it is: refusing those
//     would make Affinity fail a subscription call (the probe) or retry for
//     10 hours and then disable the subscription (a new event type);
//   - "sent_at" is epoch seconds: an integer, an integral float (1.7e9; not
//     1.5) or a string of digits, from 0 up to the end of year 9999
//     (ErrInvalidSentAt);
//   - sent_at lies inside the replay window: at most DefaultMaxAge old and
//     DefaultMaxFutureSkew ahead of now, unless options say otherwise.
//
// When the replay window is the only problem, Parse returns the event AND
// an error matching ErrTooOld or ErrTooNew, so a receiver can keep the event
// as a rejection. Otherwise the event is nil whenever the error is not. Parse
// never panics.
func Parse(data []byte, opts ...ParseOption) (*Event, error) {
	cfg := newParseConfig(opts)
	ev, err := parseEnvelope(data)
	if err != nil {
		return nil, err
	}
	return ev, cfg.checkWindow(ev)
}

// ParseString is Parse for a string.
func ParseString(s string, opts ...ParseOption) (*Event, error) {
	return Parse([]byte(s), opts...)
}

// ParseMap parses an envelope that was already decoded into a map (by a
// framework, say). The map is re-encoded as JSON with "type", "body" and
// "sent_at" first and any other keys after them in sorted order, and then
// parsed by Parse's rules; Event.Raw is that encoding. A map has no key
// order, so the order check cannot catch anything here, and duplicate keys
// cannot exist. sent_at may be any Go number, json.Number or a digit string.
func ParseMap(m map[string]any, opts ...ParseOption) (*Event, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep strings as they were, as far as JSON allows
	extra := make([]string, 0, len(m))
	for k := range m {
		if !slices.Contains(envelopeKeys[:], k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	buf.WriteByte('{')
	first := true
	for _, k := range slices.Concat(envelopeKeys[:], extra) {
		v, ok := m[k]
		if !ok {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		_ = enc.Encode(k) // a string always encodes
		buf.Truncate(buf.Len() - 1)
		buf.WriteByte(':')
		if err := enc.Encode(v); err != nil {
			if k == "sent_at" {
				return nil, &badSentAtError{reason: "sent_at cannot be encoded as JSON"}
			}
			return nil, fmt.Errorf("%w: key %s cannot be encoded as JSON", ErrInvalidPayload, quoteEnvelopeKey(k))
		}
		buf.Truncate(buf.Len() - 1) // Encode ends values with a newline
	}
	buf.WriteByte('}')
	return Parse(buf.Bytes(), opts...)
}

// parseEnvelope applies every rule but the replay window.
func parseEnvelope(data []byte) (*Event, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrInvalidJSON)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrInvalidJSON)
	}
	// Validate the whole input first: syntax errors, trailing data and
	// excessive nesting are all caught here, with the decoder's offset.
	if !json.Valid(data) {
		var v json.RawMessage
		return nil, fmt.Errorf("%w: %s", ErrInvalidJSON, syntaxText(json.Unmarshal(data, &v)))
	}
	if jsonKind(data) != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalidPayload)
	}
	keys, fields, err := readEnvelope(data)
	if err != nil {
		return nil, err
	}
	for _, k := range envelopeKeys {
		if _, ok := fields[k]; !ok {
			return nil, &MissingKeyError{Key: k}
		}
	}
	for i, k := range envelopeKeys {
		if keys[i] != k {
			return nil, fmt.Errorf("%w: key %q out of order: an envelope starts with \"type\", \"body\", \"sent_at\", in that order", ErrInvalidPayload, k)
		}
	}

	ev := &Event{Raw: bytes.Clone(data)}
	rawType := fields["type"]
	var typ string
	if jsonKind(rawType) != '"' || json.Unmarshal(rawType, &typ) != nil {
		return nil, fmt.Errorf("%w: type must be a string", ErrInvalidPayload)
	}
	if typ == "" {
		return nil, fmt.Errorf("%w: type is empty", ErrInvalidPayload)
	}
	ev.Type = EventType(typ)

	body := fields["body"]
	if ev.Type.Known() && jsonKind(body) != '{' {
		return nil, fmt.Errorf("%w: body must be an object", ErrInvalidPayload)
	}
	ev.Body = bytes.Clone(body)

	sec, err := parseSentAt(fields["sent_at"])
	if err != nil {
		return nil, err
	}
	ev.SentAtUnix = sec
	ev.SentAt = time.Unix(sec, 0).UTC()
	return ev, nil
}

// readEnvelope reads the top-level object of valid JSON key by key, so the
// key order is known and duplicates can be refused (encoding/json silently
// keeps the last one).
func readEnvelope(data []byte) ([]string, map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // '{', checked by the caller
		return nil, nil, fmt.Errorf("%w: %s", ErrInvalidJSON, syntaxText(err))
	}
	var keys []string
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s", ErrInvalidJSON, syntaxText(err))
		}
		key, ok := tok.(string)
		if !ok { // impossible for valid JSON, but never trust
			return nil, nil, fmt.Errorf("%w: object key is not a string", ErrInvalidJSON)
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, nil, fmt.Errorf("%w: %s", ErrInvalidJSON, syntaxText(err))
		}
		if _, dup := fields[key]; dup {
			return nil, nil, fmt.Errorf("%w: duplicate key %s", ErrInvalidPayload, quoteEnvelopeKey(key))
		}
		fields[key] = val
		keys = append(keys, key)
	}
	return keys, fields, nil
}

// parseSentAt reads epoch seconds from a JSON integer, an integral JSON
// float, or a JSON string of ASCII digits.
func parseSentAt(raw json.RawMessage) (int64, error) {
	var text string
	switch k := jsonKind(raw); {
	case k == '"':
		if json.Unmarshal(raw, &text) != nil || text == "" || strings.TrimLeft(text, "0123456789") != "" {
			return 0, &badSentAtError{reason: "sent_at string must hold digits only"}
		}
	case k == '-' || (k >= '0' && k <= '9'):
		text = string(bytes.TrimSpace(raw))
	default:
		return 0, &badSentAtError{reason: "sent_at must be a number of seconds or a digit string"}
	}
	if strings.ContainsAny(text, ".eE") {
		f, err := strconv.ParseFloat(text, 64)
		switch {
		case err != nil || math.IsInf(f, 0) || math.IsNaN(f):
			return 0, &badSentAtError{reason: "sent_at is out of range"}
		case f != math.Trunc(f):
			return 0, &badSentAtError{reason: "sent_at must be a whole number of seconds"}
		case f < 0:
			return 0, &badSentAtError{reason: "sent_at is negative"}
		case f > maxSentAtUnix:
			return 0, &badSentAtError{reason: "sent_at is after year 9999"}
		}
		return int64(f), nil
	}
	n, err := strconv.ParseInt(text, 10, 64)
	switch {
	case err != nil && strings.HasPrefix(text, "-"):
		return 0, &badSentAtError{reason: "sent_at is negative"}
	case err != nil:
		return 0, &badSentAtError{reason: "sent_at is after year 9999"}
	case n < 0:
		return 0, &badSentAtError{reason: "sent_at is negative"}
	case n > maxSentAtUnix:
		return 0, &badSentAtError{reason: "sent_at is after year 9999"}
	}
	return n, nil
}

// checkWindow reports an event outside the replay window.
func (c parseConfig) checkWindow(ev *Event) error {
	now := c.now()
	// Two subtractions rather than one negated: Sub saturates at the
	// Duration limits (about 292 years), and negating the minimum overflows.
	if age := now.Sub(ev.SentAt); c.checkAge && age > c.maxAge {
		return fmt.Errorf("%w: sent %s ago, the maximum age is %s", ErrTooOld, age.Truncate(time.Second), c.maxAge)
	}
	if ahead := ev.SentAt.Sub(now); c.checkFuture && ahead > c.maxFuture {
		return fmt.Errorf("%w: sent %s ahead of now, the maximum skew is %s", ErrTooNew, ahead.Truncate(time.Second), c.maxFuture)
	}
	return nil
}

// syntaxText keeps the decoder's description (an offset and the offending
// character at most), which never reproduces payload values.
func syntaxText(err error) string {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "unexpected end of JSON input"
	default:
		return "malformed JSON"
	}
}

// quoteEnvelopeKey quotes a key for an error message, capped so a hostile
// payload cannot make errors huge.
func quoteEnvelopeKey(k string) string {
	if r := []rune(k); len(r) > maxEnvelopeKeyInError {
		k = string(r[:maxEnvelopeKeyInError]) + "…"
	}
	return strconv.Quote(k)
}
