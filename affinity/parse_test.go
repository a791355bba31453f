package affinity

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
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
		{"sent_at first", `{"sent_at":1700000000,"type":"person.created","body":{"id":1}}`, PersonCreated, `{"id":1}`, 1700000000},
		{"body first", `{"body":{"id":1},"sent_at":1700000000,"type":"person.created"}`, PersonCreated, `{"id":1}`, 1700000000},
		{"extra key before", `{"id":1,"type":"x","body":{},"sent_at":1700000000}`, "x", `{}`, 1700000000},
		{"extra keys between", `{"type":"x","v":2,"body":{},"w":{"type":1},"sent_at":1700000000}`, "x", `{}`, 1700000000},
		{"nested case variants are body data", `{"type":"x","body":{"Type":1,"type":2},"sent_at":1700000000}`, "x", `{"Type":1,"type":2}`, 1700000000},
		{"escaped key", `{"typ\u0065":"x","body":{},"sent_at":1700000000}`, "x", `{}`, 1700000000},
		{"extra keys that are case variants of each other", `{"type":"x","body":{},"sent_at":1700000000,"version":1,"Version":2}`, "x", `{}`, 1700000000},
		{"probe, reordered", `{"sent_at":1700000000,"body":{"test":true},"type":"sample.webhook"}`, SampleWebhook, `{"test":true}`, 1700000000},
		{"smart interaction value, object body", `{"type":"smart_interaction_value.updated","body":{"entity_id":1},"sent_at":1700000000}`, SmartInteractionValueUpdated, `{"entity_id":1}`, 1700000000},
		{"smart interaction value, array body", `{"type":"smart_interaction_value.updated","body":[1],"sent_at":1700000000}`, SmartInteractionValueUpdated, `[1]`, 1700000000},
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
		{"duplicate key", `{"type":"x","body":{},"sent_at":1700000000,"type":"y"}`, []error{ErrInvalidPayload}, nil, `duplicate key "type"`},
		{"duplicate key, reordered", `{"sent_at":1700000000,"body":{},"sent_at":1,"type":"x"}`, []error{ErrInvalidPayload}, nil, `duplicate key "sent_at"`},
		{"duplicate extra key", `{"type":"x","body":{},"sent_at":1700000000,"v":1,"v":2}`, []error{ErrInvalidPayload}, nil, `duplicate key "v"`},
		{"duplicate through an escape", `{"type":"x","body":{},"sent_at":1700000000,"b\u006fdy":[]}`, []error{ErrInvalidPayload}, nil, `duplicate key "body"`},
		{"case variant after sent_at", `{"type":"person.created","body":{"id":1},"sent_at":1700000000,"Type":"note.created"}`, []error{ErrInvalidPayload}, []error{ErrMissingKey}, `key "Type" differs from "type" only by case`},
		{"case variant first", `{"BODY":[],"type":"x","body":{},"sent_at":1700000000}`, []error{ErrInvalidPayload}, nil, `key "BODY" differs from "body" only by case`},
		{"case variant instead of key", `{"type":"x","body":{},"Sent_At":1700000000}`, []error{ErrInvalidPayload}, []error{ErrMissingKey}, `key "Sent_At" differs from "sent_at" only by case`},
		{"Unicode case variant", "{\"type\":\"x\",\"body\":{},\"sent_at\":1700000000,\"\u017fent_at\":1}", []error{ErrInvalidPayload}, nil, `differs from "sent_at" only by case`},
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
	const hour = 3600
	cases := []struct {
		name   string
		sentAt int64
		opts   []ParseOption
		want   error // nil, ErrTooOld or ErrTooNew
	}{
		{"now", now, nil, nil},
		// Affinity retries for up to 10 hours: the default keeps them all.
		{"a 10-hour-old retry", now - 10*hour, nil, nil},
		{"at max age", now - 12*hour, nil, nil},
		{"past max age", now - 12*hour - 1, nil, ErrTooOld},
		{"at max skew", now + 120, nil, nil},
		{"past max skew", now + 121, nil, ErrTooNew},
		{"epoch zero", 0, nil, ErrTooOld},
		{"far future", 253402300799, nil, ErrTooNew},
		{"tightened age", now - 300, []ParseOption{WithMaxAge(5 * time.Minute)}, nil},
		{"tightened age exceeded", now - 301, []ParseOption{WithMaxAge(5 * time.Minute)}, ErrTooOld},
		{"custom skew", now + 10, []ParseOption{WithMaxFutureSkew(5 * time.Second)}, ErrTooNew},
		{"age off", 0, []ParseOption{WithoutMaxAge()}, nil},
		{"age off, future still checked", now + 121, []ParseOption{WithoutMaxAge()}, ErrTooNew},
		{"skew off", 253402300799, []ParseOption{WithoutMaxFutureSkew()}, nil},
		{"skew off, age still checked", now - 12*hour - 1, []ParseOption{WithoutMaxFutureSkew()}, ErrTooOld},
		{"both off", 1, []ParseOption{WithoutMaxAge(), WithoutMaxFutureSkew()}, nil},
		{"re-enabled after off", now - 301, []ParseOption{WithoutMaxAge(), WithMaxAge(5 * time.Minute)}, ErrTooOld},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := ParseString(body(c.sentAt), append([]ParseOption{parseAtNow()}, c.opts...)...)
			if c.want == nil {
				if err != nil || ev == nil {
					t.Fatalf("%v %v", ev, err)
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
			// An event or an error, never both; the stale event rides in
			// the error.
			if ev != nil {
				t.Errorf("event returned with an error: %+v", ev)
			}
			var stale *StaleError
			if !errors.As(err, &stale) || stale.Event == nil || stale.Event.Type != PersonUpdated || stale.Event.SentAtUnix != c.sentAt ||
				string(stale.Event.Raw) != body(c.sentAt) || !errors.Is(stale.Err, c.want) || stale.Error() != stale.Err.Error() {
				t.Errorf("stale error %#v", stale)
			}
		})
	}
}

func TestParseDefaultWindow(t *testing.T) {
	if DefaultMaxAge != 12*time.Hour || DefaultMaxFutureSkew != 2*time.Minute {
		t.Errorf("defaults %s, %s; want 12h, 2m", DefaultMaxAge, DefaultMaxFutureSkew)
	}
}

func TestStaleErrorWithoutErr(t *testing.T) {
	err := error(&StaleError{Event: &Event{Type: PersonCreated}})
	if !errors.Is(err, ErrInvalidSentAt) || !errors.Is(err, ErrParse) || errors.Is(err, ErrTooOld) || errors.Is(err, ErrInvalidPayload) || err.Error() == "" {
		t.Errorf("%v", err)
	}
}

// A zero or negative duration never means "off": off is WithoutMaxAge or
// WithoutMaxFutureSkew. Parse refuses such options before looking at data.
func TestParseRefusesNonPositiveOptions(t *testing.T) {
	fresh := string(NewEnvelope(NoteCreated, SampleBody(NoteCreated), parseNow))
	cases := []struct {
		name string
		opt  ParseOption
		want string
	}{
		{"zero age", WithMaxAge(0), "affinity: max age must be positive"},
		{"negative age", WithMaxAge(-time.Hour), "affinity: max age must be positive"},
		{"zero skew", WithMaxFutureSkew(0), "affinity: max future skew must be positive"},
		{"negative skew", WithMaxFutureSkew(-time.Second), "affinity: max future skew must be positive"},
		{"zero body limit", WithMaxBodyBytes(0), "affinity: max body bytes must be positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, in := range []string{fresh, `not json`} {
				ev, err := ParseString(in, parseAtNow(), c.opt)
				if ev != nil || !errors.Is(err, ErrInvalidOption) || errors.Is(err, ErrParse) || !strings.HasPrefix(err.Error(), c.want) {
					t.Errorf("%q: %v %v", in, ev, err)
				}
			}
			// The refusal survives a later valid option.
			if _, err := ParseString(fresh, parseAtNow(), c.opt, WithMaxAge(time.Hour), WithMaxFutureSkew(time.Hour), WithMaxBodyBytes(1<<20)); !errors.Is(err, ErrInvalidOption) {
				t.Errorf("later option cleared the refusal: %v", err)
			}
		})
	}
}

func TestParseMaxBodyBytes(t *testing.T) {
	data := NewEnvelope(NoteCreated, SampleBody(NoteCreated), parseNow)
	if _, err := Parse(data, parseAtNow(), WithMaxBodyBytes(int64(len(data)))); err != nil {
		t.Fatal(err)
	}
	ev, err := Parse(data, parseAtNow(), WithMaxBodyBytes(int64(len(data))-1))
	if ev != nil || !errors.Is(err, ErrBodyTooLarge) || errors.Is(err, ErrParse) {
		t.Errorf("%v %v", ev, err)
	}
}

// Every position of every case variant of every envelope key is refused,
// and so is every duplicate; any order of the three keys, with extra keys
// anywhere, is accepted.
func TestParseKeyOrderAndCaseVariants(t *testing.T) {
	members := map[string]string{"type": `"person.created"`, "body": `{"id":1}`, "sent_at": `1700000000`}
	perms := [][]string{
		{"type", "body", "sent_at"}, {"type", "sent_at", "body"}, {"body", "type", "sent_at"},
		{"body", "sent_at", "type"}, {"sent_at", "type", "body"}, {"sent_at", "body", "type"},
	}
	build := func(keys []string, vals map[string]string) string {
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = `"` + k + `":` + vals[k]
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	vals := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range members {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, perm := range perms {
		for pos := 0; pos <= len(perm); pos++ {
			keys := slices.Insert(slices.Clone(perm), pos, "extra")
			in := build(keys, vals(map[string]string{"extra": `{"x":1}`}))
			ev, err := ParseString(in, parseAtNow())
			if err != nil || ev.Type != PersonCreated || string(ev.Body) != `{"id":1}` || ev.SentAtUnix != 1700000000 {
				t.Errorf("%s: %v %+v", in, err, ev)
			}
			for _, known := range envelopeKeys {
				for _, variant := range []string{strings.ToUpper(known), strings.ToUpper(known[:1]) + known[1:]} {
					keys := slices.Insert(slices.Clone(perm), pos, variant)
					in := build(keys, vals(map[string]string{variant: `"note.created"`}))
					ev, err := ParseString(in, parseAtNow())
					if ev != nil || !errors.Is(err, ErrInvalidPayload) || !strings.Contains(err.Error(), strconv.Quote(variant)) {
						t.Errorf("%s: %v %+v", in, err, ev)
					}
				}
				in := build(slices.Insert(slices.Clone(perm), pos, known), vals(nil))
				if ev, err := ParseString(in, parseAtNow()); ev != nil || !errors.Is(err, ErrInvalidPayload) || !strings.Contains(err.Error(), "duplicate key") {
					t.Errorf("%s: %v %+v", in, err, ev)
				}
			}
		}
	}
}

// encoding/json matches keys case-insensitively (Unicode folding included)
// and keeps the last duplicate: for each of these envelopes it reads a
// different type, body or sent_at than the exact-case key holds, so Parse
// must refuse them all.
func TestParseAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"type":"person.created","body":{"id":1},"sent_at":1700000000,"Type":"note.created"}`,
		`{"type":"person.created","body":{"id":1},"sent_at":1700000000,"BODY":{"id":2}}`,
		"{\"type\":\"person.created\",\"body\":{\"id\":1},\"sent_at\":1700000000,\"\u017fent_at\":1}",
		`{"type":"person.created","body":{"id":1},"sent_at":1700000000,"type":"note.created"}`,
	} {
		var v struct {
			Type   string          `json:"type"`
			Body   json.RawMessage `json:"body"`
			SentAt json.RawMessage `json:"sent_at"`
		}
		if err := json.Unmarshal([]byte(in), &v); err != nil {
			t.Fatal(err)
		}
		if v.Type == "person.created" && string(v.Body) == `{"id":1}` && string(v.SentAt) == "1700000000" {
			t.Errorf("%s: encoding/json reads the exact-case keys; the case is pointless", in)
		}
		if ev, err := ParseString(in, parseAtNow()); ev != nil || !errors.Is(err, ErrInvalidPayload) {
			t.Errorf("%s: %v %+v", in, err, ev)
		}
	}
}

func TestParseDefaultClockAndNilOptions(t *testing.T) {
	fresh := NewEnvelope(NoteCreated, SampleBody(NoteCreated), time.Now())
	if _, err := Parse(fresh, nil, WithNow(nil)); err != nil {
		t.Fatal(err)
	}
	retried := NewEnvelope(NoteCreated, SampleBody(NoteCreated), time.Now().Add(-10*time.Hour))
	if _, err := Parse(retried); err != nil {
		t.Fatalf("a 10-hour-old retry: %v", err)
	}
	stale := NewEnvelope(NoteCreated, SampleBody(NoteCreated), time.Now().Add(-13*time.Hour))
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
		{"case variant", map[string]any{"type": "x", "body": map[string]any{}, "sent_at": 1, "Type": "y"}, ErrInvalidPayload},
	}
	for _, c := range errCases {
		ev, err := ParseMap(c.m, WithoutMaxAge())
		if !errors.Is(err, c.want) || !errors.Is(err, ErrParse) || ev != nil {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	// The window applies to maps too, and the error carries the event.
	ev, err := ParseMap(map[string]any{"type": "x", "body": nil, "sent_at": 1}, parseAtNow())
	var stale *StaleError
	if !errors.Is(err, ErrTooOld) || ev != nil || !errors.As(err, &stale) || string(stale.Event.Body) != "null" {
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
	// What NewEnvelope builds, Parse reads back.
	ev, err := Parse(NewEnvelope(ListCreated, SampleBody(ListCreated), at), WithNow(func() time.Time { return at }))
	if err != nil || ev.Type != ListCreated || !ev.SentAt.Equal(at) || string(ev.Body) != string(SampleBody(ListCreated)) {
		t.Errorf("%+v %v", ev, err)
	}
}

func TestEventTypes(t *testing.T) {
	ts := EventTypes()
	if len(ts) != 30 {
		t.Fatalf("%d event types, want 30", len(ts))
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
		opportunity.deleted file.created file.deleted reminder.created reminder.updated reminder.deleted
		smart_interaction_value.updated`) {
		if !seen[EventType(s)] {
			t.Errorf("%s missing", s)
		}
	}
	if FieldValueUpdated.String() != "field_value.updated" || ListEntryCreated != "list_entry.created" || OrganizationMerged != "organization.merged" ||
		SmartInteractionValueUpdated != "smart_interaction_value.updated" {
		t.Error("constant spelling")
	}
	if !SmartInteractionValueUpdated.Known() || SmartInteractionValueUpdated.documentedBody() || !PersonCreated.documentedBody() || SampleWebhook.documentedBody() {
		t.Error("documentedBody")
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
