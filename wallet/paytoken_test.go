package wallet

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestPaymentTokens(t *testing.T) {
	t.Parallel()
	s, err := NewService(nil, Config{TokenKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	w, other := uuid.New(), uuid.New()
	expires := time.Unix(1_900_000_000, 0)
	tok, _, err := s.newPaymentToken(w, expires)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Version() != 8 || tok.Variant() != uuid.RFC4122 {
		t.Fatalf("token %s: version %d variant %v", tok, tok.Version(), tok.Variant())
	}
	if got, ok := s.checkPaymentToken(w, tok); !ok || !got.Equal(expires) {
		t.Fatalf("check(own wallet) = %v, %v", got, ok)
	}
	again, _, _ := s.newPaymentToken(w, expires)
	if again == tok {
		t.Fatal("two tokens for one wallet and expiry are equal")
	}
	if _, ok := s.checkPaymentToken(other, tok); ok {
		t.Fatal("a token is valid for another wallet")
	}
	for i := range 16 {
		forged := tok
		forged[i] ^= 0x01
		if _, ok := s.checkPaymentToken(w, forged); ok {
			t.Fatalf("a token with byte %d changed is still valid", i)
		}
	}
	otherKey, _ := NewService(nil, Config{TokenKey: []byte("another key, another service....")})
	if _, ok := otherKey.checkPaymentToken(w, tok); ok {
		t.Fatal("a token is valid under another key")
	}
	if _, ok := s.checkPaymentToken(w, uuid.New()); ok {
		t.Fatal("a random UUID is a valid token")
	}
}
