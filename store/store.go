// Package store keeps walletd's data in SQL: embedded SQLite (pure Go) or
// PostgreSQL. Both engines run the same queries; the few differences (row locks,
// error codes, pools) live in an engine value, and the schema is migrated per
// dialect from embedded files.
package store

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/wallet"
)

// DB is an open walletd database.
type DB struct {
	// SQLite: the writer's pool, of two connections (sqlite.go). The
	// committer runs the write transactions, one at a time, on one of them;
	// the other lets statements be prepared meanwhile, and serves the
	// checkpointer's passive checkpoints. PostgreSQL: the pool.
	write *sql.DB
	read  *sql.DB // SQLite: a pool of read-only connections; PostgreSQL: same as write
	eng   engine
	// Prepared statements of the writer and the readers (SQLite only; nil on
	// PostgreSQL, where pgx caches statements itself).
	writeStmts, readStmts *stmtCache
	// committer runs SQLite's write transactions, batched (nil on PostgreSQL).
	committer *committer
	// checkpoint keeps SQLite's write-ahead log short (nil on PostgreSQL).
	checkpoint *checkpointer
	// gate hands out PostgreSQL's connections in order (nil on SQLite).
	gate *gate
	// grants reads access tokens' grants in batches (nil on SQLite, whose
	// reads cost no round trip).
	grants *batcher[string, auth.Grant]
	// wallets reads wallets for Views in batches (nil on SQLite).
	wallets *batcher[uuid.UUID, wallet.Wallet]
}

// Options tune Open.
type Options struct {
	// MaxConns is how many PostgreSQL connections the store's reads and
	// transactions hold at once (the gate's width); the pool opens two more,
	// one for each batcher (postgres.go). On SQLite it caps the read-only
	// connections. 0 picks a default.
	MaxConns int
}

// Open connects to dsn: a postgres:// or postgresql:// URL opens PostgreSQL, anything
// else is the path of an SQLite file (created when missing). It does not migrate.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	var (
		db  *DB
		err error
	)
	switch {
	case IsPostgres(dsn):
		db, err = openPostgres(dsn, opts) //nolint:contextcheck // the batchers outlive any request
	default:
		if err := checkSQLitePath(dsn); err != nil {
			return nil, err
		}
		db, err = openSQLite(dsn, opts) //nolint:contextcheck // the SQLite committer outlives any request
	}
	if err != nil {
		return nil, err
	}
	if err := db.write.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", db.eng.name, err)
	}
	return db, nil
}

// IsPostgres reports whether dsn names a PostgreSQL server.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// checkSQLitePath refuses, rather than creating an empty wallet database
// named after it, a DSN meant for another database: a URL of another scheme
// (a mistyped postgres://) or a key=value connection string. The error names
// no more of it than its form, as it may hold a password.
func checkSQLitePath(dsn string) error {
	const want = "want a file path (SQLite) or a postgres:// URL"
	if dsn == "" {
		return errors.New("store: no database given: " + want)
	}
	if scheme, _, ok := strings.Cut(dsn, "://"); ok {
		return fmt.Errorf("store: a %q URL: %s", scheme, want)
	}
	if key, _, ok := strings.Cut(dsn, "="); ok && !strings.ContainsAny(key, `/\.`) {
		return fmt.Errorf("store: a connection string (%s=...): %s", key, want)
	}
	return nil
}

// Engine is "sqlite" or "postgres".
func (db *DB) Engine() string { return db.eng.name }

// Close releases the connections.
func (db *DB) Close() error {
	if db.grants != nil {
		db.grants.close()
		db.wallets.close()
	}
	if db.committer != nil {
		db.committer.close()
		db.checkpoint.stop()
	}
	if db.writeStmts != nil {
		db.writeStmts.close()
		db.readStmts.close()
	}
	err := db.write.Close()
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
	}
	if db.checkpoint != nil {
		err = errors.Join(err, db.checkpoint.release())
	}
	return err
}

// Ping checks that the database answers (readiness).
func (db *DB) Ping(ctx context.Context) error { return db.write.PingContext(ctx) }

// maxAttempts bounds retries of a transaction that lost a serialization race.
const maxAttempts = 10

// inTx runs fn in a transaction on pool, retrying on serialization failures,
// deadlocks and busy errors with jittered backoff. fn runs its statements with
// the context it is given, which is not always ctx (see tryTx).
func (db *DB) inTx(ctx context.Context, pool *sql.DB, opts *sql.TxOptions, fn func(context.Context, *sql.Tx) error) error {
	return db.retry(ctx, func() error { return db.tryTx(ctx, pool, opts, fn) })
}

// retry runs a transaction again, with jittered backoff, while it fails on a
// serialization failure, a deadlock or a busy database, and at once (again)
// while it fails on a lost connection before its COMMIT was sent.
func (db *DB) retry(ctx context.Context, try func() error) error {
	for attempt := 1; ; attempt++ {
		err := db.again(ctx, try)
		if err == nil || attempt == maxAttempts || !db.eng.retryable(err) {
			return err
		}
		backoff := time.Duration(attempt*attempt) * time.Millisecond
		backoff += rand.N(backoff) //nolint:gosec // jitter, not security
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
	}
}

func (db *DB) tryTx(ctx context.Context, pool *sql.DB, opts *sql.TxOptions, fn func(context.Context, *sql.Tx) error) error {
	if db.committer != nil && pool == db.write {
		// A cancelled statement interrupts SQLite, which then aborts the whole
		// shared transaction: once queued, a request's work runs to its end.
		work := context.WithoutCancel(ctx)
		return db.committer.run(ctx, func(tx *sql.Tx) error { return fn(work, tx) })
	}
	if err := db.gate.enter(ctx); err != nil {
		return err
	}
	defer db.gate.leave()
	tx, err := pool.BeginTx(ctx, opts)
	if err != nil {
		return rerunnableIfLost(err)
	}
	// Rolls back when fn fails, and when it panics, before the panic goes on:
	// neither the transaction, nor its locks, nor its connection outlive it.
	// After Commit it does nothing.
	defer func() { _ = tx.Rollback() }()
	if err := fn(ctx, tx); err != nil {
		return rerunnableIfLost(err) // fn may run again (inTx's contract)
	}
	return tx.Commit() // a lost COMMIT may have taken effect: not run again
}

// Update runs fn in a read-write transaction (wallet.Store).
func (db *DB) Update(ctx context.Context, fn func(context.Context, wallet.Tx) error) error {
	return db.walletTx(ctx, false, fn)
}

// View runs fn's reads (wallet.Store), each on its own: SQLite's in autocommit
// on a reader connection, PostgreSQL's without BEGIN and COMMIT (see pipeline).
func (db *DB) View(ctx context.Context, fn func(context.Context, wallet.Tx) error) error {
	return db.walletTx(ctx, true, fn)
}

func (db *DB) walletTx(ctx context.Context, readOnly bool, fn func(context.Context, wallet.Tx) error) error {
	if db.eng.pipelines {
		if readOnly {
			return db.retry(ctx, func() error {
				return fn(ctx, &walletTx{q: pgReads{db}, eng: &db.eng, wallets: db.wallets, view: true})
			})
		}
		return db.retry(ctx, func() error {
			return db.pipelined(ctx, func(ctx context.Context, p *pipeline) error {
				return fn(ctx, &walletTx{q: p, eng: &db.eng})
			})
		})
	}
	if readOnly {
		// View promises committed data, not one snapshot (wallet.Store): each
		// read runs on its own, as on PostgreSQL, and a one-read View costs one
		// statement instead of BEGIN, the read and COMMIT.
		return db.retry(ctx, func() error {
			return fn(ctx, &walletTx{q: sqlStmts{db.readStmts}, eng: &db.eng, view: true})
		})
	}
	return db.inTx(ctx, db.write, nil, func(ctx context.Context, tx *sql.Tx) error {
		q := &txStmts{sqlStmts: sqlStmts{db.querier(tx, db.writeStmts)}}
		if err := fn(ctx, &walletTx{q: q, eng: &db.eng}); err != nil {
			return err
		}
		// A write SQLite refused fails the transaction as a whole, even if fn
		// went on without it (txStmts): the committer then rolls back to the
		// request's savepoint, and the pipeline does the same on PostgreSQL.
		return q.failed
	})
}

// exec runs one write statement. On SQLite it is queued with the write
// transactions (a statement beside them could wait on SQLite's lock while
// holding the connection a transaction needs to prepare its statements).
//
// On PostgreSQL it takes its turn at the gate, and runs again on a lost
// connection (lost.go): every caller's statement has the same effect twice (it
// sets given values, deletes, or inserts what is missing). Without that, an
// idempotency claim whose release met a closed connection would hold its key
// for the whole lease, and the partner's retry would wait it out. A statement
// that did take effect before its answer was lost runs on what changed in
// between; idempotency claims are named by their time, so only a job's
// rescheduling can then clear a lease taken meanwhile, and job handlers are
// idempotent.
func (db *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if db.writeStmts == nil {
		var res sql.Result
		err := db.again(ctx, func() (err error) {
			res, err = db.execPooled(ctx, query, args...)
			return rerunnableIfLost(err)
		})
		return res, err
	}
	var res sql.Result
	err := db.inTx(ctx, db.write, nil, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		res, err = db.querier(tx, db.writeStmts).ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

func (db *DB) execPooled(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := db.gate.enter(ctx); err != nil {
		return nil, err
	}
	defer db.gate.leave()
	return db.write.ExecContext(ctx, query, args...)
}

// querier runs tx's statements prepared where the engine benefits.
func (db *DB) querier(tx *sql.Tx, cache *stmtCache) querier {
	if cache == nil {
		return tx
	}
	return cachedTx{tx: tx, cache: cache}
}

// Unavailable reports whether err means the database could not be reached, as
// opposed to a query that failed: the API answers 503 for these.
func (db *DB) Unavailable(err error) bool { return db.eng.unavailable(err) }

// micros and fromMicros convert times to the schema's BIGINT microseconds (UTC).
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(t), Valid: true}
}

func fromNullMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMicros(n.Int64)
}

// Pools names the connection pools, for their metrics.
func (db *DB) Pools() map[string]*sql.DB {
	if db.read == db.write {
		return map[string]*sql.DB{"main": db.write}
	}
	return map[string]*sql.DB{"write": db.write, "read": db.read}
}

// ServiceKey returns the service's own secret of that name, generating it the
// first time (concurrent first calls of several nodes agree on one).
func (db *DB) ServiceKey(ctx context.Context, name string, size int) ([]byte, error) {
	fresh := make([]byte, size)
	if _, err := crand.Read(fresh); err != nil {
		return nil, err
	}
	if _, err := db.exec(ctx, `INSERT INTO service_keys (name, value, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO NOTHING`, name, fresh, micros(time.Now())); err != nil {
		return nil, err
	}
	var key []byte
	err := db.write.QueryRowContext(ctx, `SELECT value FROM service_keys WHERE name = $1`, name).Scan(&key)
	return key, err
}
