// Package watchdog keeps declared provider subscriptions healthy while
// `crmhook serve` runs. Every interval it reads each declared source's
// subscriptions at the provider and, for what it finds broken, reports an
// operational event through the sinks and (with repair) fixes it:
//
//   - an Affinity subscription disabled after 10 hours of failed deliveries
//     is re-enabled, and the gap (from the last event received, or the last
//     healthy check, to the re-enable) is recorded: Affinity queues nothing
//     for a disabled subscription, so that span's events are lost;
//   - an Attio webhook degraded or inactive is recreated (Attio has no API
//     that reactivates one), its new secret stored first;
//   - a subscription missing, or drifted (events, filter or URL changed at
//     the provider), is recreated or corrected.
//
// Only one replica at a time runs the checks (a lease in the store), and
// with no declared subscription the watchdog does not run at all.
package watchdog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/subscription"
)

// The operational event types the watchdog emits. Their provider is
// crmhook, so a sink with `types: ["crmhook.*"]` is an alert channel.
const (
	TypeDisabled  = "crmhook.subscription.disabled"
	TypeReenabled = "crmhook.subscription.reenabled"
	TypeDegraded  = "crmhook.subscription.degraded"
	TypeInactive  = "crmhook.subscription.inactive"
	TypeMissing   = "crmhook.subscription.missing"
	TypeDrift     = "crmhook.subscription.drift"
	TypeRecreated = "crmhook.subscription.recreated"
)

// OperationalSource is the source of the watchdog's events.
const OperationalSource = string(crmhook.ProviderCrmhook)

// LeaseName is the store lease that lets one replica at a time check.
const LeaseName = "watchdog"

// Store is what the watchdog needs of the store.
type Store interface {
	crmhook.Store
	crmhook.ControlStore
}

// Observer sees what the watchdog finds, for metrics. It may be nil.
type Observer interface {
	SubscriptionStatus(source, subscriptionID, status string)
	Gap(source string, d time.Duration)
}

// Config configures a Watchdog.
type Config struct {
	Manager  *subscription.Manager
	Store    Store
	Interval time.Duration // required, > 0
	Repair   bool
	// Owner names this replica on the lease.
	Owner string
	// Route names the sinks an operational event goes to (the sink filters).
	Route func(*crmhook.Event) []string
	// OnStored wakes the dispatcher after an event was stored; may be nil.
	OnStored func()
	Observer Observer
	Now      func() time.Time // crmhook's one clock
	Logger   *slog.Logger
}

// Watchdog checks declared subscriptions; see the package doc.
type Watchdog struct {
	cfg Config
}

// New validates cfg.
func New(cfg Config) (*Watchdog, error) {
	switch {
	case cfg.Manager == nil:
		return nil, errors.New("watchdog: config: Manager is required")
	case cfg.Store == nil:
		return nil, errors.New("watchdog: config: Store is required")
	case cfg.Interval <= 0:
		return nil, errors.New("watchdog: config: Interval must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Route == nil {
		cfg.Route = func(*crmhook.Event) []string { return nil }
	}
	if cfg.Owner == "" {
		cfg.Owner = "watchdog"
	}
	return &Watchdog{cfg: cfg}, nil
}

// Run checks at once and then every interval until ctx ends, on the
// replica that holds the lease.
func (w *Watchdog) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		w.tick(ctx)
		select {
		case <-ctx.Done():
			_ = w.cfg.Store.ReleaseLease(context.WithoutCancel(ctx), LeaseName, w.cfg.Owner)
			return
		case <-t.C:
		}
	}
}

// leaseTTL is how long the lease outlives its last renewal: two
// intervals, so a replica that stops is replaced after at most about two
// intervals; the holder renews it every interval.
func (w *Watchdog) leaseTTL() time.Duration { return 2*w.cfg.Interval + time.Second }

func (w *Watchdog) tick(ctx context.Context) {
	held, err := w.cfg.Store.AcquireLease(ctx, LeaseName, w.cfg.Owner, w.leaseTTL())
	if err != nil {
		if ctx.Err() == nil {
			w.cfg.Logger.Warn("watchdog: lease", "err", err)
		}
		return
	}
	if !held {
		return
	}
	// The lease is renewed while the check runs, however long it takes
	// (slow provider calls, Affinity's probe, an Attio secret's settle
	// time): a check that outlived the lease would let another replica
	// repair the same subscriptions at the same time. Should the lease be
	// lost anyway, the check is cancelled. It is renewed until the check
	// has returned, even once ctx has ended (a check may take a moment to
	// stop): Run releases it then.
	cctx, cancel := context.WithCancel(ctx)
	hctx, stopHolding := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { w.holdLease(hctx, cancel) })
	_, err = w.Check(cctx)
	stopHolding()
	cancel()
	wg.Wait()
	if err != nil && ctx.Err() == nil {
		w.cfg.Logger.Warn("watchdog: check failed", "err", err)
	}
}

// holdLease renews the lease every interval until ctx ends, and calls lost
// when the lease was taken over or could not be renewed for so long that it
// may have run out.
func (w *Watchdog) holdLease(ctx context.Context, lost context.CancelFunc) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	renewed := time.Now() // real time: the lease runs out in real time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held, err := w.cfg.Store.AcquireLease(ctx, LeaseName, w.cfg.Owner, w.leaseTTL())
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && held:
			renewed = time.Now()
		case err == nil:
			w.cfg.Logger.Warn("watchdog: lease lost during a check; cancelling it")
			lost()
			return
		case time.Since(renewed) >= w.leaseTTL()-w.cfg.Interval:
			w.cfg.Logger.Warn("watchdog: lease not renewed during a check; cancelling it", "err", err)
			lost()
			return
		}
	}
}

// Finding is one thing a check found, and what it did about it.
type Finding struct {
	Source         string
	SubscriptionID string
	Type           string // one of the Type… constants
	Status         subscription.Status
	Changes        []string
	Repaired       bool
	Gap            *crmhook.Gap // a span lost at the provider, when there is one
	Err            error        // a repair that failed
}

// Check runs one check of every declared subscription and returns what it
// found. It does not take the lease: Run does.
func (w *Watchdog) Check(ctx context.Context) ([]Finding, error) {
	plan, err := w.cfg.Manager.Plan(ctx, subscription.PlanOptions{})
	if err != nil {
		return nil, fmt.Errorf("watchdog: plan: %w", err)
	}
	states, err := w.cfg.Store.ListSubscriptionStates(ctx)
	if err != nil {
		return nil, fmt.Errorf("watchdog: states: %w", err)
	}
	prev := make(map[[2]string]crmhook.SubscriptionState, len(states))
	lastHealthy := map[string]time.Time{} // by source, over all its subscriptions
	for _, s := range states {
		prev[[2]string{s.Source, s.SubscriptionID}] = s
		lastHealthy[s.Source] = latest(lastHealthy[s.Source], s.LastHealthyAt)
	}
	var findings []Finding
	var errs []error
	rotating := map[string]bool{}
	checked := map[string]bool{} // sources this check judged
	keep := map[[2]string]bool{} // the states it wrote
	for _, step := range plan.Steps {
		if step.Action == subscription.ActionUnmanaged {
			continue
		}
		// A source whose secret is being rotated has two subscriptions for a
		// moment: left to the rotation, not "repaired" under it.
		r, seen := rotating[step.Source]
		if !seen {
			_, err := w.cfg.Store.GetRotation(ctx, step.Source)
			// A rotation that cannot be read may be under way: the source
			// is left alone this time.
			r = !errors.Is(err, crmhook.ErrNotFound)
			if err != nil && r {
				errs = append(errs, fmt.Errorf("watchdog: %s: rotation: %w", step.Source, err))
			}
			rotating[step.Source] = r
		}
		if r {
			continue
		}
		checked[step.Source] = true
		p := prev[[2]string{step.Source, step.SubscriptionID}]
		if step.Action == subscription.ActionCreate {
			// None of the source's subscriptions is left: its gap starts
			// at the last check that found one of them healthy (their
			// states are forgotten below; the missing placeholder keeps
			// the time).
			p.LastHealthyAt = latest(p.LastHealthyAt, lastHealthy[step.Source])
		}
		f, kept, err := w.handle(ctx, step, p)
		if err != nil {
			errs = append(errs, err)
		}
		if kept != nil {
			keep[[2]string{kept.Source, kept.SubscriptionID}] = true
		}
		if f != nil {
			findings = append(findings, *f)
		}
	}
	// States of subscriptions that are gone (deleted, replaced, or the
	// "missing" placeholder of one since created) are forgotten.
	for _, st := range states {
		if checked[st.Source] && !keep[[2]string{st.Source, st.SubscriptionID}] {
			if err := w.cfg.Store.DeleteSubscriptionState(ctx, st.Source, st.SubscriptionID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return findings, errors.Join(errs...)
}

// handle judges one step of the plan: records the subscription's state,
// reports a change, and repairs when asked to. It returns the state it
// wrote, nil when the subscription is gone (deleted, or replaced by one the
// next check will see).
func (w *Watchdog) handle(ctx context.Context, step subscription.Step, prev crmhook.SubscriptionState) (*Finding, *crmhook.SubscriptionState, error) {
	now := w.cfg.Now()
	state := crmhook.SubscriptionState{Source: step.Source, SubscriptionID: step.SubscriptionID, Status: string(step.Status),
		LastCheckedAt: now, LastHealthyAt: prev.LastHealthyAt}
	f := &Finding{Source: step.Source, SubscriptionID: step.SubscriptionID, Status: step.Status, Changes: step.Changes}
	switch step.Action {
	case subscription.ActionNone:
		state.LastHealthyAt = now
		f = nil
	case subscription.ActionEnable:
		f.Type = TypeDisabled
	case subscription.ActionCreate:
		f.Type, state.SubscriptionID, state.Status = TypeMissing, "", string(subscription.StatusMissing)
	case subscription.ActionUpdate:
		f.Type = TypeDrift
	case subscription.ActionRecreate:
		switch step.Status {
		case subscription.StatusInactive:
			f.Type = TypeInactive
		case subscription.StatusDegraded:
			f.Type = TypeDegraded
		default:
			f.Type = TypeDrift // ours, but its secret is unknown: it cannot be verified
		}
	case subscription.ActionDelete:
		// A second subscription of ours: deliveries would come twice.
		f.Type = TypeDrift
	default:
		return nil, nil, nil
	}
	w.observe(state)
	if f == nil {
		return nil, &state, w.cfg.Store.PutSubscriptionState(ctx, state)
	}
	// A finding already reported and left as it was (repair off) is not
	// reported again every interval: the previous check found the
	// subscription unhealthy (it left LastHealthyAt behind LastCheckedAt)
	// with the same status. Status alone does not tell: a subscription
	// that drifted stays active.
	if !w.cfg.Repair && prev.Status == state.Status && !prev.LastCheckedAt.IsZero() && prev.LastHealthyAt.Before(prev.LastCheckedAt) {
		return nil, &state, w.cfg.Store.PutSubscriptionState(ctx, state)
	}
	var err error
	if w.cfg.Repair {
		err = w.repair(ctx, step, f, prev, &state)
	}
	// The state is written before the events go out, so that whoever the
	// events alert finds it current. A repaired create or recreate made a
	// new subscription, and a delete removed one: the old state goes, the
	// next check sees the new one.
	kept := &state
	if f.Repaired && step.Action != subscription.ActionEnable && step.Action != subscription.ActionUpdate {
		kept = nil
	} else if perr := w.cfg.Store.PutSubscriptionState(ctx, state); perr != nil {
		err = errors.Join(err, perr)
	}
	w.report(ctx, f)
	return f, kept, err
}

// repair applies the step and, where the provider sent nothing for a span
// (disabled, inactive, missing), records the gap.
func (w *Watchdog) repair(ctx context.Context, step subscription.Step, f *Finding, prev crmhook.SubscriptionState, state *crmhook.SubscriptionState) error {
	lost := step.Action == subscription.ActionEnable || step.Action == subscription.ActionCreate || step.Status == subscription.StatusInactive
	var from time.Time
	if lost {
		// Before the repair: the repair's own probe is not an event.
		last, err := w.cfg.Store.LastEventAt(ctx, step.Source)
		if err != nil {
			return fmt.Errorf("watchdog: %s: last event: %w", step.Source, err)
		}
		from = latest(last, prev.LastHealthyAt)
	}
	if err := w.cfg.Manager.Apply(ctx, &subscription.Plan{Steps: []subscription.Step{step}}); err != nil {
		f.Err = err
		w.cfg.Logger.Warn("watchdog: repair failed", "source", step.Source, "subscription", step.SubscriptionID, "action", string(step.Action), "err", err)
		return fmt.Errorf("watchdog: %s: %s: %w", step.Source, step.Action, err)
	}
	f.Repaired = true
	now := w.cfg.Now()
	state.Status, state.LastHealthyAt = string(subscription.StatusActive), now
	if from.After(now) {
		// The last event was stamped by a replica whose clock runs ahead.
		from = now
	}
	if lost && !from.IsZero() {
		// Microseconds, as the stores keep them: the events and the
		// stored gap then say the same instant.
		g := crmhook.Gap{Source: step.Source, SubscriptionID: step.SubscriptionID,
			From: from.Truncate(time.Microsecond), To: now.Truncate(time.Microsecond), RecordedAt: now}
		id, err := w.cfg.Store.RecordGap(ctx, g)
		if err != nil {
			return fmt.Errorf("watchdog: %s: record gap: %w", step.Source, err)
		}
		g.ID = id
		f.Gap = &g
		if w.cfg.Observer != nil {
			w.cfg.Observer.Gap(step.Source, g.To.Sub(g.From))
		}
	}
	w.observe(*state)
	return nil
}

// report emits the finding, and its repair, as operational events.
func (w *Watchdog) report(ctx context.Context, f *Finding) {
	w.cfg.Logger.Warn("watchdog: subscription "+strings.TrimPrefix(f.Type, "crmhook.subscription."),
		"source", f.Source, "subscription", f.SubscriptionID, "status", string(f.Status), "repaired", f.Repaired)
	w.emit(ctx, f.Type, f)
	if !f.Repaired {
		return
	}
	after := *f
	after.Status = subscription.StatusActive
	switch f.Type {
	case TypeDisabled:
		w.emit(ctx, TypeReenabled, &after)
	case TypeInactive, TypeDegraded, TypeMissing:
		w.emit(ctx, TypeRecreated, &after)
	}
}

// Payload is the data of an operational event.
type Payload struct {
	Source         string   `json:"source"`
	SubscriptionID string   `json:"subscription_id,omitempty"`
	Status         string   `json:"status"`
	Changes        []string `json:"changes,omitempty"`
	Repaired       bool     `json:"repaired"`
	Gap            *GapJSON `json:"gap,omitempty"`
	Error          string   `json:"error,omitempty"`
}

// GapJSON is a gap in an operational event.
type GapJSON struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Seconds float64   `json:"seconds"`
}

func (w *Watchdog) emit(ctx context.Context, typ string, f *Finding) {
	p := Payload{Source: f.Source, SubscriptionID: f.SubscriptionID, Status: string(f.Status), Changes: f.Changes, Repaired: f.Repaired}
	if f.Gap != nil {
		p.Gap = &GapJSON{From: f.Gap.From.UTC(), To: f.Gap.To.UTC(), Seconds: f.Gap.To.Sub(f.Gap.From).Round(time.Millisecond).Seconds()}
	}
	if f.Err != nil {
		p.Error = f.Err.Error()
	}
	body, _ := json.Marshal(p)
	now := w.cfg.Now()
	// The event's source is crmhook itself, not the provider source it is
	// about (that is in the payload): the source's last event must stay the
	// provider's, since gaps are measured from it.
	ev := crmhook.Event{ID: crmhook.NewEventID(), Source: OperationalSource, Provider: crmhook.ProviderCrmhook, Type: typ,
		OccurredAt: now, ReceivedAt: now, Payload: body}
	if _, err := w.cfg.Store.Insert(ctx, crmhook.NewEvent{Event: ev, Sinks: w.cfg.Route(&ev)}); err != nil {
		w.cfg.Logger.Warn("watchdog: could not store an operational event", "type", typ, "err", err)
		return
	}
	if w.cfg.OnStored != nil {
		w.cfg.OnStored()
	}
}

func (w *Watchdog) observe(s crmhook.SubscriptionState) {
	if w.cfg.Observer != nil && s.SubscriptionID != "" {
		w.cfg.Observer.SubscriptionStatus(s.Source, s.SubscriptionID, s.Status)
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
