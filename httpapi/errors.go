package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/wallet"
)

// Refusals of the HTTP layer itself.
var (
	errNotFound         = wallet.Fail(wallet.CodeNotFound)
	errMethodNotAllowed = wallet.Fail(wallet.CodeMethodNotAllowed)
	errTooLarge         = wallet.Fail(wallet.CodePayloadTooLarge)
)

// statusOf maps each protocol code to its HTTP status (PROTOCOL.md section 2).
var statusOf = map[wallet.Code]int{
	wallet.CodeValidation:        http.StatusBadRequest,
	wallet.CodeWalletClosed:      http.StatusBadRequest,
	wallet.CodeWalletHasBalance:  http.StatusBadRequest,
	wallet.CodeInsufficientFunds: http.StatusBadRequest,
	wallet.CodeLimitExceeded:     http.StatusBadRequest,
	wallet.CodeOperationDisabled: http.StatusBadRequest,
	wallet.CodeTokenInvalid:      http.StatusBadRequest,
	wallet.CodeTSPNotFound:       http.StatusBadRequest,
	wallet.CodeBankNotFound:      http.StatusBadRequest,
	wallet.CodeUnauthorized:      http.StatusUnauthorized,
	wallet.CodeForbidden:         http.StatusForbidden,
	wallet.CodeWalletNotFound:    http.StatusNotFound,
	wallet.CodeOperationNotFound: http.StatusNotFound,
	wallet.CodeNotFound:          http.StatusNotFound,
	wallet.CodeMethodNotAllowed:  http.StatusMethodNotAllowed,
	wallet.CodeIdempotencyReused: http.StatusConflict,
	wallet.CodePayloadTooLarge:   http.StatusRequestEntityTooLarge,
	wallet.CodeRateLimited:       http.StatusTooManyRequests,
	wallet.CodeInternal:          http.StatusInternalServerError,
	wallet.CodeUnavailable:       http.StatusServiceUnavailable,
}

// errorBody is the protocol's error answer.
type errorBody struct {
	Code        wallet.Code       `json:"code"`
	Message     string            `json:"message"`
	FieldErrors map[string]string `json:"fieldErrors"`
	Details     *limitDetails     `json:"details,omitempty"`
}

type limitDetails struct {
	Limit     string       `json:"limit"`
	Value     money.Amount `json:"value"`
	Used      money.Amount `json:"used"`
	Available money.Amount `json:"available"`
	ResetsAt  string       `json:"resetsAt,omitempty"`
}

// writeError is the one place where errors become HTTP answers. Anything that is
// not a refusal of the domain is logged and answered without its internals.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		de *wallet.Error
		rl *rateLimited
	)
	switch {
	case errors.As(err, &de):
		// The error may carry a cause the answer leaves out (SBP down, say);
		// the operator needs it.
		if err.Error() != de.Error() {
			switch de.Code {
			case wallet.CodeUnavailable:
				s.log.LogAttrs(r.Context(), slog.LevelWarn, "dependency unavailable", slog.String("error", err.Error()))
			case wallet.CodeInternal:
				s.log.LogAttrs(r.Context(), slog.LevelError, "internal error", slog.String("error", err.Error()))
			}
		}
	case errors.As(err, &rl):
		w.Header().Set("Retry-After", retryAfterSeconds(rl.retryAfter))
		de = wallet.Fail(wallet.CodeRateLimited)
	case errors.Is(err, auth.ErrUnauthorized):
		de = wallet.Fail(wallet.CodeUnauthorized)
	case errors.Is(err, auth.ErrForbidden):
		de = wallet.Fail(wallet.CodeForbidden)
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The partner went away; nobody reads this answer.
		de = wallet.Fail(wallet.CodeUnavailable)
	case s.cfg.Unavailable(err):
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "dependency unavailable", slog.String("error", err.Error()))
		de = wallet.Fail(wallet.CodeUnavailable)
	default:
		s.log.LogAttrs(r.Context(), slog.LevelError, "internal error", slog.String("error", err.Error()))
		de = wallet.Fail(wallet.CodeInternal)
	}
	status, ok := statusOf[de.Code]
	if !ok {
		// A code without a status is this program's fault, not the partner's.
		s.log.LogAttrs(r.Context(), slog.LevelError, "no HTTP status for code", slog.String("code", string(de.Code)))
		de, status = wallet.Fail(wallet.CodeInternal), http.StatusInternalServerError
	}
	if info, ok := r.Context().Value(requestInfoKey).(*requestInfo); ok {
		info.code = string(de.Code)
	}
	body := errorBody{Code: de.Code, Message: de.Message, FieldErrors: de.Fields}
	if body.FieldErrors == nil {
		body.FieldErrors = map[string]string{}
	}
	if d := de.Details; d != nil {
		body.Details = &limitDetails{Limit: d.Limit, Value: d.Value, Used: d.Used, Available: d.Available}
		if d.ResetsAt != nil {
			body.Details.ResetsAt = s.formatTime(*d.ResetsAt)
		}
	}
	switch status {
	case http.StatusUnauthorized:
		if w.Header().Get("WWW-Authenticate") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="walletd", error="invalid_token"`)
		}
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, body)
}
