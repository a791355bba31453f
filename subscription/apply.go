package subscription

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/attio"
)

// applyState is what Apply knows of the providers: each planned source's
// state and its subscriptions as listed when Apply started, kept up to date
// as steps run.
type applyState struct {
	sources map[string]*sourceState
	remotes map[string][]Remote
	order   []string // source names, first appearance in the plan
}

func (a *applyState) find(source, id string) (Remote, bool) {
	for _, r := range a.remotes[source] {
		if r.ID == id {
			return r, true
		}
	}
	return Remote{}, false
}

func (a *applyState) remove(source, id string) {
	a.remotes[source] = slices.DeleteFunc(a.remotes[source], func(r Remote) bool { return r.ID == id })
}

// Apply carries out the plan's steps in order and records in each step's
// Result what it did. It is idempotent: it lists the subscriptions again
// first and skips what is already done (a create whose source now has a
// healthy subscription of ours, a delete or recreate of one that is gone),
// so applying a plan twice, or after a crash half-way, changes nothing more.
//
// Before changing anything it checks the providers' limits: a plan that
// would hold more subscriptions at once than a provider allows (Affinity
// V1: 3 per instance) is refused with an *OverLimitError. The first failing
// step stops it; the steps before it stay done.
func (m *Manager) Apply(ctx context.Context, p *Plan) error {
	if p == nil || !p.Changed() {
		return nil
	}
	st := &applyState{sources: map[string]*sourceState{}, remotes: map[string][]Remote{}}
	for _, s := range p.Steps {
		if _, ok := st.sources[s.Source]; ok {
			continue
		}
		ss, err := m.sourceState(ctx, s.Source)
		if err != nil {
			return err
		}
		remotes, err := ss.p.List(ctx)
		if err != nil {
			return fmt.Errorf("subscription: %s: list subscriptions: %w", s.Source, err)
		}
		st.sources[s.Source], st.remotes[s.Source] = ss, remotes
		st.order = append(st.order, s.Source)
	}
	if err := m.checkLimits(st, p); err != nil {
		return err
	}
	for i := range p.Steps {
		step := &p.Steps[i]
		res, err := m.applyStep(ctx, st, step)
		step.Result = res
		if err != nil {
			return fmt.Errorf("subscription: %s: %s %s: %w", step.Source, step.Action, cmpOr(step.SubscriptionID, "subscription"), err)
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// hasHealthy says whether source has a healthy subscription of ours.
func (m *Manager) hasHealthy(st *applyState, source string) (Remote, bool) {
	ss := st.sources[source]
	for _, r := range st.remotes[source] {
		if m.owner(ss, r) == ours && ss.healthy(r) {
			return r, true
		}
	}
	return Remote{}, false
}

// runs says whether a step would change anything now.
func (m *Manager) runs(st *applyState, s Step) bool {
	switch s.Action {
	case ActionCreate:
		_, ok := m.hasHealthy(st, s.Source)
		return !ok
	case ActionUpdate, ActionEnable, ActionRecreate, ActionDelete:
		_, ok := st.find(s.Source, s.SubscriptionID)
		return ok
	}
	return false
}

// checkLimits refuses a plan that would hold more subscriptions at once
// than a provider instance allows.
func (m *Manager) checkLimits(st *applyState, p *Plan) error {
	type instance struct {
		provider crmhook.Provider
		sources  []string
		limit    int
		existing []Remote
		count    int
		need     int
	}
	insts := map[string]*instance{}
	var keys []string
	for _, name := range st.order {
		ss := st.sources[name]
		in := insts[ss.instance]
		if in == nil {
			in = &instance{provider: ss.src.Provider}
			insts[ss.instance] = in
			keys = append(keys, ss.instance)
		}
		in.sources = append(in.sources, name)
		if l := ss.p.Limit(); l > 0 && (in.limit == 0 || l < in.limit) {
			in.limit = l
		}
		for _, r := range st.remotes[name] {
			if !slices.ContainsFunc(in.existing, func(e Remote) bool { return e.ID == r.ID }) {
				in.existing = append(in.existing, r)
			}
		}
	}
	for _, in := range insts {
		in.count = len(in.existing)
		in.need = in.count
	}
	for _, s := range p.Steps {
		if !m.runs(st, s) {
			continue
		}
		in := insts[st.sources[s.Source].instance]
		switch s.Action {
		case ActionCreate:
			in.count++
			in.need = max(in.need, in.count)
		case ActionRecreate: // the new one exists before the old one goes
			in.need = max(in.need, in.count+1)
		case ActionDelete:
			in.count--
		}
	}
	for _, k := range keys {
		in := insts[k]
		if in.limit > 0 && in.need > in.limit && in.need > len(in.existing) {
			return &OverLimitError{Provider: in.provider, Sources: in.sources, Limit: in.limit, Need: in.need, Existing: in.existing}
		}
	}
	return nil
}

// applyStep carries out one step and says what it did.
func (m *Manager) applyStep(ctx context.Context, st *applyState, s *Step) (string, error) {
	if !m.runs(st, *s) {
		switch s.Action {
		case ActionNone, ActionUnmanaged:
			return "", nil
		case ActionCreate:
			r, _ := m.hasHealthy(st, s.Source)
			return "already exists: " + r.ID, nil
		default:
			return "already gone", nil
		}
	}
	ss := st.sources[s.Source]
	log := m.logger().With("source", s.Source)
	switch s.Action {
	case ActionCreate:
		r, err := m.create(ctx, ss)
		if err != nil {
			return "", err
		}
		st.remotes[s.Source] = append(st.remotes[s.Source], r)
		return "created " + r.ID, nil

	case ActionUpdate:
		if err := ss.p.Update(ctx, s.SubscriptionID, ss.url, ss.want); err != nil {
			return "", err
		}
		log.Info("subscription updated", "id", s.SubscriptionID, "url", RedactURL(ss.url), "events", len(ss.want))
		return "updated " + s.SubscriptionID, nil

	case ActionEnable:
		r, _ := st.find(s.Source, s.SubscriptionID)
		res := "enabled " + s.SubscriptionID
		if len(ss.drift(r)) > 0 {
			if err := ss.p.Update(ctx, s.SubscriptionID, ss.url, ss.want); err != nil {
				return "", err
			}
			log.Info("subscription updated", "id", s.SubscriptionID, "url", RedactURL(ss.url), "events", len(ss.want))
			res = "updated and enabled " + s.SubscriptionID
		}
		if err := ss.p.Enable(ctx, s.SubscriptionID); err != nil {
			return "", err
		}
		log.Info("subscription enabled", "id", s.SubscriptionID)
		return res, nil

	case ActionRecreate:
		r, err := m.create(ctx, ss)
		if err != nil {
			return "", err
		}
		st.remotes[s.Source] = append(st.remotes[s.Source], r)
		if err := m.delete(ctx, ss, s.SubscriptionID); err != nil {
			return "created " + r.ID, fmt.Errorf("created %s, then: %w", r.ID, err)
		}
		st.remove(s.Source, s.SubscriptionID)
		return "created " + r.ID + ", deleted " + s.SubscriptionID, nil

	case ActionDelete:
		if err := m.delete(ctx, ss, s.SubscriptionID); err != nil {
			return "", err
		}
		st.remove(s.Source, s.SubscriptionID)
		return "deleted " + s.SubscriptionID, nil
	}
	return "", fmt.Errorf("unknown action %q", s.Action)
}

// delete removes a subscription and retires the secrets stored for it
// after RetireGrace (deliveries it signed may still arrive).
func (m *Manager) delete(ctx context.Context, ss *sourceState, id string) error {
	if err := ss.p.Delete(ctx, id); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	m.logger().Info("subscription deleted", "source", ss.src.Name, "id", id)
	return m.retireSecrets(ctx, ss.src.Name, id)
}

func (m *Manager) retireSecrets(ctx context.Context, source, id string) error {
	stored, err := m.Store.ListSecrets(ctx, source)
	if err != nil {
		return fmt.Errorf("list secrets: %w", err)
	}
	until := m.now().Add(RetireGrace)
	for _, s := range stored {
		if s.SubscriptionID == id && s.State == crmhook.SecretActive {
			if err := m.Store.SetSecretState(ctx, s.ID, crmhook.SecretRetiring, until); err != nil {
				return fmt.Errorf("retire the secret of %s: %w", id, err)
			}
		}
	}
	return nil
}

// Create makes the source's declared subscription at its provider, as
// Apply does for a create step, and returns it. It refuses with an
// *OverLimitError, before anything is created, when the provider's limit is
// reached.
//
// For Attio it creates the webhook receiving nothing, stores the secret
// Attio returns (active, with the webhook's id) before anything else, then
// sets the declared events. Should Attio refuse a webhook receiving nothing
// (a validation error), it creates the webhook with its events and stores
// the secret at once: then a crash between the two can leave a webhook
// whose first events are signed with a secret crmhook never stored (the
// next plan recreates that webhook).
func (m *Manager) Create(ctx context.Context, source string) (Remote, error) {
	ss, err := m.sourceState(ctx, source)
	if err != nil {
		return Remote{}, err
	}
	if limit := ss.p.Limit(); limit > 0 {
		remotes, err := ss.p.List(ctx)
		if err != nil {
			return Remote{}, fmt.Errorf("subscription: %s: list subscriptions: %w", source, err)
		}
		if len(remotes) >= limit {
			return Remote{}, &OverLimitError{Provider: ss.src.Provider, Sources: []string{source}, Limit: limit, Need: len(remotes) + 1, Existing: remotes}
		}
	}
	r, err := m.create(ctx, ss)
	if err != nil {
		return Remote{}, fmt.Errorf("subscription: %s: create: %w", source, err)
	}
	return r, nil
}

func (m *Manager) create(ctx context.Context, ss *sourceState) (Remote, error) {
	log := m.logger().With("source", ss.src.Name)
	if !ss.attio() {
		r, _, err := ss.p.Create(ctx, ss.url, ss.want)
		if err != nil {
			return Remote{}, m.limitError(ctx, ss, err)
		}
		log.Info("subscription created", "id", r.ID, "url", RedactURL(ss.url), "events", len(ss.want))
		return r, nil
	}

	r, secret, err := ss.p.Create(ctx, ss.url, nil)
	confirm := true
	if err != nil && (errors.Is(err, attio.ErrValidation) || errors.Is(err, attio.ErrInvalidRequest)) {
		log.Warn("Attio refused a webhook that receives nothing; creating it with its events and storing its secret right after", "error", err)
		r, secret, err = ss.p.Create(ctx, ss.url, ss.want)
		confirm = false
	}
	if err != nil {
		return Remote{}, err
	}
	if secret == "" {
		if derr := ss.p.Delete(ctx, r.ID); derr != nil {
			return Remote{}, fmt.Errorf("attio returned no secret for new webhook %s, and deleting it failed: %v", r.ID, derr)
		}
		return Remote{}, fmt.Errorf("attio returned no secret for new webhook %s; deleted it", r.ID)
	}
	if _, err := m.Store.PutSecret(ctx, crmhook.SourceSecret{
		Source: ss.src.Name, Secret: secret, SubscriptionID: r.ID, State: crmhook.SecretActive, CreatedAt: m.now(),
	}); err != nil {
		if derr := ss.p.Delete(ctx, r.ID); derr != nil {
			return Remote{}, fmt.Errorf("store the secret of new webhook %s: %w (deleting the webhook failed too: %v; the next plan recreates it)", r.ID, err, derr)
		}
		return Remote{}, fmt.Errorf("store the secret of new webhook %s (deleted it): %w", r.ID, err)
	}
	log.Info("subscription created, secret stored", "id", r.ID, "url", RedactURL(ss.url))
	if confirm {
		if err := m.settle(ctx); err != nil {
			return r, fmt.Errorf("created webhook %s and stored its secret; interrupted before setting its events (apply again to set them): %w", r.ID, err)
		}
		if err := ss.p.Update(ctx, r.ID, ss.url, ss.want); err != nil {
			return r, fmt.Errorf("created webhook %s and stored its secret, but setting its events failed (apply again to set them): %w", r.ID, err)
		}
		r.Events = ss.want
		log.Info("subscription events set", "id", r.ID, "events", len(ss.want))
	}
	return r, nil
}

// limitError turns a provider's refusal at its subscription limit into an
// *OverLimitError naming the existing subscriptions.
func (m *Manager) limitError(ctx context.Context, ss *sourceState, err error) error {
	if !errors.Is(err, affinity.ErrSubscriptionLimit) {
		return err
	}
	remotes, lerr := ss.p.List(ctx)
	if lerr != nil {
		return err
	}
	return &OverLimitError{Provider: ss.src.Provider, Sources: []string{ss.src.Name}, Limit: max(ss.p.Limit(), len(remotes)), Need: len(remotes) + 1, Existing: remotes}
}
