package attio

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// A consumer decoding a delivery with encoding/json matches keys
// case-insensitively and keeps the last match, so "Event_Type" after
// event_type would make it read another type than Parse did. Parse refuses
// such keys wherever they stand.
func TestParseRejectsKeysDifferingOnlyByCase(t *testing.T) {
	const id = `{"workspace_id":"w","object_id":"o","record_id":"r"}`
	ev := func(extra string) string {
		return `{"event_type":"record.created","id":` + id + `,"actor":{"type":"api-token","id":"t"}` + extra + `}`
	}
	delivery := func(events string) string { return `{"webhook_id":"w1","events":[` + events + `]}` }
	cases := []struct {
		name, raw, key string
	}{
		{"event key after the known one", delivery(ev(`,"Event_Type":"record.deleted"`)), "Event_Type"},
		{"event key before the known one", delivery(`{"EVENT_TYPE":"record.deleted","event_type":"record.created","id":` + id + `}`), "EVENT_TYPE"},
		{"event key alone", delivery(`{"Event_type":"record.created","id":` + id + `}`), "Event_type"},
		{"second event", delivery(ev(``) + `,` + ev(`,"ID":{}`)), "ID"},
		{"bare event", ev(`,"Actor":{"type":"system"}`), "Actor"},
		{"parent id", ev(`,"parent_record_id":"a","Parent_Record_Id":"b"`), "Parent_Record_Id"},
		{"family key of a typed event", ev(`,"duplicate_record_id":"a","Duplicate_Record_ID":"b"`), "Duplicate_Record_ID"},
		{"delivery key after", `{"webhook_id":"w1","events":[` + ev(``) + `],"Webhook_ID":"w2"}`, "Webhook_ID"},
		{"delivery key before", `{"EVENTS":[],"webhook_id":"w1","events":[` + ev(``) + `]}`, "EVENTS"},
		{"delivery key alone", `{"Webhook_Id":"w1","events":[` + ev(``) + `]}`, "Webhook_Id"},
		{"neither shape, only a case variant", `{"Events":[]}`, "Events"},
		// strings.EqualFold, like encoding/json, folds U+212A KELVIN SIGN to k.
		{"unicode folding", `{"webhoo\u212a_id":"x","webhook_id":"w1","events":[` + ev(``) + `]}`, "webhoo\u212a_id"},
		{"id key", delivery(`{"event_type":"record.created","id":{"workspace_id":"w","object_id":"o","record_id":"r","Record_ID":"other"}}`), "Record_ID"},
		{"actor key", delivery(`{"event_type":"x","id":{},"actor":{"type":"system","TYPE":"api-token"}}`), "TYPE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.raw))
			if !errors.Is(err, ErrInvalidPayload) || !errors.Is(err, ErrParse) {
				t.Fatalf("err = %v, want ErrInvalidPayload", err)
			}
			if !strings.Contains(err.Error(), "only by case") || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("message %q does not name key %q", err, tc.key)
			}
			for _, value := range []string{"record.deleted", "other", "api-token", "w2"} {
				if strings.Contains(err.Error(), value) {
					t.Errorf("message %q echoes the value %q", err, value)
				}
			}
		})
	}
	// The strict entry points refuse them too.
	if _, err := ParseEvent([]byte(ev(`,"Event_Type":"record.deleted"`))); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("ParseEvent: %v", err)
	}
	if _, err := ParseDelivery([]byte(`{"webhook_id":"w1","events":[` + ev(``) + `],"Events":[]}`)); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("ParseDelivery: %v", err)
	}
}

func TestParseRejectsDuplicateKeysAtEveryLevel(t *testing.T) {
	for name, raw := range map[string]string{
		"delivery": `{"webhook_id":"a","events":[{"event_type":"x","id":{}}],"webhook_id":"b"}`,
		"event":    `{"webhook_id":"a","events":[{"id":{},"event_type":"x","event_type":"y"}]}`,
		"id":       `{"webhook_id":"a","events":[{"event_type":"x","id":{"record_id":"r1","record_id":"r2"}}]}`,
		"actor":    `{"webhook_id":"a","events":[{"event_type":"x","id":{},"actor":{"id":"a","id":"b"}}]}`,
		"unknown":  `{"webhook_id":"a","events":[{"event_type":"x","id":{},"extra":1,"extra":2}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(raw))
			if !errors.Is(err, ErrInvalidPayload) || !strings.Contains(err.Error(), "duplicate key") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// Unknown keys (Attio adds some over time), unknown keys that merely differ
// from each other by case, and any key order stay accepted.
func TestParseAcceptsUnknownKeysInAnyOrder(t *testing.T) {
	raw := `{"sent_by":"future","events":[
		{"actor":{"id":"t","type":"api-token","Kind":"k"},"Future_Key":1,"future_key":2,
		 "id":{"record_id":"r","object_id":"o","workspace_id":"w","Extra_Id":"e"},"event_type":"record.created"}],
		"webhook_id":"w1"}`
	d, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	body, err := d.Events[0].DecodeBody()
	if rec, ok := body.(*RecordEvent); err != nil || !ok || rec.ID.RecordID != "r" || rec.Actor.Type != "api-token" {
		t.Fatalf("decoded %#v, %v", body, err)
	}
	var back map[string]any
	if json.Unmarshal(d.Events[0].Raw, &back) != nil || back["future_key"] != float64(2) {
		t.Errorf("raw lost keys: %s", d.Events[0].Raw)
	}
}
