package wallet_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/sbp"
	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

// fakeClock is a settable clock shared by the service and the test. It starts
// in the past so that the sandbox gateway, which judges payout delays by the
// real time, always finds payouts due.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// baseTime is the middle of a calendar month in Moscow, far from its edges, so
// that tests advancing the clock by hours never cross into the next month.
var baseTime = time.Date(2025, time.March, 10, 9, 0, 0, 0, time.UTC)

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// sbpBank is the only bank the tests' bank list knows.
const sbpBank = "100000000111"

func bankName(id string) (string, bool) { return "Сбербанк", id == sbpBank }

// env is one migrated database with a service over it.
type env struct {
	ctx   context.Context
	db    *store.DB
	svc   *wallet.Service
	clock *fakeClock
	ttl   time.Duration
}

// envConfig tunes newEnv; zero values pick the defaults.
type envConfig struct {
	payoutDelay time.Duration
	topUpTTL    time.Duration
}

func newEnv(t testing.TB, e storetest.Engine, cfg envConfig) *env {
	t.Helper()
	if cfg.topUpTTL == 0 {
		cfg.topUpTTL = 30 * time.Minute
	}
	db := storetest.Open(t, e)
	clock := newFakeClock(baseTime)
	svc, err := wallet.NewService(db, wallet.Config{
		SBP:      sbp.NewSandbox("http://wallet.test", cfg.payoutDelay),
		BankName: bankName,
		Now:      clock.Now,
		TopUpTTL: cfg.topUpTTL,
	})
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	return &env{ctx: context.Background(), db: db, svc: svc, clock: clock, ttl: cfg.topUpTTL}
}

// fatalf is what both *testing.T and *rapid.T offer.
type fatalf interface {
	Helper()
	Fatalf(format string, args ...any)
}

func (v *env) newPartner(t fatalf) uuid.UUID {
	t.Helper()
	creds, err := auth.NewService(v.db.AuthStore(), auth.Config{}).CreatePartner(v.ctx, "Партнёр", "")
	if err != nil {
		t.Fatalf("create partner: %v", err)
	}
	return creds.PartnerID
}

func (v *env) newTSP(t fatalf, partner uuid.UUID, name string) wallet.TSP {
	t.Helper()
	tsp, err := v.svc.CreateTSP(v.ctx, partner, name)
	if err != nil {
		t.Fatalf("create TSP: %v", err)
	}
	return tsp
}

func (v *env) newWallet(t fatalf, partner uuid.UUID, phone string, level wallet.Identification) wallet.Wallet {
	t.Helper()
	w, err := v.svc.Register(v.ctx, partner, phone, level)
	if err != nil {
		t.Fatalf("register %s: %v", phone, err)
	}
	return w
}

// refill starts a top-up without an Idempotency-Key and leaves it pending.
func (v *env) refill(t fatalf, partner, walletID uuid.UUID, amount money.Amount) wallet.Operation {
	t.Helper()
	op, err := v.svc.Refill(v.ctx, partner, walletID, amount, "")
	if err != nil {
		t.Fatalf("refill %s: %v", amount, err)
	}
	return op
}

// fund tops a wallet up and confirms the top-up.
func (v *env) fund(t fatalf, partner, walletID uuid.UUID, amount money.Amount) {
	t.Helper()
	op, err := v.svc.ConfirmTopUp(v.ctx, v.refill(t, partner, walletID, amount).QRCID)
	if err != nil || op.Status != wallet.Success {
		t.Fatalf("confirm top-up of %s: status %s, %v", amount, op.Status, err)
	}
}

// pay makes one payment with a fresh token.
func (v *env) pay(partner, walletID, tspID uuid.UUID, amount money.Amount) (wallet.Operation, error) {
	pt, err := v.svc.InitPayment(v.ctx, partner, walletID)
	if err != nil {
		return wallet.Operation{}, err
	}
	return v.svc.Pay(v.ctx, partner, wallet.PaymentRequest{WalletID: walletID, Token: pt.Token, Amount: amount, TSPID: tspID})
}

func (v *env) wallet(t fatalf, partner, walletID uuid.UUID) wallet.Wallet {
	t.Helper()
	w, err := v.svc.Wallet(v.ctx, partner, walletID)
	if err != nil {
		t.Fatalf("wallet %s: %v", walletID, err)
	}
	return w
}

func (v *env) limits(t fatalf, partner, walletID uuid.UUID) wallet.LimitsView {
	t.Helper()
	l, err := v.svc.Limits(v.ctx, partner, walletID)
	if err != nil {
		t.Fatalf("limits of %s: %v", walletID, err)
	}
	return l
}

func (v *env) report(t fatalf, partner, walletID uuid.UUID, filter wallet.ReportFilter) wallet.ReportPage {
	t.Helper()
	page, err := v.svc.Report(v.ctx, partner, walletID, filter)
	if err != nil {
		t.Fatalf("report of %s: %v", walletID, err)
	}
	return page
}

// requireAudit fails unless every ledger invariant holds.
func (v *env) requireAudit(t fatalf) {
	t.Helper()
	r, err := v.db.Audit(v.ctx)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if len(r.Violations) > 0 {
		t.Fatalf("%s\n%s", r.Summary(), strings.Join(r.Violations, "\n"))
	}
}

// rub parses a protocol amount such as "100.00".
func rub(s string) money.Amount {
	a, err := money.Parse(s)
	if err != nil {
		panic(fmt.Sprintf("rub(%q): %v", s, err))
	}
	return a
}

// runParallel starts n goroutines at once and waits for all of them.
func runParallel(n int, fn func(i int)) {
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}
