package natssink

import (
	"strings"
	"testing"

	"github.com/crmhook/crmhook"
)

func TestSubjectTemplateExpand(t *testing.T) {
	tests := []struct {
		template string
		ev       crmhook.Event
		want     string
	}{
		{DefaultSubject, crmhook.Event{Source: "affinity", Provider: "affinity", Type: "person.created"}, "crmhook.affinity.person.created"},
		{"crm.{provider}.{source}.{type}", crmhook.Event{Source: "attio-prod", Provider: "attio", Type: "list-entry.updated"}, "crm.attio.attio-prod.list-entry.updated"},
		{DefaultSubject, crmhook.Event{Source: "a", Type: "odd type*with>wild\tcards"}, "crmhook.a.odd_type_with_wild_cards"},
		{DefaultSubject, crmhook.Event{Source: "a", Type: ""}, "crmhook.a._"},
		{DefaultSubject, crmhook.Event{Source: "a", Type: ".lead..trail."}, "crmhook.a._.lead._.trail._"},
		{"fixed.subject", crmhook.Event{Source: "a", Type: "x"}, "fixed.subject"},
		{"ev-{source}-{type}", crmhook.Event{Source: "a", Type: "x.y"}, "ev-a-x.y"},
	}
	for _, tt := range tests {
		tmpl, err := parseSubjectTemplate(tt.template)
		if err != nil {
			t.Fatalf("parse %q: %v", tt.template, err)
		}
		if got := tmpl.Subject(&tt.ev); got != tt.want {
			t.Errorf("%q with %+v = %q, want %q", tt.template, tt.ev, got, tt.want)
		}
	}
}

func TestSubjectTemplateInvalid(t *testing.T) {
	for _, tmpl := range []string{
		"",
		"crmhook.{source",
		"crmhook.{nope}",
		"crmhook.source}",
		"crmhook.*.{type}",
		"crmhook.>",
		"crm hook.{type}",
		".crmhook.{type}",
		"crmhook..{type}",
		"crmhook.{type}.",
	} {
		if _, err := parseSubjectTemplate(tmpl); err == nil {
			t.Errorf("parseSubjectTemplate(%q) = nil error", tmpl)
		}
	}
}

func TestSubjectTemplateCapture(t *testing.T) {
	tests := []struct{ template, want string }{
		{DefaultSubject, "crmhook.>"},
		{"a.b.{type}", "a.b.>"},
		{"a.b-{type}", "a.>"},
		{"fixed.subject", "fixed.subject"},
	}
	for _, tt := range tests {
		tmpl, err := parseSubjectTemplate(tt.template)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tmpl.capture()
		if err != nil || got != tt.want {
			t.Errorf("capture(%q) = %q, %v; want %q", tt.template, got, err, tt.want)
		}
	}
	for _, bad := range []string{"{source}.{type}", "ev-{source}"} {
		tmpl, err := parseSubjectTemplate(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tmpl.capture(); err == nil || !strings.Contains(err.Error(), "literal token") {
			t.Errorf("capture(%q) = %v, want an error", bad, err)
		}
	}
}

func TestSubjectCovers(t *testing.T) {
	tests := []struct {
		filter, subject string
		want            bool
	}{
		{"crmhook.>", "crmhook.>", true},
		{">", "crmhook.>", true},
		{"crmhook.>", "crmhook.a.>", true},
		{"crmhook.*", "crmhook.>", false},
		{"crmhook.*.>", "crmhook.>", false},
		{"crmhook.a.>", "crmhook.>", false},
		{"crmhook.>", "crmhook", false},
		{"fixed.subject", "fixed.subject", true},
		{"fixed.*", "fixed.subject", true},
		{"fixed", "fixed.subject", false},
		{"other.>", "crmhook.>", false},
	}
	for _, tt := range tests {
		if got := subjectCovers(tt.filter, tt.subject); got != tt.want {
			t.Errorf("subjectCovers(%q, %q) = %v, want %v", tt.filter, tt.subject, got, tt.want)
		}
	}
}
