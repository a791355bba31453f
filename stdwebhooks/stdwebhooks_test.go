package stdwebhooks

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The specification's published test vector.
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS     = 1614265330
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func vecHeaders(sig string) http.Header { return headers(vecID, "1614265330", sig) }

// headers sets only the non-empty values, with canonical keys.
func headers(id, ts, sig string) http.Header {
	h := http.Header{}
	for k, v := range map[string]string{HeaderID: id, HeaderTimestamp: ts, HeaderSignature: sig} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return h
}

func atVector() VerifierOption { return WithNow(func() time.Time { return time.Unix(vecTS, 0) }) }

func TestSignMatchesSpecVector(t *testing.T) {
	s, err := NewSigner(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(vecID, time.Unix(vecTS, 0), []byte(vecBody)); got != vecSig {
		t.Fatalf("Sign = %s, want %s", got, vecSig)
	}
}

func TestVerify(t *testing.T) {
	other := NewSecret()
	cases := []struct {
		name    string
		secrets []string
		body    string
		h       http.Header
		now     int64
		want    error
	}{
		{"spec vector", []string{vecSecret}, vecBody, vecHeaders(vecSig), vecTS, nil},
		{"rotation: second key matches", []string{other, vecSecret}, vecBody, vecHeaders(vecSig), vecTS, nil},
		{"several signatures, one valid", []string{vecSecret}, vecBody, vecHeaders("v1,Zm9v v1a,abc " + vecSig), vecTS, nil},
		{"tampered body", []string{vecSecret}, `{"test": 2432232315}`, vecHeaders(vecSig), vecTS, ErrBadSignature},
		{"wrong secret", []string{other}, vecBody, vecHeaders(vecSig), vecTS, ErrBadSignature},
		{"truncated signature", []string{vecSecret}, vecBody, vecHeaders(vecSig[:20]), vecTS, ErrBadSignature},
		{"unknown version only", []string{vecSecret}, vecBody, vecHeaders(strings.Replace(vecSig, "v1,", "v2,", 1)), vecTS, ErrBadSignature},
		{"too old", []string{vecSecret}, vecBody, vecHeaders(vecSig), vecTS + 301, ErrTooOld},
		{"too new", []string{vecSecret}, vecBody, vecHeaders(vecSig), vecTS - 301, ErrTooNew},
		{"stale and forged is bad, not old", []string{other}, vecBody, vecHeaders(vecSig), vecTS + 3600, ErrBadSignature},
		{"edge of window", []string{vecSecret}, vecBody, vecHeaders(vecSig), vecTS + 300, nil},
		{"missing signature", []string{vecSecret}, vecBody, headers(vecID, "1614265330", ""), vecTS, ErrMissingHeaders},
		{"bad timestamp", []string{vecSecret}, vecBody, headers(vecID, "16142.5", vecSig), vecTS, ErrInvalidTimestamp},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			v, err := NewVerifier(tc.secrets, WithNow(func() time.Time { return time.Unix(now, 0) }))
			if err != nil {
				t.Fatal(err)
			}
			err = v.Verify([]byte(tc.body), tc.h)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if err != nil && !errors.Is(err, ErrVerification) {
				t.Fatalf("%v does not wrap ErrVerification", err)
			}
		})
	}
}

func TestSignerRoundTrip(t *testing.T) {
	secret := NewSecret()
	s, err := NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h := http.Header{}
	s.SetHeaders(h, "evt_1", now, []byte(`{"a":1}`))
	v, err := NewVerifier([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify([]byte(`{"a":1}`), h); err != nil {
		t.Fatalf("own signature refused: %v", err)
	}
}

func TestInvalidSecrets(t *testing.T) {
	for _, s := range []string{"", "whsec_", "whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := NewVerifier([]string{s}); !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("%q: err = %v, want ErrInvalidSecret", s, err)
		}
	}
	if _, err := NewVerifier(nil); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("no secrets: err = %v", err)
	}
	// The bare base64 form (without the prefix) is accepted too.
	if _, err := NewSigner(strings.TrimPrefix(vecSecret, SecretPrefix)); err != nil {
		t.Errorf("bare base64 refused: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte(vecBody), vecID, "1614265330", vecSig)
	f.Add([]byte(""), "", "", "")
	f.Add([]byte("{}"), "id", "-1", "v1,,, v1")
	v, err := NewVerifier([]string{vecSecret}, atVector())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, id, ts, sig string) {
		err := v.Verify(body, headers(id, ts, sig))
		if err == nil && (string(body) != vecBody || id != vecID) {
			t.Fatalf("accepted a message that was not signed: %q %q", body, id)
		}
		if err != nil && !errors.Is(err, ErrVerification) {
			t.Fatalf("error %v does not wrap ErrVerification", err)
		}
	})
}
