package affinitysim

import (
	"encoding/json"

	"github.com/crmhook/crmhook/affinity"
)

// ProbeType is the event type of the probe the simulator POSTs to a webhook
// URL when a subscription is created or re-pointed (body {"test":true}). It
// is not a subscribable type.
const ProbeType = string(affinity.SampleWebhook)

// The event types and sample bodies are the SDK's (package affinity), so the
// simulator, `crmhook send` and the SDK's tests agree on every shape.

// isEventType reports whether t is one of the 30 types a subscription may
// name (affinity.EventTypes: the 29 classic ones and
// smart_interaction_value.updated); the probe type is not.
func isEventType(t string) bool { return affinity.EventType(t).Known() }

// sampleBody returns the SDK's realistic body for t (a fresh copy), or false
// for a type it has none for.
func sampleBody(t string) (json.RawMessage, bool) {
	b := affinity.SampleBody(affinity.EventType(t))
	return b, b != nil
}
