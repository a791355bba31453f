package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/sim/affinitysim"
)

// fields collapses a table line's column padding.
func fields(line string) string { return strings.Join(strings.Fields(line), " ") }

func TestAffinityCLIV2Lifecycle(t *testing.T) {
	s := newAffinityCLISim(t)
	first, second := s.hookURL("first-secret"), s.hookURL("second-secret")

	// create: POST /v2/webhooks with both keys, bearer auth without --bearer, a table.
	out, _, err := runAffinityCLI(t, s, nil, "webhooks", "create", "--api", "v2", "--url", first, "--event", "person.created,list_entry.created")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.lastWrite(), `POST /v2/webhooks {"url":"`+first+`","subscriptions":["person.created","list_entry.created"]}`; got != want {
		t.Errorf("create sent\n%s\nwant\n%s", got, want)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || fields(lines[0]) != "ID URL SUBSCRIPTIONS STATUS CREATED BY CREATED UPDATED" ||
		!strings.HasPrefix(lines[1], "1001 ") || !strings.Contains(lines[1], first) ||
		!strings.Contains(lines[1], "person.created, list_entry.created") || !strings.Contains(fields(lines[1]), " active 1 ") ||
		!strings.HasSuffix(lines[1], " -") {
		t.Errorf("create output:\n%s", out)
	}

	// create --json without events: subscriptions [] is sent (the key is required).
	out, _, err = runAffinityCLI(t, s, nil, "--api", "v2", "webhooks", "create", "--json", "--url", second)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.lastWrite(), `POST /v2/webhooks {"url":"`+second+`","subscriptions":[]}`; got != want {
		t.Errorf("create sent %s, want %s", got, want)
	}
	var created map[string]any
	if err := json.Unmarshal([]byte(out), &created); err != nil || created["id"] != 1002.0 || created["url"] != second ||
		created["status"] != "active" || created["updatedAt"] != nil || created["createdAt"] == nil {
		t.Errorf("create --json: %v %s", err, out)
	}
	if creator, _ := created["creator"].(map[string]any); creator["id"] != 1.0 {
		t.Errorf("creator = %v", created["creator"])
	}
	if subs, ok := created["subscriptions"].([]any); !ok || len(subs) != 0 {
		t.Errorf("subscriptions = %v, want []", created["subscriptions"])
	}

	// list: v2 table and JSON; V1 lists the same subscriptions.
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "list", "--api", "v2")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 3 || !strings.HasPrefix(lines[2], "1002 ") || !strings.Contains(lines[2], "all events") {
		t.Errorf("list: %v\n%s", err, out)
	}
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "list", "--api", "v2", "--json")
	var listed []affinity.WebhookV2
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 2 || listed[0].ID != 1001 || listed[1].Status != affinity.WebhookV2Active {
		t.Errorf("list --json: %v %s", err, out)
	}
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "list", "--json")
	var v1 []affinity.Webhook
	if err != nil || json.Unmarshal([]byte(out), &v1) != nil || len(v1) != 2 || v1[0].WebhookURL != first || v1[1].WebhookURL != second {
		t.Errorf("V1 list of v2-created subscriptions: %v %s", err, out)
	}

	// get
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "get", "1001", "--api", "v2", "--json")
	var got affinity.WebhookV2
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.URL != first || len(got.Subscriptions) != 2 {
		t.Errorf("get: %v %s", err, out)
	}

	// update: POST /v2/webhooks/{id} with only what is given, then the webhook is read back.
	for _, u := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", s.hookURL("third")}, `{"url":"` + s.hookURL("third") + `"}`},
		{[]string{"--all-events"}, `{"subscriptions":[]}`},
		{[]string{"--event", "note.created", "--event", "smart_interaction_value.updated"}, `{"subscriptions":["note.created","smart_interaction_value.updated"]}`},
		{[]string{"--status", "disabled"}, `{"status":"disabled"}`},
		{[]string{"--disabled=false", "--url", first}, `{"status":"active","url":"` + first + `"}`},
		{[]string{"--disabled=true"}, `{"status":"disabled"}`},
		{[]string{"--status", "ACTIVE"}, `{"status":"active"}`},
	} {
		out, _, err := runAffinityCLI(t, s, nil, append([]string{"webhooks", "update", "1001", "--api", "v2", "--json"}, u.args...)...)
		if err != nil {
			t.Fatalf("update %v: %v", u.args, err)
		}
		if got := s.lastWrite(); got != "POST /v2/webhooks/1001 "+u.want {
			t.Errorf("update %v sent %s, want %s", u.args, got, u.want)
		}
		var back affinity.WebhookV2
		if json.Unmarshal([]byte(out), &back) != nil || back.ID != 1001 || back.UpdatedAt == nil {
			t.Errorf("update %v printed %s", u.args, out)
		}
	}
	if wh := s.sim.Webhooks()[0]; wh.WebhookURL != first || wh.Disabled || strings.Join(wh.Subscriptions, ",") != "note.created,smart_interaction_value.updated" {
		t.Errorf("after updates the simulator holds %+v", wh)
	}

	// disable / enable map to status; V1 sees the same flag.
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "disable", "1002", "--api", "v2")
	if err != nil || s.lastWrite() != `POST /v2/webhooks/1002 {"status":"disabled"}` || !strings.Contains(out, " disabled ") {
		t.Errorf("disable: %v %s\n%s", err, s.lastWrite(), out)
	}
	if !s.sim.Webhooks()[1].Disabled {
		t.Error("V1 does not see the v2 disable")
	}
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "enable", "1002", "--api", "v2", "--json")
	if err != nil || s.lastWrite() != `POST /v2/webhooks/1002 {"status":"active"}` || !strings.Contains(out, `"status": "active"`) {
		t.Errorf("enable: %v %s\n%s", err, s.lastWrite(), out)
	}

	// delete, then get is a one-line not-found error.
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "delete", "1002", "--api", "v2")
	if err != nil || out != "deleted webhook 1002\n" || s.lastWrite() != "DELETE /v2/webhooks/1002 " {
		t.Errorf("delete: %v %q %s", err, out, s.lastWrite())
	}
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "delete", "1001", "--api", "v2", "--json")
	if err != nil || fields(out) != `{ "deleted": true, "id": 1001 }` {
		t.Errorf("delete --json: %v %q", err, out)
	}
	_, _, err = runAffinityCLI(t, s, nil, "webhooks", "get", "1002", "--api", "v2")
	if err == nil || err.Error() != "affinity: get v2 webhook 1002: 404 Not Found: not-found: Not found" {
		t.Errorf("get deleted: %v", err)
	}
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "list", "--api", "v2", "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("empty list --json: %v %q", err, out)
	}

}

func TestAffinityCLIV2SendsBearerOnly(t *testing.T) {
	s := newAffinityCLISim(t)
	if _, _, err := runAffinityCLI(t, s, nil, "webhooks", "list", "--api", "v2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runAffinityCLI(t, s, nil, "webhooks", "list"); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if got := strings.Join(s.schemes, ","); got != "Bearer,Basic" {
		t.Errorf("auth schemes = %s, want Bearer (v2) then Basic (V1 default)", got)
	}
}

func TestAffinityCLIV2Errors(t *testing.T) {
	s := newAffinityCLISim(t)
	if _, _, err := runAffinityCLI(t, s, nil, "webhooks", "create", "--api", "v2", "--url", s.hookURL("x")); err != nil {
		t.Fatal(err)
	}
	writesBefore := s.writeCount()
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string
		reaches bool // the API answers the refusal (a write is recorded)
	}{
		{"unknown api", nil, []string{"webhooks", "list", "--api", "v3"}, `--api must be v1 or v2, got "v3"`, false},
		{"status needs v2", nil, []string{"webhooks", "update", "1001", "--status", "disabled"}, "--status needs --api v2", false},
		{"no url", nil, []string{"webhooks", "create", "--api", "v2"}, "--url is required", false},
		{"plain http elsewhere", nil, []string{"webhooks", "create", "--api", "v2", "--url", "http://hooks.example.com/x"}, "invalid webhook URL", false},
		{"credentials", nil, []string{"webhooks", "create", "--api", "v2", "--url", "https://u:p@hooks.example.com/x"}, "user name or password", false},
		{"credentials on update", nil, []string{"webhooks", "update", "1001", "--api", "v2", "--url", "https://u:p@hooks.example.com/x"}, "user name or password", false},
		{"unknown event", nil, []string{"webhooks", "create", "--api", "v2", "--url", s.hookURL("y"), "--event", "persn.created"}, `unknown event type "persn.created"`, false},
		{"empty update", nil, []string{"webhooks", "update", "1001", "--api", "v2"}, "nothing to update", false},
		{"bad status", nil, []string{"webhooks", "update", "1001", "--api", "v2", "--status", "paused"}, `--status must be active or disabled, got "paused"`, false},
		{"status and disabled", nil, []string{"webhooks", "update", "1001", "--api", "v2", "--status", "active", "--disabled=false"}, "either --status or --disabled", false},
		{"bad id", nil, []string{"webhooks", "enable", "x1", "--api", "v2"}, `webhook id must be a positive integer, got "x1"`, false},
		{"wrong key", s.env("wrong-key"), []string{"webhooks", "list", "--api", "v2"}, "affinity: list v2 webhooks: 401 Unauthorized: authentication: ", false},
		{"test delivery fails", nil, []string{"webhooks", "update", "1001", "--api", "v2", "--url", "http://127.0.0.1:1/hooks/affinity/nothing-listens"},
			"400 Bad Request: validation error on url: the test delivery to url failed", true},
		{"test delivery fails on create", nil, []string{"webhooks", "create", "--api", "v2", "--url", "http://127.0.0.1:1/hooks/affinity/nothing-listens"},
			"must be running and answer Affinity's sample.webhook test delivery with a 2xx", true},
		{"url in use", nil, []string{"webhooks", "create", "--api", "v2", "--url", s.hookURL("x")},
			"webhook 1001 already has this URL; change that one with `crmhook affinity webhooks update 1001 --api v2`", true},
		{"url in use by someone else's", s.env(affinitysim.DefaultUserKey), []string{"webhooks", "create", "--api", "v2", "--url", s.hookURL("x")},
			"another webhook of the organization (not visible to this key) already has this URL", true},
		{"not visible to another user", s.env(affinitysim.DefaultUserKey), []string{"webhooks", "disable", "1001", "--api", "v2"},
			"affinity: disable v2 webhook 1001: 404 Not Found: not-found", true},
	}
	reached := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runAffinityCLI(t, s, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || strings.Contains(msg, affinitysim.DefaultAdminKey) ||
				strings.Contains(msg, affinitysim.DefaultUserKey) || strings.Contains(msg, "u:p@") {
				t.Errorf("error is not one clean line: %q", msg)
			}
		})
		if tc.reaches {
			reached++
		}
	}
	if got := s.writeCount() - writesBefore; got != reached {
		t.Errorf("%d writes reached the API, want %d (refused commands must not)", got, reached)
	}
	if wh := s.sim.Webhooks()[0]; wh.WebhookURL != s.hookURL("x") || wh.Disabled {
		t.Errorf("refusals changed the webhook: %+v", wh)
	}
}

func TestAffinityCLIV2LimitListsTheExistingOnes(t *testing.T) {
	s := newAffinityCLISim(t)
	// Two through V1, one through v2: the limit counts both.
	for _, args := range [][]string{
		{"webhooks", "create", "--url", s.hookURL("a")},
		{"webhooks", "create", "--url", s.hookURL("b")},
		{"webhooks", "create", "--api", "v2", "--url", s.hookURL("c")},
	} {
		if _, _, err := runAffinityCLI(t, s, nil, args...); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := runAffinityCLI(t, s, nil, "webhooks", "create", "--api", "v2", "--url", s.hookURL("d"))
	if !errors.Is(err, affinity.ErrSubscriptionLimit) {
		t.Fatalf("fourth create: %v, want ErrSubscriptionLimit", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"affinity: create v2 webhook: 400 Bad Request: bad-request: ",
		"organization is at its webhook limit",
		"1001 " + s.hookURL("a"), "1002 " + s.hookURL("b"), "1003 " + s.hookURL("c"),
		"crmhook affinity webhooks delete ID --api v2",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "\n") || strings.Contains(msg, affinitysim.DefaultAdminKey) {
		t.Errorf("error is not one clean line: %q", msg)
	}
}
