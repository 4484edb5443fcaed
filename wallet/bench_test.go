package wallet_test

import (
	"context"
	"testing"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/sbp"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

// BenchmarkPayment measures one payment (initialisation and payment) on each
// engine, through the domain and the store: the hot path without HTTP.
func BenchmarkPayment(b *testing.B) {
	for _, e := range storetest.Engines() {
		b.Run(e.Name, func(b *testing.B) {
			ctx := context.Background()
			db := storetest.Open(b, e)
			creds, err := auth.NewService(db.AuthStore(), auth.Config{}).CreatePartner(ctx, "bench", "")
			if err != nil {
				b.Fatal(err)
			}
			svc, err := wallet.NewService(db, wallet.Config{SBP: sbp.NewSandbox("http://wallet.test", 0)})
			if err != nil {
				b.Fatal(err)
			}
			tsp, err := svc.CreateTSP(ctx, creds.PartnerID, "ТСП")
			if err != nil {
				b.Fatal(err)
			}
			w, err := svc.Register(ctx, creds.PartnerID, "9001234567", wallet.Identified)
			if err != nil {
				b.Fatal(err)
			}
			top, err := svc.Refill(ctx, creds.PartnerID, w.ID, 60_000_000, "")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := svc.ConfirmTopUp(ctx, top.QRCID); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				pt, err := svc.InitPayment(ctx, creds.PartnerID, w.ID)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := svc.Pay(ctx, creds.PartnerID, wallet.PaymentRequest{WalletID: w.ID, Token: pt.Token, Amount: 1, TSPID: tsp.ID}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
