package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// OAuth error codes of RFC 6749 section 5.2.
const (
	InvalidRequest       = "invalid_request"
	InvalidClient        = "invalid_client"
	InvalidGrant         = "invalid_grant"
	UnsupportedGrantType = "unsupported_grant_type"
)

// Error is an RFC 6749 error answer of the token endpoint.
type Error struct {
	Code        string
	Description string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func oauthError(code, description string) *Error {
	return &Error{Code: code, Description: description}
}

// Verification errors of protected endpoints.
var (
	ErrUnauthorized = errors.New("auth: access token missing, invalid, expired or revoked")
	ErrForbidden    = errors.New("auth: partner or client disabled")
)

// Config tunes a Service.
type Config struct {
	AccessTTL  time.Duration    // 15 minutes when zero
	RefreshTTL time.Duration    // 30 days when zero
	Now        func() time.Time // time.Now when nil
}

// Service issues and verifies tokens.
type Service struct {
	store      Store
	accessTTL  time.Duration
	refreshTTL time.Duration
	now        func() time.Time
}

// NewService returns a Service over store.
func NewService(store Store, cfg Config) *Service {
	s := &Service{store: store, accessTTL: cfg.AccessTTL, refreshTTL: cfg.RefreshTTL, now: cfg.Now}
	if s.accessTTL <= 0 {
		s.accessTTL = 15 * time.Minute
	}
	if s.refreshTTL <= 0 {
		s.refreshTTL = 30 * 24 * time.Hour
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Credentials are what a new partner receives once; only hashes are kept.
type Credentials struct {
	PartnerID     uuid.UUID `json:"partnerId"`
	ClientID      string    `json:"clientId"`
	ClientSecret  string    `json:"clientSecret"`
	WebhookSecret string    `json:"webhookSecret"`
}

// CreatePartner registers a partner with one OAuth client.
func (s *Service) CreatePartner(ctx context.Context, name, webhookURL string) (Credentials, error) {
	if name == "" {
		return Credentials{}, errors.New("partner name is required")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Credentials{}, err
	}
	now := s.now()
	c, secret, err := newClient(id, now)
	if err != nil {
		return Credentials{}, err
	}
	hookSecret, err := NewWebhookSecret()
	if err != nil {
		return Credentials{}, err
	}
	p := Partner{ID: id, Name: name, Status: Active, WebhookURL: webhookURL, WebhookSecret: hookSecret, CreatedAt: now}
	if err := s.store.InsertPartner(ctx, p, c); err != nil {
		return Credentials{}, fmt.Errorf("insert partner: %w", err)
	}
	return Credentials{PartnerID: id, ClientID: c.ID, ClientSecret: secret, WebhookSecret: hookSecret}, nil
}

// ClientCredentials are what a new client of an existing partner receives once.
type ClientCredentials struct {
	PartnerID    uuid.UUID `json:"partnerId"`
	ClientID     string    `json:"clientId"`
	ClientSecret string    `json:"clientSecret"`
}

// CreateClient gives an existing partner another OAuth client. It is how a
// leaked or retiring secret is replaced without stopping the partner: the
// partner moves to the new client, then the old one is disabled
// (SetClientStatus), which stops its tokens at once. ErrNotFound when there is
// no such partner.
func (s *Service) CreateClient(ctx context.Context, partnerID uuid.UUID) (ClientCredentials, error) {
	c, secret, err := newClient(partnerID, s.now())
	if err != nil {
		return ClientCredentials{}, err
	}
	if err := s.store.InsertClient(ctx, c); err != nil {
		return ClientCredentials{}, fmt.Errorf("insert client: %w", err)
	}
	return ClientCredentials{PartnerID: partnerID, ClientID: c.ID, ClientSecret: secret}, nil
}

// newClient returns an active client of a partner and its secret, of which
// only the hash is kept.
func newClient(partnerID uuid.UUID, now time.Time) (Client, string, error) {
	id, err := randomValue(clientPrefix, 16)
	if err != nil {
		return Client{}, "", err
	}
	secret, err := randomValue(secretPrefix, 32)
	if err != nil {
		return Client{}, "", err
	}
	return Client{ID: id, PartnerID: partnerID, SecretHash: Hash(secret), Status: Active, CreatedAt: now}, secret, nil
}

// NewWebhookSecret returns a fresh secret for signing a partner's webhooks.
func NewWebhookSecret() (string, error) { return randomValue(hookPrefix, 32) }

// Pair is a successful token answer.
type Pair struct {
	AccessToken  string
	RefreshToken string
	AccessTTL    time.Duration
	RefreshTTL   time.Duration
}

// authenticate checks a client's secret; every failure looks the same to the caller.
func (s *Service) authenticate(ctx context.Context, clientID, secret string) (Client, Partner, error) {
	bad := oauthError(InvalidClient, "client authentication failed")
	// Only ids of our own shape reach the database (a NUL byte or broken
	// UTF-8 is a query error on PostgreSQL, not an unknown client).
	if !looksLike(clientID, clientPrefix, clientIDChars) || secret == "" {
		equalHash(Hash(secret), make([]byte, 32))
		return Client{}, Partner{}, bad
	}
	c, p, err := s.store.ClientWithPartner(ctx, clientID)
	if errors.Is(err, ErrNotFound) {
		// Compare anyway so an unknown client costs the same as a wrong secret.
		equalHash(Hash(secret), make([]byte, 32))
		return Client{}, Partner{}, bad
	}
	if err != nil {
		return Client{}, Partner{}, err
	}
	if !equalHash(Hash(secret), c.SecretHash) {
		return Client{}, Partner{}, bad
	}
	if c.Status != Active || p.Status != Active {
		return Client{}, Partner{}, oauthError(InvalidClient, "client or partner is disabled")
	}
	return c, p, nil
}

// ClientCredentials runs the protocol's client_credentials grant: the client must
// belong to partnerID.
func (s *Service) ClientCredentials(ctx context.Context, clientID, secret, partnerID string) (Pair, error) {
	if partnerID == "" {
		return Pair{}, oauthError(InvalidRequest, "partner_id is required")
	}
	pid, err := uuid.Parse(partnerID)
	if err != nil {
		return Pair{}, oauthError(InvalidRequest, "partner_id must be a UUID")
	}
	c, _, err := s.authenticate(ctx, clientID, secret)
	if err != nil {
		return Pair{}, err
	}
	if c.PartnerID != pid {
		return Pair{}, oauthError(InvalidClient, "client does not belong to partner_id")
	}
	family, err := uuid.NewV7()
	if err != nil {
		return Pair{}, err
	}
	pair, tokens, err := s.newPair(c, family)
	if err != nil {
		return Pair{}, err
	}
	if err := s.store.InsertTokens(ctx, tokens...); err != nil {
		return Pair{}, err
	}
	return pair, nil
}

// Refresh exchanges a refresh token for a new pair; the old one dies. Presenting
// a refresh token that was already exchanged revokes its whole family.
func (s *Service) Refresh(ctx context.Context, clientID, secret, refreshToken string) (Pair, error) {
	if refreshToken == "" {
		return Pair{}, oauthError(InvalidRequest, "refresh_token is required")
	}
	c, _, err := s.authenticate(ctx, clientID, secret)
	if err != nil {
		return Pair{}, err
	}
	invalid := oauthError(InvalidGrant, "refresh token is invalid, expired or revoked")
	if !looksLike(refreshToken, refreshPrefix, tokenChars) {
		return Pair{}, invalid
	}
	hash := Hash(refreshToken)
	g, err := s.store.Grant(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return Pair{}, invalid
	}
	if err != nil {
		return Pair{}, err
	}
	now := s.now()
	switch {
	case g.Kind != Refresh || g.ClientID != c.ID:
		return Pair{}, invalid
	case !g.UsedAt.IsZero():
		return Pair{}, s.reuse(ctx, g.FamilyID, now)
	case !g.RevokedAt.IsZero() || !now.Before(g.ExpiresAt):
		return Pair{}, invalid
	}
	pair, tokens, err := s.newPair(c, g.FamilyID)
	if err != nil {
		return Pair{}, err
	}
	err = s.store.Rotate(ctx, hash, now, tokens...)
	switch {
	case errors.Is(err, ErrAlreadyUsed):
		// Lost a race with another exchange of the same token: that is reuse too.
		return Pair{}, s.reuse(ctx, g.FamilyID, now)
	case errors.Is(err, ErrNotFound):
		// Revoked since it was read (its family's reuse was detected meanwhile).
		return Pair{}, invalid
	case err != nil:
		return Pair{}, err
	}
	return pair, nil
}

// reuse answers a replayed refresh token: someone holds a copy, so every token
// of the family dies (RFC 9700 section 4.14.2).
func (s *Service) reuse(ctx context.Context, family uuid.UUID, now time.Time) error {
	if err := s.store.RevokeFamily(ctx, family, now); err != nil {
		return err
	}
	return oauthError(InvalidGrant, "refresh token was already used; all tokens of this grant are revoked")
}

func (s *Service) newPair(c Client, family uuid.UUID) (Pair, []Token, error) {
	access, err := randomValue(accessPrefix, 32)
	if err != nil {
		return Pair{}, nil, err
	}
	refresh, err := randomValue(refreshPrefix, 32)
	if err != nil {
		return Pair{}, nil, err
	}
	now := s.now()
	tok := func(value string, kind Kind, ttl time.Duration) Token {
		return Token{Hash: Hash(value), Kind: kind, ClientID: c.ID, PartnerID: c.PartnerID,
			FamilyID: family, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	}
	pair := Pair{AccessToken: access, RefreshToken: refresh, AccessTTL: s.accessTTL, RefreshTTL: s.refreshTTL}
	return pair, []Token{tok(access, Access, s.accessTTL), tok(refresh, Refresh, s.refreshTTL)}, nil
}

// Revoke implements RFC 7009: the client's own token is revoked (a refresh token
// with its whole family); unknown or foreign tokens are ignored, as the RFC asks.
func (s *Service) Revoke(ctx context.Context, clientID, secret, token string) error {
	c, _, err := s.authenticate(ctx, clientID, secret)
	if err != nil {
		return err
	}
	if token == "" {
		return oauthError(InvalidRequest, "token is required")
	}
	hash := Hash(token)
	g, err := s.store.Grant(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if g.ClientID != c.ID {
		return nil
	}
	if g.Kind == Refresh {
		return s.store.RevokeFamily(ctx, g.FamilyID, s.now())
	}
	return s.store.RevokeToken(ctx, hash, s.now())
}

// Principal is the authenticated caller of a protected endpoint.
type Principal struct {
	PartnerID uuid.UUID
	ClientID  string
}

// Verify checks an access token. ErrUnauthorized for anything but a live access
// token; ErrForbidden when its partner or client has been disabled.
func (s *Service) Verify(ctx context.Context, accessToken string) (Principal, error) {
	if !looksLike(accessToken, accessPrefix, tokenChars) {
		return Principal{}, ErrUnauthorized
	}
	hash := Hash(accessToken)
	g, err := s.store.Grant(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return Principal{}, ErrUnauthorized
	}
	if err != nil {
		return Principal{}, err
	}
	// The grant was found by its hash, so no comparison of the two is needed.
	if g.Kind != Access || !g.RevokedAt.IsZero() || !s.now().Before(g.ExpiresAt) {
		return Principal{}, ErrUnauthorized
	}
	if g.ClientStatus != Active || g.PartnerStatus != Active {
		return Principal{}, ErrForbidden
	}
	return Principal{PartnerID: g.PartnerID, ClientID: g.ClientID}, nil
}

// Partner returns a partner (operator commands, webhooks).
func (s *Service) Partner(ctx context.Context, id uuid.UUID) (Partner, error) {
	return s.store.Partner(ctx, id)
}

// HasPartners reports whether any partner exists (the first start creates a demo one).
func (s *Service) HasPartners(ctx context.Context) (bool, error) { return s.store.HasPartners(ctx) }

// SetPartnerStatus enables or disables a partner; its tokens stop at once.
func (s *Service) SetPartnerStatus(ctx context.Context, id uuid.UUID, st Status) error {
	return s.store.SetPartnerStatus(ctx, id, st)
}

// SetClientStatus enables or disables one client; a disabled client's tokens
// stop at once, and it gets no new ones. ErrNotFound when there is no such client.
func (s *Service) SetClientStatus(ctx context.Context, clientID string, st Status) error {
	return s.store.SetClientStatus(ctx, clientID, st)
}
