package attio_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/crmhook/crmhook/attio"
)

// The dispatch tests use the package's public API only.

func mustEvent(t *testing.T, raw string) *attio.Event {
	t.Helper()
	ev, err := attio.ParseEvent([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestRouterTypedHandlers(t *testing.T) {
	r := attio.NewRouter()
	var got []string
	attio.On(r, attio.RecordUpdated, func(ctx context.Context, ev *attio.Event, body attio.RecordEvent) error {
		got = append(got, "value:"+body.ID.RecordID+"/"+body.ID.AttributeID)
		return nil
	})
	attio.On(r, attio.NoteCreated, func(ctx context.Context, ev *attio.Event, body *attio.NoteEvent) error {
		got = append(got, "pointer:"+body.ID.NoteID+"@"+body.ParentRecordID)
		return nil
	})
	attio.On(r, attio.TaskCreated, func(ctx context.Context, ev *attio.Event, body json.RawMessage) error {
		got = append(got, "raw:"+string(body)[:13])
		return nil
	})
	attio.On(r, attio.ListCreated, func(ctx context.Context, ev *attio.Event, body any) error {
		le, ok := body.(*attio.ListEvent)
		if !ok {
			t.Errorf("On[any] got %T", body)
			return nil
		}
		got = append(got, "any:"+le.ID.ListID)
		return nil
	})
	ctx := context.Background()
	for _, raw := range []string{
		`{"event_type":"record.updated","id":{"workspace_id":"w","object_id":"o","record_id":"r1","attribute_id":"a1"},"actor":{"type":"api-token","id":"t"}}`,
		`{"event_type":"note.created","id":{"workspace_id":"w","note_id":"n1"},"parent_object_id":"o","parent_record_id":"r2","actor":{"type":"workspace-member","id":"m"}}`,
		`{"event_type":"task.created","id":{"workspace_id":"w","task_id":"t1"}}`,
		`{"event_type":"list.created","id":{"workspace_id":"w","list_id":"L1"}}`,
	} {
		if err := r.Dispatch(ctx, mustEvent(t, raw)); err != nil {
			t.Fatal(err)
		}
	}
	want := `value:r1/a1|pointer:n1@r2|raw:{"event_type"|any:L1`
	if strings.Join(got, "|") != want {
		t.Errorf("got %s\nwant %s", strings.Join(got, "|"), want)
	}
}

func TestRouterDecodeErrorSkipsHandler(t *testing.T) {
	r := attio.NewRouter()
	called := false
	attio.On(r, attio.RecordCreated, func(ctx context.Context, ev *attio.Event, body attio.RecordEvent) error {
		called = true
		return nil
	})
	// record_id missing: the handler must not see a half-empty id.
	err := r.Dispatch(context.Background(), mustEvent(t, `{"event_type":"record.created","id":{"workspace_id":"w","object_id":"o"}}`))
	var mk *attio.MissingKeyError
	if !errors.As(err, &mk) || mk.Key != "id.record_id" || !errors.Is(err, attio.ErrParse) || called {
		t.Errorf("err %v called %v", err, called)
	}
	// Wrong types in the id are a parse error too.
	err = r.Dispatch(context.Background(), mustEvent(t, `{"event_type":"record.created","id":{"workspace_id":"w","object_id":"o","record_id":5}}`))
	if !errors.Is(err, attio.ErrInvalidPayload) || called {
		t.Errorf("err %v", err)
	}
	// record.merged needs the duplicate.
	err = r.Dispatch(context.Background(), mustEvent(t, `{"event_type":"record.merged","id":{"workspace_id":"w","object_id":"o","record_id":"r"}}`))
	if !errors.Is(err, attio.ErrNoHandler) {
		t.Errorf("no handler for merged: %v", err)
	}
	if _, err := attio.DefaultRegistry.Decode(mustEvent(t, `{"event_type":"record.merged","id":{"workspace_id":"w","object_id":"o","record_id":"r"}}`)); !errors.As(err, &mk) || mk.Key != "duplicate_record_id" {
		t.Errorf("merged without duplicate: %v", err)
	}
}

func TestRouterFallbackAndNoHandler(t *testing.T) {
	r := attio.NewRouter()
	ev := mustEvent(t, `{"event_type":"deal.exploded","id":{"x":"y"}}`)
	err := r.Dispatch(context.Background(), ev)
	if !errors.Is(err, attio.ErrNoHandler) || !strings.Contains(err.Error(), "deal.exploded") {
		t.Errorf("err %v", err)
	}
	var seen attio.EventType
	r.Fallback(func(ctx context.Context, ev *attio.Event) error { seen = ev.Type; return nil })
	if err := r.Dispatch(context.Background(), ev); err != nil || seen != "deal.exploded" {
		t.Errorf("fallback: %v %q", err, seen)
	}
	// Handler errors come back untouched.
	boom := errors.New("boom")
	attio.On(r, "deal.exploded", func(ctx context.Context, ev *attio.Event, body map[string]any) error {
		if body["id"].(map[string]any)["x"] != "y" {
			t.Errorf("map body %v", body)
		}
		return boom
	})
	if err := r.Dispatch(context.Background(), ev); err != boom {
		t.Errorf("err %v", err)
	}
	if err := r.Dispatch(context.Background(), nil); !errors.Is(err, attio.ErrParse) {
		t.Errorf("nil event: %v", err)
	}
}

func TestRegistryCustomTypesAndUnknown(t *testing.T) {
	reg := attio.NewRegistry()
	type Deal struct {
		EventType attio.EventType `json:"event_type"`
		ID        struct {
			DealID string `json:"deal_id"`
		} `json:"id"`
	}
	attio.Register[Deal](reg, "deal.created")
	v, err := reg.Decode(mustEvent(t, `{"event_type":"deal.created","id":{"deal_id":"d1"}}`))
	if d, ok := v.(*Deal); err != nil || !ok || d.ID.DealID != "d1" {
		t.Errorf("custom: %#v %v", v, err)
	}
	ev := mustEvent(t, `{"event_type":"other.thing","id":{}}`)
	v, err = reg.Decode(ev)
	if raw, ok := v.(json.RawMessage); err != nil || !ok || string(raw) != string(ev.Raw) {
		t.Errorf("unknown: %#v %v", v, err)
	}
	// WithRegistry changes what On[any] receives.
	r := attio.NewRouter(attio.WithRegistry(reg))
	var got any
	attio.On(r, "deal.created", func(ctx context.Context, ev *attio.Event, body any) error { got = body; return nil })
	if err := r.Dispatch(context.Background(), mustEvent(t, `{"event_type":"deal.created","id":{"deal_id":"d2"}}`)); err != nil {
		t.Fatal(err)
	}
	if d, ok := got.(*Deal); !ok || d.ID.DealID != "d2" {
		t.Errorf("got %#v", got)
	}
}

func TestDispatchDelivery(t *testing.T) {
	d, err := attio.Parse([]byte(`{"webhook_id":"w","events":[
		{"event_type":"task.created","id":{"workspace_id":"w","task_id":"t1"}},
		{"event_type":"task.deleted","id":{"workspace_id":"w","task_id":"t2"}},
		{"event_type":"task.updated","id":{"workspace_id":"w","task_id":"t3"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r := attio.NewRouter()
	var ids []string
	for _, typ := range []attio.EventType{attio.TaskCreated, attio.TaskUpdated} {
		attio.On(r, typ, func(ctx context.Context, ev *attio.Event, body attio.TaskEvent) error {
			ids = append(ids, body.ID.TaskID)
			return nil
		})
	}
	err = r.DispatchDelivery(context.Background(), d)
	if !errors.Is(err, attio.ErrNoHandler) || !strings.HasPrefix(err.Error(), "attio: event 1: no handler") || strings.Join(ids, ",") != "t1" {
		t.Errorf("err %v ids %v", err, ids)
	}
}

func TestEventTypes(t *testing.T) {
	if len(attio.OfficialEventTypes()) != 27 || len(attio.AllEventTypes()) != 30 {
		t.Errorf("%d official, %d all", len(attio.OfficialEventTypes()), len(attio.AllEventTypes()))
	}
	if !attio.CommentUpdated.Known() || attio.CommentUpdated.Official() || !attio.NoteContentUpdated.Official() || attio.EventType("x.y").Known() {
		t.Error("Known/Official wrong")
	}
}

// DefaultRegistry decodes every type of AllEventTypes into its family's
// struct, never into the raw event as it does for an unregistered type.
func TestDefaultRegistryKnowsEveryType(t *testing.T) {
	family := map[string]string{
		"record":           "*attio.RecordEvent",
		"list-entry":       "*attio.ListEntryEvent",
		"list":             "*attio.ListEvent",
		"list-attribute":   "*attio.ListAttributeEvent",
		"object-attribute": "*attio.ObjectAttributeEvent",
		"note":             "*attio.NoteEvent",
		"note-content":     "*attio.NoteEvent",
		"comment":          "*attio.CommentEvent",
		"task":             "*attio.TaskEvent",
		"workspace-member": "*attio.WorkspaceMemberEvent",
		"call-recording":   "*attio.CallRecordingEvent",
	}
	// One id with every family's keys satisfies every family's Validate.
	const id = `{"workspace_id":"w","object_id":"o","record_id":"r","list_id":"l","entry_id":"e",` +
		`"attribute_id":"a","note_id":"n","comment_id":"c","task_id":"t","workspace_member_id":"m",` +
		`"meeting_id":"mt","call_recording_id":"cr"}`
	for _, typ := range attio.AllEventTypes() {
		ev := mustEvent(t, `{"event_type":"`+string(typ)+`","id":`+id+`,"duplicate_object_id":"o","duplicate_record_id":"r0"}`)
		v, err := attio.DefaultRegistry.Decode(ev)
		prefix, _, _ := strings.Cut(string(typ), ".")
		if got := fmt.Sprintf("%T", v); err != nil || got != family[prefix] {
			t.Errorf("%s decodes to %s (%v), want %s", typ, got, err, family[prefix])
		}
		// An id with no keys is refused for every registered type: the
		// raw event is only for unregistered ones.
		if _, err := attio.DefaultRegistry.Decode(mustEvent(t, `{"event_type":"`+string(typ)+`","id":{}}`)); !errors.Is(err, attio.ErrMissingKey) {
			t.Errorf("%s with an empty id: %v", typ, err)
		}
	}
}

// An unrouted event's type is quoted as the affinity package quotes it: %q,
// cut to 64 runes.
func TestNoHandlerErrorQuotesTheType(t *testing.T) {
	r := attio.NewRouter()
	err := r.Dispatch(context.Background(), mustEvent(t, `{"event_type":"foo.bar","id":{}}`))
	if !errors.Is(err, attio.ErrNoHandler) || err.Error() != `attio: no handler for event "foo.bar"` {
		t.Errorf("got %v", err)
	}
	err = r.Dispatch(context.Background(), mustEvent(t, `{"event_type":"say \"hi\"\tnow","id":{}}`))
	if err == nil || err.Error() != `attio: no handler for event "say \"hi\"\tnow"` {
		t.Errorf("got %v", err)
	}
	long := strings.Repeat("é", 70)
	err = r.Dispatch(context.Background(), mustEvent(t, `{"event_type":"`+long+`","id":{}}`))
	if want := `attio: no handler for event "` + strings.Repeat("é", 64) + `…"`; err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}
