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
	"fmt"
	"log/slog"
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
	// ProviderCrmhook marks crmhook's own operational events (the
	// watchdog's findings); their types start with "crmhook.".
	ProviderCrmhook Provider = "crmhook"
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
	// State keeps the events that have at least one delivery in this state.
	State DeliveryState
	// DedupeKey keeps the events stored under this dedupe key (more than
	// one when the key's window ended and a later event took it over).
	DedupeKey string
	// BeforeReceivedAt and BeforeID continue a listing (keyset paging):
	// when BeforeReceivedAt is set, only the events that come after the
	// event (BeforeReceivedAt, BeforeID) newest first are listed: those
	// received earlier, and those received at the same instant with a
	// smaller id. The last event of a page is the cursor of the next.
	BeforeReceivedAt time.Time
	BeforeID         string
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
	// IDs keeps the deliveries with these ids (a selection of dead
	// letters to replay); empty does not filter.
	IDs []int64
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

// Outcome is what became of one delivery attempt.
type Outcome string

// Attempt outcomes, as the dispatcher reports them (metrics).
const (
	OutcomeDelivered Outcome = "delivered"
	OutcomeRetry     Outcome = "retry"
	OutcomeDead      Outcome = "dead"
	OutcomeReleased  Outcome = "released" // given back at shutdown, not counted
	OutcomeLeaseLost Outcome = "lease_lost"
)

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

// SecretState is where a stored source secret stands.
type SecretState string

// Secret states. An active secret is accepted; a retiring one is accepted
// until its RetireAt and not after; a retired one is never accepted again
// (a secret from the config file that a rotation replaced is kept retired,
// so that every replica stops accepting it although the file still names
// it).
const (
	SecretActive   SecretState = "active"
	SecretRetiring SecretState = "retiring"
	SecretRetired  SecretState = "retired"
)

// SourceSecret is a secret a source accepts besides, or instead of, the
// ones in the config file: one that `subscriptions apply` received from
// Attio (which returns a webhook's secret only on create), or one that
// `secrets rotate` generated. It lives in the store so that every replica
// accepts exactly the current secrets without a restart.
type SourceSecret struct {
	ID     int64
	Source string
	Secret string // never logged
	// SubscriptionID is the provider's webhook id the secret belongs to
	// (Attio), "" for path secrets and Standard Webhooks secrets.
	SubscriptionID string
	State          SecretState
	CreatedAt      time.Time
	RetireAt       time.Time // for a retiring secret: when it stops being accepted
}

// String keeps the secret out of anything that prints a SourceSecret.
func (s SourceSecret) String() string {
	return fmt.Sprintf("secret %d of %s (%s, subscription %q)", s.ID, s.Source, s.State, s.SubscriptionID)
}

// LogValue keeps the secret out of structured logs.
func (s SourceSecret) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", s.ID), slog.String("source", s.Source), slog.String("state", string(s.State)))
}

// Rotation is a secret rotation in progress for one source, kept so that
// it resumes where it stopped after a crash.
type Rotation struct {
	Source      string
	Phase       string // the rotation's own step names
	NewSecretID int64
	Grace       time.Duration
	StartedAt   time.Time
	UpdatedAt   time.Time
	// Data holds provider-specific state (the old and new webhook ids).
	Data json.RawMessage
}

// SubscriptionState is what the watchdog last saw of one provider
// subscription.
type SubscriptionState struct {
	Source         string
	SubscriptionID string
	Status         string // the provider's word: active, disabled, degraded, inactive, missing
	LastCheckedAt  time.Time
	LastHealthyAt  time.Time // the last check that found it healthy
}

// Gap is a span during which a provider sent nothing because it had
// disabled (or deactivated) the subscription: events of that span are lost
// at the provider.
type Gap struct {
	ID             int64
	Source         string
	SubscriptionID string
	From, To       time.Time
	RecordedAt     time.Time
}

// ControlStore keeps the state of the provider side: source secrets,
// rotations, subscription health, gaps, and named leases that let one
// replica at a time run a singleton job (the watchdog). Both stores
// implement it; store/storetest checks them.
type ControlStore interface {
	// PutSecret inserts a secret and returns its id.
	PutSecret(ctx context.Context, s SourceSecret) (int64, error)
	// ListSecrets lists a source's secrets ("" for every source), oldest first.
	ListSecrets(ctx context.Context, source string) ([]SourceSecret, error)
	// SetSecretState moves a secret to state; retireAt matters for SecretRetiring.
	// ErrNotFound for an unknown id.
	SetSecretState(ctx context.Context, id int64, state SecretState, retireAt time.Time) error

	// PutRotation creates or replaces the source's rotation.
	PutRotation(ctx context.Context, r Rotation) error
	// GetRotation returns the source's rotation, ErrNotFound when there is none.
	GetRotation(ctx context.Context, source string) (Rotation, error)
	// DeleteRotation ends the source's rotation (no error when there is none).
	DeleteRotation(ctx context.Context, source string) error

	// PutSubscriptionState creates or replaces the state of (Source, SubscriptionID).
	PutSubscriptionState(ctx context.Context, s SubscriptionState) error
	// DeleteSubscriptionState forgets the state of (source, subscriptionID),
	// a subscription that no longer exists (no error when there is none).
	DeleteSubscriptionState(ctx context.Context, source, subscriptionID string) error
	// ListSubscriptionStates lists every subscription state, by source and id.
	ListSubscriptionStates(ctx context.Context) ([]SubscriptionState, error)
	// RecordGap keeps a gap and returns its id.
	RecordGap(ctx context.Context, g Gap) (int64, error)
	// ListGaps lists a source's gaps ("" for all), newest RecordedAt first;
	// limit 0 means 100.
	ListGaps(ctx context.Context, source string, limit int) ([]Gap, error)
	// LastEventAt is when the newest event of source was received, zero
	// when there is none. It uses an index, never a scan.
	LastEventAt(ctx context.Context, source string) (time.Time, error)

	// AcquireLease takes or renews the lease called name for owner until
	// now+ttl, and reports whether owner holds it: true when it was free,
	// expired, or already owner's. Two owners never hold it at once.
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if owner holds it.
	ReleaseLease(ctx context.Context, name, owner string) error
}
