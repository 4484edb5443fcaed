package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// pipeline runs one PostgreSQL transaction with as few round trips as it can:
// BEGIN travels with the first statement, and writes sent with execLater wait
// and travel with the next read or with COMMIT, joined into as few statements
// as they may be (joinWrites). A payment that took fourteen
// round trips takes a handful, and each saved one was CPU on both ends of the
// socket (the profiles showed a third of walletd's time in write syscalls).
//
// Only writes whose failure PostgreSQL itself reports (a constraint, a lost
// race) may wait: PostgreSQL skips the rest of a batch after an error, so a
// COMMIT queued behind a failed write never runs. A write whose outcome must
// be checked by the caller (rows changed) goes through exec, at once.
//
// A read-only pipeline sends its reads without BEGIN and COMMIT, each round
// trip on its own: at READ COMMITTED every statement reads its own snapshot
// anyway, so the transaction would guard nothing but writes, and those are
// refused here before anything is sent. A read costs one statement, not three.
type pipeline struct {
	conn     *pgx.Conn
	readOnly bool
	begin    string // the BEGIN statement, until it is sent
	sent     bool   // BEGIN has been sent: ROLLBACK or COMMIT must end the transaction
	pending  []write
	// failed is the error of the statement at which PostgreSQL aborted the
	// transaction, as the caller got it: commit returns it, not COMMIT's
	// ROLLBACK, if fn went on without it (txStmts does the same on SQLite).
	failed error
}

var _ stmts = (*pipeline)(nil)

// errReadOnly refuses a write in a read-only pipeline.
var errReadOnly = errors.New("store: write in a read-only transaction")

func (p *pipeline) exec(ctx context.Context, query string, args ...any) (int64, error) {
	if p.readOnly {
		return 0, errReadOnly
	}
	var n int64
	err := p.roundTrip(ctx, batchItem{query: query, args: args, result: func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		n = tag.RowsAffected()
		return err
	}})
	return n, err
}

func (p *pipeline) execLater(_ context.Context, w write) error {
	if p.readOnly {
		return errReadOnly
	}
	p.pending = append(p.pending, w)
	return nil
}

func (p *pipeline) query(ctx context.Context, reads ...read) error {
	items := make([]batchItem, len(reads))
	for i, rd := range reads {
		items[i] = batchItem{query: rd.query, args: rd.args, result: func(br pgx.BatchResults) error {
			r, err := br.Query()
			if err != nil {
				return err
			}
			defer r.Close()
			if err := rd.scan(r); err != nil {
				return err
			}
			r.Close()
			return r.Err()
		}}
	}
	return p.roundTrip(ctx, items...)
}

// batchItem is a statement of a round trip and the reader of its result.
type batchItem struct {
	query  string
	args   []any
	result func(pgx.BatchResults) error
}

// roundTrip sends BEGIN (if not sent yet), the waiting writes and items in one
// batch, and reads their results.
func (p *pipeline) roundTrip(ctx context.Context, items ...batchItem) error {
	b := &pgx.Batch{}
	beginning := p.begin != ""
	if beginning {
		b.Queue(p.begin)
		p.begin, p.sent = "", true
	}
	writes := joinWrites(p.pending)
	p.pending = nil
	for _, w := range writes {
		b.Queue(w.query, pgArgs(w.args)...)
	}
	for _, it := range items {
		b.Queue(it.query, pgArgs(it.args)...)
	}
	br := p.conn.SendBatch(ctx, b)
	err := p.results(br, beginning, writes, items)
	// Close repeats the error results met, if any: one is enough.
	cerr := br.Close()
	if err == nil {
		err = cerr
	}
	if cerr != nil && p.failed == nil && p.conn.PgConn().TxStatus() == 'E' {
		// Close's error is the statement's (results' may be a scan's), and
		// the writes' mapErr make it the domain's, as results does.
		p.failed = cerr
		for _, w := range writes {
			if w.mapErr != nil {
				p.failed = w.mapErr(p.failed)
			}
		}
	}
	return err
}

func (p *pipeline) results(br pgx.BatchResults, beginning bool, writes []write, items []batchItem) error {
	if beginning {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	for _, w := range writes {
		if _, err := br.Exec(); err != nil {
			if w.mapErr != nil {
				return w.mapErr(err)
			}
			return err
		}
	}
	for _, it := range items {
		if err := it.result(br); err != nil {
			return err
		}
	}
	return nil
}

// commitTimeout bounds COMMIT's round trip, which no cancellation cuts short.
const commitTimeout = 10 * time.Second

// commit sends the waiting writes and COMMIT together.
//
// They travel on a context of their own: once fn has returned nil, the
// client's going away or its deadline must not cut the round trip short. pgx
// would drop the connection with COMMIT in flight, and the transaction's
// outcome would be unknown (it may have committed), where SQLite's committer
// lets queued work run to its end. A server that does not answer within
// commitTimeout leaves it unknown all the same.
func (p *pipeline) commit(ctx context.Context) error {
	if p.failed != nil {
		// PostgreSQL aborted the transaction at a statement fn went on
		// without: COMMIT would only roll it back. Its caller rolls back.
		return p.failed
	}
	if len(p.pending) == 0 && !p.sent {
		return nil // nothing was sent: there is no transaction to end
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	return p.roundTrip(ctx, batchItem{query: "COMMIT", result: func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		if err == nil && tag.String() != "COMMIT" {
			// PostgreSQL answers COMMIT of a failed transaction with ROLLBACK.
			err = fmt.Errorf("store: transaction rolled back at commit (%s)", tag)
		}
		return err
	}})
}

// rollback ends a transaction that was begun; the connection is closed when
// that fails, so the pool never hands out one still inside a transaction.
func (p *pipeline) rollback(ctx context.Context) {
	if !p.sent {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := p.conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = p.conn.Close(ctx)
	}
}

// pipelined runs fn in a transaction on a pooled PostgreSQL connection, through
// pgx directly: database/sql sends every statement on its own.
func (db *DB) pipelined(ctx context.Context, fn func(context.Context, *pipeline) error) error {
	return db.withConn(ctx, func(conn *pgx.Conn) error {
		p := &pipeline{conn: conn, begin: "BEGIN"}
		returned := false
		defer func() {
			if !returned {
				// fn panicked: the transaction ends before the panic goes on,
				// so none of its locks outlives it (withConn's connection is
				// then discarded).
				p.rollback(ctx)
			}
		}()
		// Before COMMIT nothing took effect: fn may run again (DB.retry).
		err := rerunnableIfLost(fn(ctx, p))
		returned = true
		if err == nil {
			err = p.commit(ctx) // a lost COMMIT may have taken effect: not run again
		}
		if err != nil {
			p.rollback(ctx)
		}
		if conn.PgConn().TxStatus() != 'I' && !conn.IsClosed() {
			// Never hand back a connection inside a transaction.
			_ = conn.Close(context.WithoutCancel(ctx))
		}
		return err
	})
}

// withConn lends fn a pooled PostgreSQL connection, in its turn at the gate.
// If fn panics, the panic goes on, and the connection is closed rather than
// given back to the pool (sql.Conn.Raw discards it).
func (db *DB) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	if err := db.gate.enter(ctx); err != nil {
		return err
	}
	defer db.gate.leave()
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store: pgx call on a %T connection", dc)
		}
		return fn(sc.Conn())
	})
}

// pgReads runs a View's reads on PostgreSQL: each call to query takes a
// connection for one round trip and gives it back, so a View holds none while
// its caller works between reads, or waits for a batcher.
type pgReads struct{ db *DB }

var _ stmts = pgReads{}

func (r pgReads) query(ctx context.Context, reads ...read) error {
	err := r.db.withConn(ctx, func(conn *pgx.Conn) error {
		return (&pipeline{conn: conn, readOnly: true}).query(ctx, reads...)
	})
	return rerunnableIfLost(err) // a View may run again (DB.retry)
}

func (pgReads) exec(context.Context, string, ...any) (int64, error) { return 0, errReadOnly }

func (pgReads) execLater(context.Context, write) error {
	return errReadOnly
}

// pgArgs passes UUIDs to pgx as the 16 bytes it encodes directly: through
// uuid.UUID's driver.Valuer each one became a string and was parsed back, a
// sixth of walletd's CPU in payment profiles. The caller's slice is left as it
// is (a query may reuse its arguments).
func pgArgs(args []any) []any {
	var out []any
	for i, a := range args {
		if id, ok := a.(uuid.UUID); ok {
			if out == nil {
				out = append([]any(nil), args...)
			}
			out[i] = [16]byte(id)
		}
	}
	if out == nil {
		return args
	}
	return out
}
