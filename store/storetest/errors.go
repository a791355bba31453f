package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
)

func testNotFound(t *testing.T, s crmhook.Store) {
	ctx := t.Context()
	if _, _, err := s.GetEvent(ctx, crmhook.NewEventID()); !errors.Is(err, crmhook.ErrNotFound) {
		t.Errorf("GetEvent of an unknown id: %v, want ErrNotFound", err)
	}
	if _, err := s.ReleaseRejection(ctx, 424242, []string{"sink-a"}, time.Now().Add(time.Hour)); !errors.Is(err, crmhook.ErrNotFound) {
		t.Errorf("ReleaseRejection of an unknown id: %v, want ErrNotFound", err)
	}
	ghost := crmhook.Claim{Delivery: crmhook.Delivery{ID: 987654321}, Lease: "no-such-lease"}
	for name, err := range map[string]error{
		"Complete": s.Complete(ctx, ghost),
		"Retry":    s.Retry(ctx, ghost, time.Now(), "x"),
		"Kill":     s.Kill(ctx, ghost, "x"),
		"Release":  s.Release(ctx, ghost),
	} {
		if !errors.Is(err, crmhook.ErrNotFound) {
			t.Errorf("%s of an unknown delivery: %v, want ErrNotFound", name, err)
		}
	}
}

func testPing(t *testing.T, s crmhook.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping of an open store: %v", err)
	}
}

// testClosed closes the store after using it; every call after that,
// ControlStore's included when the store has them, fails with ErrClosed.
func testClosed(t *testing.T, s crmhook.Store) {
	ctx := t.Context()
	id := mustInsert(t, s, newEvent("affinity", "person.created", "sink-a"))
	c := claimOne(t, s, "sink-a")
	rid, err := s.Reject(ctx, crmhook.Rejection{Event: newEvent("affinity", "person.created").Event, Reason: "too old"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := map[string]error{}
	_, calls["Insert"] = s.Insert(ctx, newEvent("affinity", "person.created", "sink-a"))
	_, calls["Reject"] = s.Reject(ctx, crmhook.Rejection{Event: newEvent("affinity", "person.created").Event})
	_, calls["ListRejections"] = s.ListRejections(ctx, crmhook.RejectionFilter{})
	_, calls["ReleaseRejection"] = s.ReleaseRejection(ctx, rid, []string{"sink-a"}, time.Now().Add(time.Hour))
	_, calls["Claim"] = s.Claim(ctx, crmhook.ClaimParams{Limit: 1, Lease: longLease})
	calls["Complete"] = s.Complete(ctx, c)
	calls["Retry"] = s.Retry(ctx, c, time.Now(), "x")
	calls["Kill"] = s.Kill(ctx, c, "x")
	calls["Release"] = s.Release(ctx, c)
	_, calls["Replay"] = s.Replay(ctx, crmhook.DeliveryFilter{})
	_, _, calls["GetEvent"] = s.GetEvent(ctx, id)
	_, calls["ListEvents"] = s.ListEvents(ctx, crmhook.EventFilter{})
	_, calls["ListDeliveries"] = s.ListDeliveries(ctx, crmhook.DeliveryFilter{})
	_, calls["Prune"] = s.Prune(ctx, crmhook.PruneParams{DeliveredBefore: time.Now(), Now: time.Now()})
	_, calls["Stats"] = s.Stats(ctx)
	calls["Ping"] = s.Ping(ctx)
	if cs, ok := s.(crmhook.ControlStore); ok {
		closedControlCalls(ctx, cs, calls)
	}
	for name, err := range calls {
		if !errors.Is(err, crmhook.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// closedControlCalls makes every ControlStore call, with arguments the
// store would take, and records their errors in calls.
func closedControlCalls(ctx context.Context, cs crmhook.ControlStore, calls map[string]error) {
	_, calls["PutSecret"] = cs.PutSecret(ctx, crmhook.SourceSecret{Source: "attio", Secret: "closed-secret"})
	_, calls["ListSecrets"] = cs.ListSecrets(ctx, "")
	calls["SetSecretState"] = cs.SetSecretState(ctx, 1, crmhook.SecretRetired, time.Time{})
	calls["PutRotation"] = cs.PutRotation(ctx, crmhook.Rotation{Source: "attio", Phase: "created"})
	_, calls["GetRotation"] = cs.GetRotation(ctx, "attio")
	calls["DeleteRotation"] = cs.DeleteRotation(ctx, "attio")
	calls["PutSubscriptionState"] = cs.PutSubscriptionState(ctx, crmhook.SubscriptionState{Source: "attio", SubscriptionID: "wh", Status: "active"})
	calls["DeleteSubscriptionState"] = cs.DeleteSubscriptionState(ctx, "attio", "wh")
	_, calls["ListSubscriptionStates"] = cs.ListSubscriptionStates(ctx)
	_, calls["RecordGap"] = cs.RecordGap(ctx, crmhook.Gap{Source: "attio", From: time.Now().Add(-time.Hour), To: time.Now()})
	_, calls["ListGaps"] = cs.ListGaps(ctx, "", 0)
	_, calls["LastEventAt"] = cs.LastEventAt(ctx, "affinity")
	_, calls["AcquireLease"] = cs.AcquireLease(ctx, "watchdog", "me", longLease)
	calls["ReleaseLease"] = cs.ReleaseLease(ctx, "watchdog", "me")
}
