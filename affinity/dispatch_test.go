package affinity

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
)

func dispatchEvent(t *testing.T, typ EventType, body string) *Event {
	t.Helper()
	ev, err := Parse(NewEnvelope(typ, json.RawMessage(body), parseNow), parseAtNow())
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestRouterTypedHandlers(t *testing.T) {
	r := NewRouter()
	var got []string
	On(r, PersonCreated, func(ctx context.Context, ev *Event, p Person) error {
		got = append(got, "value:"+p.FirstName)
		return nil
	})
	On(r, ListEntryCreated, func(ctx context.Context, ev *Event, e *ListEntry) error {
		got = append(got, "pointer:"+e.Person.LastName)
		return nil
	})
	On(r, NoteCreated, func(ctx context.Context, ev *Event, body json.RawMessage) error {
		got = append(got, "raw:"+string(body))
		return nil
	})
	On(r, FileCreated, func(ctx context.Context, ev *Event, body map[string]any) error {
		got = append(got, "map:"+body["name"].(string))
		return nil
	})
	On(r, OrganizationMerged, func(ctx context.Context, ev *Event, body any) error {
		m, ok := body.(*OrganizationMerge)
		if !ok {
			t.Errorf("On[any] got %T", body)
			return nil
		}
		got = append(got, "any:"+m.Company.Name)
		return nil
	})
	ctx := context.Background()
	for _, ev := range []*Event{
		dispatchEvent(t, PersonCreated, `{"id":1,"first_name":"Jane"}`),
		dispatchEvent(t, ListEntryCreated, `{"id":2,"entity_type":0,"entity":{"id":1,"last_name":"Doe"}}`),
		dispatchEvent(t, NoteCreated, `{"id":3}`),
		dispatchEvent(t, FileCreated, `{"id":4,"name":"a.csv"}`),
		dispatchEvent(t, OrganizationMerged, `{"company":{"id":5,"name":"Acme"}}`),
	} {
		if err := r.Dispatch(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	want := `value:Jane|pointer:Doe|raw:{"id":3}|map:a.csv|any:Acme`
	if s := strings.Join(got, "|"); s != want {
		t.Errorf("got  %s\nwant %s", s, want)
	}
}

func TestRouterFallbackAndNoHandler(t *testing.T) {
	r := NewRouter()
	ctx := context.Background()
	unknown := dispatchEvent(t, "deal.closed", `[1,2]`)
	err := r.Dispatch(ctx, unknown)
	if !errors.Is(err, ErrNoHandler) || !strings.Contains(err.Error(), `"deal.closed"`) {
		t.Fatalf("err %v", err)
	}
	var fellBack []EventType
	r.Fallback(func(ctx context.Context, ev *Event) error {
		fellBack = append(fellBack, ev.Type)
		return nil
	})
	handled := false
	On(r, PersonDeleted, func(ctx context.Context, ev *Event, p *Person) error {
		handled = p.OrganizationIDs == nil
		return nil
	})
	for _, ev := range []*Event{unknown, dispatchEvent(t, PersonCreated, `{}`), dispatchEvent(t, PersonDeleted, `{"id":1}`)} {
		if err := r.Dispatch(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if len(fellBack) != 2 || fellBack[0] != "deal.closed" || fellBack[1] != PersonCreated || !handled {
		t.Errorf("fallback %v handled %v", fellBack, handled)
	}
	if err := r.Dispatch(ctx, nil); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("nil event: %v", err)
	}
}

// An unrouted event's type is quoted as the attio package quotes it: %q,
// cut to 64 runes.
func TestNoHandlerErrorQuotesTheType(t *testing.T) {
	r := NewRouter()
	ctx := context.Background()
	err := r.Dispatch(ctx, dispatchEvent(t, "foo.bar", `{}`))
	if !errors.Is(err, ErrNoHandler) || err.Error() != `affinity: no handler for event "foo.bar"` {
		t.Errorf("got %v", err)
	}
	err = r.Dispatch(ctx, dispatchEvent(t, "say \"hi\"\tnow", `{}`))
	if err == nil || err.Error() != `affinity: no handler for event "say \"hi\"\tnow"` {
		t.Errorf("got %v", err)
	}
	err = r.Dispatch(ctx, dispatchEvent(t, EventType(strings.Repeat("é", 70)), `{}`))
	if want := `affinity: no handler for event "` + strings.Repeat("é", 64) + `…"`; err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestRouterHandlerErrorAndDecodeError(t *testing.T) {
	r := NewRouter()
	boom := errors.New("boom")
	called := 0
	On(r, PersonUpdated, func(ctx context.Context, ev *Event, p Person) error {
		called++
		return boom
	})
	ctx := context.Background()
	if err := r.Dispatch(ctx, dispatchEvent(t, PersonUpdated, `{"id":1}`)); err != boom {
		t.Errorf("handler error not returned as is: %v", err)
	}
	// A body of the wrong shape never reaches the handler.
	err := r.Dispatch(ctx, dispatchEvent(t, PersonUpdated, `{"id":"jane@example.com"}`))
	if !errors.Is(err, ErrInvalidPayload) || !errors.Is(err, ErrParse) || called != 1 {
		t.Fatalf("err %v called %d", err, called)
	}
	if strings.Contains(err.Error(), "jane@example.com") || !strings.Contains(err.Error(), "id") {
		t.Errorf("error must name the key, not the value: %v", err)
	}
	// A bad datetime too, and through On[any] as well.
	On(r, NoteUpdated, func(ctx context.Context, ev *Event, body any) error { called++; return nil })
	err = r.Dispatch(ctx, dispatchEvent(t, NoteUpdated, `{"id":1,"created_at":"last tuesday"}`))
	if !errors.Is(err, ErrInvalidPayload) || called != 1 || !strings.Contains(err.Error(), "datetime") {
		t.Errorf("err %v called %d", err, called)
	}
	// Handlers can be replaced.
	On(r, PersonUpdated, func(ctx context.Context, ev *Event, p Person) error { return nil })
	if err := r.Dispatch(ctx, dispatchEvent(t, PersonUpdated, `{"id":1}`)); err != nil {
		t.Error(err)
	}
}

// Deal is a user's own type for an event type this package does not know.
type Deal struct {
	ID     int64  `json:"id"`
	Stage  string `json:"stage"`
	Closed Time   `json:"closed_at"`
}

func TestRegistryCustomTypes(t *testing.T) {
	reg := NewRegistry()
	ev := dispatchEvent(t, "deal.closed", `{"id":7,"stage":"won","closed_at":"2023-06-21 16:00:28 -0700"}`)
	// Unknown to the registry: the raw body.
	v, err := reg.Decode(ev)
	if raw, ok := v.(json.RawMessage); err != nil || !ok || string(raw) != string(ev.Body) {
		t.Fatalf("%T %v", v, err)
	}
	Register[Deal](reg, "deal.closed", "deal.reopened")
	v, err = reg.Decode(ev)
	d, ok := v.(*Deal)
	if err != nil || !ok || d.ID != 7 || d.Stage != "won" || d.Closed.IsZero() {
		t.Fatalf("%#v %v", v, err)
	}
	// A registered type replaces a built-in one in that registry only.
	type slimPerson struct {
		ID int64 `json:"id"`
	}
	Register[slimPerson](reg, PersonCreated)
	pe := dispatchEvent(t, PersonCreated, `{"id":9}`)
	if v, _ := reg.Decode(pe); v.(*slimPerson).ID != 9 {
		t.Errorf("%#v", v)
	}
	if v, _ := DefaultRegistry.Decode(pe); v.(*Person).ID != 9 {
		t.Errorf("default registry changed: %T", v)
	}
	if v, _ := DecodeBody(pe); v.(*Person).ID != 9 {
		t.Errorf("DecodeBody: %T", v)
	}
	// A router with that registry hands the custom type to On[any].
	r := NewRouter(WithRegistry(reg))
	var got *Deal
	On(r, "deal.closed", func(ctx context.Context, ev *Event, body any) error {
		got, _ = body.(*Deal)
		return nil
	})
	if err := r.Dispatch(context.Background(), ev); err != nil || got == nil || got.Stage != "won" {
		t.Errorf("%v %#v", err, got)
	}
	// And On[any] for an unregistered type gets json.RawMessage.
	var raw any
	On(r, "deal.lost", func(ctx context.Context, ev *Event, body any) error { raw = body; return nil })
	if err := r.Dispatch(context.Background(), dispatchEvent(t, "deal.lost", `{"id":8}`)); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw.(json.RawMessage); !ok {
		t.Errorf("%T", raw)
	}
	if _, err := reg.Decode(nil); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("nil event: %v", err)
	}
	if _, err := reg.Decode(&Event{Type: PersonCreated}); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("empty body: %v", err)
	}
}

func TestDefaultRegistryKnowsEveryType(t *testing.T) {
	for _, et := range append(EventTypes(), SampleWebhook) {
		v, err := DefaultRegistry.Decode(dispatchEvent(t, et, string(SampleBody(et))))
		if err != nil {
			t.Errorf("%s: %v", et, err)
			continue
		}
		// Affinity does not document the body of
		// smart_interaction_value.updated: it stays raw JSON.
		if _, raw := v.(json.RawMessage); raw != (et == SmartInteractionValueUpdated) {
			t.Errorf("%s decodes to %T", et, v)
		}
	}
}

func TestSmartInteractionValueBodyIsRaw(t *testing.T) {
	for _, body := range []string{string(SampleBody(SmartInteractionValueUpdated)), `[1,2]`, `"text"`, `null`} {
		ev := dispatchEvent(t, SmartInteractionValueUpdated, body)
		v, err := ev.DecodeBody()
		if raw, ok := v.(json.RawMessage); err != nil || !ok || string(raw) != body {
			t.Errorf("%s: %T %v", body, v, err)
		}
		r := NewRouter()
		var got json.RawMessage
		On(r, SmartInteractionValueUpdated, func(ctx context.Context, ev *Event, body any) error {
			got, _ = body.(json.RawMessage)
			return nil
		})
		if err := r.Dispatch(context.Background(), ev); err != nil || string(got) != body {
			t.Errorf("%s: handler got %s, %v", body, got, err)
		}
	}
}

// The probe is never an error: without a handler for it Dispatch answers
// nil, and the fallback (meant for real events) never sees it. ErrNoHandler
// stays for real event types.
func TestRouterProbe(t *testing.T) {
	ctx := context.Background()
	probe := dispatchEvent(t, SampleWebhook, `{"test":true}`)

	r := NewRouter()
	if err := r.Dispatch(ctx, probe); err != nil {
		t.Fatalf("empty router: %v", err)
	}
	if err := r.Dispatch(ctx, dispatchEvent(t, PersonCreated, `{"id":1}`)); !errors.Is(err, ErrNoHandler) {
		t.Errorf("real event without a handler: %v", err)
	}
	// Odd probe bodies too.
	if err := r.Dispatch(ctx, dispatchEvent(t, SampleWebhook, `true`)); err != nil {
		t.Errorf("odd probe: %v", err)
	}

	fellBack := 0
	r.Fallback(func(ctx context.Context, ev *Event) error { fellBack++; return errors.New("fallback failed") })
	if err := r.Dispatch(ctx, probe); err != nil || fellBack != 0 {
		t.Errorf("with a fallback: %v, fallback ran %d times", err, fellBack)
	}

	// A handler registered for the probe runs, and its error is returned.
	var seen *SampleWebhookBody
	On(r, SampleWebhook, func(ctx context.Context, ev *Event, b *SampleWebhookBody) error {
		seen = b
		return errors.New("probe handler failed")
	})
	if err := r.Dispatch(ctx, probe); err == nil || err.Error() != "probe handler failed" || seen == nil || fellBack != 0 {
		t.Errorf("probe handler: %v %+v", err, seen)
	}
}

func TestRouterConcurrentUse(t *testing.T) {
	r := NewRouter()
	var mu sync.Mutex
	count := 0
	On(r, ReminderCreated, func(ctx context.Context, ev *Event, rem *Reminder) error {
		mu.Lock()
		count++
		mu.Unlock()
		return nil
	})
	ev := dispatchEvent(t, ReminderCreated, string(SampleBody(ReminderCreated)))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				_ = r.Dispatch(context.Background(), ev)
			}
		}()
	}
	// Registering while dispatching is safe too.
	On(r, ReminderDeleted, func(ctx context.Context, ev *Event, rem Reminder) error { return nil })
	r.Fallback(func(ctx context.Context, ev *Event) error { return nil })
	wg.Wait()
	if count != 400 {
		t.Errorf("count %d", count)
	}
}

// TestRouterAndRegistryNilSafety: nil options are skipped and a nil
// registry decodes to the raw body, as in the attio package.
func TestRouterAndRegistryNilSafety(t *testing.T) {
	r := NewRouter(nil, WithRegistry(nil))
	ev := &Event{Type: "x.unknown", Body: []byte(`{"a":1}`)}
	if err := r.Dispatch(context.Background(), ev); !errors.Is(err, ErrNoHandler) {
		t.Errorf("Dispatch on a router built with nil options: %v, want ErrNoHandler", err)
	}
	var reg *Registry
	got, err := reg.Decode(ev)
	if raw, ok := got.(json.RawMessage); err != nil || !ok || string(raw) != `{"a":1}` {
		t.Errorf("nil registry Decode = %v %v, want the raw body", got, err)
	}
}
