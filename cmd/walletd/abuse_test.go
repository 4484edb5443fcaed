package main

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/perspektiva/walletd/store/storetest"
)

// TestE2EAbuseLimits: failed token requests are throttled per client id, and
// each partner's request rate is capped; both answer 429 RATE_LIMITED with a
// Retry-After, and a throttled client id does not block another client.
func TestE2EAbuseLimits(t *testing.T) {
	t.Parallel()
	e := storetest.Engines()[0]
	s := startServerEnv(t, e, map[string]string{
		"WALLET_TOKEN_FAILURES_PER_CLIENT": "3",
		"WALLET_RATE_LIMIT":                "5",
		"WALLET_RATE_BURST":                "5",
	})

	wrong := url.Values{"grant_type": {"client_credentials"}, "partner_id": {s.A.PartnerID}}
	for i := range 3 {
		status, _, body := s.tokenRequest(t, wrong, "Authorization", basicAuth(s.A.ClientID, "wcs_wrong"))
		expectOAuthError(t, "wrong secret "+strconv.Itoa(i), status, body, http.StatusUnauthorized, "invalid_client")
	}
	status, hdr, body := s.tokenRequest(t, wrong, "Authorization", basicAuth(s.A.ClientID, "wcs_wrong"))
	expectError(t, "fourth failure", status, body, http.StatusTooManyRequests, "RATE_LIMITED")
	if n, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || n < 1 || n > 60 {
		t.Errorf("Retry-After = %q, want 1..60 seconds", hdr.Get("Retry-After"))
	}
	// Another client (partner B) is not held up by A's failures.
	tokB := s.token(t, s.B)

	// B's requests beyond its rate get 429; the first ones pass.
	var limited int
	for range 20 {
		status, hdr, body := s.do(t, http.MethodGet, "/api/wallet/v1/account/wifhdrawal/banks", tokB, nil)
		switch status {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			limited++
			expectError(t, "over the partner rate", status, body, http.StatusTooManyRequests, "RATE_LIMITED")
			if hdr.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		default:
			t.Fatalf("banks: %d %s", status, body)
		}
	}
	if limited == 0 || limited > 15 {
		t.Fatalf("%d of 20 quick requests were limited, want some but not all beyond the burst of 5", limited)
	}
	if !strings.Contains(s.logs.String(), `"status":429`) {
		t.Error("429 answers are not in the request log")
	}
}

// TestE2EServerLimits: oversized headers are refused, and a client that never
// finishes its request headers is cut off (read-header timeout, 5 s).
func TestE2EServerLimits(t *testing.T) {
	t.Parallel()
	s := startServer(t, storetest.Engines()[0])

	req, err := http.NewRequest(http.MethodGet, s.URL+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Padding", strings.Repeat("a", 40<<10))
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("40 KiB of headers: %d, want 431", resp.StatusCode)
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err = io.ReadAll(conn)
	if waited := time.Since(start); err != nil || waited > 10*time.Second {
		t.Fatalf("a request with unfinished headers was held %s (err %v); the read-header timeout is 5 s", waited, err)
	}
}
