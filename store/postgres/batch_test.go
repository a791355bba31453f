package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/postgres/pgtest"
)

// Concurrent inserts share group commits, stored by one statement per
// group: each event is stored once with its deliveries, and an event whose
// key another one (in its group or an earlier one) holds is a duplicate
// that names the holder. Concurrent Completes share batches too: each is
// recorded once, and one whose lease is lost hears it.
func TestGroupedInsertsAndCompletes(t *testing.T) {
	s := open(t, pgtest.Schema(t))
	ctx := t.Context()
	const n = 60
	until := time.Now().Add(time.Hour)
	results := make([]crmhook.InsertResult, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		ids[i] = crmhook.NewEventID()
		wg.Go(func() {
			ev := crmhook.Event{ID: ids[i], Source: "src", Provider: crmhook.ProviderAffinity, Type: "t",
				// Every third event repeats the key of the one before it.
				DedupeKey: fmt.Sprintf("key-%d", i-boolInt(i%3 == 2)), ReceivedAt: time.Now(), Payload: []byte(`{"i":1}`)}
			if i%10 == 0 {
				ev.OccurredAt = time.Now().Add(-time.Minute)
			}
			var err error
			results[i], err = s.Insert(ctx, crmhook.NewEvent{Event: ev, Sinks: []string{"a", "b", "a"}, DedupeUntil: until})
			if err != nil {
				t.Errorf("Insert %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	holders := map[string]string{}
	for i, r := range results {
		key := fmt.Sprintf("key-%d", i-boolInt(i%3 == 2))
		if !r.Duplicate {
			if r.EventID != ids[i] {
				t.Errorf("event %d stored as %q", i, r.EventID)
			}
			if h, ok := holders[key]; ok {
				t.Errorf("key %s stored twice: %s and %s", key, h, ids[i])
			}
			holders[key] = ids[i]
		}
	}
	stored := 0
	for i, r := range results {
		key := fmt.Sprintf("key-%d", i-boolInt(i%3 == 2))
		if r.Duplicate {
			if r.EventID != holders[key] {
				t.Errorf("duplicate %d names %q, the key's holder is %q", i, r.EventID, holders[key])
			}
			continue
		}
		stored++
		_, ds, err := s.GetEvent(ctx, ids[i])
		if err != nil || len(ds) != 2 {
			t.Errorf("GetEvent %d: %d deliveries, %v; want 2", i, len(ds), err)
		}
	}
	if want := n - n/3; stored != want {
		t.Errorf("%d events stored, want %d", stored, want)
	}

	claims, err := s.Claim(ctx, crmhook.ClaimParams{Limit: 2 * stored, Lease: time.Minute})
	if err != nil || len(claims) != 2*stored {
		t.Fatalf("Claim = %d, %v; want %d", len(claims), err, 2*stored)
	}
	errs := make([]error, len(claims)+2)
	for i, c := range claims {
		if i == 0 {
			c.Lease = "not-the-lease"
		}
		wg.Go(func() { errs[i] = s.Complete(ctx, c) })
	}
	// claims[1] twice more: of its three Completes one records it.
	for j := range 2 {
		wg.Go(func() { errs[len(claims)+j] = s.Complete(ctx, claims[1]) })
	}
	wg.Wait()
	if !errors.Is(errs[0], crmhook.ErrLeaseLost) {
		t.Errorf("Complete with a wrong lease: %v, want ErrLeaseLost", errs[0])
	}
	for i, err := range errs[2:len(claims)] {
		if err != nil {
			t.Errorf("Complete %d: %v", i+2, err)
		}
	}
	ok := 0
	for _, err := range []error{errs[1], errs[len(claims)], errs[len(claims)+1]} {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, crmhook.ErrLeaseLost):
			t.Errorf("Complete of claims[1]: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("three Completes of one claim: %d recorded it, want 1", ok)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Pending != 1 {
		t.Errorf("Stats = %+v, %v; want the one delivery whose Complete had a wrong lease pending", st, err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
