package money_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"

	"github.com/perspektiva/walletd/money"
)

const nbsp = "\u00a0"

// parseCase is shared by the Parse and ParseJSON tables: want is the value
// when reason is empty, otherwise reason is the expected ParseError.Reason.
type parseCase struct {
	in     string
	want   money.Amount
	reason string
}

const (
	rEmpty    = "пустое значение"
	rSpace    = "пробелы не допускаются"
	rPlus     = "знак не допускается"
	rMinus    = "отрицательная сумма не допускается"
	rComma    = "дробная часть отделяется точкой"
	rExp      = "экспоненциальная запись не допускается"
	rChar     = "допускаются только цифры и точка"
	rFormat   = "неверный формат суммы"
	rNoInt    = "нет цифр перед точкой"
	rNoFrac   = "нет цифр после точки"
	rFraction = "не более двух знаков после запятой"
	rLeading  = "ведущие нули не допускаются"
	rTooLarge = "не более 1 000 000 000.00"
	rNotAmt   = "ожидается число или строка с суммой"
	rNull     = "значение обязательно"
	rBadStr   = "некорректная строка JSON"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []parseCase{
		// Accepted forms.
		{in: "12345", want: 1234500},
		{in: "12345.5", want: 1234550},
		{in: "12345.50", want: 1234550},
		{in: "12345.05", want: 1234505},
		{in: "0", want: 0},
		{in: "0.0", want: 0},
		{in: "0.00", want: 0},
		{in: "0.01", want: 1},
		{in: "0.5", want: 50},
		{in: "0.99", want: 99},
		{in: "1", want: 100},
		{in: "10", want: 1000},
		{in: "100.10", want: 10010},
		{in: "999999999.99", want: money.Max - 1},
		{in: "1000000000", want: money.Max},
		{in: "1000000000.0", want: money.Max},
		{in: "1000000000.00", want: money.Max},

		// Boundaries above Max.
		{in: "1000000000.01", reason: rTooLarge},
		{in: "1000000000.1", reason: rTooLarge},
		{in: "1000000001", reason: rTooLarge},
		{in: "9999999999.99", reason: rTooLarge},
		{in: "10000000000", reason: rTooLarge},
		{in: "9223372036854775807", reason: rTooLarge},
		{in: "92233720368547758.08", reason: rTooLarge},
		{in: "18446744073709551616", reason: rTooLarge},
		{in: strings.Repeat("9", 400), reason: rTooLarge},
		{in: strings.Repeat("9", 400) + ".99", reason: rTooLarge},

		// Empty and whitespace.
		{in: "", reason: rEmpty},
		{in: " ", reason: rSpace},
		{in: " 1", reason: rSpace},
		{in: "1 ", reason: rSpace},
		{in: "1 000", reason: rSpace},
		{in: "1\t", reason: rSpace},
		{in: "\n1", reason: rSpace},
		{in: "1\r", reason: rSpace},
		{in: "1" + nbsp + "000", reason: rSpace},
		{in: "1\u2009000", reason: rSpace},

		// Signs.
		{in: "-1", reason: rMinus},
		{in: "-0", reason: rMinus},
		{in: "-0.01", reason: rMinus},
		{in: "+1", reason: rPlus},
		{in: "+0", reason: rPlus},
		{in: "1-", reason: rChar},
		{in: "1+2", reason: rChar},
		{in: "--1", reason: rMinus},

		// Exponent notation.
		{in: "1e3", reason: rExp},
		{in: "1E3", reason: rExp},
		{in: "1e+3", reason: rExp},
		{in: "1e-2", reason: rExp},
		{in: "1.5e2", reason: rExp},
		{in: "0e0", reason: rExp},
		{in: "e", reason: rExp},

		// Fraction digits.
		{in: "12345.000", reason: rFraction},
		{in: "12345.500", reason: rFraction},
		{in: "0.001", reason: rFraction},
		{in: "1.123456789", reason: rFraction},
		{in: "1." + strings.Repeat("0", 400), reason: rFraction},

		// Leading zeros.
		{in: "007", reason: rLeading},
		{in: "00", reason: rLeading},
		{in: "01", reason: rLeading},
		{in: "00.5", reason: rLeading},
		{in: "0123.45", reason: rLeading},
		{in: strings.Repeat("0", 30) + "1", reason: rLeading},

		// Dot placement.
		{in: ".5", reason: rNoInt},
		{in: ".", reason: rNoInt},
		{in: ".50", reason: rNoInt},
		{in: "5.", reason: rNoFrac},
		{in: "0.", reason: rNoFrac},
		{in: "1.2.3", reason: rFormat},
		{in: "1..2", reason: rFormat},
		{in: "..", reason: rFormat},

		// Not decimal text at all.
		{in: "NaN", reason: rChar},
		{in: "nan", reason: rChar},
		{in: "Inf", reason: rChar},
		{in: "Infinity", reason: rChar},
		{in: "-Inf", reason: rMinus},
		{in: "+Inf", reason: rPlus},
		{in: "1,5", reason: rComma},
		{in: "1,000.00", reason: rComma},
		{in: "0x10", reason: rChar},
		{in: "1_000", reason: rChar},
		{in: "１２", reason: rChar},     // full-width digits
		{in: "١٢٣", reason: rChar},    // Arabic-Indic digits
		{in: "12\x00", reason: rChar}, // NUL
		{in: "\xff", reason: rChar},   // invalid UTF-8
		{in: "12₽", reason: rChar},
		{in: `"12"`, reason: rChar},
		{in: "null", reason: rChar},
		{in: "abc", reason: rChar},
	}
	for _, tc := range tests {
		t.Run(name(tc.in), func(t *testing.T) {
			t.Parallel()
			got, err := money.Parse(tc.in)
			checkParse(t, tc, tc.in, got, err)
		})
	}
}

func TestParseJSON(t *testing.T) {
	t.Parallel()
	tests := []parseCase{
		// Numbers.
		{in: "12345", want: 1234500},
		{in: "12345.5", want: 1234550},
		{in: "12345.00", want: 1234500},
		{in: "0", want: 0},
		{in: "0.01", want: 1},
		{in: "1000000000.00", want: money.Max},
		{in: " \t\r\n1500.00\n ", want: 150000},
		{in: "1000000000.01", reason: rTooLarge},
		{in: "12345.000", reason: rFraction},
		{in: "1e3", reason: rExp},
		{in: "1E3", reason: rExp},
		{in: "1.5e+2", reason: rExp},
		{in: "-1", reason: rMinus},
		{in: "-0", reason: rMinus},
		{in: "-0.50", reason: rMinus},
		{in: "+1", reason: rPlus},
		{in: "007", reason: rLeading},
		{in: ".5", reason: rNoInt},
		{in: "5.", reason: rNoFrac},
		{in: "NaN", reason: rChar},
		{in: "Infinity", reason: rChar},
		{in: "1 2", reason: rSpace},
		{in: "1,5", reason: rComma},
		{in: "12x", reason: rChar},
		{in: strings.Repeat("9", 1000), reason: rTooLarge},

		// Strings.
		{in: `"12345.00"`, want: 1234500},
		{in: `"12345"`, want: 1234500},
		{in: `"12345.5"`, want: 1234550},
		{in: `"0"`, want: 0},
		{in: ` "0.50" `, want: 50},
		{in: `"1000000000.00"`, want: money.Max},
		{in: `"1000000000.01"`, reason: rTooLarge},
		{in: `""`, reason: rEmpty},
		{in: `" 12"`, reason: rSpace},
		{in: `"12 "`, reason: rSpace},
		{in: `"1 000.00"`, reason: rSpace},
		{in: `"-1.00"`, reason: rMinus},
		{in: `"+1.00"`, reason: rPlus},
		{in: `"1e3"`, reason: rExp},
		{in: `"1.001"`, reason: rFraction},
		{in: `"1,50"`, reason: rComma},
		{in: `"NaN"`, reason: rChar},
		{in: `"null"`, reason: rChar},
		{in: `"007"`, reason: rLeading},

		// Escaped strings: read by their JSON meaning.
		{in: `"\u0031\u0032.50"`, want: 1250},
		{in: `"12\u002e50"`, want: 1250},
		{in: `"\u0020 12"`, reason: rSpace},
		{in: `"12\n"`, reason: rSpace},
		{in: `"12\t"`, reason: rSpace},
		{in: `"\"12\""`, reason: rChar},
		{in: `"12\\"`, reason: rChar},
		{in: `"\u00a012"`, reason: rSpace},
		{in: `"\ud800"`, reason: rChar}, // lone surrogate decodes to U+FFFD

		// Malformed strings.
		{in: `"12`, reason: rBadStr},
		{in: `"12"x`, reason: rBadStr},
		{in: `"12" "13"`, reason: rBadStr},
		{in: `"\x"`, reason: rBadStr},
		{in: "\"1\n2\"", reason: rBadStr}, // raw control character
		{in: `"\u00"`, reason: rBadStr},

		// Other JSON values.
		{in: "null", reason: rNull},
		{in: " null ", reason: rNull},
		{in: "nul", reason: rNotAmt},
		{in: "nullx", reason: rNotAmt},
		{in: "true", reason: rNotAmt},
		{in: "false", reason: rNotAmt},
		{in: "{}", reason: rNotAmt},
		{in: `{"amount":1}`, reason: rNotAmt},
		{in: "[]", reason: rNotAmt},
		{in: "[1]", reason: rNotAmt},

		// Empty input.
		{in: "", reason: rEmpty},
		{in: " ", reason: rEmpty},
		{in: "\n\t\r ", reason: rEmpty},
	}
	for _, tc := range tests {
		t.Run(name(tc.in), func(t *testing.T) {
			t.Parallel()
			got, err := money.ParseJSON([]byte(tc.in))
			checkParse(t, tc, strings.Trim(tc.in, " \t\r\n"), got, err)
		})
	}
	t.Run("nil", func(t *testing.T) {
		t.Parallel()
		_, err := money.ParseJSON(nil)
		var pe *money.ParseError
		if !errors.As(err, &pe) || pe.Reason != rEmpty {
			t.Fatalf("ParseJSON(nil) error = %v, want reason %q", err, rEmpty)
		}
	})
}

func checkParse(t *testing.T, tc parseCase, wantInput string, got money.Amount, err error) {
	t.Helper()
	if tc.reason == "" {
		if err != nil || got != tc.want {
			t.Fatalf("got (%d, %v), want (%d, nil)", got, err, tc.want)
		}
		return
	}
	var pe *money.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("got (%d, %v), want *ParseError %q", got, err, tc.reason)
	}
	if pe.Reason != tc.reason {
		t.Errorf("Reason = %q, want %q", pe.Reason, tc.reason)
	}
	if pe.Input != wantInput {
		t.Errorf("Input = %q, want %q", pe.Input, wantInput)
	}
	if got != 0 {
		t.Errorf("value on error = %d, want 0", got)
	}
	if msg := err.Error(); !strings.Contains(msg, tc.reason) || len(msg) > 300 {
		t.Errorf("Error() = %q: want the reason in it, and bounded length", msg)
	}
}

// name keeps subtest names readable for long or invisible inputs.
func name(s string) string {
	if len(s) > 24 {
		s = s[:24] + "…"
	}
	if s == "" {
		return "empty"
	}
	return strings.NewReplacer(" ", "␠", "\t", "\\t", "\n", "\\n", "\r", "\\r").Replace(s)
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a      money.Amount
		str    string
		format string // NoSign
	}{
		{0, "0.00", "0,00 ₽"},
		{1, "0.01", "0,01 ₽"},
		{50, "0.50", "0,50 ₽"},
		{99, "0.99", "0,99 ₽"},
		{100, "1.00", "1,00 ₽"},
		{1050, "10.50", "10,50 ₽"},
		{99999, "999.99", "999,99 ₽"},
		{100000, "1000.00", "1 000,00 ₽"},
		{1234500, "12345.00", "12 345,00 ₽"},
		{12345600, "123456.00", "123 456,00 ₽"},
		{123456789, "1234567.89", "1 234 567,89 ₽"},
		{100000000, "1000000.00", "1 000 000,00 ₽"},
		{money.Max, "1000000000.00", "1 000 000 000,00 ₽"},
		{-1, "-0.01", "-0,01 ₽"},
		{-150, "-1.50", "-1,50 ₽"},
		{-100000, "-1000.00", "-1 000,00 ₽"},
		{math.MaxInt64, "92233720368547758.07", "92 233 720 368 547 758,07 ₽"},
		{math.MinInt64, "-92233720368547758.08", "-92 233 720 368 547 758,08 ₽"},
		{math.MinInt64 + 1, "-92233720368547758.07", "-92 233 720 368 547 758,07 ₽"},
	}
	for _, tc := range tests {
		t.Run(tc.str, func(t *testing.T) {
			t.Parallel()
			if got := tc.a.String(); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
			b, err := tc.a.MarshalJSON()
			if err != nil || string(b) != tc.str {
				t.Errorf("MarshalJSON() = (%s, %v), want %s", b, err, tc.str)
			}
			if !json.Valid(b) {
				t.Errorf("MarshalJSON() = %s is not valid JSON", b)
			}
			// The test table writes ordinary spaces for legibility; the
			// real separator is U+00A0 and no ordinary space may appear.
			want := strings.ReplaceAll(tc.format, " ", nbsp)
			got := tc.a.Format(money.NoSign)
			if got != want {
				t.Errorf("Format(NoSign) = %q, want %q", got, want)
			}
			if strings.Contains(got, " ") {
				t.Errorf("Format(NoSign) = %q contains U+0020", got)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a    money.Amount
		sign money.Sign
		want string // spaces stand for U+00A0
	}{
		{1234500, money.Plus, "+12 345,00 ₽"},
		{25000, money.Minus, "-250,00 ₽"},
		{100000000, money.NoSign, "1 000 000,00 ₽"},
		{50, money.Plus, "+0,50 ₽"},
		{0, money.Plus, "+0,00 ₽"},
		{0, money.Minus, "-0,00 ₽"},
		{0, money.NoSign, "0,00 ₽"},
		{1, money.Minus, "-0,01 ₽"},
		{99, money.Plus, "+0,99 ₽"},
		{100, money.Minus, "-1,00 ₽"},
		{100000, money.Plus, "+1 000,00 ₽"},
		{100000, money.Minus, "-1 000,00 ₽"},
		{123456789, money.Minus, "-1 234 567,89 ₽"},
		{money.Max, money.Plus, "+1 000 000 000,00 ₽"},
		// Plus and Minus print the magnitude: never "+-" or "--".
		{-25000, money.Minus, "-250,00 ₽"},
		{-25000, money.Plus, "+250,00 ₽"},
		{-25000, money.NoSign, "-250,00 ₽"},
		{math.MinInt64, money.Plus, "+92 233 720 368 547 758,08 ₽"},
		{math.MinInt64, money.Minus, "-92 233 720 368 547 758,08 ₽"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			want := strings.ReplaceAll(tc.want, " ", nbsp)
			if got := tc.a.Format(tc.sign); got != want {
				t.Errorf("%d.Format(%d) = %q, want %q", tc.a, tc.sign, got, want)
			}
		})
	}
	t.Run("exact bytes", func(t *testing.T) {
		t.Parallel()
		// Spelled out byte by byte so the test cannot share a mistake
		// with the implementation's constants.
		want := "+12\u00a0345,00\u00a0\u20bd"
		if got := money.Amount(1234500).Format(money.Plus); got != want {
			t.Errorf("Format = %q, want %q", got, want)
		}
	})
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	type request struct {
		Amount money.Amount  `json:"amount"`
		Limit  *money.Amount `json:"limit"`
	}
	tests := []struct {
		body       string
		wantAmount money.Amount
		wantLimit  *money.Amount
		wantOut    string
	}{
		{`{"amount":1500.00,"limit":null}`, 150000, nil, `{"amount":1500.00,"limit":null}`},
		{`{"amount":"1500.5","limit":"0.01"}`, 150050, ptr(1), `{"amount":1500.50,"limit":0.01}`},
		{`{"amount": 0 , "limit": 1000000000}`, 0, ptr(money.Max), `{"amount":0.00,"limit":1000000000.00}`},
		{`{"amount":12345}`, 1234500, nil, `{"amount":12345.00,"limit":null}`},
	}
	for _, tc := range tests {
		t.Run(tc.body, func(t *testing.T) {
			t.Parallel()
			var r request
			if err := json.Unmarshal([]byte(tc.body), &r); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if r.Amount != tc.wantAmount {
				t.Errorf("Amount = %v, want %v", r.Amount, tc.wantAmount)
			}
			if (r.Limit == nil) != (tc.wantLimit == nil) || (r.Limit != nil && *r.Limit != *tc.wantLimit) {
				t.Errorf("Limit = %v, want %v", r.Limit, tc.wantLimit)
			}
			out, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(out) != tc.wantOut {
				t.Errorf("Marshal = %s, want %s", out, tc.wantOut)
			}
			var back request
			if err := json.Unmarshal(out, &back); err != nil || back.Amount != r.Amount {
				t.Errorf("round trip: (%v, %v), want %v", back.Amount, err, r.Amount)
			}
		})
	}

	refused := []struct {
		body   string
		reason string
	}{
		{`{"amount":null}`, rNull},
		{`{"amount":1.001}`, rFraction},
		{`{"amount":-5}`, rMinus},
		{`{"amount":1e3}`, rExp},
		{`{"amount":true}`, rNotAmt},
		{`{"amount":[1]}`, rNotAmt},
		{`{"amount":{"v":1}}`, rNotAmt},
		{`{"amount":" 1"}`, rSpace},
		{`{"limit":1000000000.01}`, rTooLarge},
	}
	for _, tc := range refused {
		t.Run(tc.body, func(t *testing.T) {
			t.Parallel()
			var r request
			err := json.Unmarshal([]byte(tc.body), &r)
			var pe *money.ParseError
			if !errors.As(err, &pe) || pe.Reason != tc.reason {
				t.Fatalf("Unmarshal error = %v, want *ParseError %q", err, tc.reason)
			}
		})
	}
}

func ptr(a money.Amount) *money.Amount { return &a }

// validDecimal is the protocol grammar written independently of Parse, as
// the oracle for the fuzz target.
var validDecimal = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$`)

var fuzzSeeds = []string{
	"", "0", "0.0", "0.00", "0.01", "0.5", "1", "12345", "12345.5", "12345.50",
	"12345.000", "999999999.99", "1000000000", "1000000000.00", "1000000000.01",
	"9223372036854775807", "92233720368547758.07", "18446744073709551616",
	strings.Repeat("9", 40), "007", "00", "00.5", ".5", "5.", ".", "1.2.3",
	"-1", "+1", "-0", "1e3", "1E+3", "NaN", "Inf", "-Inf", "1,5", "1 000",
	" 1", "1\n", "1" + nbsp + "000", "１２", "\xff", "0x10", `"1"`, `1\`, "null",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := money.Parse(s)

		// Independent oracle: the grammar by regexp, the value by big.Rat.
		wantOK := validDecimal.MatchString(s)
		var want money.Amount
		if wantOK {
			r, ok := new(big.Rat).SetString(s)
			if !ok {
				t.Fatalf("big.Rat cannot read %q", s)
			}
			r.Mul(r, big.NewRat(100, 1))
			maxR := big.NewRat(int64(money.Max), 1)
			if !r.IsInt() || r.Cmp(maxR) > 0 {
				wantOK = false
			} else {
				want = money.Amount(r.Num().Int64())
			}
		}
		if wantOK != (err == nil) || (wantOK && a != want) {
			t.Fatalf("Parse(%q) = (%d, %v), want ok=%v value %d", s, a, err, wantOK, want)
		}

		if err != nil {
			var pe *money.ParseError
			if !errors.As(err, &pe) || pe.Reason == "" || pe.Input != s {
				t.Fatalf("Parse(%q) error = %#v, want *ParseError with reason and input", s, err)
			}
			_ = err.Error()
		} else {
			if a < 0 || a > money.Max {
				t.Fatalf("Parse(%q) = %d, out of range", s, a)
			}
			str := a.String()
			if i := strings.IndexByte(str, '.'); i < 0 || len(str)-i-1 != 2 {
				t.Fatalf("String() = %q, want exactly two fraction digits", str)
			}
			if back, err := money.Parse(str); err != nil || back != a {
				t.Fatalf("Parse(String()) = (%d, %v), want %d", back, err, a)
			}
			// Every accepted text is also a JSON number token.
			if j, err := money.ParseJSON([]byte(s)); err != nil || j != a {
				t.Fatalf("ParseJSON(%s) = (%d, %v), want %d", s, j, err, a)
			}
		}

		if !strings.ContainsAny(s, `"\`) {
			j, jerr := money.ParseJSON([]byte(`"` + s + `"`))
			if (jerr == nil) != (err == nil) || j != a {
				t.Fatalf("ParseJSON(%q) = (%d, %v), Parse = (%d, %v)", `"`+s+`"`, j, jerr, a, err)
			}
		}
	})
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
		f.Add([]byte(`"` + s + `"`))
	}
	for _, s := range []string{
		"true", "false", "{}", "[]", `{"a":1}`, "[1]", " 12.50 ", `"\u0031"`,
		`"12\u002e5"`, `"\ud800"`, `"12`, `"12"x`, "\"1\n\"", "nul",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := money.ParseJSON(raw)
		if err != nil {
			var pe *money.ParseError
			if !errors.As(err, &pe) || pe.Reason == "" {
				t.Fatalf("ParseJSON(%q) error = %#v, want *ParseError with reason", raw, err)
			}
			_ = err.Error()
			return
		}
		if a < 0 || a > money.Max {
			t.Fatalf("ParseJSON(%q) = %d, out of range", raw, a)
		}
		if !json.Valid(raw) {
			t.Fatalf("ParseJSON accepted invalid JSON %q", raw)
		}
		out, err := a.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON: %v", err)
		}
		if back, err := money.ParseJSON(out); err != nil || back != a {
			t.Fatalf("ParseJSON(MarshalJSON()) = (%d, %v), want %d", back, err, a)
		}
		var viaStd money.Amount
		if err := json.Unmarshal(raw, &viaStd); err != nil || viaStd != a {
			t.Fatalf("json.Unmarshal(%q) = (%d, %v), want %d", raw, viaStd, err, a)
		}
	})
}
