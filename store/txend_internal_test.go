package store

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// TestPanicEndsSQLTransaction: a panic in the function of a database/sql
// transaction (inTx, PostgreSQL) goes on to the caller, and the transaction
// is ended first: the lock it took is free for the next one at once.
func TestPanicEndsSQLTransaction(t *testing.T) {
	db, _ := openTestPostgres(t, Options{MaxConns: 2})
	t.Parallel()
	ctx := context.Background()
	key := rand.Int64() //nolint:gosec // a lock's name, not a secret
	lock := func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, key)
		return err
	}
	for attempt := range 3 { // more than the gate's width: no turn is left taken
		panicked := func() (v any) {
			defer func() { v = recover() }()
			_ = db.inTx(ctx, db.write, nil, func(ctx context.Context, tx *sql.Tx) error {
				if err := lock(ctx, tx); err != nil {
					return err
				}
				panic("boom")
			})
			return nil
		}()
		if panicked != "boom" {
			t.Fatalf("attempt %d: recovered %v, want the function's panic", attempt, panicked)
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := db.inTx(lctx, db.write, nil, lock)
		cancel()
		if err != nil {
			t.Fatalf("attempt %d: taking the lock after a panic: %v", attempt, err)
		}
	}
}

// TestPanicEndsPipelinedTransaction: the same for a pipelined transaction
// (every wallet Update on PostgreSQL), with the panic's value intact: by
// the time the panic reaches the caller the lock is free. (pipelined rolls
// back itself; sql.Conn.Raw would also close the connection, which ends the
// transaction as soon as the server notices.)
func TestPanicEndsPipelinedTransaction(t *testing.T) {
	db, _ := openTestPostgres(t, Options{MaxConns: 2})
	t.Parallel()
	ctx := context.Background()
	key := rand.Int64() //nolint:gosec // a lock's name, not a secret
	lock := func(ctx context.Context, p *pipeline) error {
		var ok string
		return p.query(ctx, read{query: `SELECT pg_advisory_xact_lock($1)::text`, args: []any{key},
			scan: one(func(r scanner) error { return r.Scan(&ok) })})
	}
	free := func() bool {
		t.Helper()
		var ok bool
		err := db.pipelined(ctx, func(ctx context.Context, p *pipeline) error {
			return p.query(ctx, read{query: `SELECT pg_try_advisory_xact_lock($1)`, args: []any{key},
				scan: one(func(r scanner) error { return r.Scan(&ok) })})
		})
		if err != nil {
			t.Fatalf("trying the lock: %v", err)
		}
		return ok
	}
	for attempt := range 3 {
		panicked := func() (v any) {
			defer func() { v = recover() }()
			_ = db.pipelined(ctx, func(ctx context.Context, p *pipeline) error {
				if err := lock(ctx, p); err != nil {
					return err
				}
				panic("boom")
			})
			return nil
		}()
		if panicked != "boom" {
			t.Fatalf("attempt %d: recovered %v, want the function's panic", attempt, panicked)
		}
		if !free() {
			t.Fatalf("attempt %d: the lock of the panicked transaction is still held", attempt)
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := db.pipelined(lctx, lock)
		cancel()
		if err != nil {
			t.Fatalf("attempt %d: taking the lock after a panic: %v", attempt, err)
		}
	}
}

// TestCommitterCloseWaitsForBatch: close returns only once the batch that is
// running has ended, so DB.Close never closes statements or the pool under it.
func TestCommitterCloseWaitsForBatch(t *testing.T) {
	t.Parallel()
	pool, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	c := newCommitter(pool, nil)
	started, release := make(chan struct{}), make(chan struct{})
	ran := make(chan error, 1)
	go func() {
		ran <- c.run(context.Background(), func(tx *sql.Tx) error {
			close(started)
			<-release
			_, err := tx.Exec(`CREATE TABLE t (x INTEGER)`)
			return err
		})
	}()
	<-started
	closed := make(chan struct{})
	go func() {
		c.close()
		close(closed)
	}()
	select {
	case <-closed:
		close(release)
		t.Fatal("close returned while a batch was running")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return after the batch ended")
	}
	if err := <-ran; err != nil {
		t.Fatalf("the batch that ran during close: %v", err)
	}
}
