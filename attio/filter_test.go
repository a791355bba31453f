package attio

import (
	"encoding/json"
	"errors"
	"testing"
)

const listEntryEvent = `{"event_type":"list-entry.created","id":{"workspace_id":"w1","list_id":"L1","entry_id":"e1"},"parent_object_id":"O1","parent_record_id":"r1","actor":{"type":"workspace-member","id":"m1"}}`

func TestFilterMatch(t *testing.T) {
	cases := []struct {
		name   string
		filter *Filter
		want   bool
	}{
		{"nil matches all", nil, true},
		{"and all true", And(Equals("id.list_id", "L1"), Equals("actor.type", "workspace-member")), true},
		{"and one false", And(Equals("id.list_id", "L1"), Equals("actor.type", "system")), false},
		{"or one true", Or(Equals("id.list_id", "nope"), Equals("parent_object_id", "O1")), true},
		{"or none true", Or(Equals("id.list_id", "nope"), Equals("parent_object_id", "nope")), false},
		{"not equals differs", And(NotEquals("actor.type", "system")), true},
		{"not equals same", And(NotEquals("actor.type", "workspace-member")), false},
		{"missing field equals nothing", And(Equals("id.attribute_id", "")), false},
		{"missing field not_equals", And(NotEquals("id.attribute_id", "a1")), true},
		{"object field equals nothing", And(Equals("id", "w1")), false},
		{"path through scalar", And(Equals("event_type.x", "y")), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.filter.MatchJSON([]byte(listEntryEvent))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFilterJSONRoundTrip(t *testing.T) {
	f := Or(Equals("id.list_id", "L1"), NotEquals("actor.type", "system"))
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"$or":[{"field":"id.list_id","operator":"equals","value":"L1"},{"field":"actor.type","operator":"not_equals","value":"system"}]}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
	var back Filter
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Or) != 2 || back.Or[1] != f.Or[1] {
		t.Fatalf("round trip lost data: %+v", back)
	}
	var none *Filter
	b, _ = json.Marshal(struct {
		Filter *Filter `json:"filter"`
	}{none})
	if string(b) != `{"filter":null}` {
		t.Fatalf("nil filter encodes as %s", b)
	}
}

func TestFilterInvalid(t *testing.T) {
	bad := []string{
		`{}`,
		`{"$and":[]}`,
		`{"$and":[{"field":"a","operator":"equals","value":"x"}],"$or":[{"field":"a","operator":"equals","value":"x"}]}`,
		`{"$not":[{"field":"a","operator":"equals","value":"x"}]}`,
		`{"$and":[{"field":"","operator":"equals","value":"x"}]}`,
		`{"$and":[{"field":"a..b","operator":"equals","value":"x"}]}`,
		`{"$and":[{"field":"a","operator":"contains","value":"x"}]}`,
		`{"$and":[{"field":"a","operator":"equals","value":"x","extra":1}]}`,
		`{"$and":[{"field":"a","operator":"equals","value":5}]}`,
		`[1]`,
	}
	for _, in := range bad {
		var f Filter
		err := json.Unmarshal([]byte(in), &f)
		if !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("%s: err = %v, want ErrInvalidFilter", in, err)
		}
	}
	if _, err := json.Marshal(&Filter{}); !errors.Is(err, ErrInvalidFilter) {
		t.Errorf("marshal of empty filter: err = %v", err)
	}
}

func TestParseCondition(t *testing.T) {
	cases := []struct {
		in   string
		want Condition
	}{
		{"id.list_id=abc", Equals("id.list_id", "abc")},
		{"actor.type!=system", NotEquals("actor.type", "system")},
		{" parent_object_id =97052eb9", Equals("parent_object_id", "97052eb9")},
		{"a.b=x=y", Equals("a.b", "x=y")},
		{"a.b!=", NotEquals("a.b", "")},
		{"a.b=!x", Equals("a.b", "!x")},
	}
	for _, tc := range cases {
		got, err := ParseCondition(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseCondition(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if back, _ := ParseCondition(got.String()); back != got {
			t.Errorf("String round trip of %+v gave %+v", got, back)
		}
	}
	for _, bad := range []string{"", "id.list_id", "=abc", "!=abc", "a..b=x", ".a=x", "a.=x"} {
		if _, err := ParseCondition(bad); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("ParseCondition(%q): err = %v", bad, err)
		}
	}
}

func TestParseFilter(t *testing.T) {
	f, err := ParseFilter("", []string{"id.list_id=L1", "actor.type!=system"})
	if err != nil || len(f.And) != 2 || f.Or != nil {
		t.Fatalf("%+v %v", f, err)
	}
	if f.String() != "id.list_id=L1 AND actor.type!=system" {
		t.Errorf("String %q", f.String())
	}
	if ok, _ := f.MatchJSON([]byte(listEntryEvent)); !ok {
		t.Error("and filter should match")
	}
	f, err = ParseFilter("or", []string{"id.list_id=nope", "parent_object_id=O1"})
	if err != nil || len(f.Or) != 2 || f.String() != "id.list_id=nope OR parent_object_id=O1" {
		t.Fatalf("%+v %v", f, err)
	}
	if ok, _ := f.MatchJSON([]byte(listEntryEvent)); !ok {
		t.Error("or filter should match")
	}
	if f, err := ParseFilter("$or", nil); f != nil || err != nil {
		t.Errorf("no conditions: %v %v", f, err)
	}
	if _, err := ParseFilter("xor", []string{"a=b"}); !errors.Is(err, ErrInvalidFilter) {
		t.Errorf("bad mode: %v", err)
	}
	if _, err := ParseFilter("and", []string{"a=b", "oops"}); !errors.Is(err, ErrInvalidFilter) {
		t.Errorf("bad condition: %v", err)
	}
	var none *Filter
	if none.String() != "(none)" {
		t.Errorf("nil String %q", none.String())
	}
}
