package procs

import (
	"database/sql"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/perspektiva/walletd/client"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	_ "modernc.org/sqlite"             // the "sqlite" driver
)

// OpenDB opens the database behind dsn (a postgres:// URL or an SQLite file)
// for read-only inspection of what the API does not show, such as the ledger
// and the webhook outbox. It is closed when the test ends.
func OpenDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	var (
		db  *sql.DB
		err error
	)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err = sql.Open("pgx", dsn)
	} else {
		q := url.Values{"_pragma": {"busy_timeout(10000)", "query_only(1)"}}
		db, err = sql.Open("sqlite", dsn+"?"+q.Encode())
	}
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	db.SetMaxOpenConns(2)
	t.Cleanup(func() { db.Close() })
	return db
}

// NewClient returns an SDK client of the walletd at baseURL for tests that
// restart the service or lose its database: short pauses between its own
// retries, and a per-attempt timeout above the 10 s a request waits for a
// concurrent one with its Idempotency-Key. transport, when not nil, carries
// its requests (a test's recorder); retries is how often the SDK itself tries
// again.
func NewClient(t testing.TB, baseURL string, creds client.Credentials, transport http.RoundTripper, retries int) *client.Client {
	t.Helper()
	hc := &http.Client{Transport: transport, Timeout: 20 * time.Second}
	c, err := client.New(baseURL, creds, client.WithHTTPClient(hc), client.WithRetries(retries), client.WithBackoff(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
