package admin

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/crmhook/crmhook"
)

// EventJSON is an event as the admin API shows it.
type EventJSON struct {
	ID         string           `json:"id"`
	Source     string           `json:"source"`
	Provider   crmhook.Provider `json:"provider"`
	Type       string           `json:"type"`
	DedupeKey  string           `json:"dedupe_key"`
	OccurredAt *time.Time       `json:"occurred_at,omitempty"`
	ReceivedAt time.Time        `json:"received_at"`
	Payload    json.RawMessage  `json:"payload,omitempty"`
}

// DeliveryJSON is a delivery as the admin API shows it.
type DeliveryJSON struct {
	ID            int64                 `json:"id"`
	EventID       string                `json:"event_id"`
	Sink          string                `json:"sink"`
	State         crmhook.DeliveryState `json:"state"`
	Attempts      int                   `json:"attempts"`
	NextAttemptAt *time.Time            `json:"next_attempt_at,omitempty"`
	LeasedUntil   *time.Time            `json:"leased_until,omitempty"`
	LastError     string                `json:"last_error,omitempty"`
	CreatedAt     time.Time             `json:"created_at"`
	DeliveredAt   *time.Time            `json:"delivered_at,omitempty"`
}

// RejectionJSON is a rejection as the admin API shows it.
type RejectionJSON struct {
	ID         int64      `json:"id"`
	Event      EventJSON  `json:"event"`
	Reason     string     `json:"reason"`
	RejectedAt time.Time  `json:"rejected_at"`
	ReleasedAt *time.Time `json:"released_at,omitempty"`
}

// StatsJSON is the queue summary.
type StatsJSON struct {
	Pending       int64      `json:"pending"`
	Dead          int64      `json:"dead"`
	Rejections    int64      `json:"rejections"`
	OldestPending *time.Time `json:"oldest_pending,omitempty"`
}

// ReplayRequest selects deliveries to replay. At least one field must be
// set, or All: replaying everything is never an accident.
type ReplayRequest struct {
	State   crmhook.DeliveryState `json:"state,omitempty"`
	Sink    string                `json:"sink,omitempty"`
	EventID string                `json:"event_id,omitempty"`
	Source  string                `json:"source,omitempty"`
	Since   time.Time             `json:"since,omitzero"`
	Until   time.Time             `json:"until,omitzero"`
	// DeliveryIDs selects deliveries by id (at most MaxReplayIDs).
	DeliveryIDs []int64 `json:"delivery_ids,omitempty"`
	All         bool    `json:"all,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func eventJSON(ev crmhook.Event, withPayload bool) EventJSON {
	out := EventJSON{ID: ev.ID, Source: ev.Source, Provider: ev.Provider, Type: ev.Type, DedupeKey: ev.DedupeKey,
		OccurredAt: timePtr(ev.OccurredAt), ReceivedAt: ev.ReceivedAt}
	if withPayload {
		out.Payload = ev.Payload
	}
	return out
}

func deliveryJSON(d crmhook.Delivery) DeliveryJSON {
	out := DeliveryJSON{ID: d.ID, EventID: d.EventID, Sink: d.Sink, State: d.State, Attempts: d.Attempts,
		LeasedUntil: timePtr(d.LeasedUntil), LastError: d.LastError, CreatedAt: d.CreatedAt, DeliveredAt: timePtr(d.DeliveredAt)}
	if d.State == crmhook.StatePending {
		out.NextAttemptAt = timePtr(d.NextAttemptAt)
	}
	return out
}

// ParseWhen reads a time the way the admin API and the CLI take them: RFC
// 3339, or a duration that long before now ("2h").
func ParseWhen(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a duration like 2h", v)
}

// SubscriptionJSON is a declared subscription as the watchdog last saw it.
type SubscriptionJSON struct {
	Source         string     `json:"source"`
	SubscriptionID string     `json:"subscription_id"`
	Status         string     `json:"status"`
	LastCheckedAt  *time.Time `json:"last_checked_at,omitempty"`
	LastHealthyAt  *time.Time `json:"last_healthy_at,omitempty"`
}

// GapJSON is a span a provider sent nothing for.
type GapJSON struct {
	ID             int64     `json:"id"`
	Source         string    `json:"source"`
	SubscriptionID string    `json:"subscription_id"`
	From           time.Time `json:"from"`
	To             time.Time `json:"to"`
	Seconds        int64     `json:"seconds"`
}

func subscriptionJSON(s crmhook.SubscriptionState) SubscriptionJSON {
	return SubscriptionJSON{Source: s.Source, SubscriptionID: s.SubscriptionID, Status: s.Status,
		LastCheckedAt: timePtr(s.LastCheckedAt), LastHealthyAt: timePtr(s.LastHealthyAt)}
}

func gapJSON(g crmhook.Gap) GapJSON {
	return GapJSON{ID: g.ID, Source: g.Source, SubscriptionID: g.SubscriptionID, From: g.From, To: g.To, Seconds: int64(g.To.Sub(g.From).Seconds())}
}
