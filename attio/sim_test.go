package attio_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/sim/attiosim"
)

// These tests run the SDK against the Attio simulator over real loopback
// HTTP: the client and the simulator must agree on every byte of the
// contract (auth, {"data": …}, paging, errors, deliveries and signatures).

// simSetup starts a simulator and returns it, its base URL and a client
// pointed at it.
func simSetup(t *testing.T, cfg attiosim.Config, opts ...attio.Option) (*attiosim.Server, string, *attio.Client) {
	t.Helper()
	sim, err := attiosim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		srv.Close()
		sim.Close()
	})
	client, err := attio.NewClient(sim.Token(), append([]attio.Option{attio.WithBaseURL(srv.URL + "/v2")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return sim, srv.URL, client
}

func simCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// simReceiver records every delivery and answers with the status respond
// picks from the number of deliveries before it.
type simReceiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []simReceived
	respond func(n int) int
}

type simReceived struct {
	header http.Header
	body   []byte
}

func newSimReceiver(t *testing.T, respond func(n int) int) *simReceiver {
	rc := &simReceiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, simReceived{header: r.Header.Clone(), body: body})
		status := http.StatusOK
		if rc.respond != nil {
			status = rc.respond(n)
		}
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *simReceiver) received() []simReceived {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]simReceived(nil), rc.got...)
}

func TestSimWebhookLifecycle(t *testing.T) {
	_, _, client := simSetup(t, attiosim.Config{})
	ctx := simCtx(t)

	filter := attio.And(attio.Equals("id.list_id", attiosim.SampleListID), attio.NotEquals("actor.type", "system"))
	created, _, err := client.Webhooks.Create(ctx, &attio.WebhookCreateRequest{
		TargetURL: "https://example.com/hooks/attio",
		Subscriptions: []attio.Subscription{
			{EventType: attio.ListEntryCreated, Filter: filter},
			{EventType: attio.RecordCreated},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if created.Secret == "" || created.ID.WebhookID == "" || created.ID.WorkspaceID != attiosim.DefaultWorkspaceID ||
		created.Status != attio.WebhookActive || created.CreatedAt.IsZero() {
		t.Fatalf("created = %+v", created)
	}
	if len(created.Subscriptions) != 2 || created.Subscriptions[0].Filter.String() != filter.String() || created.Subscriptions[1].Filter != nil {
		t.Fatalf("subscriptions = %+v", created.Subscriptions)
	}

	got, _, err := client.Webhooks.Get(ctx, created.ID.WebhookID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Secret != "" {
		t.Fatal("Get returned the secret; Attio shows it only on create")
	}
	if got.TargetURL != created.TargetURL || !got.CreatedAt.Equal(created.CreatedAt) || got.Subscriptions[0].Filter.String() != filter.String() {
		t.Fatalf("get = %+v, want what create returned", got)
	}

	newURL := "https://example.com/hooks/attio-v2"
	subs := []attio.Subscription{{EventType: attio.NoteCreated, Filter: attio.Or(attio.Equals("parent_object_id", attiosim.SamplePeopleObjectID))}}
	updated, _, err := client.Webhooks.Update(ctx, created.ID.WebhookID, &attio.WebhookUpdateRequest{TargetURL: &newURL, Subscriptions: &subs})
	if err != nil {
		t.Fatal(err)
	}
	if updated.TargetURL != newURL || len(updated.Subscriptions) != 1 || updated.Subscriptions[0].EventType != attio.NoteCreated || updated.Secret != "" {
		t.Fatalf("updated = %+v", updated)
	}

	if _, err := client.Webhooks.Delete(ctx, created.ID.WebhookID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := client.Webhooks.Get(ctx, created.ID.WebhookID); !errors.Is(err, attio.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
	if _, err := client.Webhooks.Delete(ctx, created.ID.WebhookID); !errors.Is(err, attio.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}

func TestSimListPagingAndAll(t *testing.T) {
	_, _, client := simSetup(t, attiosim.Config{})
	ctx := simCtx(t)
	var ids []string
	for range 7 {
		wh, _, err := client.Webhooks.Create(ctx, &attio.WebhookCreateRequest{
			TargetURL:     "https://example.com/h",
			Subscriptions: []attio.Subscription{{EventType: attio.TaskCreated}},
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, wh.ID.WebhookID)
	}

	page, _, err := client.Webhooks.List(ctx, &attio.ListOptions{Limit: 3, Offset: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 3 || page[0].ID.WebhookID != ids[2] || page[2].ID.WebhookID != ids[4] {
		t.Fatalf("limit 3 offset 2 = %v", webhookIDs(page))
	}
	for _, wh := range page {
		if wh.Secret != "" {
			t.Fatal("List returned a secret")
		}
	}
	all, _, err := client.Webhooks.List(ctx, nil)
	if err != nil || len(all) != 7 {
		t.Fatalf("List(nil) = %d webhooks, %v", len(all), err)
	}

	// All pages through with short pages; 7 webhooks in pages of 3 are 3 requests.
	var seen []string
	for wh, err := range client.Webhooks.All(ctx, 3) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, wh.ID.WebhookID)
	}
	if len(seen) != len(ids) {
		t.Fatalf("All = %v, want %v", seen, ids)
	}
	for i := range ids {
		if seen[i] != ids[i] {
			t.Fatalf("All = %v, want %v (oldest first)", seen, ids)
		}
	}
}

func webhookIDs(whs []*attio.Webhook) []string {
	out := make([]string, len(whs))
	for i, wh := range whs {
		out[i] = wh.ID.WebhookID
	}
	return out
}

func TestSimErrorsMapToSentinels(t *testing.T) {
	_, base, client := simSetup(t, attiosim.Config{})
	ctx := simCtx(t)

	wrong, err := attio.NewClient("not-the-token", attio.WithBaseURL(base+"/v2"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = wrong.Webhooks.List(ctx, nil)
	if !errors.Is(err, attio.ErrUnauthorized) {
		t.Fatalf("wrong token: %v, want ErrUnauthorized", err)
	}
	if apiErr, ok := errors.AsType[*attio.APIError](err); !ok || apiErr.Type != "auth_error" || apiErr.Code != "unauthorized" || apiErr.Message == "" {
		t.Fatalf("wrong token error = %#v", apiErr)
	}

	// The client lets unknown event types through (Attio adds types); the
	// simulator, like Attio, refuses them.
	_, _, err = client.Webhooks.Create(ctx, &attio.WebhookCreateRequest{
		TargetURL:     "https://example.com/h",
		Subscriptions: []attio.Subscription{{EventType: "deal.won"}},
	})
	if !errors.Is(err, attio.ErrValidation) {
		t.Fatalf("unknown event type: %v, want ErrValidation", err)
	}
	if apiErr, _ := errors.AsType[*attio.APIError](err); apiErr == nil || apiErr.Code != "validation_type" {
		t.Fatalf("validation error = %#v", apiErr)
	}

	if _, _, err := client.Webhooks.Get(ctx, "9b1f0a52-1111-4222-8333-444455556666"); !errors.Is(err, attio.ErrNotFound) {
		t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}
	url := "https://example.com/x"
	if _, _, err := client.Webhooks.Update(ctx, "9b1f0a52-1111-4222-8333-444455556666", &attio.WebhookUpdateRequest{TargetURL: &url}); !errors.Is(err, attio.ErrNotFound) {
		t.Fatalf("update unknown id: %v, want ErrNotFound", err)
	}
}

func TestSimRateLimitIsErrRateLimited(t *testing.T) {
	// One read per 100 s: the second read is refused with a Retry-After far
	// past the client's 30 s cap, so the client returns at once.
	_, _, client := simSetup(t, attiosim.Config{ReadRate: 0.01, WriteRate: 0.01})
	ctx := simCtx(t)
	if _, _, err := client.Webhooks.List(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, _, err := client.Webhooks.List(ctx, nil)
	if !errors.Is(err, attio.ErrRateLimited) {
		t.Fatalf("second read: %v, want ErrRateLimited", err)
	}
	apiErr, _ := errors.AsType[*attio.APIError](err)
	if apiErr == nil || apiErr.RetryAfter < 90*time.Second || apiErr.RetryAfter > 101*time.Second {
		t.Fatalf("RetryAfter = %v, want about 100s", apiErr)
	}
	// Writes have their own budget.
	if _, _, err := client.Webhooks.Create(ctx, &attio.WebhookCreateRequest{
		TargetURL: "https://example.com/h", Subscriptions: []attio.Subscription{{EventType: attio.TaskCreated}},
	}); err != nil {
		t.Fatalf("first write: %v", err)
	}
	if _, err := client.Webhooks.Delete(ctx, "x"); !errors.Is(err, attio.ErrRateLimited) {
		t.Fatalf("second write: %v, want ErrRateLimited", err)
	}
}

func TestSimDeliveriesVerifyAndRespectFilters(t *testing.T) {
	sim, _, client := simSetup(t, attiosim.Config{})
	ctx := simCtx(t)
	rc := newSimReceiver(t, nil)
	wh, _, err := client.Webhooks.Create(ctx, &attio.WebhookCreateRequest{
		TargetURL: rc.srv.URL + "/hooks/attio",
		Subscriptions: []attio.Subscription{
			{EventType: attio.ListEntryCreated, Filter: attio.And(attio.Equals("id.list_id", attiosim.SampleListID))},
			{EventType: attio.RecordUpdated, Filter: attio.And(attio.NotEquals("actor.type", "system"))},
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	triggers := []struct {
		eventType, override string
		want                bool
	}{
		{"list-entry.created", "", true},
		{"list-entry.created", `{"id":{"list_id":"0d9c3c55-0000-4000-8000-000000000000"}}`, false},
		{"record.updated", "", true},
		{"record.updated", `{"actor":{"type":"system","id":null}}`, false},
		{"record.created", "", false}, // not subscribed
	}
	wantTypes := map[attio.EventType]int{}
	for _, tr := range triggers {
		var override []byte
		if tr.override != "" {
			override = []byte(tr.override)
		}
		res, err := sim.Trigger(ctx, tr.eventType, override)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(res.Deliveries) == 1; got != tr.want {
			t.Fatalf("%s %s: delivered %v, want %v", tr.eventType, tr.override, got, tr.want)
		}
		if tr.want {
			wantTypes[attio.EventType(tr.eventType)]++
		}
	}

	router := attio.NewRouter()
	gotTypes := map[attio.EventType]int{}
	attio.On(router, attio.ListEntryCreated, func(_ context.Context, _ *attio.Event, e attio.ListEntryEvent) error {
		if e.ID.ListID != attiosim.SampleListID || e.ParentRecordID == "" {
			t.Errorf("list entry event = %+v", e)
		}
		gotTypes[e.EventType]++
		return nil
	})
	attio.On(router, attio.RecordUpdated, func(_ context.Context, _ *attio.Event, e attio.RecordEvent) error {
		if e.ID.AttributeID == "" || e.Actor.Type == "system" {
			t.Errorf("record event = %+v", e)
		}
		gotTypes[e.EventType]++
		return nil
	})
	keys := map[string]bool{}
	for _, r := range rc.received() {
		if err := attio.Verify(r.body, r.header, []string{wh.Secret}); err != nil {
			t.Fatalf("delivery does not verify with the secret from create: %v", err)
		}
		keys[r.header.Get(attio.HeaderIdempotencyKey)] = true
		d, err := attio.ParseDelivery(r.body)
		if err != nil {
			t.Fatal(err)
		}
		if d.WebhookID != wh.ID.WebhookID {
			t.Fatalf("delivery for webhook %q, want %q", d.WebhookID, wh.ID.WebhookID)
		}
		if err := router.DispatchDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if len(gotTypes) != len(wantTypes) || gotTypes[attio.ListEntryCreated] != 1 || gotTypes[attio.RecordUpdated] != 1 {
		t.Fatalf("received %v, want %v", gotTypes, wantTypes)
	}
	if len(keys) != 2 {
		t.Fatalf("%d distinct Idempotency-Keys for 2 messages", len(keys))
	}
}

func TestSimRetriesThenDegraded(t *testing.T) {
	// 1e6 simulated seconds per real second: the ~3-day schedule takes
	// about a quarter of a second. The frozen clock keeps the webhook from
	// turning inactive (7 simulated days after degrading) before we look.
	frozen := time.Now()
	sim, _, client := simSetup(t, attiosim.Config{TimeScale: 1e6, Now: func() time.Time { return frozen }})
	ctx := simCtx(t)
	rc := newSimReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	wh, _, err := client.Webhooks.Create(ctx, &attio.WebhookCreateRequest{
		TargetURL:     rc.srv.URL,
		Subscriptions: []attio.Subscription{{EventType: attio.TaskCreated}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Trigger(ctx, "task.created", nil); err != nil {
		t.Fatal(err)
	}
	if err := sim.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	got := rc.received()
	if len(got) != 11 {
		t.Fatalf("%d attempts, want the first plus 10 retries", len(got))
	}
	key := got[0].header.Get(attio.HeaderIdempotencyKey)
	for i, r := range got {
		if r.header.Get(attio.HeaderIdempotencyKey) != key || string(r.body) != string(got[0].body) {
			t.Fatalf("attempt %d is not the same message", i+1)
		}
		if err := attio.Verify(r.body, r.header, []string{wh.Secret}); err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	after, _, err := client.Webhooks.Get(ctx, wh.ID.WebhookID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != attio.WebhookDegraded {
		t.Fatalf("status = %q, want degraded", after.Status)
	}
}
