package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/perspektiva/walletd/store/storetest"
)

// TestE2EObservability: /metrics counts requests by route and operations by
// type and outcome; every request is logged as JSON with its request id and
// partner id, and the logs never carry the client's phone number.
func TestE2EObservability(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startServer(t, e)
		tok := s.token(t, s.A)
		const ph = "9165550123"
		w := s.register(t, tok, ph, 1)
		status, _, body := s.do(t, http.MethodPost, "/api/wallet/v1/account/"+w+"/refill", tok, map[string]any{"amount": "10.00"})
		expectOK(t, "refill", status, body)

		resp, err := s.client.Get(s.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %d", resp.StatusCode)
		}
		for _, want := range []string{
			`walletd_http_requests_total{code="",method="POST",route="/api/wallet/v1/account/{walletId}/refill",status="200"} 1`,
			`walletd_operations_total{status="PENDING",type="CREDIT"} 1`,
			`walletd_http_request_duration_seconds_bucket{method="POST",route="/api/wallet/v1/account/registration"`,
			"walletd_jobs_due ", "go_sql_open_connections", "walletd_webhook_deliveries_total",
			"walletd_operations_pending_oldest_seconds{type=\"DEBIT\"} 0\n", // no payout waits
		} {
			if !strings.Contains(string(metrics), want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		// The refill waits for the client: its age shows.
		const creditAge = `walletd_operations_pending_oldest_seconds{type="CREDIT"} `
		if i := strings.Index(string(metrics), "\n"+creditAge); i < 0 {
			t.Error("/metrics lacks walletd_operations_pending_oldest_seconds for CREDIT")
		} else {
			var age float64
			line, _, _ := strings.Cut(string(metrics)[i+1:], "\n")
			if _, err := fmt.Sscan(strings.TrimPrefix(line, creditAge), &age); err != nil || age <= 0 || age > 60 {
				t.Errorf("pending top-up age: %q, want the refill's few seconds", line)
			}
		}
		if strings.Contains(string(metrics), w) {
			t.Error("/metrics names a wallet id: routes must be patterns")
		}

		logs := s.logs.String()
		if strings.Contains(logs, ph) {
			t.Fatal("a log line carries the client's phone number")
		}
		var seen bool
		sc := bufio.NewScanner(strings.NewReader(logs))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				t.Fatalf("a log line is not JSON: %s", sc.Text())
			}
			if line["msg"] == "request" && strings.HasSuffix(line["path"].(string), "/refill") {
				seen = true
				if line["requestId"] == "" || line["partnerId"] != s.A.PartnerID {
					t.Errorf("request log lacks ids: %v", line)
				}
			}
		}
		if !seen {
			t.Error("the refill request was not logged")
		}
	})
}
