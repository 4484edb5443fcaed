package wallet

import (
	"crypto/rand"
	"math/big"
)

// walletNumberPrefix keeps wallet numbers apart from payment card ranges.
const walletNumberPrefix = "9"

// newWalletNumber returns a random 16-digit wallet number whose last digit is a
// Luhn check digit, so a mistyped number is caught before it reaches us.
func newWalletNumber() (string, error) {
	const body = 15 - len(walletNumberPrefix)
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(body)), nil)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return "", err
	}
	digits := []byte(walletNumberPrefix + leftPad(n.String(), body))
	return string(append(digits, luhnDigit(digits))), nil
}

func leftPad(s string, width int) string {
	for len(s) < width {
		s = "0" + s
	}
	return s
}

// luhnDigit computes the check digit to append to digits.
func luhnDigit(digits []byte) byte {
	sum := 0
	double := true // the rightmost payload digit is doubled once the check digit is appended
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

// ValidLuhn reports whether a digit string passes the Luhn check.
func ValidLuhn(number string) bool {
	if len(number) < 2 {
		return false
	}
	for i := 0; i < len(number); i++ {
		if number[i] < '0' || number[i] > '9' {
			return false
		}
	}
	last := len(number) - 1
	return luhnDigit([]byte(number[:last])) == number[last]
}
