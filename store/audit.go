package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/wallet"
)

// AuditReport is the outcome of checking the ledger invariants (PROTOCOL.md section 7).
type AuditReport struct {
	Violations []string

	Wallets, Operations, Transactions, Postings int64
	InWallets, InTSPs, InTransit                money.Amount
	ToppedUp, PaidOut                           money.Amount
}

// Summary is the one-line outcome.
func (r AuditReport) Summary() string {
	verdict := "audit ok"
	if len(r.Violations) > 0 {
		verdict = fmt.Sprintf("audit FAILED: %d violation(s)", len(r.Violations))
	}
	return fmt.Sprintf("%s: %d wallets, %d operations, %d ledger transactions, %d postings; "+
		"wallets %s + TSPs %s + in transit %s = top-ups %s - payouts %s",
		verdict, r.Wallets, r.Operations, r.Transactions, r.Postings,
		r.InWallets, r.InTSPs, r.InTransit, r.ToppedUp, r.PaidOut)
}

// auditCheck is one invariant: a query whose every row is a violation (an
// id and two numbers), reported under the check's name.
type auditCheck struct {
	name  string
	query string
}

// auditChecks are run in one read transaction, so they see one consistent state.
var auditChecks = []auditCheck{
	{"unbalanced ledger transaction (postings must sum to zero)",
		`SELECT t.id, COALESCE(SUM(p.amount), 0), COUNT(p.account_id) FROM ledger_transactions t
		 LEFT JOIN postings p ON p.tx_id = t.id GROUP BY t.id HAVING COALESCE(SUM(p.amount), 0) <> 0 OR COUNT(p.account_id) < 2`},
	{"wallet balance differs from the sum of its postings, or is negative",
		`SELECT a.id, a.balance, COALESCE(SUM(p.amount), 0) FROM accounts a LEFT JOIN postings p ON p.account_id = a.id
		 WHERE a.kind = 'WALLET' GROUP BY a.id, a.balance HAVING a.balance <> COALESCE(SUM(p.amount), 0) OR a.balance < 0`},
	{"TSP balance (sum of postings) is negative",
		`SELECT a.id, COALESCE(SUM(p.amount), 0), 0 FROM accounts a JOIN postings p ON p.account_id = a.id
		 WHERE a.kind = 'TSP' GROUP BY a.id HAVING SUM(p.amount) < 0`},
	{"wallet pending top-ups differ from its PENDING CREDIT operations",
		`SELECT w.id, w.pending_credit, COALESCE(SUM(o.amount), 0) FROM wallets w
		 LEFT JOIN operations o ON o.wallet_id = w.id AND o.type = 'CREDIT' AND o.status = 'PENDING'
		 GROUP BY w.id, w.pending_credit HAVING w.pending_credit <> COALESCE(SUM(o.amount), 0)`},
	{"closed wallet holds money or pending operations",
		`SELECT w.id, a.balance, w.pending_credit FROM wallets w JOIN accounts a ON a.id = w.id
		 WHERE w.status = 'CLOSED' AND (a.balance <> 0 OR w.pending_credit <> 0)`},
	{"operation has the wrong number of ledger transactions for its type and status (applied twice or not at all)",
		`SELECT o.id, COUNT(t.id), 0 FROM operations o LEFT JOIN ledger_transactions t ON t.operation_id = o.id
		 GROUP BY o.id, o.type, o.status HAVING COUNT(t.id) <> CASE
		   WHEN o.type = 'CREDIT' AND o.status = 'SUCCESS' THEN 1
		   WHEN o.type = 'CREDIT' THEN 0
		   WHEN o.type IN ('PAYMENT', 'REFUND') AND o.status = 'SUCCESS' THEN 1
		   WHEN o.type IN ('PAYMENT', 'REFUND') THEN 0
		   WHEN o.type = 'DEBIT' AND o.status = 'PENDING' THEN 1
		   ELSE 2 END`},
	{"operation's ledger postings on its wallet differ from its amount and outcome",
		`SELECT o.id, o.amount, COALESCE(SUM(p.amount), 0) FROM operations o
		 LEFT JOIN ledger_transactions t ON t.operation_id = o.id
		 LEFT JOIN postings p ON p.tx_id = t.id AND p.account_id = o.wallet_id
		 GROUP BY o.id, o.amount, o.type, o.status HAVING COALESCE(SUM(p.amount), 0) <> CASE
		   WHEN o.status <> 'SUCCESS' AND o.type <> 'DEBIT' THEN 0
		   WHEN o.type IN ('CREDIT', 'REFUND') THEN o.amount
		   WHEN o.type = 'PAYMENT' THEN -o.amount
		   WHEN o.status IN ('PENDING', 'SUCCESS') THEN -o.amount
		   ELSE 0 END`},
	{"refunds exceed their payment",
		`SELECT p.id, p.amount, COALESCE(SUM(r.amount), 0) FROM operations p
		 LEFT JOIN operations r ON r.parent_id = p.id AND r.type = 'REFUND' AND r.status = 'SUCCESS'
		 WHERE p.type = 'PAYMENT' GROUP BY p.id, p.amount, p.refunded
		 HAVING COALESCE(SUM(r.amount), 0) > p.amount OR COALESCE(SUM(r.amount), 0) <> p.refunded`},
	{"monthly usage differs from the SUCCESS and PENDING operations of the month",
		`SELECT u.wallet_id, u.amount, COALESCE(SUM(o.amount), 0) FROM month_usage u
		 LEFT JOIN operations o ON o.wallet_id = u.wallet_id AND o.month = u.month AND o.type = u.operation_type
		   AND o.status IN ('SUCCESS', 'PENDING')
		 GROUP BY u.wallet_id, u.month, u.operation_type, u.amount HAVING u.amount <> COALESCE(SUM(o.amount), 0)`},
	{"operations of a month are missing from its usage",
		`SELECT o.wallet_id, COUNT(*), 0 FROM operations o
		 LEFT JOIN month_usage u ON u.wallet_id = o.wallet_id AND u.month = o.month AND u.operation_type = o.type
		 WHERE o.status IN ('SUCCESS', 'PENDING') AND o.type <> 'REFUND' AND u.wallet_id IS NULL
		 GROUP BY o.wallet_id`},
	{"a payment token was used by more than one payment",
		`SELECT payment_token, COUNT(*), 0 FROM operations WHERE type = 'PAYMENT'
		 GROUP BY payment_token HAVING COUNT(*) > 1`},
}

// Audit checks every ledger invariant in one consistent read.
func (db *DB) Audit(ctx context.Context) (AuditReport, error) {
	var r AuditReport
	err := db.inTx(ctx, db.read, &sql.TxOptions{ReadOnly: true, Isolation: db.eng.snapshot}, func(ctx context.Context, tx *sql.Tx) error {
		r = AuditReport{}
		for _, c := range auditChecks {
			if err := collect(ctx, tx, c, &r); err != nil {
				return fmt.Errorf("audit %q: %w", c.name, err)
			}
		}
		if err := totals(ctx, tx, &r); err != nil {
			return err
		}
		return numbers(ctx, tx, &r)
	})
	return r, err
}

func collect(ctx context.Context, tx *sql.Tx, c auditCheck, r *AuditReport) error {
	rows, err := tx.QueryContext(ctx, c.query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   string
			a, b int64
		)
		if err := rows.Scan(&id, &a, &b); err != nil {
			return err
		}
		r.Violations = append(r.Violations, fmt.Sprintf("%s: %s (%d, %d)", c.name, id, a, b))
	}
	return rows.Err()
}

// totals checks conservation: wallets + TSPs + in transit = top-ups - payouts,
// both from the ledger and from the operations.
func totals(ctx context.Context, tx *sql.Tx, r *AuditReport) error {
	sums := map[string]int64{}
	rows, err := tx.QueryContext(ctx, `SELECT a.kind, COALESCE(a.code, ''), COALESCE(SUM(p.amount), 0)
		FROM accounts a LEFT JOIN postings p ON p.account_id = a.id GROUP BY a.kind, a.code`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var all int64
	for rows.Next() {
		var (
			kind, code string
			sum        int64
		)
		if err := rows.Scan(&kind, &code, &sum); err != nil {
			return err
		}
		key := kind
		if code != "" {
			key = code
		}
		sums[key] += sum
		all += sum
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var walletsBal, credited, paidOut, inTransitOps int64
	err = tx.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM wallets), (SELECT COUNT(*) FROM operations),
		(SELECT COUNT(*) FROM ledger_transactions), (SELECT COUNT(*) FROM postings),
		(SELECT COALESCE(SUM(balance), 0) FROM accounts WHERE kind = 'WALLET'),
		(SELECT COALESCE(SUM(amount), 0) FROM operations WHERE type = 'CREDIT' AND status = 'SUCCESS'),
		(SELECT COALESCE(SUM(amount), 0) FROM operations WHERE type = 'DEBIT' AND status = 'SUCCESS'),
		(SELECT COALESCE(SUM(amount), 0) FROM operations WHERE type = 'DEBIT' AND status = 'PENDING')`).
		Scan(&r.Wallets, &r.Operations, &r.Transactions, &r.Postings, &walletsBal, &credited, &paidOut, &inTransitOps)
	if err != nil {
		return err
	}
	r.InWallets, r.InTSPs, r.InTransit = money.Amount(walletsBal), money.Amount(sums["TSP"]), money.Amount(sums["PAYOUTS_IN_TRANSIT"])
	r.ToppedUp, r.PaidOut = money.Amount(credited), money.Amount(paidOut)

	fail := func(format string, args ...any) { r.Violations = append(r.Violations, fmt.Sprintf(format, args...)) }
	if all != 0 {
		fail("the ledger does not sum to zero: %d", all)
	}
	if walletsBal != sums["WALLET"] {
		fail("wallet balances %d differ from their postings %d", walletsBal, sums["WALLET"])
	}
	if -sums["SBP_INBOUND"] != credited {
		fail("SBP inbound account %d differs from confirmed top-ups %d", -sums["SBP_INBOUND"], credited)
	}
	if sums["SBP_OUTBOUND"] != paidOut {
		fail("SBP outbound account %d differs from completed payouts %d", sums["SBP_OUTBOUND"], paidOut)
	}
	if sums["PAYOUTS_IN_TRANSIT"] != inTransitOps {
		fail("payouts in transit %d differ from pending withdrawals %d", sums["PAYOUTS_IN_TRANSIT"], inTransitOps)
	}
	if held := walletsBal + sums["TSP"] + sums["PAYOUTS_IN_TRANSIT"]; held != credited-paidOut {
		fail("money is not conserved: wallets + TSPs + in transit = %d, top-ups - payouts = %d", held, credited-paidOut)
	}
	return nil
}

// numbers checks that every wallet number is 16 digits with a valid Luhn digit.
func numbers(ctx context.Context, tx *sql.Tx, r *AuditReport) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, number FROM wallets`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, number string
		if err := rows.Scan(&id, &number); err != nil {
			return err
		}
		if len(number) != 16 || !wallet.ValidLuhn(number) {
			r.Violations = append(r.Violations, fmt.Sprintf("wallet %s has an invalid number %q", id, number))
		}
	}
	return rows.Err()
}
