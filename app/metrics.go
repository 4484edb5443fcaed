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
	backlog := func() (int, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, lag, err := db.JobStore().Backlog(ctx, time.Now())
		if err != nil {
			return -1, 0
		}
		return n, lag
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "walletd_jobs_due",
			Help: "Background jobs (expiries, payouts, webhooks) due and not yet done; -1 when unknown.",
		}, func() float64 { n, _ := backlog(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "walletd_jobs_lag_seconds",
			Help: "How late the oldest due background job is.",
		}, func() float64 { _, lag := backlog(); return lag.Seconds() }),
	)
	return m
}

func (m *metrics) observeOperation(t wallet.OperationType, s wallet.OperationStatus) {
	m.operations.WithLabelValues(string(t), string(s)).Inc()
}

func (m *metrics) observeWebhook(outcome string) { m.webhooks.WithLabelValues(outcome).Inc() }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
