package apiclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestOneLine(t *testing.T) {
	if got := OneLine(" a\n\tb\x00c  d ", 100); got != "a b c d" {
		t.Errorf("collapse: %q", got)
	}
	if got := OneLine("héllo world", 4); got != "héll…" {
		t.Errorf("cap: %q", got)
	}
}

func TestSnippet(t *testing.T) {
	if got := Snippet([]byte("héllo"), 2); got != "h" {
		t.Errorf("rune cut in two: %q", got)
	}
	if got := Snippet([]byte("ok\xff"), 10); got != "ok" {
		t.Errorf("invalid byte: %q", got)
	}
}

func TestMessageOr(t *testing.T) {
	if got := MessageOr("bad id", "<html>", 200); got != "bad id" {
		t.Errorf("message kept: %q", got)
	}
	if got := MessageOr("", "  \n", 200); got != "empty response body" {
		t.Errorf("empty: %q", got)
	}
	if got := MessageOr("", "<html>\n<b>oops</b>", 10); got != "unexpected response: <html> <b>…" {
		t.Errorf("snippet: %q", got)
	}
}

func TestRedactor(t *testing.T) {
	const key = "k3y-s3cr3t"
	basic := base64.StdEncoding.EncodeToString([]byte(":" + key))
	r := NewRedactor(key, basic, "")
	if got := r.Secrets("key " + key + " basic " + basic); got != "key [redacted] basic [redacted]" {
		t.Errorf("Secrets: %q", got)
	}
	// Secrets leaves other credential-looking text alone; All does not.
	other := `{"api_key":"abc","auth":"Bearer abcdefgh12","id":"` + strings.Repeat("x", 40) + `"}`
	if got := r.Secrets(other); got != other {
		t.Errorf("Secrets changed %q", got)
	}
	want := `{"api_key":"[redacted]","auth":"Bearer [redacted]","id":"[redacted]"}`
	if got := r.All(other); got != want {
		t.Errorf("All = %q, want %q", got, want)
	}
	// Empty forms and the zero value remove nothing (an empty form would
	// otherwise be replaced between every byte).
	if got := NewRedactor("").Secrets("abc"); got != "abc" {
		t.Errorf("empty form: %q", got)
	}
	if got := (&Redactor{}).Secrets("abc"); got != "abc" {
		t.Errorf("zero value: %q", got)
	}
}

func TestRedactorWrapKeepsTheChain(t *testing.T) {
	r := NewRedactor("s3cret")
	if r.Wrap(nil) != nil {
		t.Error("Wrap(nil) is not nil")
	}
	err := r.Wrap(fmt.Errorf("dial with s3cret: %w", context.Canceled))
	if err.Error() != "dial with [redacted]: context canceled" || !errors.Is(err, context.Canceled) {
		t.Errorf("wrapped: %v (is canceled: %v)", err, errors.Is(err, context.Canceled))
	}
}
