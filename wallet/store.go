package wallet

import (
	"context"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
)

// Store opens transactions on the wallet database. Implementations retry fn on
// serialization conflicts, so fn must have no effects outside the transaction.
type Store interface {
	// Update runs fn in a read-write transaction and commits when fn returns nil.
	Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
}

// Tx is what the domain needs from one database transaction. Methods return
// ErrNotFound or ErrDuplicate where noted; any other error is a storage failure.
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

	// Overrides returns the partner's limit settings of a wallet (zero when none).
	Overrides(ctx context.Context, walletID uuid.UUID) (Overrides, error)
	// SaveOverrides replaces them.
	SaveOverrides(ctx context.Context, walletID uuid.UUID, o Overrides) error
	// MonthUsage returns what SUCCESS and PENDING operations of each type took in
	// the month (yyyymm, Moscow time).
	MonthUsage(ctx context.Context, walletID uuid.UUID, month int) (map[OperationType]money.Amount, error)

	// TSP returns the partner's TSP, or ErrNotFound (also for another partner's TSP).
	TSP(ctx context.Context, partnerID, tspID uuid.UUID) (TSP, error)
	// InsertTSP creates a TSP and its ledger account.
	InsertTSP(ctx context.Context, t TSP) error
}
