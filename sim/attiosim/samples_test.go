package attiosim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/crmhook/crmhook/attio"
)

// Every sample must be what the attio package parses and decodes into its
// family's typed struct, with every required id present.
func TestSampleEventForEveryType(t *testing.T) {
	if len(EventTypes()) != len(attio.AllEventTypes()) {
		t.Fatalf("EventTypes() has %d types, attio knows %d", len(EventTypes()), len(attio.AllEventTypes()))
	}
	for _, typ := range EventTypes() {
		t.Run(string(typ), func(t *testing.T) {
			raw, err := SampleEvent(string(typ), "")
			if err != nil {
				t.Fatal(err)
			}
			ev, err := attio.ParseEvent(raw)
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if ev.Type != typ || ev.Actor.Type != SampleActorType || ev.Actor.ID != SampleActorID {
				t.Fatalf("event = %+v", ev)
			}
			body, err := ev.DecodeBody()
			if err != nil {
				t.Fatalf("DecodeBody: %v", err)
			}
			if _, isRaw := body.(json.RawMessage); isRaw {
				t.Fatalf("%s decoded to raw JSON: no typed struct for it", typ)
			}
			var id map[string]any
			if err := json.Unmarshal(ev.ID, &id); err != nil || id["workspace_id"] != DefaultWorkspaceID {
				t.Fatalf("id = %s, want workspace_id %s", ev.ID, DefaultWorkspaceID)
			}
			for k, v := range id {
				if s, _ := v.(string); !isUUID(s) {
					t.Errorf("id.%s = %v, want a UUID", k, v)
				}
			}
		})
	}
}

func TestSampleEventFamilies(t *testing.T) {
	decode := func(typ string) map[string]any {
		t.Helper()
		raw, err := SampleEvent(typ, "6a1e2d2f-5b8e-4c3f-9d1a-0b2c3d4e5f60")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	keys := func(m any) string {
		var ks []string
		for k := range m.(map[string]any) {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return fmt.Sprint(ks)
	}
	cases := []struct {
		typ, idKeys, topKeys string
	}{
		{"record.created", "[object_id record_id workspace_id]", "[actor event_type id]"},
		{"record.updated", "[attribute_id object_id record_id workspace_id]", "[actor event_type id]"},
		{"record.merged", "[object_id record_id workspace_id]", "[actor duplicate_object_id duplicate_record_id event_type id]"},
		{"list-entry.created", "[entry_id list_id workspace_id]", "[actor event_type id parent_object_id parent_record_id]"},
		{"list-entry.updated", "[attribute_id entry_id list_id workspace_id]", "[actor event_type id parent_object_id parent_record_id]"},
		{"note.created", "[note_id workspace_id]", "[actor event_type id parent_object_id parent_record_id]"},
		{"comment.resolved", "[comment_id workspace_id]", "[actor entry_id event_type id list_id object_id record_id thread_id]"},
		{"call-recording.created", "[call_recording_id meeting_id workspace_id]", "[actor event_type id]"},
	}
	for _, tc := range cases {
		m := decode(tc.typ)
		if got := keys(m["id"]); got != tc.idKeys {
			t.Errorf("%s id keys = %s, want %s", tc.typ, got, tc.idKeys)
		}
		if got := keys(m); got != tc.topKeys {
			t.Errorf("%s keys = %s, want %s", tc.typ, got, tc.topKeys)
		}
		if m["id"].(map[string]any)["workspace_id"] != "6a1e2d2f-5b8e-4c3f-9d1a-0b2c3d4e5f60" {
			t.Errorf("%s: workspace id not used", tc.typ)
		}
	}
	le := decode("list-entry.created")
	if le["id"].(map[string]any)["list_id"] != SampleListID || le["parent_object_id"] != SampleCompaniesObjectID {
		t.Fatalf("list-entry sample = %v", le)
	}
	// Instance ids are fresh on every call; schema ids are fixed.
	a, b := decode("record.created")["id"].(map[string]any), decode("record.created")["id"].(map[string]any)
	if a["record_id"] == b["record_id"] || a["object_id"] != b["object_id"] {
		t.Fatalf("two samples: %v and %v", a, b)
	}

	if _, err := SampleEvent("record.exploded", ""); !errors.Is(err, ErrUnknownEventType) {
		t.Fatalf("unknown type: err = %v", err)
	}
}

func TestBuildEventMergesOverride(t *testing.T) {
	counter := 0
	newID := func() string { counter++; return fmt.Sprintf("00000000-0000-4000-8000-%012d", counter) }
	typ, body, err := buildEvent("list-entry.updated",
		json.RawMessage(`{"id":{"list_id":"L-other","attribute_id":null},"actor":{"type":"system"},"extra":{"n":1.50}}`),
		DefaultWorkspaceID, newID)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"event_type":       "list-entry.updated",
		"id":               map[string]any{"workspace_id": DefaultWorkspaceID, "list_id": "L-other", "entry_id": "00000000-0000-4000-8000-000000000001"},
		"parent_object_id": SampleCompaniesObjectID,
		"parent_record_id": "00000000-0000-4000-8000-000000000002",
		"actor":            map[string]any{"type": "system", "id": SampleActorID},
		"extra":            map[string]any{"n": 1.5},
	}
	if typ != "list-entry.updated" || !reflect.DeepEqual(got, want) {
		t.Fatalf("merged = %s\nwant %v", body, want)
	}
	if !strings.Contains(string(body), `"n":1.50`) {
		t.Fatalf("numbers must be kept as given: %s", body)
	}

	// The type may come from the override alone.
	if typ, _, err := buildEvent("", json.RawMessage(`{"event_type":"task.deleted"}`), DefaultWorkspaceID, newID); err != nil || typ != "task.deleted" {
		t.Fatalf("type from override: %q, %v", typ, err)
	}
	for name, tc := range map[string]struct {
		typ, override string
		want          error
	}{
		"no type":         {"", "", ErrUnknownEventType},
		"unknown type":    {"deal.won", "", ErrUnknownEventType},
		"type in body":    {"", `{"event_type":"deal.won"}`, ErrUnknownEventType},
		"array":           {"task.created", `[1]`, ErrInvalidEvent},
		"two objects":     {"task.created", `{} {}`, ErrInvalidEvent},
		"mismatched type": {"task.created", `{"event_type":"task.deleted"}`, ErrInvalidEvent},
		"type not string": {"", `{"event_type":5}`, ErrInvalidEvent},
		"id removed":      {"task.created", `{"id":null}`, ErrInvalidEvent},
		"id not object":   {"task.created", `{"id":"x"}`, ErrInvalidEvent},
	} {
		if _, _, err := buildEvent(tc.typ, json.RawMessage(tc.override), DefaultWorkspaceID, newID); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

// The samples have exactly the keys of the fixtures in testdata/attio/events,
// which follow Attio's webhook reference: top-level keys and id keys alike.
func TestSamplesMatchFixtureShapes(t *testing.T) {
	keySet := func(m map[string]any) string {
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return strings.Join(ks, ",")
	}
	for _, typ := range EventTypes() {
		raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "attio", "events", string(typ)+".json"))
		if err != nil {
			t.Fatalf("fixture for %s: %v", typ, err)
		}
		var fixture struct {
			Events []map[string]any `json:"events"`
		}
		if err := json.Unmarshal(raw, &fixture); err != nil || len(fixture.Events) != 1 {
			t.Fatalf("fixture for %s: %v", typ, err)
		}
		sample, err := SampleEvent(string(typ), "")
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(sample, &got); err != nil {
			t.Fatal(err)
		}
		want := fixture.Events[0]
		if keySet(got) != keySet(want) {
			t.Errorf("%s keys = %s, fixture has %s", typ, keySet(got), keySet(want))
		}
		if keySet(got["id"].(map[string]any)) != keySet(want["id"].(map[string]any)) {
			t.Errorf("%s id keys = %s, fixture has %s", typ, keySet(got["id"].(map[string]any)), keySet(want["id"].(map[string]any)))
		}
	}
}
