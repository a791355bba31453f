// Package affinitysim is a local Affinity instance for tests and for trying
// crmhook without an Affinity account: a real HTTP server speaking Affinity's
// V1 webhook API (GET /webhook, GET /webhook/{id}, POST /webhook/subscribe,
// PUT and DELETE /webhook/{id}) with its rules — HTTP Basic or Bearer API
// keys, at most three subscriptions, creator-only update, creator-or-admin
// delete, a sample.webhook probe on create and update, per-user and per-org
// rate limits with Affinity's X-Ratelimit-* headers — and delivering events
// as Affinity does: one {type, body, sent_at} POST per event, retried with
// exponential backoff for a retry window (10 hours, time-scalable), after
// which the subscription is disabled. Event types and sample bodies are the
// SDK's (affinity.EventTypes, affinity.SampleBody).
//
// Beside V1 it serves Affinity's v2 webhook API (beta): GET and POST
// /v2/webhooks, GET, POST (partial update) and DELETE /v2/webhooks/{id},
// with bearer auth only, {"errors":[{code, message, param}]} error bodies,
// cursor paging (limit 1 to 100, pagination.nextUrl/prevUrl, ordered by id,
// a filter on id, createdAt and updatedAt), 201 on create and 204 on update
// and delete, a sample.webhook test delivery on create, on a URL change of
// an active webhook and on a switch to active (a failure is a validation
// error on url), and URLs unique in the instance and without credentials.
// Both APIs share one set of subscriptions: a v2 webhook is the V1
// subscription with the same id (url is webhook_url, status "disabled" is
// disabled: true, creator is created_by), the three-subscription limit
// counts both, and the per-user rate limit is one budget for both. Affinity
// does not document how its two webhook APIs relate: the shared set is this
// simulator's assumption. Through v2 a user sees, updates and deletes only
// the webhooks they created; an admin every one.
//
// Use it as an http.Handler:
//
//	sim, err := affinitysim.New(affinitysim.Config{TimeScale: 36000})
//	if err != nil { … }
//	defer sim.Close()
//	srv := httptest.NewServer(sim)
//	defer srv.Close()
//	// point an Affinity client at srv.URL with key affinitysim.DefaultAdminKey,
//	// create a subscription, then:
//	res, err := sim.Trigger(ctx, "person.created", nil)
//
// or run it with `crmhook sim affinity`. Under /_sim/ (no API key) it also
// serves POST /_sim/trigger, GET /_sim/deliveries, GET /_sim/probes and
// GET /_sim/healthz.
package affinitysim
