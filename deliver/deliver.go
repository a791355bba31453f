// Package deliver runs the dispatcher: it claims due deliveries from the
// store with a lease, hands each to its sink with bounded concurrency per
// sink, and records the outcome — delivered, retried later with exponential
// backoff and full jitter, or dead-lettered once the retry budget is spent.
//
// Delivery is at least once: an outcome is recorded only after the sink
// answered, so a crash between the two makes the lease run out and the
// delivery be sent again.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/internal/retry"
)

// RetryPolicy is the retry budget and the backoff between attempts.
type RetryPolicy struct {
	MaxAttempts int           // attempts in all before the delivery is dead; default DefaultMaxAttempts
	MaxAge      time.Duration // no retries past this age of the delivery; default DefaultGiveUpAfter
	BaseDelay   time.Duration // first backoff cap; default DefaultBaseDelay
	MaxDelay    time.Duration // backoff cap; default DefaultMaxDelay
}

// Defaults of Config and RetryPolicy; the config file's defaults are these.
const (
	DefaultMaxAttempts   = 12
	DefaultGiveUpAfter   = 72 * time.Hour
	DefaultBaseDelay     = time.Second
	DefaultMaxDelay      = time.Hour
	DefaultLease         = 60 * time.Second
	DefaultPollInterval  = 500 * time.Millisecond
	DefaultShutdownGrace = 10 * time.Second
	DefaultConcurrency   = 4
)

// Backoff returns the wait before the next attempt after the given number of
// failed attempts: a uniformly random duration up to min(MaxDelay,
// BaseDelay·2^(attempts-1)) — "full jitter", which spreads a burst of
// failures instead of retrying them in lockstep.
func (p RetryPolicy) Backoff(attempts int) time.Duration {
	ceiling := retry.Backoff{Base: p.BaseDelay, Cap: p.MaxDelay}.Ceiling(max(attempts, 1) - 1)
	return rand.N(ceiling) + time.Millisecond
}

// SinkConfig is one sink and how many deliveries it may have in flight.
type SinkConfig struct {
	Sink        crmhook.Sink
	Concurrency int // default DefaultConcurrency
}

// Config configures a Dispatcher.
type Config struct {
	Store crmhook.Store
	Sinks []SinkConfig
	Owner string // identity written on leases; default "dispatcher"
	// Lease is how long a claim is exclusive. Each attempt is cancelled at
	// 80% of it, so an answer is recorded before another dispatcher may take
	// the delivery over. Default DefaultLease.
	Lease time.Duration
	// PollInterval is how often an idle dispatcher looks for due work when
	// nobody calls Notify. Default DefaultPollInterval.
	PollInterval time.Duration
	// ShutdownGrace is how long in-flight attempts may finish after Run's
	// context ends; the rest are cancelled and released. Default DefaultShutdownGrace.
	ShutdownGrace time.Duration
	Retry         RetryPolicy
	Logger        *slog.Logger
	Now           func() time.Time
	// OnAttempt, if set, observes every attempt (metrics).
	OnAttempt func(sink string, outcome crmhook.Outcome, took time.Duration)
}

func (c *Config) setDefaults() {
	if c.Owner == "" {
		c.Owner = "dispatcher"
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.Retry.MaxAttempts == 0 {
		c.Retry.MaxAttempts = DefaultMaxAttempts
	}
	if c.Retry.MaxAge == 0 {
		c.Retry.MaxAge = DefaultGiveUpAfter
	}
	if c.Retry.BaseDelay == 0 {
		c.Retry.BaseDelay = DefaultBaseDelay
	}
	if c.Retry.MaxDelay == 0 {
		c.Retry.MaxDelay = DefaultMaxDelay
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	for i := range c.Sinks {
		if c.Sinks[i].Concurrency == 0 {
			c.Sinks[i].Concurrency = DefaultConcurrency
		}
	}
}

func (c *Config) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("deliver: config: Store is required")
	case c.Lease < 100*time.Millisecond:
		return fmt.Errorf("deliver: config: Lease %s is shorter than 100ms", c.Lease)
	case c.Retry.MaxAttempts < 1:
		return fmt.Errorf("deliver: config: Retry.MaxAttempts %d must be at least 1", c.Retry.MaxAttempts)
	case c.Retry.BaseDelay <= 0 || c.Retry.MaxDelay < c.Retry.BaseDelay:
		return fmt.Errorf("deliver: config: Retry.BaseDelay %s must be positive and at most Retry.MaxDelay %s", c.Retry.BaseDelay, c.Retry.MaxDelay)
	}
	seen := map[string]bool{}
	for i, s := range c.Sinks {
		switch {
		case s.Sink == nil:
			return fmt.Errorf("deliver: config: Sinks[%d].Sink is nil", i)
		case seen[s.Sink.Name()]:
			return fmt.Errorf("deliver: config: Sinks[%d]: duplicate sink name %q", i, s.Sink.Name())
		case s.Concurrency < 1:
			return fmt.Errorf("deliver: config: Sinks[%d].Concurrency %d must be at least 1", i, s.Concurrency)
		}
		seen[s.Sink.Name()] = true
	}
	return nil
}

// Dispatcher delivers stored events to their sinks.
type Dispatcher struct {
	cfg    Config
	sinks  map[string]*sinkSlot
	wake   chan struct{}
	freed  chan struct{}
	flight sync.WaitGroup
}

// sinkSlot is one sink and its two bounds. slots bounds the deliveries in
// flight at the sink, from the request until the outcome is recorded (its
// Concurrency: what a crash may deliver twice). claimed bounds the claims
// not settled yet (twice the slots): a claim waits for a slot, is
// delivered and recorded. So the next claims are made while the sink
// works on the current ones, and a slot that frees up finds a claim
// waiting instead of waiting for the store's claim.
type sinkSlot struct {
	sink    crmhook.Sink
	slots   chan struct{}
	claimed chan struct{}
}

// New validates cfg and returns a Dispatcher.
func New(cfg Config) (*Dispatcher, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &Dispatcher{
		cfg:   cfg,
		sinks: make(map[string]*sinkSlot, len(cfg.Sinks)),
		wake:  make(chan struct{}, 1),
		freed: make(chan struct{}, 1),
	}
	for _, s := range cfg.Sinks {
		d.sinks[s.Sink.Name()] = &sinkSlot{sink: s.Sink,
			slots: make(chan struct{}, s.Concurrency), claimed: make(chan struct{}, claimWindow(s.Concurrency))}
	}
	return d, nil
}

// Notify wakes an idle dispatcher: new work may be due. It never blocks.
func (d *Dispatcher) Notify() { signal(d.wake) }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run claims and delivers until ctx ends, then lets in-flight attempts finish
// for ShutdownGrace, releases what is left, and returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	// Attempts run under their own context so that shutdown can give them a
	// grace period instead of cutting them off mid-request.
	attemptCtx, cancelAttempts := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAttempts()

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		busy := d.claimAndStart(ctx, attemptCtx)
		if !busy {
			timer.Reset(d.cfg.PollInterval)
			select {
			case <-ctx.Done():
			case <-d.wake:
			case <-d.freed:
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
	}

	done := make(chan struct{})
	go func() { d.flight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.cfg.ShutdownGrace):
		cancelAttempts()
		<-done
	}
	return nil
}

// claimWindow is how many claims of a sink may be unsettled at once. A
// sink of concurrency 1 gets no more than one, so that it receives its
// deliveries one by one in the order claimed.
func claimWindow(concurrency int) int {
	if concurrency == 1 {
		return 1
	}
	return 2 * concurrency
}

// claimAndStart claims up to each sink's free claim window, once at least
// a quarter of it is free, and starts the attempts.
// It reports whether it found work, in which case the loop goes straight on.
func (d *Dispatcher) claimAndStart(ctx, attemptCtx context.Context) bool {
	found := false
	for name, s := range d.sinks {
		free := cap(s.claimed) - len(s.claimed)
		// Under load, wait until a quarter of the window is free and claim
		// it together: every claim is a write on the store, and one claim
		// of eight costs about what one claim of one does.
		if free == 0 || free < cap(s.claimed)/4 || ctx.Err() != nil {
			continue
		}
		claims, err := d.cfg.Store.Claim(ctx, crmhook.ClaimParams{
			Owner: d.cfg.Owner, Limit: free, Lease: d.cfg.Lease, Sinks: []string{name},
		})
		if err != nil {
			if ctx.Err() == nil {
				d.cfg.Logger.Warn("claim failed", "sink", name, "err", err)
			}
			continue
		}
		if len(claims) == free {
			found = true // there may be more waiting
		}
		claimedAt := time.Now()
		for _, c := range claims {
			s.claimed <- struct{}{}
			d.flight.Add(1)
			go func() {
				defer d.flight.Done()
				defer func() { <-s.claimed; signal(d.freed) }()
				d.attempt(ctx, attemptCtx, s, c, claimedAt)
			}()
		}
	}
	return found
}

// attempt waits for a slot of the sink, delivers one claim, records the
// outcome and gives the slot back. The attempt ends at 80 % of the lease
// counted from the claim, so that the outcome is recorded before another
// dispatcher may take the delivery over; a claim that waited for a slot
// until less than a quarter of its lease is left is given back instead.
func (d *Dispatcher) attempt(ctx, attemptCtx context.Context, s *sinkSlot, c crmhook.Claim, claimedAt time.Time) {
	sink := s.sink
	deadline := claimedAt.Add(d.cfg.Lease * 8 / 10)
	// Recording the outcome must not be cut short by shutdown.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(attemptCtx), 10*time.Second)
	defer rcancel()
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		// Shutdown before it went out: give it back uncounted.
		d.release(rctx, sink, c)
		return
	}
	// The slot is held until the outcome is recorded: a crash can then
	// repeat at most the sink's concurrency of deliveries.
	defer func() { <-s.slots }()
	if ctx.Err() != nil || time.Until(deadline) < d.cfg.Lease/4 {
		d.release(rctx, sink, c)
		return
	}
	start := time.Now()
	actx, cancel := context.WithDeadline(attemptCtx, deadline)
	err := sink.Deliver(actx, &c.Event, c.Delivery.Attempts+1)
	cancel()
	took := time.Since(start)
	ctx = attemptCtx

	// Built only when a line is written: a delivered attempt logs at debug.
	log := func() *slog.Logger {
		return d.cfg.Logger.With("sink", sink.Name(), "event_id", c.Event.ID, "source", c.Event.Source,
			"type", c.Event.Type, "dedupe_key", c.Event.DedupeKey, "attempt", c.Delivery.Attempts+1)
	}

	var outcome crmhook.Outcome
	var recErr error
	switch {
	case err == nil:
		outcome, recErr = crmhook.OutcomeDelivered, d.cfg.Store.Complete(rctx, c)
	case ctx.Err() != nil:
		// Shutdown cancelled the attempt: give it back uncounted.
		outcome, recErr = crmhook.OutcomeReleased, d.cfg.Store.Release(rctx, c)
	default:
		outcome, recErr = d.fail(rctx, c, err)
	}
	if errors.Is(recErr, crmhook.ErrLeaseLost) {
		outcome = crmhook.OutcomeLeaseLost
	}
	if d.cfg.OnAttempt != nil {
		d.cfg.OnAttempt(sink.Name(), outcome, took)
	}
	switch {
	case recErr != nil && outcome != crmhook.OutcomeLeaseLost:
		// The lease will run out and the delivery be tried again.
		log().Error("recording delivery outcome failed", "outcome", string(outcome), "err", recErr)
	case outcome == crmhook.OutcomeDead:
		log().Warn("delivery dead-lettered", "err", errText(err))
	case outcome == crmhook.OutcomeRetry:
		log().Info("delivery failed, will retry", "err", errText(err))
	case outcome == crmhook.OutcomeLeaseLost:
		log().Warn("lease lost before the outcome was recorded; another dispatcher has it")
	case d.cfg.Logger.Enabled(ctx, slog.LevelDebug):
		log().Debug("delivery attempt", "outcome", string(outcome), "took", took)
	}
}

// release gives a claim that was not attempted back to the store.
func (d *Dispatcher) release(ctx context.Context, sink crmhook.Sink, c crmhook.Claim) {
	err := d.cfg.Store.Release(ctx, c)
	outcome := crmhook.OutcomeReleased
	if errors.Is(err, crmhook.ErrLeaseLost) {
		outcome = crmhook.OutcomeLeaseLost
	}
	if d.cfg.OnAttempt != nil {
		d.cfg.OnAttempt(sink.Name(), outcome, 0)
	}
	if err != nil && outcome != crmhook.OutcomeLeaseLost {
		d.cfg.Logger.Error("releasing an unattempted claim failed", "sink", sink.Name(), "event_id", c.Event.ID, "err", err)
	}
}

// fail decides between another try and the dead letters.
func (d *Dispatcher) fail(ctx context.Context, c crmhook.Claim, err error) (crmhook.Outcome, error) {
	var de *crmhook.DeliveryError
	permanent, retryAfter := false, time.Duration(0)
	if errors.As(err, &de) {
		permanent, retryAfter = de.Permanent, de.RetryAfter
	}
	attempts := c.Delivery.Attempts + 1
	now := d.cfg.Now()
	deadline := c.Delivery.CreatedAt.Add(d.cfg.Retry.MaxAge)
	if permanent || attempts >= d.cfg.Retry.MaxAttempts || !now.Before(deadline) {
		return crmhook.OutcomeDead, d.cfg.Store.Kill(ctx, c, errText(err))
	}
	wait := d.cfg.Retry.Backoff(attempts)
	if retryAfter > wait {
		wait = retryAfter
	}
	next := now.Add(wait)
	if next.After(deadline) {
		next = deadline // one last attempt at the end of the budget
	}
	return crmhook.OutcomeRetry, d.cfg.Store.Retry(ctx, c, next, errText(err))
}

// errText bounds an error for storage and logs; sinks keep payloads out of it.
func errText(err error) string {
	s := err.Error()
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}
