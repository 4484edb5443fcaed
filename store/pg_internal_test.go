package store

import (
	"context"
	"os"
	"testing"
)

// openTestPostgres opens a store on the server WALLET_TEST_POSTGRES names,
// closed when the test ends, and returns it with that DSN. It skips the test
// when the variable is unset. (The internal tests cannot use storetest, which
// imports this package.)
func openTestPostgres(t *testing.T, opts Options) (*DB, string) {
	t.Helper()
	dsn := os.Getenv("WALLET_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("WALLET_TEST_POSTGRES is not set")
	}
	db, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dsn
}
