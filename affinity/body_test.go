package affinity

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const eventFixtureDir = "../testdata/affinity"

// eventFixtures returns every event fixture (the webhook.*.json files are
// API responses, not deliveries), read from disk.
func eventFixtures(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(eventFixtureDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		name := filepath.Base(p)
		if strings.HasPrefix(name, "webhook.") {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = data
	}
	if len(out) < 15 {
		t.Fatalf("found %d event fixtures in %s, want at least 15", len(out), eventFixtureDir)
	}
	return out
}

func mustParseTime(t *testing.T, layout, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(layout, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func bodyAs[T any](t *testing.T, body any) T {
	t.Helper()
	v, ok := body.(T)
	if !ok {
		t.Fatalf("body is %T, want %T", body, *new(T))
	}
	return v
}

func TestFixturesParseAndDecode(t *testing.T) {
	const old = "2006-01-02 15:04:05 -0700"
	checks := map[string]func(t *testing.T, ev *Event, body any){
		"organization.created.json": func(t *testing.T, ev *Event, body any) {
			o := bodyAs[*Organization](t, body)
			if o.ID != 64779194 || o.Name != "Affinity" || o.Domain == nil || *o.Domain != "affinity.co" ||
				len(o.Domains) != 1 || o.CrunchbaseUUID != nil || !o.Global {
				t.Errorf("%+v", o)
			}
		},
		"organization.merged.json": func(t *testing.T, ev *Event, body any) {
			m := bodyAs[*OrganizationMerge](t, body)
			if m.Changer == nil || m.Changer.ID != 38706 || m.Changer.Type != PersonInternal ||
				m.RemovedCompany == nil || m.RemovedCompany.ID != 64779194 || !m.RemovedCompany.Global ||
				m.Company == nil || m.Company.ID != 64779195 || m.Company.Global {
				t.Errorf("%+v", m)
			}
			if want := mustParseTime(t, old, "2021-11-15 13:45:16 -0800"); !m.MergedAt.Equal(want) {
				t.Errorf("merged_at %v, want %v", m.MergedAt, want)
			}
		},
		"person.created.json": func(t *testing.T, ev *Event, body any) {
			p := bodyAs[*Person](t, body)
			if p.ID != 38706 || p.Type != PersonExternal || p.FirstName != "John" || p.PrimaryEmail != "john@affinity.co" {
				t.Errorf("%+v", p)
			}
			if p.OrganizationIDs == nil || len(p.OrganizationIDs) != 0 || p.Emails == nil {
				t.Errorf("organization_ids [] must decode to an empty, non-nil slice: %#v", p.OrganizationIDs)
			}
		},
		"person.deleted.json": func(t *testing.T, ev *Event, body any) {
			p := bodyAs[*Person](t, body)
			if p.ID != 38706 || p.OrganizationIDs != nil {
				t.Errorf("absent organization_ids must stay nil: %#v", p.OrganizationIDs)
			}
		},
		"opportunity.created.json": func(t *testing.T, ev *Event, body any) {
			o := bodyAs[*Opportunity](t, body)
			if o.ID != 7460748 || o.Name != "Amazon - Project A" || o.PersonIDs == nil || o.OrganizationIDs == nil {
				t.Errorf("%#v", o)
			}
		},
		"opportunity.deleted.json": func(t *testing.T, ev *Event, body any) {
			o := bodyAs[*Opportunity](t, body)
			if o.ID != 7460748 || o.PersonIDs != nil || o.OrganizationIDs != nil {
				t.Errorf("%#v", o)
			}
		},
		"list.created.json": func(t *testing.T, ev *Event, body any) {
			l := bodyAs[*List](t, body)
			if l.ID != 450 || l.IPAddress != "208.253.143.17" || l.Type != nil || l.Name != "" {
				t.Errorf("%+v", l)
			}
		},
		"list_entry.created.json": func(t *testing.T, ev *Event, body any) {
			e := bodyAs[*ListEntry](t, body)
			if e.ID != 16367 || e.ListID != 450 || e.CreatorID == nil || *e.CreatorID != 38706 || e.EntityID != 287125 {
				t.Errorf("%+v", e)
			}
			// entity_type 1: decoded as an organization, whatever it looks like.
			if e.EntityType != EntityOrganization || e.Organization == nil || e.Organization.ID != 84547971 || e.Person != nil || e.Opportunity != nil {
				t.Errorf("entity by entity_type: %+v", e)
			}
			if !strings.Contains(string(e.Entity), `"jdoe2@jdoe2.com"`) {
				t.Errorf("raw entity lost: %s", e.Entity)
			}
			if want := mustParseTime(t, old, "2021-11-11 06:58:31 -0800"); !e.CreatedAt.Equal(want) {
				t.Errorf("created_at %v", e.CreatedAt)
			}
		},
		"list_entry.created.iso8601.json": func(t *testing.T, ev *Event, body any) {
			e := bodyAs[*ListEntry](t, body)
			if e.EntityType != EntityPerson || e.Person == nil || e.Person.ID != 70796737 || e.Person.LastName != "Doe" ||
				len(e.Person.Emails) != 1 || e.Organization != nil {
				t.Errorf("%+v", e)
			}
			if want := mustParseTime(t, time.RFC3339, "2021-09-08T16:55:50.321Z"); !e.CreatedAt.Equal(want) {
				t.Errorf("created_at %v", e.CreatedAt)
			}
			if _, off := e.CreatedAt.Zone(); off != -7*3600 {
				t.Errorf("offset %d, want -07:00 kept", off)
			}
		},
		"field.created.json": func(t *testing.T, ev *Event, body any) {
			f := bodyAs[*Field](t, body)
			if f.ID != 59 || f.Name != "Deals Amount" || f.ListID == nil || *f.ListID != 11 || f.ValueType != ValueNumber ||
				f.AllowsMultiple || f.DropdownOptions == nil || f.IPAddress != "206.253.143.17" {
				t.Errorf("%+v", f)
			}
		},
		"field_value.created.json": func(t *testing.T, ev *Event, body any) {
			v := bodyAs[*FieldValue](t, body)
			if v.ID != 250616 || v.FieldID != 337 || v.ListEntryID != nil || v.EntityID != 91407761 ||
				v.Field == nil || v.Field.Name != "Location" || v.Field.ListID != nil || v.Field.ValueType != ValueLocation {
				t.Errorf("%+v", v)
			}
			if !strings.Contains(string(v.Value), `"San Francisco"`) {
				t.Errorf("raw value lost: %s", v.Value)
			}
			tv, err := v.TypedValue()
			if err != nil {
				t.Fatal(err)
			}
			loc := bodyAs[*Location](t, tv)
			if loc.City == nil || *loc.City != "San Francisco" || loc.Continent != nil {
				t.Errorf("%+v", loc)
			}
		},
		"note.created.json": func(t *testing.T, ev *Event, body any) {
			n := bodyAs[*Note](t, body)
			if n.ID != 22984 || n.CreatorID != 860197 || len(n.PersonIDs) != 2 || n.PersonIDs[1] != 89734 ||
				n.OrganizationIDs == nil || n.ParentID != nil || n.IsMeeting || !strings.HasPrefix(n.Content, "Had a lunch") {
				t.Errorf("%+v", n)
			}
			if want := mustParseTime(t, old, "2021-11-11 07:21:10 -0800"); !n.CreatedAt.Equal(want) {
				t.Errorf("created_at %v", n.CreatedAt)
			}
		},
		"file.created.json": func(t *testing.T, ev *Event, body any) {
			f := bodyAs[*File](t, body)
			if f.ID != 43212 || f.Size != 993 || f.PersonID == nil || *f.PersonID != 10 || f.OrganizationID != nil ||
				f.OpportunityID != nil || f.UploaderID != 64056952 || f.CreatedAt.IsZero() {
				t.Errorf("%+v", f)
			}
		},
		"reminder.created.json": func(t *testing.T, ev *Event, body any) {
			r := bodyAs[*Reminder](t, body)
			if r.ID != 15326 || r.Type != ReminderRecurring || r.Status != ReminderActive || !r.CompletedAt.IsZero() ||
				r.ResetType == nil || *r.ResetType != 0 || r.ReminderDays == nil || *r.ReminderDays != 30 ||
				r.Creator == nil || r.Owner == nil || r.Completer != nil || r.Person == nil || r.Person.ID != 70796737 ||
				r.Organization != nil || r.Opportunity != nil {
				t.Errorf("%+v", r)
			}
			if want := mustParseTime(t, time.RFC3339, "2023-07-21T16:00:00Z"); !r.DueDate.Equal(want) {
				t.Errorf("due_date %v", r.DueDate)
			}
		},
		"sample.webhook.json": func(t *testing.T, ev *Event, body any) {
			if b := bodyAs[*SampleWebhookBody](t, body); !b.Test {
				t.Errorf("%+v", b)
			}
		},
	}
	for name, data := range eventFixtures(t) {
		t.Run(name, func(t *testing.T) {
			check, ok := checks[name]
			if !ok {
				t.Fatalf("no check for fixture %s: add one", name)
			}
			ev, err := Parse(data, WithoutMaxAge())
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSuffix(strings.TrimSuffix(name, ".json"), ".iso8601"); string(ev.Type) != want {
				t.Errorf("type %q, want %q", ev.Type, want)
			}
			if ev.Type != SampleWebhook && !ev.Type.Known() {
				t.Errorf("%q not Known", ev.Type)
			}
			if string(ev.Raw) != string(data) {
				t.Error("Raw is not the input")
			}
			body, err := ev.DecodeBody()
			if err != nil {
				t.Fatal(err)
			}
			check(t, ev, body)
		})
	}
}

func TestDeletedVariantsStayDistinguishable(t *testing.T) {
	var absent, empty, null Person
	for s, p := range map[string]*Person{`{"id":1}`: &absent, `{"id":1,"organization_ids":[]}`: &empty, `{"id":1,"organization_ids":null}`: &null} {
		if err := json.Unmarshal([]byte(s), p); err != nil {
			t.Fatal(err)
		}
	}
	if absent.OrganizationIDs != nil || empty.OrganizationIDs == nil || null.OrganizationIDs != nil {
		t.Fatalf("absent %#v empty %#v", absent.OrganizationIDs, empty.OrganizationIDs)
	}
	// And they encode back the way they came.
	for p, want := range map[*Person]string{&absent: `"organization_ids"`, &empty: `"organization_ids":[]`} {
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		has := strings.Contains(string(out), want)
		if (p == &absent) == has {
			t.Errorf("%s: contains %s = %v", out, want, has)
		}
	}
	var opp Opportunity
	if err := json.Unmarshal([]byte(`{"id":2,"name":"x","person_ids":[]}`), &opp); err != nil {
		t.Fatal(err)
	}
	if opp.PersonIDs == nil || opp.OrganizationIDs != nil {
		t.Errorf("%#v", opp)
	}
}

func TestListEntryEntityByType(t *testing.T) {
	cases := []struct {
		json             string
		person, org, opp bool
		wantErr          bool
	}{
		{json: `{"entity_type":0,"entity":{"id":1,"first_name":"A"}}`, person: true},
		{json: `{"entity_type":1,"entity":{"id":2,"name":"B"}}`, org: true},
		{json: `{"entity_type":8,"entity":{"id":3,"name":"C"}}`, opp: true},
		{json: `{"entity_type":5,"entity":{"id":4}}`},
		{json: `{"entity_type":0,"entity":null}`},
		{json: `{"entity_type":0}`},
		{json: `{"entity_type":0,"entity":{"id":"not a number"}}`, wantErr: true},
	}
	for _, c := range cases {
		var e ListEntry
		err := json.Unmarshal([]byte(c.json), &e)
		if (err != nil) != c.wantErr {
			t.Errorf("%s: err %v", c.json, err)
			continue
		}
		if c.wantErr {
			continue
		}
		if (e.Person != nil) != c.person || (e.Organization != nil) != c.org || (e.Opportunity != nil) != c.opp {
			t.Errorf("%s: person %v org %v opp %v", c.json, e.Person, e.Organization, e.Opportunity)
		}
	}
	// Marshalling keeps the raw entity, not the typed copies.
	var e ListEntry
	if err := json.Unmarshal([]byte(`{"id":9,"entity_type":1,"entity":{"id":2,"name":"B","extra":true}}`), &e); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(&e)
	if !strings.Contains(string(out), `"entity":{"id":2,"name":"B","extra":true}`) {
		t.Errorf("%s", out)
	}
}

func TestFieldValueTypedValue(t *testing.T) {
	cases := []struct {
		body string
		want string // fmt %v of the typed value
	}{
		{`{"value_type":0,"value":38706}`, "38706"},
		{`{"value_type":1,"value":64779194}`, "64779194"},
		{`{"value_type":2,"value":"Warm"}`, "Warm"},
		{`{"value_type":3,"value":12.5}`, "12.5"},
		{`{"value_type":4,"value":"2023-06-21T16:00:28.315-07:00"}`, "2023-06-21 16:00:28.315 -0700 -0700"},
		{`{"value_type":6,"value":"hello"}`, "hello"},
		{`{"value_type":7,"value":{"id":5,"text":"High","rank":1,"color":2}}`, "&{5 High 1 2}"},
		{`{"value_type":99,"value":{"a":1}}`, `[123 34 97 34 58 49 125]`},
		{`{"value_type":6,"value":null}`, "<nil>"},
		{`{"value_type":6}`, "<nil>"},
		{`{"value_type":0,"value":[1,2]}`, "[1 2]"},
		// The field's value type wins over the body's.
		{`{"value_type":0,"value":"x","field":{"value_type":6}}`, "x"},
	}
	for _, c := range cases {
		var v FieldValue
		if err := json.Unmarshal([]byte(c.body), &v); err != nil {
			t.Fatal(err)
		}
		got, err := v.TypedValue()
		if err != nil {
			t.Errorf("%s: %v", c.body, err)
			continue
		}
		if s := fmtTypedValue(got); s != c.want {
			t.Errorf("%s: got %s (%T), want %s", c.body, s, got, c.want)
		}
	}
	var v FieldValue
	_ = json.Unmarshal([]byte(`{"value_type":3,"value":"not a number"}`), &v)
	if _, err := v.TypedValue(); err == nil {
		t.Error("a string for a number field must fail")
	}
	var n float64
	v = FieldValue{Value: json.RawMessage(`7`)}
	if err := v.DecodeValue(&n); err != nil || n != 7 {
		t.Errorf("DecodeValue: %v %v", n, err)
	}
}

func fmtTypedValue(v any) string {
	if t, ok := v.(Time); ok {
		return t.Time.String()
	}
	return fmt.Sprint(v)
}
