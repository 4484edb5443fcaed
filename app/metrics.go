package app

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/perspektiva/walletd/httpapi"
	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/wallet"
)

// metrics are walletd's Prometheus metrics beyond the HTTP edge's own.
type metrics struct {
	registry   *prometheus.Registry
	http       *httpapi.Metrics
	operations *prometheus.CounterVec
	webhooks   *prometheus.CounterVec
}

func newMetrics(db *store.DB) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		registry: reg,
		http:     httpapi.NewMetrics(reg),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walletd_operations_total",
			Help: "Operation states committed, by type and status (PENDING when accepted, then the outcome).",
		}, []string{"type", "status"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walletd_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome: delivered, retry, failed, skipped.",
		}, []string{"outcome"}),
	}
	// Known outcomes start at zero, so a dashboard sees them before the first event.
	for _, o := range []string{"delivered", "retry", "failed", "skipped"} {
		m.webhooks.WithLabelValues(o)
	}
	reg.MustRegister(m.operations, m.webhooks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for name, pool := range db.Pools() {
		reg.MustRegister(collectors.NewDBStatsCollector(pool, name))
	}
	reg.MustRegister(backlogCollector{
		jobs: db.JobStore(),
		due: prometheus.NewDesc("walletd_jobs_due",
			"Background jobs (expiries, payouts, webhooks) due and not yet done; -1 when unknown.", nil, nil),
		lag: prometheus.NewDesc("walletd_jobs_lag_seconds", "How late the oldest due background job is.", nil, nil),
		pending: prometheus.NewDesc("walletd_operations_pending_oldest_seconds",
			"Age of the oldest PENDING operation by type: top-ups waiting for the client, payouts for the bank.",
			[]string{"type"}, nil),
	})
	return m
}

func (m *metrics) observeOperation(t wallet.OperationType, s wallet.OperationStatus) {
	m.operations.WithLabelValues(string(t), string(s)).Inc()
}

func (m *metrics) observeWebhook(outcome string) { m.webhooks.WithLabelValues(outcome).Inc() }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// backlogCollector reports the background job backlog, read once per scrape
// for both of its gauges, and the age of the oldest pending operations.
type backlogCollector struct {
	jobs              store.JobStore
	due, lag, pending *prometheus.Desc
}

func (c backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.due
	ch <- c.lag
	ch <- c.pending
}

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, lag, err := c.jobs.Backlog(ctx, time.Now())
	if err != nil {
		n, lag = -1, 0
	}
	ch <- prometheus.MustNewConstMetric(c.due, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, lag.Seconds())
	ages, err := c.jobs.PendingAge(ctx, time.Now())
	if err != nil {
		return // no guess: the series go missing, which alerts on their own
	}
	// The types that wait have their gauge always, zero when nothing waits,
	// so an alert on them never sees a gap.
	for _, t := range []wallet.OperationType{wallet.Credit, wallet.Debit} {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, ages[t].Seconds(), string(t))
	}
}
