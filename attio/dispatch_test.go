package attio

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func mustEvent(t *testing.T, raw string) *Event {
	t.Helper()
	ev, err := ParseEvent([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestRouterTypedHandlers(t *testing.T) {
	r := NewRouter()
	var got []string
	On(r, RecordUpdated, func(ctx context.Context, ev *Event, body RecordEvent) error {
		got = append(got, "value:"+body.ID.RecordID+"/"+body.ID.AttributeID)
		return nil
	})
	On(r, NoteCreated, func(ctx context.Context, ev *Event, body *NoteEvent) error {
		got = append(got, "pointer:"+body.ID.NoteID+"@"+body.ParentRecordID)
		return nil
	})
	On(r, TaskCreated, func(ctx context.Context, ev *Event, body json.RawMessage) error {
		got = append(got, "raw:"+string(body)[:13])
		return nil
	})
	On(r, ListCreated, func(ctx context.Context, ev *Event, body any) error {
		le, ok := body.(*ListEvent)
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
	r := NewRouter()
	called := false
	On(r, RecordCreated, func(ctx context.Context, ev *Event, body RecordEvent) error {
		called = true
		return nil
	})
	// record_id missing: the handler must not see a half-empty id.
	err := r.Dispatch(context.Background(), mustEvent(t, `{"event_type":"record.created","id":{"workspace_id":"w","object_id":"o"}}`))
	var mk *MissingKeyError
	if !errors.As(err, &mk) || mk.Key != "id.record_id" || !errors.Is(err, ErrParse) || called {
		t.Errorf("err %v called %v", err, called)
	}
	// Wrong types in the id are a parse error too.
	err = r.Dispatch(context.Background(), mustEvent(t, `{"event_type":"record.created","id":{"workspace_id":"w","object_id":"o","record_id":5}}`))
	if !errors.Is(err, ErrInvalidPayload) || called {
		t.Errorf("err %v", err)
	}
	// record.merged needs the duplicate.
	err = r.Dispatch(context.Background(), mustEvent(t, `{"event_type":"record.merged","id":{"workspace_id":"w","object_id":"o","record_id":"r"}}`))
	if !errors.Is(err, ErrNoHandler) {
		t.Errorf("no handler for merged: %v", err)
	}
	if _, err := DefaultRegistry.Decode(mustEvent(t, `{"event_type":"record.merged","id":{"workspace_id":"w","object_id":"o","record_id":"r"}}`)); !errors.As(err, &mk) || mk.Key != "duplicate_record_id" {
		t.Errorf("merged without duplicate: %v", err)
	}
}

func TestRouterFallbackAndNoHandler(t *testing.T) {
	r := NewRouter()
	ev := mustEvent(t, `{"event_type":"deal.exploded","id":{"x":"y"}}`)
	err := r.Dispatch(context.Background(), ev)
	if !errors.Is(err, ErrNoHandler) || !strings.Contains(err.Error(), "deal.exploded") {
		t.Errorf("err %v", err)
	}
	var seen EventType
	r.Fallback(func(ctx context.Context, ev *Event) error { seen = ev.Type; return nil })
	if err := r.Dispatch(context.Background(), ev); err != nil || seen != "deal.exploded" {
		t.Errorf("fallback: %v %q", err, seen)
	}
	// Handler errors come back untouched.
	boom := errors.New("boom")
	On(r, "deal.exploded", func(ctx context.Context, ev *Event, body map[string]any) error {
		if body["id"].(map[string]any)["x"] != "y" {
			t.Errorf("map body %v", body)
		}
		return boom
	})
	if err := r.Dispatch(context.Background(), ev); err != boom {
		t.Errorf("err %v", err)
	}
	if err := r.Dispatch(context.Background(), nil); !errors.Is(err, ErrParse) {
		t.Errorf("nil event: %v", err)
	}
}

func TestRegistryCustomTypesAndUnknown(t *testing.T) {
	reg := NewRegistry()
	type Deal struct {
		EventType EventType `json:"event_type"`
		ID        struct {
			DealID string `json:"deal_id"`
		} `json:"id"`
	}
	Register[Deal](reg, "deal.created")
	v, err := reg.Decode(mustEvent(t, `{"event_type":"deal.created","id":{"deal_id":"d1"}}`))
	if d, ok := v.(*Deal); err != nil || !ok || d.ID.DealID != "d1" {
		t.Errorf("custom: %#v %v", v, err)
	}
	ev := mustEvent(t, `{"event_type":"other.thing","id":{}}`)
	v, err = reg.Decode(ev)
	if raw, ok := v.(json.RawMessage); err != nil || !ok || string(raw) != string(ev.Raw) {
		t.Errorf("unknown: %#v %v", v, err)
	}
	// The default registry knows every type.
	for _, typ := range AllEventTypes() {
		if !DefaultRegistry.known(typ) {
			t.Errorf("%s not registered", typ)
		}
	}
	// WithRegistry changes what On[any] receives.
	r := NewRouter(WithRegistry(reg))
	var got any
	On(r, "deal.created", func(ctx context.Context, ev *Event, body any) error { got = body; return nil })
	if err := r.Dispatch(context.Background(), mustEvent(t, `{"event_type":"deal.created","id":{"deal_id":"d2"}}`)); err != nil {
		t.Fatal(err)
	}
	if d, ok := got.(*Deal); !ok || d.ID.DealID != "d2" {
		t.Errorf("got %#v", got)
	}
}

func TestDispatchDelivery(t *testing.T) {
	d, err := Parse([]byte(`{"webhook_id":"w","events":[
		{"event_type":"task.created","id":{"workspace_id":"w","task_id":"t1"}},
		{"event_type":"task.deleted","id":{"workspace_id":"w","task_id":"t2"}},
		{"event_type":"task.updated","id":{"workspace_id":"w","task_id":"t3"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRouter()
	var ids []string
	for _, typ := range []EventType{TaskCreated, TaskUpdated} {
		On(r, typ, func(ctx context.Context, ev *Event, body TaskEvent) error {
			ids = append(ids, body.ID.TaskID)
			return nil
		})
	}
	err = r.DispatchDelivery(context.Background(), d)
	if !errors.Is(err, ErrNoHandler) || !strings.HasPrefix(err.Error(), "attio: event 1: no handler") || strings.Join(ids, ",") != "t1" {
		t.Errorf("err %v ids %v", err, ids)
	}
}

func TestEventTypes(t *testing.T) {
	if len(OfficialEventTypes()) != 27 || len(AllEventTypes()) != 30 {
		t.Errorf("%d official, %d all", len(OfficialEventTypes()), len(AllEventTypes()))
	}
	if !CommentUpdated.Known() || CommentUpdated.Official() || !NoteContentUpdated.Official() || EventType("x.y").Known() {
		t.Error("Known/Official wrong")
	}
}
