package auth_test

import (
	"context"
	"testing"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/store/storetest"
)

// BenchmarkVerify measures what every API call pays to check its access token.
func BenchmarkVerify(b *testing.B) {
	for _, e := range storetest.Engines() {
		b.Run(e.Name, func(b *testing.B) {
			ctx := context.Background()
			db := storetest.Open(b, e)
			svc := auth.NewService(db.AuthStore(), auth.Config{})
			creds, err := svc.CreatePartner(ctx, "bench", "")
			if err != nil {
				b.Fatal(err)
			}
			pair, err := svc.ClientCredentials(ctx, creds.ClientID, creds.ClientSecret, creds.PartnerID.String())
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := svc.Verify(ctx, pair.AccessToken); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
