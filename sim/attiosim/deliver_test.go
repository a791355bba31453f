package attiosim

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/internal/clocktest"
)

func TestDeliveryIsSignedAndShapedLikeAttio(t *testing.T) {
	sim, base := setup(t, Config{})
	tg := newTarget(t, nil)
	id, secret := createWebhook(t, base, tg.URL(), `[{"event_type":"record.created","filter":null}]`)

	res, err := sim.Trigger(testCtx(t), "record.created", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deliveries) != 1 || !res.Deliveries[0].OK || res.Deliveries[0].StatusCode != 200 || res.Deliveries[0].WebhookID != id {
		t.Fatalf("trigger result = %+v", res)
	}
	reqs := tg.requests()
	if len(reqs) != 1 {
		t.Fatalf("target got %d requests, want 1", len(reqs))
	}
	req := reqs[0]
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	sig, legacy := req.Header.Get("Attio-Signature"), req.Header.Get("X-Attio-Signature")
	if sig == "" || sig != legacy || sig != strings.ToLower(sig) {
		t.Fatalf("signatures %q and %q, want the same lowercase hex", sig, legacy)
	}
	if mac, err := hex.DecodeString(sig); err != nil || len(mac) != 32 {
		t.Fatalf("signature %q is not hex SHA-256", sig)
	}
	if req.Header.Get(attio.HeaderTimestamp) != "" {
		t.Fatal("Attio signs no timestamp, yet a timestamp header was sent")
	}
	if err := attio.Verify(req.Body, req.Header, []string{secret}); err != nil {
		t.Fatalf("Verify with the secret from create: %v", err)
	}
	if err := attio.Verify(req.Body, req.Header, []string{"another-secret"}); !errors.Is(err, attio.ErrBadSignature) {
		t.Fatalf("Verify with a wrong secret: %v", err)
	}
	key := req.Header.Get("Idempotency-Key")
	if !isUUID(key) || key != res.Deliveries[0].IdempotencyKey {
		t.Fatalf("Idempotency-Key = %q, logged %q", key, res.Deliveries[0].IdempotencyKey)
	}

	d, err := attio.ParseDelivery(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	if d.WebhookID != id || len(d.Events) != 1 || d.Events[0].Type != attio.RecordCreated {
		t.Fatalf("delivery = %+v", d)
	}
	if !bytes.Equal(d.Events[0].Raw, res.Event) {
		t.Fatalf("event sent %s, Trigger reported %s", d.Events[0].Raw, res.Event)
	}
	if !strings.HasPrefix(string(req.Body), `{"webhook_id":`) {
		t.Fatalf("body %s does not start with webhook_id", req.Body)
	}
}

func TestFilteredWebhooksReceiveOnlyMatchingEvents(t *testing.T) {
	sim, base := setup(t, Config{})
	sales := newTarget(t, nil)     // list-entry.created on the sample list
	other := newTarget(t, nil)     // list-entry.created on another list
	records := newTarget(t, nil)   // record.created, any
	notSystem := newTarget(t, nil) // record.created not by the system, or list entries of the sample list
	createWebhook(t, base, sales.URL(), `[{"event_type":"list-entry.created","filter":{"$and":[{"field":"id.list_id","operator":"equals","value":"`+SampleListID+`"}]}}]`)
	createWebhook(t, base, other.URL(), `[{"event_type":"list-entry.created","filter":{"$and":[{"field":"id.list_id","operator":"equals","value":"L-other"}]}}]`)
	createWebhook(t, base, records.URL(), `[{"event_type":"record.created","filter":null}]`)
	createWebhook(t, base, notSystem.URL(), `[
		{"event_type":"record.created","filter":{"$and":[{"field":"actor.type","operator":"not_equals","value":"system"}]}},
		{"event_type":"list-entry.created","filter":{"$or":[{"field":"id.list_id","operator":"equals","value":"`+SampleListID+`"},{"field":"parent_object_id","operator":"equals","value":"nope"}]}},
		{"event_type":"list-entry.created","filter":null}]`)

	trigger := func(typ, override string) int {
		t.Helper()
		var o json.RawMessage
		if override != "" {
			o = json.RawMessage(override)
		}
		res, err := sim.Trigger(testCtx(t), typ, o)
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Deliveries)
	}
	if n := trigger("list-entry.created", ""); n != 2 {
		t.Fatalf("sample list entry reached %d webhooks, want 2 (sales, notSystem once)", n)
	}
	if n := trigger("list-entry.created", `{"id":{"list_id":"L-other"}}`); n != 2 {
		t.Fatalf("other list entry reached %d webhooks, want 2 (other, notSystem's unfiltered one)", n)
	}
	if n := trigger("record.created", `{"actor":{"type":"system","id":null}}`); n != 1 {
		t.Fatalf("system record.created reached %d webhooks, want 1 (records)", n)
	}
	if n := trigger("record.created", ""); n != 2 {
		t.Fatalf("member record.created reached %d webhooks, want 2", n)
	}
	if n := trigger("note.created", ""); n != 0 {
		t.Fatalf("note.created reached %d webhooks, want none", n)
	}

	listIDs := func(tg *target) []string {
		var ids []string
		for _, r := range tg.requests() {
			d, err := attio.ParseDelivery(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			var id struct {
				ListID string `json:"list_id"`
			}
			json.Unmarshal(d.Events[0].ID, &id)
			ids = append(ids, string(d.Events[0].Type)+":"+id.ListID)
		}
		return ids
	}
	check := func(name string, tg *target, want ...string) {
		t.Helper()
		got := listIDs(tg)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s got %v, want %v", name, got, want)
		}
	}
	check("sales", sales, "list-entry.created:"+SampleListID)
	check("other", other, "list-entry.created:L-other")
	check("records", records, "record.created:", "record.created:")
	check("notSystem", notSystem, "list-entry.created:"+SampleListID, "list-entry.created:L-other", "record.created:")
}

func TestRetriesKeepIdempotencyKeyThenDegrade(t *testing.T) {
	clock := clocktest.New(testStart)
	sim, base := setup(t, Config{TimeScale: 1e6, Now: clock.Now})
	failing := true
	tg := newTarget(t, func(int) int {
		if failing {
			return http.StatusInternalServerError
		}
		return http.StatusAccepted
	})
	id, secret := createWebhook(t, base, tg.URL(), `[{"event_type":"task.created","filter":null}]`)

	res, err := sim.Trigger(testCtx(t), "task.created", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Deliveries; len(d) != 1 || d[0].OK || d[0].StatusCode != 500 {
		t.Fatalf("first attempt = %+v", d)
	}
	waitIdle(t, sim)

	reqs := tg.requests()
	if len(reqs) != 11 {
		t.Fatalf("target got %d attempts, want 1 + 10 retries", len(reqs))
	}
	key := reqs[0].Header.Get("Idempotency-Key")
	for i, r := range reqs {
		if r.Header.Get("Idempotency-Key") != key || !bytes.Equal(r.Body, reqs[0].Body) {
			t.Fatalf("attempt %d: key %q body changed=%v, want the first attempt's", i+1, r.Header.Get("Idempotency-Key"), !bytes.Equal(r.Body, reqs[0].Body))
		}
		if err := attio.Verify(r.Body, r.Header, []string{secret}); err != nil {
			t.Fatalf("attempt %d does not verify: %v", i+1, err)
		}
	}
	log := sim.Deliveries()
	if len(log) != 11 {
		t.Fatalf("log has %d entries", len(log))
	}
	for i, d := range log {
		wantOffset := time.Duration(1<<i-1) * DefaultInitialBackoff
		if d.Attempt != i+1 || d.Offset != wantOffset || d.IdempotencyKey != key || d.StatusCode != 500 || d.OK {
			t.Fatalf("log[%d] = %+v, want attempt %d at offset %s", i, d, i+1, wantOffset)
		}
		if d.GaveUp != (i == 10) {
			t.Fatalf("log[%d].GaveUp = %v", i, d.GaveUp)
		}
	}
	if span := log[10].Offset; span < 70*time.Hour || span > 76*time.Hour {
		t.Fatalf("the retries span %s, want about 3 days", span)
	}
	if got := status(t, base, id); got != "degraded" {
		t.Fatalf("status = %q, want degraded", got)
	}

	// A degraded webhook still receives events; a success makes it active.
	tg.mu.Lock()
	failing = false
	tg.mu.Unlock()
	res, err = sim.Trigger(testCtx(t), "task.created", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Deliveries; len(d) != 1 || !d[0].OK || d[0].StatusCode != 202 || d[0].IdempotencyKey == key {
		t.Fatalf("delivery to the degraded webhook = %+v (a new message needs a new key)", d)
	}
	if got := status(t, base, id); got != "active" {
		t.Fatalf("status after a success = %q, want active", got)
	}
}

func TestDegradedWebhookBecomesInactive(t *testing.T) {
	clock := clocktest.New(testStart)
	sim, base := setup(t, Config{TimeScale: 1e6, MaxRetries: 2, Now: clock.Now})
	tg := newTarget(t, func(int) int { return http.StatusServiceUnavailable })
	id, _ := createWebhook(t, base, tg.URL(), `[{"event_type":"note.created","filter":null}]`)
	if _, err := sim.Trigger(testCtx(t), "note.created", nil); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, sim)
	if n := len(tg.requests()); n != 3 {
		t.Fatalf("MaxRetries 2 made %d attempts, want 3", n)
	}
	if got := status(t, base, id); got != "degraded" {
		t.Fatalf("status = %q, want degraded", got)
	}
	// 7 simulated days are 0.6048 real seconds at this time scale.
	clock.Advance(604 * time.Millisecond)
	if got := status(t, base, id); got != "degraded" {
		t.Fatalf("status just before 7 simulated days = %q, want degraded", got)
	}
	clock.Advance(time.Millisecond)
	if got := status(t, base, id); got != "inactive" {
		t.Fatalf("status after 7 simulated days = %q, want inactive", got)
	}
	res, err := sim.Trigger(testCtx(t), "note.created", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deliveries) != 0 || len(tg.requests()) != 3 {
		t.Fatalf("an inactive webhook got a delivery: %+v", res)
	}
}

func TestOnly200And202CountAsDelivered(t *testing.T) {
	sim, base := setup(t, Config{TimeScale: 1e6})
	answers := []int{http.StatusCreated, http.StatusNoContent, http.StatusFound, http.StatusBadRequest, http.StatusOK}
	tg := newTarget(t, func(n int) int { return answers[min(n, len(answers)-1)] })
	createWebhook(t, base, tg.URL(), `[{"event_type":"comment.created","filter":null}]`)
	if _, err := sim.Trigger(testCtx(t), "comment.created", nil); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, sim)
	log := sim.Deliveries()
	if len(log) != len(answers) {
		t.Fatalf("%d attempts, want %d: %+v", len(log), len(answers), log)
	}
	for i, d := range log {
		if d.StatusCode != answers[i] || d.OK != (answers[i] == 200) {
			t.Fatalf("attempt %d = %+v", i+1, d)
		}
	}
}

func TestTimeoutsAndConnectionFailuresAreRetried(t *testing.T) {
	sim, base := setup(t, Config{TimeScale: 1e6, DeliveryTimeout: 100 * time.Millisecond, MaxRetries: 2})
	var calls atomic.Int32
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if calls.Add(1) == 1 {
			select { // hang until the simulator gives up on this attempt
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs first: Close waits for held answers
	createWebhook(t, base, slow.URL, `[{"event_type":"task.updated","filter":null}]`)

	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close() // nothing listens there any more
	goneID, _ := createWebhook(t, base, goneURL, `[{"event_type":"task.deleted","filter":null}]`)

	if _, err := sim.Trigger(testCtx(t), "task.updated", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Trigger(testCtx(t), "task.deleted", nil); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, sim)
	var slowLog, goneLog []Delivery
	for _, d := range sim.Deliveries() {
		if d.WebhookID == goneID {
			goneLog = append(goneLog, d)
		} else {
			slowLog = append(slowLog, d)
		}
	}
	if len(slowLog) != 2 || !strings.Contains(slowLog[0].Error, "no answer within") || !slowLog[1].OK {
		t.Fatalf("timeout then success: %+v", slowLog)
	}
	if len(goneLog) != 3 || !goneLog[2].GaveUp {
		t.Fatalf("connection failures: %+v", goneLog)
	}
	for _, d := range goneLog {
		if !strings.HasPrefix(d.Error, "connection failed") || strings.Contains(d.Error, goneURL) {
			t.Fatalf("error %q: want a connection failure that does not echo the URL", d.Error)
		}
	}
	if got := status(t, base, goneID); got != "degraded" {
		t.Fatalf("status = %q, want degraded", got)
	}
}

// blockingTarget answers status, holding its first answer until released,
// so a test can change the webhook between the first attempt and the retry.
func blockingTarget(t *testing.T, status int) (tg *target, arrived <-chan struct{}, release func()) {
	first := make(chan struct{})
	rel := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(rel) }) }
	tg = newHoldingTarget(t, func(int) int { return status }, func(n int) {
		if n == 0 {
			close(first)
			<-rel
		}
	})
	t.Cleanup(release) // runs before the server's Close, which waits for held answers
	return tg, first, release
}

func TestRetriesFollowTheWebhook(t *testing.T) {
	t.Run("deleted webhook gets no more attempts", func(t *testing.T) {
		sim, base := setup(t, Config{TimeScale: 1e6})
		tg, arrived, release := blockingTarget(t, http.StatusInternalServerError)
		id, _ := createWebhook(t, base, tg.URL(), `[{"event_type":"record.deleted","filter":null}]`)
		done := make(chan error, 1)
		go func() { _, err := sim.Trigger(testCtx(t), "record.deleted", nil); done <- err }()
		<-arrived
		if status, _, _ := api(t, http.MethodDelete, base+"/v2/webhooks/"+id, DefaultToken, ""); status != 200 {
			t.Fatalf("delete: %d", status)
		}
		release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		waitIdle(t, sim)
		if n := len(tg.requests()); n != 1 {
			t.Fatalf("%d attempts, want only the first", n)
		}
	})
	t.Run("retries go to the new target URL", func(t *testing.T) {
		sim, base := setup(t, Config{TimeScale: 1e6})
		old, arrived, release := blockingTarget(t, http.StatusBadGateway)
		fixed := newTarget(t, nil)
		id, secret := createWebhook(t, base, old.URL(), `[{"event_type":"record.deleted","filter":null}]`)
		done := make(chan error, 1)
		go func() { _, err := sim.Trigger(testCtx(t), "record.deleted", nil); done <- err }()
		<-arrived
		if status, _, out := api(t, http.MethodPatch, base+"/v2/webhooks/"+id, DefaultToken,
			`{"data":{"target_url":`+quoteJSON(fixed.URL())+`}}`); status != 200 {
			t.Fatalf("patch: %d %v", status, out)
		}
		release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		waitIdle(t, sim)
		o, f := old.requests(), fixed.requests()
		if len(o) != 1 || len(f) != 1 {
			t.Fatalf("old got %d, fixed got %d; want 1 each", len(o), len(f))
		}
		if f[0].Header.Get("Idempotency-Key") != o[0].Header.Get("Idempotency-Key") || !bytes.Equal(f[0].Body, o[0].Body) {
			t.Fatal("the retry at the new URL is not the same message")
		}
		if err := attio.Verify(f[0].Body, f[0].Header, []string{secret}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCloseStopsRetries(t *testing.T) {
	sim, err := New(Config{InitialBackoff: time.Hour}) // a retry would wait an hour of real time
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	tg := newTarget(t, func(int) int { return http.StatusInternalServerError })
	createWebhook(t, srv.URL, tg.URL(), `[{"event_type":"list.created","filter":null}]`)
	if _, err := sim.Trigger(testCtx(t), "list.created", nil); err != nil {
		t.Fatal(err)
	}
	sim.Close() // returns only once the retry loop has stopped
	if err := sim.WaitIdle(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(tg.requests()); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
	if _, err := sim.Trigger(testCtx(t), "list.created", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Trigger after Close: %v, want ErrClosed", err)
	}
}

func TestTriggerWithoutWebhooksAndErrors(t *testing.T) {
	sim, _ := setup(t, Config{})
	res, err := sim.Trigger(testCtx(t), "workspace-member.created", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.EventType != "workspace-member.created" || len(res.Deliveries) != 0 {
		t.Fatalf("result = %+v", res)
	}
	if _, err := attio.ParseEvent(res.Event); err != nil {
		t.Fatalf("reported event does not parse: %v", err)
	}
	if _, err := sim.Trigger(testCtx(t), "deal.won", nil); !errors.Is(err, ErrUnknownEventType) {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := sim.Trigger(testCtx(t), "task.created", json.RawMessage(`"x"`)); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("non-object override: %v", err)
	}
}

func TestSimEndpoints(t *testing.T) {
	sim, base := setup(t, Config{})
	tg := newTarget(t, nil)
	_, secret := createWebhook(t, base, tg.URL(), `[{"event_type":"list-entry.deleted","filter":{"$and":[{"field":"id.list_id","operator":"equals","value":"L9"}]}}]`)

	status, _, out := api(t, http.MethodGet, base+"/_sim/healthz", "", "")
	if status != 200 || out["ok"] != true {
		t.Fatalf("healthz: %d %v", status, out)
	}
	status, _, out = api(t, http.MethodPost, base+"/_sim/trigger", "", `{"event_type":"list-entry.deleted","event":{"id":{"list_id":"L9"}}}`)
	if status != 200 || len(out["deliveries"].([]any)) != 1 || out["event_type"] != "list-entry.deleted" {
		t.Fatalf("trigger: %d %v", status, out)
	}
	if got := out["event"].(map[string]any)["id"].(map[string]any)["list_id"]; got != "L9" {
		t.Fatalf("override not applied: list_id %v", got)
	}
	status, _, out = api(t, http.MethodPost, base+"/_sim/trigger", "", `{"event_type":"list-entry.deleted"}`)
	if status != 200 || len(out["deliveries"].([]any)) != 0 {
		t.Fatalf("non-matching trigger: %d %v", status, out)
	}
	for name, body := range map[string]string{
		"unknown type":   `{"event_type":"deal.won"}`,
		"not json":       `{"event_type":`,
		"unknown field":  `{"type":"task.created"}`,
		"event is array": `{"event_type":"task.created","event":[]}`,
	} {
		status, _, out := api(t, http.MethodPost, base+"/_sim/trigger", "", body)
		if status != http.StatusBadRequest {
			t.Fatalf("%s: %d %v", name, status, out)
		}
		wantAPIError(t, out, 400, "invalid_request_error", "validation_type")
	}
	if status, _, _ := api(t, http.MethodGet, base+"/_sim/trigger", "", ""); status != http.StatusMethodNotAllowed {
		t.Fatalf("GET trigger: %d", status)
	}
	if status, _, _ := api(t, http.MethodGet, base+"/_sim/nope", "", ""); status != http.StatusNotFound {
		t.Fatalf("unknown sim endpoint: %d", status)
	}

	resp, err := http.Get(base + "/_sim/deliveries")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var log []Delivery
	if err := json.Unmarshal(raw, &log); err != nil {
		t.Fatalf("deliveries: %v: %s", err, raw)
	}
	if len(log) != 1 || log[0].EventType != "list-entry.deleted" || log[0].IdempotencyKey == "" || !log[0].OK || log[0].Attempt != 1 {
		t.Fatalf("deliveries = %+v", log)
	}
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(tg.URL())) {
		t.Fatal("the delivery log shows the secret or the target URL")
	}
	if len(sim.Deliveries()) != 1 {
		t.Fatal("Deliveries() disagrees with /_sim/deliveries")
	}
}

// status reads a webhook's status through the API.
func status(t *testing.T, base, id string) string {
	t.Helper()
	code, _, out := api(t, http.MethodGet, base+"/v2/webhooks/"+id, DefaultToken, "")
	if code != http.StatusOK {
		t.Fatalf("get %s: %d %v", id, code, out)
	}
	return out["data"].(map[string]any)["status"].(string)
}
