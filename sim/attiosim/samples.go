package attiosim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/crmhook/crmhook/attio"
)

// Fixed ids of the simulated workspace's schema, so filters such as
// id.list_id=SampleListID or id.object_id=SamplePeopleObjectID can be
// written before any event exists. The ids of the things an event is about
// (records, entries, notes…) are fresh UUIDs on every trigger, as two real
// events are about two different things.
const (
	SamplePeopleObjectID    = "959edfbc-00d8-454e-b372-439d0902d6fb" // the "people" object
	SampleCompaniesObjectID = "73eef125-6c20-4500-921f-b98a054bc09c" // the "companies" object
	SampleListID            = "3b291e91-b31a-4a7f-8643-6aeedce86612" // the "Sales pipeline" list (of companies)
	SampleObjectAttributeID = "220a80ea-ec0a-48a3-9c8e-3fb71e7b0392" // people.email_addresses
	SampleListAttributeID   = "c4f7a48f-14f1-4a9d-8e6d-6df7878238ab" // Sales pipeline's "stage"
	SampleActorID           = "1e2b8614-40da-4049-8742-8c93d23b181a" // the workspace member who acts
	SampleActorType         = "workspace-member"
)

// Errors of SampleEvent and Trigger (wrapped; match them with errors.Is).
var (
	ErrUnknownEventType = errors.New("attiosim: unknown event type")
	ErrInvalidEvent     = errors.New("attiosim: invalid event")
)

// EventTypes returns every event type the simulator can send: Attio's
// official types, then the unofficial extras. Subscriptions may name
// only these.
func EventTypes() []attio.EventType { return attio.AllEventTypes() }

// SampleEvent returns a realistic event of eventType in workspace
// workspaceID (empty means DefaultWorkspaceID), shaped per family as Attio
// sends it: for example record.* carry id {workspace_id, object_id,
// record_id} (plus attribute_id on record.updated), list-entry.* carry id
// {workspace_id, list_id, entry_id} with parent_object_id and
// parent_record_id, note.* carry id {workspace_id, note_id} with the parent
// record. Every event has actor {type, id}.
func SampleEvent(eventType, workspaceID string) (json.RawMessage, error) {
	ev, err := sampleEvent(attio.EventType(eventType), workspaceID, uuid.NewString)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}

// sampleEvent builds the event as a map, ready for a merge patch; newID
// gives the fresh ids.
func sampleEvent(t attio.EventType, ws string, newID func() string) (map[string]any, error) {
	if ws == "" {
		ws = DefaultWorkspaceID
	}
	if !t.Known() {
		return nil, fmt.Errorf("%w %s (known: %s)", ErrUnknownEventType, quoteShort(string(t)), knownTypes())
	}
	id := map[string]any{"workspace_id": ws}
	ev := map[string]any{
		"event_type": string(t),
		"id":         id,
		"actor":      map[string]any{"type": SampleActorType, "id": SampleActorID},
	}
	family, action, _ := strings.Cut(string(t), ".")
	switch family {
	case "record":
		id["object_id"] = SamplePeopleObjectID
		id["record_id"] = newID()
		switch action {
		case "updated":
			id["attribute_id"] = SampleObjectAttributeID
		case "merged":
			ev["duplicate_object_id"] = SamplePeopleObjectID
			ev["duplicate_record_id"] = newID()
		}
	case "list-entry":
		id["list_id"] = SampleListID
		id["entry_id"] = newID()
		if action == "updated" {
			id["attribute_id"] = SampleListAttributeID
		}
		ev["parent_object_id"] = SampleCompaniesObjectID
		ev["parent_record_id"] = newID()
	case "list":
		id["list_id"] = SampleListID
	case "list-attribute":
		id["list_id"] = SampleListID
		id["attribute_id"] = SampleListAttributeID
	case "object-attribute":
		id["object_id"] = SamplePeopleObjectID
		id["attribute_id"] = SampleObjectAttributeID
	case "note", "note-content":
		id["note_id"] = newID()
		ev["parent_object_id"] = SamplePeopleObjectID
		ev["parent_record_id"] = newID()
	case "comment":
		// A comment on a record's thread; list_id and entry_id are null
		// unless the thread is on a list entry, as Attio sends them.
		id["comment_id"] = newID()
		ev["thread_id"] = newID()
		ev["object_id"] = SamplePeopleObjectID
		ev["record_id"] = newID()
		ev["list_id"] = nil
		ev["entry_id"] = nil
	case "task":
		id["task_id"] = newID()
	case "workspace-member":
		id["workspace_member_id"] = newID()
	case "call-recording":
		id["meeting_id"] = newID()
		id["call_recording_id"] = newID()
	default:
		// Unreachable while every known type has a family above; kept so a
		// type added to the attio package fails loudly in the tests.
		return nil, fmt.Errorf("%w %s: no sample for its family", ErrUnknownEventType, quoteShort(string(t)))
	}
	return ev, nil
}

// buildEvent returns the event Trigger sends: the sample for eventType with
// override applied as a JSON merge patch (RFC 7386: objects merge key by
// key, null deletes a key, anything else replaces). An empty eventType is
// taken from the override's event_type.
func buildEvent(eventType string, override json.RawMessage, ws string, newID func() string) (string, []byte, error) {
	var patch map[string]any
	if len(bytes.TrimSpace(override)) > 0 && string(bytes.TrimSpace(override)) != "null" {
		dec := json.NewDecoder(bytes.NewReader(override))
		dec.UseNumber() // keep numbers exactly as given
		if err := dec.Decode(&patch); err != nil || patch == nil {
			return "", nil, fmt.Errorf("%w: the event override must be a JSON object", ErrInvalidEvent)
		}
		if dec.More() {
			return "", nil, fmt.Errorf("%w: the event override must be one JSON object", ErrInvalidEvent)
		}
		if v, ok := patch["event_type"]; ok {
			s, isString := v.(string)
			switch {
			case !isString:
				return "", nil, fmt.Errorf("%w: event_type must be a string", ErrInvalidEvent)
			case eventType == "":
				eventType = s
			case s != eventType:
				return "", nil, fmt.Errorf("%w: the override's event_type %s differs from %s",
					ErrInvalidEvent, quoteShort(s), quoteShort(eventType))
			}
		}
	}
	if eventType == "" {
		return "", nil, fmt.Errorf("%w: no event type given", ErrUnknownEventType)
	}
	ev, err := sampleEvent(attio.EventType(eventType), ws, newID)
	if err != nil {
		return "", nil, err
	}
	merged := mergePatch(ev, patch)
	body, err := json.Marshal(merged)
	if err != nil {
		return "", nil, fmt.Errorf("%w: encode: %v", ErrInvalidEvent, err)
	}
	// The event must stay parseable as an Attio event, or a receiver test
	// would be testing the override rather than the receiver.
	if _, err := attio.ParseEvent(body); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	return eventType, body, nil
}

// mergePatch applies patch to target per RFC 7386 and returns the result.
func mergePatch(target, patch map[string]any) map[string]any {
	for k, pv := range patch {
		if pv == nil {
			delete(target, k)
			continue
		}
		if pObj, ok := pv.(map[string]any); ok {
			tObj, _ := target[k].(map[string]any)
			if tObj == nil {
				tObj = map[string]any{}
			}
			target[k] = mergePatch(tObj, pObj)
			continue
		}
		target[k] = pv
	}
	return target
}

func knownTypes() string {
	names := make([]string, 0, len(attio.AllEventTypes()))
	for _, t := range attio.AllEventTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// quoteShort quotes s for an error message, cut short so a huge input cannot
// flood a log line.
func quoteShort(s string) string {
	const max = 64
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "…"
	}
	return fmt.Sprintf("%q", s)
}
