package wallet

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
)

// SBP is the Faster Payments System as the wallet uses it: links for top-ups and
// payouts to banks. The sandbox implements it; a real provider's adapter can
// replace it without the domain noticing.
type SBP interface {
	// IssueTopUp registers a one-time QR/link for a top-up of amount.
	IssueTopUp(ctx context.Context, order TopUpOrder) (TopUpLink, error)
	// Payout sends (or checks) the payout of a withdrawal. It must be idempotent
	// by operation id: it is called again after crashes and retries.
	Payout(ctx context.Context, order PayoutOrder) (PayoutResult, error)
	// PayoutsAvailable reports whether a withdrawal accepted now could be paid
	// out: an error refuses it as UNAVAILABLE rather than holding its money for
	// a payout nobody can send. It answers from configuration, without I/O, as
	// a withdrawal's transaction asks it.
	PayoutsAvailable() error
}

// TopUpOrder asks for a top-up link.
type TopUpOrder struct {
	OperationID uuid.UUID
	Amount      money.Amount
	ExpiresAt   time.Time
}

// TopUpLink is what the client opens in a bank app.
type TopUpLink struct {
	QRCID   string // the link's id: confirmations name it
	Payload string // the URL
}

// PayoutOrder is one withdrawal to send.
type PayoutOrder struct {
	OperationID uuid.UUID
	BankID      string
	Amount      money.Amount
	CreatedAt   time.Time
}

// PayoutStatus is where a payout is at the provider.
type PayoutStatus int

// Payout statuses.
const (
	PayoutInProgress PayoutStatus = iota // ask again at RetryAt
	PayoutSucceeded
	PayoutFailed
)

// PayoutResult is the provider's answer.
type PayoutResult struct {
	Status  PayoutStatus
	RetryAt time.Time // for PayoutInProgress
}
