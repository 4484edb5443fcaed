package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/wallet"
)

// querier is a database/sql transaction, its statements prepared or not (cachedTx).
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// walletTx implements wallet.Tx on one SQL transaction.
type walletTx struct {
	q   stmts
	eng *engine
	// view: the transaction is a View, whose reads lock nothing.
	view bool
	// wallets answers a View's unlocked wallet reads in batches (PostgreSQL).
	wallets *batcher[uuid.UUID, wallet.Wallet]
	// noHooks is a partner the transaction has read to have no webhook URL
	// (PaymentScope): its events are not written, so InsertEvent need not ask.
	noHooks uuid.UUID
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

// A wallet's columns in scanWallet's order, from a wallet joined to its account.
const walletColumns = `w.id, w.partner_id, w.phone, w.number, w.identification, w.status,
	a.balance, w.pending_credit, w.created_at, w.closed_at FROM wallets w JOIN accounts a ON a.id = w.id`

func scanWallet(row scanner) (wallet.Wallet, error) {
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
	if t.wallets != nil && !lock {
		w, ok, err := t.wallets.get(ctx, walletID)
		if err == nil && (!ok || w.PartnerID != partnerID) {
			err = wallet.ErrNotFound
		}
		if err != nil {
			return wallet.Wallet{}, err // never another partner's wallet
		}
		return w, nil
	}
	return scanWallet(row(ctx, t.q, t.walletQuery(lock), walletID, partnerID))
}

// fetchWallets reads many wallets in one statement (the wallets batcher,
// PostgreSQL), on the batcher's own connection: outside the gate.
func (db *DB) fetchWallets(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]wallet.Wallet, error) {
	arg := make([][16]byte, len(ids))
	for i, id := range ids {
		arg[i] = id
	}
	out := make(map[uuid.UUID]wallet.Wallet, len(ids))
	err := db.fetch(ctx, func(r scanner) error {
		w, err := scanWallet(r)
		if err == nil {
			out[w.ID] = w
		}
		return err
	}, walletsByID(), arg)
	return out, err
}

// walletsByID is fetchWallets' statement.
func walletsByID() string { return eachKey("uuid", `SELECT `+walletColumns+` WHERE w.id = k.key`) }

// walletRead reads the partner's wallet into w, locked when lock is set:
// the first read of every scope.
func (t *walletTx) walletRead(partnerID, walletID uuid.UUID, lock bool, w *wallet.Wallet) read {
	return read{query: t.walletQuery(lock), args: []any{walletID, partnerID}, scan: one(func(r scanner) (err error) {
		*w, err = scanWallet(r)
		return err
	})}
}

// operationInto scans an operation's row into op.
func operationInto(op *wallet.Operation) func(scanner) error {
	return func(r scanner) (err error) {
		*op, err = scanOperation(r)
		return err
	}
}

// walletQuery selects the wallet $1 of the partner $2.
func (t *walletTx) walletQuery(lock bool) string {
	q := `SELECT ` + walletColumns + ` WHERE w.id = $1 AND w.partner_id = $2`
	if lock {
		q += t.eng.forUpdate
	}
	return q
}

func (t *walletTx) ActiveWalletByPhone(ctx context.Context, partnerID uuid.UUID, phone string) (wallet.Wallet, error) {
	return scanWallet(row(ctx, t.q,
		`SELECT `+walletColumns+` WHERE w.partner_id = $1 AND w.phone = $2 AND w.status = 'ACTIVE'`,
		partnerID, phone))
}

func (t *walletTx) InsertWallet(ctx context.Context, w wallet.Wallet) error {
	if _, err := t.q.exec(ctx,
		`INSERT INTO accounts (id, kind, balance, created_at) VALUES ($1, 'WALLET', 0, $2)`,
		w.ID, micros(w.CreatedAt)); err != nil {
		return t.duplicate(err)
	}
	_, err := t.q.exec(ctx,
		`INSERT INTO wallets (id, partner_id, phone, number, identification, status, created_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		w.ID, w.PartnerID, w.Phone, w.Number, int(w.Identification), string(w.Status), micros(w.CreatedAt))
	return t.duplicate(err)
}

func (t *walletTx) UpdateWallet(ctx context.Context, w wallet.Wallet) error {
	return changed(t.q.exec(ctx,
		`UPDATE wallets SET status = $1, identification = $2, closed_at = $3 WHERE id = $4`,
		string(w.Status), int(w.Identification), nullMicros(w.ClosedAt), w.ID))
}

// mustAffect turns "no row changed" into ErrNotFound.
func mustAffect(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	return changed(res.RowsAffected())
}

// changed turns "no row changed" (n == 0) into ErrNotFound.
func changed(n int64, err error) error {
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
	err := row(ctx, t.q,
		`SELECT 1 FROM operations WHERE wallet_id = $1 AND status = 'PENDING' LIMIT 1`, walletID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (t *walletTx) LimitState(ctx context.Context, walletID uuid.UUID, month int) (wallet.LimitState, error) {
	var lr limitRow
	err := row(ctx, t.q, limitStateQuery, walletID, month).Scan(lr.dest()...)
	if err != nil {
		return wallet.LimitState{}, err
	}
	return lr.state(), nil
}

// limitStateFrom joins a wallet's month usage (usageByType, $1 the wallet and
// $2 the month) to its settings; every statement that reads it numbers its
// parameters so.
const limitStateFrom = `FROM (` + usageByType + `) AS u
	LEFT JOIN wallet_limits l ON l.wallet_id = $1`

// limitStateQuery reads the limit state of the wallet $1 in the month $2.
const limitStateQuery = `SELECT ` + limitStateColumns + ` ` + limitStateFrom

// limitStateColumns are a wallet's settings (wallet_limits l, outer-joined)
// and its month's usage (usageByType u), in limitRow's order.
const limitStateColumns = `l.balance_limit, l.credit_one_time, l.credit_month, l.credit_enabled,
	l.payment_one_time, l.payment_month, l.payment_enabled,
	l.debit_one_time, l.debit_month, l.debit_enabled,
	u.credit, u.payment, u.debit, u.refund`

// limitRow scans limitStateColumns.
type limitRow struct {
	settings settingColumns
	used     [len(usageTypes)]sql.NullInt64
}

func (lr *limitRow) dest() []any {
	dest := lr.settings.dest()
	for i := range lr.used {
		dest = append(dest, &lr.used[i])
	}
	return dest
}

func (lr *limitRow) state() wallet.LimitState {
	st := wallet.LimitState{Overrides: lr.settings.overrides(), Usage: map[wallet.OperationType]money.Amount{}}
	for i, u := range lr.used {
		if u.Valid {
			st.Usage[usageTypes[i]] = money.Amount(u.Int64)
		}
	}
	return st
}

// settingColumns scans a wallet_limits row; a missing row read through an
// outer join is all NULL, which is the zero Overrides.
type settingColumns struct {
	balance sql.NullInt64
	c, p, d limitColumns
}

func (s *settingColumns) dest() []any {
	return []any{&s.balance, &s.c.oneTime, &s.c.month, &s.c.enabled, &s.p.oneTime, &s.p.month, &s.p.enabled,
		&s.d.oneTime, &s.d.month, &s.d.enabled}
}

func (s *settingColumns) overrides() wallet.Overrides {
	return wallet.Overrides{Balance: optional(s.balance), Credit: s.c.override(), Payment: s.p.override(), Debit: s.d.override()}
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
	_, err := t.q.exec(ctx, `INSERT INTO wallet_limits (wallet_id, balance_limit,
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

func (t *walletTx) TSP(ctx context.Context, partnerID, tspID uuid.UUID) (wallet.TSP, error) {
	var (
		ts      wallet.TSP
		created int64
	)
	err := row(ctx, t.q, `SELECT id, partner_id, name, created_at FROM tsps WHERE id = $1 AND partner_id = $2`,
		tspID, partnerID).Scan(&ts.ID, &ts.PartnerID, &ts.Name, &created)
	if err != nil {
		return wallet.TSP{}, notFound(err)
	}
	ts.CreatedAt = fromMicros(created)
	return ts, nil
}

// PaymentScope reads in three statements where five were, and on PostgreSQL
// in one round trip: statements, not only round trips, cost (executor start-up
// showed as a tenth of the server's time). The wallet is locked by a statement
// of its own, and what it decides on is read by the next: at READ COMMITTED a
// statement reads what was committed when it began, and only the statement
// after the lock is sure to see the usage of the payment that held it before.
func (t *walletTx) PaymentScope(ctx context.Context, partnerID, walletID, tspID, token uuid.UUID, month int) (wallet.PaymentScope, error) {
	var sc wallet.PaymentScope
	settings := read{query: `SELECT ` + limitStateColumns + `,
		ts.id, ts.partner_id, ts.name, ts.created_at,
		(SELECT webhook_url <> '' FROM partners WHERE id = $4)
		` + limitStateFrom + `
		LEFT JOIN tsps ts ON ts.id = $3 AND ts.partner_id = $4`,
		args: []any{walletID, month, tspID, partnerID},
		scan: one(func(r scanner) error {
			hooks, err := scanScope(r, &sc)
			if err == nil && hooks.Valid && !hooks.Bool {
				t.noHooks = partnerID
			}
			return err
		}),
	}
	err := t.q.query(ctx,
		t.walletRead(partnerID, walletID, true, &sc.Wallet),
		settings,
		read{query: t.paymentByTokenQuery(false), args: []any{token}, scan: maybe(&sc.PaidFound, operationInto(&sc.Paid))})
	if err != nil {
		return wallet.PaymentScope{}, notFound(err)
	}
	return sc, nil
}

// OperationScope reads in one round trip on PostgreSQL, like PaymentScope. In
// an Update the wallet's lock is a statement of its own, and what the request
// decides on is read by the statements after it, which see what the lock's
// last holder committed; in a View nothing is locked.
func (t *walletTx) OperationScope(ctx context.Context, partnerID, walletID uuid.UUID, idemKey string, month int) (wallet.OperationScope, error) {
	var (
		sc wallet.OperationScope
		lr limitRow
	)
	reads := []read{
		t.walletRead(partnerID, walletID, !t.view, &sc.Wallet),
		{query: limitStateQuery, args: []any{walletID, month}, scan: one(func(r scanner) error { return r.Scan(lr.dest()...) })},
	}
	if idemKey != "" {
		reads = append(reads, read{query: operationByIdemKeyQuery, args: []any{partnerID, idemKey},
			scan: maybe(&sc.PriorFound, operationInto(&sc.Prior))})
	}
	if err := t.q.query(ctx, reads...); err != nil {
		return wallet.OperationScope{}, notFound(err)
	}
	sc.LimitState = lr.state()
	return sc, nil
}

// usageByType is one row of a wallet's monthly usage ($1 the wallet, $2 the
// month), a column for each of usageTypes, in order: one index range read,
// and an aggregate without GROUP BY yields its row even when there is none.
// MAX, not SUM, keeps the column BIGINT; (wallet, month, type) is the key.
const usageByType = `SELECT
		MAX(CASE WHEN operation_type = 'CREDIT' THEN amount END) AS credit,
		MAX(CASE WHEN operation_type = 'PAYMENT' THEN amount END) AS payment,
		MAX(CASE WHEN operation_type = 'DEBIT' THEN amount END) AS debit,
		MAX(CASE WHEN operation_type = 'REFUND' THEN amount END) AS refund
		FROM month_usage WHERE wallet_id = $1 AND month = $2`

var usageTypes = [...]wallet.OperationType{wallet.Credit, wallet.Payment, wallet.Debit, wallet.Refund}

func scanScope(r scanner, sc *wallet.PaymentScope) (hooks sql.NullBool, err error) {
	var (
		lr         limitRow
		tspID      uuid.NullUUID
		tspPartner uuid.NullUUID
		tspName    sql.NullString
		tspCreated sql.NullInt64
	)
	if err := r.Scan(append(lr.dest(), &tspID, &tspPartner, &tspName, &tspCreated, &hooks)...); err != nil {
		return hooks, err
	}
	sc.LimitState = lr.state()
	if sc.TSPFound = tspID.Valid; sc.TSPFound {
		sc.TSP = wallet.TSP{ID: tspID.UUID, PartnerID: tspPartner.UUID, Name: tspName.String, CreatedAt: fromMicros(tspCreated.Int64)}
	}
	return hooks, nil
}

func (t *walletTx) InsertTSP(ctx context.Context, ts wallet.TSP) error {
	if _, err := t.q.exec(ctx,
		`INSERT INTO accounts (id, kind, balance, created_at) VALUES ($1, 'TSP', 0, $2)`,
		ts.ID, micros(ts.CreatedAt)); err != nil {
		return t.duplicate(err)
	}
	_, err := t.q.exec(ctx, `INSERT INTO tsps (id, partner_id, name, created_at) VALUES ($1, $2, $3, $4)`,
		ts.ID, ts.PartnerID, ts.Name, micros(ts.CreatedAt))
	return t.duplicate(err)
}

func isNotFound(err error) bool { return errors.Is(err, wallet.ErrNotFound) }
