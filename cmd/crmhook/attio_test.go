package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const attioTestKey = "cli-test-attio-key-77f1"

// attioCLIFake is a small, stateful stand-in for Attio's webhook API on a real
// loopback server: bearer auth, {"data": …} both ways, limit/offset, and
// Attio's error shape. It records every write body it receives.
type attioCLIFake struct {
	mu       sync.Mutex
	next     int
	webhooks []map[string]any
	writes   []string // "METHOD path body"
	srv      *httptest.Server
}

func newAttioCLIFake(t *testing.T) *attioCLIFake {
	f := &attioCLIFake{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/webhooks", f.list)
	mux.HandleFunc("POST /v2/webhooks", f.create)
	mux.HandleFunc("GET /v2/webhooks/{id}", f.get)
	mux.HandleFunc("PATCH /v2/webhooks/{id}", f.patch)
	mux.HandleFunc("DELETE /v2/webhooks/{id}", f.remove)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+attioTestKey {
			attioCLIError(w, 401, "auth_error", "unauthorized", "Invalid API token")
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.Method != http.MethodGet {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			f.writes = append(f.writes, r.Method+" "+r.URL.Path+" "+string(b))
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func attioCLIError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status_code": status, "type": typ, "code": code, "message": msg})
}

func attioCLIData(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"data": v})
}

func (f *attioCLIFake) find(id string) int {
	for i, wh := range f.webhooks {
		if wh["id"].(map[string]any)["webhook_id"] == id {
			return i
		}
	}
	return -1
}

func attioCLIPublic(wh map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range wh {
		if k != "secret" {
			out[k] = v
		}
	}
	return out
}

func (f *attioCLIFake) list(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	if limit <= 0 {
		limit = 10
	}
	page := []any{}
	for i := offset; i < len(f.webhooks) && i < offset+limit; i++ {
		page = append(page, attioCLIPublic(f.webhooks[i]))
	}
	attioCLIData(w, page)
}

func (f *attioCLIFake) create(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Data map[string]any `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Data == nil {
		attioCLIError(w, 400, "invalid_request_error", "validation_type", "body must be {data: …}")
		return
	}
	f.next++
	wh := map[string]any{
		"id":            map[string]any{"workspace_id": "ws-1", "webhook_id": fmt.Sprintf("wh-%d", f.next)},
		"target_url":    body.Data["target_url"],
		"subscriptions": body.Data["subscriptions"],
		"status":        "active",
		"created_at":    "2025-02-03T04:05:06.000000000Z",
		"secret":        fmt.Sprintf("%064x", f.next),
	}
	f.webhooks = append(f.webhooks, wh)
	attioCLIData(w, wh)
}

func (f *attioCLIFake) get(w http.ResponseWriter, r *http.Request) {
	i := f.find(r.PathValue("id"))
	if i < 0 {
		attioCLIError(w, 404, "invalid_request_error", "not_found", "Webhook with ID \""+r.PathValue("id")+"\" not found.")
		return
	}
	attioCLIData(w, attioCLIPublic(f.webhooks[i]))
}

func (f *attioCLIFake) patch(w http.ResponseWriter, r *http.Request) {
	i := f.find(r.PathValue("id"))
	if i < 0 {
		attioCLIError(w, 404, "invalid_request_error", "not_found", "not found")
		return
	}
	var body struct {
		Data map[string]any `json:"data"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	for k, v := range body.Data {
		f.webhooks[i][k] = v
	}
	attioCLIData(w, attioCLIPublic(f.webhooks[i]))
}

func (f *attioCLIFake) remove(w http.ResponseWriter, r *http.Request) {
	i := f.find(r.PathValue("id"))
	if i < 0 {
		attioCLIError(w, 404, "invalid_request_error", "not_found", "not found")
		return
	}
	f.webhooks = append(f.webhooks[:i], f.webhooks[i+1:]...)
	attioCLIData(w, map[string]any{})
}

func (f *attioCLIFake) lastWrite() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.writes) == 0 {
		return ""
	}
	return f.writes[len(f.writes)-1]
}

// runAttio runs `crmhook attio …` in-process with ATTIO_* pointing at f.
func runAttioCLI(t *testing.T, f *attioCLIFake, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if env == nil {
		env = map[string]string{"ATTIO_API_KEY": attioTestKey, "ATTIO_BASE_URL": f.srv.URL + "/v2"}
	}
	var out, errb bytes.Buffer
	err = newCLI(&out, &errb, func(k string) string { return env[k] }).run(context.Background(), append([]string{"attio"}, args...))
	return out.String(), errb.String(), err
}

func TestAttioCLICreateListGetUpdateDelete(t *testing.T) {
	f := newAttioCLIFake(t)

	// create: two events share one filter; the secret is printed once with a warning.
	out, errOut, err := runAttioCLI(t, f, nil, "webhooks", "create", "--url", "https://hooks.example.com/hooks/attio",
		"--event", "list-entry.created", "--event", "list-entry.updated", "--where", "id.list_id=L1", "--where", "actor.type!=system")
	if err != nil {
		t.Fatal(err)
	}
	wantBody := `POST /v2/webhooks {"data":{"target_url":"https://hooks.example.com/hooks/attio","subscriptions":[` +
		`{"event_type":"list-entry.created","filter":{"$and":[{"field":"id.list_id","operator":"equals","value":"L1"},{"field":"actor.type","operator":"not_equals","value":"system"}]}},` +
		`{"event_type":"list-entry.updated","filter":{"$and":[{"field":"id.list_id","operator":"equals","value":"L1"},{"field":"actor.type","operator":"not_equals","value":"system"}]}}]}}`
	if got := f.lastWrite(); got != wantBody {
		t.Errorf("create sent\n%s\nwant\n%s", got, wantBody)
	}
	secret1 := fmt.Sprintf("%064x", 1)
	if !strings.Contains(out, "secret: "+secret1) || !strings.Contains(out, "wh-1") ||
		!strings.Contains(out, "list-entry.created[id.list_id=L1 AND actor.type!=system]") {
		t.Errorf("create output:\n%s", out)
	}
	if !strings.Contains(errOut, "store the webhook secret now") {
		t.Errorf("no warning on stderr: %q", errOut)
	}

	// create --json includes the secret; --any builds $or; no filter encodes null.
	out, _, err = runAttioCLI(t, f, nil, "webhooks", "create", "--json", "--url", "http://127.0.0.1:9/hook", "--event", "record.created,note.created")
	if err != nil {
		t.Fatal(err)
	}
	var created map[string]any
	if err := json.Unmarshal([]byte(out), &created); err != nil || created["secret"] != fmt.Sprintf("%064x", 2) {
		t.Errorf("create --json: %v %s", err, out)
	}
	if !strings.Contains(f.lastWrite(), `{"event_type":"record.created","filter":null},{"event_type":"note.created","filter":null}`) {
		t.Errorf("null filters: %s", f.lastWrite())
	}
	if _, _, err := runAttioCLI(t, f, nil, "webhooks", "create", "--url", "https://x.test/h", "--event", "task.created", "--where", "actor.type=system", "--where", "actor.type=api-token", "--any"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.lastWrite(), `"filter":{"$or":[`) {
		t.Errorf("--any: %s", f.lastWrite())
	}

	// list walks every page (page size 2 over 3 webhooks) and prints a table.
	out, _, err = runAttioCLI(t, f, nil, "webhooks", "list", "--page-size", "2")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "STATUS") || !strings.Contains(lines[3], "wh-3") {
		t.Errorf("list:\n%s", out)
	}
	if strings.Contains(out, secret1) {
		t.Error("list shows a secret")
	}
	out, _, err = runAttioCLI(t, f, nil, "webhooks", "list", "--json")
	var listed []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 3 {
		t.Errorf("list --json: %v %s", err, out)
	}

	// get
	out, _, err = runAttioCLI(t, f, nil, "webhooks", "get", "wh-2", "--json")
	var got map[string]any
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got["target_url"] != "http://127.0.0.1:9/hook" {
		t.Errorf("get: %v %s", err, out)
	}

	// update --url sends only the URL.
	if _, _, err := runAttioCLI(t, f, nil, "webhooks", "update", "wh-2", "--url", "https://new.example.com/h"); err != nil {
		t.Fatal(err)
	}
	if got := f.lastWrite(); got != `PATCH /v2/webhooks/wh-2 {"data":{"target_url":"https://new.example.com/h"}}` {
		t.Errorf("update --url sent %s", got)
	}
	// update with only a filter keeps the current event types.
	if _, _, err := runAttioCLI(t, f, nil, "webhooks", "update", "wh-2", "--where", "parent_object_id=O1"); err != nil {
		t.Fatal(err)
	}
	want := `PATCH /v2/webhooks/wh-2 {"data":{"subscriptions":[{"event_type":"record.created","filter":{"$and":[{"field":"parent_object_id","operator":"equals","value":"O1"}]}},{"event_type":"note.created","filter":{"$and":[{"field":"parent_object_id","operator":"equals","value":"O1"}]}}]}}`
	if got := f.lastWrite(); got != want {
		t.Errorf("update --where sent\n%s\nwant\n%s", got, want)
	}
	// update --event replaces the list, with a JSON filter.
	out, _, err = runAttioCLI(t, f, nil, "webhooks", "update", "wh-2", "--event", "task.deleted", "--filter-json", `{"$or":[{"field":"actor.type","operator":"equals","value":"system"}]}`)
	if err != nil || !strings.Contains(out, "task.deleted[actor.type=system]") {
		t.Errorf("update --event: %v\n%s", err, out)
	}

	// delete, then get is a one-line not-found error.
	out, _, err = runAttioCLI(t, f, nil, "webhooks", "delete", "wh-2")
	if err != nil || out != "deleted webhook wh-2\n" {
		t.Errorf("delete: %v %q", err, out)
	}
	_, _, err = runAttioCLI(t, f, nil, "webhooks", "get", "wh-2")
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "\n") {
		t.Errorf("get deleted: %v", err)
	}
}

func TestAttioCLIErrors(t *testing.T) {
	f := newAttioCLIFake(t)
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no api key", map[string]string{"ATTIO_BASE_URL": f.srv.URL + "/v2"}, []string{"webhooks", "list"}, "ATTIO_API_KEY"},
		{"wrong api key", map[string]string{"ATTIO_API_KEY": "wrong", "ATTIO_BASE_URL": f.srv.URL + "/v2"}, []string{"webhooks", "list"}, "401 Unauthorized (unauthorized): Invalid API token"},
		{"no url", nil, []string{"webhooks", "create", "--event", "record.created"}, "--url is required"},
		{"no event", nil, []string{"webhooks", "create", "--url", "https://x.test/h"}, "at least one --event"},
		{"unknown event", nil, []string{"webhooks", "create", "--url", "https://x.test/h", "--event", "record.creatd"}, `unknown event type "record.creatd"`},
		{"http target", nil, []string{"webhooks", "create", "--url", "http://hooks.example.com/h", "--event", "record.created"}, "must use https"},
		{"bad where", nil, []string{"webhooks", "create", "--url", "https://x.test/h", "--event", "record.created", "--where", "id.list_id"}, "no = or !="},
		{"where and json", nil, []string{"webhooks", "create", "--url", "https://x.test/h", "--event", "record.created", "--where", "a=b", "--filter-json", "null"}, "either --where or --filter-json"},
		{"bad json filter", nil, []string{"webhooks", "create", "--url", "https://x.test/h", "--event", "record.created", "--filter-json", `{"list":{"$eq":"x"}}`}, "invalid filter"},
		{"any alone", nil, []string{"webhooks", "create", "--url", "https://x.test/h", "--event", "record.created", "--any"}, "--any needs --where"},
		{"empty update", nil, []string{"webhooks", "update", "wh-1"}, "nothing to update"},
		{"bad base url", map[string]string{"ATTIO_API_KEY": attioTestKey, "ATTIO_BASE_URL": "localhost:7702"}, []string{"webhooks", "list"}, "base URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runAttioCLI(t, f, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), attioTestKey) {
				t.Errorf("error is not one clean line: %q", err)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.writes) != 0 {
		t.Errorf("refused commands reached the API: %v", f.writes)
	}
}

func TestAttioCLIFlagsOverrideEnv(t *testing.T) {
	f := newAttioCLIFake(t)
	env := map[string]string{"ATTIO_API_KEY": "wrong", "ATTIO_BASE_URL": "http://127.0.0.1:1/v2"}
	_, errOut, err := runAttioCLI(t, f, env, "--api-key", attioTestKey, "--base-url", f.srv.URL+"/v2",
		"webhooks", "create", "--url", "https://x.test/h", "--event", "comment.updated", "--allow-unknown")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "comment.updated is not in Attio's webhook reference") {
		t.Errorf("no seed-type warning: %q", errOut)
	}
	if _, _, err := runAttioCLI(t, f, env, "--api-key", attioTestKey, "--base-url", f.srv.URL+"/v2",
		"webhooks", "create", "--url", "https://x.test/h", "--event", "deal.exploded", "--allow-unknown"); err != nil {
		t.Errorf("--allow-unknown: %v", err)
	}
}
