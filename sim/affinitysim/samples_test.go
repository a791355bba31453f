package affinitysim

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook/affinity"
)

// The keys each event's body has, from Affinity's published examples. The
// bodies themselves are the SDK's (affinity.SampleBody); these tests check
// that what the simulator sends is realistic, whoever maintains the data.
var (
	organizationKeys = []string{"id", "name", "domain", "domains", "crunchbase_uuid", "global"}
	personKeys       = []string{"id", "type", "first_name", "last_name", "primary_email", "emails"}
	listEntryKeys    = []string{"id", "list_id", "creator_id", "entity_id", "entity_type", "created_at", "entity"}
	noteKeys         = []string{"id", "creator_id", "person_ids", "is_meeting", "organization_ids", "opportunity_ids", "parent_id", "content", "created_at", "ip_address"}
	fieldKeys        = []string{"id", "name", "list_id", "value_type", "allows_multiple", "track_changes", "dropdown_options"}
	fieldValueKeys   = []string{"id", "field_id", "list_entry_id", "entity_type", "value_type", "entity_id", "value", "field"}
	fileKeys         = []string{"id", "name", "size", "person_id", "organization_id", "opportunity_id", "created_at", "uploader_id"}
	reminderKeys     = []string{"id", "type", "created_at", "completed_at", "content", "due_date", "reset_type", "reminder_days", "status", "creator", "owner", "completer", "person", "organization", "opportunity"}
	listKeys         = []string{"id", "ip_address"}
	opportunityKeys  = []string{"id", "name", "person_ids", "organization_ids"}
	// Affinity does not document this body: these are the keys of the
	// SDK's made-up sample, checked so that it stays plausible.
	smartInteractionValueKeys = []string{"entity_id", "entity_type", "field_id", "value", "updated_at"}

	wantSampleKeys = map[string][]string{
		"list.created": listKeys, "list.updated": listKeys, "list.deleted": listKeys,
		"list_entry.created": listEntryKeys, "list_entry.deleted": listEntryKeys,
		"note.created": noteKeys, "note.updated": noteKeys, "note.deleted": noteKeys,
		"field.created": append(fieldKeys, "ip_address"), "field.updated": append(fieldKeys, "ip_address"), "field.deleted": append(fieldKeys, "ip_address"),
		"field_value.created": fieldValueKeys, "field_value.updated": fieldValueKeys, "field_value.deleted": fieldValueKeys,
		"person.created": append(personKeys, "organization_ids"), "person.updated": append(personKeys, "organization_ids"),
		"person.deleted":       personKeys, // no organization_ids
		"organization.created": organizationKeys, "organization.updated": organizationKeys, "organization.deleted": organizationKeys,
		"organization.merged": {"changer", "removed_company", "company", "merged_at"},
		"opportunity.created": opportunityKeys, "opportunity.updated": opportunityKeys,
		"opportunity.deleted": {"id", "name"}, // no person_ids, organization_ids
		"file.created":        fileKeys, "file.deleted": fileKeys,
		"reminder.created": reminderKeys, "reminder.updated": reminderKeys, "reminder.deleted": reminderKeys,
		"smart_interaction_value.updated": smartInteractionValueKeys,
		ProbeType:                         {"test"},
	}
	// Keys of nested objects, by the path that leads to them.
	wantNestedKeys = map[string][]string{
		"list_entry.*/entity":                 personKeys,
		"field_value.*/field":                 fieldKeys,
		"organization.merged/changer":         personKeys,
		"organization.merged/removed_company": organizationKeys,
		"organization.merged/company":         organizationKeys,
		"reminder.*/creator":                  personKeys,
		"reminder.*/owner":                    personKeys,
		"reminder.*/completer":                personKeys,
		"reminder.*/person":                   personKeys,
		"reminder.*/organization":             organizationKeys,
		"reminder.*/opportunity":              opportunityKeys,
	}
)

// Affinity's two datetime layouts: ISO 8601 today, the older form in
// earlier payloads; both must be accepted.
var sampleTimeLayouts = []string{"2006-01-02T15:04:05.000-07:00", "2006-01-02 15:04:05 -0700"}

func TestEventTypesAreSubscribable(t *testing.T) {
	var types []string
	for _, et := range affinity.EventTypes() {
		types = append(types, string(et))
	}
	if len(types) != 30 {
		t.Fatalf("the SDK knows %d event types, want 30", len(types))
	}
	if !slices.Equal(slices.Sorted(maps.Keys(wantSampleKeys)), slices.Sorted(slices.Values(append(types, ProbeType)))) {
		t.Fatal("the SDK's event types differ from the published reference")
	}
	for _, typ := range types {
		if !isEventType(typ) {
			t.Errorf("%s is not subscribable", typ)
		}
	}
	if isEventType(ProbeType) || isEventType("person.exploded") || isEventType("") {
		t.Error("isEventType accepts a type no subscription may name")
	}
}

func TestSampleBodies(t *testing.T) {
	for typ, wantKeys := range wantSampleKeys {
		t.Run(typ, func(t *testing.T) {
			raw, ok := sampleBody(typ)
			if !ok {
				t.Fatal("no sample")
			}
			var body map[string]any
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("not a JSON object: %v", err)
			}
			if got := slices.Sorted(maps.Keys(body)); !slices.Equal(got, slices.Sorted(slices.Values(wantKeys))) {
				t.Errorf("keys = %v, want %v", got, slices.Sorted(slices.Values(wantKeys)))
			}
			for path, keys := range wantNestedKeys {
				prefix, field, _ := strings.Cut(path, "/")
				if prefix != typ && !(strings.HasSuffix(prefix, ".*") && strings.HasPrefix(typ, strings.TrimSuffix(prefix, "*"))) {
					continue
				}
				v, present := body[field]
				if !present {
					t.Errorf("%s missing", field)
					continue
				}
				if v == nil {
					continue // e.g. a reminder with no completer
				}
				obj, isObj := v.(map[string]any)
				if !isObj {
					t.Errorf("%s = %v, want an object or null", field, v)
					continue
				}
				if got := slices.Sorted(maps.Keys(obj)); !slices.Equal(got, slices.Sorted(slices.Values(keys))) {
					t.Errorf("%s keys = %v, want %v", field, got, slices.Sorted(slices.Values(keys)))
				}
			}
			for _, k := range []string{"created_at", "merged_at", "due_date", "completed_at", "updated_at"} {
				if s, ok := body[k].(string); ok && !parsesAsAffinityTime(s) {
					t.Errorf("%s = %q is in neither of Affinity's datetime layouts", k, s)
				}
			}
			// Fake PII only.
			for _, email := range findStrings(body, "@") {
				if !strings.HasSuffix(email, "example.com") && !strings.HasSuffix(email, "example.org") && !strings.HasSuffix(email, "example.net") {
					t.Errorf("email %q is not on an example domain", email)
				}
			}
			if len(raw) == 0 || strings.ContainsAny(string(raw), "\n\t") {
				t.Error("sample is not compact JSON")
			}
		})
	}

	if _, ok := sampleBody("person.exploded"); ok {
		t.Error("sampleBody of an unknown type reported ok")
	}
	a, _ := sampleBody("person.created")
	a[0] = 'X'
	if b, _ := sampleBody("person.created"); b[0] != '{' {
		t.Error("sampleBody returns shared bytes")
	}
}

func parsesAsAffinityTime(s string) bool {
	for _, layout := range sampleTimeLayouts {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

func TestSampleDetails(t *testing.T) {
	var reminder struct {
		Type         *int `json:"type"`
		Status       *int `json:"status"`
		ResetType    *int `json:"reset_type"`
		ReminderDays *int `json:"reminder_days"`
	}
	for _, typ := range []string{"reminder.created", "reminder.updated", "reminder.deleted"} {
		raw, _ := sampleBody(typ)
		reminder.Type, reminder.Status = nil, nil
		if err := json.Unmarshal(raw, &reminder); err != nil {
			t.Fatal(err)
		}
		// V1 Reminder resource: type 0 one-time or 1 recurring; status 0
		// completed, 1 active, 2 overdue; a recurring one has its reset.
		if reminder.Type == nil || *reminder.Type < 0 || *reminder.Type > 1 || reminder.Status == nil || *reminder.Status < 0 || *reminder.Status > 2 {
			t.Errorf("%s: type/status outside the V1 Reminder enums: %s", typ, raw)
		}
		if *reminder.Type == 1 && (reminder.ResetType == nil || reminder.ReminderDays == nil) {
			t.Errorf("%s: recurring reminder without reset_type and reminder_days: %s", typ, raw)
		}
	}

	var entry struct {
		EntityID int64 `json:"entity_id"`
		Entity   struct {
			ID int64 `json:"id"`
		} `json:"entity"`
	}
	raw, _ := sampleBody("list_entry.created")
	if err := json.Unmarshal(raw, &entry); err != nil || entry.EntityID != entry.Entity.ID {
		t.Errorf("list entry entity_id %d != entity.id %d (%v)", entry.EntityID, entry.Entity.ID, err)
	}
}

// TestTriggerEveryType delivers each of the 30 types with its sample body to
// an all-events subscription, as Affinity would.
func TestTriggerEveryType(t *testing.T) {
	sim, base := setup(t, Config{})
	tg := newTarget(t, nil)
	createWebhook(t, admin, base, tg.url())
	for _, et := range affinity.EventTypes() {
		typ := string(et)
		res, err := sim.Trigger(context.Background(), typ, nil)
		if err != nil || len(res.Deliveries) != 1 || !res.Deliveries[0].OK {
			t.Fatalf("%s: %+v, %v", typ, res, err)
		}
		got := tg.requests(typ)
		sample, _ := sampleBody(typ)
		if len(got) != 1 || string(got[0].Body) != string(wantEnvelope(t, typ, sample, res.SentAt)) {
			t.Errorf("%s: target got %q", typ, got)
		}
	}
	if n := len(tg.requests("")) - len(tg.requests(ProbeType)); n != 30 {
		t.Errorf("target got %d events, want 30", n)
	}
	if got := tg.requests(ProbeType); len(got) != 1 || !strings.Contains(string(got[0].Body), `"body":{"test":true}`) {
		t.Errorf("probe = %q", got)
	}
}

// TestSmartInteractionValueIsTriggerable: the 30th type can be named in a
// subscription and triggered with its sample body, which the SDK parses and
// keeps raw.
func TestSmartInteractionValueIsTriggerable(t *testing.T) {
	const typ = "smart_interaction_value.updated"
	sim, base := setup(t, Config{})
	tg := newTarget(t, nil)
	createWebhook(t, admin, base, tg.url(), typ)
	res, err := sim.Trigger(context.Background(), typ, nil)
	if err != nil || len(res.Deliveries) != 1 || !res.Deliveries[0].OK {
		t.Fatalf("%+v, %v", res, err)
	}
	got := tg.requests(typ)
	if len(got) != 1 {
		t.Fatalf("target got %d deliveries", len(got))
	}
	ev, err := affinity.Parse(got[0].Body, affinity.WithoutMaxAge(), affinity.WithoutMaxFutureSkew())
	if err != nil || ev.Type != affinity.SmartInteractionValueUpdated {
		t.Fatalf("%v %+v", err, ev)
	}
	if v, err := ev.DecodeBody(); err != nil {
		t.Fatal(err)
	} else if raw, ok := v.(json.RawMessage); !ok || string(raw) != string(affinity.SampleBody(affinity.SmartInteractionValueUpdated)) {
		t.Errorf("body decodes to %T %s", v, v)
	}
	// Other types do not reach a subscription that names only this one.
	if _, err := sim.Trigger(context.Background(), "person.created", nil); err != nil {
		t.Fatal(err)
	}
	if n := len(tg.requests("person.created")); n != 0 {
		t.Errorf("person.created delivered %d times", n)
	}
}

// findStrings returns every string in v that contains sub.
func findStrings(v any, sub string) []string {
	var out []string
	switch x := v.(type) {
	case string:
		if strings.Contains(x, sub) {
			out = append(out, x)
		}
	case []any:
		for _, e := range x {
			out = append(out, findStrings(e, sub)...)
		}
	case map[string]any:
		for _, e := range x {
			out = append(out, findStrings(e, sub)...)
		}
	}
	return out
}
