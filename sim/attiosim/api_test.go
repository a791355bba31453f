package attiosim

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook/internal/clocktest"
)

func TestAuthRequiresBearerToken(t *testing.T) {
	_, base := setup(t, Config{Token: "tok-123"})
	for name, auth := range map[string]string{
		"none":         "",
		"wrong token":  "Bearer tok-124",
		"basic scheme": "Basic tok-123",
		"no scheme":    "tok-123",
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, base+"/v2/webhooks", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", resp.StatusCode)
			}
		})
	}
	status, _, out := api(t, http.MethodGet, base+"/v2/webhooks", "nope", "")
	if status != http.StatusUnauthorized {
		t.Fatalf("status = %d", status)
	}
	wantAPIError(t, out, 401, "auth_error", "unauthorized")
	if msg := out["message"].(string); !strings.Contains(msg, "Bearer <token>") {
		t.Fatalf("message %q: want it to say how to authenticate", msg)
	}
	if status, _, _ := api(t, http.MethodGet, base+"/v2/webhooks", "tok-123", ""); status != http.StatusOK {
		t.Fatalf("right token: status = %d, want 200", status)
	}
}

func TestCreateReturnsSecretOnlyOnce(t *testing.T) {
	clock := clocktest.New(testStart)
	sim, base := setup(t, Config{Now: clock.Now})
	status, _, out := api(t, http.MethodPost, base+"/v2/webhooks", DefaultToken, `{"data":{
		"target_url": "https://example.com/hooks/attio",
		"subscriptions": [
			{"event_type": "record.created", "filter": null},
			{"event_type": "list-entry.created", "filter": {"$and": [{"field": "id.list_id", "operator": "equals", "value": "L1"}]}}
		]}}`)
	if status != http.StatusOK {
		t.Fatalf("create: %d %v", status, out)
	}
	data := out["data"].(map[string]any)
	id := data["id"].(map[string]any)
	webhookID, _ := id["webhook_id"].(string)
	if !isUUID(webhookID) || id["workspace_id"] != DefaultWorkspaceID {
		t.Fatalf("id = %v, want a UUID webhook_id in workspace %s", id, DefaultWorkspaceID)
	}
	if secret, _ := data["secret"].(string); len(secret) < 32 {
		t.Fatalf("create answer has secret %q, want a long random one", secret)
	}
	if data["status"] != "active" || data["target_url"] != "https://example.com/hooks/attio" {
		t.Fatalf("webhook = %v", data)
	}
	if data["created_at"] != clock.Now().Format(time.RFC3339Nano) {
		t.Fatalf("created_at = %v, want %s", data["created_at"], clock.Now().Format(time.RFC3339Nano))
	}
	subs := data["subscriptions"].([]any)
	if len(subs) != 2 || subs[0].(map[string]any)["filter"] != nil {
		t.Fatalf("subscriptions = %v", subs)
	}
	f := subs[1].(map[string]any)["filter"].(map[string]any)["$and"].([]any)[0].(map[string]any)
	if f["field"] != "id.list_id" || f["operator"] != "equals" || f["value"] != "L1" {
		t.Fatalf("filter = %v", f)
	}

	_, _, got := api(t, http.MethodGet, base+"/v2/webhooks/"+webhookID, DefaultToken, "")
	if _, has := got["data"].(map[string]any)["secret"]; has {
		t.Fatalf("GET shows the secret: %v", got)
	}
	_, _, list := api(t, http.MethodGet, base+"/v2/webhooks", DefaultToken, "")
	for _, wh := range list["data"].([]any) {
		if _, has := wh.(map[string]any)["secret"]; has {
			t.Fatalf("list shows the secret: %v", wh)
		}
	}
	if whs := sim.Webhooks(); len(whs) != 1 || whs[0].Secret != "" || whs[0].ID.WebhookID != webhookID {
		t.Fatalf("Webhooks() = %+v", whs)
	}

	// Two webhooks never share a secret.
	_, secret1 := createWebhook(t, base, "https://example.com/a", `[{"event_type":"task.created","filter":null}]`)
	_, secret2 := createWebhook(t, base, "https://example.com/a", `[{"event_type":"task.created","filter":null}]`)
	if secret1 == secret2 {
		t.Fatal("two webhooks got the same secret")
	}
}

func TestCreateValidation(t *testing.T) {
	_, base := setup(t, Config{})
	sub := `[{"event_type":"record.created","filter":null}]`
	cases := []struct {
		name, body, wantInMessage string
	}{
		{"not json", `{"data":`, "JSON object"},
		{"no data", `{}`, "data: required"},
		{"unknown top key", `{"data":{"target_url":"https://x.test","subscriptions":` + sub + `},"extra":1}`, "JSON object"},
		{"unknown data key", `{"data":{"target_url":"https://x.test","subscriptions":` + sub + `,"secret":"s"}}`, `unknown field "secret"`},
		{"no target", `{"data":{"subscriptions":` + sub + `}}`, "data.target_url: required"},
		{"http public host", `{"data":{"target_url":"http://example.com/h","subscriptions":` + sub + `}}`, "data.target_url"},
		{"relative target", `{"data":{"target_url":"/hooks","subscriptions":` + sub + `}}`, "data.target_url"},
		{"ftp target", `{"data":{"target_url":"ftp://example.com/h","subscriptions":` + sub + `}}`, "data.target_url"},
		{"target not a string", `{"data":{"target_url":5,"subscriptions":` + sub + `}}`, "target_url: must be a string"},
		{"no subscriptions", `{"data":{"target_url":"https://x.test"}}`, "data.subscriptions: required"},
		{"empty subscriptions", `{"data":{"target_url":"https://x.test","subscriptions":[]}}`, "at least one"},
		{"unknown event type", `{"data":{"target_url":"https://x.test","subscriptions":[{"event_type":"record.exploded","filter":null}]}}`, `data.subscriptions[0].event_type: unknown event type "record.exploded"`},
		{"missing event type", `{"data":{"target_url":"https://x.test","subscriptions":[{"filter":null}]}}`, "data.subscriptions[0].event_type: required"},
		{"unknown sub key", `{"data":{"target_url":"https://x.test","subscriptions":[{"event_type":"record.created","filters":null}]}}`, "data.subscriptions[0]: unknown field"},
		{"empty $and", `{"data":{"target_url":"https://x.test","subscriptions":[{"event_type":"record.created","filter":{"$and":[]}}]}}`, "data.subscriptions[0].filter"},
		{"both $and and $or", `{"data":{"target_url":"https://x.test","subscriptions":[{"event_type":"record.created","filter":{"$and":[{"field":"a","operator":"equals","value":"b"}],"$or":[{"field":"a","operator":"equals","value":"b"}]}}]}}`, "data.subscriptions[0].filter"},
		{"bad operator", `{"data":{"target_url":"https://x.test","subscriptions":[{"event_type":"record.created","filter":null},{"event_type":"record.updated","filter":{"$or":[{"field":"actor.type","operator":"contains","value":"x"}]}}]}}`, "data.subscriptions[1].filter"},
		{"empty path segment", `{"data":{"target_url":"https://x.test","subscriptions":[{"event_type":"record.created","filter":{"$and":[{"field":"id..list_id","operator":"equals","value":"x"}]}}]}}`, "data.subscriptions[0].filter"},
		{"unknown filter key", `{"data":{"target_url":"https://x.test","subscriptions":[{"event_type":"record.created","filter":{"list":{"$eq":"x"}}}]}}`, "data.subscriptions[0].filter"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, out := api(t, http.MethodPost, base+"/v2/webhooks", DefaultToken, tc.body)
			if status != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400: %v", status, out)
			}
			wantAPIError(t, out, 400, "invalid_request_error", "validation_type")
			if msg := out["message"].(string); !strings.Contains(msg, tc.wantInMessage) {
				t.Fatalf("message = %q, want it to contain %q", msg, tc.wantInMessage)
			}
		})
	}
	// Nothing invalid was stored.
	_, _, list := api(t, http.MethodGet, base+"/v2/webhooks", DefaultToken, "")
	if n := len(list["data"].([]any)); n != 0 {
		t.Fatalf("%d webhooks stored after invalid creates", n)
	}
}

func TestCreateAcceptsLoopbackHTTPAndAbsentFilter(t *testing.T) {
	_, base := setup(t, Config{})
	for _, u := range []string{"http://127.0.0.1:9/h", "http://localhost/h", "http://[::1]:8080/h", "https://example.com/h"} {
		status, _, out := api(t, http.MethodPost, base+"/v2/webhooks", DefaultToken,
			`{"data":{"target_url":`+quoteJSON(u)+`,"subscriptions":[{"event_type":"note.created"}]}}`)
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %v", u, status, out)
		}
		sub := out["data"].(map[string]any)["subscriptions"].([]any)[0].(map[string]any)
		if v, has := sub["filter"]; !has || v != nil {
			t.Fatalf("absent filter shows as %v (present %v), want null", v, has)
		}
	}
}

func TestListPaging(t *testing.T) {
	_, base := setup(t, Config{})
	var ids []string
	for i := range 12 {
		id, _ := createWebhook(t, base, fmt.Sprintf("https://example.com/%d", i), `[{"event_type":"task.created","filter":null}]`)
		ids = append(ids, id)
	}
	page := func(query string) []string {
		t.Helper()
		status, _, out := api(t, http.MethodGet, base+"/v2/webhooks"+query, DefaultToken, "")
		if status != http.StatusOK {
			t.Fatalf("list %s: %d %v", query, status, out)
		}
		var got []string
		for _, wh := range out["data"].([]any) {
			got = append(got, wh.(map[string]any)["id"].(map[string]any)["webhook_id"].(string))
		}
		return got
	}
	if got := page(""); fmt.Sprint(got) != fmt.Sprint(ids[:10]) {
		t.Fatalf("default page = %v, want the 10 oldest %v", got, ids[:10])
	}
	if got := page("?limit=5&offset=3"); fmt.Sprint(got) != fmt.Sprint(ids[3:8]) {
		t.Fatalf("limit=5 offset=3 = %v, want %v", got, ids[3:8])
	}
	if got := page("?limit=100&offset=10"); fmt.Sprint(got) != fmt.Sprint(ids[10:]) {
		t.Fatalf("last page = %v, want %v", got, ids[10:])
	}
	if got := page("?offset=50"); len(got) != 0 {
		t.Fatalf("past the end = %v, want an empty page", got)
	}
	for _, q := range []string{"?limit=0", "?limit=101", "?limit=x", "?offset=-1", "?offset=1.5"} {
		status, _, out := api(t, http.MethodGet, base+"/v2/webhooks"+q, DefaultToken, "")
		if status != http.StatusBadRequest {
			t.Fatalf("%s: status %d, want 400", q, status)
		}
		wantAPIError(t, out, 400, "invalid_request_error", "validation_type")
	}
}

func TestUpdateAndDelete(t *testing.T) {
	_, base := setup(t, Config{})
	id, _ := createWebhook(t, base, "https://example.com/old", `[{"event_type":"task.created","filter":null}]`)
	url := base + "/v2/webhooks/" + id

	status, _, out := api(t, http.MethodPatch, url, DefaultToken, `{"data":{"target_url":"https://example.com/new"}}`)
	if status != http.StatusOK {
		t.Fatalf("patch url: %d %v", status, out)
	}
	data := out["data"].(map[string]any)
	if data["target_url"] != "https://example.com/new" || len(data["subscriptions"].([]any)) != 1 {
		t.Fatalf("after patching the URL: %v (subscriptions must be kept)", data)
	}
	if _, has := data["secret"]; has {
		t.Fatal("PATCH answer shows the secret")
	}

	status, _, out = api(t, http.MethodPatch, url, DefaultToken,
		`{"data":{"subscriptions":[{"event_type":"note.created","filter":null},{"event_type":"note.deleted","filter":{"$or":[{"field":"actor.type","operator":"not_equals","value":"system"}]}}]}}`)
	if status != http.StatusOK {
		t.Fatalf("patch subscriptions: %d %v", status, out)
	}
	data = out["data"].(map[string]any)
	subs := data["subscriptions"].([]any)
	if data["target_url"] != "https://example.com/new" || len(subs) != 2 || subs[1].(map[string]any)["event_type"] != "note.deleted" {
		t.Fatalf("after patching subscriptions: %v", data)
	}

	for name, body := range map[string]string{
		"nothing":     `{"data":{}}`,
		"bad url":     `{"data":{"target_url":"http://example.com"}}`,
		"bad filter":  `{"data":{"subscriptions":[{"event_type":"note.created","filter":{"$or":[]}}]}}`,
		"bad type":    `{"data":{"subscriptions":[{"event_type":"nope","filter":null}]}}`,
		"unknown key": `{"data":{"status":"active"}}`,
	} {
		status, _, out := api(t, http.MethodPatch, url, DefaultToken, body)
		if status != http.StatusBadRequest {
			t.Fatalf("patch %s: status %d, want 400: %v", name, status, out)
		}
	}
	_, _, got := api(t, http.MethodGet, url, DefaultToken, "")
	if got["data"].(map[string]any)["target_url"] != "https://example.com/new" {
		t.Fatalf("an invalid PATCH changed the webhook: %v", got)
	}

	status, _, out = api(t, http.MethodDelete, url, DefaultToken, "")
	if status != http.StatusOK || len(out) != 0 {
		t.Fatalf("delete: %d %v, want 200 {}", status, out)
	}
	for _, method := range []string{http.MethodGet, http.MethodPatch, http.MethodDelete} {
		status, _, out := api(t, method, url, DefaultToken, `{"data":{"target_url":"https://example.com"}}`)
		if status != http.StatusNotFound {
			t.Fatalf("%s after delete: %d, want 404", method, status)
		}
		wantAPIError(t, out, 404, "invalid_request_error", "not_found")
	}
}

func TestRoutingErrors(t *testing.T) {
	_, base := setup(t, Config{})
	status, hdr, out := api(t, http.MethodPut, base+"/v2/webhooks", DefaultToken, `{}`)
	if status != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET, POST" {
		t.Fatalf("PUT /v2/webhooks: %d Allow %q", status, hdr.Get("Allow"))
	}
	wantAPIError(t, out, 405, "invalid_request_error", "method_not_allowed")
	if status, _, _ := api(t, http.MethodGet, base+"/v2/objects", DefaultToken, ""); status != http.StatusNotFound {
		t.Fatalf("unknown endpoint: %d, want 404", status)
	}
	if status, _, _ := api(t, http.MethodGet, base+"/v2/webhooks/a/b", DefaultToken, ""); status != http.StatusNotFound {
		t.Fatalf("nested path: %d, want 404", status)
	}
}

func TestRateLimits(t *testing.T) {
	clock := clocktest.New(testStart) // frozen: the buckets never refill during the test
	_, base := setup(t, Config{Now: clock.Now, ReadRate: 3, WriteRate: 2})
	for i := range 3 {
		if status, _, _ := api(t, http.MethodGet, base+"/v2/webhooks", DefaultToken, ""); status != http.StatusOK {
			t.Fatalf("read %d: status %d", i, status)
		}
	}
	status, hdr, out := api(t, http.MethodGet, base+"/v2/webhooks", DefaultToken, "")
	if status != http.StatusTooManyRequests {
		t.Fatalf("4th read: status %d, want 429", status)
	}
	wantAPIError(t, out, 429, "rate_limit_error", "rate_limit_exceeded")
	at, err := http.ParseTime(hdr.Get("Retry-After"))
	if err != nil {
		t.Fatalf("Retry-After %q is not an HTTP date: %v", hdr.Get("Retry-After"), err)
	}
	// One token comes back after 1/3 s; the date is rounded up to a second.
	if want := clock.Now().Add(time.Second); !at.Equal(want) {
		t.Fatalf("Retry-After = %s, want %s", at, want)
	}

	// Writes have their own budget, untouched by the reads.
	for i := range 2 {
		status, _, out := api(t, http.MethodPost, base+"/v2/webhooks", DefaultToken,
			`{"data":{"target_url":"https://example.com","subscriptions":[{"event_type":"task.created","filter":null}]}}`)
		if status != http.StatusOK {
			t.Fatalf("write %d: %d %v", i, status, out)
		}
	}
	if status, _, _ := api(t, http.MethodDelete, base+"/v2/webhooks/x", DefaultToken, ""); status != http.StatusTooManyRequests {
		t.Fatalf("3rd write: status %d, want 429", status)
	}

	// Time passing refills the buckets.
	clock.Advance(time.Second)
	if status, _, _ := api(t, http.MethodGet, base+"/v2/webhooks", DefaultToken, ""); status != http.StatusOK {
		t.Fatalf("read after a second: status %d", status)
	}
	// Unauthenticated requests are refused before they cost anything, and
	// the /_sim/ endpoints are not limited.
	for range 5 {
		api(t, http.MethodGet, base+"/_sim/healthz", "", "")
		api(t, http.MethodGet, base+"/v2/webhooks", "wrong-token", "")
	}
	if status, _, _ := api(t, http.MethodGet, base+"/v2/webhooks", DefaultToken, ""); status != http.StatusOK {
		t.Fatalf("second read after a second: status %d", status)
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Token != DefaultToken || cfg.WorkspaceID != DefaultWorkspaceID || cfg.ReadRate != 100 || cfg.WriteRate != 25 ||
		cfg.MaxRetries != 10 || cfg.TimeScale != 1 || cfg.InactiveAfter != 7*24*time.Hour || cfg.HTTPClient == nil || cfg.Now == nil {
		t.Fatalf("defaults = %+v", cfg)
	}
	// The default schedule spreads 10 retries over about 3 days.
	if span := cfg.InitialBackoff * (1<<cfg.MaxRetries - 1); span < 70*time.Hour || span > 76*time.Hour {
		t.Fatalf("default retries span %s, want about 3 days", span)
	}

	_, err = New(Config{Token: "has space", WorkspaceID: "ws", ReadRate: -1, TimeScale: -2, MaxRetries: -1, DeliveryTimeout: -time.Second})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
	for _, field := range []string{"Config.Token", "Config.WorkspaceID", "Config.ReadRate", "Config.TimeScale", "Config.MaxRetries", "Config.DeliveryTimeout"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	if strings.Contains(err.Error(), "has space") {
		t.Error("the error echoes the token")
	}
}
