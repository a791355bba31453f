package attio_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/crmhook/crmhook/attio"
)

// A complete Attio receiver: NewHandler checks the method, Content-Type,
// size and signature, parses the delivery and hands each event to the
// router, answering Attio with the statuses it expects.
func ExampleNewHandler() {
	router := attio.NewRouter()
	attio.On(router, attio.RecordCreated, func(ctx context.Context, ev *attio.Event, rec attio.RecordEvent) error {
		fmt.Println("record created:", rec.ID.RecordID)
		return nil // an error answers 500, so Attio retries
	})
	handler, err := attio.NewHandler([]string{"secret-from-webhooks-create"}, router)
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(handler) // in production: http.ListenAndServe(":8080", handler)
	defer srv.Close()

	fmt.Println(postAsAttio(srv.URL, "secret-from-webhooks-create"))
	// Output:
	// record created: r1
	// 200 OK
}

// postAsAttio sends a delivery the way Attio does and returns the status.
func postAsAttio(url, secret string) string {
	body := `{"webhook_id":"wh1","events":[{"event_type":"record.created","id":{"workspace_id":"w","object_id":"o","record_id":"r1"},"actor":{"type":"api-token","id":"t"}}]}`
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	attio.SignRequestHeaders(req.Header, []byte(body), secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	return resp.Status
}

// ParseRequest is the request-level check for receivers that answer
// themselves: each failure has its own sentinel.
func ExampleParseRequest() {
	secrets := []string{"secret-from-webhooks-create"}
	http.HandleFunc("POST /hooks/attio", func(w http.ResponseWriter, r *http.Request) {
		d, err := attio.ParseRequest(r, secrets)
		switch {
		case errors.Is(err, attio.ErrUnsupportedMediaType):
			w.WriteHeader(http.StatusUnsupportedMediaType)
		case errors.Is(err, attio.ErrBodyTooLarge):
			w.WriteHeader(http.StatusRequestEntityTooLarge)
		case errors.Is(err, attio.ErrTooOld), errors.Is(err, attio.ErrTooNew):
			w.WriteHeader(http.StatusBadRequest) // authentic, outside the window; d holds it
		case errors.Is(err, attio.ErrVerification):
			w.WriteHeader(http.StatusUnauthorized)
		case err != nil:
			w.WriteHeader(http.StatusBadRequest)
		default:
			for _, ev := range d.Events {
				log.Println("received", ev.Type)
			}
			io.WriteString(w, `{"ok":true}`)
		}
	})
}

// A receiver verifies the signature on the raw body before parsing it.
func ExampleVerify() {
	secrets := []string{"new-secret", "old-secret"} // both accepted while rotating
	body := []byte(`{"webhook_id":"23e42eaf","events":[{"event_type":"record.created","id":{"workspace_id":"w","object_id":"o","record_id":"r"},"actor":{"type":"api-token","id":"t"}}]}`)

	// What Attio sends, signed here with the old secret.
	h := http.Header{}
	attio.SignRequestHeaders(h, body, "old-secret")

	if err := attio.Verify(body, h, secrets); err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Println("verified")

	body[10] = 'X' // tampered in transit
	err := attio.Verify(body, h, secrets)
	fmt.Println(errors.Is(err, attio.ErrBadSignature))
	// Output:
	// verified
	// true
}

// A Router hands each event to the handler for its type, decoded into the
// family's typed struct.
func ExampleRouter() {
	r := attio.NewRouter()
	attio.On(r, attio.ListEntryCreated, func(ctx context.Context, ev *attio.Event, e attio.ListEntryEvent) error {
		fmt.Printf("entry %s added to list %s (record %s)\n", e.ID.EntryID, e.ID.ListID, e.ParentRecordID)
		return nil
	})
	r.Fallback(func(ctx context.Context, ev *attio.Event) error {
		fmt.Println("not handled:", ev.Type)
		return nil
	})

	d, err := attio.Parse([]byte(`{"webhook_id":"wh1","events":[
		{"event_type":"list-entry.created","id":{"workspace_id":"w","list_id":"L1","entry_id":"E1"},"parent_object_id":"O1","parent_record_id":"R1","actor":{"type":"workspace-member","id":"m"}},
		{"event_type":"task.created","id":{"workspace_id":"w","task_id":"T1"},"actor":{"type":"workspace-member","id":"m"}}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ev := range d.Events { // one event per delivery today, but iterate
		if err := r.Dispatch(context.Background(), ev); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// entry E1 added to list L1 (record R1)
	// not handled: task.created
}

// Filters in the flag form used by `crmhook attio webhooks create --where`.
func ExampleParseFilter() {
	f, err := attio.ParseFilter("and", []string{"id.list_id=33ebdbe9", "actor.type!=system"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ok, _ := f.MatchJSON([]byte(`{"event_type":"list-entry.created","id":{"list_id":"33ebdbe9"},"actor":{"type":"workspace-member"}}`))
	fmt.Println(f, ok)
	// Output: id.list_id=33ebdbe9 AND actor.type!=system true
}

func ExampleWebhookService_Create() {
	// A stand-in for Attio (or run `crmhook sim attio` and use its URL).
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"data":{"id":{"workspace_id":"ws","webhook_id":"wh1"},"target_url":"https://example.com/hooks/attio","subscriptions":[{"event_type":"record.created","filter":null}],"status":"active","created_at":"2025-01-01T00:00:00.000000000Z","secret":"s3cr3t"}}`)
	}))
	defer srv.Close()

	client, err := attio.NewClient("api-key", attio.WithBaseURL(srv.URL+"/v2"))
	if err != nil {
		fmt.Println(err)
		return
	}
	wh, _, err := client.Webhooks.Create(context.Background(), &attio.WebhookCreateRequest{
		TargetURL:     "https://example.com/hooks/attio",
		Subscriptions: []attio.Subscription{{EventType: attio.RecordCreated}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The secret is in this answer only: store it now.
	fmt.Println(wh.ID.WebhookID, wh.Status, wh.Secret != "")
	// Output: wh1 active true
}
