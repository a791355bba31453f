package watchdog_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/subscription"
	"github.com/crmhook/crmhook/watchdog"
)

// checkGapPayload checks an operational event's gap against want.
func checkGapPayload(t *testing.T, o opEvent, want crmhook.Gap) {
	t.Helper()
	g := o.Payload.Gap
	if g == nil {
		t.Errorf("%s: payload %s has no gap, want %v → %v", o.Event.Type, o.Event.Payload, want.From, want.To)
		return
	}
	if !g.From.Equal(want.From) || !g.To.Equal(want.To) || g.Seconds != want.To.Sub(want.From).Seconds() {
		t.Errorf("%s: gap %v → %v (%vs), want %v → %v (%vs)", o.Event.Type, g.From, g.To, g.Seconds, want.From, want.To, want.To.Sub(want.From).Seconds())
	}
	raw, _ := o.Raw["gap"].(map[string]any)
	for _, k := range []string{"from", "to", "seconds"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("%s: payload %s: gap has no %q", o.Event.Type, o.Event.Payload, k)
		}
	}
}

// checkOperational checks what every operational event has in common: it
// comes from crmhook itself, now, and goes to the sinks the route names.
func checkOperational(t *testing.T, e *env, o opEvent, source, id string) {
	t.Helper()
	ev := o.Event
	if ev.Source != watchdog.OperationalSource || ev.Provider != crmhook.ProviderCrmhook {
		t.Errorf("%s: source %q provider %q, want crmhook/crmhook", ev.Type, ev.Source, ev.Provider)
	}
	if !ev.ReceivedAt.Equal(e.now) || !ev.OccurredAt.Equal(e.now) {
		t.Errorf("%s: received %v occurred %v, want both %v (the one clock)", ev.Type, ev.ReceivedAt, ev.OccurredAt, e.now)
	}
	if want := e.route(&ev); !slices.Equal(o.Sinks, want) || len(want) == 0 {
		t.Errorf("%s: deliveries to %v, want %v (the sinks the route names)", ev.Type, o.Sinks, want)
	}
	if o.Payload.Source != source || o.Payload.SubscriptionID != id {
		t.Errorf("%s: payload source %q subscription %q, want %q %q", ev.Type, o.Payload.Source, o.Payload.SubscriptionID, source, id)
	}
}

// A disabled Affinity subscription is re-enabled; the gap runs from the
// later of the source's last event and its last healthy check to the
// re-enable, is recorded, reported in both operational events and seen by
// the Observer. Every time is the one frozen clock.
func TestCheckReenablesADisabledAffinitySubscription(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                   string
		lastEvent, lastHealthy time.Duration // before now
		wantFrom               time.Duration
	}{
		{"gap from the last event", 2 * time.Hour, 3 * time.Hour, 2 * time.Hour},
		{"gap from the last healthy check", 5 * time.Hour, 90 * time.Minute, 90 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sources{aff: true})
			e.affinitySub("1001", subscription.StatusDisabled)
			e.receivedEvent("aff", e.now.Add(-tc.lastEvent))
			e.receivedEvent("another-source", e.now.Add(-time.Minute)) // not aff's: does not count
			healthy := e.now.Add(-tc.lastHealthy)
			e.putState(crmhook.SubscriptionState{Source: "aff", SubscriptionID: "1001", Status: "active", LastCheckedAt: healthy, LastHealthyAt: healthy})
			w := e.watchdog(true)

			f := only(t, e.check(w))
			if f.Source != "aff" || f.SubscriptionID != "1001" || f.Type != watchdog.TypeDisabled || f.Status != subscription.StatusDisabled || !f.Repaired || f.Err != nil {
				t.Errorf("finding %s, want aff 1001 disabled, repaired", describe([]watchdog.Finding{f}))
			}
			if !slices.Contains(f.Changes, "status disabled") {
				t.Errorf("changes %q, want status disabled", f.Changes)
			}
			want := crmhook.Gap{Source: "aff", SubscriptionID: "1001", From: e.now.Add(-tc.wantFrom), To: e.now, RecordedAt: e.now}
			if f.Gap == nil {
				t.Fatalf("finding has no gap, want %v → %v", want.From, want.To)
			}
			if g := *f.Gap; g.ID == 0 || g.Source != want.Source || g.SubscriptionID != want.SubscriptionID || !g.From.Equal(want.From) || !g.To.Equal(want.To) || !g.RecordedAt.Equal(want.RecordedAt) {
				t.Errorf("finding gap %+v, want %+v with an id", g, want)
			}

			// The provider: enabled, nothing else.
			if got := e.aff.changes(); !slices.Equal(got, []string{"enable 1001"}) {
				t.Errorf("provider calls %q, want [enable 1001]", got)
			}
			if s := e.aff.snapshot(); len(s) != 1 || s[0].Status != subscription.StatusActive {
				t.Errorf("provider holds %+v, want 1001 active", s)
			}

			// The store: one gap, the state healthy now.
			gaps := e.gaps("aff")
			if len(gaps) != 1 {
				t.Fatalf("gaps %+v, want one", gaps)
			}
			if g := gaps[0]; g.ID != f.Gap.ID || g.SubscriptionID != "1001" || !g.From.Equal(want.From) || !g.To.Equal(want.To) || !g.RecordedAt.Equal(e.now) {
				t.Errorf("stored gap %+v, want %+v", g, want)
			}
			st := e.states()["aff/1001"]
			if st.Status != "active" || !st.LastCheckedAt.Equal(e.now) || !st.LastHealthyAt.Equal(e.now) {
				t.Errorf("state %+v, want active, checked and healthy at %v", st, e.now)
			}

			// Two operational events, both with the gap.
			ops := e.opEvents()
			if len(ops) != 2 || ops[0].Event.Type != watchdog.TypeDisabled || ops[1].Event.Type != watchdog.TypeReenabled {
				t.Fatalf("operational events %q, want [disabled reenabled]", e.opTypes())
			}
			for i, wantStatus := range []string{"disabled", "active"} {
				o := ops[i]
				checkOperational(t, e, o, "aff", "1001")
				checkGapPayload(t, o, want)
				if o.Payload.Status != wantStatus || !o.Payload.Repaired || o.Payload.Error != "" {
					t.Errorf("%s: payload %s, want status %s, repaired, no error", o.Event.Type, o.Event.Payload, wantStatus)
				}
			}
			// The provider source's last event is still its own.
			if last, err := e.store.LastEventAt(e.ctx, "aff"); err != nil || !last.Equal(e.now.Add(-tc.lastEvent)) {
				t.Errorf("aff's last event %v %v, want %v: operational events must not count as aff's", last, err, e.now.Add(-tc.lastEvent))
			}

			// The Observer saw the status before and after, and the gap.
			statuses, obsGaps := e.obs.seen()
			if !slices.Equal(statuses, []string{"aff 1001 disabled", "aff 1001 active"}) {
				t.Errorf("observed statuses %q", statuses)
			}
			if wantGap := "aff " + tc.wantFrom.String(); !slices.Equal(obsGaps, []string{wantGap}) {
				t.Errorf("observed gaps %q, want [%s]", obsGaps, wantGap)
			}

			// The next check finds it healthy and does nothing.
			e.now = e.now.Add(time.Minute)
			if fs := e.check(w); len(fs) != 0 {
				t.Errorf("second check: %s, want none", describe(fs))
			}
			if n := len(e.aff.changes()); n != 1 {
				t.Errorf("second check changed the provider (%q)", e.aff.changes())
			}
			if n := len(e.opEvents()); n != 2 {
				t.Errorf("second check stored events: %q", e.opTypes())
			}
			if n := len(e.gaps("")); n != 1 {
				t.Errorf("second check recorded gaps: %d in all", n)
			}
		})
	}
}

// With repair off a disabled subscription is reported once, not at every
// check, and nothing is changed: no enable, no gap.
func TestCheckWithoutRepairReportsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{aff: true})
	e.affinitySub("1001", subscription.StatusDisabled)
	e.receivedEvent("aff", e.now.Add(-time.Hour))
	w := e.watchdog(false)

	f := only(t, e.check(w))
	if f.Type != watchdog.TypeDisabled || f.SubscriptionID != "1001" || f.Repaired || f.Gap != nil || f.Err != nil {
		t.Errorf("finding %s, want disabled, not repaired, no gap", describe([]watchdog.Finding{f}))
	}
	ops := e.opEvents()
	if len(ops) != 1 || ops[0].Event.Type != watchdog.TypeDisabled {
		t.Fatalf("events %q, want [disabled]", e.opTypes())
	}
	checkOperational(t, e, ops[0], "aff", "1001")
	if p := ops[0].Payload; p.Repaired || p.Gap != nil || p.Status != "disabled" || p.Error != "" {
		t.Errorf("payload %s: want disabled, not repaired, no gap", ops[0].Event.Payload)
	}

	for i := range 3 {
		e.now = e.now.Add(time.Minute)
		if fs := e.check(w); len(fs) != 0 {
			t.Errorf("check %d: %s, want nothing: already reported", i+2, describe(fs))
		}
	}
	if n := e.aff.changeCalls(); n != 0 {
		t.Errorf("the provider was asked to change something %d times (%q), want never", n, e.aff.changes())
	}
	if s := e.aff.snapshot(); s[0].Status != subscription.StatusDisabled {
		t.Errorf("provider: %+v, want still disabled", s)
	}
	if got := e.opTypes(); len(got) != 1 {
		t.Errorf("events %q, want the one report", got)
	}
	if g := e.gaps(""); len(g) != 0 {
		t.Errorf("gaps %+v, want none without repair", g)
	}
	st := e.states()["aff/1001"]
	if st.Status != "disabled" || !st.LastCheckedAt.Equal(e.now) || !st.LastHealthyAt.IsZero() {
		t.Errorf("state %+v, want disabled, checked at %v, never healthy", st, e.now)
	}

	// Re-enabled by hand, then disabled again: a new finding, reported.
	e.aff.set("1001", func(r *subscription.Remote) { r.Status = subscription.StatusActive })
	e.now = e.now.Add(time.Minute)
	if fs := e.check(w); len(fs) != 0 {
		t.Fatalf("healthy check: %s", describe(fs))
	}
	e.aff.set("1001", func(r *subscription.Remote) { r.Status = subscription.StatusDisabled })
	e.now = e.now.Add(time.Minute)
	if f := only(t, e.check(w)); f.Type != watchdog.TypeDisabled || f.Repaired {
		t.Errorf("disabled again: %s", describe([]watchdog.Finding{f}))
	}
	if got := e.opTypes(); len(got) != 2 {
		t.Errorf("events %q, want two disabled reports", got)
	}
}

// With repair off, drift found after healthy checks is reported (the status
// stays active, so it cannot be told from the previous check by status),
// once.
func TestCheckWithoutRepairReportsDriftAfterHealthyChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{aff: true})
	e.affinitySub("1001", subscription.StatusActive)
	w := e.watchdog(false)
	if fs := e.check(w); len(fs) != 0 {
		t.Fatalf("healthy check: %s", describe(fs))
	}
	e.aff.set("1001", func(r *subscription.Remote) { r.Events = []subscription.Event{{Type: "person.created"}} })
	e.now = e.now.Add(time.Minute)
	f := only(t, e.check(w))
	if f.Type != watchdog.TypeDrift || f.Repaired || !slices.Equal(f.Changes, []string{"events: +organization.created"}) {
		t.Errorf("finding %s, want drift (events: +organization.created), not repaired", describe([]watchdog.Finding{f}))
	}
	e.now = e.now.Add(time.Minute)
	if fs := e.check(w); len(fs) != 0 {
		t.Errorf("third check: %s, want nothing: already reported", describe(fs))
	}
	if got := e.opTypes(); !slices.Equal(got, []string{watchdog.TypeDrift}) {
		t.Errorf("events %q, want one drift report", got)
	}
	if n := e.aff.changeCalls(); n != 0 {
		t.Errorf("provider changes %q, want none", e.aff.changes())
	}
}

// A degraded Attio webhook still receives events, but Attio re-activates
// nothing: it is recreated (new secret stored, old one retiring), without
// a gap.
func TestCheckRecreatesADegradedAttioWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{att: true})
	e.attioSub("wh-old", subscription.StatusDegraded)
	e.receivedEvent("att", e.now.Add(-time.Hour))
	w := e.watchdog(true)

	f := only(t, e.check(w))
	if f.Source != "att" || f.SubscriptionID != "wh-old" || f.Type != watchdog.TypeDegraded || f.Status != subscription.StatusDegraded || !f.Repaired || f.Err != nil || f.Gap != nil {
		t.Errorf("finding %s, want att wh-old degraded, repaired, no gap", describe([]watchdog.Finding{f}))
	}
	if !slices.Contains(f.Changes, "status degraded") {
		t.Errorf("changes %q", f.Changes)
	}
	if got := e.att.changes(); !slices.Equal(got, []string{"create wh-1001", "update wh-1001", "delete wh-old"}) {
		t.Errorf("provider calls %q, want create, set its events, delete the old one", got)
	}
	if e.att.count("enable") != 0 {
		t.Error("Enable was called for Attio")
	}
	subs := e.att.snapshot()
	if len(subs) != 1 || subs[0].ID != "wh-1001" || subs[0].URL != e.hookURL("att") || len(subs[0].Events) != 2 {
		t.Errorf("provider holds %+v, want only wh-1001 as declared", subs)
	}
	secrets, err := e.store.ListSecrets(e.ctx, "att")
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]crmhook.SourceSecret{}
	for _, s := range secrets {
		byID[s.SubscriptionID] = s
	}
	if s := byID["wh-1001"]; s.State != crmhook.SecretActive || s.Secret != "attio-secret-of-wh-1001" || !s.CreatedAt.Equal(e.now) {
		t.Errorf("new webhook's secret: %v created %v, want active, stored at %v", s, s.CreatedAt, e.now)
	}
	if s := byID["wh-old"]; s.State != crmhook.SecretRetiring || !s.RetireAt.Equal(e.now.Add(subscription.RetireGrace)) {
		t.Errorf("old webhook's secret: %v until %v, want retiring until %v (the Manager's clock)", s, s.RetireAt, e.now.Add(subscription.RetireGrace))
	}
	ops := e.opEvents()
	if len(ops) != 2 || ops[0].Event.Type != watchdog.TypeDegraded || ops[1].Event.Type != watchdog.TypeRecreated {
		t.Fatalf("events %q, want [degraded recreated]", e.opTypes())
	}
	for i, wantStatus := range []string{"degraded", "active"} {
		checkOperational(t, e, ops[i], "att", "wh-old")
		if p := ops[i].Payload; p.Status != wantStatus || !p.Repaired || p.Gap != nil {
			t.Errorf("%s: payload %s, want status %s, repaired, no gap", ops[i].Event.Type, ops[i].Event.Payload, wantStatus)
		}
	}
	if g := e.gaps(""); len(g) != 0 {
		t.Errorf("gaps %+v: a degraded webhook still receives, want none", g)
	}
	if _, ok := e.states()["att/wh-old"]; ok {
		t.Error("the replaced webhook's state was kept")
	}

	e.now = e.now.Add(time.Minute)
	if fs := e.check(w); len(fs) != 0 {
		t.Errorf("next check: %s, want the new webhook healthy", describe(fs))
	}
	if st := e.states()["att/wh-1001"]; st.Status != "active" || !st.LastHealthyAt.Equal(e.now) {
		t.Errorf("new webhook's state %+v", st)
	}
}

// An inactive Attio webhook received nothing: it is recreated, and the
// span since the last event is recorded as a gap.
func TestCheckRecreatesAnInactiveAttioWebhookWithAGap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{att: true})
	e.attioSub("wh-old", subscription.StatusInactive)
	lastEvent := e.now.Add(-7 * 24 * time.Hour)
	e.receivedEvent("att", lastEvent)
	e.putState(crmhook.SubscriptionState{Source: "att", SubscriptionID: "wh-old", Status: "degraded",
		LastCheckedAt: e.now.Add(-time.Hour), LastHealthyAt: e.now.Add(-10 * 24 * time.Hour)})
	w := e.watchdog(true)

	f := only(t, e.check(w))
	if f.Type != watchdog.TypeInactive || f.Status != subscription.StatusInactive || !f.Repaired || f.Err != nil {
		t.Errorf("finding %s, want inactive, repaired", describe([]watchdog.Finding{f}))
	}
	want := crmhook.Gap{Source: "att", SubscriptionID: "wh-old", From: lastEvent, To: e.now}
	if f.Gap == nil || !f.Gap.From.Equal(want.From) || !f.Gap.To.Equal(want.To) {
		t.Fatalf("finding gap %+v, want %v → %v", f.Gap, want.From, want.To)
	}
	if got := e.att.changes(); !slices.Equal(got, []string{"create wh-1001", "update wh-1001", "delete wh-old"}) {
		t.Errorf("provider calls %q", got)
	}
	gaps := e.gaps("att")
	if len(gaps) != 1 || gaps[0].SubscriptionID != "wh-old" || !gaps[0].From.Equal(want.From) || !gaps[0].To.Equal(want.To) {
		t.Errorf("gaps %+v, want one %v → %v", gaps, want.From, want.To)
	}
	ops := e.opEvents()
	if len(ops) != 2 || ops[0].Event.Type != watchdog.TypeInactive || ops[1].Event.Type != watchdog.TypeRecreated {
		t.Fatalf("events %q, want [inactive recreated]", e.opTypes())
	}
	for _, o := range ops {
		checkOperational(t, e, o, "att", "wh-old")
		checkGapPayload(t, o, want)
	}
	if _, obsGaps := e.obs.seen(); !slices.Equal(obsGaps, []string{"att " + (7 * 24 * time.Hour).String()}) {
		t.Errorf("observed gaps %q", obsGaps)
	}
}

// A declared subscription the provider does not have is created; what was
// sent meanwhile is lost, from the source's last event.
func TestCheckCreatesAMissingSubscription(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{aff: true})
	lastEvent := e.now.Add(-45 * time.Minute)
	e.receivedEvent("aff", lastEvent)
	w := e.watchdog(true)

	f := only(t, e.check(w))
	if f.Source != "aff" || f.SubscriptionID != "" || f.Type != watchdog.TypeMissing || f.Status != subscription.StatusMissing || !f.Repaired || f.Err != nil {
		t.Errorf("finding %s, want aff missing, repaired", describe([]watchdog.Finding{f}))
	}
	want := crmhook.Gap{Source: "aff", From: lastEvent, To: e.now}
	if f.Gap == nil || !f.Gap.From.Equal(want.From) || !f.Gap.To.Equal(want.To) {
		t.Fatalf("finding gap %+v, want %v → %v", f.Gap, want.From, want.To)
	}
	if got := e.aff.changes(); !slices.Equal(got, []string{"create 1001"}) {
		t.Errorf("provider calls %q, want [create 1001]", got)
	}
	if s := e.aff.snapshot(); len(s) != 1 || s[0].URL != e.hookURL("aff") || !slices.EqualFunc(s[0].Events, affEvents, func(a, b subscription.Event) bool { return a.Type == b.Type }) {
		t.Errorf("provider holds %+v, want the declared subscription", s)
	}
	ops := e.opEvents()
	if len(ops) != 2 || ops[0].Event.Type != watchdog.TypeMissing || ops[1].Event.Type != watchdog.TypeRecreated {
		t.Fatalf("events %q, want [missing recreated]", e.opTypes())
	}
	for _, o := range ops {
		checkOperational(t, e, o, "aff", "")
		checkGapPayload(t, o, want)
	}
	if gaps := e.gaps("aff"); len(gaps) != 1 || !gaps[0].From.Equal(want.From) {
		t.Errorf("gaps %+v, want one from %v", gaps, want.From)
	}

	e.now = e.now.Add(time.Minute)
	if fs := e.check(w); len(fs) != 0 {
		t.Errorf("next check: %s", describe(fs))
	}
	sts := e.states()
	if st, ok := sts["aff/1001"]; !ok || st.Status != "active" {
		t.Errorf("states %+v, want aff/1001 active", sts)
	}
	if _, ok := sts["aff/"]; ok {
		t.Error("the missing placeholder's state was kept")
	}
}

// A subscription deleted at the provider after a healthy check, with no
// event since, lost what was sent from that check on: the gap runs from the
// last healthy check of the subscription that went missing.
func TestCheckMissingGapStartsAtTheLastHealthyCheck(t *testing.T) {
	t.Parallel()
	for _, repair := range []bool{true, false} {
		name := "repair"
		if !repair {
			name = "report first, repair later"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sources{aff: true})
			e.affinitySub("1001", subscription.StatusActive)
			healthy := e.now
			if fs := e.check(e.watchdog(repair)); len(fs) != 0 {
				t.Fatalf("healthy check: %s", describe(fs))
			}
			e.aff.remove("1001")
			e.now = e.now.Add(10 * time.Minute)
			if !repair {
				f := only(t, e.check(e.watchdog(false)))
				if f.Type != watchdog.TypeMissing || f.Repaired {
					t.Fatalf("finding %s, want missing, reported", describe([]watchdog.Finding{f}))
				}
				e.now = e.now.Add(10 * time.Minute)
			}
			f := only(t, e.check(e.watchdog(true)))
			if f.Type != watchdog.TypeMissing || !f.Repaired {
				t.Fatalf("finding %s, want missing, repaired", describe([]watchdog.Finding{f}))
			}
			if f.Gap == nil || !f.Gap.From.Equal(healthy) || !f.Gap.To.Equal(e.now) {
				t.Errorf("gap %+v, want %v → %v", f.Gap, healthy, e.now)
			}
		})
	}
}

// A drifted subscription (URL and events) is corrected in place.
func TestCheckCorrectsDrift(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{aff: true})
	// Ours (the source's hook, no path secret), pointing at the wrong URL
	// and receiving the wrong events.
	e.aff.add(subscription.Remote{ID: "1001", URL: publicURL + "/hooks/aff", Status: subscription.StatusActive,
		Events: []subscription.Event{{Type: "person.created"}, {Type: "note.created"}}})
	e.receivedEvent("aff", e.now.Add(-time.Hour))
	w := e.watchdog(true)

	f := only(t, e.check(w))
	wantChanges := []string{"url", "events: +organization.created -note.created"}
	if f.Type != watchdog.TypeDrift || f.SubscriptionID != "1001" || f.Status != subscription.StatusActive || !f.Repaired || f.Gap != nil || f.Err != nil || !slices.Equal(f.Changes, wantChanges) {
		t.Errorf("finding %s, want drift %q, repaired, no gap", describe([]watchdog.Finding{f}), wantChanges)
	}
	if got := e.aff.changes(); !slices.Equal(got, []string{"update 1001"}) {
		t.Errorf("provider calls %q, want [update 1001]", got)
	}
	s := e.aff.snapshot()
	if len(s) != 1 || s[0].URL != e.hookURL("aff") || !slices.EqualFunc(s[0].Events, affEvents, func(a, b subscription.Event) bool { return a.Type == b.Type }) {
		t.Errorf("provider holds %+v, want the declared URL and events", s)
	}
	ops := e.opEvents()
	if len(ops) != 1 || ops[0].Event.Type != watchdog.TypeDrift {
		t.Fatalf("events %q, want [drift]", e.opTypes())
	}
	checkOperational(t, e, ops[0], "aff", "1001")
	if p := ops[0].Payload; !p.Repaired || !slices.Equal(p.Changes, wantChanges) || p.Gap != nil {
		t.Errorf("payload %s", ops[0].Event.Payload)
	}
	if g := e.gaps(""); len(g) != 0 {
		t.Errorf("gaps %+v: a drifted subscription still delivered", g)
	}
	if st := e.states()["aff/1001"]; st.Status != "active" || !st.LastHealthyAt.Equal(e.now) {
		t.Errorf("state %+v", st)
	}
	e.now = e.now.Add(time.Minute)
	if fs := e.check(w); len(fs) != 0 {
		t.Errorf("next check: %s", describe(fs))
	}
}

// A source whose secret is being rotated is left to the rotation: not
// checked, not repaired, its states kept. Other sources are checked.
func TestCheckSkipsASourceUnderRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{aff: true, att: true})
	e.affinitySub("1001", subscription.StatusDisabled)
	e.affinitySub("1002", subscription.StatusActive) // the rotation's second subscription
	e.attioSub("wh-1", subscription.StatusDegraded)
	prev := crmhook.SubscriptionState{Source: "aff", SubscriptionID: "1001", Status: "active", LastCheckedAt: e.now.Add(-time.Hour), LastHealthyAt: e.now.Add(-time.Hour)}
	e.putState(prev)
	if err := e.store.PutRotation(e.ctx, crmhook.Rotation{Source: "aff", Phase: "new-subscription", StartedAt: e.now, UpdatedAt: e.now}); err != nil {
		t.Fatal(err)
	}
	w := e.watchdog(true)

	f := only(t, e.check(w))
	if f.Source != "att" || f.Type != watchdog.TypeDegraded {
		t.Errorf("finding %s, want only att's", describe([]watchdog.Finding{f}))
	}
	if n := e.aff.changeCalls(); n != 0 {
		t.Errorf("aff's provider was changed under a rotation: %q", e.aff.changes())
	}
	sts := e.states()
	if st := sts["aff/1001"]; st != prev {
		t.Errorf("aff/1001 state %+v, want it untouched %+v", st, prev)
	}
	if _, ok := sts["aff/1002"]; ok {
		t.Error("a state was written for a source under rotation")
	}
	for _, o := range e.opEvents() {
		if o.Payload.Source == "aff" {
			t.Errorf("event %s about aff under a rotation", o.Event.Type)
		}
	}
	statuses, _ := e.obs.seen()
	for _, s := range statuses {
		if strings.HasPrefix(s, "aff ") {
			t.Errorf("observed %q under a rotation", s)
		}
	}

	// The rotation over, aff is checked again.
	if err := e.store.DeleteRotation(e.ctx, "aff"); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Minute)
	fs := e.check(w)
	if !slices.ContainsFunc(fs, func(f watchdog.Finding) bool { return f.Source == "aff" }) {
		t.Errorf("after the rotation: %s, want aff's subscriptions judged", describe(fs))
	}
}

// A rotation that cannot be read is not taken for "no rotation": the source
// is not repaired (a rotation may be halfway) and the check fails.
func TestCheckSkipsASourceWhoseRotationCannotBeRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{aff: true})
	e.affinitySub("1001", subscription.StatusDisabled)
	e.affinitySub("1002", subscription.StatusActive)
	broken := errors.New("store: connection reset")
	w, err := watchdog.New(watchdog.Config{Manager: e.m, Store: rotationErrStore{e.store, broken}, Interval: time.Minute, Repair: true,
		Route: e.route, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := w.Check(e.ctx)
	if !errors.Is(err, broken) {
		t.Errorf("check: %v, want the store's error", err)
	}
	if len(fs) != 0 {
		t.Errorf("findings %s, want none", describe(fs))
	}
	if n := e.aff.changeCalls(); n != 0 {
		t.Errorf("the provider was changed although the rotation could not be read: %q", e.aff.changes())
	}
}

// rotationErrStore fails GetRotation.
type rotationErrStore struct {
	watchdog.Store
	err error
}

func (s rotationErrStore) GetRotation(context.Context, string) (crmhook.Rotation, error) {
	return crmhook.Rotation{}, s.err
}

// Subscriptions that are not ours are listed by the plan but never judged,
// touched, reported or recorded.
func TestCheckIgnoresUnmanagedSubscriptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{aff: true})
	e.affinitySub("1001", subscription.StatusActive)
	e.aff.add(subscription.Remote{ID: "1002", URL: "https://elsewhere.example/hook", Status: subscription.StatusDisabled})
	e.aff.add(subscription.Remote{ID: "1003", URL: publicURL + "/hooks/aff/not-a-secret-this-source-ever-had-xx", Status: subscription.StatusDisabled})
	w := e.watchdog(true)
	if fs := e.check(w); len(fs) != 0 {
		t.Errorf("findings %s, want none", describe(fs))
	}
	if n := e.aff.changeCalls(); n != 0 {
		t.Errorf("provider changes %q, want none", e.aff.changes())
	}
	sts := e.states()
	if len(sts) != 1 || sts["aff/1001"].Status != "active" {
		t.Errorf("states %+v, want only aff/1001", sts)
	}
	if got := e.opTypes(); len(got) != 0 {
		t.Errorf("events %q, want none", got)
	}
	if statuses, _ := e.obs.seen(); !slices.Equal(statuses, []string{"aff 1001 active"}) {
		t.Errorf("observed %q, want only ours", statuses)
	}
}

// A repair that fails is a Finding with Err and an event with the error; no
// gap is recorded, and the next check tries again.
func TestCheckReportsAFailedRepair(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{aff: true})
	e.affinitySub("1001", subscription.StatusDisabled)
	lastEvent := e.now.Add(-time.Hour)
	e.receivedEvent("aff", lastEvent)
	refused := errors.New("affinity: 503 try later")
	e.aff.fail["enable"] = refused
	w := e.watchdog(true)

	fs, err := w.Check(e.ctx)
	if !errors.Is(err, refused) {
		t.Errorf("check: %v, want the provider's error", err)
	}
	f := only(t, fs)
	if f.Type != watchdog.TypeDisabled || f.Repaired || f.Gap != nil || !errors.Is(f.Err, refused) {
		t.Errorf("finding %s, want disabled, not repaired, Err the provider's", describe([]watchdog.Finding{f}))
	}
	ops := e.opEvents()
	if len(ops) != 1 || ops[0].Event.Type != watchdog.TypeDisabled {
		t.Fatalf("events %q, want [disabled]", e.opTypes())
	}
	checkOperational(t, e, ops[0], "aff", "1001")
	if p := ops[0].Payload; p.Repaired || !strings.Contains(p.Error, "503 try later") || ops[0].Raw["error"] == nil {
		t.Errorf("payload %s, want not repaired, with the error", ops[0].Event.Payload)
	}
	if g := e.gaps(""); len(g) != 0 {
		t.Errorf("gaps %+v, want none: nothing was repaired", g)
	}
	if st := e.states()["aff/1001"]; st.Status != "disabled" {
		t.Errorf("state %+v, want disabled", st)
	}
	if _, obsGaps := e.obs.seen(); len(obsGaps) != 0 {
		t.Errorf("observed gaps %q", obsGaps)
	}

	// The provider recovers: the next check repairs, and the gap still
	// starts at the last event.
	e.aff.mu.Lock()
	delete(e.aff.fail, "enable")
	e.aff.mu.Unlock()
	e.now = e.now.Add(5 * time.Minute)
	f = only(t, e.check(w))
	if !f.Repaired || f.Gap == nil || !f.Gap.From.Equal(lastEvent) || !f.Gap.To.Equal(e.now) {
		t.Errorf("retry: %s gap %+v, want repaired, gap %v → %v", describe([]watchdog.Finding{f}), f.Gap, lastEvent, e.now)
	}
	if got := e.opTypes(); !slices.Equal(got, []string{watchdog.TypeDisabled, watchdog.TypeDisabled, watchdog.TypeReenabled}) {
		t.Errorf("events %q", got)
	}
}

// The last event may be stamped by another replica whose clock runs a little
// ahead of this one's: the gap is then empty, not a failed record.
func TestCheckGapNeverEndsBeforeItStarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{aff: true})
	e.affinitySub("1001", subscription.StatusDisabled)
	e.receivedEvent("aff", e.now.Add(300*time.Millisecond))
	w := e.watchdog(true)
	fs, err := w.Check(e.ctx)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	f := only(t, fs)
	if !f.Repaired || f.Gap == nil || !f.Gap.From.Equal(e.now) || !f.Gap.To.Equal(e.now) {
		t.Errorf("finding %s gap %+v, want repaired with an empty gap at %v", describe(fs), f.Gap, e.now)
	}
	if g := e.gaps("aff"); len(g) != 1 {
		t.Errorf("gaps %+v, want one", g)
	}
}

// Two watchdogs on one store: only the lease holder ever checks; once its
// context ends it gives the lease up and the other takes over at once.
func TestRunOneWatchdogAtATime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{aff: true})
	const interval = 50 * time.Millisecond
	type replica struct {
		owner  string
		p      *fakeProvider
		w      *watchdog.Watchdog
		cancel context.CancelFunc
		done   chan struct{}
	}
	st := realClockStore(t) // lease expiry is real time
	var replicas []*replica
	for _, owner := range []string{"replica-a", "replica-b"} {
		p := newFakeProvider(false)
		m := &subscription.Manager{Config: e.cfg, Store: st, Providers: map[string]subscription.Provider{"aff": p}}
		hook, err := m.HookURL(e.ctx, "aff")
		if err != nil {
			t.Fatal(err)
		}
		p.add(subscription.Remote{ID: "1001", URL: hook, Events: slices.Clone(affEvents), Status: subscription.StatusActive})
		w, err := watchdog.New(watchdog.Config{Manager: m, Store: st, Interval: interval, Repair: true, Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, &replica{owner: owner, p: p, w: w, done: make(chan struct{})})
	}
	// No two checks at once, whoever runs them.
	var inFlight sync.Mutex
	var overlaps atomic.Int64
	for _, r := range replicas {
		r.p.onList = func() {
			if !inFlight.TryLock() {
				overlaps.Add(1)
				return
			}
			time.Sleep(time.Millisecond)
			inFlight.Unlock()
		}
	}
	for _, r := range replicas {
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		go func() {
			defer close(r.done)
			r.w.Run(ctx)
		}()
	}
	t.Cleanup(func() {
		for _, r := range replicas {
			r.cancel()
			<-r.done
		}
	})

	lists := func() (a, b int) { return replicas[0].p.count("list"), replicas[1].p.count("list") }
	waitFor(t, "one watchdog to check five times", 10*time.Second, func() bool {
		a, b := lists()
		return a >= 5 || b >= 5
	})
	a, b := lists()
	if a > 0 && b > 0 {
		t.Fatalf("both watchdogs checked: %s %d times, %s %d times", replicas[0].owner, a, replicas[1].owner, b)
	}
	holder, other := replicas[0], replicas[1]
	if b > 0 {
		holder, other = other, holder
	}
	t.Logf("%s holds the lease", holder.owner)

	// The holder stops: it releases the lease on its way out, so the other
	// may take it at once (not only once the lease has run out).
	holder.cancel()
	<-holder.done
	stopped := holder.p.count("list")
	held, err := st.AcquireLease(e.ctx, watchdog.LeaseName, other.owner, 2*interval+time.Second)
	if err != nil || !held {
		t.Fatalf("after %s stopped, %s could not take the lease (%v, %v): it was not released", holder.owner, other.owner, held, err)
	}
	waitFor(t, other.owner+" to take over", 10*time.Second, func() bool { return other.p.count("list") >= 3 })
	if n := holder.p.count("list"); n != stopped {
		t.Errorf("%s checked after it stopped (%d → %d)", holder.owner, stopped, n)
	}
	if n := holder.p.changeCalls() + other.p.changeCalls(); n != 0 {
		t.Errorf("healthy subscriptions were changed %d times", n)
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d checks ran while another was running", n)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A check that takes longer than the lease (slow provider calls, Affinity's
// probe, an Attio secret's settle time) keeps the lease: the other replica
// never checks at the same time.
func TestRunKeepsTheLeaseThroughALongCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sources{aff: true})
	const interval = 50 * time.Millisecond
	const slow = 2*interval + time.Second + 500*time.Millisecond // longer than the lease
	st := realClockStore(t)
	var inFlight sync.Mutex
	var overlaps atomic.Int64
	var listed sync.Map // owner → true
	var stops []func()
	for _, owner := range []string{"replica-a", "replica-b"} {
		p := newFakeProvider(false)
		m := &subscription.Manager{Config: e.cfg, Store: st, Providers: map[string]subscription.Provider{"aff": p}}
		hook, err := m.HookURL(e.ctx, "aff")
		if err != nil {
			t.Fatal(err)
		}
		p.add(subscription.Remote{ID: "1001", URL: hook, Events: slices.Clone(affEvents), Status: subscription.StatusActive})
		p.onList = func() {
			listed.Store(owner, true)
			if !inFlight.TryLock() {
				overlaps.Add(1)
				return
			}
			time.Sleep(slow)
			inFlight.Unlock()
		}
		w, err := watchdog.New(watchdog.Config{Manager: m, Store: st, Interval: interval, Repair: true, Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.Run(ctx)
		}()
		stops = append(stops, func() { cancel(); <-done })
	}
	time.Sleep(slow + slow/2) // past the lease of the first check
	for _, stop := range stops {
		stop()
	}
	n := 0
	listed.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("%d watchdogs checked, want exactly one", n)
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d checks ran while another was running", n)
	}
}
