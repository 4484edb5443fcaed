package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perspektiva/walletd/client"
	"github.com/perspektiva/walletd/store/storetest"
)

// TestCLIWebhooks: set-webhook gives a new secret, list shows each event with
// its delivery, replay sends an event again with the same id.
func TestCLIWebhooks(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		got    []map[string]any
		bodies [][]byte
		sigs   []string
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		got, bodies, sigs = append(got, ev), append(bodies, body), append(sigs, r.Header.Get("X-Wallet-Signature"))
		mu.Unlock()
	}))
	defer receiver.Close()
	received := func(n int) []map[string]any {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			mu.Lock()
			if len(got) >= n {
				defer mu.Unlock()
				return append([]map[string]any(nil), got...)
			}
			mu.Unlock()
		}
		t.Fatalf("fewer than %d deliveries", n)
		return nil
	}

	s := startServer(t, storetest.Engines()[0])
	env := testEnv(nil)
	if _, _, err := runCmd(t, env, "partner", "set-webhook", "--db", s.DSN, "--partner", s.A.PartnerID, "--url", "ftp://x"); exitCode(err) != 2 {
		t.Fatalf("set-webhook with an ftp URL: %v", err)
	}
	out, errOut, err := runCmd(t, env, "partner", "set-webhook", "--db", s.DSN, "--partner", s.A.PartnerID, "--url", receiver.URL)
	if err != nil {
		t.Fatalf("set-webhook: %v %s", err, errOut)
	}
	var set map[string]string
	if err := json.Unmarshal([]byte(out), &set); err != nil || set["webhookUrl"] != receiver.URL ||
		!strings.HasPrefix(set["webhookSecret"], "whs_") || set["webhookSecret"] == s.A.WebhookSecret {
		t.Fatalf("set-webhook printed %q", out)
	}

	tok := s.token(t, s.A)
	w := s.register(t, tok, phone())
	status, _, body := s.do(t, http.MethodPost, "/api/wallet/v1/account/"+w+"/deactivation", tok, nil)
	expectOK(t, "close", status, body)
	first := received(1)[0]
	if first["type"] != "wallet.closed" || first["walletId"] != w {
		t.Fatalf("event %v", first)
	}

	// The receiver has the event before the server has recorded its answer:
	// the list shows it delivered within moments, never anything else.
	var line map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _, err = runCmd(t, env, "webhooks", "list", "--db", s.DSN, "--partner", s.A.PartnerID)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &line); err != nil {
			t.Fatalf("list printed %q", out)
		}
		if line["eventId"] != first["eventId"] || (line["status"] != "PENDING" && line["status"] != "DELIVERED") {
			t.Fatalf("list line %v", line)
		}
		if line["status"] == "DELIVERED" || time.Now().After(deadline) {
			break
		}
	}
	if line["status"] != "DELIVERED" || line["attempts"] != float64(1) {
		t.Fatalf("list line %v, want the event DELIVERED after one attempt", line)
	}

	if _, _, err := runCmd(t, env, "webhooks", "replay", first["eventId"].(string), "--db", s.DSN); err != nil {
		t.Fatalf("replay: %v", err)
	}
	again := received(2)[1]
	if again["eventId"] != first["eventId"] {
		t.Fatalf("replay sent %v, want event %v", again["eventId"], first["eventId"])
	}
	// Both deliveries are signed with the secret set-webhook printed.
	mu.Lock()
	for i, body := range bodies {
		if _, err := client.VerifyWebhook(set["webhookSecret"], sigs[i], body, time.Now(), time.Minute); err != nil {
			t.Errorf("delivery %d: signature %q does not verify with the new secret: %v", i+1, sigs[i], err)
		}
	}
	mu.Unlock()
	if _, _, err := runCmd(t, env, "webhooks", "replay", "01a21c0f-0000-7000-8000-000000000000", "--db", s.DSN); err == nil {
		t.Fatal("replay of an unknown event succeeded")
	}
}
