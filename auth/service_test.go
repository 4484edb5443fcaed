package auth_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/store/storetest"
)

// testClock is a settable time source for auth.Config.Now.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type authFixture struct {
	svc   *auth.Service
	store auth.Store
	clock *testClock
}

// newFixture returns a Service over a fresh SQLite database and a clock at a fixed time.
func newFixture(t *testing.T, cfg auth.Config) authFixture {
	t.Helper()
	db := storetest.Open(t, storetest.Engines()[0])
	c := &testClock{now: time.Date(2024, 7, 10, 11, 3, 59, 0, time.UTC)}
	cfg.Now = c.Now
	st := db.AuthStore()
	return authFixture{svc: auth.NewService(st, cfg), store: st, clock: c}
}

func (f authFixture) partner(t *testing.T) auth.Credentials {
	t.Helper()
	cr, err := f.svc.CreatePartner(context.Background(), "Partner", "https://partner.example/hook")
	if err != nil {
		t.Fatalf("CreatePartner: %v", err)
	}
	return cr
}

func (f authFixture) pair(t *testing.T, cr auth.Credentials) auth.Pair {
	t.Helper()
	p, err := f.svc.ClientCredentials(context.Background(), cr.ClientID, cr.ClientSecret, cr.PartnerID.String())
	if err != nil {
		t.Fatalf("ClientCredentials: %v", err)
	}
	return p
}

// wantOAuth checks that err is an *auth.Error with the given RFC 6749 code.
func wantOAuth(t *testing.T, err error, code, what string) {
	t.Helper()
	var e *auth.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: got %v, want an *auth.Error %s", what, err, code)
	}
	if e.Code != code {
		t.Fatalf("%s: got code %s (%s), want %s", what, e.Code, e.Description, code)
	}
}

func wantVerify(t *testing.T, f authFixture, token string, want error, what string) {
	t.Helper()
	_, err := f.svc.Verify(context.Background(), token)
	if !errors.Is(err, want) {
		t.Fatalf("%s: Verify = %v, want %v", what, err, want)
	}
}

func wantPrincipal(t *testing.T, f authFixture, token string, cr auth.Credentials, what string) {
	t.Helper()
	p, err := f.svc.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("%s: Verify: %v", what, err)
	}
	if p.PartnerID != cr.PartnerID || p.ClientID != cr.ClientID {
		t.Fatalf("%s: Verify = %+v, want partner %s, client %s", what, p, cr.PartnerID, cr.ClientID)
	}
}

func TestCreatePartner(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{})
	ctx := context.Background()
	cr := f.partner(t)

	if cr.PartnerID == uuid.Nil {
		t.Error("PartnerID is nil")
	}
	for _, v := range []struct{ name, value, prefix string }{
		{"clientId", cr.ClientID, "wc_"},
		{"clientSecret", cr.ClientSecret, "wcs_"},
		{"webhookSecret", cr.WebhookSecret, "whs_"},
	} {
		if !strings.HasPrefix(v.value, v.prefix) || len(v.value) < len(v.prefix)+20 {
			t.Errorf("%s = %q, want %s followed by a random value", v.name, v.value, v.prefix)
		}
	}

	p, err := f.svc.Partner(ctx, cr.PartnerID)
	if err != nil {
		t.Fatalf("Partner: %v", err)
	}
	if p.Name != "Partner" || p.Status != auth.Active || p.WebhookURL != "https://partner.example/hook" ||
		p.WebhookSecret != cr.WebhookSecret || !p.CreatedAt.Equal(f.clock.Now()) {
		t.Errorf("stored partner = %+v", p)
	}
	c, _, err := f.store.ClientWithPartner(ctx, cr.ClientID)
	if err != nil {
		t.Fatalf("ClientWithPartner: %v", err)
	}
	if c.PartnerID != cr.PartnerID || c.Status != auth.Active {
		t.Errorf("stored client = %+v", c)
	}
	// Only the hash of the secret is kept.
	if !bytes.Equal(c.SecretHash, auth.Hash(cr.ClientSecret)) || bytes.Contains(c.SecretHash, []byte(cr.ClientSecret)) {
		t.Errorf("stored secret hash %x is not SHA-256 of the secret", c.SecretHash)
	}
	has, err := f.svc.HasPartners(ctx)
	if err != nil || !has {
		t.Errorf("HasPartners = %v, %v; want true", has, err)
	}

	// Two partners get different credentials.
	cr2 := f.partner(t)
	if cr2.PartnerID == cr.PartnerID || cr2.ClientID == cr.ClientID || cr2.ClientSecret == cr.ClientSecret ||
		cr2.WebhookSecret == cr.WebhookSecret {
		t.Errorf("two partners share credentials: %+v and %+v", cr, cr2)
	}

	if _, err := f.svc.CreatePartner(ctx, "", ""); err == nil {
		t.Error("CreatePartner without a name succeeded")
	}
}

func TestClientCredentials(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{})
	ctx := context.Background()
	cr := f.partner(t)
	other := f.partner(t)

	t.Run("Success", func(t *testing.T) {
		p := f.pair(t, cr)
		if !strings.HasPrefix(p.AccessToken, "wat_") || !strings.HasPrefix(p.RefreshToken, "wrt_") || p.AccessToken == p.RefreshToken {
			t.Errorf("pair = %q, %q", p.AccessToken, p.RefreshToken)
		}
		if p.AccessTTL != 15*time.Minute || p.RefreshTTL != 30*24*time.Hour {
			t.Errorf("TTLs = %v, %v; want the defaults 15m, 720h", p.AccessTTL, p.RefreshTTL)
		}
		wantPrincipal(t, f, p.AccessToken, cr, "new access token")
		// A second grant is another pair.
		p2 := f.pair(t, cr)
		if p2.AccessToken == p.AccessToken || p2.RefreshToken == p.RefreshToken {
			t.Error("a second grant returned the same tokens")
		}
		// Only hashes are stored; the stored expiry follows the TTL.
		g, err := f.store.Grant(ctx, auth.Hash(p.AccessToken))
		if err != nil {
			t.Fatalf("Grant: %v", err)
		}
		if g.Kind != auth.Access || !g.ExpiresAt.Equal(f.clock.Now().Add(15*time.Minute)) {
			t.Errorf("stored access token = %+v", g.Token)
		}
	})

	cases := []struct {
		name                        string
		clientID, secret, partnerID string
		code                        string
	}{
		{"WrongSecret", cr.ClientID, other.ClientSecret, cr.PartnerID.String(), auth.InvalidClient},
		{"UnknownClient", "wc_unknown", cr.ClientSecret, cr.PartnerID.String(), auth.InvalidClient},
		{"NoClientID", "", cr.ClientSecret, cr.PartnerID.String(), auth.InvalidClient},
		{"NoSecret", cr.ClientID, "", cr.PartnerID.String(), auth.InvalidClient},
		{"MissingPartnerID", cr.ClientID, cr.ClientSecret, "", auth.InvalidRequest},
		{"MalformedPartnerID", cr.ClientID, cr.ClientSecret, "not-a-uuid", auth.InvalidRequest},
		{"OtherPartnersID", cr.ClientID, cr.ClientSecret, other.PartnerID.String(), auth.InvalidClient},
		{"UnknownPartnerID", cr.ClientID, cr.ClientSecret, uuid.NewString(), auth.InvalidClient},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := f.svc.ClientCredentials(ctx, c.clientID, c.secret, c.partnerID)
			wantOAuth(t, err, c.code, "ClientCredentials")
			if p != (auth.Pair{}) {
				t.Errorf("refused grant returned tokens %+v", p)
			}
		})
	}
}

func TestConfiguredTTL(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{AccessTTL: time.Minute, RefreshTTL: time.Hour})
	cr := f.partner(t)
	p := f.pair(t, cr)
	if p.AccessTTL != time.Minute || p.RefreshTTL != time.Hour {
		t.Errorf("TTLs = %v, %v; want 1m, 1h", p.AccessTTL, p.RefreshTTL)
	}
	f.clock.Advance(time.Minute - time.Second)
	wantPrincipal(t, f, p.AccessToken, cr, "before the configured expiry")
	f.clock.Advance(time.Second)
	wantVerify(t, f, p.AccessToken, auth.ErrUnauthorized, "at the configured expiry")
}

func TestVerify(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{})
	cr := f.partner(t)
	p := f.pair(t, cr)

	wantPrincipal(t, f, p.AccessToken, cr, "access token")
	for _, c := range []struct{ name, token string }{
		{"refresh token as access", p.RefreshToken},
		{"empty", ""},
		{"garbage", "Bearer xyz"},
		{"client secret", cr.ClientSecret},
		{"unknown well-formed", "wat_" + strings.Repeat("A", 43)},
		{"access token with a changed character", p.AccessToken[:len(p.AccessToken)-1] + flipChar(p.AccessToken[len(p.AccessToken)-1])},
		{"access token with a suffix", p.AccessToken + "A"},
	} {
		wantVerify(t, f, c.token, auth.ErrUnauthorized, c.name)
	}
}

func flipChar(b byte) string {
	if b == 'A' {
		return "B"
	}
	return "A"
}

func TestAccessTokenExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{})
	cr := f.partner(t)
	p := f.pair(t, cr)

	f.clock.Advance(15*time.Minute - time.Nanosecond)
	wantPrincipal(t, f, p.AccessToken, cr, "just before expiry")
	f.clock.Advance(time.Nanosecond)
	wantVerify(t, f, p.AccessToken, auth.ErrUnauthorized, "at expiry")
	f.clock.Advance(time.Hour)
	wantVerify(t, f, p.AccessToken, auth.ErrUnauthorized, "after expiry")

	// The refresh token still works and yields a live access token.
	next, err := f.svc.Refresh(context.Background(), cr.ClientID, cr.ClientSecret, p.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh after the access token expired: %v", err)
	}
	wantPrincipal(t, f, next.AccessToken, cr, "refreshed access token")
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RotationAndReuse", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, auth.Config{})
		cr := f.partner(t)
		first := f.pair(t, cr)

		f.clock.Advance(time.Minute)
		second, err := f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, first.RefreshToken)
		if err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
			t.Fatal("Refresh returned the old tokens")
		}
		if second.AccessTTL != 15*time.Minute || second.RefreshTTL != 30*24*time.Hour {
			t.Errorf("TTLs = %v, %v", second.AccessTTL, second.RefreshTTL)
		}
		wantPrincipal(t, f, second.AccessToken, cr, "new access token")

		// The new refresh token works once more.
		third, err := f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, second.RefreshToken)
		if err != nil {
			t.Fatalf("Refresh of the new refresh token: %v", err)
		}
		wantPrincipal(t, f, third.AccessToken, cr, "third access token")

		// Replaying the first refresh token: invalid_grant, and the whole family dies.
		_, err = f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, first.RefreshToken)
		wantOAuth(t, err, auth.InvalidGrant, "Refresh(replayed)")
		for _, tok := range []string{first.AccessToken, second.AccessToken, third.AccessToken} {
			wantVerify(t, f, tok, auth.ErrUnauthorized, "access token of a family after reuse")
		}
		_, err = f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, third.RefreshToken)
		wantOAuth(t, err, auth.InvalidGrant, "Refresh(latest token after reuse)")

		// Fresh client credentials still work.
		wantPrincipal(t, f, f.pair(t, cr).AccessToken, cr, "new grant after reuse")
	})

	t.Run("OtherFamiliesSurviveReuse", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, auth.Config{})
		cr := f.partner(t)
		a, b := f.pair(t, cr), f.pair(t, cr)
		if _, err := f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, a.RefreshToken); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		_, err := f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, a.RefreshToken)
		wantOAuth(t, err, auth.InvalidGrant, "Refresh(replayed)")
		wantPrincipal(t, f, b.AccessToken, cr, "another grant's access token")
		if _, err := f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, b.RefreshToken); err != nil {
			t.Errorf("another grant's refresh token: %v", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, auth.Config{})
		cr := f.partner(t)
		p := f.pair(t, cr)

		const n = 8
		pairs := make([]auth.Pair, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				pairs[i], errs[i] = f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, p.RefreshToken)
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			if err == nil {
				if winner >= 0 {
					t.Fatalf("the same refresh token was exchanged twice (%d and %d)", winner, i)
				}
				winner = i
				continue
			}
			wantOAuth(t, err, auth.InvalidGrant, "concurrent Refresh")
		}
		if winner < 0 {
			t.Fatal("no concurrent Refresh succeeded")
		}
		// The losers saw a reuse, so even the winner's tokens are revoked.
		wantVerify(t, f, pairs[winner].AccessToken, auth.ErrUnauthorized, "winner's access token after concurrent reuse")
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, auth.Config{})
		cr := f.partner(t)
		other := f.partner(t)
		p := f.pair(t, cr)
		otherPair := f.pair(t, other)

		_, err := f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, "")
		wantOAuth(t, err, auth.InvalidRequest, "Refresh(no token)")
		_, err = f.svc.Refresh(ctx, cr.ClientID, other.ClientSecret, p.RefreshToken)
		wantOAuth(t, err, auth.InvalidClient, "Refresh(wrong secret)")
		_, err = f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, p.AccessToken)
		wantOAuth(t, err, auth.InvalidGrant, "Refresh(access token)")
		_, err = f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, "wrt_"+strings.Repeat("A", 43))
		wantOAuth(t, err, auth.InvalidGrant, "Refresh(unknown token)")
		_, err = f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, otherPair.RefreshToken)
		wantOAuth(t, err, auth.InvalidGrant, "Refresh(another client's token)")
		// The refused attempt did not use up the other client's token.
		if _, err := f.svc.Refresh(ctx, other.ClientID, other.ClientSecret, otherPair.RefreshToken); err != nil {
			t.Errorf("other client's own Refresh: %v", err)
		}
		// None of the refusals used up the token either.
		if _, err := f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, p.RefreshToken); err != nil {
			t.Errorf("Refresh after refused attempts: %v", err)
		}
	})

	t.Run("Expired", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, auth.Config{})
		cr := f.partner(t)
		p := f.pair(t, cr)
		f.clock.Advance(30 * 24 * time.Hour)
		_, err := f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, p.RefreshToken)
		wantOAuth(t, err, auth.InvalidGrant, "Refresh(expired)")
	})
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	disable := map[string]func(f authFixture, cr auth.Credentials, st auth.Status) error{
		"Partner": func(f authFixture, cr auth.Credentials, st auth.Status) error {
			return f.svc.SetPartnerStatus(ctx, cr.PartnerID, st)
		},
		"Client": func(f authFixture, cr auth.Credentials, st auth.Status) error {
			return f.svc.SetClientStatus(ctx, cr.ClientID, st)
		},
	}
	for name, set := range disable {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, auth.Config{})
			cr := f.partner(t)
			other := f.partner(t)
			p := f.pair(t, cr)
			op := f.pair(t, other)

			if err := set(f, cr, auth.Disabled); err != nil {
				t.Fatalf("disable: %v", err)
			}
			wantVerify(t, f, p.AccessToken, auth.ErrForbidden, "access token of a disabled owner")
			_, err := f.svc.ClientCredentials(ctx, cr.ClientID, cr.ClientSecret, cr.PartnerID.String())
			wantOAuth(t, err, auth.InvalidClient, "ClientCredentials while disabled")
			_, err = f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, p.RefreshToken)
			wantOAuth(t, err, auth.InvalidClient, "Refresh while disabled")
			// Another partner is not affected.
			wantPrincipal(t, f, op.AccessToken, other, "other partner's token")

			// Enabling again restores the same token.
			if err := set(f, cr, auth.Active); err != nil {
				t.Fatalf("enable: %v", err)
			}
			wantPrincipal(t, f, p.AccessToken, cr, "after re-enabling")
			f.pair(t, cr)
		})
	}
	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, auth.Config{})
		if err := f.svc.SetPartnerStatus(ctx, uuid.New(), auth.Disabled); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("SetPartnerStatus(unknown) = %v, want ErrNotFound", err)
		}
		if err := f.svc.SetClientStatus(ctx, "wc_unknown", auth.Disabled); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("SetClientStatus(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("AccessToken", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, auth.Config{})
		cr := f.partner(t)
		p := f.pair(t, cr)
		sibling := f.pair(t, cr)
		if err := f.svc.Revoke(ctx, cr.ClientID, cr.ClientSecret, p.AccessToken); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		wantVerify(t, f, p.AccessToken, auth.ErrUnauthorized, "revoked access token")
		wantPrincipal(t, f, sibling.AccessToken, cr, "another grant's access token")
		// Only that token: its refresh token still works.
		next, err := f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, p.RefreshToken)
		if err != nil {
			t.Fatalf("Refresh after revoking the access token: %v", err)
		}
		wantPrincipal(t, f, next.AccessToken, cr, "refreshed access token")
		// Revoking twice is fine.
		if err := f.svc.Revoke(ctx, cr.ClientID, cr.ClientSecret, p.AccessToken); err != nil {
			t.Errorf("Revoke again: %v", err)
		}
	})

	t.Run("RefreshTokenRevokesFamily", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, auth.Config{})
		cr := f.partner(t)
		first := f.pair(t, cr)
		second, err := f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, first.RefreshToken)
		if err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		unrelated := f.pair(t, cr)
		if err := f.svc.Revoke(ctx, cr.ClientID, cr.ClientSecret, second.RefreshToken); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		wantVerify(t, f, first.AccessToken, auth.ErrUnauthorized, "first access token of the family")
		wantVerify(t, f, second.AccessToken, auth.ErrUnauthorized, "second access token of the family")
		_, err = f.svc.Refresh(ctx, cr.ClientID, cr.ClientSecret, second.RefreshToken)
		wantOAuth(t, err, auth.InvalidGrant, "Refresh(revoked)")
		wantPrincipal(t, f, unrelated.AccessToken, cr, "another grant's access token")
	})

	t.Run("OtherClientsTokenIgnored", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, auth.Config{})
		cr := f.partner(t)
		other := f.partner(t)
		p := f.pair(t, other)
		for _, tok := range []string{p.AccessToken, p.RefreshToken} {
			if err := f.svc.Revoke(ctx, cr.ClientID, cr.ClientSecret, tok); err != nil {
				t.Fatalf("Revoke(another client's token) = %v, want nil", err)
			}
		}
		wantPrincipal(t, f, p.AccessToken, other, "another client's access token after a foreign Revoke")
		if _, err := f.svc.Refresh(ctx, other.ClientID, other.ClientSecret, p.RefreshToken); err != nil {
			t.Errorf("another client's refresh token after a foreign Revoke: %v", err)
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, auth.Config{})
		cr := f.partner(t)
		p := f.pair(t, cr)
		if err := f.svc.Revoke(ctx, cr.ClientID, cr.ClientSecret, "wat_unknown"); err != nil {
			t.Errorf("Revoke(unknown token) = %v, want nil", err)
		}
		wantOAuth(t, f.svc.Revoke(ctx, cr.ClientID, cr.ClientSecret, ""), auth.InvalidRequest, "Revoke(no token)")
		wantOAuth(t, f.svc.Revoke(ctx, cr.ClientID, "wcs_wrong", p.AccessToken), auth.InvalidClient, "Revoke(wrong secret)")
		wantPrincipal(t, f, p.AccessToken, cr, "access token after refused revocations")
	})
}
