package attio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/crmhook/crmhook/internal/dispatch"
)

// Dispatch has the same shape as the affinity package's, so one habit serves
// both SDKs. The difference is what a "body" is: an Attio event has no body
// key, so the typed value is the whole event decoded into its family's
// struct (RecordEvent, ListEntryEvent, NoteEvent, …), which carries the typed
// id (RecordID, ListEntryID, …) and the family's context keys. Decoding
// checks the id's required keys, so a handler never sees an event without,
// say, id.record_id.

// ErrNoHandler is wrapped by Router.Dispatch when no handler and no fallback
// exist for an event.
var ErrNoHandler = errors.New("attio: no handler for event")

// Registry maps event types to the Go type their events decode into. It
// keeps its own locked map rather than a dispatch.Registry because the
// package's white-box tests read mu and decoders directly.
type Registry struct {
	mu       sync.RWMutex
	decoders map[EventType]dispatch.Decoder[Event]
}

// NewRegistry returns a registry that knows every type of AllEventTypes.
func NewRegistry() *Registry {
	r := &Registry{decoders: map[EventType]dispatch.Decoder[Event]{}}
	Register[RecordEvent](r, RecordCreated, RecordUpdated, RecordDeleted, RecordMerged)
	Register[ListEntryEvent](r, ListEntryCreated, ListEntryUpdated, ListEntryDeleted)
	Register[ListEvent](r, ListCreated, ListUpdated, ListDeleted)
	Register[ListAttributeEvent](r, ListAttributeCreated, ListAttributeUpdated)
	Register[ObjectAttributeEvent](r, ObjectAttributeCreated, ObjectAttributeUpdated)
	Register[NoteEvent](r, NoteCreated, NoteUpdated, NoteDeleted, NoteContentUpdated)
	Register[CommentEvent](r, CommentCreated, CommentResolved, CommentUnresolved, CommentDeleted, CommentUpdated)
	Register[TaskEvent](r, TaskCreated, TaskUpdated, TaskDeleted)
	Register[WorkspaceMemberEvent](r, WorkspaceMemberCreated, WorkspaceMemberUpdated)
	Register[CallRecordingEvent](r, CallRecordingCreated, CallRecordingUpdated)
	return r
}

// DefaultRegistry is used by Event.DecodeBody and by routers made without
// WithRegistry.
var DefaultRegistry = NewRegistry()

// Register makes events of the given types decode into *T, replacing any
// earlier registration (use it for new Attio event types, or your own
// richer structs).
func Register[T any](r *Registry, types ...EventType) {
	r.mu.Lock()
	defer r.mu.Unlock()
	dec := dispatch.Boxed(decodeEvent[T])
	for _, t := range types {
		r.decoders[t] = dec
	}
}

// Decode returns the event decoded into its registered type (a pointer, e.g.
// *RecordEvent), or the raw event as json.RawMessage for an unregistered
// type. Errors wrap ErrParse.
func (r *Registry) Decode(ev *Event) (any, error) {
	if ev == nil {
		return nil, fmt.Errorf("%w: nil event", ErrInvalidPayload)
	}
	r.mu.RLock()
	dec, ok := r.decoders[ev.Type]
	r.mu.RUnlock()
	if !ok {
		return ev.Raw, nil
	}
	return dec(ev)
}

// decodeEvent decodes the whole event into T and runs T's Validate, if any.
func decodeEvent[T any](ev *Event) (T, error) {
	var v T
	if ev == nil || len(ev.Raw) == 0 {
		return v, fmt.Errorf("%w: event has no raw JSON", ErrInvalidPayload)
	}
	if err := json.Unmarshal(ev.Raw, &v); err != nil {
		return v, fmt.Errorf("%w: %s: %s", ErrInvalidPayload, ev.Type, typeErrorText(err))
	}
	if err := validateValue(&v); err != nil {
		return v, fmt.Errorf("%s: %w", ev.Type, err)
	}
	return v, nil
}

// Router calls the handler registered for each event's type.
type Router struct {
	registry *Registry
	core     dispatch.Router[EventType, Event]
}

// RouterOption configures a Router.
type RouterOption func(*Router)

// WithRegistry sets the registry used by handlers registered as On[any].
func WithRegistry(reg *Registry) RouterOption {
	return func(r *Router) { r.registry = reg }
}

// NewRouter returns an empty router.
func NewRouter(opts ...RouterOption) *Router {
	r := &Router{registry: DefaultRegistry}
	for _, o := range opts {
		o(r)
	}
	return r
}

// On registers h for events of type t, replacing any earlier handler. The
// event is decoded into T before h runs: the family's struct
// (On[RecordEvent]), a pointer to it, json.RawMessage, map[string]any, or
// any — which receives what the router's registry decodes (e.g. a
// *RecordEvent). A decode failure is returned by Dispatch, wrapping ErrParse,
// and h is not called.
func On[T any](r *Router, t EventType, h func(ctx context.Context, ev *Event, body T) error) {
	r.core.Handle(t, dispatch.Typed(r.decodeAny, decodeEvent[T], h))
}

// decodeAny is what On[any] handlers receive: the registry's decoding.
func (r *Router) decodeAny(ev *Event) (any, error) { return r.registry.Decode(ev) }

// Fallback sets the handler for events no On handler takes.
func (r *Router) Fallback(h func(ctx context.Context, ev *Event) error) {
	r.core.SetFallback(h)
}

// Dispatch runs the handler for ev.Type, else the fallback. With neither it
// returns an error wrapping ErrNoHandler. Handler errors are returned as they
// are.
func (r *Router) Dispatch(ctx context.Context, ev *Event) error {
	if ev == nil {
		return fmt.Errorf("%w: nil event", ErrInvalidPayload)
	}
	if h := r.core.Route(ev.Type); h != nil {
		return h(ctx, ev)
	}
	return fmt.Errorf("%w %q", ErrNoHandler, ev.Type)
}

// DispatchDelivery dispatches every event of d in order and stops at the
// first error, which names the event's index.
func (r *Router) DispatchDelivery(ctx context.Context, d *Delivery) error {
	if d == nil {
		return fmt.Errorf("%w: nil delivery", ErrInvalidPayload)
	}
	for i, ev := range d.Events {
		if err := r.Dispatch(ctx, ev); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	return nil
}
