package main

import (
	"strings"
	"testing"

	"github.com/crmhook/crmhook/affinity"
)

// The CLI's event list is affinity.EventTypes(): all 30 types, the 30th
// (smart_interaction_value.updated) included, known without --allow-unknown.
func TestAffinityCLIEventTypeList(t *testing.T) {
	s := newAffinityCLISim(t)
	_, _, err := runAffinityCLI(t, s, nil, "webhooks", "create", "--url", s.hookURL("list"), "--event", "persn.created")
	if err == nil {
		t.Fatal("a typo was accepted")
	}
	_, list, ok := strings.Cut(err.Error(), "(known: ")
	list, _, _ = strings.Cut(list, ";")
	if !ok || len(strings.Split(list, ", ")) != 30 || !strings.Contains(list, "smart_interaction_value.updated") {
		t.Fatalf("known list %q in %v", list, err)
	}
	for _, et := range affinity.EventTypes() {
		if !strings.Contains(list, string(et)) {
			t.Errorf("%s not listed", et)
		}
	}

	out, _, err := runAffinityCLI(t, s, nil, "webhooks", "create", "--url", s.hookURL("smart"), "--event", "smart_interaction_value.updated")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got, want := s.lastWrite(), `POST /webhook/subscribe {"webhook_url":"`+s.hookURL("smart")+`","subscriptions":["smart_interaction_value.updated"]}`; got != want {
		t.Errorf("sent %s\nwant %s", got, want)
	}
}
