package attio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func TestListSendsLimitOffsetAndUnwrapsData(t *testing.T) {
	client, mux, _ := setup(t)
	var query string
	mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		writeJSONBody(w, 200, string(readFixture(t, "seed004.list-webhooks.response.json")))
	})
	page, _, err := client.Webhooks.List(context.Background(), &ListOptions{Limit: 25, Offset: 50})
	if err != nil {
		t.Fatal(err)
	}
	if query != "limit=25&offset=50" {
		t.Errorf("query %q", query)
	}
	if len(page) != 1 || page[0].ID.WebhookID != "23e42eaf-323a-41da-b5bb-fd67eebda553" || len(page[0].Subscriptions) != 2 || page[0].Secret != "" {
		t.Errorf("page %+v", page)
	}
	if _, _, err := client.Webhooks.List(context.Background(), nil); err != nil || query != "" {
		t.Errorf("nil options: err %v query %q", err, query)
	}
	if _, _, err := client.Webhooks.List(context.Background(), &ListOptions{Limit: -1}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("negative limit: %v", err)
	}
}

// pagedServer serves total webhooks through limit/offset like Attio.
func pagedServer(t *testing.T, mux *http.ServeMux, total int) *atomic.Int32 {
	var requests atomic.Int32
	mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		var items []string
		for i := offset; i < total && i < offset+limit; i++ {
			items = append(items, fmt.Sprintf(`{"id":{"workspace_id":"ws","webhook_id":"wh-%d"},"target_url":"https://x.test/%d","subscriptions":[{"event_type":"record.created","filter":null}],"status":"active","created_at":"2024-01-02T03:04:05.000000000Z"}`, i, i))
		}
		writeJSONBody(w, 200, `{"data":[`+strings.Join(items, ",")+`]}`)
	})
	return &requests
}

func TestAllIteratesEveryPage(t *testing.T) {
	client, mux, _ := setup(t)
	requests := pagedServer(t, mux, 7) // pages of 3: 3, 3, 1
	var ids []string
	for wh, err := range client.Webhooks.All(context.Background(), 3) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, wh.ID.WebhookID)
	}
	if strings.Join(ids, ",") != "wh-0,wh-1,wh-2,wh-3,wh-4,wh-5,wh-6" || requests.Load() != 3 {
		t.Errorf("ids %v after %d requests", ids, requests.Load())
	}

	// Exactly full last page: one extra request finds the empty page.
	client2, mux2, _ := setup(t)
	requests2 := pagedServer(t, mux2, 6)
	n := 0
	for _, err := range client2.Webhooks.All(context.Background(), 3) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 6 || requests2.Load() != 3 {
		t.Errorf("got %d webhooks in %d requests", n, requests2.Load())
	}

	// Breaking early stops fetching.
	requests.Store(0)
	for range client.Webhooks.All(context.Background(), 3) {
		break
	}
	if requests.Load() != 1 {
		t.Errorf("break still made %d requests", requests.Load())
	}
}

func TestAllYieldsErrorOnce(t *testing.T) {
	client, mux, _ := setup(t, WithMaxRetries(0), WithBackoff(1, 1))
	mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("offset") == "" {
			writeJSONBody(w, 200, `{"data":[{"id":{"webhook_id":"a"}},{"id":{"webhook_id":"b"}}]}`)
			return
		}
		writeJSONBody(w, 401, `{"status_code":401,"type":"auth_error","code":"unauthorized","message":"token revoked"}`)
	})
	var got []string
	var errs []error
	for wh, err := range client.Webhooks.All(context.Background(), 2) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got = append(got, wh.ID.WebhookID)
	}
	if len(got) != 2 || len(errs) != 1 || !errors.Is(errs[0], ErrUnauthorized) {
		t.Errorf("got %v errs %v", got, errs)
	}
}

func TestUpdateSendsOnlyGivenFields(t *testing.T) {
	client, mux, _ := setup(t)
	var bodies []string
	mux.HandleFunc("PATCH /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, r.PathValue("id")+" "+string(b))
		writeJSONBody(w, 200, string(readFixture(t, "design.webhook.json")))
	})
	ctx := context.Background()
	u := "https://new.example.com/hook"
	if _, _, err := client.Webhooks.Update(ctx, "w1", &WebhookUpdateRequest{TargetURL: &u}); err != nil {
		t.Fatal(err)
	}
	subs := []Subscription{{EventType: RecordCreated}, {EventType: ListEntryUpdated, Filter: Or(NotEquals("actor.type", "system"))}}
	wh, _, err := client.Webhooks.Update(ctx, "w1", &WebhookUpdateRequest{Subscriptions: &subs})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`w1 {"data":{"target_url":"https://new.example.com/hook"}}`,
		`w1 {"data":{"subscriptions":[{"event_type":"record.created","filter":null},{"event_type":"list-entry.updated","filter":{"$or":[{"field":"actor.type","operator":"not_equals","value":"system"}]}}]}}`,
	}
	if len(bodies) != 2 || bodies[0] != want[0] || bodies[1] != want[1] {
		t.Errorf("bodies:\n%s\nwant:\n%s", strings.Join(bodies, "\n"), strings.Join(want, "\n"))
	}
	if wh.Status != WebhookDegraded || wh.Subscriptions[0].Filter.Or[1].Operator != OpNotEquals {
		t.Errorf("answer %+v", wh)
	}
}

func TestGetDeleteEscapeTheID(t *testing.T) {
	client, mux, _ := setup(t)
	var gotPath string
	mux.HandleFunc("DELETE /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.EscapedPath() + " id=" + r.PathValue("id")
		writeJSONBody(w, 200, `{}`)
	})
	resp, err := client.Webhooks.Delete(context.Background(), "a/b?c")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || gotPath != "/webhooks/a%2Fb%3Fc id=a/b?c" {
		t.Errorf("path %q", gotPath)
	}
}

func TestClientSideValidation(t *testing.T) {
	client, mux, _ := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	ctx := context.Background()
	good := []Subscription{{EventType: RecordCreated}}
	secretURL := "http://hooks.example.com/hooks/attio/s3cr3t-path"
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"nil create", func() error { _, _, err := client.Webhooks.Create(ctx, nil); return err }, "nil request"},
		{"relative url", func() error {
			_, _, err := client.Webhooks.Create(ctx, &WebhookCreateRequest{TargetURL: "/hook", Subscriptions: good})
			return err
		}, "absolute https"},
		{"http non-loopback", func() error {
			_, _, err := client.Webhooks.Create(ctx, &WebhookCreateRequest{TargetURL: secretURL, Subscriptions: good})
			return err
		}, "must use https"},
		{"ftp", func() error {
			_, _, err := client.Webhooks.Create(ctx, &WebhookCreateRequest{TargetURL: "ftp://x.test/h", Subscriptions: good})
			return err
		}, "must use https"},
		{"no subscriptions", func() error {
			_, _, err := client.Webhooks.Create(ctx, &WebhookCreateRequest{TargetURL: "https://x.test/h"})
			return err
		}, "at least one subscription"},
		{"empty event type", func() error {
			_, _, err := client.Webhooks.Create(ctx, &WebhookCreateRequest{TargetURL: "https://x.test/h", Subscriptions: []Subscription{{EventType: " "}}})
			return err
		}, "subscriptions[0]: empty event type"},
		{"invalid filter", func() error {
			_, _, err := client.Webhooks.Create(ctx, &WebhookCreateRequest{TargetURL: "https://x.test/h", Subscriptions: []Subscription{{EventType: RecordCreated, Filter: &Filter{}}}})
			return err
		}, "invalid filter"},
		{"empty id", func() error { _, _, err := client.Webhooks.Get(ctx, " "); return err }, "empty webhook id"},
		{"empty update", func() error { _, _, err := client.Webhooks.Update(ctx, "w1", &WebhookUpdateRequest{}); return err }, "nothing to update"},
		{"update empty subscriptions", func() error {
			_, _, err := client.Webhooks.Update(ctx, "w1", &WebhookUpdateRequest{Subscriptions: &[]Subscription{}})
			return err
		}, "at least one subscription"},
		{"delete empty id", func() error { _, err := client.Webhooks.Delete(ctx, ""); return err }, "empty webhook id"},
	}
	for _, tc := range cases {
		err := tc.call()
		if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrInvalidRequest containing %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: error echoes the target URL: %v", tc.name, err)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d invalid requests reached the server", calls.Load())
	}
	if errors.Is(fmt.Errorf("x: %w", ErrInvalidRequest), ErrValidation) {
		t.Error("client-side errors must not look like Attio's 400")
	}
}

func TestValidateTargetURLAllowsLoopbackHTTP(t *testing.T) {
	for _, ok := range []string{"https://example.com/h", "http://127.0.0.1:8080/hooks/attio", "http://localhost/h", "http://[::1]:9/h", "http://127.1.2.3/h"} {
		if err := ValidateTargetURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1/h", "http://localhost.evil.com/h", "https:///nohost", "mailto:x@y", "", "https://exa mple.com"} {
		if err := ValidateTargetURL(bad); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestWebhookJSONRoundTrip(t *testing.T) {
	// Decoding then encoding DESIGN's webhook keeps every field.
	var env struct{ Data Webhook }
	if err := json.Unmarshal(readFixture(t, "design.webhook.json"), &env); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(env.Data)
	if err != nil {
		t.Fatal(err)
	}
	var want struct{ Data json.RawMessage }
	json.Unmarshal(readFixture(t, "design.webhook.json"), &want)
	// created_at is re-encoded by time.Time without trailing zeros; compare the rest.
	var a, b map[string]any
	json.Unmarshal(out, &a)
	json.Unmarshal(want.Data, &b)
	delete(a, "created_at")
	delete(b, "created_at")
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	if string(ab) != string(bb) {
		t.Errorf("round trip:\n got %s\nwant %s", ab, bb)
	}
}
