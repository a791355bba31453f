package affinity_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/sim/affinitysim"
)

// target is a webhook endpoint on loopback that records the event types it
// receives and answers with status.
type target struct {
	mu     sync.Mutex
	types  []string
	status int
	srv    *httptest.Server
}

func newTarget(t *testing.T, status int) *target {
	tg := &target{status: status}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var env struct {
			Type string `json:"type"`
		}
		json.Unmarshal(b, &env)
		tg.mu.Lock()
		tg.types = append(tg.types, env.Type)
		status := tg.status
		tg.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *target) url() string { return tg.srv.URL + "/hooks/affinity/s3cr3t-path-component" }

func (tg *target) received() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return slices.Clone(tg.types)
}

// startSim runs the simulator behind a real loopback HTTP server.
func startSim(t *testing.T, cfg affinitysim.Config) (*affinitysim.Server, string) {
	t.Helper()
	sim, err := affinitysim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

func simClient(t *testing.T, base, key string, opts ...affinity.Option) *affinity.Client {
	t.Helper()
	c, err := affinity.NewClient(key, append([]affinity.Option{
		affinity.WithBaseURL(base),
		affinity.WithBackoff(time.Millisecond, 10*time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAgainstSimulator(t *testing.T) {
	sim, base := startSim(t, affinitysim.Config{})
	admin := simClient(t, base, affinitysim.DefaultAdminKey)                          // user 1, Basic auth
	user := simClient(t, base, affinitysim.DefaultUserKey, affinity.WithBearerAuth()) // user 2, Bearer
	first, second := newTarget(t, http.StatusOK), newTarget(t, http.StatusOK)
	ctx := context.Background()

	// Create: the simulator probes the URL before it accepts.
	created, resp, err := admin.Webhooks.Create(ctx, &affinity.CreateWebhookRequest{
		WebhookURL:    first.url(),
		Subscriptions: []affinity.EventType{affinity.PersonCreated, affinity.ListEntryCreated},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &affinity.Webhook{ID: created.ID, WebhookURL: first.url(),
		Subscriptions: []affinity.EventType{affinity.PersonCreated, affinity.ListEntryCreated}, CreatedBy: 1}
	if created.ID <= 0 || !equalWebhook(created, want) {
		t.Fatalf("created %+v, want %+v", created, want)
	}
	if got := first.received(); !slices.Equal(got, []string{"sample.webhook"}) {
		t.Errorf("target saw %v, want one sample.webhook probe", got)
	}
	if rl := resp.RateLimits; !rl.Known || rl.UserLimit != 900 || rl.UserRemaining != 899 || rl.OrgLimit <= 0 || rl.UserReset <= 0 {
		t.Errorf("rate limits = %+v", rl)
	}

	// List and Get agree.
	all, _, err := user.Webhooks.List(ctx)
	if err != nil || len(all) != 1 || !equalWebhook(all[0], want) {
		t.Fatalf("list = %v, %v", all, err)
	}
	got, _, err := user.Webhooks.Get(ctx, created.ID)
	if err != nil || !equalWebhook(got, want) {
		t.Fatalf("get = %+v, %v", got, err)
	}

	// Update: move to another URL and take every event; the new URL is probed.
	newURL := second.url()
	updated, _, err := admin.Webhooks.Update(ctx, created.ID, &affinity.UpdateWebhookRequest{
		WebhookURL: &newURL, Subscriptions: &[]affinity.EventType{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if updated.WebhookURL != newURL || !updated.AllEvents() || updated.Disabled {
		t.Errorf("updated = %+v", updated)
	}
	if got := second.received(); !slices.Equal(got, []string{"sample.webhook"}) {
		t.Errorf("new target saw %v", got)
	}

	// Only the creator may update.
	_, _, err = user.Webhooks.Disable(ctx, created.ID)
	if !errors.Is(err, affinity.ErrForbidden) {
		t.Fatalf("update by another user: %v, want ErrForbidden", err)
	}
	if apiErr, ok := errors.AsType[*affinity.APIError](err); !ok || apiErr.StatusCode != 403 || apiErr.Message == "" {
		t.Errorf("APIError = %+v", apiErr)
	}

	// Disable stops deliveries; Enable (probed again) restarts them.
	if wh, _, err := admin.Webhooks.Disable(ctx, created.ID); err != nil || !wh.Disabled {
		t.Fatalf("disable: %+v %v", wh, err)
	}
	if res, err := sim.Trigger(ctx, string(affinity.OrganizationCreated), nil); err != nil || len(res.Deliveries) != 0 {
		t.Errorf("trigger while disabled: %+v %v", res, err)
	}
	if wh, _, err := admin.Webhooks.Enable(ctx, created.ID); err != nil || wh.Disabled {
		t.Fatalf("enable: %+v %v", wh, err)
	}
	if res, err := sim.Trigger(ctx, string(affinity.OrganizationCreated), nil); err != nil || len(res.Deliveries) != 1 {
		t.Errorf("trigger after enable: %+v %v", res, err)
	}
	if got := second.received(); !slices.Equal(got, []string{"sample.webhook", "sample.webhook", "organization.created"}) {
		t.Errorf("target saw %v", got)
	}

	// A URL that fails the probe is a validation error, not the limit.
	failing := newTarget(t, http.StatusInternalServerError)
	_, _, err = admin.Webhooks.Create(ctx, &affinity.CreateWebhookRequest{WebhookURL: failing.url()})
	if !errors.Is(err, affinity.ErrValidation) || errors.Is(err, affinity.ErrSubscriptionLimit) {
		t.Errorf("failed probe: %v", err)
	}

	// Three subscriptions at most.
	byUser, _, err := user.Webhooks.Create(ctx, &affinity.CreateWebhookRequest{WebhookURL: first.url()})
	if err != nil || byUser.CreatedBy != 2 || !byUser.AllEvents() {
		t.Fatalf("create by user: %+v %v", byUser, err)
	}
	if _, _, err := admin.Webhooks.Create(ctx, &affinity.CreateWebhookRequest{WebhookURL: first.url()}); err != nil {
		t.Fatal(err)
	}
	_, _, err = admin.Webhooks.Create(ctx, &affinity.CreateWebhookRequest{WebhookURL: first.url()})
	if !errors.Is(err, affinity.ErrSubscriptionLimit) || !errors.Is(err, affinity.ErrValidation) {
		t.Fatalf("fourth create: %v, want ErrSubscriptionLimit", err)
	}
	if n := len(sim.Webhooks()); n != affinity.MaxWebhookSubscriptions {
		t.Errorf("simulator holds %d subscriptions", n)
	}

	// Delete: an admin may delete another user's subscription; it is gone after.
	if _, err := admin.Webhooks.Delete(ctx, byUser.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := user.Webhooks.Get(ctx, byUser.ID); !errors.Is(err, affinity.ErrNotFound) {
		t.Errorf("get deleted: %v, want ErrNotFound", err)
	}
	if _, err := user.Webhooks.Delete(ctx, created.ID); !errors.Is(err, affinity.ErrForbidden) {
		t.Errorf("delete by non-creator: %v, want ErrForbidden", err)
	}
	if all, _, err := admin.Webhooks.List(ctx); err != nil || len(all) != 2 {
		t.Errorf("list after delete: %d, %v", len(all), err)
	}

	// A wrong key is ErrUnauthorized, and the key is not in the error.
	const wrongKey = "not-a-real-key-0f9e8d7c"
	_, _, err = simClient(t, base, wrongKey).Webhooks.List(ctx)
	if !errors.Is(err, affinity.ErrUnauthorized) || err.Error() != "affinity: list webhooks: 401 Unauthorized: Unauthorized" {
		t.Errorf("wrong key: %v", err)
	}
}

func TestSimulatorRateLimit(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 30, 0, time.UTC) // a fixed clock: one minute window for the whole test
	_, base := startSim(t, affinitysim.Config{RateLimitPerMinute: 2, Now: func() time.Time { return now }})
	// Retries allowed, but the simulator asks for 30s, more than the 10ms cap:
	// the client gives up at once instead of sleeping.
	client := simClient(t, base, affinitysim.DefaultAdminKey)
	ctx := context.Background()
	for i := range 2 {
		if _, _, err := client.Webhooks.List(ctx); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	_, resp, err := client.Webhooks.List(ctx)
	if !errors.Is(err, affinity.ErrRateLimited) {
		t.Fatalf("third call: %v, want ErrRateLimited", err)
	}
	apiErr, _ := errors.AsType[*affinity.APIError](err)
	if apiErr.RetryAfter != 30*time.Second {
		t.Errorf("RetryAfter = %v, want 30s", apiErr.RetryAfter)
	}
	if rl := resp.RateLimits; rl.UserLimit != 2 || rl.UserRemaining != 0 || rl.UserReset != 30*time.Second {
		t.Errorf("rate limits on 429 = %+v", rl)
	}
}

func equalWebhook(a, b *affinity.Webhook) bool {
	return a.ID == b.ID && a.WebhookURL == b.WebhookURL && slices.Equal(a.Subscriptions, b.Subscriptions) &&
		a.Disabled == b.Disabled && a.CreatedBy == b.CreatedBy
}
