package store_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

// TestConformance runs the storage suite on every engine: SQLite always,
// PostgreSQL when WALLET_TEST_POSTGRES is set.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) *store.DB { return storetest.Open(t, e) })
	})
}

func TestIsPostgres(t *testing.T) {
	t.Parallel()
	cases := []struct {
		dsn  string
		want bool
	}{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", true},
		{"postgresql://user:pw@db.example:5432/wallet", true},
		{"postgres://", true},
		{"./wallet.db", false},
		{"/var/lib/walletd/wallet.db", false},
		{"wallet.db", false},
		{"postgres", false},
		{"postgres.db", false},
		{"./postgres://wallet.db", false},
		{"file:postgres://x", false},
		{"mysql://root@localhost/wallet", false},
		{"", false},
	}
	for _, c := range cases {
		if got := store.IsPostgres(c.dsn); got != c.want {
			t.Errorf("IsPostgres(%q) = %v, want %v", c.dsn, got, c.want)
		}
	}
}

// TestOpenRefusesOtherDatabases: a DSN meant for another database is refused
// instead of becoming an empty SQLite file named after it, and the refusal
// does not repeat a password it may hold.
func TestOpenRefusesOtherDatabases(t *testing.T) {
	// Not parallel: relative paths are the point, and t.Chdir moves the process.
	dir := t.TempDir()
	t.Chdir(dir)
	for _, dsn := range []string{
		"",
		"postgre://walletd:s3cret@db:5432/walletd", // mistyped scheme
		"mysql://root:s3cret@localhost/wallet",
		"host=db user=walletd password=s3cret dbname=walletd",
		"dbname=walletd",
	} {
		_, err := store.Open(context.Background(), dsn, store.Options{})
		if err == nil {
			t.Errorf("Open(%q) opened an SQLite database", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q): the error repeats the password: %v", dsn, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the refused DSNs left %d file(s) behind", len(entries))
	}
	// Paths stay paths, whatever their names hold.
	if err := os.Mkdir("v=2", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"wallet.db", "./v=2/wallet.db", "wallet.v1=old.db"} {
		db, err := store.Open(context.Background(), path, store.Options{})
		if err != nil {
			t.Errorf("Open(%q): %v", path, err)
			continue
		}
		db.Close()
	}
}

// TestNoWaitInsideThePool: on PostgreSQL every read and transaction of the
// store takes its turn at the gate, so however many callers there are, none
// waits for a connection inside database/sql, where the next one is handed
// out at random. A path that bypassed the gate would show as pool waits here.
func TestNoWaitInsideThePool(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skip(storetest.PostgresEnv + " not set (SQLite has no gate: one writer, in-process reads)")
	}
	t.Parallel()
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.PostgresDSN(t), store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	missing := uuid.New()
	ops := map[string]func() error{
		"Update": func() error {
			return db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
				_, err := tx.Wallet(ctx, missing, missing, true)
				return ignoreNotFound(err)
			})
		},
		"View": func() error {
			return db.View(ctx, func(ctx context.Context, tx wallet.Tx) error {
				_, err := tx.LimitState(ctx, missing, 202601) // any month
				return err
			})
		},
		"Audit":       func() error { _, err := db.Audit(ctx); return err },
		"row":         func() error { _, err := db.AuthStore().HasPartners(ctx); return err },
		"rows":        func() error { _, err := db.JobStore().PendingAge(ctx, time.Now()); return err },
		"webhook row": func() error { _, err := db.WebhookStore().Event(ctx, missing); return ignoreNotFound(err) },
		"exec":        func() error { return db.IdempotencyStore().Release(ctx, missing, "key", time.Now()) },
	}
	var wg sync.WaitGroup
	for name, op := range ops {
		for range 4 {
			wg.Go(func() {
				for range 25 {
					if err := op(); err != nil {
						t.Errorf("%s: %v", name, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for name, pool := range db.Pools() {
		if s := pool.Stats(); s.WaitCount != 0 {
			t.Errorf("pool %s: %d waits for a connection (%s) with %d callers at a gate of 2", name, s.WaitCount, s.WaitDuration, 4*len(ops))
		}
	}
}

func ignoreNotFound(err error) error {
	if errors.Is(err, wallet.ErrNotFound) {
		return nil
	}
	return err
}
