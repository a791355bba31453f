package affinity_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/sim/affinitysim"
)

// exampleSim starts a simulated Affinity instance and a receiving endpoint
// on loopback; the examples point the client at them instead of
// https://api.affinity.co.
func exampleSim() (apiURL, hookURL string, stop func()) {
	sim, err := affinitysim.New(affinitysim.Config{})
	if err != nil {
		log.Fatal(err)
	}
	api := httptest.NewServer(sim)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	return api.URL, hook.URL + "/hooks/affinity/long-random-path-secret", func() {
		hook.Close()
		api.Close()
		sim.Close()
	}
}

func ExampleNewClientFromEnv() {
	// AFFINITY_API_KEY holds the key; AFFINITY_BASE_URL, when set, another API root.
	client, err := affinity.NewClientFromEnv()
	if errors.Is(err, affinity.ErrNoAPIKey) {
		fmt.Println("set AFFINITY_API_KEY first")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	whs, resp, err := client.Webhooks.List(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(whs), "subscriptions;", resp.RateLimits.UserRemaining, "requests left this minute")
}

func ExampleWebhookService_Create() {
	apiURL, hookURL, stop := exampleSim()
	defer stop()

	client, err := affinity.NewClient(affinitysim.DefaultAdminKey, affinity.WithBaseURL(apiURL))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Affinity POSTs a sample.webhook probe to hookURL before it accepts.
	wh, resp, err := client.Webhooks.Create(ctx, &affinity.CreateWebhookRequest{
		WebhookURL:    hookURL,
		Subscriptions: []affinity.EventType{affinity.FieldValueUpdated, affinity.ListEntryCreated},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(wh.ID, wh.Subscriptions, "created by", wh.CreatedBy)
	fmt.Println("user budget:", resp.RateLimits.UserLimit, "per minute")
	// Output:
	// 1001 [field_value.updated list_entry.created] created by 1
	// user budget: 900 per minute
}

func ExampleErrSubscriptionLimit() {
	apiURL, hookURL, stop := exampleSim()
	defer stop()

	client, err := affinity.NewClient(affinitysim.DefaultAdminKey, affinity.WithBaseURL(apiURL))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		_, _, err := client.Webhooks.Create(ctx, &affinity.CreateWebhookRequest{WebhookURL: hookURL})
		switch {
		case errors.Is(err, affinity.ErrSubscriptionLimit):
			fmt.Printf("create %d refused: the instance already has %d subscriptions\n", i, affinity.MaxWebhookSubscriptions)
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Printf("create %d ok\n", i)
		}
	}
	// Output:
	// create 1 ok
	// create 2 ok
	// create 3 ok
	// create 4 refused: the instance already has 3 subscriptions
}

func ExampleWebhookService_Update() {
	apiURL, hookURL, stop := exampleSim()
	defer stop()

	client, err := affinity.NewClient(affinitysim.DefaultAdminKey, affinity.WithBaseURL(apiURL), affinity.WithBearerAuth())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	wh, _, err := client.Webhooks.Create(ctx, &affinity.CreateWebhookRequest{
		WebhookURL: hookURL, Subscriptions: []affinity.EventType{affinity.PersonCreated},
	})
	if err != nil {
		log.Fatal(err)
	}
	// Only the fields set are sent: here, every event type from now on.
	wh, _, err = client.Webhooks.Update(ctx, wh.ID, &affinity.UpdateWebhookRequest{
		Subscriptions: &[]affinity.EventType{},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("all events:", wh.AllEvents())
	if wh, _, err = client.Webhooks.Disable(ctx, wh.ID); err != nil {
		log.Fatal(err)
	}
	fmt.Println("disabled:", wh.Disabled)
	// Output:
	// all events: true
	// disabled: true
}
