package affinity_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/crmhook/crmhook/affinity"
)

// A complete receiver: typed handlers on a Router, served by a Handler that
// checks the path secret, the method, the content type, the size and the
// envelope, answers Affinity's probe, and says 200 only once the handler has
// returned nil (a handler error is a 500, so Affinity sends the event again).
func ExampleNewHandler() {
	router := affinity.NewRouter()
	affinity.On(router, affinity.PersonCreated, func(ctx context.Context, ev *affinity.Event, p affinity.Person) error {
		fmt.Println("new person:", p.FirstName, p.LastName)
		return nil
	})
	hook, err := affinity.NewHandler(router, affinity.WithPathSecret("long-random-path-secret"))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/affinity/", hook) // Affinity POSTs to https://…/hooks/affinity/long-random-path-secret

	// What Affinity would send, and what the receiver answers.
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(path string, typ affinity.EventType) {
		body := affinity.NewEnvelope(typ, affinity.SampleBody(typ), time.Now())
		resp, err := http.Post(srv.URL+path, "application/json", bytes.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		fmt.Printf("%s %s: %d %s\n", typ, path, resp.StatusCode, answer)
	}
	post("/hooks/affinity/long-random-path-secret", affinity.SampleWebhook)
	post("/hooks/affinity/long-random-path-secret", affinity.PersonCreated)
	post("/hooks/affinity/a-guess", affinity.PersonCreated)
	// Output:
	// sample.webhook /hooks/affinity/long-random-path-secret: 200 {"ok":true}
	// new person: John Doe
	// person.created /hooks/affinity/long-random-path-secret: 200 {"ok":true}
	// person.created /hooks/affinity/a-guess: 404
}
