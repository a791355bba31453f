// Package affinity is a Go SDK for Affinity's API V1 webhooks: managing
// webhook subscriptions, and parsing and dispatching the events Affinity
// delivers.
//
// # Managing subscriptions
//
// A Client talks to https://api.affinity.co with an API key (HTTP Basic with
// an empty user by default, or a bearer token with WithBearerAuth). Its
// Webhooks service lists, creates, updates, enables, disables and deletes
// subscriptions. Every call takes a context and returns a *Response carrying
// Affinity's rate-limit headers. Failures from the API are *APIError values
// that match sentinels with errors.Is (ErrNotFound, ErrRateLimited,
// ErrSubscriptionLimit, …). Reads are retried on 429, 5xx and network errors
// with full-jitter exponential backoff; writes never are, because Affinity
// probes the webhook URL on create and update and a blind retry could create
// a second subscription.
//
// # Receiving events
//
// Affinity signs nothing: protect the receiving endpoint with a long random
// secret in its path, HTTPS, and a replay window. NewHandler returns a
// complete receiver (an http.Handler): it checks the path secret
// (WithPathSecret, constant time, 404), the method (405), the content type
// (415) and the size (413), parses the delivery, answers the
// sample.webhook probe Affinity sends when a subscription is created or
// updated, and dispatches everything else to a Router. ParseRequest does the
// same checks for a handler of your own, and Parse works on a body already
// read.
//
// Parse checks a delivery's envelope strictly: one JSON object holding
// "type", "body" and "sent_at" (in any order; extra keys are kept), with no
// duplicate key and no key that differs from those three only by case,
// since encoding/json would read such a key in their place. DecodeBody, a
// Registry or a Router turn the body into the typed struct of its family
// (*Person, *ListEntry, *FieldValue, …). Unknown event types are never
// rejected: their bodies stay json.RawMessage, as does the undocumented
// body of smart_interaction_value.updated.
//
// # The replay window
//
// Parse refuses a delivery whose sent_at is more than DefaultMaxAge (12
// hours) old or more than DefaultMaxFutureSkew (2 minutes) ahead of the
// clock. Affinity retries a failed delivery for up to 10 hours, so a shorter
// window would refuse the retries that follow an outage. Tighten it where
// replays matter more than outages:
//
//	affinity.Parse(body, affinity.WithMaxAge(5*time.Minute))
//	affinity.NewHandler(router, affinity.WithParseOptions(affinity.WithMaxAge(5*time.Minute)))
//
// Switch a side off with WithoutMaxAge or WithoutMaxFutureSkew. Off is only
// ever asked for by name: WithMaxAge(0) and WithMaxFutureSkew(0), like
// negative durations, are refused with an error matching ErrInvalidOption.
//
// A delivery outside the window is not returned as an event: Parse returns
// a nil event and a *StaleError, which carries the parsed event for a
// receiver that keeps such deliveries as rejections:
//
//	ev, err := affinity.Parse(body)
//	var stale *affinity.StaleError
//	switch {
//	case errors.As(err, &stale):
//		// well formed, authenticated, only too old or too new: stale.Event
//	case err != nil:
//		// malformed: answer 400
//	default:
//		// ev is the event
//	}
//
// The package never logs, and never puts the API key in an error.
package affinity
