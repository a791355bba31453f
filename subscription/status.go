package subscription

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/crmhook/crmhook"
)

// StatusGaps is how many of a source's most recent gaps Status reports.
const StatusGaps = 20

// StatusRow is one subscription of ours as Status reports it: what the
// provider says now, and what the store knows.
type StatusRow struct {
	Source         string `json:"source"`
	SubscriptionID string `json:"subscription_id,omitempty"` // "" when the provider has none of ours
	URL            string `json:"url,omitempty"`             // redacted
	// Status is the provider's status now; missing when it has none of
	// ours, "" when it could not be asked (see Error).
	Status Status `json:"status"`
	// LastCheckedAt is when the watchdog last checked the subscription
	// (the store's SubscriptionState); zero when never.
	LastCheckedAt time.Time `json:"last_checked_at,omitzero"`
	// LastEventAt is when the source's newest event was received; zero
	// when there is none.
	LastEventAt time.Time `json:"last_event_at,omitzero"`
	// Gaps are the source's most recent gaps (at most StatusGaps), newest
	// first: spans the provider sent nothing because it had disabled or
	// deactivated a subscription.
	Gaps []crmhook.Gap `json:"gaps"`
	// Error says why the provider could not be asked (one line, no
	// secrets); the store's columns are still filled in.
	Error string `json:"error,omitempty"`
}

// Status reports, for every source with a subscription block, each of its
// subscriptions at the provider (or one missing row), with the store's last
// check, the source's last event and its recent gaps. A provider that cannot
// be asked gives a row with Error instead of failing the whole report.
func (m *Manager) Status(ctx context.Context) ([]StatusRow, error) {
	names, err := m.planSources(nil)
	if err != nil {
		return nil, err
	}
	if m.Store == nil {
		return nil, fmt.Errorf("subscription: no store")
	}
	states, err := m.Store.ListSubscriptionStates(ctx)
	if err != nil {
		return nil, fmt.Errorf("subscription: list subscription states: %w", err)
	}
	var rows []StatusRow
	for _, name := range names {
		lastEvent, err := m.Store.LastEventAt(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("subscription: %s: last event: %w", name, err)
		}
		gaps, err := m.Store.ListGaps(ctx, name, StatusGaps)
		if err != nil {
			return nil, fmt.Errorf("subscription: %s: list gaps: %w", name, err)
		}
		if gaps == nil {
			gaps = []crmhook.Gap{}
		}
		base := StatusRow{Source: name, LastEventAt: lastEvent, Gaps: gaps}
		lastCheck := func(id string) time.Time {
			i := slices.IndexFunc(states, func(s crmhook.SubscriptionState) bool { return s.Source == name && s.SubscriptionID == id })
			if i < 0 {
				return time.Time{}
			}
			return states[i].LastCheckedAt
		}

		ss, err := m.sourceState(ctx, name)
		var remotes []Remote
		if err == nil {
			remotes, err = ss.p.List(ctx)
		}
		if err != nil {
			row := base
			row.Error = err.Error()
			rows = append(rows, row)
			continue
		}
		var mine []Remote
		for _, r := range remotes {
			if m.owner(ss, r) == ours {
				mine = append(mine, r)
			}
		}
		slices.SortStableFunc(mine, olderFirst)
		if len(mine) == 0 {
			row := base
			row.Status, row.URL = StatusMissing, RedactURL(ss.url)
			rows = append(rows, row)
			continue
		}
		for _, r := range mine {
			row := base
			row.SubscriptionID, row.URL, row.Status, row.LastCheckedAt = r.ID, RedactURL(r.URL), r.Status, lastCheck(r.ID)
			rows = append(rows, row)
		}
	}
	return rows, nil
}
