package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/perspektiva/walletd/money"
)

// Error codes of the protocol (Error.Code).
const (
	CodeValidation           = "VALIDATION_ERROR"
	CodeWalletClosed         = "WALLET_CLOSED"
	CodeWalletHasBalance     = "WALLET_HAS_BALANCE"
	CodeInsufficientFunds    = "INSUFFICIENT_FUNDS"
	CodeLimitExceeded        = "LIMIT_EXCEEDED"
	CodeOperationDisabled    = "OPERATION_DISABLED"
	CodeTokenInvalid         = "TOKEN_INVALID"
	CodeTSPNotFound          = "TSP_NOT_FOUND"
	CodeBankNotFound         = "BANK_NOT_FOUND"
	CodeUnauthorized         = "UNAUTHORIZED"
	CodeForbidden            = "FORBIDDEN"
	CodeWalletNotFound       = "WALLET_NOT_FOUND"
	CodeOperationNotFound    = "OPERATION_NOT_FOUND"
	CodeNotFound             = "NOT_FOUND"
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	CodeIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"
	CodePayloadTooLarge      = "PAYLOAD_TOO_LARGE"
	CodeRateLimited          = "RATE_LIMITED"
	CodeInternal             = "INTERNAL_ERROR"
	CodeUnavailable          = "UNAVAILABLE"
)

// Error is a refusal of the API: any answer other than 2xx outside the OAuth
// endpoint. Code is the protocol's stable code (empty when the answer did not
// carry the protocol's error body, e.g. an HTML page of a proxy; Message then
// holds the start of that body).
type Error struct {
	Status      int               // HTTP status
	Code        string            // e.g. "INSUFFICIENT_FUNDS"; see the Code constants
	Message     string            // human text, in Russian
	FieldErrors map[string]string // field (dotted path) → problem; empty when no field is at fault
	Details     *LimitDetails     // with LIMIT_EXCEEDED and INSUFFICIENT_FUNDS
	RequestID   string            // the service's X-Request-Id, for support
}

// LimitDetails says which limit stopped an operation and what is still
// possible (LIMIT_EXCEEDED, INSUFFICIENT_FUNDS).
type LimitDetails struct {
	// Limit is "balance", "balanceLimit", "statutoryMonthLimit" or
	// "TYPE.oneTimeLimit" / "TYPE.monthLimit" (TYPE one of CREDIT, PAYMENT, DEBIT).
	Limit     string
	Value     money.Amount // the limit (for "balance", the balance)
	Used      money.Amount // what already counts against it
	Available money.Amount // what an operation may still take
	ResetsAt  time.Time    // monthly limits only: the start of the next month; zero otherwise
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("walletd: ")
	if e.Code != "" {
		fmt.Fprintf(&b, "%s (%d)", e.Code, e.Status)
	} else {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if len(e.FieldErrors) > 0 {
		keys := make([]string, 0, len(e.FieldErrors))
		for k := range e.FieldErrors {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString(" [")
		for i, k := range keys {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(k + ": " + e.FieldErrors[k])
		}
		b.WriteString("]")
	}
	if d := e.Details; d != nil {
		fmt.Fprintf(&b, " (%s: value %s, used %s, available %s)", d.Limit, d.Value, d.Used, d.Available)
	}
	if e.RequestID != "" {
		b.WriteString(" request " + e.RequestID)
	}
	return b.String()
}

// IsCode reports whether err is (or wraps) an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// ErrorCode returns the protocol code of err, or "" when err is not an *Error.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// OAuthError is a refusal of the token endpoint (RFC 6749 section 5.2):
// wrong credentials (invalid_client, 401), a dead refresh token
// (invalid_grant) and the like. Status and Description help people; Code is
// for programs.
type OAuthError struct {
	Status      int
	Code        string // one of the OAuth constants, e.g. "invalid_client"
	Description string
}

func (e *OAuthError) Error() string {
	s := fmt.Sprintf("walletd oauth: %s (%d)", e.Code, e.Status)
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// errorBody is the protocol's error answer.
type errorBody struct {
	Code        string            `json:"code"`
	Message     string            `json:"message"`
	FieldErrors map[string]string `json:"fieldErrors"`
	Details     *struct {
		Limit     string       `json:"limit"`
		Value     money.Amount `json:"value"`
		Used      money.Amount `json:"used"`
		Available money.Amount `json:"available"`
		ResetsAt  string       `json:"resetsAt"`
	} `json:"details"`
}

// apiError builds the *Error of a non-2xx answer.
func apiError(ans answer) *Error {
	e := &Error{Status: ans.status, RequestID: ans.requestID, FieldErrors: map[string]string{}}
	var body errorBody
	if json.Unmarshal(ans.body, &body) != nil || body.Code == "" {
		e.Message = snippet(ans.body)
		if e.Message == "" {
			e.Message = http.StatusText(ans.status)
		}
		return e
	}
	e.Code, e.Message = body.Code, body.Message
	for k, v := range body.FieldErrors {
		e.FieldErrors[k] = v
	}
	if d := body.Details; d != nil {
		e.Details = &LimitDetails{Limit: d.Limit, Value: d.Value, Used: d.Used, Available: d.Available}
		if d.ResetsAt != "" {
			// An unreadable resetsAt leaves the zero time; the rest stays useful.
			e.Details.ResetsAt, _ = parseTime(d.ResetsAt)
		}
	}
	return e
}

// oauthError builds the error of a failed token request: *OAuthError for an
// RFC 6749 answer, else *Error (429, 5xx, anything unexpected).
func oauthError(ans answer) error {
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(ans.body, &body) == nil && body.Error != "" {
		return &OAuthError{Status: ans.status, Code: body.Error, Description: body.Description}
	}
	return apiError(ans)
}

// snippet is the start of a non-JSON body, for an error message.
func snippet(b []byte) string {
	const n = 200
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}
