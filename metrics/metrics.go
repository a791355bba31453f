// Package metrics exports crmhook's Prometheus metrics: what the receiver
// answered, what the store committed, what the dispatcher delivered, and how
// deep and how old the queue is.
package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every crmhook metric, registered on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	requests    *prometheus.CounterVec
	stored      *prometheus.CounterVec
	duplicates  *prometheus.CounterVec
	rejections  *prometheus.CounterVec
	probes      *prometheus.CounterVec
	commitTime  prometheus.Histogram
	commitBatch prometheus.Histogram
	attempts    *prometheus.CounterVec
	attemptTime *prometheus.HistogramVec
	subStatus   *prometheus.GaugeVec
	gaps        *prometheus.CounterVec
	gapSeconds  *prometheus.CounterVec
}

// SubscriptionStatuses are the statuses the subscription gauge reports, one
// series each: the current one is 1, the others 0.
var SubscriptionStatuses = []string{"active", "disabled", "degraded", "inactive", "missing"}

// New registers the metrics, plus, when store is not nil, a collector that
// reads queue depth and the oldest pending delivery from store at scrape
// time by the wall clock (see WatchStore).
func New(store crmhook.Store) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmhook_requests_total", Help: "Hook requests answered, by source and HTTP status.",
		}, []string{"source", "status"}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmhook_events_stored_total", Help: "Events committed to the store, by source.",
		}, []string{"source"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmhook_duplicates_total", Help: "Redeliveries acknowledged and dropped, by source.",
		}, []string{"source"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmhook_rejections_total", Help: "Deliveries kept as rejections (outside the replay window), by source.",
		}, []string{"source"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmhook_probes_total", Help: "Provider test calls answered without storing, by source.",
		}, []string{"source"}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "crmhook_store_commit_seconds", Help: "Time to commit one group of inserts (fsync included).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "crmhook_store_commit_batch_size", Help: "Events per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmhook_deliveries_total", Help: "Delivery attempts, by sink and outcome.",
		}, []string{"sink", "outcome"}),
		attemptTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "crmhook_delivery_seconds", Help: "Time a sink took to answer one attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"sink"}),
		subStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crmhook_subscription_status", Help: "A declared provider subscription's status at the last watchdog check: 1 for the current status, 0 for the others.",
		}, []string{"source", "subscription", "status"}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmhook_subscription_gaps_total", Help: "Spans during which a provider sent nothing because it had disabled or deactivated the subscription, by source.",
		}, []string{"source"}),
		gapSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmhook_subscription_gap_seconds_total", Help: "Seconds of those spans, by source.",
		}, []string{"source"}),
	}
	m.Registry.MustRegister(m.requests, m.stored, m.duplicates, m.rejections, m.probes,
		m.commitTime, m.commitBatch, m.attempts, m.attemptTime, m.subStatus, m.gaps, m.gapSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if store != nil {
		m.WatchStore(store, time.Now)
	}
	return m
}

// WatchStore adds the queue gauges (pending, dead, rejections, age of the
// oldest pending delivery), read from store at scrape time. now is the
// clock the store stamps deliveries with, so that the age is measured on
// the same one.
func (m *Metrics) WatchStore(store crmhook.Store, now func() time.Time) {
	m.Registry.MustRegister(&queueCollector{store: store, now: now})
}

// Request, Stored, Duplicate, Rejected and Probe implement receiver.Observer.
func (m *Metrics) Request(source string, status int) {
	m.requests.WithLabelValues(source, strconv.Itoa(status)).Inc()
}
func (m *Metrics) Stored(source string, n int) { m.stored.WithLabelValues(source).Add(float64(n)) }
func (m *Metrics) Duplicate(source string)     { m.duplicates.WithLabelValues(source).Inc() }
func (m *Metrics) Rejected(source string)      { m.rejections.WithLabelValues(source).Inc() }
func (m *Metrics) Probe(source string)         { m.probes.WithLabelValues(source).Inc() }

// SubscriptionStatus records a subscription's status (watchdog.Observer).
func (m *Metrics) SubscriptionStatus(source, subscriptionID, status string) {
	for _, s := range SubscriptionStatuses {
		v := 0.0
		if s == status {
			v = 1
		}
		m.subStatus.WithLabelValues(source, subscriptionID, s).Set(v)
	}
}

// Gap counts a span lost at the provider (watchdog.Observer).
func (m *Metrics) Gap(source string, d time.Duration) {
	m.gaps.WithLabelValues(source).Inc()
	m.gapSeconds.WithLabelValues(source).Add(d.Seconds())
}

// Commit observes one group commit (the store's commit hook).
func (m *Metrics) Commit(batch int, took time.Duration) {
	m.commitBatch.Observe(float64(batch))
	m.commitTime.Observe(took.Seconds())
}

// Attempt observes one delivery attempt (the dispatcher's OnAttempt).
func (m *Metrics) Attempt(sink string, outcome crmhook.Outcome, took time.Duration) {
	m.attempts.WithLabelValues(sink, string(outcome)).Inc()
	m.attemptTime.WithLabelValues(sink).Observe(took.Seconds())
}

var (
	pendingDesc = prometheus.NewDesc("crmhook_queue_pending", "Deliveries not yet delivered (including those being retried).", nil, nil)
	deadDesc    = prometheus.NewDesc("crmhook_queue_dead", "Dead-lettered deliveries awaiting an operator.", nil, nil)
	rejectDesc  = prometheus.NewDesc("crmhook_rejections_unreleased", "Kept rejections not yet released.", nil, nil)
	oldestDesc  = prometheus.NewDesc("crmhook_queue_oldest_pending_age_seconds", "Age of the oldest pending delivery; 0 when none.", nil, nil)
	upDesc      = prometheus.NewDesc("crmhook_store_up", "1 when the store answered the last scrape's stats query.", nil, nil)
)

// queueCollector reads the queue from the store at scrape time, so the
// figures are the store's truth even with many replicas.
type queueCollector struct {
	store crmhook.Store
	now   func() time.Time
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- deadDesc
	ch <- rejectDesc
	ch <- oldestDesc
	ch <- upDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.store.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(st.Dead))
	ch <- prometheus.MustNewConstMetric(rejectDesc, prometheus.GaugeValue, float64(st.Rejections))
	age := 0.0
	if !st.OldestPending.IsZero() {
		age = c.now().Sub(st.OldestPending).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age)
}
