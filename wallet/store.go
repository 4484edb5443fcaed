package wallet

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
)

// Store opens transactions on the wallet database. Implementations retry fn on
// serialization conflicts, so fn must have no effects outside the transaction.
type Store interface {
	// Update runs fn in a read-write transaction and commits when fn returns nil.
	Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	// View runs fn's reads; writes fail. Each read sees committed data, though
	// two reads of one View may see different commits (as at READ COMMITTED).
	View(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
}

// Tx is what the domain needs from one database transaction. Methods return
// ErrNotFound or ErrDuplicate where noted; any other error is a storage failure.
//
// A store may defer writes that return nothing (InsertOperation, Post,
// UpdateOperation, AddPendingCredit, AddMonthUsage with a positive delta,
// ReleaseIdemKey, InsertEvent, EnqueueJob) and send them with its next read or
// with the commit, to save round trips: their errors, ErrDuplicate and
// ErrInsufficientFunds included, can then come from a later call or from
// Update itself, and the transaction is rolled back as a whole.
type Tx interface {
	// Wallet returns the partner's wallet; lock holds it (and its balance) until
	// the transaction ends. ErrNotFound when the partner has no such wallet.
	Wallet(ctx context.Context, partnerID, walletID uuid.UUID, lock bool) (Wallet, error)
	// ActiveWalletByPhone returns the partner's active wallet for phone, or ErrNotFound.
	ActiveWalletByPhone(ctx context.Context, partnerID uuid.UUID, phone string) (Wallet, error)
	// InsertWallet creates a wallet and its zero-balance account. ErrDuplicate when
	// the partner already has an active wallet for the phone or the number is taken.
	InsertWallet(ctx context.Context, w Wallet) error
	// UpdateWallet stores w's status, identification and closing time.
	UpdateWallet(ctx context.Context, w Wallet) error
	// HasPendingOperations reports whether any operation of the wallet is PENDING.
	HasPendingOperations(ctx context.Context, walletID uuid.UUID) (bool, error)

	// LimitState returns the partner's limit settings of a wallet (zero when
	// none) and what SUCCESS and PENDING operations of each type took in the
	// month (yyyymm, Moscow time), in one read: every limit check needs both.
	LimitState(ctx context.Context, walletID uuid.UUID, month int) (LimitState, error)
	// SaveOverrides replaces the partner's limit settings of a wallet.
	SaveOverrides(ctx context.Context, walletID uuid.UUID, o Overrides) error

	// PaymentScope reads what a payment decides on, at once: the partner's
	// wallet (locked), the PAYMENT made with token, the partner's TSP, the
	// wallet's limit settings and its usage in month. ErrNotFound when the
	// partner has no such wallet.
	PaymentScope(ctx context.Context, partnerID, walletID, tspID, token uuid.UUID, month int) (PaymentScope, error)

	// OperationScope reads what a request that creates an operation decides
	// on, at once: the partner's wallet (locked in Update), the partner's operation under
	// the Idempotency-Key idemKey (none asked for when it is empty) and the
	// wallet's LimitState in month. ErrNotFound when the partner has no such
	// wallet.
	OperationScope(ctx context.Context, partnerID, walletID uuid.UUID, idemKey string, month int) (OperationScope, error)

	// TSP returns the partner's TSP, or ErrNotFound (also for another partner's TSP).
	TSP(ctx context.Context, partnerID, tspID uuid.UUID) (TSP, error)
	// InsertTSP creates a TSP and its ledger account.
	InsertTSP(ctx context.Context, t TSP) error

	// InsertOperation stores a new operation. ErrDuplicate when its QRC id,
	// payment token (for a PAYMENT) or (partner, idempotency key) is taken.
	InsertOperation(ctx context.Context, op Operation) error
	// Operation returns an operation of the partner's wallet, or ErrNotFound.
	Operation(ctx context.Context, partnerID, walletID, opID uuid.UUID) (Operation, error)
	// OperationByID returns any operation (background work).
	OperationByID(ctx context.Context, opID uuid.UUID) (Operation, error)
	// LockOperation holds the partner's wallet and then its operation opID (in
	// that order, as every transaction takes them) and returns both, read at
	// once. ErrNotFound when either is missing.
	LockOperation(ctx context.Context, partnerID, walletID, opID uuid.UUID) (Wallet, Operation, error)
	// OperationByQRC returns the top-up with an SBP link id, or ErrNotFound.
	OperationByQRC(ctx context.Context, qrcID string) (Operation, error)
	// ReleaseIdemKey takes the Idempotency-Key off an operation, so that a new
	// one may carry it.
	ReleaseIdemKey(ctx context.Context, opID uuid.UUID) error
	// PaymentByToken returns the PAYMENT made with a token and holds it until
	// the transaction ends, or ErrNotFound.
	PaymentByToken(ctx context.Context, token uuid.UUID) (Operation, error)
	// UpdateOperation stores op's status, finishing time and refunded sum. The
	// transaction holds the operation (LockOperation, PaymentByToken).
	UpdateOperation(ctx context.Context, op Operation) error
	// Report returns one page of a wallet's operations, newest first (ties by id
	// descending), and how many match the filter in all.
	Report(ctx context.Context, walletID uuid.UUID, f ReportFilter) ([]Operation, int, error)

	// Post writes a balanced ledger transaction. Postings on wallet accounts
	// change their stored balance under the schema's guard; ErrInsufficientFunds
	// when one would go below zero (the transaction then writes nothing).
	Post(ctx context.Context, tx LedgerTx) error
	// AddPendingCredit changes a wallet's sum of pending top-ups by delta. The
	// transaction holds the wallet (Wallet with lock, OperationScope,
	// LockOperation), so the row is there.
	AddPendingCredit(ctx context.Context, walletID uuid.UUID, delta money.Amount) error
	// AddMonthUsage changes a wallet's monthly usage of a type by delta.
	AddMonthUsage(ctx context.Context, walletID uuid.UUID, month int, t OperationType, delta money.Amount) error

	// InsertEvent writes a partner notification to the outbox with the job
	// that delivers it, if the partner has a webhook URL; for a partner without
	// one it writes nothing (only partners with a URL get callbacks, PROTOCOL.md
	// section 8, and the outbox is not the place to keep events nobody takes).
	InsertEvent(ctx context.Context, e Event, delivery Job) error

	// EnqueueJob schedules background work; a job of the same kind and
	// reference that already exists is scheduled again instead, as new: its
	// attempts start over, and a runner holding an earlier claim of it cannot
	// finish it.
	EnqueueJob(ctx context.Context, j Job) error
}

// LimitState is what a wallet's limit checks read besides the wallet
// (Tx.LimitState).
type LimitState struct {
	Overrides Overrides
	Usage     map[OperationType]money.Amount // the month's, by type; a type never used in it is missing
}

// OperationScope is what a top-up, withdrawal or refund decides on
// (Tx.OperationScope).
type OperationScope struct {
	LimitState
	Wallet     Wallet
	Prior      Operation // the operation under the request's Idempotency-Key, when PriorFound
	PriorFound bool
}

// PaymentScope is what a payment decides on (Tx.PaymentScope).
type PaymentScope struct {
	LimitState
	Wallet    Wallet
	Paid      Operation // the PAYMENT already made with the token, when PaidFound
	PaidFound bool
	TSP       TSP // the partner's TSP, when TSPFound
	TSPFound  bool
}

// ErrInsufficientFunds is returned by Tx.Post when a wallet balance would go negative.
var ErrInsufficientFunds = errors.New("insufficient funds")
