package app

import (
	"context"
	"slices"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/subscription"
	"github.com/crmhook/crmhook/watchdog"
)

// DefaultSecretsRefresh is how often every replica reloads the secrets kept
// in the store (rotations, Attio webhook secrets). A rotation waits a few
// of these before it sends the provider to the new secret, so that every
// replica accepts it by then.
const DefaultSecretsRefresh = 2 * time.Second

// controlStore is the store's ControlStore, nil when it has none.
func (m *Main) controlStore() crmhook.ControlStore {
	cs, _ := m.Store.(crmhook.ControlStore)
	return cs
}

// refreshSecrets makes every source accept exactly its current secrets:
// the config's, less those a rotation retired, plus those kept in the
// store. It changes a source only when its set changed.
func (m *Main) refreshSecrets(ctx context.Context) error {
	cs := m.controlStore()
	if cs == nil {
		return nil
	}
	stored, err := cs.ListSecrets(ctx, "")
	if err != nil {
		return err
	}
	now := m.Now()
	for _, src := range m.Config.Sources {
		var mine []crmhook.SourceSecret
		for _, s := range stored {
			if s.Source == src.Name {
				mine = append(mine, s)
			}
		}
		want := subscription.EffectiveSecrets(src.Secrets, mine, now)
		if slices.Equal(want, m.secrets[src.Name]) {
			continue
		}
		if err := m.Receiver.SetSecrets(src.Name, want); err != nil {
			m.Logger.Error("secrets: cannot apply the stored secrets; keeping the previous ones", "source", src.Name, "err", err)
			continue
		}
		if m.secrets[src.Name] != nil {
			m.Logger.Info("secrets: the accepted secrets changed", "source", src.Name, "count", len(want))
		}
		m.secrets[src.Name] = want
	}
	return nil
}

// refreshSecretsLoop reloads the secrets every SecretsRefresh until ctx ends.
func (m *Main) refreshSecretsLoop(ctx context.Context) {
	t := time.NewTicker(m.SecretsRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.refreshSecrets(ctx); err != nil && ctx.Err() == nil {
			m.Logger.Warn("secrets: reload failed; keeping the current ones", "err", err)
		}
	}
}

// declaresSubscriptions reports whether any source declares a subscription.
func (m *Main) declaresSubscriptions() bool {
	return slices.ContainsFunc(m.Config.Sources, func(s config.Source) bool { return s.Subscription != nil })
}

// openWatchdog builds the watchdog when it has work: a source declares a
// subscription, the config does not switch it off, and the store keeps
// control state.
func (m *Main) openWatchdog() error {
	st, ok := m.Store.(watchdog.Store)
	if !ok || m.Config.Watchdog.Off || !m.declaresSubscriptions() {
		return nil
	}
	m.Subscriptions = &subscription.Manager{Config: m.Config, Store: st, Now: m.Now, Logger: m.Logger.With("component", "subscriptions"),
		// Every replica reloads the stored secrets every SecretsRefresh: a
		// recreated Attio webhook receives events only once all accept its secret.
		SecretSettle: 2*m.SecretsRefresh + time.Second}
	var err error
	m.Watchdog, err = watchdog.New(watchdog.Config{
		Manager:  m.Subscriptions,
		Store:    st,
		Interval: m.Config.Watchdog.Interval,
		Repair:   m.Config.Watchdog.Repairs(),
		Owner:    m.Owner,
		Route:    m.route,
		OnStored: m.Dispatcher.Notify,
		Observer: m.Metrics,
		Now:      m.Now,
		Logger:   m.Logger.With("component", "watchdog"),
	})
	return err
}
