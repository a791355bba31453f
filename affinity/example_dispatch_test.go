package affinity_test

import (
	"context"
	"fmt"
	"time"

	"github.com/crmhook/crmhook/affinity"
)

// A Router hands each event to the handler for its type, with the body
// decoded into the family's typed struct. Unknown types reach the fallback.
func ExampleRouter() {
	r := affinity.NewRouter()
	affinity.On(r, affinity.ListEntryCreated, func(ctx context.Context, ev *affinity.Event, e *affinity.ListEntry) error {
		fmt.Printf("%s %s added to list %d\n", e.Person.FirstName, e.Person.LastName, e.ListID)
		return nil
	})
	affinity.On(r, affinity.FieldValueUpdated, func(ctx context.Context, ev *affinity.Event, v affinity.FieldValue) error {
		loc, err := v.TypedValue()
		if err != nil {
			return err
		}
		fmt.Printf("%s is now %s\n", v.Field.Name, *loc.(*affinity.Location).City)
		return nil
	})
	r.Fallback(func(ctx context.Context, ev *affinity.Event) error {
		fmt.Println("not handled:", ev.Type, ev.Type.Known())
		return nil
	})

	sentAt := time.Now()
	for _, delivery := range [][]byte{
		affinity.NewEnvelope(affinity.ListEntryCreated, affinity.SampleBody(affinity.ListEntryCreated), sentAt),
		affinity.NewEnvelope(affinity.FieldValueUpdated, affinity.SampleBody(affinity.FieldValueUpdated), sentAt),
		affinity.NewEnvelope("deal.closed", []byte(`{"id":1}`), sentAt),
	} {
		ev, err := affinity.Parse(delivery)
		if err != nil {
			fmt.Println(err)
			continue
		}
		if err := r.Dispatch(context.Background(), ev); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// John Doe added to list 26
	// Location is now San Francisco
	// not handled: deal.closed false
}

// Register teaches a registry a type this package does not know yet.
func ExampleRegister() {
	type Deal struct {
		ID    int64  `json:"id"`
		Stage string `json:"stage"`
	}
	reg := affinity.NewRegistry()
	affinity.Register[Deal](reg, "deal.closed")

	ev, err := affinity.ParseString(`{"type":"deal.closed","body":{"id":7,"stage":"won"},"sent_at":1700000000}`,
		affinity.WithoutMaxAge())
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := reg.Decode(ev)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%+v\n", *v.(*Deal))
	// Output: {ID:7 Stage:won}
}
