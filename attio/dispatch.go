package attio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/crmhook/crmhook/internal/eventrouter"
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

// Registry maps event types to the Go type their events decode into. It is
// safe for concurrent use. The zero value is an empty registry, ready to
// use; a nil *Registry decodes like an empty one.
type Registry struct {
	core eventrouter.Registry[EventType, Event]
}

// NewRegistry returns a registry that knows every type of AllEventTypes.
func NewRegistry() *Registry {
	r := &Registry{}
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
// WithRegistry (or with WithRegistry(nil)).
var DefaultRegistry = NewRegistry()

// Register makes events of the given types decode into *T, replacing any
// earlier registration (use it for new Attio event types, or your own
// richer structs). r must not be nil.
func Register[T any](r *Registry, types ...EventType) {
	r.core.Set(eventrouter.Boxed(decodeEvent[T]), types...)
}

// Decode returns the event decoded into its registered type (a pointer, e.g.
// *RecordEvent), or the raw event as json.RawMessage for an unregistered
// type. Errors wrap ErrParse.
func (r *Registry) Decode(ev *Event) (any, error) {
	if ev == nil {
		return nil, fmt.Errorf("%w: nil event", ErrInvalidPayload)
	}
	if r == nil {
		return ev.Raw, nil
	}
	return r.core.Decode(ev.Type, ev, ev.Raw)
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
		return v, errorf("%s: %w", ev.Type, err)
	}
	return v, nil
}

// Router calls the handler registered for each event's type. It is safe for
// concurrent use.
type Router struct {
	registry *Registry
	core     eventrouter.Router[EventType, Event]
}

// RouterOption configures a Router.
type RouterOption func(*Router)

// WithRegistry sets the registry used by handlers registered as On[any]. A
// nil registry leaves DefaultRegistry in place.
func WithRegistry(reg *Registry) RouterOption {
	return func(r *Router) { r.registry = reg }
}

// NewRouter returns an empty router. Nil options are skipped.
func NewRouter(opts ...RouterOption) *Router {
	r := &Router{registry: DefaultRegistry}
	for _, o := range opts {
		if o != nil {
			o(r)
		}
	}
	if r.registry == nil {
		r.registry = DefaultRegistry
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
	r.core.Handle(t, eventrouter.Typed(r.decodeAny, decodeEvent[T], h))
}

// decodeAny is what On[any] handlers receive: the registry's decoding
// (DefaultRegistry's for a zero Router).
func (r *Router) decodeAny(ev *Event) (any, error) {
	if r.registry == nil {
		return DefaultRegistry.Decode(ev)
	}
	return r.registry.Decode(ev)
}

// Fallback sets the handler for events no On handler takes.
func (r *Router) Fallback(h func(ctx context.Context, ev *Event) error) {
	r.core.SetFallback(h)
}

// Dispatch runs the handler for ev.Type, else the fallback. With neither it
// returns an error wrapping ErrNoHandler that quotes the type, worded as the
// affinity package's: attio: no handler for event "deal.created". Handler
// errors are returned as they are.
func (r *Router) Dispatch(ctx context.Context, ev *Event) error {
	if ev == nil {
		return fmt.Errorf("%w: nil event", ErrInvalidPayload)
	}
	return r.core.Dispatch(ctx, ev.Type, ev, ErrNoHandler)
}

// DispatchDelivery dispatches every event of d in order and stops at the
// first error, which names the event's index.
func (r *Router) DispatchDelivery(ctx context.Context, d *Delivery) error {
	if d == nil {
		return fmt.Errorf("%w: nil delivery", ErrInvalidPayload)
	}
	for i, ev := range d.Events {
		if err := r.Dispatch(ctx, ev); err != nil {
			return errorf("event %d: %w", i, err)
		}
	}
	return nil
}
