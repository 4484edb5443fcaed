package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/wallet"
)

const operationColumns = `id, wallet_id, partner_id, type, status, amount, refunded, tsp_id, bank_id,
	payment_token, parent_id, qrc_id, payload, idempotency_key, description, month, created_at, expires_at, finished_at`

// nullUUID stores uuid.Nil as NULL.
func nullUUID(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

type scanner interface{ Scan(dest ...any) error }

func scanOperation(row scanner) (wallet.Operation, error) {
	var (
		op                        wallet.Operation
		amount, refunded, created int64
		tsp, token, parent        uuid.NullUUID
		bank, qrc, payload, idem  sql.NullString
		expires, finished         sql.NullInt64
	)
	err := row.Scan(&op.ID, &op.WalletID, &op.PartnerID, &op.Type, &op.Status, &amount, &refunded, &tsp, &bank,
		&token, &parent, &qrc, &payload, &idem, &op.Description, &op.Month, &created, &expires, &finished)
	if err != nil {
		return wallet.Operation{}, notFound(err)
	}
	op.Amount, op.Refunded = money.Amount(amount), money.Amount(refunded)
	op.TSPID, op.Token, op.ParentID = tsp.UUID, token.UUID, parent.UUID
	op.BankID, op.QRCID, op.Payload, op.IdemKey = bank.String, qrc.String, payload.String, idem.String
	op.CreatedAt, op.ExpiresAt, op.FinishedAt = fromMicros(created), fromNullMicros(expires), fromNullMicros(finished)
	return op, nil
}

func (t *walletTx) InsertOperation(ctx context.Context, op wallet.Operation) error {
	// Its unique keys are new (a released Idempotency-Key was freed by a
	// statement of its own): it may share a statement.
	return t.q.execLater(ctx, write{row: rowKey{"operations", op.ID}, mapErr: t.duplicateOperation,
		query: `INSERT INTO operations (` + operationColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
		args: []any{op.ID, op.WalletID, op.PartnerID, string(op.Type), string(op.Status), int64(op.Amount), int64(op.Refunded),
			nullUUID(op.TSPID), nullString(op.BankID), nullUUID(op.Token), nullUUID(op.ParentID),
			nullString(op.QRCID), nullString(op.Payload), nullString(op.IdemKey), op.Description, op.Month,
			micros(op.CreatedAt), nullMicros(op.ExpiresAt), nullMicros(op.FinishedAt)}})
}

// duplicateOperation maps a unique violation of operations (a payment token
// used twice) to the domain's sentinel. Joined with other writes, the
// statement may also fail on their keys, and those are no duplicates.
func (t *walletTx) duplicateOperation(err error) error {
	if t.eng.uniqueViolation(err, "operations") {
		return wallet.ErrDuplicate
	}
	return err
}

func (t *walletTx) Operation(ctx context.Context, partnerID, walletID, opID uuid.UUID) (wallet.Operation, error) {
	return scanOperation(row(ctx, t.q, `SELECT `+operationColumns+` FROM operations
		WHERE id = $1 AND wallet_id = $2 AND partner_id = $3`, opID, walletID, partnerID))
}

func (t *walletTx) OperationByID(ctx context.Context, opID uuid.UUID) (wallet.Operation, error) {
	return scanOperation(row(ctx, t.q, `SELECT `+operationColumns+` FROM operations WHERE id = $1`, opID))
}

// LockOperation sends both locks in one round trip on PostgreSQL; the
// operation's statement runs after the wallet's, so it reads the operation as
// the wallet's last holder left it.
func (t *walletTx) LockOperation(ctx context.Context, partnerID, walletID, opID uuid.UUID) (wallet.Wallet, wallet.Operation, error) {
	var (
		w  wallet.Wallet
		op wallet.Operation
	)
	err := t.q.query(ctx,
		t.walletRead(partnerID, walletID, true, &w),
		read{query: `SELECT ` + operationColumns + ` FROM operations WHERE id = $1 AND wallet_id = $2` + t.eng.forUpdate,
			args: []any{opID, walletID}, scan: one(operationInto(&op))})
	if err != nil {
		return wallet.Wallet{}, wallet.Operation{}, notFound(err)
	}
	return w, op, nil
}

func (t *walletTx) OperationByQRC(ctx context.Context, qrcID string) (wallet.Operation, error) {
	return scanOperation(row(ctx, t.q, `SELECT `+operationColumns+` FROM operations WHERE qrc_id = $1`, qrcID))
}

// operationByIdemKeyQuery selects the operation of the partner $1 under the
// Idempotency-Key $2 (OperationScope).
const operationByIdemKeyQuery = `SELECT ` + operationColumns + ` FROM operations
	WHERE partner_id = $1 AND idempotency_key = $2`

func (t *walletTx) ReleaseIdemKey(ctx context.Context, opID uuid.UUID) error {
	// A statement of its own: the operation that takes the key next must
	// find it free.
	return t.q.execLater(ctx, write{query: `UPDATE operations SET idempotency_key = NULL WHERE id = $1`, args: []any{opID}})
}

func (t *walletTx) PaymentByToken(ctx context.Context, token uuid.UUID) (wallet.Operation, error) {
	return scanOperation(row(ctx, t.q, t.paymentByTokenQuery(true), token))
}

// paymentByTokenQuery selects the PAYMENT made with the token $1.
func (t *walletTx) paymentByTokenQuery(lock bool) string {
	q := `SELECT ` + operationColumns + ` FROM operations WHERE payment_token = $1 AND type = 'PAYMENT'`
	if lock {
		q += t.eng.forUpdate
	}
	return q
}

// UpdateOperation may wait for the commit: the transaction holds the
// operation (wallet.Tx), so the update finds its row, and the schema's CHECKs
// refuse a bad status or refunded sum as an error that stops the COMMIT.
func (t *walletTx) UpdateOperation(ctx context.Context, op wallet.Operation) error {
	return t.q.execLater(ctx, write{row: rowKey{"operations", op.ID},
		query: `UPDATE operations SET status = $1, finished_at = $2, refunded = $3 WHERE id = $4`,
		args:  []any{string(op.Status), nullMicros(op.FinishedAt), int64(op.Refunded), op.ID}})
}

func (t *walletTx) Report(ctx context.Context, walletID uuid.UUID, f wallet.ReportFilter) ([]wallet.Operation, int, error) {
	where := []string{"wallet_id = $1"}
	args := []any{walletID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Type != "" {
		add("type = $%d", string(f.Type))
	}
	if !f.From.IsZero() {
		add("created_at >= $%d", micros(f.From))
	}
	if !f.To.IsZero() {
		add("created_at <= $%d", micros(f.To))
	}
	if f.AmountFrom.Valid {
		add("amount >= $%d", int64(f.AmountFrom.Value))
	}
	if f.AmountTo.Valid {
		add("amount <= $%d", int64(f.AmountTo.Value))
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := row(ctx, t.q, `SELECT COUNT(*) FROM operations WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	if total == 0 || f.Page*f.Size >= total {
		return []wallet.Operation{}, total, nil
	}
	args = append(args, f.Size, f.Page*f.Size)
	ops := make([]wallet.Operation, 0, f.Size)
	err := t.q.query(ctx, read{query: fmt.Sprintf(`SELECT %s FROM operations WHERE %s
		ORDER BY created_at DESC, id DESC LIMIT $%d OFFSET $%d`, operationColumns, cond, len(args)-1, len(args)), args: args,
		scan: each(func(r scanner) error {
			op, err := scanOperation(r)
			if err == nil {
				ops = append(ops, op)
			}
			return err
		})})
	if err != nil {
		return nil, 0, err
	}
	return ops, total, nil
}

func (t *walletTx) Post(ctx context.Context, lt wallet.LedgerTx) error {
	var sum money.Amount
	for _, p := range lt.Postings {
		sum += p.Amount
	}
	if sum != 0 || len(lt.Postings) < 2 {
		return fmt.Errorf("ledger transaction %s is unbalanced (%s over %d postings)", lt.ID, sum, len(lt.Postings))
	}
	// The schema's CHECK (balance >= 0) on the wallet accounts' stored balances
	// is the overdraft guard: it holds even if a caller forgot to lock, and,
	// being an error rather than a row left unchanged, it stops a pipelined
	// COMMIT behind it. A missing account fails the postings' foreign key.
	// Each part names its row: an account appears once in a transaction (the
	// postings' key), so they may share a statement.
	if err := t.q.execLater(ctx, write{row: rowKey{"ledger_transactions", lt.ID},
		query: `INSERT INTO ledger_transactions (id, operation_id, kind, created_at) VALUES ($1, $2, $3, $4)`,
		args:  []any{lt.ID, lt.OperationID, lt.Kind, micros(lt.CreatedAt)}}); err != nil {
		return err
	}
	values := make([]string, 0, len(lt.Postings))
	args := make([]any, 0, 1+2*len(lt.Postings))
	args = append(args, lt.ID)
	for _, p := range lt.Postings {
		args = append(args, p.Account, int64(p.Amount))
		values = append(values, fmt.Sprintf("($1, $%d, $%d)", len(args)-1, len(args)))
		if p.Kind == wallet.WalletAccount {
			if err := t.q.execLater(ctx, write{row: rowKey{"accounts", p.Account}, mapErr: t.overdraft,
				query: `UPDATE accounts SET balance = balance + $1 WHERE id = $2`,
				args:  []any{int64(p.Amount), p.Account}}); err != nil {
				return err
			}
		}
	}
	return t.q.execLater(ctx, write{row: rowKey{"postings", lt.ID},
		query: `INSERT INTO postings (tx_id, account_id, amount) VALUES ` + strings.Join(values, ", "), args: args})
}

// overdraft maps the balance CHECK's violation to the domain's sentinel.
func (t *walletTx) overdraft(err error) error {
	if t.eng.checkViolation(err, "accounts") {
		return wallet.ErrInsufficientFunds
	}
	return err
}

// AddPendingCredit may wait for the commit: the transaction holds the wallet
// (wallet.Tx), so the update finds its row, and the schema's CHECK refuses a
// sum below zero as an error that stops the COMMIT behind it.
func (t *walletTx) AddPendingCredit(ctx context.Context, walletID uuid.UUID, delta money.Amount) error {
	return t.q.execLater(ctx, write{row: rowKey{"wallets", walletID},
		query: `UPDATE wallets SET pending_credit = pending_credit + $1 WHERE id = $2`,
		args:  []any{int64(delta), walletID}})
}

func (t *walletTx) AddMonthUsage(ctx context.Context, walletID uuid.UUID, month int, typ wallet.OperationType, delta money.Amount) error {
	if delta < 0 {
		// Releasing usage: the row exists (the operation added to it), and an
		// upsert would have its negative VALUES row refused by the CHECK first.
		return changed(t.q.exec(ctx, `UPDATE month_usage SET amount = amount + $1
			WHERE wallet_id = $2 AND month = $3 AND operation_type = $4`, int64(delta), walletID, month, string(typ)))
	}
	return t.q.execLater(ctx, write{row: rowKey{"month_usage", usageKey{walletID, month, typ}},
		query: `INSERT INTO month_usage (wallet_id, month, operation_type, amount) VALUES ($1, $2, $3, $4)
		ON CONFLICT (wallet_id, month, operation_type) DO UPDATE SET amount = month_usage.amount + excluded.amount`,
		args: []any{walletID, month, string(typ), int64(delta)}})
}

// usageKey and jobKey are the keys of a month_usage and a jobs row.
type (
	usageKey struct {
		wallet uuid.UUID
		month  int
		typ    wallet.OperationType
	}
	jobKey struct {
		kind string
		ref  uuid.UUID
	}
)

func (t *walletTx) EnqueueJob(ctx context.Context, j wallet.Job) error {
	return t.q.execLater(ctx, write{row: rowKey{"jobs", jobKey{j.Kind, j.Ref}},
		query: `INSERT INTO jobs (id, kind, ref_id, run_at, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (kind, ref_id) DO UPDATE SET run_at = excluded.run_at, done_at = NULL, lease_until = NULL,
			attempts = 0, claims = jobs.claims + 1`,
		args: []any{j.ID, j.Kind, j.Ref, micros(j.RunAt), micros(j.CreatedAt)}})
}

// InsertEvent decides in SQL whether the partner takes webhooks, so the
// decision costs no round trip and both statements can wait for the commit.
func (t *walletTx) InsertEvent(ctx context.Context, e wallet.Event, delivery wallet.Job) error {
	if e.PartnerID == t.noHooks {
		return nil // read in this transaction: the partner has no URL
	}
	// Both ask the partner's row, which no wallet transaction changes, rather
	// than one the other, so they may share a statement. They must see the
	// same row, or an event could lose its job: on PostgreSQL, two adjacent
	// writes naming distinct rows always share one statement and its snapshot;
	// SQLite's transaction sees one database throughout.
	if err := t.q.execLater(ctx, write{row: rowKey{"webhook_events", e.ID},
		query: `INSERT INTO webhook_events (id, partner_id, type, wallet_id, operation_id, created_at)
		SELECT $1, $2, $3, $4, $5, $6 FROM partners WHERE id = $2 AND webhook_url <> ''`,
		args: []any{e.ID, e.PartnerID, e.Type, e.WalletID, nullUUID(e.OperationID), micros(e.CreatedAt)}}); err != nil {
		return err
	}
	return t.q.execLater(ctx, write{row: rowKey{"jobs", jobKey{delivery.Kind, delivery.Ref}},
		query: `INSERT INTO jobs (id, kind, ref_id, run_at, created_at)
		SELECT $1, $2, $3, $4, $5 FROM partners WHERE id = $6 AND webhook_url <> ''`,
		args: []any{delivery.ID, delivery.Kind, delivery.Ref, micros(delivery.RunAt), micros(delivery.CreatedAt), e.PartnerID}})
}
