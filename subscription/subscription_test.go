package subscription_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/subscription"
)

// One config declares an Affinity V1, an Affinity v2 and an Attio
// subscription; apply creates the three against the simulators (Affinity's
// probe answered by a real receiver), stores Attio's secret before setting
// the webhook's events, and the next plan is empty.
func TestSubscriptionApplyCreatesDeclaredSubscriptions(t *testing.T) {
	e := newEnv(t, sourcesYAML, envOptions{realReceiver: true})
	attioSpy := e.spy("attio")
	// When Manager sets the new Attio webhook's events, its secret is
	// already in the store, and the webhook receives nothing yet.
	var confirmed bool
	attioSpy.onUpdate = func(id string) {
		if confirmed {
			return
		}
		confirmed = true
		stored := e.secrets("attio")
		if len(stored) != 1 || stored[0].SubscriptionID != id || stored[0].State != crmhook.SecretActive || stored[0].Secret == "" {
			t.Errorf("at confirm, stored secrets = %+v, want one active secret for webhook %s", redactSecrets(stored), id)
		}
		res, err := e.att.Trigger(e.ctx, "record.created", nil)
		if err != nil {
			t.Errorf("trigger: %v", err)
		}
		for _, d := range res.Deliveries {
			if d.WebhookID == id {
				t.Errorf("the webhook received an event before its events were set")
			}
		}
	}

	p := e.plan(subscription.PlanOptions{})
	for _, src := range []string{"aff-v1", "aff-v2", "attio"} {
		s := step(t, p, src, subscription.ActionCreate)
		if s.Status != subscription.StatusMissing || s.SubscriptionID != "" {
			t.Errorf("%s create step %+v", src, s)
		}
		if strings.Contains(s.URL, v1Secret) || strings.Contains(s.URL, v2Secret) {
			t.Errorf("step URL is not redacted: %s", s.URL)
		}
	}
	if len(p.Steps) != 3 || !p.Changed() {
		t.Fatalf("plan %+v, want three creates", p.Steps)
	}
	e.apply(p)
	for _, s := range p.Steps {
		if !strings.HasPrefix(s.Result, "created ") {
			t.Errorf("%s: result %q", s.Source, s.Result)
		}
	}

	// Affinity probed both URLs and the receiver answered.
	if probes := e.aff.Probes(); len(probes) != 2 || !probes[0].OK || !probes[1].OK {
		t.Fatalf("probes %+v", probes)
	}
	v1 := e.affinityAt(e.hookURL + "/hooks/aff-v1/" + v1Secret)
	if len(v1) != 1 || !slices.Equal(sorted(v1[0].Subscriptions), []string{"organization.created", "person.created"}) || v1[0].Disabled {
		t.Fatalf("V1 subscription %+v", v1)
	}
	v2 := e.affinityAt(e.hookURL + "/hooks/aff-v2/" + v2Secret)
	if len(v2) != 1 || len(v2[0].Subscriptions) != 0 {
		t.Fatalf("v2 subscription %+v, want one for every event type", v2)
	}
	att := e.attioAt(e.hookURL + "/hooks/attio")
	if len(att) != 1 || len(att[0].Subscriptions) != 2 {
		t.Fatalf("attio webhooks %+v", att)
	}
	for _, s := range att[0].Subscriptions {
		switch s.EventType {
		case "record.created":
			if s.Filter == nil || s.Filter.String() != attio.And(attio.Equals("id.object_id", "people")).String() {
				t.Errorf("record.created filter %v", s.Filter)
			}
		case "note.created":
			if s.Filter != nil {
				t.Errorf("note.created filter %v, want none", s.Filter)
			}
		default:
			t.Errorf("unexpected subscription %s", s.EventType)
		}
	}
	if !confirmed || len(attioSpy.creates) != 1 || len(attioSpy.creates[0]) != 0 {
		t.Fatalf("attio create calls %v (confirmed %v): want one create receiving nothing, then its events", attioSpy.creates, confirmed)
	}
	stored := e.secrets("attio")
	if len(stored) != 1 || stored[0].SubscriptionID != att[0].ID.WebhookID {
		t.Fatalf("stored attio secrets %+v, want the webhook's", redactSecrets(stored))
	}
	// The stored secret is the one the webhook signs with.
	secrets, err := e.m.Secrets(e.ctx, "attio")
	if err != nil || !slices.Equal(secrets, []string{stored[0].Secret, attioSecret}) {
		t.Fatalf("effective attio secrets: %d %v", len(secrets), err)
	}

	again := e.plan(subscription.PlanOptions{})
	if again.Changed() || len(again.Steps) != 3 {
		t.Fatalf("second plan %+v, want three ok steps", again.Steps)
	}
	for _, s := range again.Steps {
		if s.Action != subscription.ActionNone || s.Status != subscription.StatusActive {
			t.Errorf("second plan step %+v", s)
		}
	}
	// Applying the first plan again changes nothing (idempotent).
	e.apply(p)
	for _, s := range p.Steps {
		if !strings.HasPrefix(s.Result, "already exists") {
			t.Errorf("re-applied %s: %q", s.Source, s.Result)
		}
	}
	if n := len(e.aff.Webhooks()); n != 2 {
		t.Fatalf("%d Affinity subscriptions after re-apply, want 2", n)
	}
	if n := len(e.att.Webhooks()); n != 1 {
		t.Fatalf("%d Attio webhooks after re-apply, want 1", n)
	}
}

// A changed event list plans an update, which apply performs; so does a
// changed Attio filter, while the same filter written differently is no
// change.
func TestSubscriptionEventAndFilterChangesPlanUpdates(t *testing.T) {
	e := newEnv(t, sourcesYAML, envOptions{})
	e.converge(subscription.PlanOptions{})

	changed := strings.Replace(sourcesYAML, "events: [person.created, organization.created]", "events: [person.created, note.created]", 1)
	changed = strings.Replace(changed, `"value": "people"`, `"value": "companies"`, 1)
	e.reconfigure(changed)
	p := e.plan(subscription.PlanOptions{})
	if s := step(t, p, "aff-v1", subscription.ActionUpdate); !slices.Equal(s.Changes, []string{"events: +note.created -organization.created"}) {
		t.Fatalf("V1 changes %q", s.Changes)
	}
	if s := step(t, p, "attio", subscription.ActionUpdate); !slices.Equal(s.Changes, []string{"filter: record.created"}) {
		t.Fatalf("attio changes %q", s.Changes)
	}
	step(t, p, "aff-v2", subscription.ActionNone)
	e.apply(p)
	if v1 := e.affinityAt(e.hookURL + "/hooks/aff-v1/" + v1Secret); len(v1) != 1 || !slices.Equal(sorted(v1[0].Subscriptions), []string{"note.created", "person.created"}) {
		t.Fatalf("V1 after update %+v", v1)
	}
	att := e.attioAt(e.hookURL + "/hooks/attio")
	if len(att) != 1 || !strings.Contains(att[0].Subscriptions[0].Filter.String()+att[0].Subscriptions[1].Filter.String(), "companies") {
		t.Fatalf("attio after update %+v", att)
	}
	if e.plan(subscription.PlanOptions{}).Changed() {
		t.Fatal("plan after the update still changes something")
	}

	// The same filter with its keys in another order, and the event list
	// in another order, is no change.
	same := strings.Replace(changed, `{"field": "id.object_id", "operator": "equals", "value": "companies"}`, `{"value": "companies", "operator": "equals", "field": "id.object_id"}`, 1)
	same = strings.Replace(same, "events: [person.created, note.created]", "events: [note.created, person.created, note.created]", 1)
	e.reconfigure(same)
	if p := e.plan(subscription.PlanOptions{}); p.Changed() {
		t.Fatalf("a reordered but equal declaration plans %+v", p.Steps)
	}

	// v2: none → a list of types, and back.
	e.reconfigure(strings.Replace(same, "      api: v2\n", "      api: v2\n      events: [person.deleted]\n", 1))
	if s := step(t, e.plan(subscription.PlanOptions{}), "aff-v2", subscription.ActionUpdate); !slices.Equal(s.Changes, []string{"events: all → person.deleted"}) {
		t.Fatalf("v2 changes %q", s.Changes)
	}
	e.converge(subscription.PlanOptions{})
	if v2 := e.affinityAt(e.hookURL + "/hooks/aff-v2/" + v2Secret); len(v2) != 1 || !slices.Equal(v2[0].Subscriptions, []string{"person.deleted"}) {
		t.Fatalf("v2 after update %+v", v2)
	}
}

// A subscription at someone else's URL is listed as unmanaged and left
// alone; with Prune it is deleted. A subscription at another source's hook
// is that source's business, never this one's.
func TestSubscriptionUnmanagedUntouchedUnlessPruned(t *testing.T) {
	e := newEnv(t, sourcesYAML, envOptions{})
	other := otherEndpoint(t, "/someone-elses-webhook")
	wh, _, err := e.affinityClient().Webhooks.Create(e.ctx, &affinity.CreateWebhookRequest{WebhookURL: other})
	if err != nil {
		t.Fatal(err)
	}
	otherAttio, _, err := e.attioClient().Webhooks.Create(e.ctx, &attio.WebhookCreateRequest{TargetURL: other, Subscriptions: []attio.Subscription{{EventType: attio.TaskCreated}}})
	if err != nil {
		t.Fatal(err)
	}
	id := itoa(wh.ID)
	// Under the source's own hook but with a secret it never had: not ours.
	stray, _, err := e.attioClient().Webhooks.Create(e.ctx, &attio.WebhookCreateRequest{TargetURL: e.hookURL + "/hooks/attio/not-a-secret-of-this-source", Subscriptions: []attio.Subscription{{EventType: attio.TaskCreated}}})
	if err != nil {
		t.Fatal(err)
	}

	p := e.converge(subscription.PlanOptions{})
	// The V1 and v2 sources see the same instance: the other subscription
	// is listed once.
	var unmanaged []subscription.Step
	for _, s := range p.Steps {
		if s.Action == subscription.ActionUnmanaged {
			unmanaged = append(unmanaged, s)
		}
	}
	if len(unmanaged) != 3 || unmanaged[0].SubscriptionID != id || unmanaged[1].SubscriptionID != otherAttio.ID.WebhookID || unmanaged[2].SubscriptionID != stray.ID.WebhookID {
		t.Fatalf("unmanaged steps %+v", unmanaged)
	}
	// Neither Affinity source takes the other's subscription for unmanaged.
	for _, s := range e.plan(subscription.PlanOptions{}).Steps {
		if s.Action == subscription.ActionUnmanaged && s.SubscriptionID != id && s.SubscriptionID != otherAttio.ID.WebhookID && s.SubscriptionID != stray.ID.WebhookID {
			t.Fatalf("a declared subscription listed as unmanaged: %+v", s)
		}
	}
	if got := e.affinityAt(other); len(got) != 1 {
		t.Fatalf("the unmanaged subscription was touched: %+v", got)
	}

	pruned := e.plan(subscription.PlanOptions{Prune: true})
	var deletes []string
	for _, s := range pruned.Steps {
		if s.Action == subscription.ActionDelete {
			deletes = append(deletes, s.SubscriptionID)
		}
	}
	if !slices.Equal(deletes, []string{id, otherAttio.ID.WebhookID, stray.ID.WebhookID}) || pruned.Steps[0].Action != subscription.ActionDelete {
		t.Fatalf("prune plan %+v", pruned.Steps)
	}
	e.apply(pruned)
	if got := e.affinityAt(other); len(got) != 0 {
		t.Fatalf("pruned subscription still there: %+v", got)
	}
	if got := e.attioAt(other); len(got) != 0 {
		t.Fatalf("pruned webhook still there: %+v", got)
	}
	if len(e.aff.Webhooks()) != 2 || len(e.att.Webhooks()) != 1 {
		t.Fatalf("prune deleted a declared subscription: %+v %+v", e.aff.Webhooks(), e.att.Webhooks())
	}
}

// A config needing a fourth V1 subscription is refused, before anything is
// created, with an error naming the three that exist.
func TestSubscriptionFourthAffinitySubscriptionRefused(t *testing.T) {
	e := newEnv(t, sourcesYAML, envOptions{})
	c := e.affinityClient()
	var ids []string
	for _, path := range []string{"/a/one", "/b/two", "/c/three"} {
		wh, _, err := c.Webhooks.Create(e.ctx, &affinity.CreateWebhookRequest{WebhookURL: otherEndpoint(t, path)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, itoa(wh.ID))
	}
	probes := len(e.aff.Probes())

	p := e.plan(subscription.PlanOptions{})
	err := e.m.Apply(e.ctx, p)
	var ole *subscription.OverLimitError
	if !errors.As(err, &ole) || !errors.Is(err, subscription.ErrOverLimit) {
		t.Fatalf("apply: %v, want an *OverLimitError", err)
	}
	if ole.Limit != 3 || len(ole.Existing) != 3 || ole.Need != 5 {
		t.Fatalf("OverLimitError %+v", ole)
	}
	msg := err.Error()
	for _, want := range append(ids, "/a/one", "/b/two", "/c/three", "allows 3") {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	t.Log(msg)
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if len(e.aff.Webhooks()) != 3 || len(e.aff.Probes()) != probes || len(e.att.Webhooks()) != 0 {
		t.Fatalf("something was created: %d Affinity, %d probes, %d Attio", len(e.aff.Webhooks()), len(e.aff.Probes())-probes, len(e.att.Webhooks()))
	}
	for _, s := range p.Steps {
		if s.Result != "" {
			t.Errorf("step %s %s ran: %q", s.Source, s.Action, s.Result)
		}
	}
	// Create refuses the same way.
	if _, err := e.m.Create(e.ctx, "aff-v1"); !errors.Is(err, subscription.ErrOverLimit) {
		t.Fatalf("create: %v", err)
	}
	// With room for one it goes through, and the v2 one is refused by
	// the same count: V1 and v2 share the instance.
	if _, err := c.Webhooks.Delete(e.ctx, mustID(t, ids[0])); err != nil {
		t.Fatal(err)
	}
	err = e.m.Apply(e.ctx, e.plan(subscription.PlanOptions{}))
	if !errors.As(err, &ole) || ole.Need != 4 || len(ole.Existing) != 2 {
		t.Fatalf("apply with room for one: %v", err)
	}
	e.converge(subscription.PlanOptions{Sources: []string{"aff-v1", "attio"}})
	if len(e.aff.Webhooks()) != 3 {
		t.Fatalf("%d Affinity subscriptions", len(e.aff.Webhooks()))
	}
}

// A crash between Attio's create and the store leaves a webhook of ours
// whose secret nobody has: the plan recreates it ("secret unknown"), apply
// stores the new webhook's secret and deletes the old one.
func TestSubscriptionCrashBetweenCreateAndStoreHeals(t *testing.T) {
	e := newEnv(t, sourcesYAML, envOptions{})
	lost, _, err := e.attioClient().Webhooks.Create(e.ctx, &attio.WebhookCreateRequest{
		TargetURL:     e.hookURL + "/hooks/attio",
		Subscriptions: []attio.Subscription{{EventType: attio.NoteCreated}},
	}) // its secret is dropped here
	if err != nil {
		t.Fatal(err)
	}
	p := e.plan(subscription.PlanOptions{Sources: []string{"attio"}})
	s := step(t, p, "attio", subscription.ActionRecreate)
	if s.SubscriptionID != lost.ID.WebhookID || s.Changes[0] != "secret unknown" || !slices.Contains(s.Changes, "events: +record.created") {
		t.Fatalf("recreate step %+v", s)
	}
	e.apply(p)
	att := e.att.Webhooks()
	if len(att) != 1 || att[0].ID.WebhookID == lost.ID.WebhookID {
		t.Fatalf("attio webhooks %+v, want only a new one", att)
	}
	stored := e.secrets("attio")
	if len(stored) != 1 || stored[0].SubscriptionID != att[0].ID.WebhookID || stored[0].State != crmhook.SecretActive {
		t.Fatalf("stored secrets %+v", redactSecrets(stored))
	}
	if want := "created " + att[0].ID.WebhookID + ", deleted " + lost.ID.WebhookID; p.Steps[0].Result != want {
		t.Fatalf("result %q, want %q", p.Steps[0].Result, want)
	}
	if e.plan(subscription.PlanOptions{Sources: []string{"attio"}}).Changed() {
		t.Fatal("plan after the recreate still changes something")
	}

	// Recreating a webhook whose secret is stored retires that secret
	// after a grace period instead of dropping it at once.
	e.m.Now = func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }
	p = &subscription.Plan{Steps: []subscription.Step{{Source: "attio", Action: subscription.ActionRecreate, SubscriptionID: att[0].ID.WebhookID}}}
	e.apply(p)
	for _, sec := range e.secrets("attio") {
		switch {
		case sec.SubscriptionID == att[0].ID.WebhookID:
			if sec.State != crmhook.SecretRetiring || !sec.RetireAt.Equal(e.m.Now().Add(subscription.RetireGrace)) {
				t.Errorf("old secret %s until %v", sec.State, sec.RetireAt)
			}
		case sec.State != crmhook.SecretActive:
			t.Errorf("new secret %s", sec.State)
		}
	}
}

// A subscription Affinity disabled plans enable, and apply re-enables it
// (V1 and v2); drift on a disabled one is corrected on the way.
func TestSubscriptionDisabledAffinityPlansEnable(t *testing.T) {
	e := newEnv(t, sourcesYAML, envOptions{realReceiver: true})
	e.converge(subscription.PlanOptions{})
	c := e.affinityClient()
	v1 := e.affinityAt(e.hookURL + "/hooks/aff-v1/" + v1Secret)[0]
	v2 := e.affinityAt(e.hookURL + "/hooks/aff-v2/" + v2Secret)[0]
	if _, _, err := c.Webhooks.Disable(e.ctx, v1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WebhooksV2().Disable(e.ctx, v2.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Webhooks.Update(e.ctx, v1.ID, &affinity.UpdateWebhookRequest{Subscriptions: &[]affinity.EventType{"person.created"}}); err != nil {
		t.Fatal(err)
	}

	p := e.plan(subscription.PlanOptions{})
	s1 := step(t, p, "aff-v1", subscription.ActionEnable)
	if s1.Status != subscription.StatusDisabled || !slices.Equal(s1.Changes, []string{"status disabled", "events: +organization.created"}) {
		t.Fatalf("V1 enable step %+v", s1)
	}
	if s2 := step(t, p, "aff-v2", subscription.ActionEnable); s2.Status != subscription.StatusDisabled || s2.SubscriptionID != itoa(v2.ID) {
		t.Fatalf("v2 enable step %+v", s2)
	}
	e.apply(p)
	for _, wh := range e.aff.Webhooks() {
		if wh.Disabled {
			t.Fatalf("still disabled: %d", wh.ID)
		}
	}
	if got := e.affinityAt(v1.WebhookURL)[0]; !slices.Equal(sorted(got.Subscriptions), []string{"organization.created", "person.created"}) {
		t.Fatalf("V1 events after enable %v", got.Subscriptions)
	}
	if e.plan(subscription.PlanOptions{}).Changed() {
		t.Fatal("plan after enable still changes something")
	}
}

// Two subscriptions of ours: the older healthy one is kept, the other
// deleted. One at a URL with an older secret of the source is ours and is
// moved to the current URL.
func TestSubscriptionDuplicatesAndOldURLs(t *testing.T) {
	sources := strings.Replace(sourcesYAML, "secrets: ["+v1Secret+"]", "secrets: ["+v1Secret+", "+v1OldSecret+"]", 1)
	e := newEnv(t, sources, envOptions{})
	c := e.affinityClient()
	old, _, err := c.Webhooks.Create(e.ctx, &affinity.CreateWebhookRequest{WebhookURL: e.hookURL + "/hooks/aff-v1/" + v1OldSecret, Subscriptions: []affinity.EventType{"person.created", "organization.created"}})
	if err != nil {
		t.Fatal(err)
	}
	dup, _, err := c.Webhooks.Create(e.ctx, &affinity.CreateWebhookRequest{WebhookURL: e.hookURL + "/hooks/aff-v1"})
	if err != nil {
		t.Fatal(err)
	}
	p := e.plan(subscription.PlanOptions{Sources: []string{"aff-v1"}})
	del := step(t, p, "aff-v1", subscription.ActionDelete)
	upd := step(t, p, "aff-v1", subscription.ActionUpdate)
	if del.SubscriptionID != itoa(dup.ID) || upd.SubscriptionID != itoa(old.ID) || !slices.Equal(upd.Changes, []string{"url"}) {
		t.Fatalf("plan %+v", p.Steps)
	}
	if p.Steps[0].Action != subscription.ActionDelete {
		t.Fatalf("deletes do not come first: %+v", p.Steps)
	}
	e.apply(p)
	if got := e.aff.Webhooks(); len(got) != 1 || got[0].ID != old.ID || got[0].WebhookURL != e.hookURL+"/hooks/aff-v1/"+v1Secret {
		t.Fatalf("after apply %+v", got)
	}

	// A secret the store holds (a rotation's) becomes the current one.
	rotated := "v1-rotated-secret-0123456789abcdefgh"
	if _, err := e.store.PutSecret(e.ctx, crmhook.SourceSecret{Source: "aff-v1", Secret: rotated, State: crmhook.SecretActive}); err != nil {
		t.Fatal(err)
	}
	u, err := e.m.HookURL(e.ctx, "aff-v1")
	if err != nil || u != e.hookURL+"/hooks/aff-v1/"+rotated {
		t.Fatalf("hook URL %v", err)
	}
	if s := step(t, e.plan(subscription.PlanOptions{}), "aff-v1", subscription.ActionUpdate); !slices.Equal(s.Changes, []string{"url"}) {
		t.Fatalf("after rotation %+v", s)
	}
	// The Attio source's URL has no path secret.
	if u, err := e.m.HookURL(e.ctx, "attio"); err != nil || u != e.hookURL+"/hooks/attio" {
		t.Fatalf("attio hook URL %q %v", u, err)
	}
}

// Status reports each declared subscription with the provider's status,
// the store's last check and last event, and the source's gaps.
func TestSubscriptionStatus(t *testing.T) {
	e := newEnv(t, sourcesYAML, envOptions{})
	rows, err := e.m.Status(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Status != subscription.StatusMissing || rows[0].SubscriptionID != "" {
		t.Fatalf("status before apply %+v", rows)
	}
	e.converge(subscription.PlanOptions{})
	v1 := e.affinityAt(e.hookURL + "/hooks/aff-v1/" + v1Secret)[0]
	checked := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := e.store.PutSubscriptionState(e.ctx, crmhook.SubscriptionState{Source: "aff-v1", SubscriptionID: itoa(v1.ID), Status: "active", LastCheckedAt: checked, LastHealthyAt: checked}); err != nil {
		t.Fatal(err)
	}
	gap := crmhook.Gap{Source: "aff-v1", SubscriptionID: itoa(v1.ID), From: checked.Add(-2 * time.Hour), To: checked.Add(-time.Hour), RecordedAt: checked}
	if _, err := e.store.RecordGap(e.ctx, gap); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Insert(e.ctx, crmhook.NewEvent{
		Event:       crmhook.Event{ID: crmhook.NewEventID(), Source: "aff-v1", Provider: crmhook.ProviderAffinity, Type: "person.created", DedupeKey: "k1", ReceivedAt: checked, Payload: json.RawMessage(`{}`)},
		DedupeUntil: checked.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.affinityClient().Webhooks.Disable(e.ctx, v1.ID); err != nil {
		t.Fatal(err)
	}
	rows, err = e.m.Status(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := rows[0]
	if r.Source != "aff-v1" || r.SubscriptionID != itoa(v1.ID) || r.Status != subscription.StatusDisabled ||
		!r.LastCheckedAt.Equal(checked) || r.LastEventAt.IsZero() || len(r.Gaps) != 1 || !r.Gaps[0].From.Equal(gap.From) {
		t.Fatalf("status row %+v", r)
	}
	if strings.Contains(r.URL, v1Secret) {
		t.Fatalf("status URL not redacted: %s", r.URL)
	}
	if rows[1].Status != subscription.StatusActive || !rows[1].LastCheckedAt.IsZero() || len(rows[1].Gaps) != 0 {
		t.Fatalf("v2 row %+v", rows[1])
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// redactSecrets hides secret values in a failure message.
func redactSecrets(ss []crmhook.SourceSecret) []crmhook.SourceSecret {
	out := slices.Clone(ss)
	for i := range out {
		out[i].Secret = "…"
	}
	return out
}

// Attio has no API to re-activate a webhook: a degraded or inactive one is
// recreated, and the old one's secret retires after a grace period.
func TestSubscriptionAttioDegradedPlansRecreate(t *testing.T) {
	e := newEnv(t, sourcesYAML, envOptions{})
	spy := e.spy("attio")
	e.converge(subscription.PlanOptions{Sources: []string{"attio"}})
	old := e.att.Webhooks()[0].ID.WebhookID
	for _, st := range []subscription.Status{subscription.StatusDegraded, subscription.StatusInactive} {
		spy.mu.Lock()
		spy.status = map[string]subscription.Status{old: st}
		spy.mu.Unlock()
		s := step(t, e.plan(subscription.PlanOptions{Sources: []string{"attio"}}), "attio", subscription.ActionRecreate)
		if s.Status != st || !slices.Equal(s.Changes, []string{"status " + string(st)}) || s.SubscriptionID != old {
			t.Fatalf("%s: step %+v", st, s)
		}
	}
	e.m.Now = func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }
	e.apply(e.plan(subscription.PlanOptions{Sources: []string{"attio"}}))
	att := e.att.Webhooks()
	if len(att) != 1 || att[0].ID.WebhookID == old {
		t.Fatalf("webhooks after recreate %+v", att)
	}
	for _, sec := range e.secrets("attio") {
		want := crmhook.SecretActive
		if sec.SubscriptionID == old {
			want = crmhook.SecretRetiring
		}
		if sec.State != want {
			t.Errorf("secret of %s is %s, want %s", sec.SubscriptionID, sec.State, want)
		}
	}
	if err := spy.Enable(e.ctx, att[0].ID.WebhookID); !errors.Is(err, subscription.ErrCannotReactivate) {
		t.Fatalf("attio enable: %v", err)
	}
}

// When Attio refuses a webhook that receives nothing, Create falls back to
// creating it with its events and stores the secret at once.
func TestSubscriptionAttioCreateFallsBackWhenEmptyRefused(t *testing.T) {
	e := newEnv(t, sourcesYAML, envOptions{})
	spy := e.spy("attio")
	spy.refuseEmpty = true
	r, err := e.m.Create(e.ctx, "attio")
	if err != nil {
		t.Fatal(err)
	}
	if len(spy.creates) != 2 || len(spy.creates[0]) != 0 || len(spy.creates[1]) != 2 {
		t.Fatalf("create calls %v", spy.creates)
	}
	stored := e.secrets("attio")
	if len(stored) != 1 || stored[0].SubscriptionID != r.ID {
		t.Fatalf("stored %+v", redactSecrets(stored))
	}
	if e.plan(subscription.PlanOptions{Sources: []string{"attio"}}).Changed() {
		t.Fatal("plan after the fallback create changes something")
	}
}
