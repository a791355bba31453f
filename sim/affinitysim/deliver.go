package affinitysim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/crmhook/crmhook/sim/internal/simdeliver"
)

// Delivery is one POST the simulator made: a delivery attempt of an event,
// or (in Probes) a sample.webhook probe.
type Delivery struct {
	SubscriptionID int64  `json:"subscription_id"` // 0 for the probe of a subscription being created
	URL            string `json:"url"`
	EventType      string `json:"type"`
	SentAt         int64  `json:"sent_at"` // the envelope's sent_at (epoch seconds)
	Attempt        int    `json:"attempt"` // 1 for the first attempt
	// Time is when the attempt started, on Config.Now.
	Time time.Time `json:"time"`
	// Offset is the simulated time between the first attempt and this one:
	// 0, then InitialBackoff, then 3×, 7×… InitialBackoff. It is exact, so
	// tests can check the schedule without measuring real time.
	Offset     time.Duration `json:"offset_ns"`
	StatusCode int           `json:"status_code,omitempty"` // 0 when no answer came
	Error      string        `json:"error,omitempty"`       // why no answer came: timeout, connection failure
	OK         bool          `json:"ok"`                    // answered 2xx
	// Body is the exact bytes POSTed (base64 in JSON). It is kept in memory
	// for tests and the /_sim/ endpoints and never logged.
	Body []byte `json:"body"`
}

// TriggerResult says where a triggered event went: the first attempt to
// every subscription that wants it (none if no enabled subscription does).
type TriggerResult struct {
	Type       string     `json:"type"`
	SentAt     int64      `json:"sent_at"`
	Deliveries []Delivery `json:"deliveries"`
}

// Errors Trigger returns (wrapped; match them with errors.Is).
var (
	ErrClosed           = errors.New("affinitysim: server closed")
	ErrUnknownEventType = errors.New("affinitysim: no sample body for this event type")
	ErrInvalidBody      = errors.New("affinitysim: event body is not valid JSON")
)

// envelope is Affinity's delivery body. Field order is the wire order:
// type, body, sent_at.
type envelope struct {
	Type   string          `json:"type"`
	Body   json.RawMessage `json:"body"`
	SentAt int64           `json:"sent_at"`
}

// Trigger makes the simulated instance emit an event of eventType: one POST
// per enabled subscription that wants the type (an empty subscription list
// wants every type). A nil body sends affinity.SampleBody(eventType); an
// affinity.EventType converts with string(t). Any type is allowed when a
// body is given, so receivers can be tested with event types Affinity may
// add later; such events reach only all-events subscriptions.
//
// Trigger returns once every first attempt has been answered (or ctx is
// done); failed deliveries are then retried in the background, see Delivery
// and Config.RetryWindow.
func (s *Server) Trigger(ctx context.Context, eventType string, body json.RawMessage) (TriggerResult, error) {
	if eventType == "" {
		return TriggerResult{}, fmt.Errorf("%w: the event type is empty", ErrUnknownEventType)
	}
	if body == nil {
		sample, ok := sampleBody(eventType)
		if !ok {
			return TriggerResult{}, fmt.Errorf("%w: %s (pass a body to send other types)",
				ErrUnknownEventType, quoteShort(eventType))
		}
		body = sample
	} else {
		var buf bytes.Buffer
		if err := json.Compact(&buf, body); err != nil {
			return TriggerResult{}, fmt.Errorf("%w: %v", ErrInvalidBody, err)
		}
		body = buf.Bytes()
	}
	sentAt := s.cfg.Now().Unix()
	payload, err := json.Marshal(envelope{Type: eventType, Body: body, SentAt: sentAt})
	if err != nil {
		return TriggerResult{}, fmt.Errorf("affinitysim: trigger %s: encode: %w", quoteShort(eventType), err)
	}

	s.mu.Lock()
	var targets []Webhook
	for _, wh := range s.webhooksLocked() {
		if !wh.Disabled && wh.wants(eventType) {
			targets = append(targets, wh)
		}
	}
	started := s.runner.AddLocked(len(targets))
	s.mu.Unlock()
	if !started {
		return TriggerResult{}, fmt.Errorf("affinitysim: trigger: %w", ErrClosed)
	}

	deliveries, err := simdeliver.Start(ctx, targets, func(wh Webhook, first chan<- Delivery) {
		s.deliver(wh, eventType, sentAt, payload, first)
	})
	if err != nil {
		return TriggerResult{}, fmt.Errorf("affinitysim: trigger %s: %w", quoteShort(eventType), err)
	}
	res := TriggerResult{Type: eventType, SentAt: sentAt, Deliveries: deliveries}
	slices.SortFunc(res.Deliveries, func(a, b Delivery) int { return int(a.SubscriptionID - b.SubscriptionID) })
	return res, nil
}

// deliver runs one event's delivery to one subscription: the first attempt,
// then retries with exponential backoff until a 2xx or until RetryWindow
// (simulated time) has passed since the first attempt, when the subscription
// is disabled as Affinity does.
//
// Every attempt sends the same bytes, including the first sent_at: Affinity
// does not document whether a retry gets a new sent_at, and keeping it makes
// redeliveries byte-identical, which is what a receiver's dedupe must handle.
//
// The schedule is counted in simulated time from the planned waits alone
// (attempt n is planned (2^(n-1)-1)×InitialBackoff after the first), so it
// is exact and the same on a slow machine; real waits are the simulated ones
// divided by TimeScale.
func (s *Server) deliver(wh Webhook, eventType string, sentAt int64, payload []byte, first chan<- Delivery) {
	defer s.runner.Done()
	target := wh.WebhookURL
	sched := simdeliver.NewSchedule(s.cfg.InitialBackoff)
	for attempt := 1; ; attempt++ {
		d := Delivery{
			SubscriptionID: wh.ID,
			URL:            target,
			EventType:      eventType,
			SentAt:         sentAt,
			Attempt:        attempt,
			Time:           s.cfg.Now(),
			Offset:         sched.Offset,
			Body:           payload,
		}
		d.StatusCode, d.Error = s.runner.Post(s.runner.Context(), target, payload, nil, s.cfg.DeliveryTimeout)
		d.OK = d.Error == "" && d.StatusCode >= 200 && d.StatusCode < 300
		s.mu.Lock()
		s.deliveries = append(s.deliveries, d)
		s.mu.Unlock()
		if attempt == 1 {
			first <- d
		}
		if d.OK || s.runner.Context().Err() != nil {
			return
		}

		remaining := s.cfg.RetryWindow - sched.Offset
		if sched.Backoff > remaining {
			// No retry fits in the window: wait out the window, then give
			// up and disable the subscription, as Affinity does.
			if !s.runner.Sleep(remaining) {
				return
			}
			s.disableAfterFailures(wh.ID, eventType, attempt)
			return
		}
		if !s.runner.Sleep(sched.Backoff) {
			return
		}
		sched.Advance()

		// A subscription deleted or disabled meanwhile gets no more retries;
		// one that was re-pointed gets them at its new URL.
		cur, ok := s.currentURL(wh.ID)
		if !ok {
			return
		}
		target = cur
	}
}

// currentURL returns the URL of subscription id if it still exists and is
// enabled; ok is false when its pending retries must stop.
func (s *Server) currentURL(id int64) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wh, ok := s.webhooks[id]
	if !ok || wh.Disabled {
		return "", false
	}
	return wh.WebhookURL, true
}

// disableAfterFailures disables a subscription whose deliveries failed for
// the whole retry window. Affinity also emails the instance's admins; the
// simulator logs a line instead.
func (s *Server) disableAfterFailures(id int64, eventType string, attempts int) {
	s.mu.Lock()
	wh, ok := s.webhooks[id]
	disabled := ok && !wh.Disabled
	if disabled {
		wh.Disabled = true
	}
	s.mu.Unlock()
	if disabled {
		s.cfg.Logger.Warn("affinity sim: webhook subscription disabled after failed deliveries for the whole retry window (Affinity would email the admins)",
			"id", id, "type", eventType, "attempts", attempts, "retry_window", s.cfg.RetryWindow)
	}
}

// WaitIdle blocks until no delivery is waiting for a retry or in flight, or
// until ctx is done. Tests use it to wait for a retry schedule to play out.
func (s *Server) WaitIdle(ctx context.Context) error { return s.runner.WaitIdle(ctx) }

// Deliveries returns the delivery log: every attempt of every event, in the
// order the attempts finished.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery{}, s.deliveries...)
}

// Probes returns every sample.webhook probe sent on create and update, in
// order. They are kept apart from Deliveries so event counts stay exact.
func (s *Server) Probes() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery{}, s.probes...)
}

// Close stops the retry loops and waits for them to return. Triggers after
// Close fail with ErrClosed; the API keeps answering.
func (s *Server) Close() { s.runner.Close() }

// probe POSTs Affinity's sample.webhook event to rawURL and returns "" if it
// answered 2xx within ProbeTimeout, else a short reason for the error.
func (s *Server) probe(ctx context.Context, subID int64, rawURL string) string {
	sentAt := s.cfg.Now().Unix()
	probeBody, _ := sampleBody(ProbeType)
	payload, err := json.Marshal(envelope{Type: ProbeType, Body: probeBody, SentAt: sentAt})
	if err != nil {
		return "internal error encoding the probe"
	}
	d := Delivery{
		SubscriptionID: subID,
		URL:            rawURL,
		EventType:      ProbeType,
		SentAt:         sentAt,
		Attempt:        1,
		Time:           s.cfg.Now(),
		Body:           payload,
	}
	d.StatusCode, d.Error = s.runner.Post(ctx, rawURL, payload, nil, s.cfg.ProbeTimeout)
	d.OK = d.Error == "" && d.StatusCode >= 200 && d.StatusCode < 300
	s.mu.Lock()
	s.probes = append(s.probes, d)
	s.mu.Unlock()
	switch {
	case d.OK:
		return ""
	case d.Error != "":
		return d.Error
	default:
		return fmt.Sprintf("it answered %d", d.StatusCode)
	}
}
