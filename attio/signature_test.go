package attio

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	testSecret  = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
	otherSecret = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
)

// TestSignKnownVector pins Sign to an HMAC computed independently, so the
// signer and verifier cannot agree on a wrong scheme.
func TestSignKnownVector(t *testing.T) {
	body := []byte(`{"webhook_id":"w","events":[]}`)
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	if got := Sign(body, testSecret); got != want || strings.ToLower(got) != got || len(got) != 64 {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	// Fixed vector: HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog").
	if got := Sign([]byte("The quick brown fox jumps over the lazy dog"), "key"); got != "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8" {
		t.Fatalf("RFC vector: %s", got)
	}
	ts := time.Unix(1700000000, 0)
	m = hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte("1700000000." + string(body)))
	if got := SignWithTimestamp(body, testSecret, ts); got != hex.EncodeToString(m.Sum(nil)) {
		t.Fatalf("SignWithTimestamp = %s", got)
	}
	h := http.Header{}
	SignRequestHeaders(h, body, testSecret)
	if h.Get("Attio-Signature") != want || h.Get("X-Attio-Signature") != want {
		t.Fatalf("headers %v", h)
	}
}

func TestVerify(t *testing.T) {
	body := readFixture(t, "design.delivery.json")
	sig := Sign(body, testSecret)
	now := time.Unix(1700000000, 0)
	at := WithNow(func() time.Time { return now })
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	stamped := func(ts time.Time) http.Header {
		return hdr("Attio-Signature", SignWithTimestamp(body, testSecret, ts), "X-Attio-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	}
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-3] = ' '

	cases := []struct {
		name    string
		body    []byte
		h       http.Header
		secrets []string
		opts    []VerifyOption
		want    error
	}{
		{"valid", body, hdr("Attio-Signature", sig), []string{testSecret}, nil, nil},
		{"valid legacy header only", body, hdr("X-Attio-Signature", sig), []string{testSecret}, nil, nil},
		{"valid both headers", body, hdr("Attio-Signature", sig, "X-Attio-Signature", sig), []string{testSecret}, nil, nil},
		{"surrounding whitespace", body, hdr("Attio-Signature", "  "+sig+"\t"), []string{testSecret}, nil, nil},
		{"upper-cased hex is not Attio's lowercase signature", body, hdr("Attio-Signature", strings.ToUpper(sig)), []string{testSecret}, nil, ErrBadSignature},
		{"rotation: second secret matches", body, hdr("Attio-Signature", sig), []string{otherSecret, testSecret}, nil, nil},
		{"rotation: first secret matches", body, hdr("Attio-Signature", sig), []string{testSecret, otherSecret}, nil, nil},
		{"tampered body", tampered, hdr("Attio-Signature", sig), []string{testSecret}, nil, ErrBadSignature},
		{"wrong secret", body, hdr("Attio-Signature", sig), []string{otherSecret}, nil, ErrBadSignature},
		{"truncated", body, hdr("Attio-Signature", sig[:63]), []string{testSecret}, nil, ErrBadSignature},
		{"truncated even", body, hdr("Attio-Signature", sig[:62]), []string{testSecret}, nil, ErrBadSignature},
		{"extended", body, hdr("Attio-Signature", sig+"00"), []string{testSecret}, nil, ErrBadSignature},
		{"not hex", body, hdr("Attio-Signature", strings.Repeat("zz", 32)), []string{testSecret}, nil, ErrBadSignature},
		{"sha256= prefix", body, hdr("Attio-Signature", "sha256="+sig), []string{testSecret}, nil, ErrBadSignature},
		{"upper-cased wrong", body, hdr("Attio-Signature", strings.ToUpper(Sign(body, otherSecret))), []string{testSecret}, nil, ErrBadSignature},
		{"missing", body, hdr(), []string{testSecret}, nil, ErrNotSigned},
		{"blank header", body, hdr("Attio-Signature", "  "), []string{testSecret}, nil, ErrNotSigned},
		{"one wrong header, one right", body, hdr("Attio-Signature", Sign(body, otherSecret), "X-Attio-Signature", sig), []string{testSecret}, nil, nil},
		{"no secrets", body, hdr("Attio-Signature", sig), nil, nil, ErrNoSecrets},
		{"empty secret", body, hdr("Attio-Signature", Sign(body, "")), []string{""}, nil, ErrNoSecrets},
		{"timestamp variant in window", body, stamped(now.Add(-4 * time.Minute)), []string{testSecret}, []VerifyOption{at}, nil},
		{"timestamp variant slightly ahead", body, stamped(now.Add(4 * time.Minute)), []string{testSecret}, []VerifyOption{at}, nil},
		{"timestamp variant too old", body, stamped(now.Add(-6 * time.Minute)), []string{testSecret}, []VerifyOption{at}, ErrTooOld},
		{"timestamp variant too new", body, stamped(now.Add(6 * time.Minute)), []string{testSecret}, []VerifyOption{at}, ErrTooNew},
		{"timestamp variant, wider tolerance", body, stamped(now.Add(-6 * time.Minute)), []string{testSecret}, []VerifyOption{at, WithTolerance(10 * time.Minute)}, nil},
		{"timestamp variant, rotated secret", body, stamped(now), []string{otherSecret, testSecret}, []VerifyOption{at}, nil},
		{"timestamp variant, tampered timestamp", body,
			hdr("Attio-Signature", SignWithTimestamp(body, testSecret, now), "X-Attio-Timestamp", strconv.FormatInt(now.Unix()+1, 10)),
			[]string{testSecret}, []VerifyOption{at}, ErrBadSignature},
		{"timestamp variant, header dropped", body,
			hdr("Attio-Signature", SignWithTimestamp(body, testSecret, now)), []string{testSecret}, []VerifyOption{at}, ErrBadSignature},
		{"stale timestamp on a wrong signature is a bad signature, not too old", body,
			hdr("Attio-Signature", Sign(body, otherSecret), "X-Attio-Timestamp", strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)),
			[]string{testSecret}, []VerifyOption{at}, ErrBadSignature},
		{"plain signature with an unrelated old timestamp header", body,
			hdr("Attio-Signature", sig, "X-Attio-Timestamp", "1"), []string{testSecret}, []VerifyOption{at}, nil},
		{"non-integer timestamp", body,
			hdr("Attio-Signature", Sign(body, otherSecret), "X-Attio-Timestamp", "yesterday"), []string{testSecret}, []VerifyOption{at}, ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.body, tc.h, tc.secrets, tc.opts...)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want != ErrNoSecrets && !errors.Is(err, ErrVerification) {
				t.Errorf("%v does not wrap ErrVerification", err)
			}
			for _, s := range []string{testSecret, otherSecret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	body := []byte(`{"webhook_id":"w","events":[{"event_type":"record.created","id":{}}]}`)
	f.Add(body, Sign(body, testSecret), "", testSecret)
	f.Add(body, strings.ToUpper(Sign(body, testSecret)), "1700000000", testSecret)
	f.Add([]byte{}, "", "", "")
	f.Add([]byte("x"), "zz", "-9223372036854775808", "k")
	f.Add([]byte("x"), SignWithTimestamp([]byte("x"), "k", time.Unix(9223372036, 0)), "9223372036", "k")
	f.Fuzz(func(t *testing.T, body []byte, sig, ts, secret string) {
		h := http.Header{}
		h.Set("Attio-Signature", sig)
		if ts != "" {
			h.Set("X-Attio-Timestamp", ts)
		}
		err := Verify(body, h, []string{secret}) // must never panic
		if err != nil && !errors.Is(err, ErrVerification) && !errors.Is(err, ErrNoSecrets) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if secret == "" {
			return
		}
		// Whatever the body, a signature made by Sign verifies, and fails
		// against a different secret.
		good := http.Header{}
		SignRequestHeaders(good, body, secret)
		if err := Verify(body, good, []string{secret}); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if err := Verify(body, good, []string{secret + "x"}); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("other secret accepted: %v", err)
		}
	})
}
