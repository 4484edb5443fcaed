package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/store/storetest"
)

// TestRevokeFamilyDuringRotation: a refresh token's family revoked while an
// exchange of one of its tokens is in flight (a thief refreshing as the
// partner's reuse is detected) loses no token: the pair that exchange adds is
// revoked with the rest. On PostgreSQL the revocation must wait the exchange
// out and then see its tokens; the exchange is held open here at the point
// where a Rotate transaction has marked its token used and inserted the new
// pair.
func TestRevokeFamilyDuringRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	db := storetest.Open(t, storetest.Engine{Name: "postgres", DSN: func(testing.TB) string { return dsn }})
	svc := auth.NewService(db.AuthStore(), auth.Config{})
	creds, err := svc.CreatePartner(ctx, "Партнёр", "")
	if err != nil {
		t.Fatal(err)
	}
	first, err := svc.ClientCredentials(ctx, creds.ClientID, creds.ClientSecret, creds.PartnerID.String())
	if err != nil {
		t.Fatal(err)
	}
	old, err := db.AuthStore().Grant(ctx, auth.Hash(first.RefreshToken))
	if err != nil {
		t.Fatal(err)
	}

	// The exchange, as Rotate runs it, stopped before its COMMIT.
	raw := storetest.Raw(t, dsn)
	rotation, err := raw.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rotation.Rollback() }()
	now := time.Now()
	if _, err := rotation.ExecContext(ctx, `UPDATE oauth_tokens SET used_at = $1 WHERE hash = $2`,
		now.UnixMicro(), auth.Hash(first.RefreshToken)); err != nil {
		t.Fatal(err)
	}
	fresh := [][]byte{auth.Hash("wat_fresh-access"), auth.Hash("wrt_fresh-refresh")}
	for i, kind := range []string{"access", "refresh"} {
		if _, err := rotation.ExecContext(ctx, `INSERT INTO oauth_tokens
			(hash, kind, client_id, partner_id, family_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			fresh[i], kind, creds.ClientID, creds.PartnerID, old.FamilyID, now.UnixMicro(), now.Add(time.Hour).UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}

	revoked := make(chan error, 1)
	go func() { revoked <- db.AuthStore().RevokeFamily(ctx, old.FamilyID, time.Now()) }()
	// Commit only once the revocation waits on the exchanged token's row, so
	// that it has begun before the exchange ends, as in the race.
	waitForLockWait(t, raw)
	if err := rotation.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-revoked; err != nil {
		t.Fatalf("RevokeFamily: %v", err)
	}
	for i, h := range fresh {
		g, err := db.AuthStore().Grant(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if g.RevokedAt.IsZero() {
			t.Errorf("the exchange's new %s token survived its family's revocation", []string{"access", "refresh"}[i])
		}
	}
}

// waitForLockWait returns once a session waits for a lock in a statement on a
// token family: the revocation (the database is shared with other tests).
func waitForLockWait(t *testing.T, raw *sql.DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := raw.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'
			AND query LIKE '%oauth_tokens%family_id%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no session waited for a lock within 10 s")
}
