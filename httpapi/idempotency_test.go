package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/httpapi"
	"github.com/perspektiva/walletd/idempotency"
)

// TestIdempotencyTakeover: a request that claimed its Idempotency-Key and then
// died with its process (a kill, a power cut) leaves the claim behind. A retry
// waits while the claim's lease runs, then takes the key over and runs the
// request itself, once: the next retry replays that answer, and the wallet
// has one operation.
func TestIdempotencyTakeover(t *testing.T) {
	t.Parallel()
	e := startEnv(t)
	tok, err := e.bearer()
	if err != nil {
		t.Fatal(err)
	}
	// A wallet of its own, new even when the test runs again in the process.
	w, err := e.registerAs(tok, fmt.Sprintf("92%08d", rand.N(100_000_000)), 2)
	if err != nil {
		t.Fatal(err)
	}
	if n := operationCount(t, e, w.ID); n != 0 {
		t.Fatalf("the new wallet has %d operations", n)
	}
	path, body := "/account/"+w.ID+"/refill", []byte(`{"amount":"3.00"}`)
	key := "takeover-" + uuid.NewString()

	// The claim of the request that died, with little of its lease left.
	const left = 1500 * time.Millisecond
	r, err := http.NewRequest(http.MethodPost, httpapi.BasePath+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	claimedAt := time.Now().Add(left - httpapi.IdempotencyLease)
	_, claimed, err := e.srv.DB.IdempotencyStore().Begin(context.Background(), e.srv.Partner.PartnerID, key,
		httpapi.RequestHash(r, body), claimedAt, httpapi.IdempotencyLease, idempotency.TTL)
	if err != nil || !claimed {
		t.Fatalf("plant the claim: claimed %v, %v", claimed, err)
	}

	start := time.Now()
	retry := e.post(t, path, body, "Idempotency-Key", key)
	waited := time.Since(start)
	e.check(t, retry, "retry")
	if retry.status != http.StatusOK || retry.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry after the lease: %d (Idempotent-Replayed %q) %s, want 200 and its own answer",
			retry.status, retry.header.Get("Idempotent-Replayed"), retry.body)
	}
	if until := time.Until(claimedAt.Add(httpapi.IdempotencyLease)); waited < left-100*time.Millisecond || until > 0 {
		t.Errorf("the retry was answered %v after it was sent, %v before the dead claim's lease ended", waited, until)
	}
	var op struct {
		OperationID string `json:"operationId"`
	}
	if err := json.Unmarshal(retry.body, &op); err != nil || op.OperationID == "" {
		t.Fatalf("retry answer %s: %v", retry.body, err)
	}

	again := e.post(t, path, body, "Idempotency-Key", key)
	if again.status != http.StatusOK || !bytes.Equal(again.body, retry.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("second retry: %d (Idempotent-Replayed %q) %s, want the replay of %s",
			again.status, again.header.Get("Idempotent-Replayed"), again.body, retry.body)
	}
	if n := operationCount(t, e, w.ID); n != 1 {
		t.Errorf("the wallet has %d operations, want the one top-up", n)
	}
}

// operationCount is the size of a wallet's report.
func operationCount(t *testing.T, e *fuzzEnv, walletID string) int {
	t.Helper()
	report := e.send(t, http.MethodGet, "/account/"+walletID+"/report", "", nil)
	var page struct {
		TotalElements int `json:"totalElements"`
	}
	if err := json.Unmarshal(report.body, &page); err != nil || report.status != http.StatusOK {
		t.Fatalf("report: %d %s (%v)", report.status, report.body, err)
	}
	return page.TotalElements
}

// TestRequestHash: what counts as "the same request" under one Idempotency-Key.
func TestRequestHash(t *testing.T) {
	t.Parallel()
	const w = "/api/wallet/v1/account/01a21c03-0000-7000-8000-000000000001"
	hash := func(method, path, body string) []byte {
		r, err := http.NewRequest(method, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return httpapi.RequestHash(r, []byte(body))
	}
	base := hash(http.MethodPost, w+"/wifhdrawal", `{"bankIdentifier":"100000000111","amount":"5.00"}`)
	tests := []struct {
		name               string
		method, path, body string
		same               bool
	}{
		{"the same", http.MethodPost, w + "/wifhdrawal", `{"bankIdentifier":"100000000111","amount":"5.00"}`, true},
		{"re-encoded JSON", http.MethodPost, w + "/wifhdrawal", "{ \"bankIdentifier\": \"100000000111\",\n \"amount\": \"5.00\" }", true},
		{"the alias spelling", http.MethodPost, w + "/withdrawal", `{"bankIdentifier":"100000000111","amount":"5.00"}`, true},
		{"another amount", http.MethodPost, w + "/wifhdrawal", `{"bankIdentifier":"100000000111","amount":"5.01"}`, false},
		{"members in another order", http.MethodPost, w + "/wifhdrawal", `{"amount":"5.00","bankIdentifier":"100000000111"}`, false},
		{"another wallet", http.MethodPost, w[:len(w)-1] + "2/wifhdrawal", `{"bankIdentifier":"100000000111","amount":"5.00"}`, false},
		{"another endpoint", http.MethodPost, w + "/refill", `{"bankIdentifier":"100000000111","amount":"5.00"}`, false},
		{"the wallet id in upper case", http.MethodPost, "/api/wallet/v1/account/" + strings.ToUpper(w[len("/api/wallet/v1/account/"):]) + "/wifhdrawal", `{"bankIdentifier":"100000000111","amount":"5.00"}`, true},
	}
	for _, tt := range tests {
		if got := bytes.Equal(hash(tt.method, tt.path, tt.body), base); got != tt.same {
			t.Errorf("%s: same request = %v, want %v", tt.name, got, tt.same)
		}
	}
}
