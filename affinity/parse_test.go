package affinity

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// parseNow is the clock of the window tests: sent_at 1700000000 is "now".
var parseNow = time.Unix(1700000000, 0)

func parseAtNow() ParseOption { return WithNow(func() time.Time { return parseNow }) }

func TestParseValid(t *testing.T) {
	cases := []struct {
		name, in string
		wantType EventType
		wantBody string
		wantSent int64
	}{
		{"integer", `{"type":"person.created","body":{"id":1},"sent_at":1700000000}`, PersonCreated, `{"id":1}`, 1700000000},
		{"integral float", `{"type":"person.created","body":{"id":1},"sent_at":1.7e9}`, PersonCreated, `{"id":1}`, 1700000000},
		{"float with zero fraction", `{"type":"person.created","body":{"id":1},"sent_at":1700000000.0}`, PersonCreated, `{"id":1}`, 1700000000},
		{"digit string", `{"type":"person.created","body":{"id":1},"sent_at":"1700000000"}`, PersonCreated, `{"id":1}`, 1700000000},
		{"white space kept in body", "\n{ \"type\" : \"note.created\" , \"body\" : { \"id\" : 2 } , \"sent_at\" : 1700000000 }\n", NoteCreated, `{ "id" : 2 }`, 1700000000},
		{"extra keys after", `{"type":"list.created","body":{},"sent_at":1700000000,"version":1,"x":null}`, ListCreated, `{}`, 1700000000},
		{"unknown type kept", `{"type":"deal.closed","body":{"a":[1]},"sent_at":1700000000}`, "deal.closed", `{"a":[1]}`, 1700000000},
		{"unknown type, array body", `{"type":"deal.closed","body":[1,2],"sent_at":1700000000}`, "deal.closed", `[1,2]`, 1700000000},
		{"unknown type, null body", `{"type":"deal.closed","body":null,"sent_at":1700000000}`, "deal.closed", `null`, 1700000000},
		{"probe", `{"type":"sample.webhook","body":{"test":true},"sent_at":1700000000}`, SampleWebhook, `{"test":true}`, 1700000000},
		{"probe, odd body", `{"type":"sample.webhook","body":true,"sent_at":1700000000}`, SampleWebhook, `true`, 1700000000},
		{"negative zero", `{"type":"x","body":{},"sent_at":-0}`, "x", `{}`, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := ParseString(c.in, parseAtNow(), WithoutMaxAge())
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type != c.wantType || string(ev.Body) != c.wantBody || ev.SentAtUnix != c.wantSent ||
				!ev.SentAt.Equal(time.Unix(c.wantSent, 0)) || ev.SentAt.Location() != time.UTC || string(ev.Raw) != c.in {
				t.Errorf("got %+v", ev)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, in string
		is       []error // every one must match
		not      []error // none may match
		mention  string  // the message must contain this
	}{
		{"empty", ``, []error{ErrInvalidJSON}, nil, "empty"},
		{"blank", " \n\t", []error{ErrInvalidJSON}, nil, "empty"},
		{"syntax", `{"type":`, []error{ErrInvalidJSON}, []error{ErrInvalidPayload}, ""},
		{"not UTF-8", "{\"type\":\"a\xff\",\"body\":{},\"sent_at\":1}", []error{ErrInvalidJSON}, nil, "UTF-8"},
		{"trailing data", `{"type":"x","body":{},"sent_at":1700000000} {}`, []error{ErrInvalidJSON}, nil, "after top-level value"},
		{"trailing garbage", `{"type":"x","body":{},"sent_at":1700000000}x`, []error{ErrInvalidJSON}, nil, ""},
		{"array", `[{"type":"x","body":{},"sent_at":1700000000}]`, []error{ErrInvalidPayload}, []error{ErrInvalidJSON}, "not a JSON object"},
		{"string", `"hello"`, []error{ErrInvalidPayload}, nil, "not a JSON object"},
		{"null", `null`, []error{ErrInvalidPayload}, nil, "not a JSON object"},
		{"missing type", `{"body":{},"sent_at":1700000000}`, []error{ErrMissingKey, ErrInvalidPayload}, nil, `"type"`},
		{"missing body", `{"type":"x","sent_at":1700000000}`, []error{ErrMissingKey}, nil, `"body"`},
		{"missing sent_at", `{"type":"x","body":{}}`, []error{ErrMissingKey}, []error{ErrInvalidSentAt}, `"sent_at"`},
		{"empty object", `{}`, []error{ErrMissingKey}, nil, `"type"`},
		{"out of order body first", `{"body":{},"type":"x","sent_at":1700000000}`, []error{ErrInvalidPayload}, []error{ErrMissingKey}, `"type" out of order`},
		{"out of order sent_at second", `{"type":"x","sent_at":1700000000,"body":{}}`, []error{ErrInvalidPayload}, []error{ErrMissingKey}, `"body" out of order`},
		{"extra key before", `{"id":1,"type":"x","body":{},"sent_at":1700000000}`, []error{ErrInvalidPayload}, nil, `"type" out of order`},
		{"extra key between", `{"type":"x","body":{},"id":1,"sent_at":1700000000}`, []error{ErrInvalidPayload}, nil, `"sent_at" out of order`},
		{"duplicate key", `{"type":"x","body":{},"sent_at":1700000000,"type":"y"}`, []error{ErrInvalidPayload}, nil, `duplicate key "type"`},
		{"type number", `{"type":5,"body":{},"sent_at":1700000000}`, []error{ErrInvalidPayload}, nil, "type must be a string"},
		{"type null", `{"type":null,"body":{},"sent_at":1700000000}`, []error{ErrInvalidPayload}, nil, "type must be a string"},
		{"type empty", `{"type":"","body":{},"sent_at":1700000000}`, []error{ErrInvalidPayload}, nil, "type is empty"},
		{"known type, array body", `{"type":"person.created","body":[],"sent_at":1700000000}`, []error{ErrInvalidPayload}, nil, "body must be an object"},
		{"known type, null body", `{"type":"person.created","body":null,"sent_at":1700000000}`, []error{ErrInvalidPayload}, nil, "body must be an object"},
		{"known type, string body", `{"type":"note.deleted","body":"{}","sent_at":1700000000}`, []error{ErrInvalidPayload}, nil, "body must be an object"},
		{"sent_at fraction", `{"type":"x","body":{},"sent_at":1.5}`, []error{ErrInvalidSentAt, ErrInvalidPayload}, []error{ErrTooOld, ErrTooNew}, "whole number"},
		{"sent_at negative", `{"type":"x","body":{},"sent_at":-1}`, []error{ErrInvalidSentAt, ErrInvalidPayload}, []error{ErrTooOld}, "negative"},
		{"sent_at negative float", `{"type":"x","body":{},"sent_at":-1e3}`, []error{ErrInvalidSentAt}, nil, "negative"},
		{"sent_at huge negative", `{"type":"x","body":{},"sent_at":-99999999999999999999}`, []error{ErrInvalidSentAt}, nil, "negative"},
		{"sent_at after 9999", `{"type":"x","body":{},"sent_at":253402300800}`, []error{ErrInvalidSentAt}, []error{ErrTooNew}, "9999"},
		{"sent_at overflows int64", `{"type":"x","body":{},"sent_at":99999999999999999999}`, []error{ErrInvalidSentAt}, nil, "9999"},
		{"sent_at float too large", `{"type":"x","body":{},"sent_at":1e300}`, []error{ErrInvalidSentAt}, nil, "9999"},
		{"sent_at float overflows", `{"type":"x","body":{},"sent_at":1e400}`, []error{ErrInvalidSentAt}, nil, "out of range"},
		{"sent_at null", `{"type":"x","body":{},"sent_at":null}`, []error{ErrInvalidSentAt}, nil, "number of seconds"},
		{"sent_at bool", `{"type":"x","body":{},"sent_at":true}`, []error{ErrInvalidSentAt}, nil, ""},
		{"sent_at object", `{"type":"x","body":{},"sent_at":{}}`, []error{ErrInvalidSentAt}, nil, ""},
		{"sent_at empty string", `{"type":"x","body":{},"sent_at":""}`, []error{ErrInvalidSentAt}, nil, "digits only"},
		{"sent_at signed string", `{"type":"x","body":{},"sent_at":"-5"}`, []error{ErrInvalidSentAt}, nil, "digits only"},
		{"sent_at float string", `{"type":"x","body":{},"sent_at":"1.7e9"}`, []error{ErrInvalidSentAt}, nil, "digits only"},
		{"sent_at spaced string", `{"type":"x","body":{},"sent_at":" 1700000000"}`, []error{ErrInvalidSentAt}, nil, "digits only"},
		{"sent_at date string", `{"type":"x","body":{},"sent_at":"2023-11-14T22:13:20Z"}`, []error{ErrInvalidSentAt}, nil, "digits only"},
		{"sent_at string too large", `{"type":"x","body":{},"sent_at":"99999999999999999999"}`, []error{ErrInvalidSentAt}, nil, "9999"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := ParseString(c.in, parseAtNow(), WithoutMaxAge(), WithoutMaxFutureSkew())
			if err == nil {
				t.Fatalf("no error, event %+v", ev)
			}
			if ev != nil {
				t.Errorf("event returned with a non-window error: %+v", ev)
			}
			if !errors.Is(err, ErrParse) {
				t.Errorf("%v does not match ErrParse", err)
			}
			for _, target := range c.is {
				if !errors.Is(err, target) {
					t.Errorf("%v does not match %v", err, target)
				}
			}
			for _, target := range c.not {
				if errors.Is(err, target) {
					t.Errorf("%v matches %v", err, target)
				}
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("%q does not mention %q", err, c.mention)
			}
		})
	}
}

func TestParseMissingKeyError(t *testing.T) {
	_, err := ParseString(`{"type":"x","sent_at":1}`)
	var mk *MissingKeyError
	if !errors.As(err, &mk) || mk.Key != "body" {
		t.Fatalf("%v", err)
	}
	if !errors.Is(err, ErrMissingKey) || !errors.Is(err, ErrInvalidPayload) || !errors.Is(err, ErrParse) || errors.Is(err, ErrInvalidJSON) {
		t.Errorf("%v", err)
	}
}

func TestParseErrorsNeverQuoteValues(t *testing.T) {
	const secret = "jane.doe@example.com"
	for _, in := range []string{
		`{"type":"person.created","body":"` + secret + `","sent_at":1}`,
		`{"type":"x","body":{},"sent_at":"` + secret + `"}`,
		`{"type":"x","body":{"e":"` + secret + `"},"sent_at":1.5}`,
		`{"type":"x","body":{"e":"` + secret + `"}`,
		`{"type":"person.created","body":{"id":"` + secret + `"},"sent_at":1700000000}`,
	} {
		ev, err := ParseString(in, parseAtNow())
		if err == nil {
			_, err = ev.DecodeBody()
		}
		if err == nil {
			t.Fatalf("%s: no error", in)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks a value: %v", err)
		}
	}
}

func TestParseWindow(t *testing.T) {
	body := func(sentAt int64) string {
		return string(NewEnvelope(PersonUpdated, SampleBody(PersonUpdated), time.Unix(sentAt, 0)))
	}
	now := parseNow.Unix()
	cases := []struct {
		name   string
		sentAt int64
		opts   []ParseOption
		want   error // nil, ErrTooOld or ErrTooNew
	}{
		{"now", now, nil, nil},
		{"at max age", now - 300, nil, nil},
		{"past max age", now - 301, nil, ErrTooOld},
		{"at max skew", now + 120, nil, nil},
		{"past max skew", now + 121, nil, ErrTooNew},
		{"epoch zero", 0, nil, ErrTooOld},
		{"far future", 253402300799, nil, ErrTooNew},
		{"custom age", now - 3600, []ParseOption{WithMaxAge(12 * time.Hour)}, nil},
		{"custom age exceeded", now - 13*3600, []ParseOption{WithMaxAge(12 * time.Hour)}, ErrTooOld},
		{"custom skew", now + 10, []ParseOption{WithMaxFutureSkew(5 * time.Second)}, ErrTooNew},
		{"zero skew", now + 1, []ParseOption{WithMaxFutureSkew(0)}, ErrTooNew},
		{"negative skew is zero", now, []ParseOption{WithMaxFutureSkew(-time.Hour)}, nil},
		{"age off", 0, []ParseOption{WithoutMaxAge()}, nil},
		{"age off, future still checked", now + 121, []ParseOption{WithoutMaxAge()}, ErrTooNew},
		{"skew off", 253402300799, []ParseOption{WithoutMaxFutureSkew()}, nil},
		{"skew off, age still checked", now - 301, []ParseOption{WithoutMaxFutureSkew()}, ErrTooOld},
		{"both off", 1, []ParseOption{WithoutMaxAge(), WithoutMaxFutureSkew()}, nil},
		{"re-enabled after off", now - 301, []ParseOption{WithoutMaxAge(), WithMaxAge(DefaultMaxAge)}, ErrTooOld},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := ParseString(body(c.sentAt), append([]ParseOption{parseAtNow()}, c.opts...)...)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, c.want) || !errors.Is(err, ErrInvalidSentAt) || !errors.Is(err, ErrParse) || errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			other := map[error]error{ErrTooOld: ErrTooNew, ErrTooNew: ErrTooOld}[c.want]
			if errors.Is(err, other) {
				t.Errorf("%v also matches %v", err, other)
			}
			// Only the window is wrong: the event comes back with the error.
			if ev == nil || ev.Type != PersonUpdated || ev.SentAtUnix != c.sentAt {
				t.Errorf("event %+v", ev)
			}
		})
	}
}

func TestParseDefaultClockAndNilOptions(t *testing.T) {
	fresh := NewEnvelope(NoteCreated, SampleBody(NoteCreated), time.Now())
	if _, err := Parse(fresh, nil, WithNow(nil)); err != nil {
		t.Fatal(err)
	}
	stale := NewEnvelope(NoteCreated, SampleBody(NoteCreated), time.Now().Add(-time.Hour))
	if _, err := Parse(stale); !errors.Is(err, ErrTooOld) {
		t.Fatalf("err %v", err)
	}
}

func TestParseMap(t *testing.T) {
	body := map[string]any{"id": 38706.0, "first_name": "<John>", "organization_ids": []any{}}
	cases := []struct {
		name   string
		sentAt any
	}{
		{"float64", 1.7e9}, {"int", 1700000000}, {"int64", int64(1700000000)}, {"uint32", uint32(1700000000)},
		{"json.Number", json.Number("1700000000")}, {"string", "1700000000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Key order cannot matter for a map; extra keys are kept.
			m := map[string]any{"sent_at": c.sentAt, "zz": true, "body": body, "type": "person.created", "aa": 1}
			ev, err := ParseMap(m, parseAtNow())
			if err != nil {
				t.Fatal(err)
			}
			sent := "1700000000"
			if _, isString := c.sentAt.(string); isString {
				sent = `"1700000000"`
			}
			want := `{"type":"person.created","body":{"first_name":"<John>","id":38706,"organization_ids":[]},"sent_at":` + sent + `,"aa":1,"zz":true}`
			if ev.Type != PersonCreated || ev.SentAtUnix != 1700000000 || string(ev.Raw) != want {
				t.Errorf("got %s", ev.Raw)
			}
			p := bodyAs[*Person](t, mustBody(ev.DecodeBody()))
			if p.ID != 38706 || p.FirstName != "<John>" || p.OrganizationIDs == nil {
				t.Errorf("%+v", p)
			}
		})
	}
	errCases := []struct {
		name string
		m    map[string]any
		want error
	}{
		{"nil map", nil, ErrMissingKey},
		{"missing sent_at", map[string]any{"type": "x", "body": map[string]any{}}, ErrMissingKey},
		{"type not a string", map[string]any{"type": 1, "body": map[string]any{}, "sent_at": 1}, ErrInvalidPayload},
		{"fractional float", map[string]any{"type": "x", "body": map[string]any{}, "sent_at": 1.5}, ErrInvalidSentAt},
		{"NaN", map[string]any{"type": "x", "body": map[string]any{}, "sent_at": math.NaN()}, ErrInvalidSentAt},
		{"unencodable body", map[string]any{"type": "x", "body": func() {}, "sent_at": 1}, ErrInvalidPayload},
		{"unencodable extra", map[string]any{"type": "x", "body": map[string]any{}, "sent_at": 1, "f": make(chan int)}, ErrInvalidPayload},
		{"known type, list body", map[string]any{"type": "person.created", "body": []any{}, "sent_at": 1}, ErrInvalidPayload},
	}
	for _, c := range errCases {
		ev, err := ParseMap(c.m, WithoutMaxAge())
		if !errors.Is(err, c.want) || !errors.Is(err, ErrParse) || ev != nil {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	// The window applies to maps too, and returns the event.
	ev, err := ParseMap(map[string]any{"type": "x", "body": nil, "sent_at": 1}, parseAtNow())
	if !errors.Is(err, ErrTooOld) || ev == nil || string(ev.Body) != "null" {
		t.Errorf("%v %+v", err, ev)
	}
}

func mustBody[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestNewEnvelope(t *testing.T) {
	at := time.Unix(1687388429, 0)
	got := string(NewEnvelope("odd \"type\"", json.RawMessage(`{"a":1}`), at))
	if want := `{"type":"odd \"type\"","body":{"a":1},"sent_at":1687388429}`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if got := string(NewEnvelope(SampleWebhook, nil, at)); got != `{"type":"sample.webhook","body":null,"sent_at":1687388429}` {
		t.Errorf("nil body: %s", got)
	}
	// What NewEnvelope builds, Parse reads back, order check included.
	ev, err := Parse(NewEnvelope(ListCreated, SampleBody(ListCreated), at), WithNow(func() time.Time { return at }))
	if err != nil || ev.Type != ListCreated || !ev.SentAt.Equal(at) || string(ev.Body) != string(SampleBody(ListCreated)) {
		t.Errorf("%+v %v", ev, err)
	}
}

func TestEventTypes(t *testing.T) {
	ts := EventTypes()
	if len(ts) != 29 {
		t.Fatalf("%d event types, want 29", len(ts))
	}
	seen := map[EventType]bool{}
	for i, et := range ts {
		if i > 0 && ts[i-1] >= et {
			t.Errorf("not sorted or duplicated at %d: %s", i, et)
		}
		if !et.Known() || seen[et] {
			t.Errorf("%s", et)
		}
		seen[et] = true
	}
	ts[0] = "mutated"
	if EventTypes()[0] == "mutated" {
		t.Error("EventTypes returned its internal slice")
	}
	for _, et := range []EventType{SampleWebhook, "", "person.merged", "Person.Created", "record.created"} {
		if et.Known() {
			t.Errorf("%q must not be Known", et)
		}
	}
	// Every constant is spelled as the seeds spell it.
	for _, s := range strings.Fields(`list.created list.updated list.deleted list_entry.created list_entry.deleted
		note.created note.updated note.deleted field.created field.updated field.deleted field_value.created
		field_value.updated field_value.deleted person.created person.updated person.deleted organization.created
		organization.updated organization.deleted organization.merged opportunity.created opportunity.updated
		opportunity.deleted file.created file.deleted reminder.created reminder.updated reminder.deleted`) {
		if !seen[EventType(s)] {
			t.Errorf("%s missing", s)
		}
	}
	if FieldValueUpdated.String() != "field_value.updated" || ListEntryCreated != "list_entry.created" || OrganizationMerged != "organization.merged" {
		t.Error("constant spelling")
	}
}

func BenchmarkParse(b *testing.B) {
	data := NewEnvelope(ReminderCreated, SampleBody(ReminderCreated), parseNow)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, parseAtNow()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAndDecode(b *testing.B) {
	data := NewEnvelope(ReminderCreated, SampleBody(ReminderCreated), parseNow)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		ev, err := Parse(data, parseAtNow())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ev.DecodeBody(); err != nil {
			b.Fatal(err)
		}
	}
}
