package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

// ownerRule is one of the schema's rules that keep a history with its
// partner (migration 00005), as each engine words its refusal: PostgreSQL
// names the key that refuses, SQLite gives its trigger's RAISE message.
type ownerRule struct {
	keys    []string // any of them may refuse on PostgreSQL
	trigger string
}

// refusedBy returns nil when err is the refusal of rule r on engine, and
// otherwise says what err is instead: a query that fails for any other reason
// (a typo, a closed handle, a lost connection) is no proof of the rule.
func refusedBy(engine string, err error, r *ownerRule) error {
	if err == nil {
		return errors.New("the database took it")
	}
	switch engine {
	case "postgres":
		var pg *pgconn.PgError
		// 23503: foreign_key_violation.
		if errors.As(err, &pg) && pg.Code == "23503" && slices.Contains(r.keys, pg.ConstraintName) {
			return nil
		}
		return fmt.Errorf("refused with %v, want a foreign key violation of %s", err, strings.Join(r.keys, " or "))
	case "sqlite":
		var lite *sqlite.Error
		// SQLite words a RAISE(ABORT) only in the message; the code says it
		// came from a trigger.
		if errors.As(err, &lite) && lite.Code() == sqlite3.SQLITE_CONSTRAINT_TRIGGER && strings.Contains(lite.Error(), r.trigger) {
			return nil
		}
		return fmt.Errorf("refused with %v, want the trigger's %q", err, r.trigger)
	}
	return fmt.Errorf("no refusal known for engine %s (%v)", engine, err)
}

// TestOwnersStayPut: the schema keeps a history with its partner even against
// a hand in the database behind the service's back. A wallet or TSP with
// operations keeps its partner, and an operation keeps to its wallet's partner
// and its TSP's; a wallet or TSP without operations may still move, so the
// refusals are about the history, not the column.
func TestOwnersStayPut(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		f := newAuditFixture(t, e)
		ctx := context.Background()
		must := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		other, err := auth.NewService(f.db.AuthStore(), auth.Config{}).CreatePartner(ctx, "Другой партнёр", "")
		must("create the other partner", err)
		idleWallet, err := f.svc.Register(ctx, f.partnerID, "9007654321", wallet.Personalized)
		must("register an idle wallet", err)
		othersWallet, err := f.svc.Register(ctx, other.PartnerID, "9001112233", wallet.Personalized)
		must("register the other partner's wallet", err)
		idleTSP, err := f.svc.CreateTSP(ctx, f.partnerID, "Пекарня")
		must("create an idle TSP", err)
		secondTSP, err := f.svc.CreateTSP(ctx, f.partnerID, "Книжная лавка")
		must("create a second TSP", err)
		othersTSP, err := f.svc.CreateTSP(ctx, other.PartnerID, "Чужая лавка")
		must("create the other partner's TSP", err)

		const (
			moveWallet   = `UPDATE wallets SET partner_id = $1 WHERE id = $2`
			moveTSP      = `UPDATE tsps SET partner_id = $1 WHERE id = $2`
			movePartner  = `UPDATE operations SET partner_id = $1 WHERE id = $2`
			moveToWallet = `UPDATE operations SET wallet_id = $1 WHERE id = $2`
			moveToTSP    = `UPDATE operations SET tsp_id = $1 WHERE id = $2`

			walletKey = "operations_wallet_partner_fkey"
			tspKey    = "operations_tsp_partner_fkey"
			opTrigger = "operation of another partner's wallet or TSP"
		)
		var (
			walletKeeps = &ownerRule{[]string{walletKey}, "wallet with operations changes partner"}
			tspKeeps    = &ownerRule{[]string{tspKey}, "TSP with operations changes partner"}
			opToWallet  = &ownerRule{[]string{walletKey}, opTrigger}
			opToTSP     = &ownerRule{[]string{tspKey}, opTrigger}
			// A payment's new partner breaks both of its keys; PostgreSQL
			// names whichever it checks first.
			opToPartner = &ownerRule{[]string{walletKey, tspKey}, opTrigger}
			kept        = (*ownerRule)(nil)
		)
		payment := f.payment.ID
		cases := []struct {
			name      string
			query     string
			to, row   uuid.UUID
			refusedBy *ownerRule // nil: the change is kept
		}{
			{"a wallet with operations moves to another partner", moveWallet, other.PartnerID, f.walletID, walletKeeps},
			{"a TSP with operations moves to another partner", moveTSP, other.PartnerID, f.tspID, tspKeeps},
			{"a payment moves to another partner", movePartner, other.PartnerID, payment, opToPartner},
			{"a payment moves to another partner's wallet", moveToWallet, othersWallet.ID, payment, opToWallet},
			{"a payment moves to another partner's TSP", moveToTSP, othersTSP.ID, payment, opToTSP},
			{"a wallet without operations moves to another partner", moveWallet, other.PartnerID, idleWallet.ID, kept},
			{"a TSP without operations moves to another partner", moveTSP, other.PartnerID, idleTSP.ID, kept},
			{"a payment moves to another wallet of its partner", moveToWallet, idleWallet.ID, payment, kept},
			{"a payment moves to another TSP of its partner", moveToTSP, secondTSP.ID, payment, kept},
		}
		for _, c := range cases {
			// Each change is tried alone and rolled back, so the cases do
			// not see each other's rows.
			tx, err := f.raw.BeginTx(ctx, nil)
			must("begin", err)
			res, err := tx.ExecContext(ctx, c.query, c.to.String(), c.row.String())
			switch {
			case c.refusedBy != nil:
				if err := refusedBy(e.Name, err, c.refusedBy); err != nil {
					t.Errorf("%s: %v", c.name, err)
				}
			case err != nil:
				t.Errorf("%s: refused: %v", c.name, err)
			default:
				if n, err := res.RowsAffected(); err != nil || n != 1 {
					t.Errorf("%s: %d rows changed (%v), want 1", c.name, n, err)
				}
			}
			must("rollback", tx.Rollback())
		}
	})
}
