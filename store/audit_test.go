package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for the raw handle
	_ "modernc.org/sqlite"             // the "sqlite" driver for the raw handle

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/sbp"
	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

// auditFixture is a database with a small history made through the service,
// and a raw handle on the same database to corrupt it behind the service's back.
type auditFixture struct {
	db  *store.DB
	raw *sql.DB
	svc *wallet.Service

	partnerID        uuid.UUID
	walletID, tspID  uuid.UUID
	payment          wallet.Operation // 1 000.00, 300.00 of it refunded
	pendingTopUp     wallet.Operation // 1 000.00, never confirmed
	confirmedBalance money.Amount
}

const auditBank = "100000000111"

func newAuditFixture(t *testing.T, e storetest.Engine) *auditFixture {
	t.Helper()
	ctx := context.Background()
	dsn := e.DSN(t)
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", e.Name, err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", e.Name, err)
	}
	raw := storetest.Raw(t, dsn)

	// A clock in the past: the sandbox judges payout delays by the real time.
	now := time.Date(2025, time.March, 10, 9, 0, 0, 0, time.UTC)
	svc, err := wallet.NewService(db, wallet.Config{
		SBP:      sbp.NewSandbox("http://wallet.test", 0),
		BankName: func(id string) (string, bool) { return "Сбербанк", id == auditBank },
		Now:      func() time.Time { return now },
	})
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	creds, err := auth.NewService(db.AuthStore(), auth.Config{}).CreatePartner(ctx, "Партнёр", "")
	if err != nil {
		t.Fatalf("create partner: %v", err)
	}
	partner := creds.PartnerID
	tsp, err := svc.CreateTSP(ctx, partner, "Кофейня «Зерно»")
	if err != nil {
		t.Fatalf("create TSP: %v", err)
	}
	w, err := svc.Register(ctx, partner, "9001234567", wallet.Personalized)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	rub := func(s string) money.Amount {
		a, err := money.Parse(s)
		must("parse "+s, err)
		return a
	}

	f := &auditFixture{db: db, raw: raw, svc: svc, partnerID: partner, walletID: w.ID, tspID: tsp.ID}
	topUp, err := svc.Refill(ctx, partner, w.ID, rub("5000.00"), "")
	must("refill", err)
	topUp, err = svc.ConfirmTopUp(ctx, topUp.QRCID)
	must("confirm", err)
	if topUp.Status != wallet.Success {
		t.Fatalf("top-up %s, want SUCCESS", topUp.Status)
	}
	declined, err := svc.Refill(ctx, partner, w.ID, rub("200.00"), "")
	must("refill", err)
	_, err = svc.DeclineTopUp(ctx, declined.QRCID)
	must("decline", err)
	f.pendingTopUp, err = svc.Refill(ctx, partner, w.ID, rub("1000.00"), "")
	must("refill", err)

	pt, err := svc.InitPayment(ctx, partner, w.ID)
	must("init payment", err)
	f.payment, err = svc.Pay(ctx, partner, wallet.PaymentRequest{WalletID: w.ID, Token: pt.Token, Amount: rub("1000.00"), TSPID: tsp.ID})
	must("pay", err)
	_, err = svc.Refund(ctx, partner, w.ID, pt.Token, rub("300.00"), "")
	must("refund", err)

	for _, c := range []struct {
		amount string
		want   wallet.OperationStatus
	}{{"500.00", wallet.Success}, {"100.13", wallet.Failed}, {"50.00", wallet.Pending}} {
		op, err := svc.Withdraw(ctx, partner, w.ID, auditBank, rub(c.amount), "")
		must("withdraw "+c.amount, err)
		if c.want != wallet.Pending {
			_, err := svc.ProcessPayout(ctx, op.ID)
			must("payout "+c.amount, err)
		}
		op, err = svc.Operation(ctx, partner, w.ID, op.ID)
		must("operation", err)
		if op.Status != c.want {
			t.Fatalf("withdrawal of %s is %s, want %s", c.amount, op.Status, c.want)
		}
	}
	got, err := svc.Wallet(ctx, partner, w.ID)
	must("wallet", err)
	// 5 000 - 1 000 + 300 - 500 - 50; the failed 100.13 came back.
	if f.confirmedBalance = rub("3750.00"); got.Balance != f.confirmedBalance {
		t.Fatalf("balance %s, want %s", got.Balance, f.confirmedBalance)
	}
	return f
}

func (f *auditFixture) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	res, err := f.raw.ExecContext(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("corrupt: %v\n%s", err, query)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		t.Fatalf("corrupt: %d rows changed (%v)\n%s", n, err, query)
	}
}

func (f *auditFixture) audit(t *testing.T) store.AuditReport {
	t.Helper()
	r, err := f.db.Audit(context.Background())
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	return r
}

// TestAuditCleanHistory: a history of every kind of operation passes the audit.
func TestAuditCleanHistory(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		f := newAuditFixture(t, e)
		r := f.audit(t)
		if len(r.Violations) > 0 {
			t.Fatalf("violations in a clean history:\n%s", strings.Join(r.Violations, "\n"))
		}
		if !strings.HasPrefix(r.Summary(), "audit ok") {
			t.Errorf("summary %q, want it to start with %q", r.Summary(), "audit ok")
		}
		// 5 000 confirmed, 500 paid out, 50 in transit, 700 kept by the TSP.
		if r.ToppedUp != 500000 || r.PaidOut != 50000 || r.InTransit != 5000 || r.InTSPs != 70000 || r.InWallets != f.confirmedBalance {
			t.Errorf("totals: %s", r.Summary())
		}
		if r.Wallets != 1 || r.Operations != 8 {
			t.Errorf("counts: %s, want 1 wallet and 8 operations", r.Summary())
		}
	})
}

// TestAuditFindsCorruption: each kind of damage done directly in the database
// is reported by name.
func TestAuditFindsCorruption(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		corrupt func(t *testing.T, f *auditFixture)
		want    string // a violation must contain this
	}{
		{"wallet balance changed", func(t *testing.T, f *auditFixture) {
			f.exec(t, `UPDATE accounts SET balance = balance + 100 WHERE id = $1`, f.walletID.String())
		}, "wallet balance differs from the sum of its postings"},
		{"posting deleted", func(t *testing.T, f *auditFixture) {
			f.exec(t, `DELETE FROM postings WHERE account_id = $1
				AND tx_id = (SELECT id FROM ledger_transactions WHERE operation_id = $2)`, f.tspID.String(), f.payment.ID.String())
		}, "unbalanced ledger transaction"},
		{"pending top-up marked successful without ledger", func(t *testing.T, f *auditFixture) {
			f.exec(t, `UPDATE operations SET status = 'SUCCESS' WHERE id = $1 AND status = 'PENDING'`, f.pendingTopUp.ID.String())
		}, "wrong number of ledger transactions for its type and status"},
		{"payment applied twice", func(t *testing.T, f *auditFixture) {
			tx := uuid.New().String()
			amount := int64(f.payment.Amount)
			f.exec(t, `INSERT INTO ledger_transactions (id, operation_id, kind, created_at) VALUES ($1, $2, 'PAYMENT', 0)`,
				tx, f.payment.ID.String())
			f.exec(t, `INSERT INTO postings (tx_id, account_id, amount) VALUES ($1, $2, $3)`, tx, f.walletID.String(), -amount)
			f.exec(t, `INSERT INTO postings (tx_id, account_id, amount) VALUES ($1, $2, $3)`, tx, f.tspID.String(), amount)
			// The stored balance follows the postings, as a real double application would.
			f.exec(t, `UPDATE accounts SET balance = balance - $1 WHERE id = $2`, amount, f.walletID.String())
		}, "applied twice"},
		{"month usage changed", func(t *testing.T, f *auditFixture) {
			f.exec(t, `UPDATE month_usage SET amount = amount - 1 WHERE wallet_id = $1 AND operation_type = 'PAYMENT'`, f.walletID.String())
		}, "monthly usage differs from the SUCCESS and PENDING operations"},
	}
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				f := newAuditFixture(t, e)
				if r := f.audit(t); len(r.Violations) > 0 {
					t.Fatalf("violations before the damage:\n%s", strings.Join(r.Violations, "\n"))
				}
				c.corrupt(t, f)
				r := f.audit(t)
				if !strings.HasPrefix(r.Summary(), "audit FAILED") {
					t.Errorf("summary %q after the damage", r.Summary())
				}
				for _, v := range r.Violations {
					if strings.Contains(v, c.want) {
						t.Logf("found: %s", v)
						return
					}
				}
				t.Errorf("no violation mentions %q; got:\n%s", c.want, strings.Join(r.Violations, "\n"))
			})
		}
	})
}

// TestAuditAfterFailedTransactions: what a transaction wrote before it failed
// leaves no trace, also when it ran concurrently with others that succeeded
// (SQLite commits concurrent transactions together).
func TestAuditAfterFailedTransactions(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		f := newAuditFixture(t, e)
		ctx := context.Background()
		errRefused := errors.New("refused after writing")
		month := 202503
		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			failures = make(chan error, 40)
		)
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				err := f.db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
					if _, err := tx.Wallet(ctx, f.partnerID, f.walletID, true); err != nil {
						return err
					}
					// Every transaction writes; every other one then fails.
					if err := tx.AddPendingCredit(ctx, f.walletID, 100); err != nil {
						return err
					}
					if err := tx.AddMonthUsage(ctx, f.walletID, month, wallet.Credit, 100); err != nil {
						return err
					}
					if i%2 == 0 {
						return errRefused
					}
					if err := tx.AddMonthUsage(ctx, f.walletID, month, wallet.Credit, -100); err != nil {
						return err
					}
					return tx.AddPendingCredit(ctx, f.walletID, -100)
				})
				if (i%2 == 0) != errors.Is(err, errRefused) {
					failures <- fmt.Errorf("transaction %d: %w", i, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		close(failures)
		for err := range failures {
			t.Error(err)
		}
		r := f.audit(t)
		if len(r.Violations) > 0 {
			t.Fatalf("failed transactions left traces:\n%s", strings.Join(r.Violations, "\n"))
		}
		var pending int64
		if err := f.raw.QueryRowContext(ctx, `SELECT pending_credit FROM wallets WHERE id = $1`, f.walletID.String()).Scan(&pending); err != nil {
			t.Fatalf("read pending: %v", err)
		}
		if pending != int64(f.pendingTopUp.Amount) {
			t.Errorf("pending top-ups %d, want %d (the one pending top-up)", pending, f.pendingTopUp.Amount)
		}
	})
}
