// Package eventrouter is the generic core of the affinity and attio SDKs'
// typed event dispatch: a registry of decoders keyed by event type and a
// router of handlers with a fallback. Each SDK wraps it in its own Registry
// and Router types, supplies how an event decodes into T and its own error
// sentinels; the core quotes event types in errors, so both SDKs word an
// unrouted event the same way.
package eventrouter

import (
	"context"
	"fmt"
	"strconv"
	"sync"
)

// Decoder turns an event into its typed value (a pointer to the registered
// type).
type Decoder[E any] func(ev *E) (any, error)

// Handler handles one event.
type Handler[E any] func(ctx context.Context, ev *E) error

// Boxed adapts a decoder of T into a Decoder that returns a *T, which is
// what a registry hands out.
func Boxed[E, T any](decode func(*E) (T, error)) Decoder[E] {
	return func(ev *E) (any, error) {
		v, err := decode(ev)
		if err != nil {
			return nil, err
		}
		return &v, nil
	}
}

// Registry maps event types to decoders. It is safe for concurrent use; the
// zero value is empty and ready.
type Registry[K comparable, E any] struct {
	mu       sync.RWMutex
	decoders map[K]Decoder[E]
}

// Set registers dec for the given types, replacing earlier registrations.
func (r *Registry[K, E]) Set(dec Decoder[E], types ...K) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.decoders == nil {
		r.decoders = make(map[K]Decoder[E], len(types))
	}
	for _, t := range types {
		r.decoders[t] = dec
	}
}

// Lookup returns the decoder registered for t.
func (r *Registry[K, E]) Lookup(t K) (Decoder[E], bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	dec, ok := r.decoders[t]
	return dec, ok
}

// Decode decodes ev with the decoder registered for t, or returns raw (the
// SDK's undecoded form of ev) when t has none.
func (r *Registry[K, E]) Decode(t K, ev *E, raw any) (any, error) {
	dec, ok := r.Lookup(t)
	if !ok {
		return raw, nil
	}
	return dec(ev)
}

// Typed adapts a handler taking the event's value as T into a Handler. When
// T is the interface any, the value is what decodeAny returns (the registry's
// view: a registered pointer type, or raw JSON); otherwise decode gives the
// T. A decode error is returned and h is not called.
func Typed[E, T any](decodeAny Decoder[E], decode func(*E) (T, error), h func(ctx context.Context, ev *E, body T) error) Handler[E] {
	var probe T
	if _, isAny := any(&probe).(*any); isAny {
		return func(ctx context.Context, ev *E) error {
			v, err := decodeAny(ev)
			if err != nil {
				return err
			}
			body, _ := v.(T) // T is any, so any value (nil included) fits
			return h(ctx, ev, body)
		}
	}
	return func(ctx context.Context, ev *E) error {
		body, err := decode(ev)
		if err != nil {
			return err
		}
		return h(ctx, ev, body)
	}
}

// Router holds one handler per event type and a fallback. It is safe for
// concurrent use; the zero value is empty and ready.
type Router[K ~string, E any] struct {
	mu       sync.RWMutex
	handlers map[K]Handler[E]
	fallback Handler[E]
}

// Handle registers h for t, replacing any earlier handler.
func (r *Router[K, E]) Handle(t K, h Handler[E]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handlers == nil {
		r.handlers = map[K]Handler[E]{}
	}
	r.handlers[t] = h
}

// SetFallback sets the handler for types nobody registered for.
func (r *Router[K, E]) SetFallback(h Handler[E]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fallback = h
}

// Route returns the handler for t, else the fallback, else nil.
func (r *Router[K, E]) Route(t K) Handler[E] {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if h, ok := r.handlers[t]; ok {
		return h
	}
	return r.fallback
}

// Dispatch runs the handler for t, else the fallback, and returns its error
// as it is. With neither it returns noHandler wrapped and followed by t as
// quote gives it: `attio: no handler for event "foo.bar"`.
func (r *Router[K, E]) Dispatch(ctx context.Context, t K, ev *E, noHandler error) error {
	if h := r.Route(t); h != nil {
		return h(ctx, ev)
	}
	return fmt.Errorf("%w %s", noHandler, quote(t))
}

// maxQuoted is how many runes of an event type quote keeps.
const maxQuoted = 64

// quote quotes an event type for an error message as %q does, cut to 64
// runes and marked "…" when longer, so a hostile payload cannot make errors
// huge.
func quote[K ~string](t K) string {
	s := string(t)
	if r := []rune(s); len(r) > maxQuoted {
		s = string(r[:maxQuoted]) + "…"
	}
	return strconv.Quote(s)
}
