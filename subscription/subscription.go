// Package subscription makes the provider subscriptions a config declares
// exist, and keeps them so: the webhooks that feed each source at Affinity
// (API V1 or v2) and Attio.
//
// A Manager compares what a provider holds with what the config declares
// and plans the steps that reconcile them (Plan), then carries them out
// (Apply). `crmhook subscriptions plan|apply|status` and the watchdog of
// `crmhook serve` are built on it, and so is secret rotation (Create).
//
// Which remote subscriptions are ours: a subscription whose URL is the
// source's hook URL, public_url/hooks/{source}, or that followed by a path
// secret the source accepts now or ever had in the store. Every other one is
// unmanaged: listed, never touched, unless the plan prunes it. A remote
// whose URL is the hook of another configured source belongs to that source
// and is left to its plan.
//
// Attio returns a webhook's signing secret only in the answer to its
// creation. Create therefore creates the webhook receiving nothing, stores
// its secret durably, and only then sets its events, so Attio never signs an
// event with a secret crmhook has not stored. A crash in between leaves a
// webhook of ours whose secret is not in the store; the next plan recreates
// it ("secret unknown") and deletes it.
//
// Nothing here logs a secret, an API key or a path secret: URLs in steps,
// logs and errors are redacted (RedactURL).
package subscription

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
)

// Status is a provider's word for the state of a subscription.
type Status string

// Subscription statuses. Affinity's subscriptions are active or disabled;
// Attio's webhooks active, degraded or inactive. Missing is a declared
// subscription the provider does not have.
const (
	StatusActive   Status = "active"
	StatusDisabled Status = "disabled" // Affinity: delivers nothing until enabled
	StatusDegraded Status = "degraded" // Attio: retries ran out; still receives events
	StatusInactive Status = "inactive" // Attio: degraded for 7 days; receives nothing, cannot be reactivated
	StatusMissing  Status = "missing"
)

// Event is one event type a subscription receives, with an Attio filter
// when it has one. Filters are compared by meaning, not byte for byte.
type Event struct {
	Type   string          `json:"type"`
	Filter json.RawMessage `json:"filter,omitempty"` // nil: no filter
}

// Remote is a subscription as the provider holds it.
type Remote struct {
	ID  string `json:"id"`
	URL string `json:"url"` // holds an Affinity path secret: print RedactURL(URL)
	// Events are the event types it receives; empty means every event type
	// (Affinity). An Attio webhook created receiving nothing (see Create)
	// lists no events either.
	Events []Event `json:"events"`
	Status Status  `json:"status"`
	// CreatedAt is when the provider created it; zero when the provider
	// does not say (Affinity V1, whose ids grow with time instead).
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// Action is what a plan does with one subscription.
type Action string

// Plan actions.
const (
	ActionNone      Action = "ok"        // ours and as declared
	ActionCreate    Action = "create"    // declared, but the provider has none of ours
	ActionUpdate    Action = "update"    // ours, but its URL or events differ
	ActionEnable    Action = "enable"    // ours, disabled by Affinity (and updated if it drifted)
	ActionRecreate  Action = "recreate"  // ours, but Attio degraded or deactivated it, or its secret is unknown
	ActionDelete    Action = "delete"    // a duplicate of ours, or an unmanaged one with Prune
	ActionUnmanaged Action = "unmanaged" // not ours: listed, never touched
)

// Step is one subscription in a plan.
type Step struct {
	Source string `json:"source"`
	Action Action `json:"action"`
	// SubscriptionID is the provider's id; "" for a create.
	SubscriptionID string `json:"subscription_id,omitempty"`
	// URL is where the subscription points once the step is done (the
	// remote's own URL for delete and unmanaged), redacted: path secrets
	// are replaced by "…". Apply does not read it.
	URL string `json:"url"`
	// Status is the provider's status of the subscription, missing for a
	// create.
	Status Status `json:"status"`
	// Changes say why, for people: "events: +person.created -note.created",
	// "events: all → person.created", "filter: record.created", "url",
	// "status disabled", "status degraded", "secret unknown",
	// "duplicate of 1001", "unmanaged (--prune)".
	Changes []string `json:"changes,omitempty"`
	// Result is set by Apply: what it did ("created 1004", "already gone").
	Result string `json:"result,omitempty"`
}

// Plan is the steps that make the providers match the config, in the order
// Apply carries them out: deletes first (so they free room under a
// provider's limit), then the rest, source by source.
type Plan struct {
	Steps []Step `json:"steps"`
}

// Changed reports whether applying the plan would change anything at a
// provider: a step other than ok and unmanaged.
func (p *Plan) Changed() bool {
	if p == nil {
		return false
	}
	for _, s := range p.Steps {
		if s.Action != ActionNone && s.Action != ActionUnmanaged {
			return true
		}
	}
	return false
}

// PlanOptions select what a plan covers.
type PlanOptions struct {
	// Prune deletes unmanaged subscriptions (those that are not ours).
	Prune bool
	// Sources limits the plan to these sources; empty means every source
	// with a subscription block.
	Sources []string
}

// ErrCannotReactivate is Attio's Enable: no API re-activates a webhook;
// recreate it.
var ErrCannotReactivate = errors.New("subscription: Attio has no API to re-activate a webhook; recreate it")

// ErrOverLimit is matched (errors.Is) by every *OverLimitError.
var ErrOverLimit = errors.New("subscription: over the provider's subscription limit")

// OverLimitError is a refusal to go over a provider's subscription limit
// (Affinity: 3 per instance), made before anything was changed.
type OverLimitError struct {
	Provider crmhook.Provider
	// Sources are the declared sources that share the provider instance.
	Sources []string
	Limit   int // the provider's limit
	Need    int // the most subscriptions the plan would hold at once
	// Existing are the subscriptions the instance holds now.
	Existing []Remote
}

// Error names the existing subscriptions by id and redacted URL, on one
// line.
func (e *OverLimitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: the change would need %d subscriptions at once but %s allows %d per instance, which already holds",
		strings.Join(e.Sources, ", "), e.Need, providerName(e.Provider), e.Limit)
	if len(e.Existing) == 0 {
		b.WriteString(" none")
	}
	for i, r := range e.Existing {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s (%s)", r.ID, RedactURL(r.URL))
	}
	b.WriteString("; delete one of them (subscriptions apply --prune deletes those that are not crmhook's)")
	return b.String()
}

// Is makes errors.Is(err, ErrOverLimit) true.
func (e *OverLimitError) Is(target error) bool { return target == ErrOverLimit }

func providerName(p crmhook.Provider) string {
	switch p {
	case crmhook.ProviderAffinity:
		return "Affinity"
	case crmhook.ProviderAttio:
		return "Attio"
	}
	return string(p)
}
