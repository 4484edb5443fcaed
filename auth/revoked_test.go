package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/store/storetest"
)

// revokedMeanwhile is the real store, but its family is revoked after the
// service read the refresh token and before the exchange: another request
// detected reuse in between.
type revokedMeanwhile struct {
	auth.Store
	at time.Time
}

func (s revokedMeanwhile) Rotate(ctx context.Context, refreshHash []byte, usedAt time.Time, next ...auth.Token) error {
	g, err := s.Grant(ctx, refreshHash)
	if err != nil {
		return err
	}
	if err := s.RevokeFamily(ctx, g.FamilyID, s.at); err != nil {
		return err
	}
	return s.Store.Rotate(ctx, refreshHash, usedAt, next...)
}

// TestRefreshRevokedMeanwhile: a refresh token whose family is revoked while
// it is being exchanged is answered invalid_grant, as a revoked one is, and
// gives no new tokens.
func TestRefreshRevokedMeanwhile(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		f, cr, p := newGrant(t, e, auth.Config{})
		svc := auth.NewService(revokedMeanwhile{Store: f.store, at: f.clock.Now()}, auth.Config{Now: f.clock.Now})
		_, err := svc.Refresh(t.Context(), cr.ClientID, cr.ClientSecret, p.RefreshToken)
		wantOAuth(t, err, auth.InvalidGrant, "refresh of a token revoked meanwhile")
		if _, err := f.svc.Verify(t.Context(), p.AccessToken); err == nil {
			t.Error("the family's access token still verifies")
		}
	})
}
