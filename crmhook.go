// Package crmhook holds the domain of the crmhook receiver: the events it
// keeps, the deliveries it owes to each sink, and the interfaces of the
// store and of the sinks. Implementations live in subpackages, one per
// dependency (store/sqlite, store/postgres, sink/…); cmd/crmhook wires them.
//
// The promise every part serves: a 2xx from the receiver means the event is
// committed to the store; every stored event reaches every matching sink at
// least once, or is dead-lettered where an operator can see and replay it.
package crmhook

import (
	"context"
	"encoding/json"
	"errors"
	"path"
	"time"

	"github.com/google/uuid"
)

// Provider names the kind of source an event came from.
type Provider string

// The providers crmhook receives from.
const (
	ProviderAffinity         Provider = "affinity"
	ProviderAttio            Provider = "attio"
	ProviderStandardWebhooks Provider = "standard-webhooks"
)

// Event is one provider event as crmhook keeps it. For Attio, whose
// deliveries batch events, each element of the batch is its own Event.
type Event struct {
	ID         string          // crmhook's id: a UUIDv7, so ids sort by arrival
	Source     string          // the configured source name ("affinity", "attio-prod", …)
	Provider   Provider        // the kind of source
	Type       string          // the provider's event type, unknown types included
	DedupeKey  string          // same key inside the dedupe window = a redelivery
	OccurredAt time.Time       // the provider's timestamp, zero when it sends none
	ReceivedAt time.Time       // when the receiver accepted it
	Payload    json.RawMessage // the event JSON exactly as received (PII: never log it)
}

// NewEventID returns a fresh time-ordered event id.
func NewEventID() string { return uuid.Must(uuid.NewV7()).String() }

// DeliveryState is where a delivery stands.
type DeliveryState string

// Delivery states. A pending delivery may be leased to a dispatcher that is
// working on it; the lease, not a state, says so, so a crashed dispatcher's
// work becomes claimable again when its lease runs out.
const (
	StatePending   DeliveryState = "pending"
	StateDelivered DeliveryState = "delivered"
	StateDead      DeliveryState = "dead"
)

// Delivery is what crmhook owes one sink for one event.
type Delivery struct {
	ID            int64
	EventID       string
	Sink          string
	State         DeliveryState
	Attempts      int       // attempts made so far
	NextAttemptAt time.Time // when a pending delivery is due
	LeasedUntil   time.Time // zero when not leased
	LastError     string    // the last failure, never payload data
	CreatedAt     time.Time
	UpdatedAt     time.Time
	DeliveredAt   time.Time // zero until delivered
}

// Claim is a leased delivery with its event, handed to a dispatcher. Lease
// identifies this claim: completing a delivery whose lease was taken over
// fails with ErrLeaseLost.
type Claim struct {
	Delivery Delivery
	Event    Event
	Lease    string
}

// Rejection is a well-formed, authenticated event refused only because its
// timestamp was outside the replay window. It is kept so that an operator
// can list it and release it into the normal flow.
type Rejection struct {
	ID         int64
	Event      Event
	Reason     string
	RejectedAt time.Time
	ReleasedAt time.Time // zero until released
}

// NewEvent is an event to insert, with the sinks it must reach and the end
// of its dedupe window.
type NewEvent struct {
	Event       Event
	Sinks       []string
	DedupeUntil time.Time
}

// InsertResult says what Insert did with one event.
type InsertResult struct {
	Duplicate bool   // the dedupe key was already inside its window: nothing was stored
	EventID   string // the stored event's id (the first one's, for a duplicate when known)
}

// EventFilter selects events to list. Zero fields do not filter.
type EventFilter struct {
	Source string
	Type   string // exact type or a glob such as "person.*"
	Since  time.Time
	Until  time.Time
	Limit  int // 0 means a default of 100
}

// DeliveryFilter selects deliveries to list or replay. Zero fields do not filter.
type DeliveryFilter struct {
	State   DeliveryState
	Sink    string
	EventID string
	Source  string
	Since   time.Time
	Until   time.Time
	Limit   int
}

// RejectionFilter selects rejections to list.
type RejectionFilter struct {
	ID       int64 // one rejection by id
	Source   string
	Released *bool // nil: both
	Since    time.Time
	Until    time.Time
	Limit    int
}

// ClaimParams says how many deliveries to lease, to whom and for how long.
type ClaimParams struct {
	Owner string        // the dispatcher's identity, for operators
	Limit int           // at most this many
	Lease time.Duration // how long the claim is exclusive
	Sinks []string      // only these sinks; empty means all
}

// Stats is the queue as operators watch it.
type Stats struct {
	Pending       int64
	Dead          int64
	Rejections    int64     // not yet released
	OldestPending time.Time // NextAttemptAt-independent: CreatedAt of the oldest pending delivery
}

// PruneParams says what retention removes.
type PruneParams struct {
	DeliveredBefore time.Time // events whose deliveries are all delivered before this
	Now             time.Time // dedupe keys whose window ended before this
}

// Store keeps events, deliveries, dedupe keys and rejections. Every
// implementation passes the conformance suite in store/storetest.
type Store interface {
	// Insert commits the event, one pending delivery per sink and its dedupe
	// key in one transaction, durably, before it returns. A key already
	// inside its window makes it a duplicate and stores nothing. Concurrent
	// calls may share one commit.
	Insert(ctx context.Context, ev NewEvent) (InsertResult, error)

	// Reject keeps a rejection.
	Reject(ctx context.Context, r Rejection) (int64, error)
	// ListRejections lists rejections, newest first.
	ListRejections(ctx context.Context, f RejectionFilter) ([]Rejection, error)
	// ReleaseRejection inserts the rejected event as if accepted now, with
	// deliveries to sinks, and marks the rejection released.
	ReleaseRejection(ctx context.Context, id int64, sinks []string, dedupeUntil time.Time) (InsertResult, error)

	// Claim leases due pending deliveries (NextAttemptAt ≤ now and no live
	// lease), oldest due first. No delivery is leased twice while a lease holds.
	Claim(ctx context.Context, p ClaimParams) ([]Claim, error)
	// Complete marks a claimed delivery delivered.
	Complete(ctx context.Context, c Claim) error
	// Retry records a failed attempt and schedules the next one at next.
	Retry(ctx context.Context, c Claim, next time.Time, lastErr string) error
	// Kill records a failed attempt and moves the delivery to the dead letters.
	Kill(ctx context.Context, c Claim, lastErr string) error
	// Release gives a claim back without counting an attempt (shutdown).
	Release(ctx context.Context, c Claim) error

	// Replay makes the selected delivered or dead deliveries pending again,
	// due now, with their attempts reset. It returns how many it changed.
	Replay(ctx context.Context, f DeliveryFilter) (int, error)

	GetEvent(ctx context.Context, id string) (Event, []Delivery, error)
	ListEvents(ctx context.Context, f EventFilter) ([]Event, error)
	ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)

	// Prune removes what retention no longer needs, and returns how many
	// events it removed.
	Prune(ctx context.Context, p PruneParams) (int, error)
	Stats(ctx context.Context) (Stats, error)
	// Ping reports whether the store can serve (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// Store errors.
var (
	ErrNotFound    = errors.New("crmhook: not found")
	ErrLeaseLost   = errors.New("crmhook: lease lost") // the claim's lease expired and was taken over
	ErrUnavailable = errors.New("crmhook: store unavailable")
	ErrClosed      = errors.New("crmhook: store closed")
	// ErrAlreadyReleased is ReleaseRejection's answer for a rejection that
	// was released before: a conflict with the stored state, not a failure.
	ErrAlreadyReleased = errors.New("crmhook: rejection already released")
)

// Sink is a destination events are delivered to.
type Sink interface {
	// Name is the sink's configured name.
	Name() string
	// Deliver hands one event over. nil means the sink has it. A
	// *DeliveryError says whether to retry and when; any other error is retried.
	Deliver(ctx context.Context, ev *Event, attempt int) error
}

// DeliveryError is a sink's failure with the retry decision attached.
type DeliveryError struct {
	Err        error
	Permanent  bool          // do not retry: dead-letter now (e.g. HTTP 410)
	RetryAfter time.Duration // the sink asked to wait at least this long
}

func (e *DeliveryError) Error() string { return e.Err.Error() }
func (e *DeliveryError) Unwrap() error { return e.Err }

// SinkFilter selects the events a sink wants. Empty lists match everything.
// Type patterns are globs ("person.*", "record.*"), as path.Match reads them.
type SinkFilter struct {
	Sources []string
	Types   []string
}

// Match reports whether the filter wants ev.
func (f SinkFilter) Match(ev *Event) bool {
	return matchAny(f.Sources, ev.Source) && matchAny(f.Types, ev.Type)
}

func matchAny(patterns []string, s string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}
