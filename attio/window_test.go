package attio

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stampedHeader signs body the timestamped way at ts.
func stampedHeader(body []byte, secret string, ts time.Time) http.Header {
	h := http.Header{}
	h.Set(HeaderSignature, SignWithTimestamp(body, secret, ts))
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	return h
}

// "Off" is its own option: WithoutTolerance skips the window and still
// checks the signature.
func TestVerifyWithoutTolerance(t *testing.T) {
	body := []byte(`{"webhook_id":"w","events":[]}`)
	now := time.Unix(1700000000, 0)
	at := WithNow(func() time.Time { return now })
	for _, ts := range []time.Time{now.Add(-10 * time.Second), now.Add(-30 * 24 * time.Hour), now.Add(365 * 24 * time.Hour), time.Unix(0, 0)} {
		if err := Verify(body, stampedHeader(body, testSecret, ts), []string{testSecret}, at, WithoutTolerance()); err != nil {
			t.Errorf("timestamp %v: %v", ts, err)
		}
	}
	// Still a signature check.
	if err := Verify(body, stampedHeader(body, otherSecret, now), []string{testSecret}, at, WithoutTolerance()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong secret: %v", err)
	}
	// A later WithTolerance turns the window back on.
	if err := Verify(body, stampedHeader(body, testSecret, now.Add(-time.Hour)), []string{testSecret}, at, WithoutTolerance(), WithTolerance(time.Minute)); !errors.Is(err, ErrTooOld) {
		t.Errorf("re-enabled window: %v", err)
	}
}

// A zero or negative duration is refused, never read as "off" nor as
// "reject everything".
func TestVerifyRefusesNonPositiveBounds(t *testing.T) {
	body := []byte(`{}`)
	h := http.Header{}
	SignRequestHeaders(h, body, testSecret)
	for name, opt := range map[string]VerifyOption{
		"zero tolerance":     WithTolerance(0),
		"negative tolerance": WithTolerance(-time.Second),
		"zero max age":       WithMaxAge(0),
		"negative max age":   WithMaxAge(-time.Minute),
		"zero max future":    WithMaxFuture(0),
		"nil clock":          WithNow(nil),
		"zero body limit":    WithMaxBodyBytes(0),
	} {
		t.Run(name, func(t *testing.T) {
			err := Verify(body, h, []string{testSecret}, opt)
			if !errors.Is(err, ErrInvalidOption) || errors.Is(err, ErrVerification) {
				t.Fatalf("err = %v, want ErrInvalidOption (and not a verification failure)", err)
			}
			if !strings.HasPrefix(err.Error(), "attio: invalid option: With") {
				t.Errorf("message %q", err)
			}
			if _, err := ParseRequest(httptest.NewRequest(http.MethodPost, "/", nil), []string{testSecret}, opt); !errors.Is(err, ErrInvalidOption) {
				t.Errorf("ParseRequest: %v", err)
			}
			if _, err := NewHandler([]string{testSecret}, NewRouter(), WithVerifyOptions(opt)); !errors.Is(err, ErrInvalidOption) {
				t.Errorf("NewHandler: %v", err)
			}
		})
	}
	// The old failure: a zero tolerance made a 10 s old timestamp fail.
	now := time.Unix(1700000000, 0)
	stale := stampedHeader(body, testSecret, now.Add(-10*time.Second))
	if err := Verify(body, stale, []string{testSecret}, WithNow(func() time.Time { return now }), WithTolerance(0)); errors.Is(err, ErrTooOld) {
		t.Errorf("zero tolerance still means reject: %v", err)
	}
}

// Each side of the window has its own bound and its own "off".
func TestVerifySeparateBounds(t *testing.T) {
	body := []byte(`{}`)
	now := time.Unix(1700000000, 0)
	at := WithNow(func() time.Time { return now })
	cases := []struct {
		name string
		ts   time.Time
		opts []VerifyOption
		want error
	}{
		{"old within max age", now.Add(-11 * time.Hour), []VerifyOption{WithMaxAge(12 * time.Hour)}, nil},
		{"older than max age", now.Add(-13 * time.Hour), []VerifyOption{WithMaxAge(12 * time.Hour)}, ErrTooOld},
		{"future keeps its default", now.Add(6 * time.Minute), []VerifyOption{WithMaxAge(12 * time.Hour)}, ErrTooNew},
		{"future within max future", now.Add(90 * time.Second), []VerifyOption{WithMaxFuture(2 * time.Minute)}, nil},
		{"beyond max future", now.Add(3 * time.Minute), []VerifyOption{WithMaxFuture(2 * time.Minute)}, ErrTooNew},
		{"past keeps its default", now.Add(-6 * time.Minute), []VerifyOption{WithMaxFuture(time.Hour)}, ErrTooOld},
		{"no max age", now.Add(-1000 * time.Hour), []VerifyOption{WithoutMaxAge()}, nil},
		{"no max age, future still bounded", now.Add(time.Hour), []VerifyOption{WithoutMaxAge()}, ErrTooNew},
		{"no max future", now.Add(1000 * time.Hour), []VerifyOption{WithoutMaxFuture()}, nil},
		{"no max future, past still bounded", now.Add(-time.Hour), []VerifyOption{WithoutMaxFuture()}, ErrTooOld},
		{"sub-second bound rounds up", now.Add(-time.Second), []VerifyOption{WithMaxAge(500 * time.Millisecond)}, nil},
		{"extreme past", time.Unix(-1<<40, 0), []VerifyOption{WithMaxAge(time.Duration(1<<63 - 1))}, ErrTooOld},
		{"extreme future", time.Unix(1<<40, 0), []VerifyOption{WithMaxFuture(time.Duration(1<<63 - 1))}, ErrTooNew},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(body, stampedHeader(body, testSecret, tc.ts), []string{testSecret}, append([]VerifyOption{at}, tc.opts...)...)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// Verify's documentation says what the code does about the hex case:
// lowercase only.
func TestVerifyDocMatchesHexRule(t *testing.T) {
	body := []byte(`{"webhook_id":"w","events":[]}`)
	sig := Sign(body, testSecret)
	mixed := strings.ToUpper(sig[:1]) + sig[1:]
	if mixed == sig {
		mixed = sig[:len(sig)-1] + strings.ToUpper(sig[len(sig)-1:])
	}
	for _, v := range []string{strings.ToUpper(sig), mixed} {
		h := http.Header{}
		h.Set(HeaderSignature, v)
		if err := Verify(body, h, []string{testSecret}); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s accepted: %v", v, err)
		}
	}
	h := http.Header{}
	h.Set(HeaderSignature, " "+sig+" ")
	if err := Verify(body, h, []string{testSecret}); err != nil {
		t.Errorf("lowercase with spaces: %v", err)
	}

	doc := funcDoc(t, "signature.go", "Verify")
	if !strings.Contains(doc, "lowercase hex") || !strings.Contains(doc, "upper- or mixed-case hex") {
		t.Errorf("Verify's doc does not state the lowercase-only rule:\n%s", doc)
	}
	if strings.Contains(doc, "upper-case hex is accepted") {
		t.Errorf("Verify's doc claims upper-case hex is accepted:\n%s", doc)
	}
}

// funcDoc returns the doc comment of a top-level function in file.
func funcDoc(t *testing.T, file, name string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == name && fn.Doc != nil {
			return strings.Join(strings.Fields(fn.Doc.Text()), " ")
		}
	}
	t.Fatalf("no doc for %s in %s", name, file)
	return ""
}
