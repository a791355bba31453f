package attio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Parse errors. Every error from Parse, ParseDelivery and ParseEvent wraps
// ErrParse, and also one of ErrInvalidJSON, ErrInvalidPayload or (through
// *MissingKeyError) ErrMissingKey. Messages name keys, never values: payloads
// hold personal data.
var (
	ErrParse          = errors.New("attio: cannot parse webhook payload")
	ErrInvalidJSON    = fmt.Errorf("%w: invalid JSON", ErrParse)
	ErrInvalidPayload = fmt.Errorf("%w: invalid payload", ErrParse)
	ErrMissingKey     = fmt.Errorf("%w: missing key", ErrInvalidPayload)
)

// MissingKeyError reports a required key that is absent (or, for ids,
// empty). Key is a path such as "events[0].id" or "id.record_id".
type MissingKeyError struct {
	Key string
}

func (e *MissingKeyError) Error() string {
	return ErrMissingKey.Error() + " " + strconv.Quote(e.Key)
}

// Is makes a *MissingKeyError match ErrMissingKey, ErrInvalidPayload and ErrParse.
func (e *MissingKeyError) Is(target error) bool {
	return target == ErrMissingKey || target == ErrInvalidPayload || target == ErrParse
}

// Parse accepts either a delivery {"webhook_id", "events": […]} or a bare
// event object {"event_type", "id", …}, and returns a Delivery (a bare event
// becomes a one-event delivery with an empty WebhookID). The rules are those
// of ParseDelivery and ParseEvent.
func Parse(raw []byte) (*Delivery, error) {
	obj, err := readObject(raw, "")
	if err != nil {
		return nil, err
	}
	_, hasEvents := obj.fields["events"]
	_, hasWebhook := obj.fields["webhook_id"]
	_, hasType := obj.fields["event_type"]
	switch {
	case hasEvents || hasWebhook:
		return deliveryFrom(obj)
	case hasType:
		ev, err := eventFrom(obj, raw, "")
		if err != nil {
			return nil, err
		}
		return &Delivery{Events: []*Event{ev}}, nil
	default:
		// A key such as "Events" or "EVENT_TYPE" is refused for what it is.
		if err := obj.checkCase(deliveryKeys, ""); err != nil {
			return nil, err
		}
		if err := obj.checkCase(eventKeys, ""); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: neither a delivery (events) nor an event (event_type)", &MissingKeyError{Key: "events"})
	}
}

// ParseDelivery parses what Attio POSTs: exactly one JSON object with a
// non-empty string "webhook_id" and a non-empty array "events" of event
// objects, each following ParseEvent's rules. No key may appear twice, and
// no key may differ from a key this package reads ("webhook_id", "events")
// only by case: encoding/json matches keys case-insensitively, so a
// consumer decoding the same bytes would otherwise read another value than
// this parser did. Other keys, in any order, are allowed (Attio may add
// some).
func ParseDelivery(raw []byte) (*Delivery, error) {
	obj, err := readObject(raw, "")
	if err != nil {
		return nil, err
	}
	return deliveryFrom(obj)
}

// ParseEvent parses one event object: exactly one JSON object with a
// non-empty string "event_type" and an object "id". "actor", when present,
// is an object of strings (or nulls); "parent_object_id" and
// "parent_record_id", when present, are strings or null. Unknown event
// types and extra keys are kept. In the event, its "id" and its "actor", no
// key may appear twice, and no key may differ only by case from a key this
// package reads there (event_type, id, actor, parent_object_id, the id keys
// of the typed ids such as record_id, …), for the reason ParseDelivery
// gives.
func ParseEvent(raw []byte) (*Event, error) {
	obj, err := readObject(raw, "")
	if err != nil {
		return nil, err
	}
	return eventFrom(obj, raw, "")
}

// The keys this package reads at each level of a delivery. A key differing
// from one of them only by case is refused at that level.
var (
	deliveryKeys = []string{"webhook_id", "events"}
	// eventKeys: the shared keys, then the family keys of the typed events.
	eventKeys = []string{"event_type", "id", "actor", "parent_object_id", "parent_record_id",
		"duplicate_object_id", "duplicate_record_id", "thread_id", "object_id", "record_id", "list_id", "entry_id"}
	idKeys = []string{"workspace_id", "object_id", "record_id", "attribute_id", "list_id", "entry_id",
		"note_id", "comment_id", "task_id", "workspace_member_id", "meeting_id", "call_recording_id"}
	actorKeys = []string{"type", "id"}
)

// object is a JSON object read key by key, so duplicates can be refused
// (encoding/json silently keeps the last).
type object struct {
	fields map[string]json.RawMessage
	keys   []string // in document order
}

// at names a location for an error message: "" for the top level.
func at(where string) string {
	if where == "" {
		return ""
	}
	return " in " + where
}

// join appends a key to a location path.
func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// readObject reads exactly one JSON object and refuses duplicate keys.
// where names the object in error messages ("events[0]", "events[0].id").
func readObject(raw []byte, where string) (*object, error) {
	if !utf8.Valid(raw) {
		// JSON is UTF-8 (RFC 8259); Go's decoder would quietly replace bad bytes.
		return nil, fmt.Errorf("%w: not UTF-8%s", ErrInvalidJSON, at(where))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	switch {
	case err == io.EOF:
		return nil, fmt.Errorf("%w: empty body", ErrInvalidJSON)
	case err != nil:
		return nil, fmt.Errorf("%w: %s", ErrInvalidJSON, syntaxText(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		if where == "" {
			return nil, fmt.Errorf("%w: not a JSON object", ErrInvalidPayload)
		}
		return nil, fmt.Errorf("%w: %s is not a JSON object", ErrInvalidPayload, where)
	}
	obj := &object{fields: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %s", ErrInvalidJSON, syntaxText(err))
		}
		key, ok := tok.(string)
		if !ok { // cannot happen with a well-formed object, but never trust
			return nil, fmt.Errorf("%w: object key is not a string", ErrInvalidJSON)
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrInvalidJSON, syntaxText(err))
		}
		if _, dup := obj.fields[key]; dup {
			return nil, fmt.Errorf("%w: duplicate key %s%s", ErrInvalidPayload, quoteKey(key), at(where))
		}
		obj.fields[key] = val
		obj.keys = append(obj.keys, key)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("%w: %s", ErrInvalidJSON, syntaxText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalidJSON)
	}
	return obj, nil
}

// checkCase refuses a key that differs from one of known only by case, with
// the case folding encoding/json uses to match keys to struct fields
// (strings.EqualFold: Unicode simple folding, so "K" (U+212A KELVIN SIGN)
// matches "k"). It applies wherever the key stands, whether or not the
// known key is present too.
func (o *object) checkCase(known []string, where string) error {
	for _, key := range o.keys {
		for _, k := range known {
			if key != k && strings.EqualFold(key, k) {
				return fmt.Errorf("%w: key %s differs from %q only by case%s", ErrInvalidPayload, quoteKey(key), k, at(where))
			}
		}
	}
	return nil
}

func deliveryFrom(obj *object) (*Delivery, error) {
	if err := obj.checkCase(deliveryKeys, ""); err != nil {
		return nil, err
	}
	d := &Delivery{}
	wid, ok := obj.fields["webhook_id"]
	if !ok {
		return nil, &MissingKeyError{Key: "webhook_id"}
	}
	if err := json.Unmarshal(wid, &d.WebhookID); err != nil || kind(wid) != '"' {
		return nil, fmt.Errorf("%w: webhook_id must be a string", ErrInvalidPayload)
	}
	if d.WebhookID == "" {
		return nil, fmt.Errorf("%w: webhook_id is empty", ErrInvalidPayload)
	}
	evs, ok := obj.fields["events"]
	if !ok {
		return nil, &MissingKeyError{Key: "events"}
	}
	var items []json.RawMessage
	if kind(evs) != '[' || json.Unmarshal(evs, &items) != nil {
		return nil, fmt.Errorf("%w: events must be an array", ErrInvalidPayload)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: events is empty", ErrInvalidPayload)
	}
	d.Events = make([]*Event, 0, len(items))
	for i, item := range items {
		prefix := "events[" + strconv.Itoa(i) + "]"
		eobj, err := readObject(item, prefix)
		if err != nil {
			return nil, err
		}
		ev, err := eventFrom(eobj, item, prefix)
		if err != nil {
			return nil, err
		}
		d.Events = append(d.Events, ev)
	}
	return d, nil
}

// eventFrom checks and lifts out an event's shared keys. where is the
// event's location ("events[0]", or "" for a bare event).
func eventFrom(obj *object, raw []byte, where string) (*Event, error) {
	if err := obj.checkCase(eventKeys, where); err != nil {
		return nil, err
	}
	prefix := ""
	if where != "" {
		prefix = where + "."
	}
	ev := &Event{Raw: bytes.Clone(bytes.TrimSpace(raw))}
	t, ok := obj.fields["event_type"]
	if !ok {
		return nil, &MissingKeyError{Key: prefix + "event_type"}
	}
	var typ string
	if kind(t) != '"' || json.Unmarshal(t, &typ) != nil {
		return nil, fmt.Errorf("%w: %sevent_type must be a string", ErrInvalidPayload, prefix)
	}
	if typ == "" {
		return nil, fmt.Errorf("%w: %sevent_type is empty", ErrInvalidPayload, prefix)
	}
	ev.Type = EventType(typ)

	id, ok := obj.fields["id"]
	if !ok {
		return nil, &MissingKeyError{Key: prefix + "id"}
	}
	if kind(id) != '{' {
		return nil, fmt.Errorf("%w: %sid must be an object", ErrInvalidPayload, prefix)
	}
	idObj, err := readObject(id, join(where, "id"))
	if err != nil {
		return nil, err
	}
	if err := idObj.checkCase(idKeys, join(where, "id")); err != nil {
		return nil, err
	}
	ev.ID = bytes.Clone(id)

	if a, ok := obj.fields["actor"]; ok && kind(a) != 'n' {
		if kind(a) != '{' {
			return nil, fmt.Errorf("%w: %sactor must be an object of strings", ErrInvalidPayload, prefix)
		}
		actorObj, err := readObject(a, join(where, "actor"))
		if err != nil {
			return nil, err
		}
		if err := actorObj.checkCase(actorKeys, join(where, "actor")); err != nil {
			return nil, err
		}
		var actor struct {
			Type *string `json:"type"`
			ID   *string `json:"id"`
		}
		if json.Unmarshal(a, &actor) != nil {
			return nil, fmt.Errorf("%w: %sactor must be an object of strings", ErrInvalidPayload, prefix)
		}
		if actor.Type != nil {
			ev.Actor.Type = *actor.Type
		}
		if actor.ID != nil {
			ev.Actor.ID = *actor.ID
		}
	}
	for _, key := range []string{"parent_object_id", "parent_record_id"} {
		dst := &ev.ParentObjectID
		if key == "parent_record_id" {
			dst = &ev.ParentRecordID
		}
		v, ok := obj.fields[key]
		if !ok || kind(v) == 'n' {
			continue
		}
		if kind(v) != '"' || json.Unmarshal(v, dst) != nil {
			return nil, fmt.Errorf("%w: %s%s must be a string", ErrInvalidPayload, prefix, key)
		}
	}
	return ev, nil
}

// kind is the first byte of a JSON value: '{', '[', '"', 'n' (null), 't',
// 'f', or a digit/minus for numbers. Values come from the decoder, so they
// are valid JSON without leading space.
func kind(v json.RawMessage) byte {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

// syntaxText keeps the decoder's description (an offset and the offending
// character at most), which never reproduces payload values.
func syntaxText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of JSON input"
	}
	return "malformed JSON"
}

// quoteKey quotes a key for an error message, capped so a hostile payload
// cannot make errors huge.
func quoteKey(k string) string {
	if r := []rune(k); len(r) > 64 {
		k = string(r[:64]) + "…"
	}
	return strconv.Quote(k)
}
