package affinitysim

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook/internal/clocktest"
)

func TestAuth(t *testing.T) {
	_, base := setup(t, Config{})

	accepted := map[string]auth{
		"basic with empty user": basic(DefaultAdminKey),
		"bearer":                bearer(DefaultUserKey),
		"bearer lower-case":     func(r *http.Request) { r.Header.Set("Authorization", "bearer "+DefaultAdminKey) },
	}
	for name, a := range accepted {
		t.Run(name, func(t *testing.T) {
			r := call(t, a, http.MethodGet, base+"/webhook", nil)
			wantStatus(t, r, http.StatusOK)
			if got := strings.TrimSpace(string(r.Body)); got != "[]" {
				t.Errorf("body = %s, want []", got)
			}
			if r.Header.Get("X-Ratelimit-Limit-User") == "" {
				t.Error("no X-Ratelimit-Limit-User header on an API answer")
			}
		})
	}

	refused := map[string]auth{
		"no credentials":        noAuth,
		"unknown key (basic)":   basic("not-a-key"),
		"unknown key (bearer)":  bearer("not-a-key"),
		"key as basic user":     func(r *http.Request) { r.SetBasicAuth(DefaultAdminKey, "") },
		"non-empty basic user":  func(r *http.Request) { r.SetBasicAuth("someone", DefaultAdminKey) },
		"empty bearer":          func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") },
		"other scheme":          func(r *http.Request) { r.Header.Set("Authorization", "Token "+DefaultAdminKey) },
		"key prefix (bearer)":   bearer(DefaultAdminKey[:5]),
		"key with extra suffix": bearer(DefaultAdminKey + "x"),
	}
	for name, a := range refused {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"/webhook", "/webhook/1001", "/no/such/path"} {
				r := call(t, a, http.MethodGet, base+path, nil)
				wantStatus(t, r, http.StatusUnauthorized)
				if string(r.Body) != "Unauthorized" {
					t.Errorf("%s: body = %q, want plain text Unauthorized", path, r.Body)
				}
				if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("%s: Content-Type = %q, want text/plain", path, ct)
				}
				if r.Header.Get("X-Ratelimit-Limit-User") != "" {
					t.Errorf("%s: rate-limit headers on a refused request", path)
				}
			}
		})
	}
}

func TestWebhookCRUD(t *testing.T) {
	clock := clocktest.New(time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC))
	sim, base := setup(t, Config{Now: clock.Now})
	first := newTarget(t, nil)
	second := newTarget(t, nil)

	created := createWebhook(t, admin, base, first.url(), "person.created", "list_entry.created", "person.created")
	want := Webhook{ID: 1001, WebhookURL: first.url(), Subscriptions: []string{"person.created", "list_entry.created"}, CreatedBy: 1}
	if !equalWebhook(created, want) {
		t.Fatalf("created = %+v, want %+v", created, want)
	}

	// The probe: exact body, JSON content type.
	probes := first.requests(ProbeType)
	if len(probes) != 1 {
		t.Fatalf("probes received = %d, want 1", len(probes))
	}
	wantProbe := fmt.Sprintf(`{"type":"sample.webhook","body":{"test":true},"sent_at":%d}`, clock.Now().Unix())
	if string(probes[0].Body) != wantProbe || probes[0].ContentType != "application/json" {
		t.Errorf("probe = %s (%s), want %s (application/json)", probes[0].Body, probes[0].ContentType, wantProbe)
	}
	if got := sim.Probes(); len(got) != 1 || !got[0].OK || got[0].SubscriptionID != 0 || string(got[0].Body) != wantProbe {
		t.Errorf("Probes() = %+v, want one OK probe with the sent body", got)
	}

	all := createWebhook(t, user2, base, second.url())
	if all.ID != 1002 || all.CreatedBy != 2 || all.Subscriptions == nil || len(all.Subscriptions) != 0 {
		t.Fatalf("second = %+v, want id 1002 by user 2 with an empty (all events) list", all)
	}
	if !strings.Contains(string(call(t, user2, http.MethodGet, base+"/webhook/1002", nil).Body), `"subscriptions":[]`) {
		t.Error("an all-events subscription must encode subscriptions as [], not null")
	}

	list := decode[[]Webhook](t, call(t, user2, http.MethodGet, base+"/webhook", nil))
	if len(list) != 2 || list[0].ID != 1001 || list[1].ID != 1002 {
		t.Fatalf("list = %+v, want 1001 and 1002 (every user sees the instance's subscriptions)", list)
	}
	got := decode[Webhook](t, call(t, bearer(DefaultUserKey), http.MethodGet, base+"/webhook/1001", nil))
	if !equalWebhook(got, want) {
		t.Errorf("get = %+v, want %+v", got, want)
	}

	put := func(body any) Webhook {
		t.Helper()
		r := call(t, admin, http.MethodPut, base+"/webhook/1001", body)
		wantStatus(t, r, http.StatusOK)
		return decode[Webhook](t, r)
	}
	// Changing only subscriptions or disabling sends no probe.
	if got := put(map[string]any{"subscriptions": []string{}}); len(got.Subscriptions) != 0 || got.WebhookURL != first.url() {
		t.Errorf("after subscriptions=[]: %+v", got)
	}
	if got := put(map[string]any{"disabled": true}); !got.Disabled {
		t.Errorf("after disabled=true: %+v", got)
	}
	if n := len(first.requests(ProbeType)); n != 1 {
		t.Errorf("probes after subscription and disable changes = %d, want still 1", n)
	}
	// Enabling probes the URL again.
	if got := put(map[string]any{"disabled": false}); got.Disabled {
		t.Errorf("after disabled=false: %+v", got)
	}
	if n := len(first.requests(ProbeType)); n != 2 {
		t.Errorf("probes after enabling = %d, want 2", n)
	}
	// A new URL is probed at the new URL.
	if got := put(map[string]any{"webhook_url": second.url()}); got.WebhookURL != second.url() {
		t.Errorf("after webhook_url change: %+v", got)
	}
	if n := len(second.requests(ProbeType)); n != 2 {
		t.Errorf("probes at the new URL = %d, want 2 (its own create and this update)", n)
	}
	// An empty update changes nothing.
	if got := put(map[string]any{}); got.WebhookURL != second.url() || got.Disabled {
		t.Errorf("after empty update: %+v", got)
	}

	r := call(t, admin, http.MethodDelete, base+"/webhook/1001", nil)
	wantStatus(t, r, http.StatusOK)
	if got := strings.TrimSpace(string(r.Body)); got != `{"success":true}` {
		t.Errorf("delete body = %s", got)
	}
	r = call(t, admin, http.MethodGet, base+"/webhook/1001", nil)
	wantStatus(t, r, http.StatusNotFound)
	if got := strings.TrimSpace(string(r.Body)); got != `{"message":"Not found"}` {
		t.Errorf("404 body = %s", got)
	}
	for _, method := range []string{http.MethodPut, http.MethodDelete} {
		wantStatus(t, call(t, admin, method, base+"/webhook/1001", map[string]any{}), http.StatusNotFound)
	}
	if hooks := sim.Webhooks(); len(hooks) != 1 || hooks[0].ID != 1002 {
		t.Errorf("Webhooks() = %+v, want only 1002", hooks)
	}
}

func equalWebhook(a, b Webhook) bool {
	return a.ID == b.ID && a.WebhookURL == b.WebhookURL && a.Disabled == b.Disabled &&
		a.CreatedBy == b.CreatedBy && slices.Equal(a.Subscriptions, b.Subscriptions)
}

func TestCreateAndUpdateFormEncoded(t *testing.T) {
	sim, base := setup(t, Config{})
	tg := newTarget(t, nil)

	// As Affinity's reference does it: curl -d, which sends a form.
	form := "webhook_url=" + tg.url() + "&subscriptions[]=person.created&subscriptions[]=note.created"
	r := call(t, admin, http.MethodPost, base+"/webhook/subscribe", form, "application/x-www-form-urlencoded")
	wantStatus(t, r, http.StatusOK)
	wh := decode[Webhook](t, r)
	if !slices.Equal(wh.Subscriptions, []string{"person.created", "note.created"}) || wh.WebhookURL != tg.url() {
		t.Fatalf("form create = %+v", wh)
	}

	// No Content-Type at all: sniffed as a form.
	r = call(t, admin, http.MethodPut, base+"/webhook/1001", "disabled=true&subscriptions=list.created")
	wantStatus(t, r, http.StatusOK)
	wh = decode[Webhook](t, r)
	if !wh.Disabled || !slices.Equal(wh.Subscriptions, []string{"list.created"}) {
		t.Fatalf("form update = %+v", wh)
	}

	// No Content-Type, JSON body: sniffed as JSON.
	r = call(t, admin, http.MethodPut, base+"/webhook/1001", `{"disabled": false}`)
	wantStatus(t, r, http.StatusOK)
	if decode[Webhook](t, r).Disabled {
		t.Fatal("sniffed JSON update did not enable")
	}

	// Multipart, as curl -F sends.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("webhook_url", tg.url()+"/other")
	mw.WriteField("subscriptions[]", "file.created")
	mw.Close()
	r = call(t, user2, http.MethodPost, base+"/webhook/subscribe", buf.String(), mw.FormDataContentType())
	wantStatus(t, r, http.StatusOK)
	if wh := decode[Webhook](t, r); !slices.Equal(wh.Subscriptions, []string{"file.created"}) || wh.CreatedBy != 2 {
		t.Fatalf("multipart create = %+v", wh)
	}
	if n := len(sim.Webhooks()); n != 2 {
		t.Fatalf("Webhooks() = %d, want 2", n)
	}
}

func TestBadRequests(t *testing.T) {
	sim, base := setup(t, Config{})
	tg := newTarget(t, nil)
	existing := createWebhook(t, admin, base, tg.url())

	tests := []struct {
		name        string
		method      string
		path        string
		body        any
		contentType string
		status      int
		msgHas      string
	}{
		{"missing webhook_url", "POST", "/webhook/subscribe", map[string]any{"subscriptions": []string{}}, "", 422, "webhook_url is required"},
		{"relative URL", "POST", "/webhook/subscribe", map[string]any{"webhook_url": "/hooks/x"}, "", 422, "absolute http or https URL"},
		{"ftp URL", "POST", "/webhook/subscribe", map[string]any{"webhook_url": "ftp://example.com/x"}, "", 422, "absolute http or https URL"},
		{"no host", "POST", "/webhook/subscribe", map[string]any{"webhook_url": "https:///x"}, "", 422, "absolute http or https URL"},
		{"URL not a string", "POST", "/webhook/subscribe", map[string]any{"webhook_url": 7}, "", 422, "webhook_url must be a string"},
		{"unknown event", "POST", "/webhook/subscribe", map[string]any{"webhook_url": tg.url(), "subscriptions": []string{"person.created", "person.exploded"}}, "", 422, `"person.exploded" is not a supported webhook event`},
		{"probe type is not subscribable", "POST", "/webhook/subscribe", map[string]any{"webhook_url": tg.url(), "subscriptions": []string{ProbeType}}, "", 422, "not a supported webhook event"},
		{"subscriptions not a list", "POST", "/webhook/subscribe", map[string]any{"webhook_url": tg.url(), "subscriptions": "person.created"}, "", 422, "array of event type strings"},
		{"malformed JSON", "POST", "/webhook/subscribe", `{"webhook_url":`, "application/json", 400, "not a valid JSON object"},
		{"JSON array", "POST", "/webhook/subscribe", `["x"]`, "application/json", 400, "not a valid JSON object"},
		{"unsupported content type", "POST", "/webhook/subscribe", "webhook_url", "text/plain", 415, "Content-Type must be"},
		{"disabled not a bool (JSON)", "PUT", fmt.Sprintf("/webhook/%d", existing.ID), map[string]any{"disabled": "yes please"}, "", 422, "disabled must be true or false"},
		{"disabled not a bool (form)", "PUT", fmt.Sprintf("/webhook/%d", existing.ID), "disabled=maybe", "application/x-www-form-urlencoded", 422, "disabled must be true or false"},
		{"bad URL on update", "PUT", fmt.Sprintf("/webhook/%d", existing.ID), map[string]any{"webhook_url": "not a url"}, "", 422, "absolute http or https URL"},
		{"body too large", "POST", "/webhook/subscribe", `{"webhook_url":"` + strings.Repeat("a", maxRequestBody) + `"}`, "application/json", 413, "larger than"},
		{"id not an integer", "GET", "/webhook/abc", nil, "", 400, "positive integer"},
		{"id zero", "DELETE", "/webhook/0", nil, "", 400, "positive integer"},
		{"wrong method on /webhook", "POST", "/webhook", nil, "", 405, "GET"},
		{"wrong method on subscribe", "GET", "/webhook/subscribe", nil, "", 405, "POST"},
		{"wrong method on a subscription", "PATCH", "/webhook/1001", nil, "", 405, "GET, PUT, DELETE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, admin, tt.method, base+tt.path, tt.body, tt.contentType)
			wantStatus(t, r, tt.status)
			if msg := errorMessage(t, r); !strings.Contains(msg, tt.msgHas) {
				t.Errorf("message = %q, want it to contain %q", msg, tt.msgHas)
			}
			if tt.status == 405 && r.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}

	for _, path := range []string{"/", "/webhook/", "/webhooks", "/webhook/1001/extra"} {
		r := call(t, admin, http.MethodGet, base+path, nil)
		wantStatus(t, r, http.StatusNotFound)
		if strings.TrimSpace(string(r.Body)) != `{"message":"Not found"}` {
			t.Errorf("%s: body %s", path, r.Body)
		}
	}
	hooks := sim.Webhooks()
	if len(hooks) != 1 || !equalWebhook(hooks[0], existing) {
		t.Errorf("bad requests changed the subscriptions: %+v", hooks)
	}
	if n := len(tg.requests(ProbeType)); n != 1 {
		t.Errorf("probes = %d, want 1 (bad requests are refused before probing)", n)
	}
}

func TestPermissions(t *testing.T) {
	sim, base := setup(t, Config{Users: []User{
		{ID: 10, APIKey: "admin-key", Admin: true},
		{ID: 20, APIKey: "alice-key"},
		{ID: 30, APIKey: "bob-key"},
	}})
	tg := newTarget(t, nil)
	adminKey, alice, bob := basic("admin-key"), bearer("alice-key"), basic("bob-key")

	byAlice := createWebhook(t, alice, base, tg.url())
	byAdmin := createWebhook(t, adminKey, base, tg.url())
	path := func(wh Webhook) string { return base + "/webhook/" + strconv.FormatInt(wh.ID, 10) }

	// Update: creator only, not even an admin.
	for name, a := range map[string]auth{"admin": adminKey, "another user": bob} {
		r := call(t, a, http.MethodPut, path(byAlice), map[string]any{"disabled": true})
		wantStatus(t, r, http.StatusForbidden)
		if msg := errorMessage(t, r); !strings.Contains(msg, "creator") {
			t.Errorf("%s: message %q", name, msg)
		}
	}
	r := call(t, alice, http.MethodPut, path(byAlice), map[string]any{"disabled": true})
	wantStatus(t, r, http.StatusOK)

	// Delete: creator or admin.
	wantStatus(t, call(t, bob, http.MethodDelete, path(byAlice), nil), http.StatusForbidden)
	wantStatus(t, call(t, alice, http.MethodDelete, path(byAdmin), nil), http.StatusForbidden)
	if n := len(sim.Webhooks()); n != 2 {
		t.Fatalf("refused deletes removed subscriptions: %d left", n)
	}
	wantStatus(t, call(t, adminKey, http.MethodDelete, path(byAlice), nil), http.StatusOK)
	wantStatus(t, call(t, adminKey, http.MethodDelete, path(byAdmin), nil), http.StatusOK)
	if n := len(sim.Webhooks()); n != 0 {
		t.Fatalf("%d subscriptions left", n)
	}

	byBob := createWebhook(t, bob, base, tg.url())
	wantStatus(t, call(t, bob, http.MethodDelete, path(byBob), nil), http.StatusOK)
}

func TestSubscriptionLimit(t *testing.T) {
	sim, base := setup(t, Config{})
	tg := newTarget(t, nil)
	var ids []int64
	for range 3 {
		ids = append(ids, createWebhook(t, admin, base, tg.url()).ID)
	}
	r := call(t, user2, http.MethodPost, base+"/webhook/subscribe", map[string]any{"webhook_url": tg.url()})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	msg := strings.ToLower(errorMessage(t, r))
	if !strings.Contains(msg, "limit of 3 subscriptions") {
		t.Errorf("limit message = %q, want it to name the subscription limit of 3", msg)
	}
	if n := len(tg.requests(ProbeType)); n != 3 {
		t.Errorf("probes = %d, want 3 (no probe past the limit)", n)
	}
	if n := len(sim.Webhooks()); n != 3 {
		t.Fatalf("Webhooks() = %d, want 3", n)
	}
	// A deleted subscription frees its slot.
	wantStatus(t, call(t, admin, http.MethodDelete, fmt.Sprintf("%s/webhook/%d", base, ids[0]), nil), http.StatusOK)
	if wh := createWebhook(t, user2, base, tg.url()); wh.ID != 1004 {
		t.Errorf("id after a delete = %d, want 1004 (ids are not reused)", wh.ID)
	}

	t.Run("configurable", func(t *testing.T) {
		_, base := setup(t, Config{MaxSubscriptions: 1})
		createWebhook(t, admin, base, tg.url())
		r := call(t, admin, http.MethodPost, base+"/webhook/subscribe", map[string]any{"webhook_url": tg.url()})
		wantStatus(t, r, http.StatusUnprocessableEntity)
		if msg := errorMessage(t, r); !strings.Contains(msg, "limit of 1 subscription ") {
			t.Errorf("message = %q", msg)
		}
	})
}

func TestProbeFailuresChangeNothing(t *testing.T) {
	const probeTimeout = 50 * time.Millisecond
	failing := map[string]func(t *testing.T) string{
		"non-2xx": func(t *testing.T) string {
			return newTarget(t, func(string, int) int { return http.StatusInternalServerError }).url()
		},
		"redirect": func(t *testing.T) string {
			return newTarget(t, func(string, int) int { return http.StatusFound }).url()
		},
		"timeout": func(t *testing.T) string {
			return newTarget(t, func(string, int) int { return 0 }).url()
		},
		"connection refused": func(t *testing.T) string {
			tg := newTarget(t, nil)
			tg.srv.Close()
			return tg.url()
		},
	}
	wantReason := map[string]string{
		"non-2xx":            "answered 500",
		"redirect":           "answered 302",
		"timeout":            "no answer within 50ms",
		"connection refused": "connection failed",
	}
	for name, makeURL := range failing {
		t.Run(name, func(t *testing.T) {
			sim, base := setup(t, Config{ProbeTimeout: probeTimeout})
			bad := makeURL(t)
			good := newTarget(t, nil)

			checkRefused := func(r response) {
				t.Helper()
				wantStatus(t, r, http.StatusUnprocessableEntity)
				msg := errorMessage(t, r)
				if !strings.Contains(msg, "did not respond with a 2xx") || !strings.Contains(msg, wantReason[name]) {
					t.Errorf("message = %q", msg)
				}
				if strings.Contains(msg, "s3cr3t") {
					t.Errorf("message leaks the URL's path secret: %q", msg)
				}
			}

			// Create.
			checkRefused(call(t, admin, http.MethodPost, base+"/webhook/subscribe", map[string]any{"webhook_url": bad}))
			if n := len(sim.Webhooks()); n != 0 {
				t.Fatalf("a failed probe created a subscription")
			}

			// Update to a failing URL.
			wh := createWebhook(t, admin, base, good.url(), "person.created")
			path := fmt.Sprintf("%s/webhook/%d", base, wh.ID)
			checkRefused(call(t, admin, http.MethodPut, path, map[string]any{"webhook_url": bad, "subscriptions": []string{}}))
			if got := sim.Webhooks(); len(got) != 1 || !equalWebhook(got[0], wh) {
				t.Fatalf("failed probe on update changed %+v to %+v", wh, got)
			}

			// Enabling a disabled subscription whose URL now fails.
			wantStatus(t, call(t, admin, http.MethodPut, path, map[string]any{"disabled": true}), http.StatusOK)
			good.setRespond(func(string, int) int { return http.StatusServiceUnavailable })
			r := call(t, admin, http.MethodPut, path, map[string]any{"disabled": false})
			wantStatus(t, r, http.StatusUnprocessableEntity)
			if got := sim.Webhooks(); !got[0].Disabled {
				t.Fatal("failed probe on enable enabled the subscription")
			}
			// Changes that need no probe still work while the URL fails.
			r = call(t, admin, http.MethodPut, path, map[string]any{"subscriptions": []string{"note.created"}})
			wantStatus(t, r, http.StatusOK)

			var okProbes, failedProbes int
			for _, p := range sim.Probes() {
				if p.OK {
					okProbes++
				} else {
					failedProbes++
				}
			}
			if okProbes != 1 || failedProbes != 3 {
				t.Errorf("Probes(): %d ok, %d failed; want 1 and 3", okProbes, failedProbes)
			}
		})
	}
}

func TestRateLimits(t *testing.T) {
	// 12:00:10 UTC on 10 May: the minute window resets in 50s and the month
	// in 21 days, 11 hours, 59 minutes and 50 seconds.
	start := time.Date(2024, 5, 10, 12, 0, 10, 0, time.UTC)
	monthReset := strconv.Itoa(int(time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC).Sub(start).Seconds()))

	t.Run("per user per minute", func(t *testing.T) {
		clock := clocktest.New(start)
		_, base := setup(t, Config{Now: clock.Now, RateLimitPerMinute: 3})
		for i := range 3 {
			r := call(t, admin, http.MethodGet, base+"/webhook", nil)
			wantStatus(t, r, http.StatusOK)
			wantHeaders(t, r.Header, map[string]string{
				"X-Ratelimit-Limit-User":           "3",
				"X-Ratelimit-Limit-User-Remaining": strconv.Itoa(2 - i),
				"X-Ratelimit-Limit-User-Reset":     "50",
				"X-Ratelimit-Limit-Org":            "100000",
				"X-Ratelimit-Limit-Org-Remaining":  strconv.Itoa(100000 - 1 - i),
				"X-Ratelimit-Limit-Org-Reset":      monthReset,
				"Retry-After":                      "",
			})
		}
		r := call(t, admin, http.MethodGet, base+"/webhook", nil)
		wantStatus(t, r, http.StatusTooManyRequests)
		wantHeaders(t, r.Header, map[string]string{
			"Retry-After":                      "50",
			"X-Ratelimit-Limit-User-Remaining": "0",
			"X-Ratelimit-Limit-Org-Remaining":  "99997", // refused requests cost nothing
		})
		if msg := errorMessage(t, r); !strings.Contains(msg, "Rate limit") {
			t.Errorf("429 message = %q", msg)
		}
		// Refused for writes too, before anything happens.
		wantStatus(t, call(t, admin, http.MethodPost, base+"/webhook/subscribe", map[string]any{"webhook_url": "http://127.0.0.1:1/x"}), http.StatusTooManyRequests)

		// Another user has their own budget.
		r = call(t, user2, http.MethodGet, base+"/webhook", nil)
		wantStatus(t, r, http.StatusOK)
		wantHeaders(t, r.Header, map[string]string{"X-Ratelimit-Limit-User-Remaining": "2"})

		// The next minute starts a fresh window.
		clock.Set(start.Add(50 * time.Second))
		r = call(t, admin, http.MethodGet, base+"/webhook", nil)
		wantStatus(t, r, http.StatusOK)
		wantHeaders(t, r.Header, map[string]string{
			"X-Ratelimit-Limit-User-Remaining": "2",
			"X-Ratelimit-Limit-User-Reset":     "60",
		})
	})

	t.Run("org per month", func(t *testing.T) {
		clock := clocktest.New(start)
		_, base := setup(t, Config{Now: clock.Now, OrgMonthlyQuota: 3})
		for _, a := range []auth{admin, user2, admin} {
			wantStatus(t, call(t, a, http.MethodGet, base+"/webhook", nil), http.StatusOK)
		}
		r := call(t, user2, http.MethodGet, base+"/webhook", nil)
		wantStatus(t, r, http.StatusTooManyRequests)
		wantHeaders(t, r.Header, map[string]string{
			"Retry-After":                      monthReset,
			"X-Ratelimit-Limit-Org":            "3",
			"X-Ratelimit-Limit-Org-Remaining":  "0",
			"X-Ratelimit-Limit-User-Remaining": "899",
		})
		// A new minute does not help; a new month does.
		clock.Set(start.Add(time.Hour))
		wantStatus(t, call(t, user2, http.MethodGet, base+"/webhook", nil), http.StatusTooManyRequests)
		clock.Set(time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC))
		r = call(t, user2, http.MethodGet, base+"/webhook", nil)
		wantStatus(t, r, http.StatusOK)
		wantHeaders(t, r.Header, map[string]string{"X-Ratelimit-Limit-Org-Remaining": "2"})
	})
}

func wantHeaders(t *testing.T, h http.Header, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}
