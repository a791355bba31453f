package natssink

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/crmhook/crmhook"
)

// Placeholders a subject template may use.
const (
	placeholderSource   = "{source}"
	placeholderProvider = "{provider}"
	placeholderType     = "{type}"
)

// subjectTemplate is a parsed Config.Subject: literal text and placeholders.
type subjectTemplate struct {
	raw   string
	parts []templatePart
}

type templatePart struct {
	literal     string
	placeholder string // one of the placeholder constants; "" for a literal
}

// parseSubjectTemplate checks a template such as "crmhook.{source}.{type}".
// The literal text must itself be valid subject text: no whitespace and no
// wildcards, since a JetStream publish goes to one concrete subject.
func parseSubjectTemplate(s string) (*subjectTemplate, error) {
	if s == "" {
		return nil, errors.New("subject template is empty")
	}
	t := &subjectTemplate{raw: s}
	rest := s
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			t.parts = append(t.parts, templatePart{literal: rest})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, templatePart{literal: rest[:open]})
		}
		closing := strings.IndexByte(rest[open:], '}')
		if closing < 0 {
			return nil, fmt.Errorf("subject template %q: unclosed '{'", s)
		}
		ph := rest[open : open+closing+1]
		switch ph {
		case placeholderSource, placeholderProvider, placeholderType:
		default:
			return nil, fmt.Errorf("subject template %q: unknown placeholder %s (want {source}, {provider} or {type})", s, ph)
		}
		t.parts = append(t.parts, templatePart{placeholder: ph})
		rest = rest[open+closing+1:]
	}
	for _, p := range t.parts {
		if p.placeholder != "" {
			continue
		}
		if strings.ContainsRune(p.literal, '}') {
			return nil, fmt.Errorf("subject template %q: unmatched '}'", s)
		}
		if strings.IndexFunc(p.literal, badSubjectRune) >= 0 {
			return nil, fmt.Errorf("subject template %q: whitespace and the wildcards '*' and '>' are not allowed", s)
		}
	}
	// Expanding with harmless values shows whether the literal dots leave
	// an empty token ("a..{type}", a leading or trailing dot).
	probe := t.expand("s", "p", "t")
	for _, tok := range strings.Split(probe, ".") {
		if tok == "" {
			return nil, fmt.Errorf("subject template %q: empty token (a leading, trailing or doubled '.')", s)
		}
	}
	return t, nil
}

// Subject returns the subject ev is published on.
func (t *subjectTemplate) Subject(ev *crmhook.Event) string {
	return t.expand(ev.Source, string(ev.Provider), ev.Type)
}

func (t *subjectTemplate) expand(source, provider, typ string) string {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.placeholder {
		case "":
			b.WriteString(p.literal)
		case placeholderSource:
			b.WriteString(sanitizeTokens(source))
		case placeholderProvider:
			b.WriteString(sanitizeTokens(provider))
		case placeholderType:
			b.WriteString(sanitizeTokens(typ))
		}
	}
	return b.String()
}

// capture returns the subject filter a stream needs to hold every subject
// the template can produce: the literal tokens before the first placeholder
// followed by ">" (a placeholder's value may span several tokens, as
// "person.created" does), or the template itself when it has none.
func (t *subjectTemplate) capture() (string, error) {
	var prefix strings.Builder
	for _, p := range t.parts {
		if p.placeholder != "" {
			break
		}
		prefix.WriteString(p.literal)
	}
	if prefix.Len() == len(t.raw) {
		return t.raw, nil // no placeholders: one fixed subject
	}
	// Keep only whole tokens: "events-{source}" has none before the placeholder.
	lit := prefix.String()
	dot := strings.LastIndexByte(lit, '.')
	if dot <= 0 {
		return "", fmt.Errorf("subject template %q must begin with a literal token (as in \"crmhook.{source}\") for the sink to manage a stream", t.raw)
	}
	return lit[:dot] + ".>", nil
}

// sanitizeTokens makes a placeholder's value safe inside a subject. Dots
// stay, as token separators ("person.created" is two tokens); whitespace,
// control characters and the wildcards '*' and '>' become '_', and an empty
// token becomes "_" so the subject stays valid.
func sanitizeTokens(v string) string {
	v = strings.Map(func(r rune) rune {
		if badSubjectRune(r) {
			return '_'
		}
		return r
	}, v)
	if v == "" {
		return "_"
	}
	if !strings.Contains(v, "..") && v[0] != '.' && v[len(v)-1] != '.' {
		return v
	}
	toks := strings.Split(v, ".")
	for i, tok := range toks {
		if tok == "" {
			toks[i] = "_"
		}
	}
	return strings.Join(toks, ".")
}

// badSubjectRune reports a rune that may not appear in a published subject.
func badSubjectRune(r rune) bool {
	return r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r)
}

// subjectCovers reports whether the stream subject filter covers subject
// (which may itself be a filter ending in ">"), token by token: '*' matches
// one token and '>' the rest.
func subjectCovers(filter, subject string) bool {
	ft := strings.Split(filter, ".")
	st := strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return i < len(st)
		}
		if i >= len(st) {
			return false
		}
		switch {
		case st[i] == ">":
			return false // the subject reaches further than this filter
		case f == "*", f == st[i]:
		default:
			return false
		}
	}
	return len(ft) == len(st)
}
