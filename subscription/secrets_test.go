package subscription_test

import (
	"slices"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/subscription"
)

func TestSubscriptionEffectiveSecrets(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return now.Add(time.Duration(h) * time.Hour) }
	sec := func(id int64, v string, st crmhook.SecretState, created, retire int) crmhook.SourceSecret {
		s := crmhook.SourceSecret{ID: id, Source: "s", Secret: v, State: st, CreatedAt: at(created)}
		if st == crmhook.SecretRetiring {
			s.RetireAt = at(retire)
		}
		return s
	}
	for _, tc := range []struct {
		name   string
		config []string
		stored []crmhook.SourceSecret
		want   []string
	}{
		{"config only", []string{"a", "b"}, nil, []string{"a", "b"}},
		{"stored active newest first, then config", []string{"a"}, []crmhook.SourceSecret{
			sec(1, "old", crmhook.SecretActive, -2, 0), sec(2, "new", crmhook.SecretActive, -1, 0),
		}, []string{"new", "old", "a"}},
		{"a retired config secret is dropped", []string{"a", "b"}, []crmhook.SourceSecret{
			sec(1, "a", crmhook.SecretRetired, -1, 0),
		}, []string{"b"}},
		{"retiring: kept until RetireAt, after the config", []string{"a"}, []crmhook.SourceSecret{
			sec(1, "r1", crmhook.SecretRetiring, -3, 1), sec(2, "r2", crmhook.SecretRetiring, -3, 0), sec(3, "a", crmhook.SecretRetiring, -3, -1),
		}, []string{"r1"}},
		{"a config secret retiring later stays in the config's place", []string{"a", "b"}, []crmhook.SourceSecret{
			sec(1, "a", crmhook.SecretRetiring, -3, 5), sec(2, "n", crmhook.SecretActive, -1, 0),
		}, []string{"n", "a", "b"}},
		{"duplicates once", []string{"a", "a", "n"}, []crmhook.SourceSecret{
			sec(1, "n", crmhook.SecretActive, -1, 0), sec(2, "n", crmhook.SecretRetiring, -1, 3),
		}, []string{"n", "a"}},
		{"same CreatedAt: higher id is newer", nil, []crmhook.SourceSecret{
			sec(1, "x", crmhook.SecretActive, -1, 0), sec(2, "y", crmhook.SecretActive, -1, 0),
		}, []string{"y", "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := subscription.EffectiveSecrets(tc.config, tc.stored, now); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSubscriptionRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.com/hooks/affinity/0123456789abcdef0123456789abcdef": "https://hooks.example.com/hooks/affinity/…",
		"https://hooks.example.com/hooks/affinity/short":                            "https://hooks.example.com/hooks/affinity/…",
		"https://hooks.example.com/hooks/attio":                                     "https://hooks.example.com/hooks/attio",
		"https://user:pw@x.example/in/0123456789abcdef0123456789?token=abc#f":       "https://x.example/in/…?…",
		"http://127.0.0.1:8080/a/one":                                               "http://127.0.0.1:8080/a/one",
		"not a url":                                                                 "(not an absolute URL)",
	} {
		if got := subscription.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
