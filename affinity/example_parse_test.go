package affinity_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/crmhook/crmhook/affinity"
)

// A receiver parses the raw body (after checking the secret in the URL
// path: Affinity signs nothing) and keeps events that are only too old as
// rejections. ParseRequest and Handler do the HTTP part.
func ExampleParse() {
	body := []byte(`{"type":"person.created","body":{"id":38706,"type":0,"first_name":"John","last_name":"Doe",` +
		`"primary_email":"john.doe@example.com","emails":[],"organization_ids":[]},"sent_at":1636645209}`)
	now := func() time.Time { return time.Unix(1636645209+60, 0) } // a minute later

	ev, err := affinity.Parse(body, affinity.WithNow(now))
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := affinity.DecodeBody(ev)
	if err != nil {
		fmt.Println(err)
		return
	}
	person := p.(*affinity.Person)
	fmt.Println(ev.Type, ev.SentAt.Format(time.RFC3339), person.ID, person.OrganizationIDs != nil)

	// The same delivery 13 hours later is outside the default 12-hour window
	// (Affinity retries for up to 10 hours). Parse returns no event, but the
	// error carries it, so it can be kept as a rejection.
	later := func() time.Time { return time.Unix(1636645209+13*3600, 0) }
	ev, err = affinity.Parse(body, affinity.WithNow(later))
	var stale *affinity.StaleError
	fmt.Println(ev == nil, errors.Is(err, affinity.ErrTooOld), errors.As(err, &stale), stale.Event.Type)

	// A tighter window, or none at all, is an option.
	_, err = affinity.Parse(body, affinity.WithNow(now), affinity.WithMaxAge(30*time.Second))
	fmt.Println(errors.Is(err, affinity.ErrTooOld))
	_, err = affinity.Parse(body, affinity.WithNow(later), affinity.WithoutMaxAge())
	fmt.Println(err)

	// Key order does not matter; a key that differs from "type", "body" or
	// "sent_at" only by case is refused, as is a duplicate key.
	_, err = affinity.ParseString(`{"sent_at":1636645209,"body":{"test":true},"type":"sample.webhook"}`, affinity.WithNow(now))
	fmt.Println(err)
	_, err = affinity.ParseString(`{"type":"person.created","body":{},"sent_at":1636645209,"Type":"note.created"}`, affinity.WithNow(now))
	fmt.Println(err)

	// Broken envelopes are refused, naming the key and never its value.
	_, err = affinity.ParseString(`{"type":"person.created","sent_at":1636645209}`)
	fmt.Println(err)
	// Output:
	// person.created 2021-11-11T15:40:09Z 38706 true
	// true true true person.created
	// true
	// <nil>
	// <nil>
	// affinity: cannot parse webhook payload: invalid payload: key "Type" differs from "type" only by case
	// affinity: cannot parse webhook payload: invalid payload: missing key "body"
}
