package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
)

func walletPath(walletID uuid.UUID, rest string) string {
	return "/account/" + walletID.String() + rest
}

// Register opens a wallet for the client with this phone (10 digits, without
// the country code) at the given identification level. Registering a phone
// that already has an active wallet at this partner answers that wallet
// unchanged (its level too; use SetIdentification to change it).
func (c *Client) Register(ctx context.Context, phone string, identification Identification) (RegisterResult, error) {
	in := struct {
		Phone          string `json:"phone"`
		Identification int    `json:"identification"`
	}{phone, int(identification)}
	var out RegisterResult
	err := c.call(ctx, http.MethodPost, "/account/registration", nil, in, &out)
	return out, err
}

// Info returns a wallet's number, balance, status and level. A closed wallet
// still answers.
func (c *Client) Info(ctx context.Context, walletID uuid.UUID) (WalletInfo, error) {
	var out WalletInfo
	err := c.call(ctx, http.MethodGet, walletPath(walletID, "/info"), nil, nil, &out)
	return out, err
}

// Close closes a wallet (the Client itself needs no closing). It is refused with WALLET_HAS_BALANCE while the
// balance is not zero or an operation is pending; closing a closed wallet
// succeeds again.
func (c *Client) Close(ctx context.Context, walletID uuid.UUID) error {
	return c.call(ctx, http.MethodPost, walletPath(walletID, "/deactivation"), nil, nil, nil)
}

// SetIdentification changes a wallet's identification level; its system
// limits change at once. It returns the level the service reports.
func (c *Client) SetIdentification(ctx context.Context, walletID uuid.UUID, level Identification) (Identification, error) {
	var out RegisterResult
	path := walletPath(walletID, "/identification/"+strconv.Itoa(int(level)))
	err := c.call(ctx, http.MethodPost, path, nil, nil, &out)
	return out.Identification, err
}

// Limits returns a wallet's effective limits and this month's use.
func (c *Client) Limits(ctx context.Context, walletID uuid.UUID) (Limits, error) {
	var out Limits
	err := c.call(ctx, http.MethodGet, walletPath(walletID, "/limit"), nil, nil, &out)
	return out, err
}

// SetLimits changes the partner's own limits of a wallet and returns the new
// effective limits. A value above the system's, or enabling a type the system
// disables, is refused (VALIDATION_ERROR naming the field) and nothing changes.
func (c *Client) SetLimits(ctx context.Context, walletID uuid.UUID, update LimitsUpdate) (Limits, error) {
	var out Limits
	err := c.call(ctx, http.MethodPost, walletPath(walletID, "/limit"), nil, update, &out)
	return out, err
}

// Refill starts a top-up of amount: a PENDING CREDIT operation and the SBP
// link (Refill.Payload) the client opens to pay. The wallet is credited when
// SBP confirms (in the sandbox: SandboxConfirm). A call repeated under the
// same Idempotency-Key answers the first answer again, status PENDING
// included, even after the top-up has completed: follow the outcome with
// Operation or the refill.* notifications.
func (c *Client) Refill(ctx context.Context, walletID uuid.UUID, amount money.Amount) (Refill, error) {
	in := struct {
		Amount money.Amount `json:"amount"`
	}{amount}
	var out Refill
	err := c.call(ctx, http.MethodPost, walletPath(walletID, "/refill"), nil, in, &out)
	return out, err
}

// InitPayment issues a single-use payment token for the wallet, valid for
// 15 minutes.
func (c *Client) InitPayment(ctx context.Context, walletID uuid.UUID) (PaymentToken, error) {
	var out PaymentToken
	err := c.call(ctx, http.MethodGet, walletPath(walletID, "/payment/initialization"), nil, nil, &out)
	return out, err
}

// Pay pays a TSP from a wallet with a token from InitPayment; the money moves
// at once. Repeating the same payment (same token, amount and TSP) answers
// the first result and moves nothing; a refused payment leaves the token
// usable for a corrected request.
func (c *Client) Pay(ctx context.Context, p PaymentRequest) (Payment, error) {
	var out Payment
	err := c.call(ctx, http.MethodPost, walletPath(p.WalletID, "/payment"), nil, p, &out)
	return out, err
}

// Refund returns money of the payment made with token from the TSP to the
// wallet. A nil amount refunds all that is not refunded yet. Each accepted
// call is a new refund: retries are made safe by the Idempotency-Key.
func (c *Client) Refund(ctx context.Context, walletID, token uuid.UUID, amount *money.Amount) (Refund, error) {
	in := struct {
		Amount *money.Amount `json:"amount,omitempty"`
	}{amount}
	var out Refund
	err := c.call(ctx, http.MethodPost, walletPath(walletID, "/payment/"+token.String()+"/refund"), nil, in, &out)
	return out, err
}

// Banks lists the SBP member banks a wallet can withdraw to.
func (c *Client) Banks(ctx context.Context) ([]Bank, error) {
	var out struct {
		Banks []Bank `json:"banks"`
	}
	err := c.call(ctx, http.MethodGet, "/account/wifhdrawal/banks", nil, nil, &out)
	return out.Banks, err
}

// Withdraw sends amount to the client's account at the bank (a 12-digit SBP
// member id from Banks). The amount is held at once as a PENDING DEBIT; the
// payout ends SUCCESS, or FAILED with the amount returned to the wallet.
// ELEMENTARY wallets cannot withdraw (OPERATION_DISABLED).
func (c *Client) Withdraw(ctx context.Context, walletID uuid.UUID, bankIdentifier string, amount money.Amount) (Withdrawal, error) {
	in := struct {
		BankIdentifier string       `json:"bankIdentifier"`
		Amount         money.Amount `json:"amount"`
	}{bankIdentifier, amount}
	var out Withdrawal
	err := c.call(ctx, http.MethodPost, walletPath(walletID, "/wifhdrawal"), nil, in, &out)
	return out, err
}

// Operation returns one operation of a wallet (OPERATION_NOT_FOUND when it is
// not this wallet's). Use it to follow a pending top-up or payout.
func (c *Client) Operation(ctx context.Context, walletID, operationID uuid.UUID) (Operation, error) {
	var out Operation
	err := c.call(ctx, http.MethodGet, walletPath(walletID, "/operation/"+operationID.String()), nil, nil, &out)
	return out, err
}

// Report returns one page of a wallet's operations, newest first.
func (c *Client) Report(ctx context.Context, walletID uuid.UUID, q ReportQuery) (ReportPage, error) {
	var out ReportPage
	err := c.call(ctx, http.MethodGet, walletPath(walletID, "/report"), q.values(), nil, &out)
	if err == nil && out.Content == nil {
		out.Content = []Operation{}
	}
	return out, err
}

// values renders the query parameters; zero fields are left out.
func (q ReportQuery) values() url.Values {
	v := url.Values{}
	if !q.From.IsZero() {
		v.Set("dateFrom", formatTime(q.From))
	}
	if !q.To.IsZero() {
		v.Set("dateTo", formatTime(q.To))
	}
	if q.Type != "" {
		v.Set("operationType", string(q.Type))
	}
	if q.AmountFrom != nil {
		v.Set("amountFrom", q.AmountFrom.String())
	}
	if q.AmountTo != nil {
		v.Set("amountTo", q.AmountTo.String())
	}
	if q.Page != 0 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if q.Size != 0 {
		v.Set("size", strconv.Itoa(q.Size))
	}
	return v
}

var qrcIDPattern = regexp.MustCompile(`^[A-Z0-9]{32}$`)

// SandboxConfirm plays the client paying a sandbox top-up in a bank app:
// payloadURL is Refill.Payload. The answer is the top-up's status afterwards
// (SUCCESS, or FAILED when the limits no longer hold, or the status it
// already had). The request goes to the payload's own origin, without
// credentials. Only a walletd with the sandbox on serves it (else NOT_FOUND).
func (c *Client) SandboxConfirm(ctx context.Context, payloadURL string) (SandboxResult, error) {
	return c.sandbox(ctx, payloadURL, "confirm")
}

// SandboxDecline plays the client declining a sandbox top-up: it becomes FAILED.
func (c *Client) SandboxDecline(ctx context.Context, payloadURL string) (SandboxResult, error) {
	return c.sandbox(ctx, payloadURL, "decline")
}

func (c *Client) sandbox(ctx context.Context, payloadURL, action string) (SandboxResult, error) {
	u, err := url.Parse(payloadURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return SandboxResult{}, fmt.Errorf("walletd client: sandbox %s: not a payload link: %q", action, payloadURL)
	}
	prefix, qrc, ok := strings.Cut(u.Path, "/sandbox/sbp/")
	if !ok || !qrcIDPattern.MatchString(qrc) {
		return SandboxResult{}, fmt.Errorf("walletd client: sandbox %s: not a sandbox SBP link: %q", action, payloadURL)
	}
	target := url.URL{Scheme: u.Scheme, Host: u.Host, Path: prefix + "/sandbox/sbp/" + qrc + "/" + action}
	ans, err := c.send(ctx, &exchange{method: http.MethodPost, url: target.String()})
	if err != nil {
		return SandboxResult{}, err
	}
	var out SandboxResult
	err = decodeAnswer(ans, http.MethodPost, target.Path, &out)
	return out, err
}
