// Package idempotency defines how the first answer to a request with an
// Idempotency-Key is kept, so that the HTTP layer and the storage engines
// agree on it without depending on each other.
package idempotency

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
)

// TTL is how long the first answer to a key is kept (PROTOCOL.md: 24 hours).
const TTL = 24 * time.Hour

// Store keeps the first answer to each (partner, Idempotency-Key).
type Store interface {
	// Begin claims the key for a request with the given hash. When the key is
	// already held (by a finished or a running request) it returns that record
	// and false. A running claim older than lease, or any record older than
	// ttl, is taken over.
	Begin(ctx context.Context, partnerID uuid.UUID, key string, hash []byte, now time.Time, lease, ttl time.Duration) (Record, bool, error)
	// Finish stores the answer of the claim made by the Begin whose now was
	// claimedAt. ErrClaimLost when that claim is no longer there: its lease ran
	// out and another request took the key over, whose claim stays as it is.
	Finish(ctx context.Context, partnerID uuid.UUID, key string, claimedAt time.Time, status int, body []byte) error
	// Release gives up the claim made at claimedAt when its request had no
	// final answer (5xx); a claim taken over since is left alone.
	Release(ctx context.Context, partnerID uuid.UUID, key string, claimedAt time.Time) error
}

// ErrClaimLost is Finish's answer when the claim is gone: another request
// took the key over after the claim's lease, or housekeeping deleted it.
var ErrClaimLost = errors.New("idempotency: the claim is no longer held")

// Record is a stored answer; Status 0 means the first request is still running.
type Record struct {
	Hash   []byte
	Status int
	Body   []byte
}
