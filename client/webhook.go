package client

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// WebhookSignatureHeader is the header that signs a notification:
// t=<unix seconds>,v1=<hex HMAC-SHA256(webhookSecret, t + "." + body)>.
const WebhookSignatureHeader = "X-Wallet-Signature"

// DefaultWebhookTolerance is how far a notification's timestamp may be from
// the receiver's clock. The service signs every delivery attempt afresh, so a
// retried event is not stale.
const DefaultWebhookTolerance = 5 * time.Minute

// maxWebhookBody bounds what WebhookHandler reads.
const maxWebhookBody = 1 << 20

// Reasons VerifyWebhook refuses a notification; test with errors.Is.
var (
	ErrWebhookHeader    = errors.New("walletd webhook: malformed " + WebhookSignatureHeader + " header")
	ErrWebhookSignature = errors.New("walletd webhook: no valid signature")
	ErrWebhookTimestamp = errors.New("walletd webhook: timestamp outside the tolerance")
	ErrWebhookPayload   = errors.New("walletd webhook: malformed event")
)

// EventType is the kind of a notification. The set may grow: ignore (and
// acknowledge) types you do not handle.
type EventType string

// Notification types.
const (
	EventRefillSucceeded     EventType = "refill.succeeded"
	EventRefillFailed        EventType = "refill.failed"
	EventRefillExpired       EventType = "refill.expired"
	EventWithdrawalSucceeded EventType = "withdrawal.succeeded"
	EventWithdrawalFailed    EventType = "withdrawal.failed"
	EventPaymentSucceeded    EventType = "payment.succeeded"
	EventRefundSucceeded     EventType = "refund.succeeded"
	EventWalletClosed        EventType = "wallet.closed"
)

// WebhookEvent is a notification. Delivery is at least once and not in
// order: deduplicate by ID.
type WebhookEvent struct {
	ID        uuid.UUID `json:"eventId"`
	Type      EventType `json:"type"`
	CreatedAt time.Time `json:"-"`
	WalletID  uuid.UUID `json:"walletId"`
	// Operation is the operation in its final state; nil for wallet.closed.
	Operation *Operation `json:"operation"`
}

// UnmarshalJSON reads the protocol form (createdAt "YYYY-MM-DD HH:MM:SS", Moscow).
func (e *WebhookEvent) UnmarshalJSON(b []byte) error {
	type plain WebhookEvent
	var w struct {
		plain
		CreatedAt string `json:"createdAt"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	t, err := parseTime(w.CreatedAt)
	if err != nil {
		return fmt.Errorf("createdAt: %w", err)
	}
	*e = WebhookEvent(w.plain)
	e.CreatedAt = t
	return nil
}

// MarshalJSON writes the protocol form.
func (e WebhookEvent) MarshalJSON() ([]byte, error) {
	type plain WebhookEvent
	return json.Marshal(struct {
		plain
		CreatedAt string `json:"createdAt"`
	}{plain(e), formatTime(e.CreatedAt)})
}

// VerifyWebhook checks a notification and decodes it. header is the
// X-Wallet-Signature value and body the raw request body, byte for byte.
// At least one v1 signature must match (several are allowed, as during a
// rotation of the secret; they are compared in constant time), and the
// timestamp t must be within tolerance of now (a zero now means time.Now(),
// a tolerance ≤ 0 means DefaultWebhookTolerance). Errors wrap
// ErrWebhookHeader, ErrWebhookSignature, ErrWebhookTimestamp or
// ErrWebhookPayload.
func VerifyWebhook(secret, header string, body []byte, now time.Time, tolerance time.Duration) (WebhookEvent, error) {
	if secret == "" {
		// An empty key would accept anything signed with an empty key.
		return WebhookEvent{}, errors.New("walletd webhook: empty webhook secret")
	}
	ts, sigs, err := parseSignatureHeader(header)
	if err != nil {
		return WebhookEvent{}, err
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	match := false
	for _, s := range sigs {
		// Not short-circuited, so the time taken does not depend on which matched.
		if hmac.Equal(s, want) {
			match = true
		}
	}
	if !match {
		return WebhookEvent{}, ErrWebhookSignature
	}

	if now.IsZero() {
		now = time.Now()
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return WebhookEvent{}, fmt.Errorf("%w: t is not a number", ErrWebhookHeader)
	}
	if skew := now.Sub(time.Unix(sec, 0)); skew > tolerance || skew < -tolerance {
		return WebhookEvent{}, fmt.Errorf("%w: signed at %s, %s away", ErrWebhookTimestamp, time.Unix(sec, 0).UTC().Format(time.RFC3339), skew.Round(time.Second))
	}

	var ev WebhookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return WebhookEvent{}, fmt.Errorf("%w: %w", ErrWebhookPayload, err)
	}
	if ev.ID == uuid.Nil || ev.Type == "" || ev.WalletID == uuid.Nil || ev.CreatedAt.IsZero() {
		return WebhookEvent{}, fmt.Errorf("%w: eventId, type, createdAt and walletId are required", ErrWebhookPayload)
	}
	return ev, nil
}

// parseSignatureHeader splits "t=…,v1=…[,v1=…]". Exactly one t of digits and
// at least one v1 are required; v1 values that are not 64 hex digits cannot
// match and are dropped; other keys (future schemes) are ignored.
func parseSignatureHeader(h string) (string, [][]byte, error) {
	var (
		ts    string
		sigs  [][]byte
		anyV1 bool
	)
	if strings.TrimSpace(h) == "" {
		return "", nil, fmt.Errorf("%w: missing", ErrWebhookHeader)
	}
	for part := range strings.SplitSeq(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "", nil, fmt.Errorf("%w: %q is not key=value", ErrWebhookHeader, part)
		}
		switch k {
		case "t":
			if ts != "" || !allDigits(v) || len(v) > 18 {
				return "", nil, fmt.Errorf("%w: bad or repeated t", ErrWebhookHeader)
			}
			ts = v
		case "v1":
			anyV1 = true
			if len(v) != 2*sha256.Size {
				continue
			}
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	if ts == "" || !anyV1 {
		return "", nil, fmt.Errorf("%w: t and v1 are required", ErrWebhookHeader)
	}
	return ts, sigs, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// WebhookHandler returns an http.Handler for the partner's webhook URL. It
// verifies each POST with VerifyWebhook (DefaultWebhookTolerance) and hands
// the event to fn. It answers 204 only when fn returns nil; a bad signature,
// header or body is answered 400, an error of fn 500, so the service delivers
// the event again later. fn must be idempotent: the same event may come more
// than once (deduplicate by WebhookEvent.ID).
func WebhookHandler(secret string, fn func(context.Context, WebhookEvent) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		ev, err := VerifyWebhook(secret, r.Header.Get(WebhookSignatureHeader), body, time.Now(), DefaultWebhookTolerance)
		if err != nil {
			http.Error(w, "invalid notification", http.StatusBadRequest)
			return
		}
		if err := fn(r.Context(), ev); err != nil {
			http.Error(w, "not processed", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
