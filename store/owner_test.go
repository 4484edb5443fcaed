package store_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

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
			moveWallet    = `UPDATE wallets SET partner_id = $1 WHERE id = $2`
			moveTSP       = `UPDATE tsps SET partner_id = $1 WHERE id = $2`
			movePartner   = `UPDATE operations SET partner_id = $1 WHERE id = $2`
			moveToWallet  = `UPDATE operations SET wallet_id = $1 WHERE id = $2`
			moveToTSP     = `UPDATE operations SET tsp_id = $1 WHERE id = $2`
			refused, kept = true, false
		)
		payment := f.payment.ID
		cases := []struct {
			name    string
			query   string
			to, row uuid.UUID
			refused bool
		}{
			{"a wallet with operations moves to another partner", moveWallet, other.PartnerID, f.walletID, refused},
			{"a TSP with operations moves to another partner", moveTSP, other.PartnerID, f.tspID, refused},
			{"a payment moves to another partner", movePartner, other.PartnerID, payment, refused},
			{"a payment moves to another partner's wallet", moveToWallet, othersWallet.ID, payment, refused},
			{"a payment moves to another partner's TSP", moveToTSP, othersTSP.ID, payment, refused},
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
			case c.refused && err == nil:
				t.Errorf("%s: the database took it", c.name)
			case !c.refused && err != nil:
				t.Errorf("%s: refused: %v", c.name, err)
			case !c.refused:
				if n, err := res.RowsAffected(); err != nil || n != 1 {
					t.Errorf("%s: %d rows changed (%v), want 1", c.name, n, err)
				}
			}
			must("rollback", tx.Rollback())
		}
	})
}
