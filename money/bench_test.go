package money_test

import (
	"testing"

	"github.com/perspektiva/walletd/money"
)

func BenchmarkParseJSON(b *testing.B) {
	for _, in := range []string{`12345.67`, `"12345.67"`, `1000000000.00`} {
		b.Run(in, func(b *testing.B) {
			raw := []byte(in)
			for b.Loop() {
				if _, err := money.ParseJSON(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMarshalJSON(b *testing.B) {
	a := money.Amount(1234567)
	for b.Loop() {
		if _, err := a.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormat(b *testing.B) {
	a := money.Amount(123456789)
	for b.Loop() {
		_ = a.Format(money.Plus)
	}
}
