// Package storetest provides fresh databases on every engine for tests, and the
// conformance suite that every engine must pass.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for schema setup

	"github.com/perspektiva/walletd/store"
)

// PostgresEnv names the variable that points tests at a PostgreSQL server where
// they may create schemas. Tests that need PostgreSQL skip only when it is unset.
const PostgresEnv = "WALLET_TEST_POSTGRES"

// Engine is a database engine the tests run on.
type Engine struct {
	Name string
	// DSN returns the address of a new, empty database that is removed when t ends.
	DSN func(t testing.TB) string
}

// Engines returns SQLite always and PostgreSQL when WALLET_TEST_POSTGRES is set.
func Engines() []Engine {
	engines := []Engine{{Name: "sqlite", DSN: SQLiteDSN}}
	if os.Getenv(PostgresEnv) != "" {
		engines = append(engines, Engine{Name: "postgres", DSN: PostgresDSN})
	}
	return engines
}

// ForEach runs fn as a subtest on every engine.
func ForEach(t *testing.T, fn func(t *testing.T, e Engine)) {
	t.Helper()
	for _, e := range Engines() {
		t.Run(e.Name, func(t *testing.T) { fn(t, e) })
	}
}

// SQLiteDSN returns the path of a new SQLite file in the test's temp directory.
func SQLiteDSN(t testing.TB) string {
	return filepath.Join(t.TempDir(), "wallet.db")
}

// PostgresDSN creates a schema of its own on the server named by
// WALLET_TEST_POSTGRES and returns a URL whose search_path points there, so
// tests run in parallel without seeing each other. It skips when the variable is unset.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skip(PostgresEnv + " is not set")
	}
	schema := uniqueName("walletd_test_")

	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", PostgresEnv, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})

	return withParam(t, base, "search_path", schema)
}

// uniqueName is prefix and 12 random hex digits.
func uniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// withParam returns the URL dsn with the query parameter key set to value.
func withParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", dsn, err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens and migrates a fresh database of engine e, closed when t ends.
func Open(t testing.TB, e Engine) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, e.DSN(t), store.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", e.Name, err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", e.Name, err)
	}
	return db
}

// Raw opens dsn with the bare driver, for tests that reach past the store
// (damaging a row on purpose, say); it is closed when the test ends.
func Raw(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	driver, rawDSN := "sqlite", dsn+"?_pragma=busy_timeout(10000)"
	if store.IsPostgres(dsn) {
		driver, rawDSN = "pgx", dsn
	}
	raw, err := sql.Open(driver, rawDSN)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	return raw
}

// WithApplicationName returns a name unique to the test and dsn with it as
// the connections' application_name: the server backends of one test, picked
// out among those of tests running beside it on the same server.
func WithApplicationName(t testing.TB, dsn string) (app, named string) {
	t.Helper()
	app = uniqueName("walletd-test-")
	return app, withParam(t, dsn, "application_name", app)
}

// TerminateBackends ends every server backend whose application_name is app,
// waiting up to wait for each to be gone (0: not at all, as an operator's
// sweep would), and returns how many it ended. db is a connection of the
// test's own (Raw), which is never among them.
func TerminateBackends(ctx context.Context, db *sql.DB, app string, wait time.Duration) (int, error) {
	var n int
	// The call sits in the select list, so it runs only for the rows the
	// WHERE keeps (in a WHERE, the planner may call it first).
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM (
		SELECT pg_terminate_backend(pid, $2) AS ended FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()) t
		WHERE ended`, app, wait.Milliseconds()).Scan(&n)
	return n, err
}
