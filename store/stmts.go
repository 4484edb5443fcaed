package store

import (
	"context"
	"database/sql"
)

// stmts runs the statements of one wallet transaction. Two kinds stand behind
// it: sqlStmts sends each statement as it comes (SQLite runs in-process, there
// is no round trip to save), and pipeline holds back writes that nothing reads
// before the commit and sends them with the next read or with COMMIT
// (PostgreSQL, where round trips were most of a payment's cost).
//
// In an Update, a write that fails fails the transaction as a whole, even if
// its caller goes on: Update returns the write's error and nothing commits
// (txStmts, pipeline.failed), as wallet.Tx promises.
type stmts interface {
	reader
	// exec runs a write now and returns how many rows it changed.
	exec(ctx context.Context, query string, args ...any) (int64, error)
	// execLater runs a write whose outcome nothing reads before the commit: at
	// once or queued. A queued write's error is returned by a later call or by
	// the commit, and fails the transaction as a whole.
	execLater(ctx context.Context, w write) error
}

// write is a statement for execLater.
type write struct {
	query string
	args  []any
	// mapErr (nil: none) turns the write's error into the domain's. It must
	// hand on unchanged any error that is not its own.
	mapErr func(error) error
	// row names the row the write changes, and so lets it share one
	// statement with the transaction's other queued writes (joinWrites); the
	// zero rowKey runs it as a statement of its own. A write may name its row
	// only if it reads nothing another write of the transaction changes, and
	// no unique key of the rows it writes may have been freed by another: the
	// parts of one statement see one snapshot and run in no set order (so
	// when two parts would fail, which error comes back is not set either).
	// Foreign keys are checked when the statement ends, with every part done.
	row rowKey
}

// rowKey names one row: its table and the value of its key, a uuid.UUID or a
// struct of the key's columns (comparable, so rowKey can key a map). It costs
// no formatting: SQLite never looks at it.
type rowKey struct {
	table string
	key   any
}

// reader runs reads (together, where the engine can) and hands each its rows.
type reader interface {
	query(ctx context.Context, reads ...read) error
}

// read is a query and what to do with its rows.
type read struct {
	query string
	args  []any
	scan  func(rows) error
}

// one scans a query's first row with scan; sql.ErrNoRows when there is none.
func one(scan func(scanner) error) func(rows) error {
	return func(r rows) error {
		if !r.Next() {
			if err := r.Err(); err != nil {
				return err
			}
			return sql.ErrNoRows
		}
		return scan(r)
	}
}

// maybe scans a query's first row with scan if there is one; found says
// whether there was.
func maybe(found *bool, scan func(scanner) error) func(rows) error {
	return func(r rows) error {
		if *found = r.Next(); !*found {
			return nil
		}
		return scan(r)
	}
}

// each scans every row of a query's result with scan.
func each(scan func(scanner) error) func(rows) error {
	return func(r rows) error {
		for r.Next() {
			if err := scan(r); err != nil {
				return err
			}
		}
		return nil
	}
}

// rows is what *sql.Rows and pgx.Rows both offer for reading a result.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// sqlStmts runs statements on a database/sql transaction, one at a time.
type sqlStmts struct{ q querier }

func (s sqlStmts) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s sqlStmts) execLater(ctx context.Context, w write) error {
	_, err := s.q.ExecContext(ctx, w.query, w.args...)
	if err != nil && w.mapErr != nil {
		return w.mapErr(err)
	}
	return err
}

// txStmts runs the statements of an Update on SQLite, and remembers the first
// write that failed. SQLite undoes only the statement it refuses (a CHECK, a
// unique key), not the transaction, so a function that swallowed the error and
// returned nil would commit the writes before it; PostgreSQL aborts the whole
// transaction instead. wallet.Tx promises the latter: Update returns failed
// (walletTx in store.go), and nothing of the transaction commits.
type txStmts struct {
	sqlStmts
	failed error
}

var _ stmts = (*txStmts)(nil)

func (s *txStmts) exec(ctx context.Context, query string, args ...any) (int64, error) {
	n, err := s.sqlStmts.exec(ctx, query, args...)
	s.fail(err)
	return n, err
}

func (s *txStmts) execLater(ctx context.Context, w write) error {
	err := s.sqlStmts.execLater(ctx, w)
	s.fail(err) // as mapErr made it: the domain's error, as Update should return it
	return err
}

func (s *txStmts) fail(err error) {
	if s.failed == nil {
		s.failed = err
	}
}

// query runs reads one after another. When the first cannot start, nothing
// has been read: the reads may run again (rerunnable) if the connection was lost.
func (s sqlStmts) query(ctx context.Context, reads ...read) error {
	for i, rd := range reads {
		r, err := s.q.QueryContext(ctx, rd.query, rd.args...)
		if err != nil {
			if i == 0 {
				return rerunnableIfLost(err)
			}
			return err
		}
		if err := scanAll(r, rd.scan); err != nil {
			return err
		}
	}
	return nil
}

func scanAll(r *sql.Rows, scan func(rows) error) error {
	defer r.Close()
	if err := scan(r); err != nil {
		return err
	}
	return r.Err()
}

// row is a read of at most one row, run when it is scanned (like *sql.Row):
// Scan answers sql.ErrNoRows when there is none.
func row(ctx context.Context, s reader, query string, args ...any) scanner {
	return lazyRow{ctx: ctx, s: s, query: query, args: args}
}

type lazyRow struct {
	ctx   context.Context //nolint:containedctx // the call's context, kept until Scan runs it
	s     reader
	query string
	args  []any
}

func (r lazyRow) Scan(dest ...any) error {
	return r.s.query(r.ctx, read{query: r.query, args: r.args, scan: one(func(s scanner) error { return s.Scan(dest...) })})
}
