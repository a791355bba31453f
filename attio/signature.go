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

// DefaultTolerance is how far an X-Attio-Timestamp may be from now, either way.
const DefaultTolerance = 5 * time.Minute

// Verification errors. All but ErrNoSecrets wrap ErrVerification, so a
// receiver can answer 401 for errors.Is(err, ErrVerification) except
// ErrTooOld and ErrTooNew, which Verify returns only for a signature that is
// authentic (the window is checked after the signature), so the delivery
// can be kept as a rejection.
var (
	ErrVerification = errors.New("attio: signature verification failed")
	ErrNotSigned    = fmt.Errorf("%w: no %s or %s header", ErrVerification, HeaderSignature, HeaderSignatureLegacy)
	ErrBadSignature = fmt.Errorf("%w: signature does not match", ErrVerification)
	ErrTooOld       = fmt.Errorf("%w: timestamp too old", ErrVerification)
	ErrTooNew       = fmt.Errorf("%w: timestamp too far in the future", ErrVerification)
	// ErrNoSecrets is a configuration error: nothing to verify against.
	ErrNoSecrets = errors.New("attio: no webhook secrets to verify with")
)

type verifyConfig struct {
	tolerance time.Duration
	now       func() time.Time
}

// VerifyOption configures Verify.
type VerifyOption func(*verifyConfig)

// WithTolerance sets how far X-Attio-Timestamp may be from now, either way
// (default DefaultTolerance). It applies only to the timestamped variant.
func WithTolerance(d time.Duration) VerifyOption {
	return func(c *verifyConfig) { c.tolerance = d }
}

// WithNow replaces the clock, for tests.
func WithNow(now func() time.Time) VerifyOption {
	return func(c *verifyConfig) { c.now = now }
}

// Verify checks that body was signed by Attio with one of secrets (several
// are accepted at once while a webhook's secret is being rotated).
//
// The signature is Attio-Signature (or the identical X-Attio-Signature):
// the hex HMAC-SHA256 of the raw body keyed with the secret's bytes; no
// timestamp is signed. When X-Attio-Timestamp is present, a signature over
// timestamp + "." + body is accepted too, and only if the timestamp (Unix
// seconds) is within the tolerance of now; otherwise ErrTooOld or ErrTooNew.
// The plain signature is accepted whatever that header says: it does not
// cover the header, so checking the header would not add any protection.
// Replays are handled by deduplication on Idempotency-Key, not here.
//
// Every candidate is compared with every secret in constant time
// (hmac.Equal), without stopping at the first match. Whitespace around the
// header value is ignored. Hex is compared as decoded bytes, so upper-case
// hex is accepted: the case of hex digits carries no information about the
// MAC, and refusing it would only break deliveries through proxies that
// normalise headers, without making forgery any harder.
func Verify(body []byte, h http.Header, secrets []string, opts ...VerifyOption) error {
	cfg := verifyConfig{tolerance: DefaultTolerance, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
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
		now := cfg.now().Unix()
		tol := int64(cfg.tolerance / time.Second)
		switch { // written so that no extreme timestamp can overflow
		case ts < now-tol:
			return ErrTooOld
		case ts > now+tol:
			return ErrTooNew
		}
		return nil
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
