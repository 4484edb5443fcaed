package store_test

import (
	"testing"

	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/store/storetest"
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
