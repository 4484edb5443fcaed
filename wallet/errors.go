package wallet

import (
	"errors"
	"fmt"
	"time"

	"github.com/perspektiva/walletd/money"
)

// Code is a stable, machine-readable error code of the partner protocol.
type Code string

// Error codes of PROTOCOL.md section 2, listed once for every edge: those the
// domain produces, then those only an edge gives (authentication, unknown
// paths, request size and rate), which mean the same over any transport.
const (
	CodeValidation        Code = "VALIDATION_ERROR"
	CodeWalletClosed      Code = "WALLET_CLOSED"
	CodeWalletHasBalance  Code = "WALLET_HAS_BALANCE"
	CodeInsufficientFunds Code = "INSUFFICIENT_FUNDS"
	CodeLimitExceeded     Code = "LIMIT_EXCEEDED"
	CodeOperationDisabled Code = "OPERATION_DISABLED"
	CodeTokenInvalid      Code = "TOKEN_INVALID"
	CodeTSPNotFound       Code = "TSP_NOT_FOUND"
	CodeBankNotFound      Code = "BANK_NOT_FOUND"
	CodeWalletNotFound    Code = "WALLET_NOT_FOUND"
	CodeOperationNotFound Code = "OPERATION_NOT_FOUND"
	CodeIdempotencyReused Code = "IDEMPOTENCY_KEY_REUSED"
	CodeUnavailable       Code = "UNAVAILABLE"
	CodeInternal          Code = "INTERNAL_ERROR"

	CodeUnauthorized     Code = "UNAUTHORIZED"
	CodeForbidden        Code = "FORBIDDEN"
	CodeNotFound         Code = "NOT_FOUND"
	CodeMethodNotAllowed Code = "METHOD_NOT_ALLOWED"
	CodePayloadTooLarge  Code = "PAYLOAD_TOO_LARGE"
	CodeRateLimited      Code = "RATE_LIMITED"
)

// Error is a refusal a partner can act on: a stable code, a Russian message, the
// fields at fault and, for limit and balance refusals, what would have been possible.
type Error struct {
	Code    Code
	Message string
	Fields  map[string]string
	Details *LimitDetails
}

// LimitDetails tells a partner which limit refused an operation and how much room is left.
type LimitDetails struct {
	Limit     string       // "balance", "balanceLimit", "statutoryMonthLimit", "PAYMENT.monthLimit", ...
	Value     money.Amount // the limit itself
	Used      money.Amount // what counts against it already
	Available money.Amount // Value - Used, never negative
	ResetsAt  *time.Time   // start of the next month for monthly limits
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("%s: %s %v", e.Code, e.Message, e.Fields)
}

// Is makes errors.Is(err, &Error{Code: c}) match on the code alone.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code
}

// ErrorCode returns the protocol code of err, or "" when err is not a domain error.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Messages of the protocol, one per code, in Russian as partners show them.
var messages = map[Code]string{
	CodeValidation:        "Некорректные параметры запроса",
	CodeWalletClosed:      "Кошелёк закрыт",
	CodeWalletHasBalance:  "Кошелёк нельзя закрыть: есть остаток или незавершённые операции",
	CodeInsufficientFunds: "Недостаточно средств",
	CodeLimitExceeded:     "Превышен лимит",
	CodeOperationDisabled: "Операция запрещена для кошелька",
	CodeTokenInvalid:      "Недействительный токен оплаты",
	CodeTSPNotFound:       "ТСП не найдено",
	CodeBankNotFound:      "Банк не найден",
	CodeWalletNotFound:    "Кошелёк не найден",
	CodeOperationNotFound: "Операция не найдена",
	CodeForbidden:         "Доступ запрещён",
	CodeIdempotencyReused: "Ключ идемпотентности уже использован для другого запроса",
	CodeUnavailable:       "Сервис временно недоступен",
	CodeInternal:          "Внутренняя ошибка сервиса",
	CodeUnauthorized:      "Требуется авторизация",
	CodeNotFound:          "Ресурс не найден",
	CodeMethodNotAllowed:  "Метод не поддерживается",
	CodePayloadTooLarge:   "Тело запроса слишком большое",
	CodeRateLimited:       "Слишком много запросов",
}

// Message returns the protocol's Russian message for a code.
func Message(c Code) string {
	if m, ok := messages[c]; ok {
		return m
	}
	return messages[CodeInternal]
}

// Fail returns an Error with the standard message of its code and no field at fault.
func Fail(c Code) *Error {
	return &Error{Code: c, Message: Message(c), Fields: map[string]string{}}
}

// FailField returns an Error that names the field at fault.
func FailField(c Code, field, reason string) *Error {
	return &Error{Code: c, Message: Message(c), Fields: map[string]string{field: reason}}
}

// Invalid returns a VALIDATION_ERROR naming one field.
func Invalid(field, reason string) *Error {
	return FailField(CodeValidation, field, reason)
}

// Validation collects field errors so a request is refused with all of them at once.
type Validation struct {
	fields map[string]string
}

// Add records a problem with field; the first reason for a field wins.
func (v *Validation) Add(field, reason string) {
	if v.fields == nil {
		v.fields = map[string]string{}
	}
	if _, ok := v.fields[field]; !ok {
		v.fields[field] = reason
	}
}

// Err returns the collected VALIDATION_ERROR, or nil when nothing was added.
func (v *Validation) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return &Error{Code: CodeValidation, Message: Message(CodeValidation), Fields: v.fields}
}

// Storage errors every Store implementation returns, so the domain can tell
// "not there" and "already there" from a failure.
var (
	ErrNotFound  = errors.New("not found")
	ErrDuplicate = errors.New("duplicate")
)
