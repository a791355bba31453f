// Package stdwebhooks signs and verifies webhooks with the Standard Webhooks
// scheme (https://www.standardwebhooks.com): headers webhook-id,
// webhook-timestamp and webhook-signature, where the signature is
// "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)) and the
// header may list several space-separated signatures during key rotation.
//
// crmhook uses it twice: to verify deliveries from generic sources, and to
// sign what its HTTP sink sends on.
package stdwebhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook/internal/timewindow"
)

// Header names defined by the specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a base64 secret in the specification's format.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a timestamp may be from now, on each side,
// unless options say otherwise.
const DefaultTolerance = 5 * time.Minute

// DefaultMaxBodyBytes is the largest body VerifyRequest reads unless
// WithMaxBodyBytes says otherwise (1 MiB).
const DefaultMaxBodyBytes = 1 << 20

// Errors returned by Verify. All of them wrap ErrVerification.
var (
	ErrVerification     = errors.New("stdwebhooks: verification failed")
	ErrMissingHeaders   = fmt.Errorf("%w: missing webhook-id, webhook-timestamp or webhook-signature", ErrVerification)
	ErrInvalidTimestamp = fmt.Errorf("%w: webhook-timestamp is not an integer", ErrVerification)
	ErrTooOld           = fmt.Errorf("%w: timestamp too old", ErrVerification)
	ErrTooNew           = fmt.Errorf("%w: timestamp too far in the future", ErrVerification)
	ErrBadSignature     = fmt.Errorf("%w: no signature matches", ErrVerification)
)

// Errors returned by VerifyRequest before the signature is looked at. They
// do not wrap ErrVerification.
var (
	// ErrMethodNotAllowed: the request is not a POST (answer 405 with
	// Allow: POST).
	ErrMethodNotAllowed = errors.New("stdwebhooks: method not allowed (want POST)")
	// ErrBodyTooLarge: the body is over the verifier's limit (answer 413).
	ErrBodyTooLarge = errors.New("stdwebhooks: request body too large")
	// ErrReadBody: the body could not be read whole (answer 400).
	ErrReadBody = errors.New("stdwebhooks: cannot read request body")
)

// ErrInvalidOption is returned by NewVerifier for an option with a value
// that means nothing, such as a zero or negative tolerance.
var ErrInvalidOption = errors.New("stdwebhooks: invalid verifier option")

// ErrInvalidSecret is returned for a secret that is not base64 (with or
// without the whsec_ prefix) or is too short to be safe.
var ErrInvalidSecret = errors.New("stdwebhooks: invalid secret")

// minKeyBytes is the smallest key accepted; the specification recommends 24 to 64.
const minKeyBytes = 16

// DecodeSecret turns "whsec_<base64>" (or bare base64) into key bytes.
func DecodeSecret(secret string) ([]byte, error) { return decodeSecret(secret, "") }

// decodeSecret is DecodeSecret with where ("secret 1: ") naming the secret
// in errors, after the package prefix. Errors never quote the secret.
func decodeSecret(secret, where string) ([]byte, error) {
	b64 := strings.TrimPrefix(secret, SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: %snot base64", ErrInvalidSecret, where)
	}
	if len(key) < minKeyBytes {
		return nil, fmt.Errorf("%w: %s%d bytes, want at least %d", ErrInvalidSecret, where, len(key), minKeyBytes)
	}
	return key, nil
}

// NewSecret returns a fresh random secret in whsec_ form (32 bytes of key).
func NewSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails on supported platforms
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

func sign(key []byte, id string, ts int64, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// Signer signs outgoing messages with one key.
type Signer struct{ key []byte }

// NewSigner returns a Signer for a whsec_ secret.
func NewSigner(secret string) (*Signer, error) {
	key, err := DecodeSecret(secret)
	if err != nil {
		return nil, err
	}
	return &Signer{key: key}, nil
}

// Sign returns the webhook-signature value ("v1,<base64>") for a message.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(sign(s.key, id, ts.Unix(), body))
}

// SetHeaders sets webhook-id, webhook-timestamp and webhook-signature on h.
func (s *Signer) SetHeaders(h http.Header, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, s.Sign(id, ts, body))
}

// Verifier checks incoming messages against one or more keys; several keys
// are active at once while a secret is being rotated.
type Verifier struct {
	keys [][]byte
	// The timestamp window and the clock (see package timewindow).
	win     timewindow.Window
	maxBody int64
	err     error // the first invalid option, returned by NewVerifier
}

// keep records err if it is the first invalid option.
func (v *Verifier) keep(err error) {
	if v.err == nil {
		v.err = err
	}
}

// VerifierOption configures a Verifier. When several set the same side of
// the timestamp window, the last one wins.
type VerifierOption func(*Verifier)

// WithTolerance sets how far the timestamp may be from now, on each side
// (default DefaultTolerance). d must be positive: NewVerifier refuses zero
// or a negative d with ErrInvalidOption. WithoutTolerance skips the window.
func WithTolerance(d time.Duration) VerifierOption {
	return func(v *Verifier) { v.keep(v.win.SetTolerance(d)) }
}

// WithMaxAge sets how far the timestamp may be in the past (default
// DefaultTolerance), leaving the future side as it is. d must be positive
// (else ErrInvalidOption); WithoutMaxAge skips this side.
func WithMaxAge(d time.Duration) VerifierOption {
	return func(v *Verifier) { v.keep(v.win.SetMaxAge(d)) }
}

// WithMaxFuture sets how far the timestamp may be in the future (default
// DefaultTolerance), leaving the past side as it is. d must be positive
// (else ErrInvalidOption); WithoutMaxFuture skips this side.
func WithMaxFuture(d time.Duration) VerifierOption {
	return func(v *Verifier) { v.keep(v.win.SetMaxFuture(d)) }
}

// WithoutTolerance skips the timestamp window on both sides: a message is
// accepted whatever its webhook-timestamp (which must still be an integer),
// as long as its signature verifies. (Stripe's
// ConstructEventIgnoringTolerance is the same idea.)
func WithoutTolerance() VerifierOption {
	return func(v *Verifier) { v.win.DisableTolerance() }
}

// WithoutMaxAge skips the past side of the window: a timestamp however old
// is accepted. The future side stays as it is.
func WithoutMaxAge() VerifierOption { return func(v *Verifier) { v.win.DisableMaxAge() } }

// WithoutMaxFuture skips the future side of the window: a timestamp however
// far ahead is accepted. The past side stays as it is.
func WithoutMaxFuture() VerifierOption { return func(v *Verifier) { v.win.DisableMaxFuture() } }

// WithMaxBodyBytes sets the largest body VerifyRequest reads (default
// DefaultMaxBodyBytes). n must be positive (else ErrInvalidOption).
func WithMaxBodyBytes(n int64) VerifierOption {
	return func(v *Verifier) {
		if n <= 0 {
			v.keep(v.win.Refuse("WithMaxBodyBytes(%d): the limit must be positive", n))
			return
		}
		v.maxBody = n
	}
}

// WithNow replaces the clock, for tests. NewVerifier refuses a nil clock
// with ErrInvalidOption.
func WithNow(now func() time.Time) VerifierOption {
	return func(v *Verifier) { v.keep(v.win.SetNow(now)) }
}

// NewVerifier returns a Verifier accepting a signature made with any of
// secrets. Nil options are skipped; an invalid one is refused with
// ErrInvalidOption, a bad secret with ErrInvalidSecret.
func NewVerifier(secrets []string, opts ...VerifierOption) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secrets", ErrInvalidSecret)
	}
	v := &Verifier{win: timewindow.New(DefaultTolerance, ErrInvalidOption), maxBody: DefaultMaxBodyBytes}
	for i, s := range secrets {
		key, err := decodeSecret(s, fmt.Sprintf("secret %d: ", i))
		if err != nil {
			return nil, err
		}
		v.keys = append(v.keys, key)
	}
	for _, o := range opts {
		if o != nil {
			o(v)
		}
	}
	if v.err != nil {
		return nil, v.err
	}
	return v, nil
}

// VerifyRequest checks one request and returns its verified body: the
// method must be POST (else ErrMethodNotAllowed), the body, read through
// http.MaxBytesReader, at most the verifier's limit (else ErrBodyTooLarge,
// or ErrReadBody when it cannot be read), and the headers and body must
// pass Verify. When the signature is authentic but the timestamp is outside
// the window, it returns the body together with ErrTooOld or ErrTooNew, so
// the caller may keep the message as a rejection; every other error comes
// with a nil body. The Content-Type is not checked: the scheme signs bytes,
// whatever they hold. The request body is consumed.
func (v *Verifier) VerifyRequest(r *http.Request) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil request", ErrReadBody)
	}
	if r.Method != http.MethodPost {
		return nil, ErrMethodNotAllowed
	}
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(nil, r.Body, v.maxBody))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return nil, fmt.Errorf("%w: the limit is %d bytes", ErrBodyTooLarge, v.maxBody)
			}
			return nil, fmt.Errorf("%w: %v", ErrReadBody, err)
		}
	}
	err := v.Verify(body, r.Header)
	if err != nil && !errors.Is(err, ErrTooOld) && !errors.Is(err, ErrTooNew) {
		return nil, err
	}
	return body, err
}

// Verify checks the headers and body of one message. Each v1 signature in
// the header is compared in constant time against every key, without
// stopping at the first match, and one match is enough. The timestamp
// window is checked after the signature: ErrTooOld and ErrTooNew mean the
// message is authentic.
func (v *Verifier) Verify(body []byte, h http.Header) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrInvalidTimestamp
	}
	expected := make([][]byte, len(v.keys))
	for i, key := range v.keys {
		expected[i] = sign(key, id, ts, body)
	}
	matched := false
	for _, entry := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue // other schemes (v1a asymmetric) are not ours to check
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		for _, want := range expected {
			// No early exit: the time taken does not tell which key matched.
			if hmac.Equal(got, want) {
				matched = true
			}
		}
	}
	if !matched {
		return ErrBadSignature
	}
	// The window is checked after the signature, so ErrTooOld and ErrTooNew
	// mean "authentic but stale": a receiver may keep such a message as a
	// rejection instead of dropping it.
	return v.win.Check(ts, v.win.Now()).Err(ErrTooOld, ErrTooNew)
}
