package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/sim/affinitysim"
)

// affinityCLISim is the real Affinity simulator on loopback, wrapped so the
// tests see every write body and auth scheme the CLI sent, plus a webhook
// target that answers the simulator's sample.webhook probes with 200.
type affinityCLISim struct {
	sim    *affinitysim.Server
	srv    *httptest.Server
	target *httptest.Server

	mu      sync.Mutex
	writes  []string // "METHOD path body"
	schemes []string // the Authorization scheme of each API request
}

func newAffinityCLISim(t *testing.T) *affinityCLISim {
	t.Helper()
	sim, err := affinitysim.New(affinitysim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	s := &affinityCLISim{sim: sim}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		s.mu.Lock()
		s.schemes = append(s.schemes, scheme)
		if r.Method != http.MethodGet {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			s.writes = append(s.writes, r.Method+" "+r.URL.Path+" "+string(b))
		}
		s.mu.Unlock()
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	s.target = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(s.target.Close)
	return s
}

func (s *affinityCLISim) hookURL(name string) string { return s.target.URL + "/hooks/affinity/" + name }

func (s *affinityCLISim) lastWrite() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.writes) == 0 {
		return ""
	}
	return s.writes[len(s.writes)-1]
}

func (s *affinityCLISim) writeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.writes)
}

func (s *affinityCLISim) env(key string) map[string]string {
	return map[string]string{"AFFINITY_API_KEY": key, "AFFINITY_BASE_URL": s.srv.URL}
}

// runAffinityCLI runs `crmhook affinity …` in-process with env (nil: the admin key and s).
func runAffinityCLI(t *testing.T, s *affinityCLISim, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if env == nil {
		env = s.env(affinitysim.DefaultAdminKey)
	}
	var out, errb bytes.Buffer
	err = newCLI(&out, &errb, func(k string) string { return env[k] }).run(context.Background(), append([]string{"affinity"}, args...))
	return out.String(), errb.String(), err
}

func TestAffinityCLICreateListGetUpdateDelete(t *testing.T) {
	s := newAffinityCLISim(t)
	first, second := s.hookURL("first-secret"), s.hookURL("second-secret")

	// create with events: a table for people.
	out, _, err := runAffinityCLI(t, s, nil, "webhooks", "create", "--url", first, "--event", "person.created", "--event", "list_entry.created,person.created")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.lastWrite(), `POST /webhook/subscribe {"webhook_url":"`+first+`","subscriptions":["person.created","list_entry.created"]}`; got != want {
		t.Errorf("create sent\n%s\nwant\n%s", got, want)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "ID URL SUBSCRIPTIONS DISABLED CREATED BY" ||
		!strings.HasPrefix(lines[1], "1001 ") || !strings.Contains(lines[1], "person.created, list_entry.created") ||
		!strings.Contains(lines[1], first) || !strings.HasSuffix(strings.Join(strings.Fields(lines[1]), " "), " false 1") {
		t.Errorf("create output:\n%s", out)
	}

	// create without events subscribes to everything: subscriptions not sent.
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "create", "--json", "--url", second)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.lastWrite(), `POST /webhook/subscribe {"webhook_url":"`+second+`"}`; got != want {
		t.Errorf("create sent %s, want %s", got, want)
	}
	var created map[string]any
	if err := json.Unmarshal([]byte(out), &created); err != nil || created["id"] != 1002.0 ||
		created["webhook_url"] != second || created["created_by"] != 1.0 || created["disabled"] != false {
		t.Errorf("create --json: %v %s", err, out)
	}
	if subs, ok := created["subscriptions"].([]any); !ok || len(subs) != 0 {
		t.Errorf("all-events subscriptions = %v, want []", created["subscriptions"])
	}

	// list: table and JSON.
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], "1002 ") || !strings.Contains(lines[2], "all events") {
		t.Errorf("list:\n%s", out)
	}
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "list", "--json")
	var listed []affinity.Webhook
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 2 || listed[0].ID != 1001 {
		t.Errorf("list --json: %v %s", err, out)
	}

	// get
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "get", "1001", "--json")
	var got affinity.Webhook
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.WebhookURL != first || len(got.Subscriptions) != 2 {
		t.Errorf("get: %v %s", err, out)
	}

	// update sends only what is given.
	updates := []struct {
		args []string
		want string
	}{
		{[]string{"--url", second}, `{"webhook_url":"` + second + `"}`},
		{[]string{"--all-events"}, `{"subscriptions":[]}`},
		{[]string{"--event", "note.created", "--event", "note.deleted"}, `{"subscriptions":["note.created","note.deleted"]}`},
		{[]string{"--disabled=true"}, `{"disabled":true}`},
		{[]string{"--disabled=false", "--url", first}, `{"webhook_url":"` + first + `","disabled":false}`},
	}
	for _, u := range updates {
		if _, _, err := runAffinityCLI(t, s, nil, append([]string{"webhooks", "update", "1001"}, u.args...)...); err != nil {
			t.Fatalf("update %v: %v", u.args, err)
		}
		if got := s.lastWrite(); got != "PUT /webhook/1001 "+u.want {
			t.Errorf("update %v sent %s, want %s", u.args, got, u.want)
		}
	}
	if wh := s.sim.Webhooks()[0]; wh.WebhookURL != first || wh.Disabled || strings.Join(wh.Subscriptions, ",") != "note.created,note.deleted" {
		t.Errorf("after updates the simulator holds %+v", wh)
	}

	// disable / enable
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "disable", "1002")
	if err != nil || s.lastWrite() != `PUT /webhook/1002 {"disabled":true}` || !strings.Contains(out, "true") {
		t.Errorf("disable: %v %s\n%s", err, s.lastWrite(), out)
	}
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "enable", "1002", "--json")
	if err != nil || s.lastWrite() != `PUT /webhook/1002 {"disabled":false}` || !strings.Contains(out, `"disabled": false`) {
		t.Errorf("enable: %v %s\n%s", err, s.lastWrite(), out)
	}

	// delete, then get is a one-line not-found error.
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "delete", "1002")
	if err != nil || out != "deleted webhook 1002\n" {
		t.Errorf("delete: %v %q", err, out)
	}
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "delete", "1001", "--json")
	if err != nil || strings.Join(strings.Fields(out), "") != `{"deleted":true,"id":1001}` {
		t.Errorf("delete --json: %v %q", err, out)
	}
	_, _, err = runAffinityCLI(t, s, nil, "webhooks", "get", "1002")
	if err == nil || err.Error() != "affinity: get webhook 1002: 404 Not Found: Not found" {
		t.Errorf("get deleted: %v", err)
	}
	out, _, err = runAffinityCLI(t, s, nil, "webhooks", "list", "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("empty list --json: %v %q", err, out)
	}
}

func TestAffinityCLISubscriptionLimitListsTheExistingOnes(t *testing.T) {
	s := newAffinityCLISim(t)
	for _, name := range []string{"a", "b", "c"} {
		if _, _, err := runAffinityCLI(t, s, nil, "webhooks", "create", "--url", s.hookURL(name)); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := runAffinityCLI(t, s, nil, "webhooks", "create", "--url", s.hookURL("d"), "--event", "person.created")
	if !errors.Is(err, affinity.ErrSubscriptionLimit) {
		t.Fatalf("fourth create: %v, want ErrSubscriptionLimit", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"affinity: create webhook: 422 Unprocessable Entity: ", "limit",
		"already has 3 subscriptions",
		"1001 " + s.hookURL("a"), "1002 " + s.hookURL("b"), "1003 " + s.hookURL("c"),
		"crmhook affinity webhooks delete ID",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "\n") || strings.Contains(msg, affinitysim.DefaultAdminKey) {
		t.Errorf("error is not one clean line: %q", msg)
	}
}

func TestAffinityCLIErrors(t *testing.T) {
	s := newAffinityCLISim(t)
	// One subscription by the admin, for the creator-only rule.
	if _, _, err := runAffinityCLI(t, s, nil, "webhooks", "create", "--url", s.hookURL("x")); err != nil {
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
		{"no api key", map[string]string{"AFFINITY_BASE_URL": s.srv.URL}, []string{"webhooks", "list"}, "AFFINITY_API_KEY", false},
		{"wrong api key", s.env("wrong-key"), []string{"webhooks", "list"}, "affinity: list webhooks: 401 Unauthorized: Unauthorized", false},
		{"no url", nil, []string{"webhooks", "create", "--event", "person.created"}, "--url is required", false},
		{"unknown event", nil, []string{"webhooks", "create", "--url", s.hookURL("y"), "--event", "persn.created"}, `unknown event type "persn.created"`, false},
		{"probe is not an event", nil, []string{"webhooks", "create", "--url", s.hookURL("y"), "--event", "sample.webhook"}, `unknown event type "sample.webhook"`, false},
		{"bad id", nil, []string{"webhooks", "get", "12abc"}, `webhook id must be a positive integer, got "12abc"`, false},
		{"zero id", nil, []string{"webhooks", "delete", "0"}, "positive integer", false},
		{"empty update", nil, []string{"webhooks", "update", "1001"}, "nothing to update", false},
		{"events and all events", nil, []string{"webhooks", "update", "1001", "--event", "note.created", "--all-events"}, "either --event or --all-events", false},
		{"bad disabled value", nil, []string{"webhooks", "update", "1001", "--disabled=maybe"}, "invalid argument", false},
		{"bad base url", map[string]string{"AFFINITY_API_KEY": "k", "AFFINITY_BASE_URL": "localhost:7701"}, []string{"webhooks", "list"}, "base URL", false},
		{"not the creator", s.env(affinitysim.DefaultUserKey), []string{"webhooks", "disable", "1001"},
			"affinity: disable webhook 1001: 403 Forbidden: A webhook subscription can only be updated by its creator", true},
		{"probe fails", nil, []string{"webhooks", "update", "1001", "--url", "http://127.0.0.1:1/hooks/affinity/nothing-listens"},
			"422 Unprocessable Entity: webhook_url did not respond with a 2xx status", true},
	}
	reached := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runAffinityCLI(t, s, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), affinitysim.DefaultAdminKey) ||
				strings.Contains(err.Error(), affinitysim.DefaultUserKey) {
				t.Errorf("error is not one clean line: %q", err)
			}
		})
		if tc.reaches {
			reached++
		}
	}
	if got := s.writeCount() - writesBefore; got != reached {
		t.Errorf("%d writes reached the API, want %d (refused commands must not)", got, reached)
	}
}

func TestAffinityCLIFlagsOverrideEnvAndBearer(t *testing.T) {
	s := newAffinityCLISim(t)
	env := map[string]string{"AFFINITY_API_KEY": "wrong", "AFFINITY_BASE_URL": "http://127.0.0.1:1"}
	out, _, err := runAffinityCLI(t, s, env, "--api-key", affinitysim.DefaultUserKey, "--base-url", s.srv.URL, "--bearer",
		"webhooks", "create", "--url", s.hookURL("z"), "--event", "brand_new.event", "--allow-unknown")
	// The simulator knows only Affinity's 30 types, so it refuses the new one:
	// the point is that the flags, not the environment, reached it.
	if err == nil || !strings.Contains(err.Error(), "not a supported webhook event") {
		t.Fatalf("create with --allow-unknown: %v\n%s", err, out)
	}
	if _, _, err := runAffinityCLI(t, s, env, "--api-key", affinitysim.DefaultUserKey, "--base-url", s.srv.URL, "--bearer",
		"webhooks", "list"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runAffinityCLI(t, s, nil, "webhooks", "list"); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if got := strings.Join(s.schemes, ","); got != "Bearer,Bearer,Basic" {
		t.Errorf("auth schemes = %s, want Bearer,Bearer,Basic", got)
	}
}
