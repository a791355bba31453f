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
// API failures are *APIError values that match ErrNotFound, ErrRateLimited
// and the other sentinels with errors.Is. GETs are retried on 429, 5xx and
// network errors (full-jitter backoff, Retry-After honoured); writes never.
//
// Receiving deliveries: Verify the Attio-Signature header against the raw
// body (hex HMAC-SHA256 with the webhook secret, any of several secrets
// during rotation), then Parse the body into a Delivery and hand each Event
// to a Router, whose handlers receive the family's typed struct
// (RecordEvent, ListEntryEvent, NoteEvent, …). Filter.Match is the single
// implementation of Attio's subscription filters, shared with the simulator.
package attio
