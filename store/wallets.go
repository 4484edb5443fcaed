package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/wallet"
)

// querier is what both *sql.Tx and *sql.DB offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// walletTx implements wallet.Tx on one SQL transaction.
type walletTx struct {
	q   querier
	eng *engine
}

var _ wallet.Tx = (*walletTx)(nil)

// notFound maps sql.ErrNoRows to the domain's sentinel.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return wallet.ErrNotFound
	}
	return err
}

// duplicate maps unique violations to the domain's sentinel.
func (t *walletTx) duplicate(err error) error {
	if t.eng.duplicate(err) {
		return wallet.ErrDuplicate
	}
	return err
}

const walletColumns = `w.id, w.partner_id, w.phone, w.number, w.identification, w.status,
	a.balance, w.pending_credit, w.created_at, w.closed_at
	FROM wallets w JOIN accounts a ON a.id = w.id`

func scanWallet(row *sql.Row) (wallet.Wallet, error) {
	var (
		w                wallet.Wallet
		balance, pending int64
		created          int64
		closed           sql.NullInt64
	)
	err := row.Scan(&w.ID, &w.PartnerID, &w.Phone, &w.Number, &w.Identification, &w.Status,
		&balance, &pending, &created, &closed)
	if err != nil {
		return wallet.Wallet{}, notFound(err)
	}
	w.Balance, w.PendingCredit = money.Amount(balance), money.Amount(pending)
	w.CreatedAt, w.ClosedAt = fromMicros(created), fromNullMicros(closed)
	return w, nil
}

func (t *walletTx) Wallet(ctx context.Context, partnerID, walletID uuid.UUID, lock bool) (wallet.Wallet, error) {
	q := `SELECT ` + walletColumns + ` WHERE w.id = $1 AND w.partner_id = $2`
	if lock {
		q += t.eng.forUpdate
	}
	return scanWallet(t.q.QueryRowContext(ctx, q, walletID, partnerID))
}

func (t *walletTx) ActiveWalletByPhone(ctx context.Context, partnerID uuid.UUID, phone string) (wallet.Wallet, error) {
	return scanWallet(t.q.QueryRowContext(ctx,
		`SELECT `+walletColumns+` WHERE w.partner_id = $1 AND w.phone = $2 AND w.status = 'ACTIVE'`,
		partnerID, phone))
}

func (t *walletTx) InsertWallet(ctx context.Context, w wallet.Wallet) error {
	if _, err := t.q.ExecContext(ctx,
		`INSERT INTO accounts (id, kind, balance, created_at) VALUES ($1, 'WALLET', 0, $2)`,
		w.ID, micros(w.CreatedAt)); err != nil {
		return t.duplicate(err)
	}
	_, err := t.q.ExecContext(ctx,
		`INSERT INTO wallets (id, partner_id, phone, number, identification, status, created_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		w.ID, w.PartnerID, w.Phone, w.Number, int(w.Identification), string(w.Status), micros(w.CreatedAt))
	return t.duplicate(err)
}

func (t *walletTx) UpdateWallet(ctx context.Context, w wallet.Wallet) error {
	res, err := t.q.ExecContext(ctx,
		`UPDATE wallets SET status = $1, identification = $2, closed_at = $3 WHERE id = $4`,
		string(w.Status), int(w.Identification), nullMicros(w.ClosedAt), w.ID)
	return mustAffect(res, err)
}

// mustAffect turns "no row changed" into ErrNotFound.
func mustAffect(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return wallet.ErrNotFound
	}
	return nil
}

func (t *walletTx) HasPendingOperations(ctx context.Context, walletID uuid.UUID) (bool, error) {
	var one int
	err := t.q.QueryRowContext(ctx,
		`SELECT 1 FROM operations WHERE wallet_id = $1 AND status = 'PENDING' LIMIT 1`, walletID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (t *walletTx) Overrides(ctx context.Context, walletID uuid.UUID) (wallet.Overrides, error) {
	var (
		bal     sql.NullInt64
		c, p, d limitColumns
		o       wallet.Overrides
	)
	err := t.q.QueryRowContext(ctx, `SELECT balance_limit,
		credit_one_time, credit_month, credit_enabled,
		payment_one_time, payment_month, payment_enabled,
		debit_one_time, debit_month, debit_enabled
		FROM wallet_limits WHERE wallet_id = $1`, walletID).Scan(&bal,
		&c.oneTime, &c.month, &c.enabled, &p.oneTime, &p.month, &p.enabled, &d.oneTime, &d.month, &d.enabled)
	if errors.Is(err, sql.ErrNoRows) {
		return o, nil
	}
	if err != nil {
		return o, err
	}
	o.Balance = optional(bal)
	o.Credit, o.Payment, o.Debit = c.override(), p.override(), d.override()
	return o, nil
}

type limitColumns struct {
	oneTime, month sql.NullInt64
	enabled        sql.NullBool
}

func (l limitColumns) override() wallet.TypeOverride {
	o := wallet.TypeOverride{OneTime: optional(l.oneTime), Month: optional(l.month)}
	if l.enabled.Valid {
		e := l.enabled.Bool
		o.Enabled = &e
	}
	return o
}

func optional(n sql.NullInt64) wallet.Optional {
	return wallet.Optional{Value: money.Amount(n.Int64), Valid: n.Valid}
}

func nullAmount(o wallet.Optional) sql.NullInt64 {
	return sql.NullInt64{Int64: int64(o.Value), Valid: o.Valid}
}

func nullBool(b *bool) sql.NullBool {
	if b == nil {
		return sql.NullBool{}
	}
	return sql.NullBool{Bool: *b, Valid: true}
}

func (t *walletTx) SaveOverrides(ctx context.Context, walletID uuid.UUID, o wallet.Overrides) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO wallet_limits (wallet_id, balance_limit,
		credit_one_time, credit_month, credit_enabled,
		payment_one_time, payment_month, payment_enabled,
		debit_one_time, debit_month, debit_enabled)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (wallet_id) DO UPDATE SET balance_limit = excluded.balance_limit,
		credit_one_time = excluded.credit_one_time, credit_month = excluded.credit_month,
		credit_enabled = excluded.credit_enabled, payment_one_time = excluded.payment_one_time,
		payment_month = excluded.payment_month, payment_enabled = excluded.payment_enabled,
		debit_one_time = excluded.debit_one_time, debit_month = excluded.debit_month,
		debit_enabled = excluded.debit_enabled`,
		walletID, nullAmount(o.Balance),
		nullAmount(o.Credit.OneTime), nullAmount(o.Credit.Month), nullBool(o.Credit.Enabled),
		nullAmount(o.Payment.OneTime), nullAmount(o.Payment.Month), nullBool(o.Payment.Enabled),
		nullAmount(o.Debit.OneTime), nullAmount(o.Debit.Month), nullBool(o.Debit.Enabled))
	return err
}

func (t *walletTx) MonthUsage(ctx context.Context, walletID uuid.UUID, month int) (map[wallet.OperationType]money.Amount, error) {
	rows, err := t.q.QueryContext(ctx,
		`SELECT operation_type, amount FROM month_usage WHERE wallet_id = $1 AND month = $2`, walletID, month)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	used := map[wallet.OperationType]money.Amount{}
	for rows.Next() {
		var (
			typ    string
			amount int64
		)
		if err := rows.Scan(&typ, &amount); err != nil {
			return nil, err
		}
		used[wallet.OperationType(typ)] = money.Amount(amount)
	}
	return used, rows.Err()
}

func (t *walletTx) TSP(ctx context.Context, partnerID, tspID uuid.UUID) (wallet.TSP, error) {
	var (
		ts      wallet.TSP
		created int64
	)
	err := t.q.QueryRowContext(ctx,
		`SELECT id, partner_id, name, created_at FROM tsps WHERE id = $1 AND partner_id = $2`,
		tspID, partnerID).Scan(&ts.ID, &ts.PartnerID, &ts.Name, &created)
	ts.CreatedAt = fromMicros(created)
	return ts, notFound(err)
}

func (t *walletTx) InsertTSP(ctx context.Context, ts wallet.TSP) error {
	if _, err := t.q.ExecContext(ctx,
		`INSERT INTO accounts (id, kind, balance, created_at) VALUES ($1, 'TSP', 0, $2)`,
		ts.ID, micros(ts.CreatedAt)); err != nil {
		return t.duplicate(err)
	}
	_, err := t.q.ExecContext(ctx, `INSERT INTO tsps (id, partner_id, name, created_at) VALUES ($1, $2, $3, $4)`,
		ts.ID, ts.PartnerID, ts.Name, micros(ts.CreatedAt))
	return t.duplicate(err)
}

func isNotFound(err error) bool { return errors.Is(err, wallet.ErrNotFound) }
