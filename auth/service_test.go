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

// What the Service uses when auth.Config leaves the TTLs zero.
const (
	defaultAccessTTL  = 15 * time.Minute
	defaultRefreshTTL = 30 * 24 * time.Hour
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

// newFixture returns a Service over a fresh database of engine e and a clock at a fixed time.
func newFixture(t *testing.T, e storetest.Engine, cfg auth.Config) authFixture {
	t.Helper()
	db := storetest.Open(t, e)
	c := &testClock{now: time.Date(2024, 7, 10, 11, 3, 59, 0, time.UTC)}
	cfg.Now = c.Now
	st := db.AuthStore()
	return authFixture{svc: auth.NewService(st, cfg), store: st, clock: c}
}

// newGrant is where most scenarios start: a fresh fixture whose one partner
// holds one token pair from the client_credentials grant.
func newGrant(t *testing.T, e storetest.Engine, cfg auth.Config) (authFixture, auth.Credentials, auth.Pair) {
	t.Helper()
	f := newFixture(t, e, cfg)
	cr := f.partner(t)
	return f, cr, f.pair(t, cr)
}

func (f authFixture) partner(t *testing.T) auth.Credentials {
	t.Helper()
	cr, err := f.svc.CreatePartner(t.Context(), "Partner", "https://partner.example/hook")
	if err != nil {
		t.Fatalf("CreatePartner: %v", err)
	}
	return cr
}

func (f authFixture) pair(t *testing.T, cr auth.Credentials) auth.Pair {
	t.Helper()
	p, err := f.svc.ClientCredentials(t.Context(), cr.ClientID, cr.ClientSecret, cr.PartnerID.String())
	if err != nil {
		t.Fatalf("ClientCredentials: %v", err)
	}
	return p
}

// refresh presents tok to Refresh as cr's client. It reports rather than
// fails, so the concurrent test can call it from its goroutines.
func (f authFixture) refresh(t *testing.T, cr auth.Credentials, tok string) (auth.Pair, error) {
	return f.svc.Refresh(t.Context(), cr.ClientID, cr.ClientSecret, tok)
}

// mustRefresh is refresh for an exchange that has to succeed.
func (f authFixture) mustRefresh(t *testing.T, cr auth.Credentials, tok, what string) auth.Pair {
	t.Helper()
	p, err := f.refresh(t, cr, tok)
	if err != nil {
		t.Fatalf("%s: Refresh: %v", what, err)
	}
	return p
}

// revoke presents tok to Revoke as cr's client.
func (f authFixture) revoke(t *testing.T, cr auth.Credentials, tok string) error {
	return f.svc.Revoke(t.Context(), cr.ClientID, cr.ClientSecret, tok)
}

// mustRevoke is revoke for a call that has to succeed; RFC 7009 asks for
// success on unknown and foreign tokens too.
func (f authFixture) mustRevoke(t *testing.T, cr auth.Credentials, tok, what string) {
	t.Helper()
	if err := f.revoke(t, cr, tok); err != nil {
		t.Fatalf("%s: Revoke = %v, want nil", what, err)
	}
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

// wantRefreshRefused checks that Refresh refuses tok with the given code and
// hands out no tokens with the error.
func wantRefreshRefused(t *testing.T, f authFixture, cr auth.Credentials, tok, code, what string) {
	t.Helper()
	p, err := f.refresh(t, cr, tok)
	wantOAuth(t, err, code, what)
	if p != (auth.Pair{}) {
		t.Fatalf("%s: refused Refresh returned tokens %+v", what, p)
	}
}

// wantShutOut checks that a disabled client, or a client of a disabled
// partner, is refused everything: its access token p.AccessToken (403), a new
// grant with its secret and the exchange of its refresh token (invalid_client).
func wantShutOut(t *testing.T, f authFixture, cr auth.Credentials, p auth.Pair, what string) {
	t.Helper()
	wantVerify(t, f, p.AccessToken, auth.ErrForbidden, what+": access token")
	_, err := f.svc.ClientCredentials(t.Context(), cr.ClientID, cr.ClientSecret, cr.PartnerID.String())
	wantOAuth(t, err, auth.InvalidClient, what+": client credentials")
	wantRefreshRefused(t, f, cr, p.RefreshToken, auth.InvalidClient, what+": refresh token")
}

// wantVerify checks that Verify refuses token with the error want.
func wantVerify(t *testing.T, f authFixture, token string, want error, what string) {
	t.Helper()
	_, err := f.svc.Verify(t.Context(), token)
	if !errors.Is(err, want) {
		t.Fatalf("%s: Verify = %v, want %v", what, err, want)
	}
}

// wantPrincipal checks that token verifies as belonging to cr's client.
func wantPrincipal(t *testing.T, f authFixture, token string, cr auth.Credentials, what string) {
	t.Helper()
	p, err := f.svc.Verify(t.Context(), token)
	if err != nil {
		t.Fatalf("%s: Verify: %v", what, err)
	}
	if p.PartnerID != cr.PartnerID || p.ClientID != cr.ClientID {
		t.Fatalf("%s: Verify = %+v, want partner %s, client %s", what, p, cr.PartnerID, cr.ClientID)
	}
}

// wantTTLs checks the lifetimes a token answer announces to the client.
func wantTTLs(t *testing.T, p auth.Pair, access, refresh time.Duration) {
	t.Helper()
	if p.AccessTTL != access || p.RefreshTTL != refresh {
		t.Errorf("TTLs = %v, %v; want %v, %v", p.AccessTTL, p.RefreshTTL, access, refresh)
	}
}

// wantExpiresAfter expects the clock to stand where token was issued. It moves
// it to margin before ttl, where token must still verify, then to ttl, where
// it must not.
func wantExpiresAfter(t *testing.T, f authFixture, cr auth.Credentials, token string, ttl, margin time.Duration) {
	t.Helper()
	f.clock.Advance(ttl - margin)
	wantPrincipal(t, f, token, cr, "just before expiry")
	f.clock.Advance(margin)
	wantVerify(t, f, token, auth.ErrUnauthorized, "at expiry")
}

// TestService runs every scenario of the service on every engine: its
// promises (single-use refresh tokens, revocation, disabling that stops
// tokens at once) rest on what each store does under them.
func TestService(t *testing.T) {
	t.Parallel()
	scenarios := []struct {
		name string
		run  func(*testing.T, storetest.Engine)
	}{
		{"CreatePartner", testCreatePartner},
		{"SecretRotation", testSecretRotation},
		{"ClientCredentials", testClientCredentials},
		{"ConfiguredTTL", testConfiguredTTL},
		{"Verify", testVerify},
		{"AccessTokenExpires", testAccessTokenExpires},
		{"Refresh", testRefresh},
		{"Disabled", testDisabled},
		{"Revoke", testRevoke},
	}
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		for _, sc := range scenarios {
			t.Run(sc.name, func(t *testing.T) { sc.run(t, e) })
		}
	})
}

func testCreatePartner(t *testing.T, e storetest.Engine) {
	t.Parallel()
	f := newFixture(t, e, auth.Config{})
	ctx := t.Context()
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

// testSecretRotation: a partner gets a second client, moves to it, and the
// old client is disabled; its tokens and secret stop at once, the new ones work.
func testSecretRotation(t *testing.T, e storetest.Engine) {
	t.Parallel()
	f, old, oldPair := newGrant(t, e, auth.Config{})
	ctx := t.Context()

	created, err := f.svc.CreateClient(ctx, old.PartnerID)
	if err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	if created.PartnerID != old.PartnerID || !strings.HasPrefix(created.ClientID, "wc_") ||
		!strings.HasPrefix(created.ClientSecret, "wcs_") {
		t.Errorf("CreateClient = %+v, want a wc_ client with a wcs_ secret of partner %s", created, old.PartnerID)
	}
	if created.ClientID == old.ClientID || created.ClientSecret == old.ClientSecret {
		t.Fatalf("the new client repeats the old credentials: %+v", created)
	}
	c, _, err := f.store.ClientWithPartner(ctx, created.ClientID)
	if err != nil {
		t.Fatalf("ClientWithPartner: %v", err)
	}
	if !bytes.Equal(c.SecretHash, auth.Hash(created.ClientSecret)) || c.Status != auth.Active {
		t.Errorf("stored client = %+v, want active with the secret's hash only", c)
	}

	fresh := auth.Credentials{PartnerID: created.PartnerID, ClientID: created.ClientID, ClientSecret: created.ClientSecret}
	freshPair := f.pair(t, fresh)
	wantPrincipal(t, f, freshPair.AccessToken, fresh, "the new client's token")
	wantPrincipal(t, f, oldPair.AccessToken, old, "the old client's token before it is disabled")

	if err := f.svc.SetClientStatus(ctx, old.ClientID, auth.Disabled); err != nil {
		t.Fatalf("disable the old client: %v", err)
	}
	wantShutOut(t, f, old, oldPair, "the old client")
	wantPrincipal(t, f, freshPair.AccessToken, fresh, "the new client's token after the old is disabled")
	if _, err := f.refresh(t, fresh, freshPair.RefreshToken); err != nil {
		t.Errorf("the new client's refresh: %v", err)
	}

	if _, err := f.svc.CreateClient(ctx, uuid.New()); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("CreateClient(unknown partner) = %v, want ErrNotFound", err)
	}
}

func testClientCredentials(t *testing.T, e storetest.Engine) {
	t.Parallel()
	f := newFixture(t, e, auth.Config{})
	cr := f.partner(t)
	other := f.partner(t)

	t.Run("Success", func(t *testing.T) {
		p := f.pair(t, cr)
		if !strings.HasPrefix(p.AccessToken, "wat_") || !strings.HasPrefix(p.RefreshToken, "wrt_") || p.AccessToken == p.RefreshToken {
			t.Errorf("pair = %q, %q", p.AccessToken, p.RefreshToken)
		}
		wantTTLs(t, p, defaultAccessTTL, defaultRefreshTTL)
		wantPrincipal(t, f, p.AccessToken, cr, "new access token")
		// A second grant is another pair.
		p2 := f.pair(t, cr)
		if p2.AccessToken == p.AccessToken || p2.RefreshToken == p.RefreshToken {
			t.Error("a second grant returned the same tokens")
		}
		// Only hashes are stored; the stored expiry follows the TTL.
		g, err := f.store.Grant(t.Context(), auth.Hash(p.AccessToken))
		if err != nil {
			t.Fatalf("Grant: %v", err)
		}
		if g.Kind != auth.Access || !g.ExpiresAt.Equal(f.clock.Now().Add(defaultAccessTTL)) {
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
			// Refusals only read the shared fixture, so they can overlap.
			t.Parallel()
			p, err := f.svc.ClientCredentials(t.Context(), c.clientID, c.secret, c.partnerID)
			wantOAuth(t, err, c.code, "ClientCredentials")
			if p != (auth.Pair{}) {
				t.Errorf("refused grant returned tokens %+v", p)
			}
		})
	}
}

func testConfiguredTTL(t *testing.T, e storetest.Engine) {
	t.Parallel()
	f, cr, p := newGrant(t, e, auth.Config{AccessTTL: time.Minute, RefreshTTL: time.Hour})
	wantTTLs(t, p, time.Minute, time.Hour)
	wantExpiresAfter(t, f, cr, p.AccessToken, time.Minute, time.Second)
}

func testVerify(t *testing.T, e storetest.Engine) {
	t.Parallel()
	f, cr, p := newGrant(t, e, auth.Config{})

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

func testAccessTokenExpires(t *testing.T, e storetest.Engine) {
	t.Parallel()
	f, cr, p := newGrant(t, e, auth.Config{})

	wantExpiresAfter(t, f, cr, p.AccessToken, defaultAccessTTL, time.Nanosecond)
	f.clock.Advance(time.Hour)
	wantVerify(t, f, p.AccessToken, auth.ErrUnauthorized, "after expiry")

	// The refresh token still works and yields a live access token.
	next := f.mustRefresh(t, cr, p.RefreshToken, "after the access token expired")
	wantPrincipal(t, f, next.AccessToken, cr, "refreshed access token")
}

func testRefresh(t *testing.T, e storetest.Engine) {
	t.Parallel()

	t.Run("RotationAndReuse", func(t *testing.T) {
		t.Parallel()
		f, cr, first := newGrant(t, e, auth.Config{})

		f.clock.Advance(time.Minute)
		second := f.mustRefresh(t, cr, first.RefreshToken, "first exchange")
		if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
			t.Fatal("Refresh returned the old tokens")
		}
		wantTTLs(t, second, defaultAccessTTL, defaultRefreshTTL)
		wantPrincipal(t, f, second.AccessToken, cr, "new access token")

		// The new refresh token works once more.
		third := f.mustRefresh(t, cr, second.RefreshToken, "exchange of the new refresh token")
		wantPrincipal(t, f, third.AccessToken, cr, "third access token")

		// Replaying the first refresh token: invalid_grant, and the whole family dies.
		wantRefreshRefused(t, f, cr, first.RefreshToken, auth.InvalidGrant, "Refresh(replayed)")
		for _, tok := range []string{first.AccessToken, second.AccessToken, third.AccessToken} {
			wantVerify(t, f, tok, auth.ErrUnauthorized, "access token of a family after reuse")
		}
		wantRefreshRefused(t, f, cr, third.RefreshToken, auth.InvalidGrant, "Refresh(latest token after reuse)")

		// Fresh client credentials still work.
		wantPrincipal(t, f, f.pair(t, cr).AccessToken, cr, "new grant after reuse")
	})

	t.Run("OtherFamiliesSurviveReuse", func(t *testing.T) {
		t.Parallel()
		f, cr, a := newGrant(t, e, auth.Config{})
		b := f.pair(t, cr)
		f.mustRefresh(t, cr, a.RefreshToken, "first exchange")
		wantRefreshRefused(t, f, cr, a.RefreshToken, auth.InvalidGrant, "Refresh(replayed)")
		wantPrincipal(t, f, b.AccessToken, cr, "another grant's access token")
		f.mustRefresh(t, cr, b.RefreshToken, "another grant's refresh token")
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		f, cr, p := newGrant(t, e, auth.Config{})

		const n = 8
		pairs := make([]auth.Pair, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start // released together so that the exchanges overlap
				pairs[i], errs[i] = f.refresh(t, cr, p.RefreshToken)
			})
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
		f, cr, p := newGrant(t, e, auth.Config{})
		other := f.partner(t)
		otherPair := f.pair(t, other)
		wrongSecret := auth.Credentials{ClientID: cr.ClientID, ClientSecret: other.ClientSecret}

		wantRefreshRefused(t, f, cr, "", auth.InvalidRequest, "Refresh(no token)")
		wantRefreshRefused(t, f, wrongSecret, p.RefreshToken, auth.InvalidClient, "Refresh(wrong secret)")
		wantRefreshRefused(t, f, cr, p.AccessToken, auth.InvalidGrant, "Refresh(access token)")
		wantRefreshRefused(t, f, cr, "wrt_"+strings.Repeat("A", 43), auth.InvalidGrant, "Refresh(unknown token)")
		wantRefreshRefused(t, f, cr, otherPair.RefreshToken, auth.InvalidGrant, "Refresh(another client's token)")
		// The refused attempt did not use up the other client's token,
		f.mustRefresh(t, other, otherPair.RefreshToken, "other client's own Refresh")
		// and none of the refusals used up this client's token either.
		f.mustRefresh(t, cr, p.RefreshToken, "Refresh after refused attempts")
	})

	t.Run("Expired", func(t *testing.T) {
		t.Parallel()
		f, cr, p := newGrant(t, e, auth.Config{})
		f.clock.Advance(defaultRefreshTTL)
		wantRefreshRefused(t, f, cr, p.RefreshToken, auth.InvalidGrant, "Refresh(expired)")
	})
}

func testDisabled(t *testing.T, e storetest.Engine) {
	t.Parallel()
	disable := map[string]func(ctx context.Context, f authFixture, cr auth.Credentials, st auth.Status) error{
		"Partner": func(ctx context.Context, f authFixture, cr auth.Credentials, st auth.Status) error {
			return f.svc.SetPartnerStatus(ctx, cr.PartnerID, st)
		},
		"Client": func(ctx context.Context, f authFixture, cr auth.Credentials, st auth.Status) error {
			return f.svc.SetClientStatus(ctx, cr.ClientID, st)
		},
	}
	for name, set := range disable {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, cr, p := newGrant(t, e, auth.Config{})
			other := f.partner(t)
			op := f.pair(t, other)

			if err := set(t.Context(), f, cr, auth.Disabled); err != nil {
				t.Fatalf("disable: %v", err)
			}
			wantShutOut(t, f, cr, p, "disabled")
			// Another partner is not affected.
			wantPrincipal(t, f, op.AccessToken, other, "other partner's token")

			// Enabling again restores the same token, and new grants.
			if err := set(t.Context(), f, cr, auth.Active); err != nil {
				t.Fatalf("enable: %v", err)
			}
			wantPrincipal(t, f, p.AccessToken, cr, "after re-enabling")
			f.pair(t, cr)
		})
	}
	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, e, auth.Config{})
		if err := f.svc.SetPartnerStatus(t.Context(), uuid.New(), auth.Disabled); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("SetPartnerStatus(unknown) = %v, want ErrNotFound", err)
		}
		if err := f.svc.SetClientStatus(t.Context(), "wc_unknown", auth.Disabled); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("SetClientStatus(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func testRevoke(t *testing.T, e storetest.Engine) {
	t.Parallel()

	t.Run("AccessToken", func(t *testing.T) {
		t.Parallel()
		f, cr, p := newGrant(t, e, auth.Config{})
		sibling := f.pair(t, cr)
		f.mustRevoke(t, cr, p.AccessToken, "Revoke(access token)")
		wantVerify(t, f, p.AccessToken, auth.ErrUnauthorized, "revoked access token")
		wantPrincipal(t, f, sibling.AccessToken, cr, "another grant's access token")
		// Only that token: its refresh token still works.
		next := f.mustRefresh(t, cr, p.RefreshToken, "after revoking the access token")
		wantPrincipal(t, f, next.AccessToken, cr, "refreshed access token")
		// Revoking twice is fine.
		f.mustRevoke(t, cr, p.AccessToken, "Revoke again")
	})

	t.Run("RefreshTokenRevokesFamily", func(t *testing.T) {
		t.Parallel()
		f, cr, first := newGrant(t, e, auth.Config{})
		second := f.mustRefresh(t, cr, first.RefreshToken, "first exchange")
		unrelated := f.pair(t, cr)
		f.mustRevoke(t, cr, second.RefreshToken, "Revoke(refresh token)")
		wantVerify(t, f, first.AccessToken, auth.ErrUnauthorized, "first access token of the family")
		wantVerify(t, f, second.AccessToken, auth.ErrUnauthorized, "second access token of the family")
		wantRefreshRefused(t, f, cr, second.RefreshToken, auth.InvalidGrant, "Refresh(revoked)")
		wantPrincipal(t, f, unrelated.AccessToken, cr, "another grant's access token")
	})

	t.Run("OtherClientsTokenIgnored", func(t *testing.T) {
		t.Parallel()
		f, other, p := newGrant(t, e, auth.Config{})
		cr := f.partner(t)
		for _, tok := range []string{p.AccessToken, p.RefreshToken} {
			f.mustRevoke(t, cr, tok, "Revoke(another client's token)")
		}
		wantPrincipal(t, f, p.AccessToken, other, "another client's access token after a foreign Revoke")
		f.mustRefresh(t, other, p.RefreshToken, "another client's refresh token after a foreign Revoke")
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		f, cr, p := newGrant(t, e, auth.Config{})
		wrongSecret := auth.Credentials{ClientID: cr.ClientID, ClientSecret: "wcs_wrong"}
		f.mustRevoke(t, cr, "wat_unknown", "Revoke(unknown token)")
		wantOAuth(t, f.revoke(t, cr, ""), auth.InvalidRequest, "Revoke(no token)")
		wantOAuth(t, f.revoke(t, wrongSecret, p.AccessToken), auth.InvalidClient, "Revoke(wrong secret)")
		wantPrincipal(t, f, p.AccessToken, cr, "access token after refused revocations")
	})
}
