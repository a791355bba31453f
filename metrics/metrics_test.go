package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// statsStore answers Stats only; the collector needs nothing else.
type statsStore struct {
	crmhook.Store
	stats crmhook.Stats
	err   error
}

func (s statsStore) Stats(context.Context) (crmhook.Stats, error) { return s.stats, s.err }

func TestObserverAndAttempts(t *testing.T) {
	m := metrics.New(nil)
	m.Request("affinity", 200)
	m.Request("affinity", 200)
	m.Request("attio", 401)
	m.Stored("affinity", 3)
	m.Duplicate("affinity")
	m.Rejected("attio")
	m.Probe("affinity")
	m.Commit(16, 2*time.Millisecond)
	m.Attempt("svc", crmhook.OutcomeRetry, 30*time.Millisecond)
	m.Attempt("svc", crmhook.OutcomeDelivered, 10*time.Millisecond)

	want := `
# HELP crmhook_requests_total Hook requests answered, by source and HTTP status.
# TYPE crmhook_requests_total counter
crmhook_requests_total{source="affinity",status="200"} 2
crmhook_requests_total{source="attio",status="401"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "crmhook_requests_total"); err != nil {
		t.Error(err)
	}
	for name, n := range map[string]int{
		"crmhook_events_stored_total": 1, "crmhook_duplicates_total": 1, "crmhook_rejections_total": 1,
		"crmhook_probes_total": 1, "crmhook_deliveries_total": 2, "crmhook_store_commit_seconds": 1,
		"crmhook_store_commit_batch_size": 1, "crmhook_delivery_seconds": 1,
	} {
		got, err := testutil.GatherAndCount(m.Registry, name)
		if err != nil || got != n {
			t.Errorf("%s: %d series (%v), want %d", name, got, err, n)
		}
	}
}

func TestQueueGaugesReadTheStore(t *testing.T) {
	oldest := time.Now().Add(-90 * time.Second)
	m := metrics.New(statsStore{stats: crmhook.Stats{Pending: 7, Dead: 2, Rejections: 1, OldestPending: oldest}})
	want := `
# HELP crmhook_queue_dead Dead-lettered deliveries awaiting an operator.
# TYPE crmhook_queue_dead gauge
crmhook_queue_dead 2
# HELP crmhook_queue_pending Deliveries not yet delivered (including those being retried).
# TYPE crmhook_queue_pending gauge
crmhook_queue_pending 7
# HELP crmhook_store_up 1 when the store answered the last scrape's stats query.
# TYPE crmhook_store_up gauge
crmhook_store_up 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "crmhook_queue_pending", "crmhook_queue_dead", "crmhook_store_up"); err != nil {
		t.Error(err)
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "crmhook_queue_oldest_pending_age_seconds" {
			if age := mf.GetMetric()[0].GetGauge().GetValue(); age < 89 || age > 120 {
				t.Errorf("oldest pending age %v, want about 90", age)
			}
		}
	}

	// The age is measured on the store's clock, frozen here years ahead.
	frozen := time.Date(2031, 6, 15, 12, 0, 0, 0, time.UTC)
	later := metrics.New(nil)
	later.WatchStore(statsStore{stats: crmhook.Stats{Pending: 1, OldestPending: frozen.Add(-45 * time.Second)}}, func() time.Time { return frozen })
	if err := testutil.GatherAndCompare(later.Registry, strings.NewReader(`
# HELP crmhook_queue_oldest_pending_age_seconds Age of the oldest pending delivery; 0 when none.
# TYPE crmhook_queue_oldest_pending_age_seconds gauge
crmhook_queue_oldest_pending_age_seconds 45
`), "crmhook_queue_oldest_pending_age_seconds"); err != nil {
		t.Error(err)
	}

	down := metrics.New(statsStore{err: errors.New("store down")})
	if err := testutil.GatherAndCompare(down.Registry, strings.NewReader(`
# HELP crmhook_store_up 1 when the store answered the last scrape's stats query.
# TYPE crmhook_store_up gauge
crmhook_store_up 0
`), "crmhook_store_up"); err != nil {
		t.Error(err)
	}
}

func TestSubscriptionStatusAndGaps(t *testing.T) {
	m := metrics.New(nil)
	m.SubscriptionStatus("affinity", "17", "disabled")
	m.SubscriptionStatus("affinity", "17", "active")
	m.Gap("affinity", 90*time.Minute)
	m.Gap("affinity", 30*time.Minute)
	want := `
# HELP crmhook_subscription_gap_seconds_total Seconds of those spans, by source.
# TYPE crmhook_subscription_gap_seconds_total counter
crmhook_subscription_gap_seconds_total{source="affinity"} 7200
# HELP crmhook_subscription_gaps_total Spans during which a provider sent nothing because it had disabled or deactivated the subscription, by source.
# TYPE crmhook_subscription_gaps_total counter
crmhook_subscription_gaps_total{source="affinity"} 2
# HELP crmhook_subscription_status A declared provider subscription's status at the last watchdog check: 1 for the current status, 0 for the others.
# TYPE crmhook_subscription_status gauge
crmhook_subscription_status{source="affinity",status="active",subscription="17"} 1
crmhook_subscription_status{source="affinity",status="degraded",subscription="17"} 0
crmhook_subscription_status{source="affinity",status="disabled",subscription="17"} 0
crmhook_subscription_status{source="affinity",status="inactive",subscription="17"} 0
crmhook_subscription_status{source="affinity",status="missing",subscription="17"} 0
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "crmhook_subscription_status", "crmhook_subscription_gaps_total", "crmhook_subscription_gap_seconds_total"); err != nil {
		t.Error(err)
	}
}
