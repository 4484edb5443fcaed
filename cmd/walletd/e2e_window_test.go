package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/perspektiva/walletd/store/storetest"
)

// TestE2EIdempotencyWindow: PROTOCOL.md section 4 keeps the first answer to an
// Idempotency-Key for 24 hours. Within them the same request replays it and
// another request is 409; past them the key is the partner's to use again,
// for the same request or another.
func TestE2EIdempotencyWindow(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startMoneyServer(t, e, nil)
		tok := s.token(t, s.A)
		w := s.register(t, tok, phone())
		const key = "window-1"
		key1 := []string{"Idempotency-Key", key}

		first := s.refillOK(t, tok, w, "100.00", key1...)
		if again := s.refillOK(t, tok, w, "100.00", key1...); again.OperationID != first.OperationID {
			t.Errorf("the same top-up within 24 h: operation %s, want the first, %s", again.OperationID, first.OperationID)
		}
		status, _, data := s.refill(t, tok, w, "200.00", key1...)
		expectError(t, "another top-up under the key within 24 h", status, data, http.StatusConflict, "IDEMPOTENCY_KEY_REUSED")

		// A day and an hour pass for this key: its kept answer and its
		// operation are as old as that.
		age := (25 * time.Hour).Microseconds()
		raw := storetest.Raw(t, s.DSN)
		for _, q := range []string{
			`UPDATE idempotency_keys SET created_at = created_at - $1 WHERE key = $2`,
			`UPDATE operations SET created_at = created_at - $1 WHERE idempotency_key = $2`,
		} {
			if _, err := raw.Exec(q, age, key); err != nil {
				t.Fatalf("age the key: %v", err)
			}
		}

		second := s.refillOK(t, tok, w, "100.00", key1...)
		if second.OperationID == first.OperationID {
			t.Errorf("the same top-up 25 h later replayed operation %s; want a new top-up", first.OperationID)
		}
		if again := s.refillOK(t, tok, w, "100.00", key1...); again.OperationID != second.OperationID {
			t.Errorf("the new top-up repeated at once: operation %s, want %s", again.OperationID, second.OperationID)
		}
		if page, _ := s.report(t, tok, w, "operationType=CREDIT"); moneyNum(page, "totalElements") != "2" {
			t.Errorf("CREDIT operations: %v, want two: the first top-up and the one 25 h later", page["totalElements"])
		}
		for _, tu := range []sbpTopUp{first, second} {
			if got := s.sbp(t, tu.QRC, "confirm"); got != "SUCCESS" {
				t.Errorf("confirm %s: %s, want SUCCESS", tu.OperationID, got)
			}
		}
		s.expectBalance(t, "after both top-ups", tok, w, "200.00")
	})
}
