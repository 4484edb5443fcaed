package wallet

import (
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
)

// Operation is one money movement of a wallet, as the report shows it.
type Operation struct {
	ID          uuid.UUID
	WalletID    uuid.UUID
	PartnerID   uuid.UUID
	Type        OperationType
	Status      OperationStatus
	Amount      money.Amount
	Refunded    money.Amount // PAYMENT: the sum of its refunds so far
	TSPID       uuid.UUID    // PAYMENT and REFUND
	BankID      string       // DEBIT
	Token       uuid.UUID    // PAYMENT and REFUND: the payment token
	ParentID    uuid.UUID    // REFUND: the payment
	QRCID       string       // CREDIT: the SBP link's id
	Payload     string       // CREDIT: the SBP link
	IdemKey     string       // the partner's Idempotency-Key, if it sent one
	Description string       // Russian, names the TSP or the bank
	Month       int          // yyyymm (Moscow) of the request, for monthly limits
	CreatedAt   time.Time
	ExpiresAt   time.Time // CREDIT: when an unconfirmed top-up expires
	FinishedAt  time.Time // when it left PENDING
}

// Final reports whether the operation has reached its outcome.
func (o Operation) Final() bool { return o.Status != Pending }

// AccountKind tells the ledger how to treat an account's balance.
type AccountKind int

// Account kinds.
const (
	// WalletAccount balances are stored and guarded: a posting that would take
	// one below zero fails with INSUFFICIENT_FUNDS.
	WalletAccount AccountKind = iota
	// OpenAccount balances (TSPs, system accounts) never refuse; they are the sum
	// of their postings, so no single row is updated by every payment.
	OpenAccount
)

// System accounts of the ledger.
var (
	SBPInbound       = uuid.MustParse("00000000-0000-0000-0000-000000000001") // top-ups come from here
	PayoutsInTransit = uuid.MustParse("00000000-0000-0000-0000-000000000002") // withdrawals held here
	SBPOutbound      = uuid.MustParse("00000000-0000-0000-0000-000000000003") // payouts go here
)

// Posting moves Amount (positive: in, negative: out) on one account.
type Posting struct {
	Account uuid.UUID
	Kind    AccountKind
	Amount  money.Amount
}

// LedgerTx is a balanced set of postings caused by one operation.
type LedgerTx struct {
	ID          uuid.UUID
	OperationID uuid.UUID
	Kind        string
	CreatedAt   time.Time
	Postings    []Posting
}

// Ledger transaction kinds.
const (
	TxTopUp        = "TOPUP"
	TxPayment      = "PAYMENT"
	TxRefund       = "REFUND"
	TxPayoutHold   = "PAYOUT_HOLD"
	TxPayoutSettle = "PAYOUT_SETTLE"
	TxPayoutReturn = "PAYOUT_RETURN"
)

// transfer is the two-posting transaction that moves amount from one account to another.
func transfer(from, to Posting, amount money.Amount) []Posting {
	from.Amount, to.Amount = -amount, amount
	return []Posting{from, to}
}

func walletAcc(id uuid.UUID) Posting { return Posting{Account: id, Kind: WalletAccount} }
func openAcc(id uuid.UUID) Posting   { return Posting{Account: id, Kind: OpenAccount} }

// PaymentToken is a single-use permission to pay from one wallet.
type PaymentToken struct {
	Token     uuid.UUID
	WalletID  uuid.UUID
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Job is durable background work: expire a top-up, run a payout.
type Job struct {
	ID        uuid.UUID
	Kind      string
	Ref       uuid.UUID // the operation
	RunAt     time.Time
	CreatedAt time.Time
	Attempts  int   // runs so far since it was enqueued: the backoff's step
	Claim     int64 // which claim of the job this is; only the latest may finish it
}

// Job kinds.
const (
	JobExpireTopUp = "topup.expire"
	JobPayout      = "payout"
)

// ReportFilter selects a page of a wallet's operations. Bounds are inclusive;
// zero times, an empty type and absent amounts mean "no bound".
type ReportFilter struct {
	From, To             time.Time
	Type                 OperationType
	AmountFrom, AmountTo Optional
	Page, Size           int
}
