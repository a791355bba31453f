package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
)

func testRejections(t *testing.T, s crmhook.Store) {
	ctx := t.Context()
	base := time.Now().Add(-time.Hour)
	var ids []int64
	var events []crmhook.Event
	for i, src := range []string{"affinity", "attio", "affinity"} {
		ev := newEvent(src, "person.created").Event
		events = append(events, ev)
		id, err := s.Reject(ctx, crmhook.Rejection{
			Event:      ev,
			Reason:     fmt.Sprint("timestamp too old #", i),
			RejectedAt: base.Add(time.Duration(i) * time.Minute),
		})
		if err != nil {
			t.Fatalf("Reject: %v", err)
		}
		ids = append(ids, id)
	}
	if ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Fatalf("Reject returned ids %v, want distinct", ids)
	}

	list := func(f crmhook.RejectionFilter, want ...int64) []crmhook.Rejection {
		t.Helper()
		rs, err := s.ListRejections(ctx, f)
		if err != nil {
			t.Fatalf("ListRejections: %v", err)
		}
		var got []int64
		for _, r := range rs {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("ListRejections(%+v) = %v, want %v", f, got, want)
		}
		return rs
	}
	no, yes := false, true
	all := list(crmhook.RejectionFilter{}, ids[2], ids[1], ids[0])
	for i, r := range all {
		n := 2 - i
		checkEvent(t, r.Event, events[n])
		if r.Reason != fmt.Sprint("timestamp too old #", n) || !near(r.RejectedAt, base.Add(time.Duration(n)*time.Minute)) || !r.ReleasedAt.IsZero() {
			t.Errorf("rejection %d = reason %q, rejected %v, released %v", r.ID, r.Reason, r.RejectedAt, r.ReleasedAt)
		}
	}
	list(crmhook.RejectionFilter{Source: "affinity"}, ids[2], ids[0])
	list(crmhook.RejectionFilter{ID: ids[1]}, ids[1])
	list(crmhook.RejectionFilter{Limit: 1}, ids[2])
	list(crmhook.RejectionFilter{Since: base.Add(30 * time.Second)}, ids[2], ids[1])
	list(crmhook.RejectionFilter{Until: base.Add(90 * time.Second)}, ids[1], ids[0])
	list(crmhook.RejectionFilter{Released: &no}, ids[2], ids[1], ids[0])
	list(crmhook.RejectionFilter{Released: &yes})
	if st := stats(t, s); st.Rejections != 3 {
		t.Errorf("Stats.Rejections = %d, want 3", st.Rejections)
	}

	before := time.Now()
	res, err := s.ReleaseRejection(ctx, ids[0], []string{"sink-a", "sink-b"}, time.Now().Add(time.Hour))
	after := time.Now()
	if err != nil {
		t.Fatalf("ReleaseRejection: %v", err)
	}
	if res.Duplicate || res.EventID == "" {
		t.Fatalf("ReleaseRejection = %+v, want a stored event", res)
	}
	ev, ds := mustGet(t, s, res.EventID)
	if ev.Source != events[0].Source || ev.Type != events[0].Type || !bytes.Equal(ev.Payload, events[0].Payload) ||
		ev.DedupeKey != events[0].DedupeKey {
		t.Errorf("released event = %s %s %q, want the rejected one", ev.Source, ev.Type, ev.Payload)
	}
	if !between(ev.ReceivedAt, before, after) {
		t.Errorf("released event received at %v, want now (within [%v, %v])", ev.ReceivedAt, before, after)
	}
	if got := sinksOf(ds); !slices.Equal(got, []string{"sink-a", "sink-b"}) {
		t.Errorf("released event delivers to %v, want [sink-a sink-b]", got)
	}
	for _, d := range ds {
		if d.State != crmhook.StatePending {
			t.Errorf("released event's delivery is %s, want pending", d.State)
		}
	}
	released := list(crmhook.RejectionFilter{Released: &yes}, ids[0])
	if len(released) == 1 && !between(released[0].ReleasedAt, before, after) {
		t.Errorf("ReleasedAt = %v, want within [%v, %v]", released[0].ReleasedAt, before, after)
	}
	list(crmhook.RejectionFilter{Released: &no}, ids[2], ids[1])
	if st := stats(t, s); st.Rejections != 2 || st.Pending != 2 {
		t.Errorf("Stats = %+v, want 2 rejections, 2 pending", st)
	}

	if _, err := s.ReleaseRejection(ctx, ids[0], []string{"sink-a"}, time.Now().Add(time.Hour)); !errors.Is(err, crmhook.ErrAlreadyReleased) || errors.Is(err, crmhook.ErrUnavailable) {
		t.Errorf("releasing a rejection twice: %v, want crmhook.ErrAlreadyReleased (and not ErrUnavailable)", err)
	}
	evs, err := s.ListEvents(ctx, crmhook.EventFilter{})
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	if len(evs) != 1 {
		t.Errorf("after releasing twice the store has %d events, want 1", len(evs))
	}
	if st := stats(t, s); st.Pending != 2 {
		t.Errorf("after releasing twice Stats.Pending = %d, want 2", st.Pending)
	}
}
