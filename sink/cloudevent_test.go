package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
)

// testEvent returns an Affinity person.created event whose payload keeps
// some whitespace, so verbatim copying is observable.
func testEvent() *crmhook.Event {
	return &crmhook.Event{
		ID:         "0190a5f2-7c1e-7b3a-9f00-000000000001",
		Source:     "affinity",
		Provider:   crmhook.ProviderAffinity,
		Type:       "person.created",
		DedupeKey:  "person.created:1700000000:0123456789abcdef",
		OccurredAt: time.Date(2023, 11, 14, 22, 13, 20, 0, time.FixedZone("PST", -8*3600)),
		ReceivedAt: time.Date(2023, 11, 15, 6, 13, 21, 500_000_000, time.UTC),
		Payload:    json.RawMessage(`{"type": "person.created", "body": {"id": 42, "first_name": "Ada", "note": "<b>&</b>"}, "sent_at": 1700000000}`),
	}
}

// ceDoc is a decoded CloudEvent as a consumer sees it.
type ceDoc struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	DedupeKey       string          `json:"crmhookdedupekey"`
	ReceivedAt      string          `json:"crmhookreceivedat"`
	Data            json.RawMessage `json:"data"`
}

func decodeCE(t *testing.T, b []byte) ceDoc {
	t.Helper()
	var doc ceDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode CloudEvent: %v", err)
	}
	return doc
}

func TestCloudEventAttributes(t *testing.T) {
	ev := testEvent()
	b, err := CloudEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	doc := decodeCE(t, b)
	want := ceDoc{
		SpecVersion:     "1.0",
		ID:              ev.ID,
		Source:          "/crmhook/affinity",
		Type:            "affinity.person.created",
		Time:            "2023-11-15T06:13:20Z", // OccurredAt, in UTC
		DataContentType: "application/json",
		DedupeKey:       ev.DedupeKey,
		ReceivedAt:      "2023-11-15T06:13:21.5Z",
	}
	got := doc
	got.Data = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attributes:\n got %+v\nwant %+v", got, want)
	}
	// data is the payload byte for byte: no re-encoding, no HTML escaping.
	if !bytes.Equal(doc.Data, ev.Payload) {
		t.Errorf("data = %s, want the payload verbatim %s", doc.Data, ev.Payload)
	}
	if !bytes.Contains(b, ev.Payload) {
		t.Errorf("encoded event does not contain the payload verbatim")
	}
}

func TestCloudEventExtensionNames(t *testing.T) {
	b, err := CloudEvent(testEvent())
	if err != nil {
		t.Fatal(err)
	}
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(b, &attrs); err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`^[a-z0-9]+$`)
	for name := range attrs {
		if !valid.MatchString(name) {
			t.Errorf("attribute name %q is not lowercase alphanumeric", name)
		}
	}
	for _, required := range []string{"specversion", "id", "source", "type"} {
		if _, ok := attrs[required]; !ok {
			t.Errorf("required attribute %q missing", required)
		}
	}
}

func TestCloudEventTimeFallsBackToReceivedAt(t *testing.T) {
	ev := testEvent()
	ev.OccurredAt = time.Time{}
	ev.DedupeKey = ""
	b, err := CloudEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	doc := decodeCE(t, b)
	if doc.Time != "2023-11-15T06:13:21.5Z" {
		t.Errorf("time = %q, want ReceivedAt", doc.Time)
	}
	if bytes.Contains(b, []byte("crmhookdedupekey")) {
		t.Errorf("empty dedupe key should be left out: %s", b)
	}
}

func TestCloudEventSourceIsEscaped(t *testing.T) {
	ev := testEvent()
	ev.Source = "team a/b"
	b, err := CloudEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeCE(t, b).Source; got != "/crmhook/team%20a%2Fb" {
		t.Errorf("source = %q", got)
	}
}

func TestCloudEventInvalidPayload(t *testing.T) {
	ev := testEvent()
	ev.Payload = json.RawMessage(`{"secret-ish": "value"`)
	_, err := CloudEvent(ev)
	if !errors.Is(err, ErrInvalidPayload) {
		t.Fatalf("err = %v, want ErrInvalidPayload", err)
	}
	if bytes.Contains([]byte(err.Error()), []byte("secret-ish")) {
		t.Errorf("error carries payload data: %v", err)
	}
}

func TestCloudEventEmptyPayloadHasNoData(t *testing.T) {
	ev := testEvent()
	ev.Payload = nil
	b, err := CloudEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	if doc := decodeCE(t, b); doc.Data != nil {
		t.Errorf("data = %s, want none", doc.Data)
	}
}

// TestCloudEventTypeOfOperationalEvents: crmhook's own events keep their
// type as it is, so that `types: ["crmhook.*"]` and the CloudEvent type agree.
func TestCloudEventTypeOfOperationalEvents(t *testing.T) {
	ev := &crmhook.Event{ID: "e1", Source: "affinity", Provider: crmhook.ProviderCrmhook, Type: "crmhook.subscription.reenabled",
		ReceivedAt: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), Payload: []byte(`{"source":"affinity"}`)}
	b, err := CloudEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &got); err != nil || got.Type != "crmhook.subscription.reenabled" {
		t.Fatalf("type %q (%v), want crmhook.subscription.reenabled", got.Type, err)
	}
	if !(crmhook.SinkFilter{Types: []string{"crmhook.*"}}).Match(ev) {
		t.Error("types: [crmhook.*] does not match an operational event")
	}
}
