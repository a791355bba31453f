package affinity_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/crmhook/crmhook/affinity"
)

// A receiver parses the raw body (after checking the secret in the URL
// path: Affinity signs nothing) and keeps events that are only too old as
// rejections.
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

	// The same delivery an hour later is outside the default 5-minute window:
	// the event comes back with the error, so it can be kept as a rejection.
	later := func() time.Time { return time.Unix(1636645209+3600, 0) }
	ev, err = affinity.Parse(body, affinity.WithNow(later))
	fmt.Println(errors.Is(err, affinity.ErrTooOld), errors.Is(err, affinity.ErrParse), ev != nil)

	// Broken envelopes are refused, naming the key and never its value.
	_, err = affinity.ParseString(`{"type":"person.created","sent_at":1636645209}`)
	fmt.Println(err)
	// Output:
	// person.created 2021-11-11T15:40:09Z 38706 true
	// true true true
	// affinity: cannot parse webhook payload: invalid payload: missing key "body"
}
