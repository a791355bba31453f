package affinity

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// recorder keeps the last write request a handler saw.
type recorder struct {
	mu                  sync.Mutex
	method, path, ctype string
	body                string
	n                   int
}

func (rec *recorder) handler(t *testing.T, status int, answer []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		rec.mu.Lock()
		rec.method, rec.path, rec.ctype, rec.body = r.Method, r.URL.Path, r.Header.Get("Content-Type"), string(b)
		rec.n++
		rec.mu.Unlock()
		writeBody(w, status, "application/json", answer)
	}
}

func (rec *recorder) last() (method, path, ctype, body string, n int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.method, rec.path, rec.ctype, rec.body, rec.n
}

func TestWebhookListAndGetDecodeTheReferenceExamples(t *testing.T) {
	client, mux, _ := setup(t)
	mux.HandleFunc("GET /webhook", func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, 200, "application/json", fixture(t, "webhook.list.json"))
	})
	mux.HandleFunc("GET /webhook/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "1234" {
			writeBody(w, 404, "application/json", []byte(`{"message":"Not found"}`))
			return
		}
		writeBody(w, 200, "application/json", fixture(t, "webhook.get.json"))
	})
	ctx := context.Background()

	whs, resp, err := client.Webhooks.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if resp == nil || resp.StatusCode != 200 {
		t.Errorf("response = %v", resp)
	}
	want := []*Webhook{
		{ID: 1234, WebhookURL: "https://hooks.example.com/webhook-create",
			Subscriptions: []EventType{ListCreated, PersonCreated, OrganizationCreated, OpportunityCreated}, CreatedBy: 5678},
		{ID: 2345, WebhookURL: "https://hooks.example.com/webhook-all", Subscriptions: []EventType{}, Disabled: true, CreatedBy: 5678},
	}
	if !reflect.DeepEqual(whs, want) {
		t.Errorf("list = %+v %+v", *whs[0], *whs[1])
	}
	if whs[0].AllEvents() || !whs[1].AllEvents() || !whs[1].Wants(FileDeleted) || whs[0].Wants(FileDeleted) || !whs[0].Wants(PersonCreated) {
		t.Error("AllEvents/Wants disagree with the subscriptions")
	}

	wh, _, err := client.Webhooks.Get(ctx, 1234)
	if err != nil {
		t.Fatal(err)
	}
	wantGet := &Webhook{ID: 1234, WebhookURL: "https://hooks.example.com/webhook",
		Subscriptions: []EventType{ListCreated, PersonCreated, OrganizationCreated, OpportunityCreated}, CreatedBy: 5678}
	if !reflect.DeepEqual(wh, wantGet) {
		t.Errorf("get = %+v", wh)
	}
	// Re-encoding gives the reference JSON back (field names and order).
	got, _ := json.Marshal(wh)
	var compact, ref any
	json.Unmarshal(got, &compact)
	json.Unmarshal(fixture(t, "webhook.json"), &ref)
	if !reflect.DeepEqual(compact, ref) {
		t.Errorf("re-encoded %s, want the reference object", got)
	}

	if _, _, err := client.Webhooks.Get(ctx, 999); !errors.Is(err, ErrNotFound) || err.Error() != "affinity: get webhook 999: 404 Not Found: Not found" {
		t.Errorf("missing webhook: %v", err)
	}
}

func TestWebhookCreateRequestShape(t *testing.T) {
	client, mux, _ := setup(t)
	rec := &recorder{}
	mux.HandleFunc("POST /webhook/subscribe", rec.handler(t, 200, fixture(t, "webhook.create.json")))
	ctx := context.Background()

	cases := []struct {
		name string
		req  *CreateWebhookRequest
		want string
	}{
		{"all events omits subscriptions", &CreateWebhookRequest{WebhookURL: "https://hooks.example.com/webhook"},
			`{"webhook_url":"https://hooks.example.com/webhook"}`},
		{"empty non-nil list is still omitted", &CreateWebhookRequest{WebhookURL: "https://h.test/x", Subscriptions: []EventType{}},
			`{"webhook_url":"https://h.test/x"}`},
		{"chosen events", &CreateWebhookRequest{WebhookURL: "https://h.test/x", Subscriptions: []EventType{FieldValueUpdated, ListEntryCreated, "brand.new"}},
			`{"webhook_url":"https://h.test/x","subscriptions":["field_value.updated","list_entry.created","brand.new"]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wh, _, err := client.Webhooks.Create(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			method, path, ctype, body, _ := rec.last()
			if method != http.MethodPost || path != "/webhook/subscribe" || ctype != "application/json" || body != tc.want {
				t.Errorf("sent %s %s (%s) %s, want %s", method, path, ctype, body, tc.want)
			}
			want := &Webhook{ID: 1234, WebhookURL: "https://hooks.example.com/webhook", Subscriptions: []EventType{}, CreatedBy: 5678}
			if !reflect.DeepEqual(wh, want) {
				t.Errorf("created = %+v", wh)
			}
		})
	}

	// Refused before sending.
	_, _, _, _, before := rec.last()
	for name, req := range map[string]*CreateWebhookRequest{
		"nil":         nil,
		"no URL":      {WebhookURL: "  "},
		"empty event": {WebhookURL: "https://h.test/x", Subscriptions: []EventType{PersonCreated, ""}},
	} {
		if _, _, err := client.Webhooks.Create(ctx, req); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: err = %v, want ErrInvalidRequest", name, err)
		}
	}
	if _, _, _, _, after := rec.last(); after != before {
		t.Errorf("refused creates reached the server (%d requests)", after-before)
	}
}

func TestWebhookUpdateSendsOnlyGivenFields(t *testing.T) {
	client, mux, _ := setup(t)
	rec := &recorder{}
	mux.HandleFunc("PUT /webhook/{id}", rec.handler(t, 200, fixture(t, "webhook.update.json")))
	ctx := context.Background()
	url := "https://hooks.example.com/webhook"
	yes, no := true, false
	events := []EventType{PersonCreated, NoteCreated}
	empty := []EventType{}
	var nilList []EventType

	cases := []struct {
		name string
		req  *UpdateWebhookRequest
		want string
	}{
		{"url only", &UpdateWebhookRequest{WebhookURL: &url}, `{"webhook_url":"https://hooks.example.com/webhook"}`},
		{"events only", &UpdateWebhookRequest{Subscriptions: &events}, `{"subscriptions":["person.created","note.created"]}`},
		{"all events (empty)", &UpdateWebhookRequest{Subscriptions: &empty}, `{"subscriptions":[]}`},
		{"all events (nil slice)", &UpdateWebhookRequest{Subscriptions: &nilList}, `{"subscriptions":[]}`},
		{"disabled false is sent", &UpdateWebhookRequest{Disabled: &no}, `{"disabled":false}`},
		{"everything", &UpdateWebhookRequest{WebhookURL: &url, Subscriptions: &events, Disabled: &yes},
			`{"webhook_url":"https://hooks.example.com/webhook","subscriptions":["person.created","note.created"],"disabled":true}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wh, _, err := client.Webhooks.Update(ctx, 1234, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			method, path, ctype, body, _ := rec.last()
			if method != http.MethodPut || path != "/webhook/1234" || ctype != "application/json" || body != tc.want {
				t.Errorf("sent %s %s (%s) %s, want %s", method, path, ctype, body, tc.want)
			}
			if wh.ID != 1234 || !wh.Disabled {
				t.Errorf("updated = %+v", wh)
			}
		})
	}

	if _, _, err := client.Webhooks.Disable(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if _, path, _, body, _ := rec.last(); path != "/webhook/7" || body != `{"disabled":true}` {
		t.Errorf("disable sent %s %s", path, body)
	}
	if _, _, err := client.Webhooks.Enable(ctx, 8); err != nil {
		t.Fatal(err)
	}
	if _, path, _, body, _ := rec.last(); path != "/webhook/8" || body != `{"disabled":false}` {
		t.Errorf("enable sent %s %s", path, body)
	}

	_, _, _, _, before := rec.last()
	blank := " "
	bad := []struct {
		id  int64
		req *UpdateWebhookRequest
	}{
		{1234, nil},
		{1234, &UpdateWebhookRequest{}},
		{1234, &UpdateWebhookRequest{WebhookURL: &blank}},
		{1234, &UpdateWebhookRequest{Subscriptions: &[]EventType{""}}},
		{0, &UpdateWebhookRequest{Disabled: &yes}},
		{-5, &UpdateWebhookRequest{Disabled: &yes}},
	}
	for _, b := range bad {
		if _, _, err := client.Webhooks.Update(ctx, b.id, b.req); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("update %d %+v: err = %v, want ErrInvalidRequest", b.id, b.req, err)
		}
	}
	if _, _, err := client.Webhooks.Enable(ctx, 0); !errors.Is(err, ErrInvalidRequest) || err.Error() != "affinity: enable webhook: webhook id must be a positive integer, got 0" {
		t.Errorf("enable 0: %v", err)
	}
	if _, _, _, _, after := rec.last(); after != before {
		t.Errorf("refused updates reached the server (%d requests)", after-before)
	}
}

func TestWebhookDelete(t *testing.T) {
	client, mux, _ := setup(t)
	rec := &recorder{}
	mux.HandleFunc("DELETE /webhook/{id}", rec.handler(t, 200, fixture(t, "webhook.delete.json")))
	resp, err := client.Webhooks.Delete(context.Background(), 1234)
	if err != nil {
		t.Fatal(err)
	}
	if method, path, _, body, _ := rec.last(); method != http.MethodDelete || path != "/webhook/1234" || body != "" || resp.StatusCode != 200 {
		t.Errorf("sent %s %s %q", method, path, body)
	}
	if _, err := client.Webhooks.Delete(context.Background(), 0); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("delete 0: %v", err)
	}
}

func TestWebhookJSONForScripts(t *testing.T) {
	// An all-events subscription encodes as [] (what Affinity shows), never null.
	b, err := json.Marshal(&Webhook{ID: 1, WebhookURL: "https://x.test", CreatedBy: 2, Subscriptions: []EventType{}})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"id":1,"webhook_url":"https://x.test","subscriptions":[],"disabled":false,"created_by":2}` {
		t.Errorf("encoded %s", b)
	}
}

func TestValidateWebhookURL(t *testing.T) {
	ok := []string{
		"https://hooks.example.com/hooks/affinity/long-random-secret",
		"https://hooks.example.com:8443/h?x=1",
		"HTTPS://hooks.example.com/h",
		"http://127.0.0.1:8080/hooks/affinity/s",
		"http://127.9.8.7/h",
		"http://[::1]:8080/h",
		"http://localhost:8080/h",
		"http://LocalHost/h",
	}
	for _, u := range ok {
		if err := ValidateWebhookURL(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	const secret = "long-random-secret"
	bad := []string{
		"", "   ",
		"http://hooks.example.com/" + secret, // plain http, not loopback
		"http://10.0.0.1/" + secret,          // private is not loopback
		"http://localhost.example.com/" + secret,
		"http://[::2]/" + secret,
		"ftp://hooks.example.com/" + secret,
		"hooks.example.com/" + secret,          // not absolute
		"/hooks/affinity/" + secret,            // relative
		"https:///" + secret,                   // no host
		"https:opaque/" + secret,               // opaque
		"https://exa mple.com/" + secret,       // unparsable
		" https://hooks.example.com/" + secret, // leading space
	}
	for _, u := range bad {
		err := ValidateWebhookURL(u)
		if !errors.Is(err, ErrInvalidWebhookURL) || !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%q: %v", u, err)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "example.com") {
			t.Errorf("error quotes the URL: %v", err)
		}
	}
}

// Create and Update refuse a URL Affinity would be asked to POST events to
// in clear text, before any request reaches the API.
func TestWebhookCreateAndUpdateCheckTheURL(t *testing.T) {
	client, mux, _ := setup(t)
	rec := &recorder{}
	mux.HandleFunc("POST /webhook/subscribe", rec.handler(t, 200, fixture(t, "webhook.create.json")))
	mux.HandleFunc("PUT /webhook/{id}", rec.handler(t, 200, fixture(t, "webhook.update.json")))
	ctx := context.Background()
	for _, u := range []string{"http://hooks.example.com/h", "ftp://x.test/h", "/relative", ""} {
		if _, _, err := client.Webhooks.Create(ctx, &CreateWebhookRequest{WebhookURL: u}); !errors.Is(err, ErrInvalidWebhookURL) ||
			!strings.HasPrefix(err.Error(), "affinity: create webhook: invalid webhook URL: ") {
			t.Errorf("create %q: %v", u, err)
		}
		if _, _, err := client.Webhooks.Update(ctx, 1234, &UpdateWebhookRequest{WebhookURL: &u}); !errors.Is(err, ErrInvalidWebhookURL) ||
			!strings.HasPrefix(err.Error(), "affinity: update webhook 1234: invalid webhook URL: ") {
			t.Errorf("update %q: %v", u, err)
		}
	}
	if _, _, _, _, n := rec.last(); n != 0 {
		t.Fatalf("%d refused calls reached the API", n)
	}
	// Loopback over plain http is fine (a local receiver, the simulator).
	local := "http://127.0.0.1:8080/hooks/affinity/s"
	if _, _, err := client.Webhooks.Create(ctx, &CreateWebhookRequest{WebhookURL: local}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := client.Webhooks.Update(ctx, 1234, &UpdateWebhookRequest{WebhookURL: &local}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, n := rec.last(); n != 2 {
		t.Errorf("%d calls reached the API, want 2", n)
	}
}
