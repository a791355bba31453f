package subscription

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestSubscriptionCanonicalFilter(t *testing.T) {
	a := canonicalFilter(json.RawMessage(`{"$and":[{"field":"a","operator":"equals","value":"1"},{"field":"b","operator":"not_equals","value":"2"}]}`))
	b := canonicalFilter(json.RawMessage(` { "$and" : [ {"value":"2","operator":"not_equals","field":"b"}, {"operator":"equals","field":"a","value":"1"}, {"field":"a","operator":"equals","value":"1"} ] } `))
	if a != b || a == "" {
		t.Fatalf("equal filters differ:\n%s\n%s", a, b)
	}
	if or := canonicalFilter(json.RawMessage(`{"$or":[{"field":"a","operator":"equals","value":"1"},{"field":"b","operator":"not_equals","value":"2"}]}`)); or == a {
		t.Fatal("$and and $or compare equal")
	}
	for _, none := range []string{"", "null", " null "} {
		if got := canonicalFilter(json.RawMessage(none)); got != "" {
			t.Errorf("canonicalFilter(%q) = %q, want none", none, got)
		}
	}
}

func TestSubscriptionEventChanges(t *testing.T) {
	ev := func(types ...string) []Event {
		var out []Event
		for _, t := range types {
			out = append(out, Event{Type: t})
		}
		return out
	}
	f1 := json.RawMessage(`{"$and":[{"field":"id.list_id","operator":"equals","value":"x"}]}`)
	f2 := json.RawMessage(`{"$and":[{"field":"id.list_id","operator":"equals","value":"y"}]}`)
	for _, tc := range []struct {
		name       string
		want, have []Event
		emptyIsAll bool
		changes    []string
	}{
		{"same set, other order, duplicates", ev("a", "b", "a"), ev("b", "a"), true, nil},
		{"all is all", nil, nil, true, nil},
		{"added and removed", ev("a", "c"), ev("a", "b"), true, []string{"events: +c -b"}},
		{"all to some", ev("b", "a"), nil, true, []string{"events: all → a b"}},
		{"some to all", nil, ev("a"), true, []string{"events: a → all"}},
		{"attio nothing to some", ev("a"), nil, false, []string{"events: +a"}},
		{"filter changed", []Event{{Type: "r", Filter: f1}, {Type: "n"}}, []Event{{Type: "r", Filter: f2}, {Type: "n"}}, false, []string{"filter: r"}},
		{"filter added", []Event{{Type: "r", Filter: f1}}, []Event{{Type: "r", Filter: json.RawMessage("null")}}, false, []string{"filter: r"}},
		{"filter same", []Event{{Type: "r", Filter: f1}}, []Event{{Type: "r", Filter: f1}}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := eventChanges(tc.want, tc.have, tc.emptyIsAll); !slices.Equal(got, tc.changes) {
				t.Fatalf("got %q, want %q", got, tc.changes)
			}
		})
	}
}
