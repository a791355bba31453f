package subscription

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strings"

	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/config"
)

// declaredEvents converts a subscription block's events.
func declaredEvents(sub *config.Subscription) []Event {
	if sub == nil || len(sub.Events) == 0 {
		return nil
	}
	out := make([]Event, 0, len(sub.Events))
	for _, e := range sub.Events {
		out = append(out, Event{Type: e.Type, Filter: e.Filter})
	}
	return out
}

// canonicalFilter spells a filter one way, whatever its key order, spacing
// or condition order: "" for none. An Attio filter's conditions are a set
// (both $and and $or are order-free), so they are sorted and deduplicated.
func canonicalFilter(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var f attio.Filter
	if err := json.Unmarshal(raw, &f); err == nil {
		f.And, f.Or = sortConditions(f.And), sortConditions(f.Or)
		if b, err := json.Marshal(f); err == nil {
			return string(b)
		}
	}
	var v any
	if err := json.Unmarshal(raw, &v); err == nil {
		if b, err := json.Marshal(v); err == nil { // maps encode with sorted keys
			return string(b)
		}
	}
	return string(raw)
}

func sortConditions(cs []attio.Condition) []attio.Condition {
	if len(cs) == 0 {
		return cs
	}
	cs = slices.Clone(cs)
	slices.SortFunc(cs, func(a, b attio.Condition) int {
		return cmp.Or(cmp.Compare(a.Field, b.Field), cmp.Compare(a.Operator, b.Operator), cmp.Compare(a.Value, b.Value))
	})
	return slices.Compact(cs)
}

// eventSet is a subscription's events by type, each with its set of
// canonical filters.
type eventSet map[string]map[string]bool

func newEventSet(events []Event) eventSet {
	s := eventSet{}
	for _, e := range events {
		if s[e.Type] == nil {
			s[e.Type] = map[string]bool{}
		}
		s[e.Type][canonicalFilter(e.Filter)] = true
	}
	return s
}

// eventChanges describes how have differs from want, for people; nil when
// they receive the same events. With emptyIsAll (Affinity) no events means
// every event type and compares as such; otherwise (Attio) it means none.
func eventChanges(want, have []Event, emptyIsAll bool) []string {
	w, h := newEventSet(want), newEventSet(have)
	if len(w) == 0 && len(h) == 0 {
		return nil
	}
	if emptyIsAll && (len(w) == 0 || len(h) == 0) {
		return []string{"events: " + describeTypes(h) + " → " + describeTypes(w)}
	}
	var plus, minus, filters []string
	for t, wf := range w {
		hf, ok := h[t]
		switch {
		case !ok:
			plus = append(plus, "+"+t)
		case !sameKeys(wf, hf):
			filters = append(filters, t)
		}
	}
	for t := range h {
		if _, ok := w[t]; !ok {
			minus = append(minus, "-"+t)
		}
	}
	slices.Sort(plus)
	slices.Sort(minus)
	slices.Sort(filters)
	var out []string
	if len(plus)+len(minus) > 0 {
		out = append(out, "events: "+strings.Join(append(plus, minus...), " "))
	}
	if len(filters) > 0 {
		out = append(out, "filter: "+strings.Join(filters, " "))
	}
	return out
}

func describeTypes(s eventSet) string {
	if len(s) == 0 {
		return "all"
	}
	types := make([]string, 0, len(s))
	for t := range s {
		types = append(types, t)
	}
	slices.Sort(types)
	return strings.Join(types, " ")
}

func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
