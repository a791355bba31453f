package affinity

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// EventType names an Affinity webhook event, e.g. "person.created". Strings
// that are not among the constants below are kept as they are: Affinity may
// add event types, and a receiver must preserve what it does not know rather
// than reject it (Known tells the two apart).
type EventType string

// The 30 event types Affinity delivers: the 29 of the V1 API's reference,
// and smart_interaction_value.updated, which the current API (version
// 2026-07-15) lists beside them for the webhooks both API versions share.
const (
	ListCreated         EventType = "list.created"
	ListUpdated         EventType = "list.updated"
	ListDeleted         EventType = "list.deleted"
	ListEntryCreated    EventType = "list_entry.created"
	ListEntryDeleted    EventType = "list_entry.deleted"
	NoteCreated         EventType = "note.created"
	NoteUpdated         EventType = "note.updated"
	NoteDeleted         EventType = "note.deleted"
	FieldCreated        EventType = "field.created"
	FieldUpdated        EventType = "field.updated"
	FieldDeleted        EventType = "field.deleted"
	FieldValueCreated   EventType = "field_value.created"
	FieldValueUpdated   EventType = "field_value.updated"
	FieldValueDeleted   EventType = "field_value.deleted"
	PersonCreated       EventType = "person.created"
	PersonUpdated       EventType = "person.updated"
	PersonDeleted       EventType = "person.deleted"
	OrganizationCreated EventType = "organization.created"
	OrganizationUpdated EventType = "organization.updated"
	OrganizationDeleted EventType = "organization.deleted"
	OrganizationMerged  EventType = "organization.merged"
	OpportunityCreated  EventType = "opportunity.created"
	OpportunityUpdated  EventType = "opportunity.updated"
	OpportunityDeleted  EventType = "opportunity.deleted"
	FileCreated         EventType = "file.created"
	FileDeleted         EventType = "file.deleted"
	ReminderCreated     EventType = "reminder.created"
	ReminderUpdated     EventType = "reminder.updated"
	ReminderDeleted     EventType = "reminder.deleted"

	// SmartInteractionValueUpdated fires when the value of a smart
	// interaction field (derived from emails, meetings and other
	// interactions, e.g. the date of the last email) changes. Affinity does
	// not document its body: it is kept as received and decodes to
	// json.RawMessage, and Parse accepts any JSON value as its body.
	SmartInteractionValueUpdated EventType = "smart_interaction_value.updated"
)

// SampleWebhook is the probe Affinity POSTs to a webhook URL when a
// subscription is created or updated ({"test": true} as body). It is not one
// of the subscribable event types: Known reports false for it. The
// subscription call fails unless the endpoint answers it with a 2xx.
const SampleWebhook EventType = "sample.webhook"

// knownEventTypes is sorted, so EventTypes can return a copy and Known can
// binary-search.
var knownEventTypes = func() []EventType {
	ts := []EventType{
		ListCreated, ListUpdated, ListDeleted,
		ListEntryCreated, ListEntryDeleted,
		NoteCreated, NoteUpdated, NoteDeleted,
		FieldCreated, FieldUpdated, FieldDeleted,
		FieldValueCreated, FieldValueUpdated, FieldValueDeleted,
		PersonCreated, PersonUpdated, PersonDeleted,
		OrganizationCreated, OrganizationUpdated, OrganizationDeleted, OrganizationMerged,
		OpportunityCreated, OpportunityUpdated, OpportunityDeleted,
		FileCreated, FileDeleted,
		ReminderCreated, ReminderUpdated, ReminderDeleted,
		SmartInteractionValueUpdated,
	}
	slices.Sort(ts)
	return ts
}()

// EventTypes returns the 30 event types Affinity delivers, sorted. The
// sample.webhook probe is not among them: nobody subscribes to it.
func EventTypes() []EventType { return slices.Clone(knownEventTypes) }

// Known reports whether t is one of EventTypes.
func (t EventType) Known() bool {
	_, ok := slices.BinarySearch(knownEventTypes, t)
	return ok
}

// documentedBody reports whether Affinity documents t's body as an object:
// true for the known types but smart_interaction_value.updated.
func (t EventType) documentedBody() bool {
	return t != SmartInteractionValueUpdated && t.Known()
}

func (t EventType) String() string { return string(t) }

// Event is one Affinity delivery: the envelope {"type", "body", "sent_at"}
// (in any order, possibly with other keys).
// Parse fills it; DecodeBody, a Registry or a Router turn Body into the
// typed struct of its family.
type Event struct {
	// Type is the event type, unknown types included.
	Type EventType
	// Body is the "body" value exactly as received: a JSON object for the
	// types whose bodies Affinity documents, any JSON value for the probe,
	// smart_interaction_value.updated and unknown types.
	Body json.RawMessage
	// SentAt is sent_at as a UTC time; SentAtUnix the same in epoch seconds
	// (what crmhook's dedupe key for Affinity uses).
	SentAt     time.Time
	SentAtUnix int64
	// Raw is the whole envelope exactly as received (for ParseMap: as
	// re-encoded). It holds personal data: never log it.
	Raw json.RawMessage
}

// DecodeBody decodes the body with DefaultRegistry: a *Person for
// "person.created", a *ListEntry for "list_entry.created", and so on.
// smart_interaction_value.updated and unknown types give the body as
// json.RawMessage.
func (e *Event) DecodeBody() (any, error) { return DefaultRegistry.Decode(e) }

// DecodeBody is (*Event).DecodeBody as a function.
func DecodeBody(ev *Event) (any, error) { return DefaultRegistry.Decode(ev) }

// NewEnvelope builds a delivery as Affinity sends it: {"type", "body",
// "sent_at"} in that order, sent_at in epoch seconds. body is embedded as
// given (it should be valid JSON; empty stands for null). Used by
// `crmhook send`, the simulator and tests.
func NewEnvelope(t EventType, body json.RawMessage, sentAt time.Time) []byte {
	typ, _ := json.Marshal(string(t)) // marshalling a string cannot fail
	if len(body) == 0 {
		body = json.RawMessage("null")
	}
	b := make([]byte, 0, len(typ)+len(body)+48)
	b = append(b, `{"type":`...)
	b = append(b, typ...)
	b = append(b, `,"body":`...)
	b = append(b, body...)
	b = append(b, `,"sent_at":`...)
	b = strconv.AppendInt(b, sentAt.Unix(), 10)
	return append(b, '}')
}
