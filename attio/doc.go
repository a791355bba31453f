// Package attio is an SDK for Attio REST API v2 webhooks: a client to manage
// them, signature verification, strict payload parsing and typed dispatch.
//
// Managing webhooks (services hang off a Client, go-github style):
//
//	client, err := attio.NewClientFromEnv() // ATTIO_API_KEY, ATTIO_BASE_URL
//	wh, _, err := client.Webhooks.Create(ctx, &attio.WebhookCreateRequest{
//		TargetURL:     "https://example.com/hooks/attio",
//		Subscriptions: []attio.Subscription{{EventType: attio.RecordCreated, Filter: attio.And(attio.Equals("id.object_id", objectID))}},
//	})
//	// wh.Secret is returned only here: store it now.
//
// API failures are *APIError values (with the request id and the
// *http.Response) that match ErrNotFound, ErrRateLimited and the other
// sentinels with errors.Is; a 2xx answer that is not the expected JSON
// matches ErrUnexpectedResponse. GETs are retried on 429, 5xx and network
// errors, WithMaxRetries times after the first attempt (full-jitter
// backoff, Retry-After honoured); writes never.
//
// Receiving deliveries: NewHandler is a complete http.Handler (method,
// Content-Type, size, signature, strict parsing, dispatch to a Router).
// ParseRequest does the same checks for a receiver that answers itself, and
// Verify and Parse are the two steps on their own: Verify checks the
// Attio-Signature header against the raw body (lowercase hex HMAC-SHA256
// with the webhook secret, any of several secrets during rotation), Parse
// turns the body into a Delivery, and a Router hands each Event to the
// handler for its type, decoded into the family's typed struct
// (RecordEvent, ListEntryEvent, NoteEvent, …). Filter.Match is the single
// implementation of Attio's subscription filters, shared with the simulator.
package attio
