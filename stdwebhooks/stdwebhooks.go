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
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names defined by the specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a base64 secret in the specification's format.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a timestamp may be from now, either way.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify. All of them wrap ErrVerification.
var (
	ErrVerification     = errors.New("stdwebhooks: verification failed")
	ErrMissingHeaders   = fmt.Errorf("%w: missing webhook-id, webhook-timestamp or webhook-signature", ErrVerification)
	ErrInvalidTimestamp = fmt.Errorf("%w: webhook-timestamp is not an integer", ErrVerification)
	ErrTooOld           = fmt.Errorf("%w: timestamp too old", ErrVerification)
	ErrTooNew           = fmt.Errorf("%w: timestamp too far in the future", ErrVerification)
	ErrBadSignature     = fmt.Errorf("%w: no signature matches", ErrVerification)
)

// ErrInvalidSecret is returned for a secret that is not base64 (with or
// without the whsec_ prefix) or is too short to be safe.
var ErrInvalidSecret = errors.New("stdwebhooks: invalid secret")

// minKeyBytes is the smallest key accepted; the specification recommends 24 to 64.
const minKeyBytes = 16

// DecodeSecret turns "whsec_<base64>" (or bare base64) into key bytes.
func DecodeSecret(secret string) ([]byte, error) {
	b64 := strings.TrimPrefix(secret, SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64", ErrInvalidSecret)
	}
	if len(key) < minKeyBytes {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrInvalidSecret, len(key), minKeyBytes)
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
	keys      [][]byte
	tolerance time.Duration
	now       func() time.Time
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithTolerance sets how far the timestamp may be from now, either way.
func WithTolerance(d time.Duration) VerifierOption { return func(v *Verifier) { v.tolerance = d } }

// WithNow replaces the clock, for tests.
func WithNow(now func() time.Time) VerifierOption { return func(v *Verifier) { v.now = now } }

// NewVerifier returns a Verifier accepting a signature made with any of secrets.
func NewVerifier(secrets []string, opts ...VerifierOption) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secrets", ErrInvalidSecret)
	}
	v := &Verifier{tolerance: DefaultTolerance, now: time.Now}
	for i, s := range secrets {
		key, err := DecodeSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i, err)
		}
		v.keys = append(v.keys, key)
	}
	for _, o := range opts {
		o(v)
	}
	return v, nil
}

// Verify checks the headers and body of one message. Each v1 signature in the header is compared
// in constant time against every key, and one match is enough.
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
	now := v.now().Unix()
	tol := int64(v.tolerance / time.Second)
	switch {
	case ts < now-tol:
		return ErrTooOld
	case ts > now+tol:
		return ErrTooNew
	}
	return nil
}
