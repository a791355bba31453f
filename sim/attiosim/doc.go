// Package attiosim is a local Attio workspace for tests and for trying
// crmhook without an Attio account: a real HTTP server speaking Attio's REST
// API v2 webhook endpoints, with Attio's rules, and delivering events the way
// Attio does.
//
// The API, under /v2 with `Authorization: Bearer <token>` (Config.Token,
// default DefaultToken) and every body wrapped in {"data": …}:
//
//	POST   /v2/webhooks               create; the answer carries the webhook's secret (only this once)
//	GET    /v2/webhooks?limit=&offset= list, oldest first, without secrets (limit 1–100, default 10)
//	GET    /v2/webhooks/{webhook_id}  get, without the secret
//	PATCH  /v2/webhooks/{webhook_id}  change target_url and/or subscriptions (only the fields given)
//	DELETE /v2/webhooks/{webhook_id}  delete; answers {}
//
// A webhook is {"id": {"workspace_id", "webhook_id"}, "target_url",
// "subscriptions": [{"event_type", "filter"}], "status", "created_at"}, with
// status active, degraded or inactive. Subscriptions must name known event
// types (attio.AllEventTypes); filters are decoded and validated by
// attio.Filter, so the simulator refuses exactly what the SDK refuses. An
// absent filter is taken as null (every event).
//
// The target URL must be an absolute https URL, as Attio requires, with one
// deliberate difference: plain http is accepted for loopback hosts
// (localhost, 127.0.0.0/8, ::1) so local receivers and httptest servers
// work (attio.ValidateTargetURL).
//
// Errors are Attio's {"status_code", "type", "code", "message"} objects: 401
// auth_error/unauthorized without a valid token, 400
// invalid_request_error/validation_type (the message starts with the path of
// the offending field, e.g. "data.subscriptions[1].filter: …"), 404
// invalid_request_error/not_found, 429 rate_limit_error/rate_limit_exceeded.
// Reads (GET) and writes are rate limited separately, 100/s and 25/s by
// default; past the budget the answer is 429 with Retry-After as an HTTP
// date.
//
// Deliveries follow Attio: one POST per message to the target URL with body
// {"webhook_id": "…", "events": [event]}, the headers Attio-Signature and
// X-Attio-Signature (both the lowercase hex HMAC-SHA256 of the raw body with
// the webhook's secret, made by attio.Sign; no timestamp is signed) and an
// Idempotency-Key that, like the body, stays the same across every retry of
// the message. Only 200 and 202 count as delivered; anything else — other
// 2xx, 3xx, errors, timeouts — is retried with exponential backoff
// (InitialBackoff, doubling) up to MaxRetries times (10), after which the
// webhook becomes "degraded". By default the retries span about 3 days, as
// Attio's do. A degraded webhook still receives events and becomes active
// again on its next success; one that stays degraded for InactiveAfter (7
// simulated days) becomes "inactive" and receives nothing more. A
// subscription's filter is evaluated with attio.Filter.Match, the same code
// crmhook's receiver uses.
//
// Time can be compressed with Config.TimeScale (simulated seconds per real
// second), so a test can run a full retry schedule in milliseconds.
//
// Use it as an http.Handler:
//
//	sim, err := attiosim.New(attiosim.Config{TimeScale: 1e6})
//	if err != nil { … }
//	defer sim.Close()
//	srv := httptest.NewServer(sim)
//	defer srv.Close()
//	// point an Attio client at srv.URL+"/v2" with token attiosim.DefaultToken,
//	// create a webhook, then:
//	res, err := sim.Trigger(ctx, "record.created", nil)
//
// or run it with `crmhook sim attio`. Under /_sim/ (no token needed) it also
// serves POST /_sim/trigger, GET /_sim/deliveries and GET /_sim/healthz.
package attiosim
