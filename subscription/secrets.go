package subscription

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
)

// RetireGrace is how long the secret of a deleted or replaced Attio webhook
// stays accepted: deliveries it signed may still be in flight or retried.
const RetireGrace = 24 * time.Hour

// EffectiveSecrets is what a source accepts at now: the config's secrets,
// minus those the store holds as retired (or retiring with RetireAt at or
// before now), plus the stored active ones, plus the stored retiring ones
// whose RetireAt is still ahead. Each appears once: stored active newest
// first, then the config's in their order, then the retiring ones.
func EffectiveSecrets(configSecrets []string, stored []crmhook.SourceSecret, now time.Time) []string {
	gone := map[string]bool{}
	var active, retiring []crmhook.SourceSecret
	for _, s := range stored {
		switch {
		case s.State == crmhook.SecretActive:
			active = append(active, s)
		case s.State == crmhook.SecretRetiring && s.RetireAt.After(now):
			retiring = append(retiring, s)
		case s.State == crmhook.SecretRetired, s.State == crmhook.SecretRetiring:
			gone[s.Secret] = true
		}
	}
	slices.SortStableFunc(active, newestFirst)
	seen := map[string]bool{}
	var out []string
	add := func(v string) {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, s := range active {
		add(s.Secret)
	}
	for _, v := range configSecrets {
		if !gone[v] {
			add(v)
		}
	}
	for _, s := range retiring {
		add(s.Secret)
	}
	return out
}

// newestFirst orders secrets by CreatedAt, then id, newest first.
func newestFirst(a, b crmhook.SourceSecret) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}

// pathSecret is the path secret the source's hook URL carries now. Affinity:
// the newest active stored secret, else the first config secret still
// accepted (else the first config secret). Attio and Standard Webhooks: the
// first path_secrets entry, or none.
func pathSecret(src config.Source, stored []crmhook.SourceSecret, now time.Time) string {
	if src.Provider != crmhook.ProviderAffinity {
		if len(src.PathSecrets) > 0 {
			return src.PathSecrets[0]
		}
		return ""
	}
	var newest *crmhook.SourceSecret
	for i, s := range stored {
		if s.State == crmhook.SecretActive && (newest == nil || newestFirst(s, *newest) < 0) {
			newest = &stored[i]
		}
	}
	if newest != nil {
		return newest.Secret
	}
	eff := EffectiveSecrets(src.Secrets, stored, now)
	for _, v := range src.Secrets {
		if slices.Contains(eff, v) {
			return v
		}
	}
	if len(src.Secrets) > 0 {
		return src.Secrets[0]
	}
	return ""
}

// HookURL is the URL the source's subscription points at now:
// public_url/hooks/{source}, then /{path secret} when the source has one
// (see the package doc). It holds a secret: never log it.
func (m *Manager) HookURL(ctx context.Context, source string) (string, error) {
	src, err := m.configSource(source)
	if err != nil {
		return "", err
	}
	stored, err := m.Store.ListSecrets(ctx, source)
	if err != nil {
		return "", fmt.Errorf("subscription: %s: list secrets: %w", source, err)
	}
	return m.Config.HookURL(source, pathSecret(src, stored, m.now())), nil
}

// Secrets are the secrets the source accepts now: EffectiveSecrets over its
// config secrets and the store's.
func (m *Manager) Secrets(ctx context.Context, source string) ([]string, error) {
	src, err := m.configSource(source)
	if err != nil {
		return nil, err
	}
	stored, err := m.Store.ListSecrets(ctx, source)
	if err != nil {
		return nil, fmt.Errorf("subscription: %s: list secrets: %w", source, err)
	}
	return EffectiveSecrets(src.Secrets, stored, m.now()), nil
}
