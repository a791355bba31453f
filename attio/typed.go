package attio

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// Typed ids, one per event family: the "id" object of an event. Key names
// follow Attio's webhook reference.

// RecordID is the id of record.* events. AttributeID is set on record.updated.
type RecordID struct {
	WorkspaceID string `json:"workspace_id"`
	ObjectID    string `json:"object_id"`
	RecordID    string `json:"record_id"`
	AttributeID string `json:"attribute_id,omitempty"`
}

// ListEntryID is the id of list-entry.* events. AttributeID is set on
// list-entry.updated.
type ListEntryID struct {
	WorkspaceID string `json:"workspace_id"`
	ListID      string `json:"list_id"`
	EntryID     string `json:"entry_id"`
	AttributeID string `json:"attribute_id,omitempty"`
}

// ListID is the id of list.* events.
type ListID struct {
	WorkspaceID string `json:"workspace_id"`
	ListID      string `json:"list_id"`
}

// ListAttributeID is the id of list-attribute.* events.
type ListAttributeID struct {
	WorkspaceID string `json:"workspace_id"`
	ListID      string `json:"list_id"`
	AttributeID string `json:"attribute_id"`
}

// ObjectAttributeID is the id of object-attribute.* events.
type ObjectAttributeID struct {
	WorkspaceID string `json:"workspace_id"`
	ObjectID    string `json:"object_id"`
	AttributeID string `json:"attribute_id"`
}

// NoteID is the id of note.* and note-content.updated events.
type NoteID struct {
	WorkspaceID string `json:"workspace_id"`
	NoteID      string `json:"note_id"`
}

// CommentID is the id of comment.* events.
type CommentID struct {
	WorkspaceID string `json:"workspace_id"`
	CommentID   string `json:"comment_id"`
}

// TaskID is the id of task.* events.
type TaskID struct {
	WorkspaceID string `json:"workspace_id"`
	TaskID      string `json:"task_id"`
}

// WorkspaceMemberID is the id of workspace-member.* events.
type WorkspaceMemberID struct {
	WorkspaceID       string `json:"workspace_id"`
	WorkspaceMemberID string `json:"workspace_member_id"`
}

// CallRecordingID is the id of call-recording.* events.
type CallRecordingID struct {
	WorkspaceID     string `json:"workspace_id"`
	MeetingID       string `json:"meeting_id"`
	CallRecordingID string `json:"call_recording_id"`
}

// Validate methods report the first required id key that is missing, as a
// *MissingKeyError naming it ("id.record_id").

func (id RecordID) Validate() error {
	return require("id", "workspace_id", id.WorkspaceID, "object_id", id.ObjectID, "record_id", id.RecordID)
}
func (id ListEntryID) Validate() error {
	return require("id", "workspace_id", id.WorkspaceID, "list_id", id.ListID, "entry_id", id.EntryID)
}
func (id ListID) Validate() error {
	return require("id", "workspace_id", id.WorkspaceID, "list_id", id.ListID)
}
func (id ListAttributeID) Validate() error {
	return require("id", "workspace_id", id.WorkspaceID, "list_id", id.ListID, "attribute_id", id.AttributeID)
}
func (id ObjectAttributeID) Validate() error {
	return require("id", "workspace_id", id.WorkspaceID, "object_id", id.ObjectID, "attribute_id", id.AttributeID)
}
func (id NoteID) Validate() error {
	return require("id", "workspace_id", id.WorkspaceID, "note_id", id.NoteID)
}
func (id CommentID) Validate() error {
	return require("id", "workspace_id", id.WorkspaceID, "comment_id", id.CommentID)
}
func (id TaskID) Validate() error {
	return require("id", "workspace_id", id.WorkspaceID, "task_id", id.TaskID)
}
func (id WorkspaceMemberID) Validate() error {
	return require("id", "workspace_id", id.WorkspaceID, "workspace_member_id", id.WorkspaceMemberID)
}
func (id CallRecordingID) Validate() error {
	return require("id", "workspace_id", id.WorkspaceID, "meeting_id", id.MeetingID, "call_recording_id", id.CallRecordingID)
}

// require checks name/value pairs and reports the first empty one.
func require(prefix string, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return &MissingKeyError{Key: prefix + "." + pairs[i]}
		}
	}
	return nil
}

// DecodeID decodes ev.ID into a typed id (RecordID, NoteID, …) and checks its
// required keys when T has a Validate method. Errors wrap ErrParse.
func DecodeID[T any](ev *Event) (T, error) {
	var id T
	if ev == nil || len(ev.ID) == 0 {
		return id, &MissingKeyError{Key: "id"}
	}
	if err := json.Unmarshal(ev.ID, &id); err != nil {
		return id, fmt.Errorf("%w: id: %s", ErrInvalidPayload, typeErrorText(err))
	}
	if err := validateValue(&id); err != nil {
		return id, err
	}
	return id, nil
}

// Typed events, one per family: what a Router hands to handlers registered
// with On[RecordEvent] and so on, and what DecodeBody returns (as pointers).
// Each carries its typed id plus the family's context keys; the full event
// stays available as Event.Raw.

// RecordEvent is record.created|updated|deleted|merged.
type RecordEvent struct {
	EventType EventType `json:"event_type"`
	ID        RecordID  `json:"id"`
	Actor     Actor     `json:"actor"`
	// DuplicateObjectID and DuplicateRecordID are set on record.merged and
	// name the record merged away.
	DuplicateObjectID string `json:"duplicate_object_id,omitempty"`
	DuplicateRecordID string `json:"duplicate_record_id,omitempty"`
}

func (e RecordEvent) Validate() error {
	if err := e.ID.Validate(); err != nil {
		return err
	}
	if e.EventType == RecordMerged && e.DuplicateRecordID == "" {
		return &MissingKeyError{Key: "duplicate_record_id"}
	}
	return nil
}

// ListEntryEvent is list-entry.created|updated|deleted.
type ListEntryEvent struct {
	EventType      EventType   `json:"event_type"`
	ID             ListEntryID `json:"id"`
	ParentObjectID string      `json:"parent_object_id"`
	ParentRecordID string      `json:"parent_record_id"`
	Actor          Actor       `json:"actor"`
}

func (e ListEntryEvent) Validate() error { return e.ID.Validate() }

// ListEvent is list.created|updated|deleted.
type ListEvent struct {
	EventType EventType `json:"event_type"`
	ID        ListID    `json:"id"`
	Actor     Actor     `json:"actor"`
}

func (e ListEvent) Validate() error { return e.ID.Validate() }

// ListAttributeEvent is list-attribute.created|updated.
type ListAttributeEvent struct {
	EventType EventType       `json:"event_type"`
	ID        ListAttributeID `json:"id"`
	Actor     Actor           `json:"actor"`
}

func (e ListAttributeEvent) Validate() error { return e.ID.Validate() }

// ObjectAttributeEvent is object-attribute.created|updated.
type ObjectAttributeEvent struct {
	EventType EventType         `json:"event_type"`
	ID        ObjectAttributeID `json:"id"`
	Actor     Actor             `json:"actor"`
}

func (e ObjectAttributeEvent) Validate() error { return e.ID.Validate() }

// NoteEvent is note.created|updated|deleted and note-content.updated. The
// parent ids name the record the note is on.
type NoteEvent struct {
	EventType      EventType `json:"event_type"`
	ID             NoteID    `json:"id"`
	ParentObjectID string    `json:"parent_object_id"`
	ParentRecordID string    `json:"parent_record_id"`
	Actor          Actor     `json:"actor"`
}

func (e NoteEvent) Validate() error { return e.ID.Validate() }

// CommentEvent is comment.*. ObjectID and RecordID name the record the
// comment's thread is on; ListID and EntryID are set only when it is on a
// list entry (Attio sends null otherwise).
type CommentEvent struct {
	EventType EventType `json:"event_type"`
	ID        CommentID `json:"id"`
	ThreadID  string    `json:"thread_id"`
	ObjectID  string    `json:"object_id"`
	RecordID  string    `json:"record_id"`
	ListID    string    `json:"list_id"`
	EntryID   string    `json:"entry_id"`
	Actor     Actor     `json:"actor"`
}

func (e CommentEvent) Validate() error { return e.ID.Validate() }

// TaskEvent is task.created|updated|deleted.
type TaskEvent struct {
	EventType EventType `json:"event_type"`
	ID        TaskID    `json:"id"`
	Actor     Actor     `json:"actor"`
}

func (e TaskEvent) Validate() error { return e.ID.Validate() }

// WorkspaceMemberEvent is workspace-member.*.
type WorkspaceMemberEvent struct {
	EventType EventType         `json:"event_type"`
	ID        WorkspaceMemberID `json:"id"`
	Actor     Actor             `json:"actor"`
}

func (e WorkspaceMemberEvent) Validate() error { return e.ID.Validate() }

// CallRecordingEvent is call-recording.*.
type CallRecordingEvent struct {
	EventType EventType       `json:"event_type"`
	ID        CallRecordingID `json:"id"`
	Actor     Actor           `json:"actor"`
}

func (e CallRecordingEvent) Validate() error { return e.ID.Validate() }

type validator interface{ Validate() error }

// validateValue runs Validate on *T or T, whichever has it.
func validateValue[T any](p *T) error {
	if v, ok := any(p).(validator); ok {
		return v.Validate()
	}
	if rv := reflect.ValueOf(*p); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return nil // JSON null into a pointer: nothing to check, and no nil dereference
	}
	if v, ok := any(*p).(validator); ok {
		return v.Validate()
	}
	return nil
}

// typeErrorText describes a decoding error without quoting payload values
// (they may be PII).
func typeErrorText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "value"
		}
		return fmt.Sprintf("%s is a JSON %s, want %s", field, te.Value, te.Type)
	}
	return "not valid JSON of the expected shape"
}
