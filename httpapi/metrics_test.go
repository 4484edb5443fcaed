package httpapi

import (
	"maps"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsMethodLabel: any token is a valid HTTP method, so methods beyond
// the standard ones share one label value instead of growing the series.
func TestMetricsMethodLabel(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	for _, method := range []string{"GET", "POST", "BREW", "X-ONE", "X-TWO"} {
		m.observe(httptest.NewRequest(method, "/healthz", nil), 405, "METHOD_NOT_ALLOWED", time.Millisecond)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{} // method label → requests
	for _, f := range families {
		if f.GetName() != "walletd_http_requests_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "method" {
					got[l.GetValue()] += s.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"GET": 1, "POST": 1, "OTHER": 3}
	if !maps.Equal(got, want) {
		t.Errorf("requests by method label %v (labels %v), want %v", got, slices.Sorted(maps.Keys(got)), want)
	}
}
