package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
)

type testWrite struct {
	n     int
	reply chan int
}

func TestHandoffSubmitRunDrain(t *testing.T) {
	closing := make(chan struct{})
	h := NewHandoff[*testWrite](closing)
	var (
		mu     sync.Mutex
		groups [][]int
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Run(func(first *testWrite) {
			group := h.Drain([]*testWrite{first}, 3)
			var ns []int
			for _, w := range group {
				ns = append(ns, w.n)
				w.reply <- w.n * 10
			}
			mu.Lock()
			groups = append(groups, ns)
			mu.Unlock()
		}, func(w *testWrite) { t.Errorf("write %d refused while open", w.n) })
	}()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			w := &testWrite{n: i, reply: make(chan int, 1)}
			got, err := Submit(context.Background(), h, w, w.reply)
			if err != nil || got != i*10 {
				t.Errorf("Submit(%d) = %d, %v; want %d", i, got, err, i*10)
			}
		})
	}
	wg.Wait()
	close(closing)
	<-done
	total := 0
	for _, g := range groups {
		if len(g) > 3 {
			t.Errorf("a group of %d, more than Drain's max 3", len(g))
		}
		total += len(g)
	}
	if total != 10 {
		t.Errorf("writers answered %d writes, want 10", total)
	}

	// Closing: Submit fails at once, never blocking.
	w := &testWrite{reply: make(chan int, 1)}
	if _, err := Submit(context.Background(), h, w, w.reply); !errors.Is(err, crmhook.ErrClosed) {
		t.Errorf("Submit after close: %v, want ErrClosed", err)
	}
}

func TestHandoffSubmitContext(t *testing.T) {
	h := NewHandoff[*testWrite](make(chan struct{})) // no writer runs
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := &testWrite{reply: make(chan int, 1)}
	if _, err := Submit(ctx, h, w, w.reply); !errors.Is(err, context.Canceled) {
		t.Errorf("Submit with a cancelled context: %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := Submit(ctx, h, w, w.reply); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Submit nobody takes: %v, want context.DeadlineExceeded", err)
	}
}

func TestHandoffRunRefusesQueued(t *testing.T) {
	closing := make(chan struct{})
	h := NewHandoff[*testWrite](closing)
	taken := make(chan struct{})
	release := make(chan struct{})
	refused := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Run(func(first *testWrite) {
			close(taken)
			<-release
			first.reply <- 1
		}, func(w *testWrite) {
			refused <- w.n
			w.reply <- -1
		})
	}()
	first := &testWrite{n: 1, reply: make(chan int, 1)}
	go func() { _, _ = Submit(context.Background(), h, first, first.reply) }()
	<-taken
	// A second write, handed over while the writer is busy and Close
	// comes: it is either refused by Run or never taken, and its caller
	// hears so either way. None is stranded.
	second := &testWrite{n: 2, reply: make(chan int, 1)}
	sendErr := make(chan error, 1)
	go func() { sendErr <- h.send(context.Background(), second) }()
	close(closing)
	close(release)
	<-done
	err := <-sendErr
	select {
	case n := <-refused:
		if n != 2 || err != nil {
			t.Errorf("refused write %d after send returned %v, want write 2 taken, then refused", n, err)
		}
	default:
		if !errors.Is(err, crmhook.ErrClosed) {
			t.Errorf("a write neither taken nor refused: send = %v, want ErrClosed", err)
		}
	}
}

func TestPrune(t *testing.T) {
	chunks := func(sizes ...int64) (PruneFunc, *[]time.Time) {
		var seen []time.Time
		return func(_ context.Context, at time.Time, limit int) (int64, error) {
			if limit != PruneChunk {
				t.Errorf("chunk limit %d, want %d", limit, PruneChunk)
			}
			seen = append(seen, at)
			n := sizes[0]
			sizes = sizes[1:]
			return n, nil
		}, &seen
	}
	before, now := time.Unix(100, 0), time.Unix(200, 0)
	events, evSeen := chunks(PruneChunk, PruneChunk, 7)
	keys, keySeen := chunks(PruneChunk, 0)
	n, err := Prune(context.Background(), crmhook.PruneParams{DeliveredBefore: before, Now: now}, events, keys)
	if err != nil || n != 2*PruneChunk+7 {
		t.Errorf("Prune = %d, %v; want %d", n, err, 2*PruneChunk+7)
	}
	if len(*evSeen) != 3 || !(*evSeen)[0].Equal(before) || len(*keySeen) != 2 || !(*keySeen)[0].Equal(now) {
		t.Errorf("Prune ran %d event chunks (at %v) and %d key chunks (at %v), want 3 and 2", len(*evSeen), *evSeen, len(*keySeen), *keySeen)
	}

	never := func(context.Context, time.Time, int) (int64, error) {
		t.Error("Prune ran a chunk for a zero time")
		return 0, nil
	}
	if n, err := Prune(context.Background(), crmhook.PruneParams{}, never, never); n != 0 || err != nil {
		t.Errorf("Prune of zero params = %d, %v", n, err)
	}

	boom := errors.New("disk full")
	events, _ = chunks(PruneChunk, 0)
	failing := func(context.Context, time.Time, int) (int64, error) { return 0, boom }
	if n, err := Prune(context.Background(), crmhook.PruneParams{DeliveredBefore: before, Now: now}, events, failing); !errors.Is(err, boom) || n != PruneChunk {
		t.Errorf("Prune with a failing chunk = %d, %v; want the events removed so far and the error", n, err)
	}
}

func TestSortClaims(t *testing.T) {
	at := time.Unix(1000, 0)
	cs := []crmhook.Claim{
		{Delivery: crmhook.Delivery{ID: 3, NextAttemptAt: at}},
		{Delivery: crmhook.Delivery{ID: 9, NextAttemptAt: at.Add(-time.Second)}},
		{Delivery: crmhook.Delivery{ID: 1, NextAttemptAt: at}},
	}
	SortClaims(cs)
	var ids []int64
	for _, c := range cs {
		ids = append(ids, c.Delivery.ID)
	}
	if fmt.Sprint(ids) != "[9 1 3]" {
		t.Errorf("SortClaims order = %v, want [9 1 3] (oldest due first, then id)", ids)
	}
}

func TestScanDelivery(t *testing.T) {
	at := time.Unix(1000, 0).UTC()
	scan := func(dest ...any) error {
		if len(dest) != 12 {
			return fmt.Errorf("%d destinations, want the 11 columns and 1 extra", len(dest))
		}
		*dest[0].(*int64) = 7
		*dest[1].(*string) = "ev"
		*dest[2].(*string) = "sink-a"
		*dest[3].(*string) = "pending"
		*dest[4].(*int) = 2
		*dest[5].(*int64) = at.Unix()
		*dest[6].(*int64) = 0
		*dest[7].(*string) = "503"
		*dest[8].(*int64) = at.Unix() - 1
		*dest[9].(*int64) = at.Unix()
		*dest[10].(*int64) = 0
		*dest[11].(*string) = "lease"
		return nil
	}
	toTime := func(sec int64) time.Time {
		if sec == 0 {
			return time.Time{}
		}
		return time.Unix(sec, 0).UTC()
	}
	var lease string
	d, err := ScanDelivery(scan, toTime, &lease)
	if err != nil {
		t.Fatal(err)
	}
	want := crmhook.Delivery{ID: 7, EventID: "ev", Sink: "sink-a", State: crmhook.StatePending, Attempts: 2,
		NextAttemptAt: at, LastError: "503", CreatedAt: at.Add(-time.Second), UpdatedAt: at}
	if d != want || lease != "lease" {
		t.Errorf("ScanDelivery = %+v, lease %q; want %+v, lease", d, lease, want)
	}
	if n := len(strings.Split(DeliveryColumns, ",")); n != 11 {
		t.Errorf("DeliveryColumns names %d columns, want 11", n)
	}
}

func TestNewSecret(t *testing.T) {
	at := time.Unix(1000, 0)
	now := func() time.Time { return at }
	sec, err := NewSecret(crmhook.SourceSecret{Source: "attio", Secret: "s3cr3t", RetireAt: at.Add(time.Hour)}, now)
	if err != nil || sec.State != crmhook.SecretActive || !sec.CreatedAt.Equal(at) || !sec.RetireAt.IsZero() {
		t.Errorf("NewSecret = %s created %v retiring %v, %v; want active, now, no RetireAt", sec.State, sec.CreatedAt, sec.RetireAt, err)
	}
	sec, err = NewSecret(crmhook.SourceSecret{Source: "attio", Secret: "s3cr3t", State: crmhook.SecretRetiring,
		CreatedAt: at.Add(-time.Hour), RetireAt: at.Add(time.Hour)}, now)
	if err != nil || !sec.CreatedAt.Equal(at.Add(-time.Hour)) || !sec.RetireAt.Equal(at.Add(time.Hour)) {
		t.Errorf("NewSecret(retiring) = created %v retiring %v, %v; want both kept", sec.CreatedAt, sec.RetireAt, err)
	}
	for name, bad := range map[string]crmhook.SourceSecret{
		"no source":            {Secret: "s3cr3t"},
		"no secret":            {Source: "attio"},
		"unknown state":        {Source: "attio", Secret: "s3cr3t", State: "gone"},
		"retiring, no date":    {Source: "attio", Secret: "s3cr3t", State: crmhook.SecretRetiring},
		"state of case ACTIVE": {Source: "attio", Secret: "s3cr3t", State: "ACTIVE"},
	} {
		_, err := NewSecret(bad, now)
		if err == nil {
			t.Errorf("NewSecret(%s) accepted", name)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("NewSecret(%s): the error quotes the secret", name)
		}
	}
}

func TestControlChecks(t *testing.T) {
	at := time.Unix(1000, 0)
	now := func() time.Time { return at }
	if r, err := NewRotation(crmhook.Rotation{Source: "attio"}, now); err != nil || !r.StartedAt.Equal(at) || !r.UpdatedAt.Equal(at) {
		t.Errorf("NewRotation = %+v, %v; want both times now", r, err)
	}
	if _, err := NewRotation(crmhook.Rotation{}, now); err == nil {
		t.Error("NewRotation without a source accepted")
	}
	if st, err := NewSubscriptionState(crmhook.SubscriptionState{Source: "attio"}, now); err != nil || !st.LastCheckedAt.Equal(at) || !st.LastHealthyAt.IsZero() {
		t.Errorf("NewSubscriptionState = %+v, %v; want checked now, never healthy", st, err)
	}
	if _, err := NewSubscriptionState(crmhook.SubscriptionState{}, now); err == nil {
		t.Error("NewSubscriptionState without a source accepted")
	}
	if g, err := NewGap(crmhook.Gap{Source: "attio", From: at.Add(-time.Hour)}, now); err != nil || !g.RecordedAt.Equal(at) || !g.To.IsZero() {
		t.Errorf("NewGap = %+v, %v; want recorded now, no To", g, err)
	}
	for name, bad := range map[string]crmhook.Gap{
		"no source":      {From: at},
		"no From":        {Source: "attio", To: at},
		"To before From": {Source: "attio", From: at, To: at.Add(-time.Second)},
	} {
		if _, err := NewGap(bad, now); err == nil {
			t.Errorf("NewGap(%s) accepted", name)
		}
	}
	if err := CheckAcquire("watchdog", "me", time.Second); err != nil {
		t.Errorf("CheckAcquire: %v", err)
	}
	for name, err := range map[string]error{
		"zero ttl":     CheckAcquire("watchdog", "me", 0),
		"negative ttl": CheckAcquire("watchdog", "me", -time.Second),
		"no name":      CheckAcquire("", "me", time.Second),
		"no owner":     CheckLease("watchdog", ""),
	} {
		if err == nil {
			t.Errorf("lease check with %s accepted", name)
		}
	}
	if got := RotationData(nil); got == nil || len(got) != 0 {
		t.Errorf("RotationData(nil) = %#v, want empty, non-nil", got)
	}
	if got := FromRotationData([]byte{}); got != nil {
		t.Errorf("FromRotationData(empty) = %#v, want nil", got)
	}
}
