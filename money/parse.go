package money

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Reasons for refusing an amount. They are short Russian texts because they
// go, unchanged, into the fieldErrors of a 400 answer.
const (
	reasonEmpty         = "пустое значение"
	reasonSpace         = "пробелы не допускаются"
	reasonPlus          = "знак не допускается"
	reasonMinus         = "отрицательная сумма не допускается"
	reasonComma         = "дробная часть отделяется точкой"
	reasonExponent      = "экспоненциальная запись не допускается"
	reasonChar          = "допускаются только цифры и точка"
	reasonFormat        = "неверный формат суммы"
	reasonNoIntDigits   = "нет цифр перед точкой"
	reasonNoFracDigits  = "нет цифр после точки"
	reasonFraction      = "не более двух знаков после запятой"
	reasonLeadingZero   = "ведущие нули не допускаются"
	reasonTooLarge      = "не более 1 000 000 000.00"
	reasonNotAmount     = "ожидается число или строка с суммой"
	reasonNull          = "значение обязательно"
	reasonInvalidString = "некорректная строка JSON"
)

// ReasonTooLarge is the refusal of an amount above Max, for code that checks
// an amount it already holds in the same words as Parse.
const ReasonTooLarge = reasonTooLarge

// ParseError says why a protocol amount was refused. Reason is a short
// Russian text suitable for an API fieldErrors value (e.g. "не более двух
// знаков после запятой").
type ParseError struct {
	Input  string // the refused text; for ParseJSON, the value without surrounding whitespace
	Reason string
}

// maxQuoted bounds how much of the input Error repeats, so that a hostile
// multi-megabyte value cannot flood the logs.
const maxQuoted = 64

func (e *ParseError) Error() string {
	in := e.Input
	if len(in) > maxQuoted {
		in = in[:maxQuoted] + "..."
	}
	return fmt.Sprintf("money: invalid amount %q: %s", in, e.Reason)
}

func refuse(s, reason string) (Amount, error) {
	return 0, &ParseError{Input: s, Reason: reason}
}

// maxIntDigits is the number of digits in the rouble part of Max
// (1 000 000 000). Anything longer is too large, which also keeps the
// accumulation below far from int64 overflow.
const maxIntDigits = 10

// Parse reads protocol decimal text: ASCII digits, optionally followed by '.'
// and one or two digits ("12345", "12345.5", "12345.50", "0", "0.01").
//
// Everything else is refused with a *ParseError: empty text, whitespace
// anywhere, a sign, exponent notation, more than two fraction digits, leading
// zeros ("007"; "0.5" is fine), ".5", "5.", "NaN", "Inf", commas, non-ASCII
// digits, and values above Max. The grammar is deliberately narrow: a strict
// subset of the JSON number grammar, so every accepted text is also a valid
// JSON number, and there is exactly one reading of every accepted value.
//
// Zero is accepted; callers that need a positive amount check it themselves.
func Parse(s string) (Amount, error) {
	if s == "" {
		return refuse(s, reasonEmpty)
	}
	// Classify the offending characters first so that the Reason names the
	// actual problem rather than a generic "bad format".
	var hasExp, hasOther bool
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			return refuse(s, reasonSpace)
		case r == ',':
			return refuse(s, reasonComma)
		case r == 'e' || r == 'E':
			hasExp = true
		case r == '+' || r == '-':
			// Handled below: a leading sign is reported as such, a sign
			// inside an exponent as exponent notation.
		case r == '.' || (r >= '0' && r <= '9'):
		default:
			hasOther = true
		}
	}
	switch {
	case s[0] == '-':
		return refuse(s, reasonMinus)
	case s[0] == '+':
		return refuse(s, reasonPlus)
	case hasExp && !hasOther:
		return refuse(s, reasonExponent)
	case hasExp || hasOther || strings.ContainsAny(s, "+-"):
		return refuse(s, reasonChar)
	}

	// Only ASCII digits and dots remain.
	intPart, fracPart, hasDot := strings.Cut(s, ".")
	switch {
	case strings.Contains(fracPart, "."):
		return refuse(s, reasonFormat)
	case intPart == "":
		return refuse(s, reasonNoIntDigits)
	case hasDot && fracPart == "":
		return refuse(s, reasonNoFracDigits)
	case len(fracPart) > 2:
		return refuse(s, reasonFraction)
	case len(intPart) > 1 && intPart[0] == '0':
		return refuse(s, reasonLeadingZero)
	case len(intPart) > maxIntDigits:
		return refuse(s, reasonTooLarge)
	}

	var v int64
	for i := 0; i < len(intPart); i++ {
		v = v*10 + int64(intPart[i]-'0')
	}
	v *= kopecksPerRouble
	switch len(fracPart) {
	case 1:
		v += int64(fracPart[0]-'0') * 10
	case 2:
		v += int64(fracPart[0]-'0')*10 + int64(fracPart[1]-'0')
	}
	if Amount(v) > Max {
		return refuse(s, reasonTooLarge)
	}
	return Amount(v), nil
}

// ParseJSON reads a raw JSON value that is either a JSON number token
// (12345, 12345.5, 12345.00) or a JSON string holding protocol decimal text
// ("12345.00"), by the same rules as Parse. JSON whitespace around the value
// is allowed, since it may come from a json.RawMessage.
//
// A string is read by its JSON meaning, so escapes are decoded first
// ("\u0031" is "1"); what they decode to must still pass Parse. null,
// true/false, objects, arrays, exponents (1e3) and negative numbers are
// refused with a *ParseError.
//
// The number token is never converted to float64: it is read as text, which
// is the only way to keep 0.1 + 0.2 exact and to see that 12345.000 has
// three fraction digits.
func ParseJSON(raw []byte) (Amount, error) {
	tok := trimJSONSpace(raw)
	if len(tok) == 0 {
		return refuse("", reasonEmpty)
	}
	switch tok[0] {
	case '"':
		var s string
		if inner := tok[1:]; len(inner) > 0 && inner[len(inner)-1] == '"' && isPlain(inner[:len(inner)-1]) {
			// The common case, "12345.00": nothing to unescape.
			s = string(inner[:len(inner)-1])
		} else if err := json.Unmarshal(tok, &s); err != nil {
			return refuse(string(tok), reasonInvalidString)
		}
		a, err := Parse(s)
		var pe *ParseError
		if errors.As(err, &pe) {
			// Report the JSON text the client sent, not the decoded
			// string, so that the message matches the request body.
			pe.Input = string(tok)
		}
		return a, err
	case 'n':
		if string(tok) == "null" {
			return refuse(string(tok), reasonNull)
		}
		return refuse(string(tok), reasonNotAmount)
	case 't', 'f', '{', '[':
		return refuse(string(tok), reasonNotAmount)
	}
	// A bare token. Parse accepts only a subset of the JSON number grammar,
	// so whatever it accepts is a well-formed JSON number; everything else
	// (-1, 1e3, 1.234, NaN, 1 2) gets Parse's more specific reason.
	return Parse(string(tok))
}

// trimJSONSpace removes the four JSON whitespace bytes from both ends of b.
func trimJSONSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// isPlain reports whether b is the inside of a JSON string that needs no
// decoding: printable ASCII without quotes or backslashes.
func isPlain(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
