package money

// Sign selects the direction mark Format puts in front of an amount.
type Sign int

const (
	// NoSign writes '-' for a negative amount and nothing otherwise.
	NoSign Sign = iota
	// Plus writes '+' and the magnitude: money that came into the wallet.
	Plus
	// Minus writes '-' and the magnitude: money that left the wallet.
	Minus
)

const (
	nbsp        = "\u00a0" // groups thousands and separates the currency sign
	roubleSign  = "₽"      // U+20BD
	groupDigits = 3
)

// Format returns the report form of the amount (PROTOCOL.md 4.5): thousands
// grouped with a no-break space (U+00A0), a decimal comma, then U+00A0 and
// "₽". With Plus: "+12 345,00 ₽"; with Minus: "-250,00 ₽"; with NoSign:
// "1 000 000,00 ₽" (all spaces are U+00A0). Amounts below 1000 roubles have
// no grouping: "+0,50 ₽".
//
// Report amounts are stored positive and the direction comes from the
// operation type, so Plus and Minus print |a| with the given mark; a
// negative a under Plus is not turned into "+-". NoSign prints a negative
// amount with a leading '-'.
func (a Amount) Format(sign Sign) string {
	u := a.magnitude()
	b := make([]byte, 0, 48)
	switch {
	case sign == Plus:
		b = append(b, '+')
	case sign == Minus || a < 0:
		b = append(b, '-')
	}
	digits := appendUint(make([]byte, 0, 20), u/kopecksPerRouble)
	for i, d := range digits {
		// A group separator goes before every digit that starts a group of
		// three counted from the right, except the first digit.
		if i > 0 && (len(digits)-i)%groupDigits == 0 {
			b = append(b, nbsp...)
		}
		b = append(b, d)
	}
	frac := u % kopecksPerRouble
	b = append(b, ',', byte('0'+frac/10), byte('0'+frac%10))
	b = append(b, nbsp...)
	b = append(b, roubleSign...)
	return string(b)
}
