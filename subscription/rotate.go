package subscription

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/stdwebhooks"
)

// DefaultRotationGrace is how long a rotated-out secret stays accepted.
const DefaultRotationGrace = 24 * time.Hour

// rotationLease bounds how long a crashed rotation keeps others waiting.
const rotationLease = 15 * time.Minute

// Rotation phases, kept in the store so that a rotation resumes where it
// stopped.
const (
	phaseStarted     = "started"      // nothing done at the provider yet
	phaseNewSecret   = "new-secret"   // the new secret is stored and accepted
	phaseProviderSet = "provider-set" // the provider sends to the new secret
)

// RotationResult says what a rotation did.
type RotationResult struct {
	Source string
	// Secret is a new Standard Webhooks secret, to hand once to the
	// sender's operator; empty for Affinity and Attio.
	Secret string
	// HookURL is where the provider now sends (redact before printing).
	HookURL string
	// Manual is set when the source declares no subscription: crmhook
	// accepts the new secret, and the operator moves the provider to
	// HookURL before RetireAt.
	Manual bool
	// SubscriptionID is the Attio webhook that replaced the old one.
	SubscriptionID string
	RetireAt       time.Time // the old secrets stop being accepted then
	Resumed        bool      // a rotation that had stopped was finished
}

// rotationData is a rotation's provider state.
type rotationData struct {
	// Listed says OldIDs is known: a resumed rotation must not list again,
	// or it would take the replacement it created before stopping for an
	// old webhook.
	Listed bool     `json:"listed,omitempty"`
	OldIDs []string `json:"old_ids,omitempty"` // Attio: the webhooks being replaced
	NewID  string   `json:"new_id,omitempty"`  // Attio: the replacement
}

// Rotate rotates a source's secret with no delivery refused:
//
//   - Affinity: a new path secret is stored and accepted beside the old
//     ones; after SecretSettle the subscription's URL is moved to it at
//     Affinity (whose probe then reaches the new URL); the old secrets stop
//     being accepted after grace.
//   - Attio: a new webhook with the same events and filters is created and
//     its secret stored (Create); the old webhooks are deleted; their
//     secrets stop being accepted after grace.
//   - Standard Webhooks: a new whsec_ secret is stored and accepted beside
//     the old one, returned once for the sender's operator; the old one
//     stops being accepted after grace.
//
// Each step is recorded in the store: after a crash, Rotate on the same
// source finishes the rotation that was under way instead of starting a
// new one. A source with no subscription block is rotated on crmhook's
// side only (Manual).
func (m *Manager) Rotate(ctx context.Context, source string, grace time.Duration) (RotationResult, error) {
	if grace <= 0 {
		return RotationResult{}, errors.New("subscription: rotate: the grace period must be positive")
	}
	src, err := m.configSource(source)
	if err != nil {
		return RotationResult{}, err
	}
	if src.Provider == crmhook.ProviderAttio && src.Subscription == nil {
		return RotationResult{}, fmt.Errorf("subscription: rotate %s: an Attio secret comes only from creating a webhook; declare the source's subscription (api_key, events) first", source)
	}
	res := RotationResult{Source: source, Manual: src.Subscription == nil && src.Provider == crmhook.ProviderAffinity}
	// One rotation of a source at a time, across processes.
	lease, owner := "rotate:"+source, newPathSecret()
	held, err := m.Store.AcquireLease(ctx, lease, owner, rotationLease)
	if err != nil {
		return res, fmt.Errorf("subscription: rotate %s: %w", source, err)
	}
	if !held {
		return res, fmt.Errorf("subscription: rotate %s: another rotation of this source is running", source)
	}
	defer func() { _ = m.Store.ReleaseLease(context.WithoutCancel(ctx), lease, owner) }()
	rot, err := m.Store.GetRotation(ctx, source)
	switch {
	case errors.Is(err, crmhook.ErrNotFound):
		now := m.now()
		rot = crmhook.Rotation{Source: source, Phase: phaseStarted, Grace: grace, StartedAt: now, UpdatedAt: now}
		if err := m.saveRotation(ctx, &rot, rotationData{}); err != nil {
			return res, err
		}
	case err != nil:
		return res, fmt.Errorf("subscription: rotate %s: %w", source, err)
	default:
		res.Resumed = true
		grace = rot.Grace
	}
	var data rotationData
	if len(rot.Data) > 0 {
		if err := json.Unmarshal(rot.Data, &data); err != nil {
			return res, fmt.Errorf("subscription: rotate %s: stored state: %w", source, err)
		}
	}
	log := m.logger().With("source", source)

	if rot.Phase == phaseStarted {
		if err := m.rotateNewSecret(ctx, src, &rot, &data, &res); err != nil {
			return res, err
		}
		log.Info("rotation: new secret stored", "phase", rot.Phase)
	}
	if rot.Phase == phaseNewSecret {
		if err := m.rotateProvider(ctx, src, &rot, &data); err != nil {
			return res, err
		}
		log.Info("rotation: provider moved to the new secret")
	}
	// phaseProviderSet: the old secrets go.
	res.RetireAt = m.now().Add(grace)
	if err := m.retireOld(ctx, src, rot.NewSecretID, data.NewID, res.RetireAt); err != nil {
		return res, err
	}
	if err := m.Store.DeleteRotation(ctx, source); err != nil {
		return res, fmt.Errorf("subscription: rotate %s: finish: %w", source, err)
	}
	res.SubscriptionID = data.NewID
	if src.Provider == crmhook.ProviderStandardWebhooks && res.Secret == "" {
		// A resumed rotation hands the operator the secret it stored.
		stored, err := m.Store.ListSecrets(ctx, source)
		if err != nil {
			return res, fmt.Errorf("subscription: rotate %s: %w", source, err)
		}
		for _, s := range stored {
			if s.ID == rot.NewSecretID {
				res.Secret = s.Secret
			}
		}
	}
	if src.Provider == crmhook.ProviderAffinity {
		if res.HookURL, err = m.HookURL(ctx, src.Name); err != nil {
			return res, err
		}
	}
	log.Info("rotation: done; old secrets retire", "retire_at", res.RetireAt)
	return res, nil
}

// rotateNewSecret makes the new secret exist and be stored: generated for
// Affinity and Standard Webhooks, Attio's from a new webhook.
func (m *Manager) rotateNewSecret(ctx context.Context, src config.Source, rot *crmhook.Rotation, data *rotationData, res *RotationResult) error {
	if src.Provider == crmhook.ProviderAttio {
		p, err := m.provider(src)
		if err != nil {
			return err
		}
		// Rotations recorded before Listed existed had listed when they
		// saved old webhooks.
		if data.NewID == "" && !data.Listed && len(data.OldIDs) == 0 {
			remotes, err := p.List(ctx)
			if err != nil {
				return fmt.Errorf("subscription: rotate %s: list: %w", src.Name, err)
			}
			ss, err := m.sourceState(ctx, src.Name)
			if err != nil {
				return err
			}
			for _, r := range remotes {
				if m.owner(ss, r) == ours {
					data.OldIDs = append(data.OldIDs, r.ID)
				}
			}
			data.Listed = true
			// Saved before the create: a crash after it finds its webhook
			// (one of ours not among the old ones) instead of making another.
			if err := m.saveRotation(ctx, rot, *data); err != nil {
				return err
			}
		}
		if data.NewID == "" {
			if r, ok, err := m.resumedAttioWebhook(ctx, src, data.OldIDs, p); err != nil {
				return err
			} else if ok {
				if err := m.finishAttioWebhook(ctx, src, r); err != nil {
					return err
				}
				data.NewID = r.ID
			} else {
				r, err := m.Create(ctx, src.Name)
				if err != nil {
					return fmt.Errorf("subscription: rotate %s: %w", src.Name, err)
				}
				data.NewID = r.ID
			}
		}
		rot.Phase = phaseNewSecret
		return m.saveRotation(ctx, rot, *data)
	}
	secret := newPathSecret()
	if src.Provider == crmhook.ProviderStandardWebhooks {
		secret = stdwebhooks.NewSecret()
		res.Secret = secret
	}
	id, err := m.Store.PutSecret(ctx, crmhook.SourceSecret{Source: src.Name, Secret: secret, State: crmhook.SecretActive, CreatedAt: m.now()})
	if err != nil {
		return fmt.Errorf("subscription: rotate %s: store the new secret: %w", src.Name, err)
	}
	rot.NewSecretID, rot.Phase = id, phaseNewSecret
	return m.saveRotation(ctx, rot, *data)
}

// resumedAttioWebhook finds the webhook a crashed rotation created: ours,
// not one of the old ones, with its secret stored.
func (m *Manager) resumedAttioWebhook(ctx context.Context, src config.Source, oldIDs []string, p Provider) (Remote, bool, error) {
	stored, err := m.Store.ListSecrets(ctx, src.Name)
	if err != nil {
		return Remote{}, false, fmt.Errorf("subscription: rotate %s: %w", src.Name, err)
	}
	remotes, err := p.List(ctx)
	if err != nil {
		return Remote{}, false, fmt.Errorf("subscription: rotate %s: list: %w", src.Name, err)
	}
	for _, r := range remotes {
		if slices.Contains(oldIDs, r.ID) {
			continue
		}
		for _, s := range stored {
			if s.SubscriptionID == r.ID && s.State == crmhook.SecretActive {
				return r, true, nil
			}
		}
	}
	return Remote{}, false, nil
}

// finishAttioWebhook makes the webhook a crashed rotation created receive
// the declared events: the rotation may have stopped after its secret was
// stored but before Create set them, when it still receives nothing. The
// replicas get SecretSettle to accept its secret first.
func (m *Manager) finishAttioWebhook(ctx context.Context, src config.Source, r Remote) error {
	ss, err := m.sourceState(ctx, src.Name)
	if err != nil {
		return err
	}
	if len(ss.drift(r)) == 0 {
		return nil
	}
	if err := m.settle(ctx); err != nil {
		return err
	}
	if err := ss.p.Update(ctx, r.ID, ss.url, ss.want); err != nil {
		return fmt.Errorf("subscription: rotate %s: set the events of the new webhook %s: %w", src.Name, r.ID, err)
	}
	m.logger().Info("subscription events set", "source", src.Name, "id", r.ID, "events", len(ss.want))
	return nil
}

// rotateProvider sends the provider to the new secret once every replica
// accepts it.
func (m *Manager) rotateProvider(ctx context.Context, src config.Source, rot *crmhook.Rotation, data *rotationData) error {
	switch {
	case src.Provider == crmhook.ProviderAttio:
		ss, err := m.sourceState(ctx, src.Name)
		if err != nil {
			return err
		}
		remotes, err := ss.p.List(ctx)
		if err != nil {
			return fmt.Errorf("subscription: rotate %s: list: %w", src.Name, err)
		}
		// Besides the old webhooks, any other of ours goes: one a crashed
		// rotation created but whose secret it never stored cannot deliver.
		ids := slices.Clone(data.OldIDs)
		for _, r := range remotes {
			if m.owner(ss, r) == ours && !slices.Contains(ids, r.ID) {
				ids = append(ids, r.ID)
			}
		}
		for _, id := range ids {
			if id == data.NewID {
				continue
			}
			if err := ss.p.Delete(ctx, id); err != nil {
				return fmt.Errorf("subscription: rotate %s: delete the old webhook %s: %w", src.Name, id, err)
			}
		}
	case src.Provider == crmhook.ProviderAffinity && src.Subscription != nil:
		if err := m.settle(ctx); err != nil {
			return err
		}
		plan, err := m.Plan(ctx, PlanOptions{Sources: []string{src.Name}})
		if err != nil {
			return fmt.Errorf("subscription: rotate %s: %w", src.Name, err)
		}
		steps := slices.DeleteFunc(plan.Steps, func(s Step) bool { return s.Action == ActionUnmanaged })
		if err := m.Apply(ctx, &Plan{Steps: steps}); err != nil {
			return fmt.Errorf("subscription: rotate %s: move the subscription to the new URL: %w", src.Name, err)
		}
	}
	rot.Phase = phaseProviderSet
	return m.saveRotation(ctx, rot, *data)
}

// retireOld schedules every secret of the source but the new one (the
// stored secret newID, or Attio's new webhook's) to stop being accepted at
// retireAt: stored ones by state, the config's by a stored retiring copy.
func (m *Manager) retireOld(ctx context.Context, src config.Source, newID int64, newWebhook string, retireAt time.Time) error {
	stored, err := m.Store.ListSecrets(ctx, src.Name)
	if err != nil {
		return fmt.Errorf("subscription: rotate %s: %w", src.Name, err)
	}
	isNew := func(s crmhook.SourceSecret) bool {
		return s.ID == newID || (newWebhook != "" && s.SubscriptionID == newWebhook)
	}
	have := map[string]bool{}
	for _, s := range stored {
		have[s.Secret] = true
		if isNew(s) || s.State != crmhook.SecretActive {
			continue
		}
		if err := m.Store.SetSecretState(ctx, s.ID, crmhook.SecretRetiring, retireAt); err != nil {
			return fmt.Errorf("subscription: rotate %s: retire a stored secret: %w", src.Name, err)
		}
	}
	for _, v := range src.Secrets {
		if have[v] {
			continue
		}
		if _, err := m.Store.PutSecret(ctx, crmhook.SourceSecret{Source: src.Name, Secret: v, State: crmhook.SecretRetiring, CreatedAt: m.now(), RetireAt: retireAt}); err != nil {
			return fmt.Errorf("subscription: rotate %s: retire a configured secret: %w", src.Name, err)
		}
	}
	return nil
}

func (m *Manager) saveRotation(ctx context.Context, rot *crmhook.Rotation, data rotationData) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	rot.Data, rot.UpdatedAt = b, m.now()
	if err := m.Store.PutRotation(ctx, *rot); err != nil {
		return fmt.Errorf("subscription: rotate %s: save progress: %w", rot.Source, err)
	}
	return nil
}

// newPathSecret is 32 random bytes as 43 URL-safe characters.
func newPathSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}
