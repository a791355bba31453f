package attio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The affinity SDK's NewRouter and zero-value Registry do not panic on nil;
// neither do these.
func TestRouterAndRegistryNilSafety(t *testing.T) {
	ev := mustEvent(t, `{"event_type":"record.created","id":{"workspace_id":"w","object_id":"o","record_id":"r1"}}`)

	r := NewRouter(WithRegistry(nil), nil)
	var got any
	On(r, RecordCreated, func(ctx context.Context, ev *Event, body any) error { got = body; return nil })
	if err := r.Dispatch(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if rec, ok := got.(*RecordEvent); !ok || rec.ID.RecordID != "r1" {
		t.Errorf("nil registry: On[any] got %#v, want DefaultRegistry's *RecordEvent", got)
	}

	var reg Registry // the zero value is an empty registry
	if v, err := reg.Decode(ev); err != nil || string(v.(json.RawMessage)) != string(ev.Raw) {
		t.Errorf("zero registry decode: %#v %v", v, err)
	}
	Register[RecordEvent](&reg, RecordCreated)
	if v, err := reg.Decode(ev); err != nil || v.(*RecordEvent).ID.RecordID != "r1" {
		t.Errorf("zero registry after Register: %#v %v", v, err)
	}
	var nilReg *Registry
	if v, err := nilReg.Decode(ev); err != nil || string(v.(json.RawMessage)) != string(ev.Raw) {
		t.Errorf("nil registry decode: %#v %v", v, err)
	}

	var zero Router // the zero value routes too
	On(&zero, RecordCreated, func(ctx context.Context, ev *Event, body any) error { got = body; return nil })
	if err := zero.Dispatch(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.(*RecordEvent); !ok {
		t.Errorf("zero router: On[any] got %T", got)
	}
}

// Nil options are skipped everywhere, as in affinity.NewClient.
func TestNilOptionsAreSkipped(t *testing.T) {
	c, err := NewClient(testToken, nil, WithBaseURL("http://127.0.0.1:1/v2"), nil)
	if err != nil || c.BaseURL() != "http://127.0.0.1:1/v2" {
		t.Errorf("NewClient: %v, %v", c, err)
	}
	body := []byte(`{}`)
	h := http.Header{}
	SignRequestHeaders(h, body, testSecret)
	if err := Verify(body, h, []string{testSecret}, nil); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if _, err := NewHandler([]string{testSecret}, NewRouter(nil), nil, WithVerifyOptions(nil)); err != nil {
		t.Errorf("NewHandler: %v", err)
	}
}

// A Filter value marshals like a *Filter: MarshalJSON has a value receiver.
func TestFilterValueMarshalsToOperators(t *testing.T) {
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{And: []Condition{Equals("id.list_id", "L1")}}, `{"$and":[{"field":"id.list_id","operator":"equals","value":"L1"}]}`},
		{Filter{Or: []Condition{NotEquals("actor.type", "system")}}, `{"$or":[{"field":"actor.type","operator":"not_equals","value":"system"}]}`},
	} {
		got, err := json.Marshal(tc.f)
		if err != nil || string(got) != tc.want {
			t.Errorf("json.Marshal(value) = %s, %v; want %s", got, err, tc.want)
		}
		gotPtr, _ := json.Marshal(&tc.f)
		if string(gotPtr) != tc.want {
			t.Errorf("json.Marshal(pointer) = %s", gotPtr)
		}
	}
	var none *Filter
	if got, err := json.Marshal(none); err != nil || string(got) != "null" {
		t.Errorf("nil filter = %s, %v", got, err)
	}
	if got, err := json.Marshal(Subscription{EventType: RecordCreated}); err != nil || string(got) != `{"event_type":"record.created","filter":null}` {
		t.Errorf("subscription without filter = %s, %v", got, err)
	}
	if _, err := json.Marshal(Filter{}); !errors.Is(err, ErrInvalidFilter) {
		t.Errorf("empty filter value: %v", err)
	}
}

// Every error the package returns starts with "attio: " and names the
// package once.
func TestErrorsCarryOnePrefix(t *testing.T) {
	client, mux, _ := setup(t, WithMaxRetries(0))
	mux.HandleFunc("GET /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "html":
			writeJSONBody(w, 200, "<html>")
		case "filter":
			writeJSONBody(w, 200, `{"data":{"id":{"webhook_id":"w"},"subscriptions":[{"event_type":"x","filter":{"$xor":[]}}]}}`)
		default:
			writeJSONBody(w, 404, `{"status_code":404,"type":"invalid_request_error","code":"not_found","message":"Webhook not found"}`)
		}
	})
	ctx := context.Background()
	errs := map[string]error{}
	add := func(name string, err error) { errs[name] = err }

	_, _, err := client.Webhooks.Get(ctx, "")
	add("empty id", err)
	_, _, err = client.Webhooks.Get(ctx, "missing")
	add("api error", err)
	_, _, err = client.Webhooks.Get(ctx, "html")
	add("not json", err)
	_, _, err = client.Webhooks.Get(ctx, "filter")
	add("bad filter in answer", err)
	_, _, err = client.Webhooks.Create(ctx, &WebhookCreateRequest{TargetURL: "https://x.test/h", Subscriptions: []Subscription{{EventType: RecordCreated, Filter: &Filter{}}}})
	add("invalid filter in request", err)
	_, _, err = client.Webhooks.Create(ctx, &WebhookCreateRequest{TargetURL: "http://example.com/h", Subscriptions: []Subscription{{EventType: RecordCreated}}})
	add("http target", err)
	_, _, err = client.Webhooks.Update(ctx, "w1", nil)
	add("empty update", err)
	_, _, err = client.Webhooks.List(ctx, &ListOptions{Limit: -1})
	add("negative limit", err)
	_, err = NewClient("")
	add("no token", err)
	_, err = NewClient("t", WithMaxRetries(-1))
	add("bad option", err)

	_, err = Parse([]byte(`{"webhook_id":"w","events":[{"event_type":"x","id":{},"x":1,"x":2}]}`))
	add("parse duplicate in event", err)
	_, err = Parse([]byte(`{"webhook_id":"w","events":[7]}`))
	add("parse event not object", err)
	_, err = Parse([]byte(`{"webhook_id":"w","events":[{"id":{}}]}`))
	add("parse missing key", err)
	ev := mustEvent(t, `{"event_type":"record.created","id":{"workspace_id":"w"}}`)
	_, err = ev.DecodeBody()
	add("decode missing id key", err)
	r := NewRouter()
	On(r, RecordCreated, func(ctx context.Context, ev *Event, body RecordEvent) error { return nil })
	add("dispatch decode", r.Dispatch(ctx, ev))
	add("delivery no handler", r.DispatchDelivery(ctx, &Delivery{Events: []*Event{mustEvent(t, `{"event_type":"zzz","id":{}}`)}}))
	_, err = (&Filter{}).MatchJSON([]byte(`nope`))
	add("match json", err)

	h := http.Header{}
	add("not signed", Verify([]byte(`{}`), h, []string{testSecret}))
	add("no secrets", Verify([]byte(`{}`), h, nil))
	add("bad option verify", Verify([]byte(`{}`), h, []string{testSecret}, WithTolerance(-1)))
	_, err = ParseRequest(httptest.NewRequest(http.MethodGet, "/", nil), []string{testSecret})
	add("request method", err)
	_, err = NewHandler([]string{testSecret}, nil)
	add("handler without router", err)

	for name, err := range errs {
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "attio: ") || strings.Count(msg, "attio:") != 1 {
			t.Errorf("%s: %q does not name the package exactly once, at the start", name, msg)
		}
	}
	// Labelling keeps the sentinels.
	if !errors.Is(errs["invalid filter in request"], ErrInvalidRequest) || !errors.Is(errs["invalid filter in request"], ErrInvalidFilter) {
		t.Errorf("sentinels lost: %v", errs["invalid filter in request"])
	}
	if !errors.Is(errs["bad filter in answer"], ErrUnexpectedResponse) || !errors.Is(errs["bad filter in answer"], ErrInvalidFilter) {
		t.Errorf("sentinels lost: %v", errs["bad filter in answer"])
	}
	if !errors.Is(errs["dispatch decode"], ErrMissingKey) || !errors.Is(errs["delivery no handler"], ErrNoHandler) {
		t.Errorf("sentinels lost: %v / %v", errs["dispatch decode"], errs["delivery no handler"])
	}
}

// A 2xx answer that is not the expected JSON matches ErrUnexpectedResponse,
// as in the affinity SDK.
func TestNonJSONSuccessIsUnexpectedResponse(t *testing.T) {
	client, mux, _ := setup(t)
	bodies := map[string]string{
		"html":    "<html><body>Please log in</body></html>",
		"empty":   "",
		"no-data": `{"id":{"webhook_id":"w1"}}`,
		"shape":   `{"data":{"status":7}}`,
	}
	mux.HandleFunc("GET /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, bodies[r.PathValue("id")])
	})
	for id, want := range map[string]string{"html": "not JSON (Content-Type text/html)", "empty": "empty body", "no-data": `no "data"`, "shape": "decode 200 answer"} {
		_, resp, err := client.Webhooks.Get(context.Background(), id)
		if !errors.Is(err, ErrUnexpectedResponse) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want ErrUnexpectedResponse saying %q", id, err, want)
		}
		if resp == nil || resp.StatusCode != 200 {
			t.Errorf("%s: response not returned", id)
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			t.Errorf("%s: a 2xx is not an *APIError", id)
		}
	}
}

// WithMaxRetries(n) means n retries after the first attempt, in both SDKs.
func TestWithMaxRetriesCountsRetries(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		client, mux, slept := setup(t, WithMaxRetries(n), WithBackoff(time.Millisecond, time.Millisecond))
		var calls atomic.Int32
		mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			writeJSONBody(w, 503, `{}`)
		})
		_, _, err := client.Webhooks.List(context.Background(), nil)
		if !errors.Is(err, ErrServer) || int(calls.Load()) != n+1 || len(slept.all()) != n {
			t.Errorf("WithMaxRetries(%d): %d attempts, %d waits, err %v; want %d attempts", n, calls.Load(), len(slept.all()), err, n+1)
		}
	}
	c, err := NewClient(testToken)
	if err != nil || c.maxRetries != DefaultMaxRetries || c.backoff.Base != DefaultBackoffBase || c.backoff.Cap != DefaultBackoffCap {
		t.Errorf("defaults: %d %+v %v", c.maxRetries, c.backoff, err)
	}
}

// APIError carries the request id and the *http.Response, as in affinity.
func TestAPIErrorCarriesRequestIDAndResponse(t *testing.T) {
	client, mux, _ := setup(t, WithMaxRetries(0))
	mux.HandleFunc("GET /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "alt" {
			w.Header().Set("Request-Id", "req-alt")
		} else {
			w.Header().Set("X-Request-Id", "req-123")
		}
		writeJSONBody(w, 404, `{"status_code":404,"type":"invalid_request_error","code":"not_found","message":"Webhook not found"}`)
	})
	_, resp, err := client.Webhooks.Get(context.Background(), "w1")
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v", err)
	}
	if apiErr.RequestID != "req-123" || !strings.Contains(err.Error(), "(request id req-123)") {
		t.Errorf("request id %q in %q", apiErr.RequestID, err)
	}
	if apiErr.Response == nil || apiErr.Response.StatusCode != 404 || apiErr.Response != resp.Response {
		t.Errorf("response %+v", apiErr.Response)
	}
	_, _, err = client.Webhooks.Get(context.Background(), "alt")
	if !errors.As(err, &apiErr) || apiErr.RequestID != "req-alt" {
		t.Errorf("Request-Id fallback: %v", err)
	}
}
