package affinity

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzParse: Parse never panics; it returns an event or an error, never
// both; an accepted event always has a type and a body, and no top-level key
// that differs from "type", "body" or "sent_at" only by case; a delivery
// refused only for its age is a *StaleError carrying the event. Decoding and
// dispatching what Parse accepts never panics either.
func FuzzParse(f *testing.F) {
	for _, data := range eventFixtures(f) {
		f.Add(data)
	}
	for _, et := range append(EventTypes(), SampleWebhook) {
		f.Add(NewEnvelope(et, SampleBody(et), parseNow))
	}
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"type":"x","body":{},"sent_at":1.5}`, `{"type":"x","body":null,"sent_at":"17"}`,
		`{"body":{},"type":"x","sent_at":1}`, `{"type":"list_entry.created","body":{"entity_type":8,"entity":{"id":"a"}},"sent_at":1700000000}`,
		`{"sent_at":1700000000,"body":{"test":true},"type":"sample.webhook"}`, `{"x":1,"type":"x","body":{},"sent_at":1700000000}`,
		`{"type":"person.created","body":{"id":1},"sent_at":1700000000,"Type":"note.created"}`,
		`{"type":"smart_interaction_value.updated","body":"v","sent_at":1700000000}`,
		`{"type":"field_value.updated","body":{"value_type":4,"value":["2021-11-11 06:58:31 -0800"]},"sent_at":1e9}`,
	} {
		f.Add([]byte(s))
	}
	r := NewRouter()
	r.Fallback(func(ctx context.Context, ev *Event) error { return nil })
	On(r, FieldValueUpdated, func(ctx context.Context, ev *Event, v *FieldValue) error {
		_, _ = v.TypedValue()
		return nil
	})
	now := func() time.Time { return parseNow }
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Parse(data, WithNow(now))
		if ev != nil && err != nil {
			t.Fatalf("event and error both returned: %v", err)
		}
		if ev == nil {
			if err == nil {
				t.Fatal("nil event without an error")
			}
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error does not match ErrParse: %v", err)
			}
			var stale *StaleError
			if errors.As(err, &stale) != (errors.Is(err, ErrTooOld) || errors.Is(err, ErrTooNew)) {
				t.Fatalf("window error without a *StaleError, or the reverse: %v", err)
			}
			if stale == nil {
				return
			}
			ev = stale.Event
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(data, &top) == nil {
			for k := range top {
				if _, variant := caseVariantOf(k); variant {
					t.Fatalf("key %q accepted", k)
				}
			}
		}
		if ev.Type == "" || len(ev.Body) == 0 || len(ev.Raw) == 0 {
			t.Fatalf("accepted event without type or body: %+v", ev)
		}
		if ev.SentAtUnix < 0 || ev.SentAt.Year() > 9999 {
			t.Fatalf("sent_at %d accepted", ev.SentAtUnix)
		}
		if _, err := ev.DecodeBody(); err != nil && !errors.Is(err, ErrParse) {
			t.Fatalf("decode error does not match ErrParse: %v", err)
		}
		_ = r.Dispatch(context.Background(), ev)
	})
}
