package affinity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/crmhook/crmhook/internal/eventrouter"
)

// Dispatch has the same shape as the attio package's, so one habit serves
// both SDKs: a Registry maps event types to the Go type their bodies decode
// into, a Router calls one typed handler per event type, with a fallback.
// The difference is what a "body" is: here it is the envelope's "body"
// value, decoded into the family's struct (*Person, *ListEntry, …).

// ErrNoHandler is wrapped by Router.Dispatch when no handler and no fallback
// exist for an event of a real event type; never for the sample.webhook
// probe.
var ErrNoHandler = errors.New("affinity: no handler for event")

// Registry maps event types to the Go type their bodies decode into. It is
// safe for concurrent use.
type Registry struct {
	core eventrouter.Registry[EventType, Event]
}

// NewRegistry returns a registry that knows the event types of EventTypes
// and sample.webhook. smart_interaction_value.updated, whose body Affinity
// does not document, is left unregistered: Decode gives its body as
// json.RawMessage until Register says otherwise.
func NewRegistry() *Registry {
	r := &Registry{}
	Register[Organization](r, OrganizationCreated, OrganizationUpdated, OrganizationDeleted)
	Register[OrganizationMerge](r, OrganizationMerged)
	Register[Person](r, PersonCreated, PersonUpdated, PersonDeleted)
	Register[Opportunity](r, OpportunityCreated, OpportunityUpdated, OpportunityDeleted)
	Register[List](r, ListCreated, ListUpdated, ListDeleted)
	Register[ListEntry](r, ListEntryCreated, ListEntryDeleted)
	Register[Field](r, FieldCreated, FieldUpdated, FieldDeleted)
	Register[FieldValue](r, FieldValueCreated, FieldValueUpdated, FieldValueDeleted)
	Register[Note](r, NoteCreated, NoteUpdated, NoteDeleted)
	Register[File](r, FileCreated, FileDeleted)
	Register[Reminder](r, ReminderCreated, ReminderUpdated, ReminderDeleted)
	Register[SampleWebhookBody](r, SampleWebhook)
	return r
}

// DefaultRegistry is used by DecodeBody and by routers made without
// WithRegistry.
var DefaultRegistry = NewRegistry()

// Register makes bodies of the given event types decode into *T, replacing
// any earlier registration. Use it for event types Affinity adds before
// this package knows them, or for your own richer structs.
func Register[T any](r *Registry, types ...EventType) {
	r.core.Set(eventrouter.Boxed(decodeBody[T]), types...)
}

// Decode returns the event's body decoded into its registered type (a
// pointer, e.g. *Person), or the body as json.RawMessage for an
// unregistered type. Errors wrap ErrParse.
func (r *Registry) Decode(ev *Event) (any, error) {
	if ev == nil {
		return nil, fmt.Errorf("%w: nil event", ErrInvalidPayload)
	}
	if r == nil {
		return ev.Body, nil
	}
	return r.core.Decode(ev.Type, ev, ev.Body)
}

// decodeBody decodes the event's body into T. A JSON null body gives T's
// zero value (Parse only lets null through for unknown types).
func decodeBody[T any](ev *Event) (T, error) {
	var v T
	if ev == nil || len(ev.Body) == 0 {
		return v, fmt.Errorf("%w: event has no body", ErrInvalidPayload)
	}
	if err := json.Unmarshal(ev.Body, &v); err != nil {
		return v, fmt.Errorf("%w: %s body: %s", ErrInvalidPayload, quoteEnvelopeKey(string(ev.Type)), decodeErrorText(err))
	}
	return v, nil
}

// decodeErrorText describes a decoding error without quoting payload values
// (they may be personal data).
func decodeErrorText(err error) string {
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "value"
		}
		return fmt.Sprintf("%s is a JSON %s, want %s", field, te.Value, te.Type)
	case errors.Is(err, errBadTime):
		return "a datetime is neither ISO 8601 nor \"2006-01-02 15:04:05 -0700\""
	default:
		return "not valid JSON of the expected shape"
	}
}

// Router calls the handler registered for each event's type. It is safe
// for concurrent use.
type Router struct {
	registry *Registry
	core     eventrouter.Router[EventType, Event]
	// probeHandled is set once On registers a sample.webhook handler.
	probeHandled atomic.Bool
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
// body is decoded into T before h runs: the family's struct (On[Person]), a
// pointer to it, json.RawMessage, map[string]any, or any — which receives
// what the router's registry decodes (e.g. a *Person, or json.RawMessage
// for an unregistered type). A decode failure is returned by Dispatch,
// wrapping ErrParse, and h is not called.
func On[T any](r *Router, t EventType, h func(ctx context.Context, ev *Event, body T) error) {
	r.core.Handle(t, eventrouter.Typed(r.decodeAny, decodeBody[T], h))
	if t == SampleWebhook {
		r.probeHandled.Store(true)
	}
}

// decodeAny is what On[any] handlers receive: the registry's decoding.
func (r *Router) decodeAny(ev *Event) (any, error) { return r.registry.Decode(ev) }

// Fallback sets the handler for events no On handler takes: unknown types,
// and known ones nobody registered for. The sample.webhook probe never
// reaches it.
func (r *Router) Fallback(h func(ctx context.Context, ev *Event) error) {
	r.core.SetFallback(h)
}

// Dispatch runs the handler for ev.Type, else the fallback. With neither it
// returns an error wrapping ErrNoHandler that quotes the type, worded as the
// attio package's: affinity: no handler for event "deal.closed". Handler
// errors are returned as they are.
//
// The sample.webhook probe is not an event: it runs only a handler
// registered for it with On(r, SampleWebhook, …), never the fallback, and
// without one Dispatch returns nil: the probe is handled by being answered,
// and Affinity refuses to create or update a subscription whose URL does not
// answer it with a 2xx.
func (r *Router) Dispatch(ctx context.Context, ev *Event) error {
	if ev == nil {
		return fmt.Errorf("%w: nil event", ErrInvalidPayload)
	}
	if ev.Type == SampleWebhook && !r.probeHandled.Load() {
		return nil
	}
	return r.core.Dispatch(ctx, ev.Type, ev, ErrNoHandler)
}
