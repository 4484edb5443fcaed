package client_test

import (
	"testing"

	"github.com/perspektiva/walletd/client"
	"github.com/perspektiva/walletd/wallet"
)

// The SDK spells the protocol's codes and event types out itself, so that it
// depends on no server package; these tables keep the two spellings equal.
func TestErrorCodesMatchTheServer(t *testing.T) {
	for sdk, server := range map[string]wallet.Code{
		client.CodeValidation:           wallet.CodeValidation,
		client.CodeWalletClosed:         wallet.CodeWalletClosed,
		client.CodeWalletHasBalance:     wallet.CodeWalletHasBalance,
		client.CodeInsufficientFunds:    wallet.CodeInsufficientFunds,
		client.CodeLimitExceeded:        wallet.CodeLimitExceeded,
		client.CodeOperationDisabled:    wallet.CodeOperationDisabled,
		client.CodeTokenInvalid:         wallet.CodeTokenInvalid,
		client.CodeTSPNotFound:          wallet.CodeTSPNotFound,
		client.CodeBankNotFound:         wallet.CodeBankNotFound,
		client.CodeUnauthorized:         wallet.CodeUnauthorized,
		client.CodeForbidden:            wallet.CodeForbidden,
		client.CodeWalletNotFound:       wallet.CodeWalletNotFound,
		client.CodeOperationNotFound:    wallet.CodeOperationNotFound,
		client.CodeNotFound:             wallet.CodeNotFound,
		client.CodeMethodNotAllowed:     wallet.CodeMethodNotAllowed,
		client.CodeIdempotencyKeyReused: wallet.CodeIdempotencyReused,
		client.CodePayloadTooLarge:      wallet.CodePayloadTooLarge,
		client.CodeRateLimited:          wallet.CodeRateLimited,
		client.CodeInternal:             wallet.CodeInternal,
		client.CodeUnavailable:          wallet.CodeUnavailable,
	} {
		if sdk != string(server) {
			t.Errorf("SDK code %q, server code %q", sdk, server)
		}
	}
}

func TestEventTypesMatchTheServer(t *testing.T) {
	for sdk, server := range map[client.EventType]string{
		client.EventRefillSucceeded:     wallet.EventRefillSucceeded,
		client.EventRefillFailed:        wallet.EventRefillFailed,
		client.EventRefillExpired:       wallet.EventRefillExpired,
		client.EventWithdrawalSucceeded: wallet.EventWithdrawalSucceeded,
		client.EventWithdrawalFailed:    wallet.EventWithdrawalFailed,
		client.EventPaymentSucceeded:    wallet.EventPaymentSucceeded,
		client.EventRefundSucceeded:     wallet.EventRefundSucceeded,
		client.EventWalletClosed:        wallet.EventWalletClosed,
	} {
		if string(sdk) != server {
			t.Errorf("SDK event type %q, server event type %q", sdk, server)
		}
	}
}
