package affinity

import (
	"context"
	"errors"
	"testing"
	"time"
)

// FuzzParse: Parse never panics, an accepted event always has a type and a
// body, and an event comes back with an error only when the error is the
// replay window's. Decoding and dispatching what Parse accepts never panics
// either.
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
		if ev == nil {
			if err == nil {
				t.Fatal("nil event without an error")
			}
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error does not match ErrParse: %v", err)
			}
			return
		}
		if err != nil && !errors.Is(err, ErrTooOld) && !errors.Is(err, ErrTooNew) {
			t.Fatalf("event returned with a non-window error: %v", err)
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
