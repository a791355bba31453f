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
