package attiosim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/sim/internal/simdeliver"
)

// Delivery is one entry of the delivery log: one attempt to deliver one
// message (one event to one webhook). It holds no secret and no payload.
type Delivery struct {
	// Time is when the attempt started, on Config.Now.
	Time      time.Time `json:"time"`
	WebhookID string    `json:"webhook_id"`
	EventType string    `json:"event_type"`
	// IdempotencyKey is the Idempotency-Key header: the same on every
	// attempt of one message, different for every message.
	IdempotencyKey string `json:"idempotency_key"`
	Attempt        int    `json:"attempt"` // 1 for the first attempt, 2 for the first retry…
	// Offset is the simulated time between the first attempt and this one:
	// 0, then InitialBackoff, then 3×, 7×… InitialBackoff. It is exact, so
	// tests can check the schedule without measuring real time.
	Offset     time.Duration `json:"offset_ns"`
	StatusCode int           `json:"status_code,omitempty"` // 0 when no answer came
	Error      string        `json:"error,omitempty"`       // why no answer came: timeout, connection failure
	// OK says the target accepted the message: it answered 200 or 202,
	// the only answers Attio takes as delivered.
	OK bool `json:"ok"`
	// GaveUp marks the last failed attempt of a message, after which the
	// webhook became degraded.
	GaveUp bool `json:"gave_up,omitempty"`
}

// TriggerResult says what a triggered event did: the event as sent and the
// first attempt to every webhook it matched (none when no webhook
// subscribes to its type, or every filter refused it).
type TriggerResult struct {
	EventType  string          `json:"event_type"`
	Event      json.RawMessage `json:"event"`
	Deliveries []Delivery      `json:"deliveries"`
}

// ErrClosed is returned by Trigger after Close.
var ErrClosed = errors.New("attiosim: server closed")

// deliveryBody is what Attio POSTs. Field order is the wire order.
type deliveryBody struct {
	WebhookID string            `json:"webhook_id"`
	Events    []json.RawMessage `json:"events"`
}

// message is one event owed to one webhook.
type message struct {
	webhookID      string
	eventType      string
	idempotencyKey string
	body           []byte // identical on every attempt
}

// Trigger makes the simulated workspace emit an event of eventType: the
// sample event (see SampleEvent) with override, when not empty, applied as a
// JSON merge patch (RFC 7386), so override can change a few fields
// ({"id": {"list_id": "…"}}) or give a whole event. An empty eventType is
// taken from the override's event_type. Unknown types are refused with
// ErrUnknownEventType: subscriptions can name only known types, so no
// webhook could receive them.
//
// The event goes to every webhook that is not inactive and has a
// subscription to eventType whose filter (attio.Filter.Match) accepts it,
// one message per webhook even when several subscriptions match. Trigger
// returns once every first attempt has been answered (or ctx is done);
// failed messages are then retried in the background.
func (s *Server) Trigger(ctx context.Context, eventType string, override json.RawMessage) (TriggerResult, error) {
	eventType, event, err := buildEvent(eventType, override, s.cfg.WorkspaceID, uuid.NewString)
	if err != nil {
		return TriggerResult{}, err // already "attiosim: unknown event type …" or "attiosim: invalid event: …"
	}
	var decoded map[string]any
	if err := json.Unmarshal(event, &decoded); err != nil {
		return TriggerResult{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}

	s.mu.Lock()
	var msgs []message
	for _, wh := range s.sortedLocked() {
		if wh.Status == attio.WebhookInactive || !wants(wh.Subscriptions, attio.EventType(eventType), decoded) {
			continue
		}
		body, err := json.Marshal(deliveryBody{WebhookID: wh.ID.WebhookID, Events: []json.RawMessage{event}})
		if err != nil {
			s.mu.Unlock()
			return TriggerResult{}, fmt.Errorf("attiosim: trigger: encode: %w", err)
		}
		msgs = append(msgs, message{
			webhookID:      wh.ID.WebhookID,
			eventType:      eventType,
			idempotencyKey: uuid.NewString(),
			body:           body,
		})
	}
	started := s.runner.AddLocked(len(msgs))
	s.mu.Unlock()
	if !started {
		return TriggerResult{}, fmt.Errorf("attiosim: trigger: %w", ErrClosed)
	}

	deliveries, err := simdeliver.Start(ctx, msgs, s.deliver)
	if err != nil {
		return TriggerResult{}, fmt.Errorf("attiosim: trigger: %w", err)
	}
	res := TriggerResult{EventType: eventType, Event: event, Deliveries: deliveries}
	order := make(map[string]int, len(msgs))
	for i, m := range msgs {
		order[m.webhookID] = i
	}
	slices.SortFunc(res.Deliveries, func(a, b Delivery) int { return order[a.WebhookID] - order[b.WebhookID] })
	return res, nil
}

// wants reports whether any subscription to t accepts the event.
func wants(subs []attio.Subscription, t attio.EventType, event map[string]any) bool {
	for _, sub := range subs {
		if sub.EventType == t && sub.Filter.Match(event) {
			return true
		}
	}
	return false
}

// deliver runs one message: the first attempt, then up to MaxRetries
// retries with exponential backoff while the answer is not 200 or 202. When
// the last retry fails the webhook becomes degraded; a success makes a
// degraded webhook active again.
//
// Every attempt sends the same bytes with the same Idempotency-Key, signed
// with the webhook's secret. Retries go to the webhook's current target URL;
// a webhook deleted or made inactive meanwhile gets no more attempts.
//
// The schedule is counted in simulated time from the planned waits alone
// (retry n is planned (2^n-1)×InitialBackoff after the first attempt), so
// Offset is exact on a slow machine; real waits are the simulated ones
// divided by TimeScale.
func (s *Server) deliver(m message, first chan<- Delivery) {
	defer s.runner.Done()
	sched := simdeliver.NewSchedule(s.cfg.InitialBackoff)
	for attempt := 1; ; attempt++ {
		s.mu.Lock()
		wh, ok := s.webhooks[m.webhookID]
		var target, secret string
		if ok {
			s.refreshStatusLocked(wh, s.cfg.Now())
			ok = wh.Status != attio.WebhookInactive
			target, secret = wh.TargetURL, wh.Secret
		}
		s.mu.Unlock()
		if !ok {
			if attempt == 1 { // deleted between Trigger's choice and now
				first <- Delivery{Time: s.cfg.Now(), WebhookID: m.webhookID, EventType: m.eventType,
					IdempotencyKey: m.idempotencyKey, Attempt: attempt, Error: "webhook deleted or inactive"}
			}
			return
		}

		d := Delivery{
			Time:           s.cfg.Now(),
			WebhookID:      m.webhookID,
			EventType:      m.eventType,
			IdempotencyKey: m.idempotencyKey,
			Attempt:        attempt,
			Offset:         sched.Offset,
		}
		d.StatusCode, d.Error = s.post(target, secret, m)
		d.OK = d.Error == "" && (d.StatusCode == http.StatusOK || d.StatusCode == http.StatusAccepted)
		d.GaveUp = !d.OK && attempt > s.cfg.MaxRetries && s.runner.Context().Err() == nil

		s.mu.Lock()
		s.deliveries = append(s.deliveries, d)
		if wh, ok := s.webhooks[m.webhookID]; ok {
			switch {
			case d.OK:
				wh.Status, wh.degradedAt = attio.WebhookActive, time.Time{}
			case d.GaveUp && wh.Status == attio.WebhookActive:
				// The inactive clock starts at the first give-up and is not
				// reset by later ones.
				wh.Status, wh.degradedAt = attio.WebhookDegraded, d.Time
			}
		}
		s.mu.Unlock()
		s.cfg.Logger.Info("attio sim: delivery attempt", "webhook_id", d.WebhookID, "event_type", d.EventType,
			"attempt", d.Attempt, "status", d.StatusCode, "error", d.Error, "ok", d.OK)
		if d.GaveUp {
			s.cfg.Logger.Warn("attio sim: webhook degraded after its retries ran out", "webhook_id", d.WebhookID)
		}
		if attempt == 1 {
			first <- d
		}
		if d.OK || d.GaveUp || s.runner.Context().Err() != nil {
			return
		}
		if !s.runner.Sleep(sched.Backoff) {
			return
		}
		sched.Advance()
	}
}

// post sends one attempt of m to target, with the Idempotency-Key and the
// signature made with secret, and returns the status code or why no answer
// came (see simdeliver.Runner.Post).
func (s *Server) post(target, secret string, m message) (int, string) {
	header := http.Header{}
	header.Set(attio.HeaderIdempotencyKey, m.idempotencyKey)
	attio.SignRequestHeaders(header, m.body, secret)
	return s.runner.Post(s.runner.Context(), target, m.body, header, s.cfg.DeliveryTimeout)
}

// WaitIdle blocks until no message is in flight or waiting for a retry, or
// until ctx is done. Tests use it to let a retry schedule play out.
func (s *Server) WaitIdle(ctx context.Context) error { return s.runner.WaitIdle(ctx) }

// Deliveries returns the delivery log: every attempt of every message, in
// the order the attempts finished.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// Close stops the retries and waits for the delivery goroutines to return.
// Triggers after Close fail with ErrClosed; the API keeps answering.
func (s *Server) Close() { s.runner.Close() }
