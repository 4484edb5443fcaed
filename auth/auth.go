package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Status of a partner or a client.
type Status string

// Statuses.
const (
	Active   Status = "ACTIVE"
	Disabled Status = "DISABLED"
)

// Partner is a company integrating over the API.
type Partner struct {
	ID            uuid.UUID
	Name          string
	Status        Status
	WebhookURL    string
	WebhookSecret string // kept readable: webhooks are signed with it
	CreatedAt     time.Time
}

// Client is one OAuth client of a partner.
type Client struct {
	ID         string
	PartnerID  uuid.UUID
	SecretHash []byte
	Status     Status
	CreatedAt  time.Time
}

// Kind tells access tokens from refresh tokens.
type Kind string

// Token kinds.
const (
	Access  Kind = "access"
	Refresh Kind = "refresh"
)

// Token is a stored token: its hash and what it grants.
type Token struct {
	Hash      []byte
	Kind      Kind
	ClientID  string
	PartnerID uuid.UUID
	FamilyID  uuid.UUID // every token descended from one client_credentials grant
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // a refresh token's exchange; zero while unused
	RevokedAt time.Time // zero while valid
}

// Grant is a token as the verifier sees it, with the live status of its owners.
type Grant struct {
	Token
	ClientStatus  Status
	PartnerStatus Status
}

// Storage errors.
var (
	ErrNotFound = errors.New("auth: not found")
	// ErrAlreadyUsed is returned by Store.Rotate when the refresh token was exchanged before.
	ErrAlreadyUsed = errors.New("auth: refresh token already used")
)

// Store keeps partners, clients and token hashes.
type Store interface {
	InsertPartner(ctx context.Context, p Partner, c Client) error
	Partner(ctx context.Context, id uuid.UUID) (Partner, error)
	HasPartners(ctx context.Context) (bool, error)
	SetPartnerStatus(ctx context.Context, id uuid.UUID, s Status) error
	// InsertClient adds a client to an existing partner; ErrNotFound when
	// there is no such partner.
	InsertClient(ctx context.Context, c Client) error
	SetClientStatus(ctx context.Context, clientID string, s Status) error
	// ClientWithPartner returns a client and its partner, or ErrNotFound.
	ClientWithPartner(ctx context.Context, clientID string) (Client, Partner, error)
	InsertTokens(ctx context.Context, tokens ...Token) error
	// Grant returns the token with the given hash and its owners' status, or ErrNotFound.
	Grant(ctx context.Context, hash []byte) (Grant, error)
	// Rotate marks the refresh token used and stores its successors in one
	// transaction. ErrAlreadyUsed when it was used before (even concurrently);
	// ErrNotFound when it is unknown.
	Rotate(ctx context.Context, refreshHash []byte, usedAt time.Time, next ...Token) error
	// RevokeFamily revokes every token of a grant family.
	RevokeFamily(ctx context.Context, familyID uuid.UUID, at time.Time) error
	// RevokeToken revokes one token.
	RevokeToken(ctx context.Context, hash []byte, at time.Time) error
}

// Token value prefixes make a leaked value recognisable and keep the kinds apart.
const (
	accessPrefix  = "wat_"
	refreshPrefix = "wrt_"
	secretPrefix  = "wcs_"
	clientPrefix  = "wc_"
	hookPrefix    = "whs_"
)

// randomValue returns prefix + 32 random bytes in base64url.
func randomValue(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Hash is how secrets and tokens are stored.
func Hash(value string) []byte {
	sum := sha256.Sum256([]byte(value))
	return sum[:]
}

// equalHash compares two hashes in constant time.
func equalHash(a, b []byte) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare(a, b) == 1
}

// Lengths of the base64url part of our values: 32 random bytes for tokens,
// 16 for client ids.
const (
	tokenChars    = 43
	clientIDChars = 22
)

// looksLike is a cheap filter that spares the database values that cannot be
// ours: prefix, then size characters of base64url.
func looksLike(value, prefix string, size int) bool {
	if !strings.HasPrefix(value, prefix) || len(value) != len(prefix)+size {
		return false
	}
	for _, c := range value[len(prefix):] {
		if !base64url(c) {
			return false
		}
	}
	return true
}

func base64url(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
