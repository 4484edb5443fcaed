package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/store/storetest"
)

// TestBatchReadsProbeKeys: the batchers' reads find their keys through the
// index at any table size, in the generic plan walletd's connections keep.
// Written as "key = ANY($1)", the wallets' read was planned as a scan of the
// whole table up to a few thousand rows, and a plan made then was kept as the
// table grew: on PostgreSQL every payment's initialization paid a read of
// every wallet.
func TestBatchReadsProbeKeys(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	storetest.Open(t, storetest.Engine{Name: "postgres", DSN: func(testing.TB) string { return dsn }})
	raw := storetest.Raw(t, dsn)
	ctx := context.Background()
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`SET plan_cache_mode = force_generic_plan`)
	exec(`INSERT INTO partners (id, name, status, webhook_secret, created_at)
		VALUES ('00000000-0000-4000-8000-000000000001', 'p', 'ACTIVE', '', 0)`)
	exec(`INSERT INTO oauth_clients (id, partner_id, secret_hash, status, created_at)
		VALUES ('c', '00000000-0000-4000-8000-000000000001', '\x00', 'ACTIVE', 0)`)

	rows := 0
	for _, size := range []int{1000, 3000, 30000} {
		add := size - rows
		rows = size
		exec(fmt.Sprintf(`WITH a AS (INSERT INTO accounts (id, kind, balance, created_at)
			SELECT gen_random_uuid(), 'WALLET', 0, 0 FROM generate_series(1, %d) RETURNING id)
			INSERT INTO wallets (id, partner_id, phone, number, identification, status, created_at)
			SELECT id, '00000000-0000-4000-8000-000000000001', md5(id::text), md5(id::text), 0, 'ACTIVE', 0 FROM a`, add))
		exec(fmt.Sprintf(`INSERT INTO oauth_tokens (hash, kind, client_id, partner_id, family_id, created_at, expires_at)
			SELECT sha256(gen_random_uuid()::text::bytea), 'access', 'c', '00000000-0000-4000-8000-000000000001',
			gen_random_uuid(), 0, 0 FROM generate_series(1, %d)`, add))
		exec(`ANALYZE partners, oauth_clients, oauth_tokens, accounts, wallets`)
		for table, q := range store.BatchReads() {
			name := fmt.Sprintf("%s_%d", strings.ReplaceAll(table, "_", ""), size)
			exec(`PREPARE ` + name + ` AS ` + q)
			plan := explain(ctx, t, conn, `EXPLAIN (COSTS OFF) EXECUTE `+name+`('{}')`)
			// Partners and clients are few: a scan of theirs is no matter.
			text := strings.Join(plan, "\n")
			for _, big := range []string{"wallets", "accounts", "oauth_tokens"} {
				if strings.Contains(text, "Seq Scan on "+big) {
					t.Errorf("%s, %d rows: the batch read scans %s:\n%s", table, size, big, text)
				}
			}
		}
	}
}

// explain returns the lines of the plan q prints.
func explain(ctx context.Context, t *testing.T, conn *sql.Conn, q string) []string {
	t.Helper()
	res, err := conn.QueryContext(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer res.Close()
	var plan []string
	for res.Next() {
		var line string
		if err := res.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}
