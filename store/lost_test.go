package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

// TestClosedConnectionsAreReplaced: after the server closes every connection
// of the pool (a restart, a failover, an operator's pg_terminate_backend),
// the next call of each kind succeeds on a new connection instead of failing
// on a dead one, though the pool learns of each dead one only by using it.
func TestClosedConnectionsAreReplaced(t *testing.T) {
	dsn := storetest.PostgresDSN(t) // skips without PostgreSQL
	t.Parallel()
	ctx := context.Background()
	app, named := storetest.WithApplicationName(t, dsn)
	db, err := store.Open(ctx, named, store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	admin := storetest.Raw(t, dsn)

	missing := uuid.New()
	ops := []struct {
		name string
		call func() error
	}{
		{"Update", func() error {
			return db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
				_, err := tx.Wallet(ctx, missing, missing, true)
				return ignoreNotFound(err)
			})
		}},
		{"View", func() error {
			return db.View(ctx, func(ctx context.Context, tx wallet.Tx) error {
				_, err := tx.Overrides(ctx, missing)
				return err
			})
		}},
		{"View's batched wallet read", func() error {
			return db.View(ctx, func(ctx context.Context, tx wallet.Tx) error {
				_, err := tx.Wallet(ctx, missing, missing, false)
				return ignoreNotFound(err)
			})
		}},
		{"batched token check", func() error {
			_, err := db.AuthStore().Grant(ctx, []byte("unknown"))
			if errors.Is(err, auth.ErrNotFound) {
				return nil
			}
			return err
		}},
		{"transaction", func() error {
			err := db.AuthStore().Rotate(ctx, []byte("unknown"), time.Now())
			if errors.Is(err, auth.ErrNotFound) {
				return nil
			}
			return err
		}},
		{"one-row read", func() error { _, err := db.AuthStore().HasPartners(ctx); return err }},
		{"many-row read", func() error { _, err := db.JobStore().PendingAge(ctx, time.Now()); return err }},
		{"statement", func() error { return db.IdempotencyStore().Release(ctx, missing, "key", time.Now()) }},
		{"audit", func() error { _, err := db.Audit(ctx); return err }},
	}
	// pgx pings a connection idle for over a second before handing it out,
	// which would find it closed without walletd's help: each call follows
	// its termination at once, well within that second.
	for _, op := range ops {
		// The pool holds what the call before used (and the batchers
		// theirs); the server now closes all of them.
		if err := op.call(); err != nil {
			t.Fatalf("%s before the connections were closed: %v", op.name, err)
		}
		closed, err := storetest.TerminateBackends(ctx, admin, app, 5*time.Second)
		if err != nil {
			t.Fatalf("terminate the pool's connections: %v", err)
		}
		if closed == 0 {
			t.Fatalf("%s: the pool held no connection to close: the test proves nothing", op.name)
		}
		if err := op.call(); err != nil {
			t.Errorf("%s after the server closed the pool's %d connections: %v", op.name, closed, err)
		}
	}
}
