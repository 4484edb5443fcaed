package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
				_, err := tx.LimitState(ctx, missing, 202601) // any month
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
	for _, op := range ops {
		// pgx pings a connection idle for over a second before handing it
		// out, which would find it closed without walletd's help. A round
		// whose second call comes later than that proves nothing, so it is
		// run again.
		for attempt := 1; ; attempt++ {
			proved, err := closeAndCall(ctx, admin, app, op.call)
			if err != nil {
				t.Errorf("%s: %v", op.name, err)
			}
			if proved || err != nil {
				break
			}
			if attempt == 3 {
				t.Fatalf("%s: the call never came within a second of its connections' use: the test proves nothing", op.name)
			}
		}
	}
}

// closeAndCall calls call, has the server close every connection of app, and
// calls call again. proved is false when the second call came too late for
// its connections to be known closed to walletd alone.
func closeAndCall(ctx context.Context, admin *sql.DB, app string, call func() error) (proved bool, err error) {
	// The pool holds what the first call used (and the batchers theirs); the
	// server closes all of them.
	if err := call(); err != nil {
		return false, fmt.Errorf("before the connections were closed: %w", err)
	}
	used := time.Now()
	closed, err := storetest.TerminateBackends(ctx, admin, app, 5*time.Second)
	if err != nil {
		return false, fmt.Errorf("terminate the pool's connections: %w", err)
	}
	if closed == 0 {
		return false, errors.New("the pool held no connection to close: the test proves nothing")
	}
	late := time.Since(used) > 900*time.Millisecond
	if err := call(); err != nil {
		return false, fmt.Errorf("after the server closed the pool's %d connections: %w", closed, err)
	}
	return !late, nil
}
