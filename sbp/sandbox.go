package sbp

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"time"

	"github.com/perspektiva/walletd/wallet"
)

// Sandbox plays the SBP side for development and tests: it issues links in the
// shape of qr.nspk.ru links on our own host, shows a bank-app page for them, and
// completes payouts after a delay, failing amounts that end in .13.
type Sandbox struct {
	publicURL   string
	payoutDelay time.Duration
	now         func() time.Time
}

// NewSandbox returns the sandbox gateway. publicURL is where clients reach walletd.
func NewSandbox(publicURL string, payoutDelay time.Duration) *Sandbox {
	return &Sandbox{publicURL: publicURL, payoutDelay: payoutDelay, now: time.Now}
}

var _ wallet.SBP = (*Sandbox)(nil)

// qrcAlphabet is the character set of NSPK QR ids.
const qrcAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// newQRCID returns 32 random characters of qrcAlphabet, as NSPK ids look.
func newQRCID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		// 256 is not a multiple of 36; the slight bias is harmless for an id
		// that only has to be unique and unguessable.
		b[i] = qrcAlphabet[int(b[i])%len(qrcAlphabet)]
	}
	return string(b), nil
}

// PayoutsAvailable: the sandbox pays out everything it is given.
func (s *Sandbox) PayoutsAvailable() error { return nil }

// IssueTopUp returns a link {publicURL}/sandbox/sbp/{qrcId}?type=02&sum={kopecks}&cur=RUB.
func (s *Sandbox) IssueTopUp(_ context.Context, order wallet.TopUpOrder) (wallet.TopUpLink, error) {
	id, err := newQRCID()
	if err != nil {
		return wallet.TopUpLink{}, err
	}
	payload := fmt.Sprintf("%s/sandbox/sbp/%s?type=02&sum=%s&cur=RUB", s.publicURL, id, strconv.FormatInt(int64(order.Amount), 10))
	return wallet.TopUpLink{QRCID: id, Payload: payload}, nil
}

// Payout completes a payout payoutDelay after the withdrawal was requested; it
// fails amounts whose kopecks are 13 so that failures can be tried.
func (s *Sandbox) Payout(_ context.Context, order wallet.PayoutOrder) (wallet.PayoutResult, error) {
	due := order.CreatedAt.Add(s.payoutDelay)
	if s.now().Before(due) {
		return wallet.PayoutResult{Status: wallet.PayoutInProgress, RetryAt: due}, nil
	}
	if order.Amount%100 == 13 {
		return wallet.PayoutResult{Status: wallet.PayoutFailed}, nil
	}
	return wallet.PayoutResult{Status: wallet.PayoutSucceeded}, nil
}

// Unconfigured is the gateway when the sandbox is off and no provider adapter is
// configured: top-ups and withdrawals are refused as unavailable instead of
// pretending.
type Unconfigured struct{}

var errNoProvider = fmt.Errorf("no SBP provider is configured (start with --sandbox=true or configure a provider)")

// IssueTopUp always fails.
func (Unconfigured) IssueTopUp(context.Context, wallet.TopUpOrder) (wallet.TopUpLink, error) {
	return wallet.TopUpLink{}, errNoProvider
}

// PayoutsAvailable refuses new withdrawals.
func (Unconfigured) PayoutsAvailable() error { return errNoProvider }

// Payout fails, and the job retries until a provider is configured. A payout
// still pending here was accepted under another configuration and may have
// been sent: only its provider can say it failed, so its money stays held
// (walletd_operations_pending_oldest_seconds shows it).
func (Unconfigured) Payout(context.Context, wallet.PayoutOrder) (wallet.PayoutResult, error) {
	return wallet.PayoutResult{}, errNoProvider
}
