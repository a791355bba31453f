package attio

import (
	"encoding/json"
	"slices"
)

// EventType names an Attio webhook event, e.g. "record.created". Strings
// that are not among the constants below are kept as they are: Attio adds
// event types over time and a receiver must not drop what it does not know.
type EventType string

// The event types in Attio's official reference.
const (
	RecordCreated          EventType = "record.created"
	RecordUpdated          EventType = "record.updated"
	RecordDeleted          EventType = "record.deleted"
	RecordMerged           EventType = "record.merged"
	ListEntryCreated       EventType = "list-entry.created"
	ListEntryUpdated       EventType = "list-entry.updated"
	ListEntryDeleted       EventType = "list-entry.deleted"
	ListCreated            EventType = "list.created"
	ListUpdated            EventType = "list.updated"
	ListDeleted            EventType = "list.deleted"
	ListAttributeCreated   EventType = "list-attribute.created"
	ListAttributeUpdated   EventType = "list-attribute.updated"
	ObjectAttributeCreated EventType = "object-attribute.created"
	ObjectAttributeUpdated EventType = "object-attribute.updated"
	NoteCreated            EventType = "note.created"
	NoteUpdated            EventType = "note.updated"
	NoteDeleted            EventType = "note.deleted"
	NoteContentUpdated     EventType = "note-content.updated"
	CommentCreated         EventType = "comment.created"
	CommentResolved        EventType = "comment.resolved"
	CommentUnresolved      EventType = "comment.unresolved"
	CommentDeleted         EventType = "comment.deleted"
	TaskCreated            EventType = "task.created"
	TaskUpdated            EventType = "task.updated"
	TaskDeleted            EventType = "task.deleted"
	WorkspaceMemberCreated EventType = "workspace-member.created"
	CallRecordingCreated   EventType = "call-recording.created"
)

// Event types some integration guides name but Attio's API reference does
// not list. They are known (typed decoding works for them) but not
// Official: the real API may refuse to subscribe to them.
const (
	CommentUpdated         EventType = "comment.updated"
	WorkspaceMemberUpdated EventType = "workspace-member.updated"
	CallRecordingUpdated   EventType = "call-recording.updated"
)

var officialEventTypes = []EventType{
	RecordCreated, RecordUpdated, RecordDeleted, RecordMerged,
	ListEntryCreated, ListEntryUpdated, ListEntryDeleted,
	ListCreated, ListUpdated, ListDeleted,
	ListAttributeCreated, ListAttributeUpdated,
	ObjectAttributeCreated, ObjectAttributeUpdated,
	NoteCreated, NoteUpdated, NoteDeleted, NoteContentUpdated,
	CommentCreated, CommentResolved, CommentUnresolved, CommentDeleted,
	TaskCreated, TaskUpdated, TaskDeleted,
	WorkspaceMemberCreated, CallRecordingCreated,
}

var extraEventTypes = []EventType{CommentUpdated, WorkspaceMemberUpdated, CallRecordingUpdated}

// AllEventTypes returns every known event type: the official ones, then the
// unofficial extras.
func AllEventTypes() []EventType {
	return slices.Concat(officialEventTypes, extraEventTypes)
}

// OfficialEventTypes returns the event types of Attio's reference.
func OfficialEventTypes() []EventType { return slices.Clone(officialEventTypes) }

// Known reports whether t is one of AllEventTypes.
func (t EventType) Known() bool {
	return slices.Contains(officialEventTypes, t) || slices.Contains(extraEventTypes, t)
}

// Official reports whether t is in Attio's reference.
func (t EventType) Official() bool { return slices.Contains(officialEventTypes, t) }

func (t EventType) String() string { return string(t) }

// Actor is who caused an event. Type is "workspace-member", "api-token",
// "system" and so on; ID may be empty (Attio sends null for some actors).
type Actor struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Event is one webhook event, as parsed by Parse, ParseDelivery or
// ParseEvent. Only the keys shared by every family are lifted out; the whole
// event stays in Raw, and DecodeBody or a Router turn it into the family's
// typed struct (RecordEvent, ListEntryEvent, …).
type Event struct {
	Type  EventType
	ID    json.RawMessage // always a JSON object; its keys depend on the family
	Actor Actor
	// ParentObjectID and ParentRecordID are set for list-entry, note and
	// note-content events, empty otherwise.
	ParentObjectID string
	ParentRecordID string
	// Raw is the event object exactly as received.
	Raw json.RawMessage
}

// MarshalJSON re-encodes the event as received, so nothing Attio sent is lost.
func (e *Event) MarshalJSON() ([]byte, error) {
	if len(e.Raw) == 0 {
		return []byte("null"), nil
	}
	return e.Raw, nil
}

// DecodeBody decodes the event into its family's typed struct with
// DefaultRegistry: a *RecordEvent for "record.created", and so on. Unknown
// types give the raw event as json.RawMessage.
func (e *Event) DecodeBody() (any, error) { return DefaultRegistry.Decode(e) }

// Delivery is one POST from Attio: the webhook it belongs to and its events.
// Attio sends one event per delivery today but documents the array as room
// for batching, so always iterate.
type Delivery struct {
	WebhookID string   `json:"webhook_id"`
	Events    []*Event `json:"events"`
}
