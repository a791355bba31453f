package stdwebhooks

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// at returns a clock fixed offset seconds after the spec vector's timestamp.
func at(offset int64) VerifierOption {
	return WithNow(func() time.Time { return time.Unix(vecTS+offset, 0) })
}

// "Off" is its own option: WithoutTolerance skips the window and still
// checks the signature.
func TestWithoutTolerance(t *testing.T) {
	for _, offset := range []int64{10, 3600, 30 * 86400, -365 * 86400} {
		v, err := NewVerifier([]string{vecSecret}, at(offset), WithoutTolerance())
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify([]byte(vecBody), vecHeaders(vecSig)); err != nil {
			t.Errorf("offset %d: %v", offset, err)
		}
		if err := v.Verify([]byte(vecBody+" "), vecHeaders(vecSig)); !errors.Is(err, ErrBadSignature) {
			t.Errorf("offset %d, tampered body: %v", offset, err)
		}
	}
}

// A zero or negative duration is refused by NewVerifier, never read as
// "off" nor as "reject everything".
func TestNewVerifierRefusesNonPositiveOptions(t *testing.T) {
	for name, opt := range map[string]VerifierOption{
		"zero tolerance":     WithTolerance(0),
		"negative tolerance": WithTolerance(-time.Minute),
		"zero max age":       WithMaxAge(0),
		"negative max age":   WithMaxAge(-1),
		"zero max future":    WithMaxFuture(0),
		"zero body limit":    WithMaxBodyBytes(0),
		"nil clock":          WithNow(nil),
	} {
		t.Run(name, func(t *testing.T) {
			v, err := NewVerifier([]string{vecSecret}, opt)
			if !errors.Is(err, ErrInvalidOption) || v != nil {
				t.Fatalf("NewVerifier = %v, %v; want ErrInvalidOption", v, err)
			}
			if !strings.HasPrefix(err.Error(), "stdwebhooks: invalid verifier option: With") {
				t.Errorf("message %q", err)
			}
		})
	}
}

// Each side of the window has its own bound and its own "off".
func TestSeparateBounds(t *testing.T) {
	cases := []struct {
		name   string
		offset int64 // now - timestamp, in seconds
		opts   []VerifierOption
		want   error
	}{
		{"old within max age", 11 * 3600, []VerifierOption{WithMaxAge(12 * time.Hour)}, nil},
		{"older than max age", 13 * 3600, []VerifierOption{WithMaxAge(12 * time.Hour)}, ErrTooOld},
		{"future keeps its default", -301, []VerifierOption{WithMaxAge(12 * time.Hour)}, ErrTooNew},
		{"within max future", -90, []VerifierOption{WithMaxFuture(2 * time.Minute)}, nil},
		{"beyond max future", -121, []VerifierOption{WithMaxFuture(2 * time.Minute)}, ErrTooNew},
		{"past keeps its default", 301, []VerifierOption{WithMaxFuture(time.Hour)}, ErrTooOld},
		{"no max age", 1000 * 3600, []VerifierOption{WithoutMaxAge()}, nil},
		{"no max age, future bounded", -3600, []VerifierOption{WithoutMaxAge()}, ErrTooNew},
		{"no max future", -1000 * 3600, []VerifierOption{WithoutMaxFuture()}, nil},
		{"no max future, past bounded", 3600, []VerifierOption{WithoutMaxFuture()}, ErrTooOld},
		{"tolerance after off turns it back on", 3600, []VerifierOption{WithoutTolerance(), WithTolerance(time.Minute)}, ErrTooOld},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier([]string{vecSecret}, append([]VerifierOption{at(tc.offset)}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			err = v.Verify([]byte(vecBody), vecHeaders(vecSig))
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewVerifierSkipsNilOptions(t *testing.T) {
	v, err := NewVerifier([]string{vecSecret}, nil, atVector(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify([]byte(vecBody), vecHeaders(vecSig)); err != nil {
		t.Error(err)
	}
}

// Secret errors name the secret's index after the package prefix, never
// the secret.
func TestSecretErrorsNamePackageFirst(t *testing.T) {
	_, err := NewVerifier([]string{vecSecret, "whsec_!!!"})
	if !errors.Is(err, ErrInvalidSecret) || !strings.HasPrefix(err.Error(), "stdwebhooks: invalid secret: secret 1: ") || strings.Contains(err.Error(), "!!!") {
		t.Errorf("err = %v", err)
	}
}

func vectorRequest(method, body string) *http.Request {
	r := httptest.NewRequest(method, "/hooks/generic", strings.NewReader(body))
	for k, v := range vecHeaders(vecSig) {
		r.Header[k] = v
	}
	r.Header.Set("Content-Type", "application/json")
	return r
}

func TestVerifyRequest(t *testing.T) {
	v, err := NewVerifier([]string{vecSecret}, atVector())
	if err != nil {
		t.Fatal(err)
	}
	body, err := v.VerifyRequest(vectorRequest(http.MethodPost, vecBody))
	if err != nil || string(body) != vecBody {
		t.Fatalf("VerifyRequest = %q, %v", body, err)
	}

	small, err := NewVerifier([]string{vecSecret}, atVector(), WithMaxBodyBytes(8))
	if err != nil {
		t.Fatal(err)
	}
	unreadable := vectorRequest(http.MethodPost, vecBody)
	unreadable.Body = io.NopCloser(iotest.ErrReader(io.ErrUnexpectedEOF))
	cases := []struct {
		name string
		v    *Verifier
		req  *http.Request
		want error
	}{
		{"GET", v, vectorRequest(http.MethodGet, ""), ErrMethodNotAllowed},
		{"over the limit", small, vectorRequest(http.MethodPost, vecBody), ErrBodyTooLarge},
		{"over the default 1 MiB", v, vectorRequest(http.MethodPost, strings.Repeat(" ", DefaultMaxBodyBytes+1)), ErrBodyTooLarge},
		{"unreadable", v, unreadable, ErrReadBody},
		{"tampered", v, vectorRequest(http.MethodPost, vecBody+" "), ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, err := tc.v.VerifyRequest(tc.req)
			if !errors.Is(err, tc.want) || body != nil {
				t.Fatalf("VerifyRequest = %q, %v; want %v", body, err, tc.want)
			}
			if tc.want != ErrBadSignature && errors.Is(err, ErrVerification) {
				t.Errorf("%v is not a verification failure", err)
			}
		})
	}

	// Authentic but stale: the body comes back with the error.
	late, err := NewVerifier([]string{vecSecret}, at(3600))
	if err != nil {
		t.Fatal(err)
	}
	body, err = late.VerifyRequest(vectorRequest(http.MethodPost, vecBody))
	if !errors.Is(err, ErrTooOld) || string(body) != vecBody {
		t.Errorf("stale: %q, %v", body, err)
	}
}
