package eventrouter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// event is a minimal event: a type and raw JSON.
type event struct {
	Type string
	Raw  json.RawMessage
}

type person struct {
	Name string `json:"name"`
}

func decodeJSON[T any](ev *event) (T, error) {
	var v T
	if err := json.Unmarshal(ev.Raw, &v); err != nil {
		return v, fmt.Errorf("decode %s: %w", ev.Type, err)
	}
	return v, nil
}

func TestBoxedReturnsPointerOrError(t *testing.T) {
	dec := Boxed(decodeJSON[person])
	v, err := dec(&event{Type: "person.created", Raw: json.RawMessage(`{"name":"Ada"}`)})
	if p, ok := v.(*person); err != nil || !ok || p.Name != "Ada" {
		t.Errorf("decoded %#v %v", v, err)
	}
	v, err = dec(&event{Type: "person.created", Raw: json.RawMessage(`[1]`)})
	if v != nil || err == nil {
		t.Errorf("bad body: %#v %v", v, err)
	}
}

func TestRegistrySetReplacesAndLookup(t *testing.T) {
	var r Registry[string, event] // the zero value is ready
	if _, ok := r.Lookup("a"); ok {
		t.Error("empty registry found a decoder")
	}
	r.Set(Boxed(decodeJSON[person]), "a", "b")
	r.Set(Boxed(decodeJSON[map[string]any]), "b")
	ev := &event{Raw: json.RawMessage(`{"name":"Ada"}`)}
	da, okA := r.Lookup("a")
	db, okB := r.Lookup("b")
	if !okA || !okB {
		t.Fatalf("lookup a %v b %v", okA, okB)
	}
	if v, _ := da(ev); fmt.Sprintf("%T", v) != "*eventrouter.person" {
		t.Errorf("a decodes to %T", v)
	}
	if v, _ := db(ev); fmt.Sprintf("%T", v) != "*map[string]interface {}" {
		t.Errorf("b (replaced) decodes to %T", v)
	}
}

func TestRegistryDecodeRegisteredElseRaw(t *testing.T) {
	var r Registry[string, event]
	ev := &event{Type: "a", Raw: json.RawMessage(`{"name":"Ada"}`)}
	if v, err := r.Decode("a", ev, ev.Raw); err != nil || fmt.Sprintf("%T", v) != "json.RawMessage" {
		t.Errorf("unregistered: %#v %v", v, err)
	}
	r.Set(Boxed(decodeJSON[person]), "a")
	if v, err := r.Decode("a", ev, ev.Raw); err != nil || v.(*person).Name != "Ada" {
		t.Errorf("registered: %#v %v", v, err)
	}
	if v, err := r.Decode("a", &event{Type: "a", Raw: json.RawMessage(`[1]`)}, "raw"); v != nil || err == nil {
		t.Errorf("decode error: %#v %v", v, err)
	}
}

func TestTypedDecodesBeforeCallingHandler(t *testing.T) {
	registryCalls := 0
	decodeAny := func(ev *event) (any, error) { registryCalls++; return "from registry", nil }
	var got person
	h := Typed(decodeAny, decodeJSON[person], func(ctx context.Context, ev *event, body person) error {
		got = body
		return nil
	})
	if err := h(context.Background(), &event{Raw: json.RawMessage(`{"name":"Ada"}`)}); err != nil || got.Name != "Ada" || registryCalls != 0 {
		t.Errorf("typed: %v %+v registry calls %d", err, got, registryCalls)
	}
	// A decode failure is returned and the handler is not called.
	called := false
	h = Typed(decodeAny, decodeJSON[person], func(ctx context.Context, ev *event, body person) error {
		called = true
		return nil
	})
	if err := h(context.Background(), &event{Type: "x", Raw: json.RawMessage(`"str"`)}); err == nil || called {
		t.Errorf("bad body: err %v, handler called %v", err, called)
	}
}

func TestTypedAnyUsesTheRegistryView(t *testing.T) {
	decodeAny := func(ev *event) (any, error) {
		if ev.Type == "bad" {
			return nil, errors.New("registry says no")
		}
		return ev.Raw, nil
	}
	var got any
	h := Typed(decodeAny, decodeJSON[any], func(ctx context.Context, ev *event, body any) error {
		got = body
		return nil
	})
	if err := h(context.Background(), &event{Raw: json.RawMessage(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	if raw, ok := got.(json.RawMessage); !ok || string(raw) != `{"a":1}` {
		t.Errorf("any handler got %#v, want the registry's json.RawMessage", got)
	}
	if err := h(context.Background(), &event{Type: "bad"}); err == nil || err.Error() != "registry says no" {
		t.Errorf("registry error: %v", err)
	}
}

func TestRouterRoutesHandlerThenFallback(t *testing.T) {
	var r Router[string, event] // the zero value is ready
	if r.Route("a") != nil {
		t.Error("empty router routed")
	}
	var seen []string
	handler := func(name string) Handler[event] {
		return func(ctx context.Context, ev *event) error {
			seen = append(seen, name+":"+ev.Type)
			return nil
		}
	}
	r.Handle("a", handler("first"))
	r.Handle("a", handler("a")) // replaces
	if r.Route("b") != nil {
		t.Error("unregistered type routed without a fallback")
	}
	r.SetFallback(handler("fallback"))
	for _, typ := range []string{"a", "b"} {
		if err := r.Route(typ)(context.Background(), &event{Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(seen) != "[a:a fallback:b]" {
		t.Errorf("seen %v", seen)
	}
	r.SetFallback(nil)
	if r.Route("b") != nil {
		t.Error("cleared fallback still routes")
	}
}

func TestRouterIsSafeForConcurrentUse(t *testing.T) {
	var r Router[string, event]
	var reg Registry[int, event]
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			r.Handle(strconv.Itoa(i), func(context.Context, *event) error { return nil })
			reg.Set(Boxed(decodeJSON[person]), i)
			for j := range 8 {
				r.Route(strconv.Itoa(j))
				_ = r.Dispatch(context.Background(), strconv.Itoa(j), &event{}, errNoHandler)
				reg.Lookup(j)
			}
		})
	}
	wg.Wait()
	for i := range 8 {
		if _, ok := reg.Lookup(i); !ok || r.Route(strconv.Itoa(i)) == nil {
			t.Errorf("type %d lost", i)
		}
	}
}

var errNoHandler = errors.New("sdk: no handler for event")

// eventType stands for an SDK's named string type of event types.
type eventType string

func TestDispatchRunsHandlerThenFallbackThenErrs(t *testing.T) {
	var r Router[eventType, event]
	ctx := context.Background()
	err := r.Dispatch(ctx, "foo.bar", &event{Type: "foo.bar"}, errNoHandler)
	if !errors.Is(err, errNoHandler) || err.Error() != `sdk: no handler for event "foo.bar"` {
		t.Errorf("no handler: %v", err)
	}
	boom := errors.New("boom")
	var seen []string
	r.Handle("a", func(ctx context.Context, ev *event) error { seen = append(seen, "a:"+ev.Type); return boom })
	r.SetFallback(func(ctx context.Context, ev *event) error { seen = append(seen, "fallback:"+ev.Type); return nil })
	if err := r.Dispatch(ctx, "a", &event{Type: "a"}, errNoHandler); err != boom {
		t.Errorf("handler error not returned as it is: %v", err)
	}
	if err := r.Dispatch(ctx, "foo.bar", &event{Type: "foo.bar"}, errNoHandler); err != nil {
		t.Errorf("fallback: %v", err)
	}
	if fmt.Sprint(seen) != "[a:a fallback:foo.bar]" {
		t.Errorf("seen %v", seen)
	}
}

func TestQuoteIsPercentQCappedAt64Runes(t *testing.T) {
	for _, s := range []string{"foo.bar", "", `say "hi"\`, "tab\there", "\xff\x00", "é—☃", strings.Repeat("é", 64)} {
		if got, want := quote(eventType(s)), fmt.Sprintf("%q", s); got != want {
			t.Errorf("quote(%q) = %s, want %s", s, got, want)
		}
	}
	long := strings.Repeat("a", 60) + "éééé" + "tail"
	if got, want := quote(long), `"`+strings.Repeat("a", 60)+`éééé…"`; got != want {
		t.Errorf("long: %s, want %s", got, want)
	}
	err := fmt.Errorf("%w %s", errNoHandler, quote(strings.Repeat("x", 10000)))
	if n := len(err.Error()); n > 100 {
		t.Errorf("a 10000-byte type gives a %d-byte error", n)
	}
}
