package wallet

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
)

// Payment tokens are signed, not stored. A token is a UUID (version 8) that
// carries its expiry and a random nonce, and a MAC that binds both to one
// wallet under the service's key:
//
//	bytes 0-3   expiry, Unix seconds
//	bytes 4-7   random nonce
//	bytes 8-15  HMAC-SHA256(key, walletID | expiry | nonce), truncated, with
//	            the UUID's version and variant bits set over it
//
// Issuing one writes nothing, which takes one write transaction off every
// payment; single use is kept by the unique index on the PAYMENT operations'
// tokens, in the payment's own transaction.

// TokenKeySize is the size of the payment-token key.
const TokenKeySize = 32

// newPaymentToken issues a token that lives until expires at least, and
// returns the expiry it carries: expires rounded up to a whole second, so the
// token lives the whole TTL and the answer's expiresAt is the one it keeps.
func (s *Service) newPaymentToken(walletID uuid.UUID, expires time.Time) (uuid.UUID, time.Time, error) {
	if sec := expires.Truncate(time.Second); sec.Before(expires) {
		expires = sec.Add(time.Second)
	}
	var t uuid.UUID
	binary.BigEndian.PutUint32(t[0:4], uint32(expires.Unix())) //nolint:gosec // seconds fit until 2106
	if _, err := rand.Read(t[4:8]); err != nil {
		return uuid.Nil, time.Time{}, err
	}
	t[6] = (t[6] & 0x0f) | 0x80 // version 8, in the signed half
	return s.sign(walletID, t), expires, nil
}

// sign writes the MAC of t's first half into its second half, with the
// RFC 9562 variant bits set over it.
func (s *Service) sign(walletID, t uuid.UUID) uuid.UUID {
	copy(t[8:], s.tokenMAC(walletID, t))
	t[8] = (t[8] & 0x3f) | 0x80
	return t
}

// tokenMAC is the truncated MAC over the wallet and the token's first 8 bytes.
func (s *Service) tokenMAC(walletID, t uuid.UUID) []byte {
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write(walletID[:])
	m.Write(t[:8])
	return m.Sum(nil)[:8]
}

// checkPaymentToken reports whether t was issued by this service for walletID,
// and when it expires.
func (s *Service) checkPaymentToken(walletID, t uuid.UUID) (time.Time, bool) {
	want := s.sign(walletID, t)
	if !hmac.Equal(want[:], t[:]) {
		return time.Time{}, false
	}
	return time.Unix(int64(binary.BigEndian.Uint32(t[0:4])), 0), true
}
