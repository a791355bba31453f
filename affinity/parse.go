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

// Parse errors. Every error from Parse, ParseString and ParseMap about the
// payload wraps ErrParse. Malformed input also matches ErrInvalidJSON or
// ErrInvalidPayload (a missing key, through *MissingKeyError, ErrMissingKey
// too); a sent_at that is not a valid timestamp matches ErrInvalidSentAt and
// ErrInvalidPayload; a well-formed sent_at outside the replay window is a
// *StaleError matching ErrTooOld or ErrTooNew, which both match
// ErrInvalidSentAt (and not ErrInvalidPayload: the payload itself is fine).
// Messages name keys, never values: payloads hold personal data.
//
// A bad option (WithMaxAge(0), …) is not a payload error: it matches
// ErrInvalidOption, not ErrParse.
var (
	ErrParse          = errors.New("affinity: cannot parse webhook payload")
	ErrInvalidJSON    = fmt.Errorf("%w: invalid JSON", ErrParse)
	ErrInvalidPayload = fmt.Errorf("%w: invalid payload", ErrParse)
	ErrMissingKey     = fmt.Errorf("%w: missing key", ErrInvalidPayload)
	ErrInvalidSentAt  = fmt.Errorf("%w: invalid sent_at", ErrParse)
	ErrTooOld         = fmt.Errorf("%w: too old", ErrInvalidSentAt)
	ErrTooNew         = fmt.Errorf("%w: too far in the future", ErrInvalidSentAt)
)

// ErrInvalidOption is matched by the error Parse, ParseRequest and
// NewHandler return when given an option with a value that means nothing
// (a maximum age, skew or body size that is not positive, …). It does not
// match ErrParse: the delivery is not at fault.
var ErrInvalidOption = errors.New("affinity: invalid option")

// optionError is a refused option. Its message names the option and never
// the value given.
type optionError struct{ msg string }

func (e *optionError) Error() string        { return "affinity: " + e.msg }
func (e *optionError) Is(target error) bool { return target == ErrInvalidOption }

// StaleError is the error for a delivery that is well formed but whose
// sent_at lies outside the replay window. Parse returns it with a nil event;
// the event is here, for a receiver that keeps such deliveries as
// rejections an operator can release:
//
//	ev, err := affinity.Parse(body)
//	var stale *affinity.StaleError
//	if errors.As(err, &stale) {
//		keepAsRejection(stale.Event, err)
//	}
//
// It matches ErrTooOld or ErrTooNew, and through them ErrInvalidSentAt and
// ErrParse (never ErrInvalidPayload).
type StaleError struct {
	// Event is the parsed delivery, complete.
	Event *Event
	// Err wraps ErrTooOld or ErrTooNew and says by how much.
	Err error
}

func (e *StaleError) Error() string {
	if e.Err == nil {
		return ErrInvalidSentAt.Error()
	}
	return e.Err.Error()
}

// Unwrap returns Err, so errors.Is matches ErrTooOld or ErrTooNew,
// ErrInvalidSentAt and ErrParse.
func (e *StaleError) Unwrap() error { return e.Err }

// Is makes a StaleError without Err still match ErrInvalidSentAt and
// ErrParse.
func (e *StaleError) Is(target error) bool {
	return e.Err == nil && (target == ErrInvalidSentAt || target == ErrParse)
}

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

// The default replay window. Affinity retries a failed delivery with
// exponential backoff for up to 10 hours, and does not say whether a retry
// keeps the first sent_at: a window shorter than that would refuse the
// retries of an outage. 12 hours leaves a margin; 2 minutes of future skew
// absorbs clock drift between Affinity and the receiver.
const (
	DefaultMaxAge        = 12 * time.Hour
	DefaultMaxFutureSkew = 2 * time.Minute
)

const (
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
	maxBody     int64 // 0: Parse takes any size; ParseRequest uses DefaultMaxBodyBytes
	err         error // the first refused option
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

// refuse records the first invalid option.
func (c *parseConfig) refuse(msg string) {
	if c.err == nil {
		c.err = &optionError{msg: msg}
	}
}

// WithNow sets the clock the replay window is checked against (tests,
// or a receiver that stamps arrival once). nil means time.Now.
func WithNow(now func() time.Time) ParseOption {
	return func(c *parseConfig) { c.now = now }
}

// WithMaxAge sets how old sent_at may be (default DefaultMaxAge), e.g.
// WithMaxAge(5*time.Minute) for a tight window. d must be positive: zero
// or less never means "no limit" (that is WithoutMaxAge); Parse refuses it
// with an error matching ErrInvalidOption.
func WithMaxAge(d time.Duration) ParseOption {
	return func(c *parseConfig) {
		if d <= 0 {
			c.refuse("max age must be positive (WithoutMaxAge switches the check off)")
			return
		}
		c.maxAge, c.checkAge = d, true
	}
}

// WithoutMaxAge switches the age check off.
func WithoutMaxAge() ParseOption {
	return func(c *parseConfig) { c.checkAge = false }
}

// WithMaxFutureSkew sets how far in the future sent_at may be, for clock
// skew (default DefaultMaxFutureSkew). d must be positive: zero or less
// never means "no limit" (that is WithoutMaxFutureSkew); Parse refuses it
// with an error matching ErrInvalidOption.
func WithMaxFutureSkew(d time.Duration) ParseOption {
	return func(c *parseConfig) {
		if d <= 0 {
			c.refuse("max future skew must be positive (WithoutMaxFutureSkew switches the check off)")
			return
		}
		c.maxFuture, c.checkFuture = d, true
	}
}

// WithoutMaxFutureSkew switches the future check off.
func WithoutMaxFutureSkew() ParseOption {
	return func(c *parseConfig) { c.checkFuture = false }
}

// WithMaxBodyBytes sets the largest delivery accepted, in bytes. ParseRequest
// and Handler default to DefaultMaxBodyBytes; Parse has no limit unless
// given this option. A larger body is an error matching ErrBodyTooLarge. n
// must be positive (ErrInvalidOption otherwise).
func WithMaxBodyBytes(n int64) ParseOption {
	return func(c *parseConfig) {
		if n <= 0 {
			c.refuse("max body bytes must be positive")
			return
		}
		c.maxBody = n
	}
}

// envelopeKeys are the keys of every delivery. Their order does not matter.
var envelopeKeys = [3]string{"type", "body", "sent_at"}

// Parse parses a delivery as Affinity POSTs it. The rules:
//
//   - data is UTF-8 JSON holding exactly one object, with nothing after it
//     (ErrInvalidJSON, or ErrInvalidPayload for a value that is not an
//     object);
//   - the object holds "type", "body" and "sent_at", in any order, and may
//     hold other keys, which are kept in Raw (providers add fields). A
//     missing key is a *MissingKeyError;
//   - no key appears twice, and no key differs from "type", "body" or
//     "sent_at" only by case ("Type", "SENT_AT", …): encoding/json matches
//     keys case-insensitively and keeps the last duplicate, so a consumer
//     decoding Raw could read another type or body than the one routed here
//     (ErrInvalidPayload, naming the key);
//   - "type" is a non-empty string. Unknown types are kept, never refused;
//   - "body" is an object for the 29 event types whose bodies Affinity
//     documents. For smart_interaction_value.updated (undocumented body),
//     sample.webhook and unknown types it is kept whatever JSON value it is:
//     refusing those would make Affinity fail a subscription call (the
//     probe) or retry for 10 hours and then disable the subscription;
//   - "sent_at" is epoch seconds: an integer, an integral float (1.7e9; not
//     1.5) or a string of digits, from 0 up to the end of year 9999
//     (ErrInvalidSentAt);
//   - sent_at lies inside the replay window: at most DefaultMaxAge (12h) old
//     and DefaultMaxFutureSkew (2m) ahead of now, unless options say
//     otherwise.
//
// Parse returns an event or an error, never both. When the replay window is
// the only problem the error is a *StaleError that carries the event, so a
// receiver can keep it as a rejection (errors.As). Parse never panics.
func Parse(data []byte, opts ...ParseOption) (*Event, error) {
	cfg := newParseConfig(opts)
	if cfg.err != nil {
		return nil, cfg.err
	}
	return cfg.parse(data)
}

// parse is Parse with the options already applied (and valid).
func (c parseConfig) parse(data []byte) (*Event, error) {
	if c.maxBody > 0 && int64(len(data)) > c.maxBody {
		return nil, bodyTooLarge(c.maxBody)
	}
	ev, err := parseEnvelope(data)
	if err != nil {
		return nil, err
	}
	if err := c.checkWindow(ev); err != nil {
		return nil, &StaleError{Event: ev, Err: err}
	}
	return ev, nil
}

// ParseString is Parse for a string.
func ParseString(s string, opts ...ParseOption) (*Event, error) {
	return Parse([]byte(s), opts...)
}

// ParseMap parses an envelope that was already decoded into a map (by a
// framework, say). The map is re-encoded as JSON with "type", "body" and
// "sent_at" first and any other keys after them in sorted order, and then
// parsed by Parse's rules; Event.Raw is that encoding. A map cannot hold
// duplicate keys, but it can hold "type" and "Type": that is refused, as
// Parse refuses it. sent_at may be any Go number, json.Number or a digit
// string.
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
	fields, err := readEnvelope(data)
	if err != nil {
		return nil, err
	}
	for _, k := range envelopeKeys {
		if _, ok := fields[k]; !ok {
			return nil, &MissingKeyError{Key: k}
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
	if ev.Type.documentedBody() && jsonKind(body) != '{' {
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

// readEnvelope reads the top-level object of valid JSON key by key, so that
// duplicates and case variants of the envelope keys can be refused
// (encoding/json silently keeps the last duplicate and matches keys
// case-insensitively). Keys are compared after unescaping, so "typ\u0065"
// is "type".
func readEnvelope(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // '{', checked by the caller
		return nil, fmt.Errorf("%w: %s", ErrInvalidJSON, syntaxText(err))
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %s", ErrInvalidJSON, syntaxText(err))
		}
		key, ok := tok.(string)
		if !ok { // impossible for valid JSON, but never trust
			return nil, fmt.Errorf("%w: object key is not a string", ErrInvalidJSON)
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrInvalidJSON, syntaxText(err))
		}
		if _, dup := fields[key]; dup {
			return nil, fmt.Errorf("%w: duplicate key %s", ErrInvalidPayload, quoteEnvelopeKey(key))
		}
		if known, ok := caseVariantOf(key); ok {
			return nil, fmt.Errorf("%w: key %s differs from %q only by case", ErrInvalidPayload, quoteEnvelopeKey(key), known)
		}
		fields[key] = val
	}
	return fields, nil
}

// caseVariantOf reports the envelope key that key equals under Unicode case
// folding (what encoding/json uses to match keys) without being equal to it.
func caseVariantOf(key string) (string, bool) {
	for _, k := range envelopeKeys {
		if key != k && strings.EqualFold(key, k) {
			return k, true
		}
	}
	return "", false
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
