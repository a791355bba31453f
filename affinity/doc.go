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
// secret in its path, HTTPS, and a replay window. Parse checks a delivery's
// envelope strictly ({"type", "body", "sent_at"}, in that order) and its
// sent_at against the replay window; DecodeBody, a Registry or a Router turn
// the body into the typed struct of its family (*Person, *ListEntry,
// *FieldValue, …). Unknown event types are never rejected: their bodies stay
// json.RawMessage.
//
// The package never logs, and never puts the API key in an error.
package affinity
