package attio

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDeliveryAndEvent(t *testing.T) {
	raw := readFixture(t, "design.delivery.json")
	d, err := ParseDelivery(raw)
	if err != nil {
		t.Fatal(err)
	}
	if d.WebhookID != "23e42eaf-323a-41da-b5bb-fd67eebda553" || len(d.Events) != 1 {
		t.Fatalf("delivery %+v", d)
	}
	ev := d.Events[0]
	if ev.Type != ListEntryCreated || ev.Actor != (Actor{Type: "workspace-member", ID: "50cf242c-7fa3-4cad-87d0-75b1af71c57b"}) ||
		ev.ParentObjectID != "97052eb9-e65e-443f-a297-f2d9a4a7f795" || ev.ParentRecordID != "bf071e1f-6035-429d-b874-d83ea64ea13b" {
		t.Errorf("event %+v", ev)
	}
	id, err := DecodeID[ListEntryID](ev)
	if err != nil || id.ListID != "33ebdbe9-e529-47c9-b894-0ba25e9c15c0" || id.EntryID != "2e6e29ea-c4e0-4f44-842d-78a891f8c156" {
		t.Errorf("id %+v err %v", id, err)
	}
	// Raw is the event object as sent; marshalling gives it back.
	var back map[string]any
	if err := json.Unmarshal(ev.Raw, &back); err != nil || back["event_type"] != "list-entry.created" {
		t.Errorf("raw %s", ev.Raw)
	}
	if out, _ := json.Marshal(ev); string(out) != compact(t, ev.Raw) {
		t.Errorf("marshal %s", out)
	}

	// Parse accepts the delivery and the bare event alike.
	d2, err := Parse(raw)
	if err != nil || d2.WebhookID != d.WebhookID || len(d2.Events) != 1 {
		t.Fatalf("Parse delivery: %+v %v", d2, err)
	}
	bare, err := ParseEvent(ev.Raw)
	if err != nil || bare.Type != ListEntryCreated || string(bare.ID) != string(ev.ID) {
		t.Fatalf("ParseEvent: %+v %v", bare, err)
	}
	d3, err := Parse(ev.Raw)
	if err != nil || d3.WebhookID != "" || len(d3.Events) != 1 || d3.Events[0].Type != ListEntryCreated {
		t.Fatalf("Parse bare: %+v %v", d3, err)
	}
}

func compact(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestParseIteratesBatches(t *testing.T) {
	raw := `{"webhook_id":"w","events":[
		{"event_type":"record.created","id":{"workspace_id":"ws","object_id":"o","record_id":"r1"},"actor":{"type":"api-token","id":"t"}},
		{"event_type":"some.future-type","id":{"workspace_id":"ws","thing_id":"x"},"actor":{"type":"system","id":null},"extra":[1,2]}
	],"sent_by":"future key"}`
	d, err := ParseDelivery([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != 2 || d.Events[1].Type != "some.future-type" || d.Events[1].Type.Known() || d.Events[1].Actor != (Actor{Type: "system"}) {
		t.Fatalf("events %+v", d.Events)
	}
	if !strings.Contains(string(d.Events[1].Raw), `"extra":[1,2]`) {
		t.Errorf("unknown event lost data: %s", d.Events[1].Raw)
	}
}

func TestParseRejects(t *testing.T) {
	ev := `{"event_type":"record.created","id":{"record_id":"r"}}`
	cases := []struct {
		name string
		raw  string
		want error
		key  string // for missing keys
	}{
		{"empty", ``, ErrInvalidJSON, ""},
		{"whitespace", " \n", ErrInvalidJSON, ""},
		{"not json", `webhook`, ErrInvalidJSON, ""},
		{"truncated", `{"webhook_id":"w","events":[`, ErrInvalidJSON, ""},
		{"two objects", ev + ev, ErrInvalidJSON, ""},
		{"trailing garbage", ev + ` x`, ErrInvalidJSON, ""},
		{"array", `[` + ev + `]`, ErrInvalidPayload, ""},
		{"string", `"x"`, ErrInvalidPayload, ""},
		{"null", `null`, ErrInvalidPayload, ""},
		{"neither", `{"hello":1}`, ErrMissingKey, "events"},
		{"duplicate top-level key", `{"webhook_id":"a","webhook_id":"b","events":[` + ev + `]}`, ErrInvalidPayload, ""},
		{"duplicate event key", `{"webhook_id":"a","events":[{"event_type":"x","event_type":"y","id":{}}]}`, ErrInvalidPayload, ""},
		{"no webhook_id", `{"events":[` + ev + `]}`, ErrMissingKey, "webhook_id"},
		{"webhook_id number", `{"webhook_id":5,"events":[` + ev + `]}`, ErrInvalidPayload, ""},
		{"webhook_id empty", `{"webhook_id":"","events":[` + ev + `]}`, ErrInvalidPayload, ""},
		{"no events", `{"webhook_id":"w"}`, ErrMissingKey, "events"},
		{"events object", `{"webhook_id":"w","events":` + ev + `}`, ErrInvalidPayload, ""},
		{"events null", `{"webhook_id":"w","events":null}`, ErrInvalidPayload, ""},
		{"events empty", `{"webhook_id":"w","events":[]}`, ErrInvalidPayload, ""},
		{"event not object", `{"webhook_id":"w","events":[1]}`, ErrInvalidPayload, ""},
		{"event without type", `{"webhook_id":"w","events":[{"id":{}}]}`, ErrMissingKey, "events[0].event_type"},
		{"second event without id", `{"webhook_id":"w","events":[` + ev + `,{"event_type":"x"}]}`, ErrMissingKey, "events[1].id"},
		{"type not string", `{"event_type":1,"id":{}}`, ErrInvalidPayload, ""},
		{"type null", `{"event_type":null,"id":{}}`, ErrInvalidPayload, ""},
		{"type empty", `{"event_type":"","id":{}}`, ErrInvalidPayload, ""},
		{"id string", `{"event_type":"x","id":"abc"}`, ErrInvalidPayload, ""},
		{"id null", `{"event_type":"x","id":null}`, ErrInvalidPayload, ""},
		{"actor string", `{"event_type":"x","id":{},"actor":"me"}`, ErrInvalidPayload, ""},
		{"actor type number", `{"event_type":"x","id":{},"actor":{"type":1}}`, ErrInvalidPayload, ""},
		{"parent id number", `{"event_type":"x","id":{},"parent_object_id":7}`, ErrInvalidPayload, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.raw))
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrParse) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.key != "" {
				var mk *MissingKeyError
				if !errors.As(err, &mk) || mk.Key != tc.key {
					t.Fatalf("missing key = %v, want %q", err, tc.key)
				}
			}
		})
	}
	// The strict entry points refuse the other shape.
	if _, err := ParseDelivery([]byte(ev)); !errors.Is(err, ErrMissingKey) {
		t.Errorf("ParseDelivery(bare event) = %v", err)
	}
	if _, err := ParseEvent(readFixture(t, "design.delivery.json")); !errors.Is(err, ErrMissingKey) {
		t.Errorf("ParseEvent(delivery) = %v", err)
	}
}

func TestParseErrorsDoNotEchoValues(t *testing.T) {
	pii := "jane.doe@example.com"
	for _, raw := range []string{
		`{"event_type":"x","id":"` + pii + `"}`,
		`{"event_type":"x","id":{},"actor":"` + pii + `"}`,
		`{"webhook_id":"` + pii + `","events":7}`,
		`{"event_type":"x","id":{"record_id":"` + pii + `"}} trailing`,
	} {
		_, err := Parse([]byte(raw))
		if err == nil || strings.Contains(err.Error(), pii) {
			t.Errorf("error %v for %s", err, raw)
		}
	}
}

// TestOfficialFixtures parses one delivery per event type and checks the
// typed struct the default registry decodes it into.
func TestEventFixtures(t *testing.T) {
	const (
		ws   = "14beef7a-99f7-4534-a87e-70b564330a4c"
		obj  = "97052eb9-e65e-443f-a297-f2d9a4a7f795"
		rec  = "bf071e1f-6035-429d-b874-d83ea64ea13b"
		attr = "41252299-f8c7-4b5e-99c9-4ff8321d2f96"
		list = "33ebdbe9-e529-47c9-b894-0ba25e9c15c0"
		ent  = "2e6e29ea-c4e0-4f44-842d-78a891f8c156"
		mem  = "50cf242c-7fa3-4cad-87d0-75b1af71c57b"
	)
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "attio", "events", "*.json"))
	if len(files) != len(AllEventTypes()) {
		t.Fatalf("%d event fixtures, want one per type (%d)", len(files), len(AllEventTypes()))
	}
	for _, typ := range AllEventTypes() {
		t.Run(string(typ), func(t *testing.T) {
			raw := readFixture(t, filepath.Join("events", string(typ)+".json"))
			d, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if d.WebhookID != "23e42eaf-323a-41da-b5bb-fd67eebda553" || len(d.Events) != 1 || d.Events[0].Type != typ {
				t.Fatalf("delivery %+v", d)
			}
			ev := d.Events[0]
			body, err := ev.DecodeBody()
			if err != nil {
				t.Fatal(err)
			}
			switch b := body.(type) {
			case *RecordEvent:
				if b.ID.WorkspaceID != ws || b.ID.ObjectID != obj || b.ID.RecordID != rec {
					t.Errorf("%+v", b)
				}
				if (typ == RecordUpdated) != (b.ID.AttributeID == attr) {
					t.Errorf("attribute_id %q", b.ID.AttributeID)
				}
				if typ == RecordMerged && (b.DuplicateRecordID != "3405be95-8375-46a0-bde0-03b3753f8c79" || b.DuplicateObjectID != obj) {
					t.Errorf("merged %+v", b)
				}
				if typ == RecordCreated && b.Actor.Type != "api-token" {
					t.Errorf("actor %+v", b.Actor)
				}
			case *ListEntryEvent:
				if b.ID.ListID != list || b.ID.EntryID != ent || b.ParentObjectID != obj || b.ParentRecordID != rec || ev.ParentRecordID != rec {
					t.Errorf("%+v", b)
				}
				if (typ == ListEntryUpdated) != (b.ID.AttributeID == attr) {
					t.Errorf("attribute_id %q", b.ID.AttributeID)
				}
			case *ListEvent:
				if b.ID.ListID != list || b.Actor.ID != mem {
					t.Errorf("%+v", b)
				}
			case *ListAttributeEvent:
				if b.ID.ListID != list || b.ID.AttributeID != attr {
					t.Errorf("%+v", b)
				}
			case *ObjectAttributeEvent:
				if b.ID.ObjectID != obj || b.ID.AttributeID != attr {
					t.Errorf("%+v", b)
				}
			case *NoteEvent:
				if b.ID.NoteID != "ff3f3bd4-40f4-4f80-8187-cd02385af424" || b.ParentObjectID != obj || b.ParentRecordID != rec {
					t.Errorf("%+v", b)
				}
			case *CommentEvent:
				if b.ID.CommentID != "aa1dc1d9-93ac-4c6c-987e-16b6eea9aab2" || b.ThreadID != "a649e4d9-435c-43fb-83ba-847b4876f27a" || b.RecordID != rec || b.ObjectID != obj {
					t.Errorf("%+v", b)
				}
				onEntry := typ == CommentCreated || typ == CommentResolved
				if onEntry != (b.ListID == list && b.EntryID == ent) || (!onEntry && (b.ListID != "" || b.EntryID != "")) {
					t.Errorf("list/entry %q %q", b.ListID, b.EntryID)
				}
			case *TaskEvent:
				if b.ID.TaskID != "649e34f4-c39a-4f4d-99ef-48a36bef8f04" {
					t.Errorf("%+v", b)
				}
				if typ == TaskDeleted && b.Actor != (Actor{Type: "system"}) {
					t.Errorf("system actor %+v", b.Actor)
				}
			case *WorkspaceMemberEvent:
				if b.ID.WorkspaceMemberID != "0d1b7e42-5a8c-4f0e-9c4d-2b6f3e8a1c77" || b.ID.WorkspaceID != ws {
					t.Errorf("%+v", b)
				}
			case *CallRecordingEvent:
				if b.ID.MeetingID != "cb59ab17-ad15-460c-a126-0715617c0853" || b.ID.CallRecordingID != "e8f2a3b7-9b4d-4c5e-8a1f-3d7b2c5e8f9a" {
					t.Errorf("%+v", b)
				}
			default:
				t.Fatalf("decoded into %T", body)
			}
		})
	}
}

func TestSeed004Fixtures(t *testing.T) {
	// The integration guide's curl body is unwrapped (wrong: Attio wants
	// data), but its fields are ours.
	var req WebhookCreateRequest
	if err := json.Unmarshal(readFixture(t, "seed004.curl-create-webhook.json"), &req); err != nil {
		t.Fatal(err)
	}
	if req.TargetURL != "https://abc123.ngrok.io/api/webhooks/attio" || len(req.Subscriptions) != 1 ||
		req.Subscriptions[0].EventType != RecordCreated || req.Subscriptions[0].Filter != nil {
		t.Errorf("curl create %+v", req)
	}
	if err := ValidateTargetURL(req.TargetURL); err != nil {
		t.Error(err)
	}
	var record struct {
		Data struct {
			Values struct {
				EmailAddresses []string `json:"email_addresses"`
			} `json:"values"`
		} `json:"data"`
	}
	if err := json.Unmarshal(readFixture(t, "seed004.curl-create-record.json"), &record); err != nil || record.Data.Values.EmailAddresses[0] != "webhook-test@example.com" {
		t.Errorf("curl record %+v %v", record, err)
	}

	// The guide's Step 1 request: its filters use an invented syntax that Attio
	// (and Filter) refuse; the unfiltered subscriptions are fine.
	var seedReq struct {
		TargetURL     string            `json:"target_url"`
		Subscriptions []json.RawMessage `json:"subscriptions"`
	}
	if err := json.Unmarshal(readFixture(t, "seed004.create-webhook.request.json"), &seedReq); err != nil {
		t.Fatal(err)
	}
	if len(seedReq.Subscriptions) != 7 {
		t.Fatalf("%d subscriptions", len(seedReq.Subscriptions))
	}
	var refused int
	for _, raw := range seedReq.Subscriptions {
		var s Subscription
		if err := json.Unmarshal(raw, &s); err != nil {
			if !errors.Is(err, ErrInvalidFilter) {
				t.Errorf("unexpected error %v", err)
			}
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d seed filters refused, want the 2 invented ones", refused)
	}

	var created struct{ Data Webhook }
	if err := json.Unmarshal(readFixture(t, "seed004.create-webhook.response.json"), &created); err != nil {
		t.Fatal(err)
	}
	if created.Data.ID.WebhookID != "23e42eaf-323a-41da-b5bb-fd67eebda553" || created.Data.Secret != "" || created.Data.Subscriptions[1].Filter != nil {
		t.Errorf("seed create response %+v", created.Data)
	}
	var listed struct{ Data []Webhook }
	if err := json.Unmarshal(readFixture(t, "seed004.list-webhooks.response.json"), &listed); err != nil || len(listed.Data) != 1 || listed.Data[0].Subscriptions[1].EventType != RecordUpdated {
		t.Errorf("seed list %+v %v", listed, err)
	}
	var update WebhookUpdateRequest
	if err := json.Unmarshal(readFixture(t, "seed004.update-webhook.request.json"), &update); err != nil || update.TargetURL != nil || len(*update.Subscriptions) != 2 {
		t.Errorf("seed update %+v %v", update, err)
	}

	// The guide's event interface: it parses as an event (event_type + id
	// object), but its id is not a record id, so typed decoding says which
	// key is missing.
	ev, err := ParseEvent(readFixture(t, "seed004.event.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != RecordCreated || ev.Actor.ID != "50cf242c-7fa3-4cad-87d0-75b1af71c57b" {
		t.Errorf("seed event %+v", ev)
	}
	_, err = ev.DecodeBody()
	var mk *MissingKeyError
	if !errors.As(err, &mk) || mk.Key != "id.workspace_id" {
		t.Errorf("seed event decode: %v", err)
	}
}

func TestDesignFixtures(t *testing.T) {
	var f Filter
	if err := json.Unmarshal(readFixture(t, "design.filter.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.And) != 2 || f.And[0] != Equals("id.list_id", "33ebdbe9-e529-47c9-b894-0ba25e9c15c0") || f.And[1] != NotEquals("actor.type", "system") {
		t.Errorf("filter %+v", f)
	}
	d, err := Parse(readFixture(t, "design.delivery.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.MatchJSON(d.Events[0].Raw); !ok {
		t.Error("DESIGN's filter should match DESIGN's delivery")
	}
	for name, code := range map[string]string{"design.error.404.json": "not_found", "design.error.400.json": "validation_type", "design.error.429.json": "rate_limit_exceeded"} {
		var e struct {
			StatusCode int    `json:"status_code"`
			Code       string `json:"code"`
		}
		if err := json.Unmarshal(readFixture(t, name), &e); err != nil || e.Code != code || e.StatusCode == 0 {
			t.Errorf("%s: %+v %v", name, e, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"", "events"} {
		files, _ := filepath.Glob(filepath.Join("..", "testdata", "attio", dir, "*.json"))
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(`{"webhook_id":"w","events":[{"event_type":"x","id":{}}]}`))
	f.Add([]byte(`{"event_type":"x","id":{},"actor":null,"parent_object_id":null}`))
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`{"webhook_id":"w","events":[{"event_type":"x","id":{},"Event_Type":"y"}]}`))
	f.Add([]byte(`{"webhook_id":"w","Webhook_ID":"v","events":[{"event_type":"x","id":{"record_id":"a","RECORD_ID":"b"}}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error does not wrap ErrParse: %v", err)
			}
			return
		}
		if len(d.Events) == 0 {
			t.Fatal("a parsed delivery has no events")
		}
		// A consumer decoding the same bytes with encoding/json (which
		// matches keys case-insensitively) reads what Parse read.
		var lax struct {
			WebhookID string `json:"webhook_id"`
		}
		if d.WebhookID != "" && (json.Unmarshal(raw, &lax) != nil || lax.WebhookID != d.WebhookID) {
			t.Fatalf("encoding/json reads webhook_id %q, Parse %q", lax.WebhookID, d.WebhookID)
		}
		for _, ev := range d.Events {
			var laxEv struct {
				EventType string `json:"event_type"`
				Actor     struct {
					Type *string `json:"type"`
				} `json:"actor"`
			}
			if json.Unmarshal(ev.Raw, &laxEv) != nil || laxEv.EventType != string(ev.Type) ||
				(laxEv.Actor.Type != nil && *laxEv.Actor.Type != ev.Actor.Type) {
				t.Fatalf("encoding/json reads another event than Parse: %q vs %q", laxEv.EventType, ev.Type)
			}
			if ev.Type == "" || len(ev.ID) == 0 || ev.ID[0] != '{' || !json.Valid(ev.Raw) {
				t.Fatalf("invalid event accepted: %+v", ev)
			}
			again, err := ParseEvent(ev.Raw)
			if err != nil || again.Type != ev.Type || again.Actor != ev.Actor {
				t.Fatalf("event does not re-parse: %v", err)
			}
			// Typed decoding never panics either.
			if _, err := ev.DecodeBody(); err != nil && !errors.Is(err, ErrParse) {
				t.Fatalf("decode error does not wrap ErrParse: %v", err)
			}
		}
	})
}
