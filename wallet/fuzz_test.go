package wallet_test

import (
	"regexp"
	"testing"

	"github.com/perspektiva/walletd/wallet"
)

// phoneGrammar is PROTOCOL.md section 4.1 (exactly 10 digits), written
// independently of ValidPhone as the oracle. RE2's $ matches only at the end of
// the text, so a trailing newline does not pass.
var phoneGrammar = regexp.MustCompile(`^[0-9]{10}$`)

func FuzzValidPhone(f *testing.F) {
	for _, s := range []string{
		"9001234567", "0000000000", "900123456", "90012345678", "", "+79001234567", "8 900 123 45 67",
		"9001234567\n", "\n9001234567", " 9001234567", "900123456\x00", "900-123-45", "９００１２３４５６７",
		"٩٠٠١٢٣٤٥٦٧", "900123456a", "90012345６", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6", "900123456\u0667",
		"12345678901234567890",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, phone string) {
		want := phoneGrammar.MatchString(phone)
		if got := wallet.ValidPhone(phone); got != want {
			t.Fatalf("ValidPhone(%q) = %v, want %v (exactly 10 ASCII digits)", phone, got, want)
		}
	})
}
