package affinitysim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook/internal/clocktest"
)

// waitIdle waits for the retry schedules to play out (bounded by the test's
// own deadline, not a timed assertion).
func waitIdle(t *testing.T, sim *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sim.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

// deliveriesTo returns the logged attempts to one subscription.
func deliveriesTo(sim *Server, id int64) []Delivery {
	var out []Delivery
	for _, d := range sim.Deliveries() {
		if d.SubscriptionID == id {
			out = append(out, d)
		}
	}
	return out
}

func wantEnvelope(t *testing.T, eventType string, body json.RawMessage, sentAt int64) []byte {
	t.Helper()
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		t.Fatal(err)
	}
	return fmt.Appendf(nil, `{"type":%q,"body":%s,"sent_at":%d}`, eventType, compact.Bytes(), sentAt)
}

func TestTriggerDeliversToSubscriptionsThatWantTheType(t *testing.T) {
	clock := clocktest.New(time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC))
	sim, base := setup(t, Config{Now: clock.Now})
	people, all, disabled := newTarget(t, nil), newTarget(t, nil), newTarget(t, nil)
	peopleSub := createWebhook(t, admin, base, people.url(), "person.created", "person.deleted")
	allSub := createWebhook(t, user2, base, all.url())
	disabledSub := createWebhook(t, admin, base, disabled.url(), "person.created")
	wantStatus(t, call(t, admin, http.MethodPut, fmt.Sprintf("%s/webhook/%d", base, disabledSub.ID), map[string]any{"disabled": true}), http.StatusOK)
	clock.Set(clock.Now().Add(90 * time.Second))
	sentAt := clock.Now().Unix()

	ctx := context.Background()
	res, err := sim.Trigger(ctx, "person.created", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != "person.created" || res.SentAt != sentAt || len(res.Deliveries) != 2 ||
		res.Deliveries[0].SubscriptionID != peopleSub.ID || res.Deliveries[1].SubscriptionID != allSub.ID {
		t.Fatalf("result = %+v, want deliveries to %d and %d", res, peopleSub.ID, allSub.ID)
	}
	sample, _ := sampleBody("person.created")
	want := wantEnvelope(t, "person.created", sample, sentAt)
	for _, tg := range []*target{people, all} {
		got := tg.requests("person.created")
		if len(got) != 1 || !bytes.Equal(got[0].Body, want) || got[0].ContentType != "application/json" {
			t.Fatalf("target got %+v, want one %s", got, want)
		}
	}
	for _, d := range res.Deliveries {
		if !d.OK || d.StatusCode != 200 || d.Attempt != 1 || !bytes.Equal(d.Body, want) || d.Offset != 0 {
			t.Errorf("first attempt = %+v", d)
		}
	}
	if n := len(disabled.requests("person.created")); n != 0 {
		t.Errorf("disabled subscription got %d deliveries", n)
	}

	// Only the all-events subscription wants list.created.
	res, err = sim.Trigger(ctx, "list.created", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deliveries) != 1 || res.Deliveries[0].SubscriptionID != allSub.ID {
		t.Fatalf("list.created went to %+v", res.Deliveries)
	}

	// A given body is sent as is (compacted); a type Affinity may add later
	// reaches only all-events subscriptions.
	custom := json.RawMessage(`{ "id": 1, "note": "a & b <c>" }`)
	res, err = sim.Trigger(ctx, "person.archived", custom)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deliveries) != 1 || res.Deliveries[0].SubscriptionID != allSub.ID {
		t.Fatalf("person.archived went to %+v", res.Deliveries)
	}
	got := all.requests("person.archived")
	var env struct {
		Type   string          `json:"type"`
		Body   json.RawMessage `json:"body"`
		SentAt int64           `json:"sent_at"`
	}
	if len(got) != 1 || json.Unmarshal(got[0].Body, &env) != nil || env.Type != "person.archived" || env.SentAt != sentAt {
		t.Fatalf("custom delivery = %+v", got)
	}
	var note struct{ Note string }
	if json.Unmarshal(env.Body, &note) != nil || note.Note != "a & b <c>" {
		t.Errorf("custom body = %s", env.Body)
	}
	if !bytes.HasPrefix(got[0].Body, []byte(`{"type":"person.archived","body":{`)) {
		t.Errorf("envelope key order: %s", got[0].Body)
	}

	// Nothing wants note.created once the all-events subscription is gone.
	wantStatus(t, call(t, user2, http.MethodDelete, fmt.Sprintf("%s/webhook/%d", base, allSub.ID), nil), http.StatusOK)
	res, err = sim.Trigger(ctx, "note.created", nil)
	if err != nil || res.Deliveries == nil || len(res.Deliveries) != 0 {
		t.Fatalf("note.created = %+v, %v; want no deliveries and no error", res, err)
	}

	if n := len(sim.Deliveries()); n != 4 {
		t.Errorf("delivery log has %d attempts, want 4", n)
	}
}

func TestTriggerRefusesBadInput(t *testing.T) {
	sim, _ := setup(t, Config{})
	ctx := context.Background()
	if _, err := sim.Trigger(ctx, "person.exploded", nil); !errors.Is(err, ErrUnknownEventType) {
		t.Errorf("unknown type without body: err = %v, want ErrUnknownEventType", err)
	}
	if _, err := sim.Trigger(ctx, "", json.RawMessage(`{}`)); !errors.Is(err, ErrUnknownEventType) {
		t.Errorf("empty type: err = %v, want ErrUnknownEventType", err)
	}
	if _, err := sim.Trigger(ctx, "person.created", json.RawMessage(`{"id":`)); !errors.Is(err, ErrInvalidBody) {
		t.Errorf("broken body: err = %v, want ErrInvalidBody", err)
	}
	sim.Close()
	if _, err := sim.Trigger(ctx, "person.created", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: err = %v, want ErrClosed", err)
	}
}

func TestFailingTargetIsRetriedUntilItSucceeds(t *testing.T) {
	const scale = 6000 // one simulated minute is 10ms
	// Fail three times, three different ways, then succeed.
	answers := []int{http.StatusInternalServerError, 0 /* hang past the timeout */, http.StatusTooManyRequests, http.StatusNoContent}
	tg := newTarget(t, func(eventType string, n int) int {
		if eventType == ProbeType {
			return http.StatusOK
		}
		if n < len(answers) {
			return answers[n]
		}
		return http.StatusOK
	})
	sim, base := setup(t, Config{TimeScale: scale, DeliveryTimeout: 100 * time.Millisecond})
	wh := createWebhook(t, admin, base, tg.url())

	res, err := sim.Trigger(context.Background(), "organization.merged", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deliveries) != 1 || res.Deliveries[0].OK || res.Deliveries[0].StatusCode != 500 {
		t.Fatalf("first attempt = %+v, want a failed 500", res.Deliveries)
	}
	waitIdle(t, sim)

	log := deliveriesTo(sim, wh.ID)
	if len(log) != 4 {
		t.Fatalf("attempts = %d, want 4: %+v", len(log), log)
	}
	wantOffsets := []time.Duration{0, time.Minute, 3 * time.Minute, 7 * time.Minute}
	for i, d := range log {
		if d.Attempt != i+1 || d.Offset != wantOffsets[i] || d.SentAt != res.SentAt || !bytes.Equal(d.Body, log[0].Body) {
			t.Errorf("attempt %d = {Attempt:%d Offset:%s SentAt:%d}, want attempt %d at %s with the first body",
				i+1, d.Attempt, d.Offset, d.SentAt, i+1, wantOffsets[i])
		}
	}
	if log[1].Error == "" || !strings.Contains(log[1].Error, "no answer within") || log[1].StatusCode != 0 {
		t.Errorf("timed-out attempt = %+v", log[1])
	}
	if log[2].StatusCode != 429 || log[2].OK || !log[3].OK || log[3].StatusCode != 204 {
		t.Errorf("attempts 3 and 4 = %+v, %+v", log[2], log[3])
	}

	// The target saw four byte-identical bodies, each gap at least the
	// scaled backoff (a lower bound: timers never fire early).
	got := tg.requests("organization.merged")
	if len(got) != 4 {
		t.Fatalf("target got %d requests, want 4", len(got))
	}
	for i := 1; i < len(got); i++ {
		if !bytes.Equal(got[i].Body, got[0].Body) {
			t.Errorf("retry %d body differs:\n%s\n%s", i, got[i].Body, got[0].Body)
		}
		minGap := (wantOffsets[i] - wantOffsets[i-1]) / scale
		if gap := got[i].At.Sub(got[i-1].At); gap < minGap {
			t.Errorf("gap before attempt %d = %s, want at least %s", i+1, gap, minGap)
		}
	}
	if hooks := sim.Webhooks(); hooks[0].Disabled {
		t.Error("a subscription that recovered was disabled")
	}
}

func TestAlwaysFailingTargetGetsSubscriptionDisabled(t *testing.T) {
	// Affinity's own schedule (1m doubling for 10h), 10h in 0.1s of real time.
	sim, base := setup(t, Config{TimeScale: 360000})
	tg := newTarget(t, nil)
	other := newTarget(t, nil)
	wh := createWebhook(t, admin, base, tg.url(), "note.created")
	healthy := createWebhook(t, admin, base, other.url(), "note.created")
	tg.srv.Close() // from now on: connection refused

	res, err := sim.Trigger(context.Background(), "note.created", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deliveries) != 2 || res.Deliveries[0].OK || !strings.Contains(res.Deliveries[0].Error, "connection failed") {
		t.Fatalf("first attempts = %+v", res.Deliveries)
	}
	waitIdle(t, sim)

	log := deliveriesTo(sim, wh.ID)
	// Attempts at 0, 1, 3, 7, …, 511 minutes; the next (1023m) is past 10h.
	if len(log) != 10 {
		t.Fatalf("attempts = %d, want 10", len(log))
	}
	for i, d := range log {
		want := time.Duration(1<<i-1) * time.Minute
		if d.Offset != want || d.OK || d.Attempt != i+1 {
			t.Errorf("attempt %d: offset %s ok %v, want offset %s and failed", i+1, d.Offset, d.OK, want)
		}
		if strings.Contains(d.Error, "s3cr3t") {
			t.Errorf("delivery error leaks the URL's path secret: %q", d.Error)
		}
	}
	hooks := sim.Webhooks()
	if !hooks[0].Disabled || hooks[0].ID != wh.ID {
		t.Fatalf("failing subscription after the window: %+v, want disabled", hooks[0])
	}
	if hooks[1].Disabled || hooks[1].ID != healthy.ID {
		t.Fatalf("healthy subscription: %+v, want enabled", hooks[1])
	}

	// A disabled subscription gets nothing more.
	res, err = sim.Trigger(context.Background(), "note.created", nil)
	if err != nil || len(res.Deliveries) != 1 || res.Deliveries[0].SubscriptionID != healthy.ID {
		t.Fatalf("after disable: %+v, %v", res, err)
	}
}

func TestRetriesStopWhenSubscriptionIsDeleted(t *testing.T) {
	// The target deletes its own subscription while failing the first
	// attempt, so the delete surely lands before the first retry is due.
	var base string
	deleted := make(chan int, 1)
	tg := newTarget(t, func(eventType string, _ int) int {
		if eventType == ProbeType {
			return http.StatusOK
		}
		req, _ := http.NewRequest(http.MethodDelete, base+"/webhook/1001", nil)
		req.SetBasicAuth("", DefaultAdminKey)
		status := 0
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			status = resp.StatusCode
		}
		// Never block: a retry that should not happen must fail the
		// test below, not hang the target (and the test) forever.
		select {
		case deleted <- status:
		default:
		}
		return http.StatusBadGateway
	})
	var sim *Server
	sim, base = setup(t, Config{TimeScale: 600}) // first retry 100ms after the first attempt
	if wh := createWebhook(t, admin, base, tg.url()); wh.ID != 1001 {
		t.Fatalf("id = %d", wh.ID)
	}
	res, err := sim.Trigger(context.Background(), "file.created", nil)
	if err != nil || len(res.Deliveries) != 1 || res.Deliveries[0].StatusCode != http.StatusBadGateway {
		t.Fatalf("trigger = %+v, %v", res, err)
	}
	if status := <-deleted; status != http.StatusOK {
		t.Fatalf("delete from the target answered %d", status)
	}
	waitIdle(t, sim)
	if n := len(tg.requests("file.created")); n != 1 {
		t.Errorf("target got %d attempts, want 1 (no retries after delete)", n)
	}
	if n := len(sim.Deliveries()); n != 1 {
		t.Errorf("delivery log has %d attempts, want 1", n)
	}
}

func TestCloseStopsPendingRetries(t *testing.T) {
	tg := newTarget(t, func(eventType string, _ int) int {
		if eventType == ProbeType {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	})
	// Real time: the first retry would come a minute later; Close must not wait for it.
	sim, base := setup(t, Config{})
	createWebhook(t, admin, base, tg.url())
	if _, err := sim.Trigger(context.Background(), "reminder.created", nil); err != nil {
		t.Fatal(err)
	}
	sim.Close()
	waitIdle(t, sim)
	if n := len(sim.Deliveries()); n != 1 {
		t.Errorf("attempts = %d, want 1", n)
	}
	if hooks := sim.Webhooks(); hooks[0].Disabled {
		t.Error("Close disabled the subscription")
	}
}

func TestSimEndpoints(t *testing.T) {
	sim, base := setup(t, Config{})
	tg := newTarget(t, nil)
	wh := createWebhook(t, admin, base, tg.url(), "field_value.updated")

	// No API key needed under /_sim/.
	r := call(t, noAuth, http.MethodPost, base+"/_sim/trigger", map[string]any{"type": "field_value.updated"})
	wantStatus(t, r, http.StatusOK)
	res := decode[TriggerResult](t, r)
	if len(res.Deliveries) != 1 || res.Deliveries[0].SubscriptionID != wh.ID || !res.Deliveries[0].OK {
		t.Fatalf("trigger result = %+v", res)
	}
	r = call(t, noAuth, http.MethodPost, base+"/_sim/trigger", map[string]any{"type": "field_value.updated", "body": map[string]any{"id": 5}})
	wantStatus(t, r, http.StatusOK)

	r = call(t, noAuth, http.MethodGet, base+"/_sim/deliveries", nil)
	wantStatus(t, r, http.StatusOK)
	log := decode[[]Delivery](t, r)
	got := tg.requests("field_value.updated")
	if len(log) != 2 || len(got) != 2 {
		t.Fatalf("log = %d entries, target got %d; want 2 and 2", len(log), len(got))
	}
	for i := range log {
		if !bytes.Equal(log[i].Body, got[i].Body) {
			t.Errorf("logged body %d = %s, target got %s", i, log[i].Body, got[i].Body)
		}
	}
	if !bytes.Contains(got[1].Body, []byte(`"body":{"id":5}`)) {
		t.Errorf("given body not sent: %s", got[1].Body)
	}

	probes := decode[[]Delivery](t, call(t, noAuth, http.MethodGet, base+"/_sim/probes", nil))
	if len(probes) != 1 || probes[0].EventType != ProbeType || !probes[0].OK {
		t.Errorf("probes = %+v", probes)
	}
	r = call(t, noAuth, http.MethodGet, base+"/_sim/healthz", nil)
	wantStatus(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != `{"ok":true}` {
		t.Errorf("healthz = %s", r.Body)
	}

	bad := []struct {
		method, path string
		body         any
		status       int
		msgHas       string
	}{
		{"POST", "/_sim/trigger", `{"type":`, 400, "JSON object"},
		{"POST", "/_sim/trigger", `{"type":"person.created","extra":1}`, 400, "unknown field"},
		{"POST", "/_sim/trigger", map[string]any{"type": "person.exploded"}, 400, "no sample body"},
		{"POST", "/_sim/trigger", map[string]any{}, 400, "empty"},
		{"GET", "/_sim/trigger", nil, 405, "POST"},
		{"POST", "/_sim/deliveries", nil, 405, "GET"},
	}
	for _, b := range bad {
		r := call(t, noAuth, b.method, base+b.path, b.body, "application/json")
		wantStatus(t, r, b.status)
		if msg := errorMessage(t, r); !strings.Contains(msg, b.msgHas) {
			t.Errorf("%s %s: message %q, want %q", b.method, b.path, msg, b.msgHas)
		}
	}
	wantStatus(t, call(t, noAuth, http.MethodGet, base+"/_sim/nothing", nil), http.StatusNotFound)

	sim.Close()
	r = call(t, noAuth, http.MethodPost, base+"/_sim/trigger", map[string]any{"type": "person.created"})
	wantStatus(t, r, http.StatusServiceUnavailable)
}
