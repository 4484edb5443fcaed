package client

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
)

// TimeLayout is the protocol's time format, in Moscow time.
const TimeLayout = "2006-01-02 15:04:05"

// Moscow is the zone of the protocol's times: Europe/Moscow from the system's
// time zone data, or UTC+3 (Moscow's offset since 2014) where there is none.
// Read it; do not replace it.
var Moscow = loadMoscow()

func loadMoscow() *time.Location {
	if loc, err := time.LoadLocation("Europe/Moscow"); err == nil {
		return loc
	}
	return time.FixedZone("MSK", 3*60*60)
}

// parseTime reads a protocol time ("2024-07-10 14:03:59", Moscow).
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.ParseInLocation(TimeLayout, s, Moscow)
}

// formatTime writes t in the protocol's form; the zero time is "".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(Moscow).Format(TimeLayout)
}

// Identification is a wallet's identification level (161-FZ). The zero value
// is Elementary. It is written as its name in JSON ("ELEMENTARY"), as the
// service's answers do, and sent as its number where a request asks for one.
type Identification int

// Identification levels.
const (
	Elementary   Identification = 0 // not identified
	Personalized Identification = 1 // simplified identification (УПРИД)
	Identified   Identification = 2 // full identification
)

var identificationNames = [...]string{"ELEMENTARY", "PERSONALIZED", "IDENTIFIED"}

// Valid reports whether l is one of the three levels.
func (l Identification) Valid() bool { return l >= Elementary && l <= Identified }

// String returns the protocol name, e.g. "PERSONALIZED".
func (l Identification) String() string {
	if l.Valid() {
		return identificationNames[l]
	}
	return "Identification(" + strconv.Itoa(int(l)) + ")"
}

// MarshalText writes the protocol name.
func (l Identification) MarshalText() ([]byte, error) {
	if !l.Valid() {
		return nil, fmt.Errorf("walletd client: invalid identification level %d", int(l))
	}
	return []byte(l.String()), nil
}

// UnmarshalText reads a protocol name ("IDENTIFIED") or a level number ("2").
func (l *Identification) UnmarshalText(b []byte) error {
	s := string(b)
	for i, name := range identificationNames {
		if s == name || s == strconv.Itoa(i) {
			*l = Identification(i)
			return nil
		}
	}
	return fmt.Errorf("walletd client: unknown identification %q", s)
}

// UnmarshalJSON reads a name string or a level number.
func (l *Identification) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return l.UnmarshalText([]byte(s))
	}
	return l.UnmarshalText(b)
}

// OperationType is the kind of an operation. The set may grow; compare with
// the constants.
type OperationType string

// Operation types.
const (
	OperationPayment OperationType = "PAYMENT" // to a TSP
	OperationCredit  OperationType = "CREDIT"  // top-up through SBP
	OperationDebit   OperationType = "DEBIT"   // withdrawal to a bank
	OperationRefund  OperationType = "REFUND"  // from a TSP back to the wallet
)

// OperationStatus is the state of an operation.
type OperationStatus string

// Operation statuses. PENDING is the only one that still changes.
const (
	StatusPending OperationStatus = "PENDING"
	StatusSuccess OperationStatus = "SUCCESS"
	StatusFailed  OperationStatus = "FAILED"
	StatusExpired OperationStatus = "EXPIRED"
)

// Final reports whether the status will not change any more.
func (s OperationStatus) Final() bool { return s != StatusPending && s != "" }

// WalletStatus is the state of a wallet.
type WalletStatus string

// Wallet statuses.
const (
	WalletActive WalletStatus = "ACTIVE"
	WalletClosed WalletStatus = "CLOSED"
)

// RegisterResult is the answer of Register.
type RegisterResult struct {
	WalletID       uuid.UUID      `json:"walletId"`
	Identification Identification `json:"identification"`
}

// WalletInfo is a wallet's data.
type WalletInfo struct {
	WalletID uuid.UUID `json:"walletId"`
	// Number is the 16-digit wallet number; its last digit is a Luhn check digit.
	Number string `json:"number"`
	// Balance is the settled balance: pending withdrawals are already
	// deducted, pending top-ups are not yet added.
	Balance        money.Amount   `json:"balance"`
	Status         WalletStatus   `json:"status"`
	Identification Identification `json:"identification"`
	Currency       string         `json:"currency"` // "RUB"
}

// Limits are a wallet's effective limits: the partner's own value where it
// has set one, else the system's for the identification level. A nil limit
// means "no limit".
type Limits struct {
	WalletID        uuid.UUID                        `json:"walletId"`
	Identification  Identification                   `json:"identification"`
	BalanceLimit    *money.Amount                    `json:"balanceLimit"`
	OperationLimits map[OperationType]OperationLimit `json:"operationLimits"` // CREDIT, PAYMENT, DEBIT
}

// OperationLimit are the limits of one operation type.
type OperationLimit struct {
	OperationType OperationType `json:"operationType"`
	OneTimeLimit  *money.Amount `json:"oneTimeLimit"` // nil: no limit
	MonthLimit    *money.Amount `json:"monthLimit"`   // nil: no limit
	Enabled       bool          `json:"enabled"`
	// MonthUsed is the sum of SUCCESS and PENDING operations of the type in
	// the current calendar month (Moscow time).
	MonthUsed money.Amount `json:"monthUsed"`
}

// Refill is a started top-up: the client confirms it by opening Payload (an
// SBP link) in a bank app. It stays PENDING until SBP confirms it, and
// EXPIRES at ExpiresAt.
type Refill struct {
	OperationID uuid.UUID       `json:"operationId"`
	Amount      money.Amount    `json:"amount"`
	Payload     string          `json:"payload"`
	Status      OperationStatus `json:"status"`
	ExpiresAt   time.Time       `json:"-"`
}

// UnmarshalJSON reads the protocol form (expiresAt "YYYY-MM-DD HH:MM:SS", Moscow).
func (r *Refill) UnmarshalJSON(b []byte) error {
	type plain Refill
	var w struct {
		plain
		ExpiresAt string `json:"expiresAt"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	t, err := parseTime(w.ExpiresAt)
	if err != nil {
		return fmt.Errorf("expiresAt: %w", err)
	}
	*r = Refill(w.plain)
	r.ExpiresAt = t
	return nil
}

// MarshalJSON writes the protocol form.
func (r Refill) MarshalJSON() ([]byte, error) {
	type plain Refill
	return json.Marshal(struct {
		plain
		ExpiresAt string `json:"expiresAt"`
	}{plain(r), formatTime(r.ExpiresAt)})
}

// PaymentToken is a single-use token for one payment, valid for 15 minutes.
type PaymentToken struct {
	WalletID uuid.UUID `json:"walletId"`
	Token    uuid.UUID `json:"token"`
}

// PaymentRequest is a payment to a TSP of the partner.
type PaymentRequest struct {
	WalletID uuid.UUID    `json:"walletId"`
	Token    uuid.UUID    `json:"token"` // from InitPayment
	Amount   money.Amount `json:"amount"`
	TSP      uuid.UUID    `json:"tsp"` // the payee
}

// Payment is a completed payment.
type Payment struct {
	WalletID    uuid.UUID       `json:"walletId"`
	Token       uuid.UUID       `json:"token"`
	OperationID uuid.UUID       `json:"operationId"`
	Amount      money.Amount    `json:"amount"`
	Status      OperationStatus `json:"status"`
}

// Refund is a refund of (part of) a payment.
type Refund struct {
	WalletID    uuid.UUID       `json:"walletId"`
	Token       uuid.UUID       `json:"token"` // the payment's token
	OperationID uuid.UUID       `json:"operationId"`
	Amount      money.Amount    `json:"amount"`
	Status      OperationStatus `json:"status"`
}

// Bank is an SBP member bank a wallet can withdraw to.
type Bank struct {
	Identifier   string `json:"bankIdentifier"` // 12-digit SBP member id
	Name         string `json:"name"`
	OriginalName string `json:"originalName"` // full legal name
	BIC          string `json:"bic"`          // 9 digits
	LogoURL      string `json:"logoUrl"`
}

// Withdrawal is an accepted payout; it completes asynchronously (follow it
// with Operation or the withdrawal.* webhooks).
type Withdrawal struct {
	WalletID       uuid.UUID       `json:"walletId"`
	OperationID    uuid.UUID       `json:"operationId"`
	Amount         money.Amount    `json:"amount"`
	BankIdentifier string          `json:"bankIdentifier"`
	Status         OperationStatus `json:"status"`
}

// Operation is one operation of a wallet, as the report shows it.
type Operation struct {
	ID          uuid.UUID       `json:"operationId"`
	Type        OperationType   `json:"operationType"`
	Status      OperationStatus `json:"status"`
	Description string          `json:"description"` // Russian text naming the TSP or bank
	// Date is when the operation was requested (a top-up keeps it when confirmed later).
	Date time.Time `json:"-"`
	// Amount is always positive; the type gives the direction.
	Amount money.Amount `json:"amount"`
	// FormattedAmount is the signed display form, "+12 345,00 ₽" (U+00A0 spaces).
	FormattedAmount string `json:"formattedAmount"`
	// TSPID is the TSP of a PAYMENT or REFUND (the protocol's "tcp"), else nil.
	TSPID *uuid.UUID `json:"tcp"`
}

// UnmarshalJSON reads the protocol form (operationDate "YYYY-MM-DD HH:MM:SS", Moscow).
func (o *Operation) UnmarshalJSON(b []byte) error {
	type plain Operation
	var w struct {
		plain
		Date string `json:"operationDate"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	t, err := parseTime(w.Date)
	if err != nil {
		return fmt.Errorf("operationDate: %w", err)
	}
	*o = Operation(w.plain)
	o.Date = t
	return nil
}

// MarshalJSON writes the protocol form.
func (o Operation) MarshalJSON() ([]byte, error) {
	type plain Operation
	return json.Marshal(struct {
		plain
		Date string `json:"operationDate"`
	}{plain(o), formatTime(o.Date)})
}

// ReportQuery selects operations for Report. Zero fields are not sent; all
// bounds are inclusive.
type ReportQuery struct {
	From, To   time.Time     // operationDate bounds, to the second (sent in Moscow time)
	Type       OperationType // only this type
	AmountFrom *money.Amount
	AmountTo   *money.Amount
	Page       int // from 0
	Size       int // 1-100; 0 means the service's default (20)
}

// ReportPage is one page of a wallet's operations, newest first.
type ReportPage struct {
	Content       []Operation `json:"content"`
	Page          int         `json:"page"`
	Size          int         `json:"size"`
	TotalElements int         `json:"totalElements"`
	TotalPages    int         `json:"totalPages"`
}

// SandboxResult is the state of a sandbox top-up after SandboxConfirm or SandboxDecline.
type SandboxResult struct {
	QRCID       string          `json:"qrcId"`
	OperationID uuid.UUID       `json:"operationId"`
	Status      OperationStatus `json:"status"`
}
