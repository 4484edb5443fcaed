// Package money holds the wallet's one money type, Amount: an exact count of
// kopecks in an int64. Floating point never touches a sum of money; values
// enter and leave the service only as exact decimal text.
//
// The protocol forms (PROTOCOL.md sections 1 and 4.5) live here as well:
//
//   - Parse and ParseJSON read request amounts ("12345", 12345.5, "12345.00")
//     and refuse everything else with a *ParseError whose Reason can be put
//     straight into an API fieldErrors value;
//   - String and MarshalJSON write the response form, a number with exactly
//     two fraction digits (12345.00, 0.50);
//   - Format writes the report form "+12 345,00 ₽".
package money

// Amount is a sum of money in kopecks (1/100 rouble).
//
// Amounts read from the protocol are never negative, but negative values do
// occur internally (ledger postings, differences), so every method accepts
// the whole int64 range.
type Amount int64

// Max is the largest amount the protocol accepts: 1 000 000 000.00 roubles.
const Max Amount = 100_000_000_000

// kopecksPerRouble is the scale of Amount.
const kopecksPerRouble = 100

// magnitude returns |a| as a uint64, which, unlike -a, is also right for
// math.MinInt64.
func (a Amount) magnitude() uint64 {
	if a < 0 {
		return -uint64(a)
	}
	return uint64(a)
}

// String returns the amount in roubles with exactly two fraction digits and a
// '.' separator: "12345.00", "0.50", "-1.50". This is the protocol's text form;
// Parse reads it back for any amount from 0 to Max.
func (a Amount) String() string {
	return string(a.appendDecimal(make([]byte, 0, 24)))
}

// appendDecimal appends the String form of a to b.
func (a Amount) appendDecimal(b []byte) []byte {
	u := a.magnitude()
	if a < 0 {
		b = append(b, '-')
	}
	b = appendUint(b, u/kopecksPerRouble)
	frac := u % kopecksPerRouble
	return append(b, '.', byte('0'+frac/10), byte('0'+frac%10))
}

// appendUint appends the decimal digits of u to b.
func appendUint(b []byte, u uint64) []byte {
	var buf [20]byte // 20 digits hold any uint64
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	return append(b, buf[i:]...)
}

// MarshalJSON writes the amount as a JSON number with exactly two fraction
// digits (12345.00, 0.50), as the protocol requires of responses. Going
// through float64 would lose both the trailing zeros and, for large values,
// the kopecks.
func (a Amount) MarshalJSON() ([]byte, error) {
	return a.appendDecimal(make([]byte, 0, 24)), nil
}

// UnmarshalJSON reads a request amount with ParseJSON.
//
// Unlike the encoding/json convention, null is refused rather than ignored: a
// null where an amount is required is a client error, and silently leaving
// the field at zero would hide it. Fields where null has a meaning (a limit
// that "null" removes) should be *Amount: encoding/json then sets the pointer
// to nil without calling this method.
func (a *Amount) UnmarshalJSON(b []byte) error {
	v, err := ParseJSON(b)
	if err != nil {
		return err
	}
	*a = v
	return nil
}
