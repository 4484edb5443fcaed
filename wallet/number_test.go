package wallet

import (
	"strings"
	"testing"
)

func TestNewWalletNumber(t *testing.T) {
	t.Parallel()
	const n = 1000
	seen := make(map[string]bool, n)
	for range n {
		num, err := newWalletNumber()
		if err != nil {
			t.Fatalf("newWalletNumber: %v", err)
		}
		if len(num) != 16 || strings.Trim(num, "0123456789") != "" {
			t.Fatalf("number %q: want 16 digits", num)
		}
		if !strings.HasPrefix(num, walletNumberPrefix) {
			t.Fatalf("number %q: want prefix %q", num, walletNumberPrefix)
		}
		if !ValidLuhn(num) {
			t.Fatalf("number %q fails the Luhn check", num)
		}
		if seen[num] {
			t.Fatalf("number %q issued twice", num)
		}
		seen[num] = true
	}
}

func TestValidLuhn(t *testing.T) {
	t.Parallel()
	cases := []struct {
		number string
		want   bool
	}{
		{"4539578763621486", true},
		{"4539578763621487", false},
		{"4539578763621480", false},
		{"79927398713", true},
		{"79927398710", false},
		{"4111111111111111", true},
		{"4111111111111112", false},
		{"5555555555554444", true},
		{"378282246310005", true}, // odd length
		{"9000000000000001", true},
		{"9000000000000000", false},
		{"00", true},
		{"18", true},
		{"0", false}, // a check digit alone
		{"", false},
		{"abcdefghijklmnop", false},
		{"453957876362148a", false},
		{"4539 5787 6362 1486", false},
		{"-4539578763621486", false},
		{"４539578763621486", false}, // full-width digit
	}
	for _, c := range cases {
		if got := ValidLuhn(c.number); got != c.want {
			t.Errorf("ValidLuhn(%q) = %v, want %v", c.number, got, c.want)
		}
	}
}

// TestLuhnCatchesSingleDigitErrors: every single mistyped digit of a valid
// number is caught, and so is every swap of two different adjacent digits
// except 0<->9, which Luhn cannot see.
func TestLuhnCatchesSingleDigitErrors(t *testing.T) {
	t.Parallel()
	for range 50 {
		num, err := newWalletNumber()
		if err != nil {
			t.Fatalf("newWalletNumber: %v", err)
		}
		for i := range len(num) {
			for d := byte('0'); d <= '9'; d++ {
				if d == num[i] {
					continue
				}
				typo := num[:i] + string(d) + num[i+1:]
				if ValidLuhn(typo) {
					t.Fatalf("ValidLuhn(%q) = true: a mistyped digit of %q", typo, num)
				}
			}
			if i+1 < len(num) && num[i] != num[i+1] {
				a, b := num[i], num[i+1]
				if (a == '0' && b == '9') || (a == '9' && b == '0') {
					continue
				}
				swapped := num[:i] + string(b) + string(a) + num[i+2:]
				if ValidLuhn(swapped) {
					t.Fatalf("ValidLuhn(%q) = true: adjacent digits of %q swapped", swapped, num)
				}
			}
		}
	}
}
