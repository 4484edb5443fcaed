package wallet

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
)

// Identification is the client's identification level under 161-FZ.
type Identification int

// Levels in the protocol's numbering (0, 1, 2).
const (
	Elementary   Identification = 0 // not identified
	Personalized Identification = 1 // simplified identification (УПРИД)
	Identified   Identification = 2 // full identification
)

// Valid reports whether i is one of the three levels.
func (i Identification) Valid() bool { return i >= Elementary && i <= Identified }

// String returns the protocol name: ELEMENTARY, PERSONALIZED or IDENTIFIED.
func (i Identification) String() string {
	switch i {
	case Elementary:
		return "ELEMENTARY"
	case Personalized:
		return "PERSONALIZED"
	case Identified:
		return "IDENTIFIED"
	}
	return fmt.Sprintf("Identification(%d)", int(i))
}

// Status of a wallet.
type Status string

// Wallet statuses.
const (
	Active Status = "ACTIVE"
	Closed Status = "CLOSED"
)

// Wallet is a client's e-money wallet (ЭСП) opened through one partner.
type Wallet struct {
	ID             uuid.UUID
	PartnerID      uuid.UUID
	Phone          string // 10 digits
	Number         string // 16 digits, Luhn
	Identification Identification
	Status         Status
	Balance        money.Amount // settled: pending withdrawals deducted, pending top-ups not added
	PendingCredit  money.Amount // sum of PENDING top-ups, counted against the balance limit
	CreatedAt      time.Time
	ClosedAt       time.Time // zero while active
}

// TSP is a merchant (ТСП) under contract with a partner; payments go to it.
type TSP struct {
	ID        uuid.UUID
	PartnerID uuid.UUID
	Name      string
	CreatedAt time.Time
}

// OperationType is the kind of a wallet operation.
type OperationType string

// Operation types of the protocol.
const (
	Credit  OperationType = "CREDIT"  // top-up through SBP
	Payment OperationType = "PAYMENT" // payment to a TSP
	Debit   OperationType = "DEBIT"   // withdrawal to a bank
	Refund  OperationType = "REFUND"  // a TSP returns (part of) a payment
)

// Valid reports whether t is a protocol operation type.
func (t OperationType) Valid() bool {
	switch t {
	case Credit, Payment, Debit, Refund:
		return true
	}
	return false
}

// OperationStatus is where an operation is in its life.
type OperationStatus string

// Operation statuses.
const (
	Pending OperationStatus = "PENDING"
	Success OperationStatus = "SUCCESS"
	Failed  OperationStatus = "FAILED"
	Expired OperationStatus = "EXPIRED"
)
