package attio

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook/internal/timewindow"
)

// Signature headers. Attio sends both, with identical values, so that either
// survives HTTP stacks that drop or rename one.
const (
	HeaderSignature       = "Attio-Signature"
	HeaderSignatureLegacy = "X-Attio-Signature"
	// HeaderTimestamp is not sent by Attio today. Some integration guides
	// describe a scheme signing timestamp + "." + body; Verify accepts it
	// when this header is present (see Verify).
	HeaderTimestamp = "X-Attio-Timestamp"
	// HeaderIdempotencyKey is the same on every retry of one message.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// DefaultTolerance is how far an X-Attio-Timestamp may be from now, on each
// side, unless options say otherwise.
const DefaultTolerance = 5 * time.Minute

// Verification errors. All but ErrNoSecrets and ErrInvalidOption wrap
// ErrVerification, so a receiver can answer 401 for errors.Is(err,
// ErrVerification) except ErrTooOld and ErrTooNew, which Verify returns only
// for a signature that is authentic (the window is checked after the
// signature), so the delivery can be kept as a rejection.
var (
	ErrVerification = errors.New("attio: signature verification failed")
	ErrNotSigned    = fmt.Errorf("%w: no %s or %s header", ErrVerification, HeaderSignature, HeaderSignatureLegacy)
	ErrBadSignature = fmt.Errorf("%w: signature does not match", ErrVerification)
	ErrTooOld       = fmt.Errorf("%w: timestamp too old", ErrVerification)
	ErrTooNew       = fmt.Errorf("%w: timestamp too far in the future", ErrVerification)
	// ErrNoSecrets is a configuration error: nothing to verify against.
	ErrNoSecrets = errors.New("attio: no webhook secrets to verify with")
	// ErrInvalidOption is a configuration error: an option with a value
	// that means nothing, such as a zero or negative tolerance. Verify and
	// ParseRequest return it before looking at the request; NewHandler
	// returns it too (and for a nil router).
	ErrInvalidOption = errors.New("attio: invalid option")
)

// verifyConfig is what the options set. The timestamp window and the
// clock are in win (see package timewindow).
type verifyConfig struct {
	win     timewindow.Window
	maxBody int64 // ParseRequest and Handler only
	err     error // the first invalid option
}

// keep records err if it is the first invalid option.
func (c *verifyConfig) keep(err error) {
	if c.err == nil {
		c.err = err
	}
}

// newVerifyConfig applies opts over the defaults, skipping nil options.
func newVerifyConfig(opts []VerifyOption) (verifyConfig, error) {
	cfg := verifyConfig{win: timewindow.New(DefaultTolerance, ErrInvalidOption), maxBody: DefaultMaxBodyBytes}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return cfg, cfg.err
}

// VerifyOption configures Verify, ParseRequest and Handler. The window
// options apply only to the timestamped variant (see Verify); when several
// set the same side of the window, the last one wins.
type VerifyOption func(*verifyConfig)

// WithTolerance sets how far X-Attio-Timestamp may be from now, on each
// side (default DefaultTolerance). d must be positive: a zero or negative
// tolerance makes Verify return ErrInvalidOption. Use WithoutTolerance to
// skip the window.
func WithTolerance(d time.Duration) VerifyOption {
	return func(c *verifyConfig) { c.keep(c.win.SetTolerance(d)) }
}

// WithMaxAge sets how far X-Attio-Timestamp may be in the past (default
// DefaultTolerance), leaving the future side as it is. d must be positive
// (else ErrInvalidOption); WithoutMaxAge skips this side.
func WithMaxAge(d time.Duration) VerifyOption {
	return func(c *verifyConfig) { c.keep(c.win.SetMaxAge(d)) }
}

// WithMaxFuture sets how far X-Attio-Timestamp may be in the future
// (default DefaultTolerance), leaving the past side as it is. d must be
// positive (else ErrInvalidOption); WithoutMaxFuture skips this side.
func WithMaxFuture(d time.Duration) VerifyOption {
	return func(c *verifyConfig) { c.keep(c.win.SetMaxFuture(d)) }
}

// WithoutTolerance skips the timestamp window on both sides: a timestamped
// signature is accepted whatever its X-Attio-Timestamp, as long as the
// signature itself verifies. (Stripe's ConstructEventIgnoringTolerance is
// the same idea.)
func WithoutTolerance() VerifyOption {
	return func(c *verifyConfig) { c.win.DisableTolerance() }
}

// WithoutMaxAge skips the past side of the window: a timestamp however old
// is accepted. The future side stays as it is.
func WithoutMaxAge() VerifyOption {
	return func(c *verifyConfig) { c.win.DisableMaxAge() }
}

// WithoutMaxFuture skips the future side of the window: a timestamp however
// far ahead is accepted. The past side stays as it is.
func WithoutMaxFuture() VerifyOption {
	return func(c *verifyConfig) { c.win.DisableMaxFuture() }
}

// WithMaxBodyBytes sets the largest body ParseRequest and Handler read
// (default DefaultMaxBodyBytes); Verify, which is given the body, ignores
// it. n must be positive (else ErrInvalidOption).
func WithMaxBodyBytes(n int64) VerifyOption {
	return func(c *verifyConfig) {
		if n <= 0 {
			c.keep(c.win.Refuse("WithMaxBodyBytes(%d): the limit must be positive", n))
			return
		}
		c.maxBody = n
	}
}

// WithNow replaces the clock, for tests. A nil clock makes Verify return
// ErrInvalidOption.
func WithNow(now func() time.Time) VerifyOption {
	return func(c *verifyConfig) { c.keep(c.win.SetNow(now)) }
}

// Verify checks that body was signed by Attio with one of secrets (several
// are accepted at once while a webhook's secret is being rotated). Nil
// options are skipped; an invalid one makes Verify return ErrInvalidOption
// without looking at the request.
//
// The signature is Attio-Signature (or the identical X-Attio-Signature):
// the hex HMAC-SHA256 of the raw body keyed with the secret's bytes; no
// timestamp is signed. When X-Attio-Timestamp is present, a signature over
// timestamp + "." + body is accepted too, and only if the timestamp (Unix
// seconds) is within the window: at most DefaultTolerance (or the
// configured bound) in the past, else ErrTooOld, and in the future, else
// ErrTooNew; WithoutTolerance, WithoutMaxAge and WithoutMaxFuture skip a
// side. The plain signature is accepted whatever that header says: it does
// not cover the header, so checking the header would not add any
// protection. Replays are handled by deduplication on Idempotency-Key, not
// here.
//
// Each value of either header, with surrounding whitespace trimmed, is a
// candidate, and is considered only if it is exactly 64 lowercase hex
// digits, which is what Attio sends: upper- or mixed-case hex, a prefix
// such as "sha256=", or any other length never matches (ErrBadSignature).
// Every candidate is compared with every secret in constant time
// (hmac.Equal), without stopping at the first match.
func Verify(body []byte, h http.Header, secrets []string, opts ...VerifyOption) error {
	cfg, err := newVerifyConfig(opts)
	if err != nil {
		return err
	}
	return cfg.verify(body, h, secrets)
}

// verify is Verify with the options applied (and valid).
func (cfg *verifyConfig) verify(body []byte, h http.Header, secrets []string) error {
	keys := make([][]byte, 0, len(secrets))
	for i, s := range secrets {
		if s == "" {
			return fmt.Errorf("%w: secret %d is empty", ErrNoSecrets, i)
		}
		keys = append(keys, []byte(s))
	}
	if len(keys) == 0 {
		return ErrNoSecrets
	}

	var sigs [][]byte
	seen := 0
	for _, name := range []string{HeaderSignature, HeaderSignatureLegacy} {
		for _, v := range h.Values(name) {
			v = strings.TrimSpace(v)
			if v == "" {
				continue
			}
			seen++
			// Attio sends lowercase hex; anything else is not its signature.
			if v != strings.ToLower(v) {
				continue
			}
			if mac, err := hex.DecodeString(v); err == nil && len(mac) == sha256.Size {
				sigs = append(sigs, mac)
			}
		}
	}
	if seen == 0 {
		return ErrNotSigned
	}

	tsText := strings.TrimSpace(h.Get(HeaderTimestamp))
	var ts int64
	hasTS := false
	if tsText != "" {
		if n, err := strconv.ParseInt(tsText, 10, 64); err == nil {
			ts, hasTS = n, true
		}
	}

	plainOK, stampedOK := 0, 0
	for _, key := range keys {
		plain := computeMAC(key, nil, body)
		var stamped []byte
		if hasTS {
			stamped = computeMAC(key, []byte(tsText+"."), body)
		}
		for _, sig := range sigs {
			plainOK += boolInt(hmac.Equal(sig, plain))
			if hasTS {
				stampedOK += boolInt(hmac.Equal(sig, stamped))
			}
		}
	}
	switch {
	case plainOK > 0:
		return nil
	case stampedOK > 0:
		return cfg.win.Check(ts, cfg.win.Now()).Err(ErrTooOld, ErrTooNew)
	case tsText != "" && !hasTS:
		return fmt.Errorf("%w (and %s is not an integer)", ErrBadSignature, HeaderTimestamp)
	default:
		return ErrBadSignature
	}
}

func computeMAC(key, prefix, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(prefix)
	m.Write(body)
	return m.Sum(nil)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Sign returns the Attio-Signature value for body: lowercase hex
// HMAC-SHA256 keyed with secret. For tests and simulators.
func Sign(body []byte, secret string) string {
	return hex.EncodeToString(computeMAC([]byte(secret), nil, body))
}

// SignWithTimestamp returns the signature of the timestamped variant:
// HMAC-SHA256 of "<unix seconds>.<body>". Send it with X-Attio-Timestamp set
// to strconv.FormatInt(ts.Unix(), 10).
func SignWithTimestamp(body []byte, secret string, ts time.Time) string {
	prefix := strconv.FormatInt(ts.Unix(), 10) + "."
	return hex.EncodeToString(computeMAC([]byte(secret), []byte(prefix), body))
}

// SignRequestHeaders sets Attio-Signature and X-Attio-Signature on h the way
// Attio does. For tests and simulators.
func SignRequestHeaders(h http.Header, body []byte, secret string) {
	sig := Sign(body, secret)
	h.Set(HeaderSignature, sig)
	h.Set(HeaderSignatureLegacy, sig)
}
