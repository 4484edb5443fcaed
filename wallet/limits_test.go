package wallet

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/perspektiva/walletd/money"
)

func showOptional(o Optional) string {
	if !o.Valid {
		return "null"
	}
	return o.Value.String()
}

func showEnabled(b *bool) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprint(*b)
}

func showOverrides(o Overrides) string {
	s := "balance=" + showOptional(o.Balance)
	for _, t := range LimitedTypes {
		v := o.Type(t)
		s += fmt.Sprintf(" %s{%s/%s enabled=%s}", t, showOptional(v.OneTime), showOptional(v.Month), showEnabled(v.Enabled))
	}
	return s
}

func enabledPtr(b bool) *bool { return &b }

// TestDefaultSystemLimits checks the table of PROTOCOL.md section 5.
func TestDefaultSystemLimits(t *testing.T) {
	t.Parallel()
	none := Optional{}
	r := func(roubles int64) Optional { return Some(money.Amount(roubles * 100)) }
	cases := []struct {
		level                        Identification
		balance, statutory           Optional
		creditOne, creditMonth       Optional
		paymentOne, paymentMonth     Optional
		debitOne, debitMonth         Optional
		creditOn, paymentOn, debitOn bool
	}{
		{Elementary, r(15_000), r(40_000), r(15_000), none, r(15_000), r(40_000), r(0), r(0), true, true, false},
		{Personalized, r(60_000), r(200_000), r(60_000), none, r(60_000), r(200_000), r(60_000), r(200_000), true, true, true},
		{Identified, r(600_000), none, r(600_000), none, r(600_000), none, r(600_000), none, true, true, true},
	}
	def := DefaultSystemLimits()
	for _, c := range cases {
		t.Run(c.level.String(), func(t *testing.T) {
			t.Parallel()
			got := def.Level(c.level)
			check := func(name string, got, want Optional) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %s, want %s", name, showOptional(got), showOptional(want))
				}
			}
			check("balanceLimit", got.Balance, c.balance)
			check("statutoryMonth", got.StatutoryMonth, c.statutory)
			check("CREDIT.oneTime", got.Credit.OneTime, c.creditOne)
			check("CREDIT.month", got.Credit.Month, c.creditMonth)
			check("PAYMENT.oneTime", got.Payment.OneTime, c.paymentOne)
			check("PAYMENT.month", got.Payment.Month, c.paymentMonth)
			check("DEBIT.oneTime", got.Debit.OneTime, c.debitOne)
			check("DEBIT.month", got.Debit.Month, c.debitMonth)
			if got.Credit.Enabled != c.creditOn || got.Payment.Enabled != c.paymentOn || got.Debit.Enabled != c.debitOn {
				t.Errorf("enabled CREDIT/PAYMENT/DEBIT = %v/%v/%v, want %v/%v/%v",
					got.Credit.Enabled, got.Payment.Enabled, got.Debit.Enabled, c.creditOn, c.paymentOn, c.debitOn)
			}
			// Type agrees with the fields.
			if got.Type(Credit) != got.Credit || got.Type(Payment) != got.Payment || got.Type(Debit) != got.Debit {
				t.Error("LevelLimits.Type disagrees with the fields")
			}
			if rt := got.Type(Refund); rt != (TypeLimits{Enabled: true}) {
				t.Errorf("Type(REFUND) = %+v, want enabled with no limits", rt)
			}
		})
	}
}

func TestEffective(t *testing.T) {
	t.Parallel()
	def := DefaultSystemLimits()
	elem, pers := def.Level(Elementary), def.Level(Personalized)

	t.Run("NoOverridesIsSystem", func(t *testing.T) {
		t.Parallel()
		for lvl := Elementary; lvl <= Identified; lvl++ {
			if got := Effective(def.Level(lvl), Overrides{}); got != def.Level(lvl) {
				t.Errorf("%s: Effective(no overrides) = %+v, want the system's %+v", lvl, got, def.Level(lvl))
			}
		}
	})

	t.Run("MinOfPartnerAndSystem", func(t *testing.T) {
		t.Parallel()
		o := Overrides{
			Balance: Some(100_00),                                                   // below the system's 15 000
			Credit:  TypeOverride{OneTime: Some(20_000_00), Month: Some(50_000_00)}, // above; system month is absent
			Payment: TypeOverride{OneTime: Some(0), Month: Some(39_999_99)},         // zero is a limit, not "absent"
			Debit:   TypeOverride{OneTime: Some(1_00)},                              // above the system's 0: 0 wins
		}
		got := Effective(elem, o)
		cases := []struct {
			name      string
			got, want Optional
		}{
			{"balanceLimit", got.Balance, Some(100_00)},
			{"CREDIT.oneTime", got.Credit.OneTime, Some(15_000_00)},
			{"CREDIT.month", got.Credit.Month, Some(50_000_00)},
			{"PAYMENT.oneTime", got.Payment.OneTime, Some(0)},
			{"PAYMENT.month", got.Payment.Month, Some(39_999_99)},
			{"DEBIT.oneTime", got.Debit.OneTime, Some(0)},
			{"DEBIT.month", got.Debit.Month, Some(0)},
			{"statutoryMonth", got.StatutoryMonth, Some(40_000_00)},
		}
		for _, c := range cases {
			if c.got != c.want {
				t.Errorf("%s = %s, want %s", c.name, showOptional(c.got), showOptional(c.want))
			}
		}
	})

	t.Run("AbsentPartnerValueIsSystem", func(t *testing.T) {
		t.Parallel()
		got := Effective(pers, Overrides{Payment: TypeOverride{Month: Some(1_000_00)}})
		if got.Payment.OneTime != pers.Payment.OneTime || got.Balance != pers.Balance || got.Debit != pers.Debit {
			t.Errorf("Effective = %+v: absent partner values must fall back to the system's %+v", got, pers)
		}
		if got.Payment.Month != Some(1_000_00) {
			t.Errorf("PAYMENT.month = %s, want 1000.00", showOptional(got.Payment.Month))
		}
	})

	t.Run("EnabledIsAnd", func(t *testing.T) {
		t.Parallel()
		cases := []struct {
			sys     bool
			partner *bool
			want    bool
		}{
			{true, nil, true},
			{true, enabledPtr(true), true},
			{true, enabledPtr(false), false},
			{false, nil, false},
			{false, enabledPtr(true), false},
			{false, enabledPtr(false), false},
		}
		for _, c := range cases {
			sys := pers
			sys.Debit.Enabled = c.sys
			got := Effective(sys, Overrides{Debit: TypeOverride{Enabled: c.partner}})
			if got.Debit.Enabled != c.want {
				t.Errorf("system %v, partner %s: enabled = %v, want %v", c.sys, showEnabled(c.partner), got.Debit.Enabled, c.want)
			}
			if got.Credit.Enabled != true || got.Payment.Enabled != true {
				t.Errorf("other types changed: CREDIT %v, PAYMENT %v", got.Credit.Enabled, got.Payment.Enabled)
			}
		}
		// At ELEMENTARY the partner cannot switch withdrawals on.
		if Effective(elem, Overrides{Debit: TypeOverride{Enabled: enabledPtr(true)}}).Debit.Enabled {
			t.Error("ELEMENTARY DEBIT enabled by a partner override")
		}
	})
}

func TestWithinDefaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(s *SystemLimits)
		want   string // substring of the error; "" for none
	}{
		{"defaults", func(*SystemLimits) {}, ""},
		{"lower balance", func(s *SystemLimits) { s[Elementary].Balance = Some(10_000_00) }, ""},
		{"lower everything to zero", func(s *SystemLimits) {
			for lvl := range s {
				s[lvl].Balance, s[lvl].StatutoryMonth = Some(0), Some(0)
				for _, typ := range LimitedTypes {
					s[lvl].setType(typ, TypeLimits{OneTime: Some(0), Month: Some(0)})
				}
			}
		}, ""},
		{"add a month limit where none", func(s *SystemLimits) { s[Identified].Payment.Month = Some(1_000_000_00) }, ""},
		{"add a statutory cap where none", func(s *SystemLimits) { s[Identified].StatutoryMonth = Some(1_000_000_00) }, ""},
		{"disable a type", func(s *SystemLimits) { s[Personalized].Debit.Enabled = false }, ""},
		{"higher balance", func(s *SystemLimits) { s[Elementary].Balance = Some(15_000_01) }, "ELEMENTARY.balanceLimit"},
		{"no balance limit", func(s *SystemLimits) { s[Identified].Balance = Optional{} }, "IDENTIFIED.balanceLimit"},
		{"higher statutory cap", func(s *SystemLimits) { s[Personalized].StatutoryMonth = Some(200_000_01) }, "PERSONALIZED.statutoryMonthLimit"},
		{"no statutory cap", func(s *SystemLimits) { s[Elementary].StatutoryMonth = Optional{} }, "ELEMENTARY.statutoryMonthLimit"},
		{"higher one-time", func(s *SystemLimits) { s[Identified].Credit.OneTime = Some(600_000_01) }, "IDENTIFIED.CREDIT.oneTimeLimit"},
		{"higher month", func(s *SystemLimits) { s[Elementary].Payment.Month = Some(40_000_01) }, "ELEMENTARY.PAYMENT.monthLimit"},
		{"DEBIT amounts at ELEMENTARY", func(s *SystemLimits) { s[Elementary].Debit.OneTime = Some(1) }, "ELEMENTARY.DEBIT.oneTimeLimit"},
		{"enable DEBIT at ELEMENTARY", func(s *SystemLimits) { s[Elementary].Debit.Enabled = true }, "ELEMENTARY.DEBIT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := DefaultSystemLimits()
			c.change(&s)
			err := s.WithinDefaults()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("WithinDefaults = %v, want nil", err)
			case c.want != "" && err == nil:
				t.Fatalf("WithinDefaults = nil, want an error naming %s", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("WithinDefaults = %v, want it to name %s", err, c.want)
			}
			// NewService applies the same rule to its configuration.
			_, err = NewService(nil, Config{Limits: s})
			if (err == nil) != (c.want == "") {
				t.Errorf("NewService with these limits: err = %v, want error %v", err, c.want != "")
			}
		})
	}
}

func TestNewServiceDefaults(t *testing.T) {
	t.Parallel()
	svc, err := NewService(nil, Config{})
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	if svc.SystemLimits() != DefaultSystemLimits() {
		t.Error("zero Config.Limits: want DefaultSystemLimits")
	}
	if svc.Location() == nil || svc.Location().String() != "Europe/Moscow" {
		t.Errorf("Location = %v, want Europe/Moscow", svc.Location())
	}
}

func TestLimitsPatchApply(t *testing.T) {
	t.Parallel()
	elem := DefaultSystemLimits().Level(Elementary)
	ident := DefaultSystemLimits().Level(Identified)
	set := func(a money.Amount) Patch { return Patch{Set: true, Value: Some(a)} }
	null := Patch{Set: true}
	existing := Overrides{
		Balance: Some(10_000_00),
		Credit:  TypeOverride{OneTime: Some(5_000_00), Month: Some(20_000_00), Enabled: enabledPtr(true)},
		Payment: TypeOverride{OneTime: Some(1_000_00)},
	}
	types := func(m map[OperationType]TypePatch) map[OperationType]TypePatch { return m }

	cases := []struct {
		name   string
		sys    LevelLimits
		cur    Overrides
		patch  LimitsPatch
		want   Overrides
		fields []string // refused fields; nil when the patch applies
	}{
		{
			name: "empty patch changes nothing", sys: elem, cur: existing,
			want: existing,
		},
		{
			name: "values replace, absent fields stay", sys: elem, cur: existing,
			patch: LimitsPatch{Balance: set(14_000_00), Types: types(map[OperationType]TypePatch{
				Payment: {Month: set(30_000_00)},
			})},
			want: Overrides{
				Balance: Some(14_000_00),
				Credit:  existing.Credit,
				Payment: TypeOverride{OneTime: Some(1_000_00), Month: Some(30_000_00)},
			},
		},
		{
			name: "null removes the partner's value", sys: elem, cur: existing,
			patch: LimitsPatch{Balance: null, Types: types(map[OperationType]TypePatch{
				Credit:  {OneTime: null, Month: null},
				Payment: {OneTime: null},
			})},
			want: Overrides{Credit: TypeOverride{Enabled: enabledPtr(true)}},
		},
		{
			name: "zero is a value, equal to system is allowed", sys: elem, cur: Overrides{},
			patch: LimitsPatch{Balance: set(15_000_00), Types: types(map[OperationType]TypePatch{
				Credit:  {OneTime: set(0)},
				Payment: {OneTime: set(15_000_00), Month: set(40_000_00)},
				Debit:   {OneTime: set(0), Month: set(0), Enabled: enabledPtr(false)},
			})},
			want: Overrides{
				Balance: Some(15_000_00),
				Credit:  TypeOverride{OneTime: Some(0)},
				Payment: TypeOverride{OneTime: Some(15_000_00), Month: Some(40_000_00)},
				Debit:   TypeOverride{OneTime: Some(0), Month: Some(0), Enabled: enabledPtr(false)},
			},
		},
		{
			name: "any month value where the system has none", sys: elem, cur: Overrides{},
			patch: LimitsPatch{Types: types(map[OperationType]TypePatch{Credit: {Month: set(money.Max)}})},
			want:  Overrides{Credit: TypeOverride{Month: Some(money.Max)}},
		},
		{
			name: "enabled toggles", sys: ident, cur: existing,
			patch: LimitsPatch{Types: types(map[OperationType]TypePatch{
				Credit: {Enabled: enabledPtr(false)},
				Debit:  {Enabled: enabledPtr(true)},
			})},
			want: Overrides{
				Balance: existing.Balance,
				Credit:  TypeOverride{OneTime: Some(5_000_00), Month: Some(20_000_00), Enabled: enabledPtr(false)},
				Payment: existing.Payment,
				Debit:   TypeOverride{Enabled: enabledPtr(true)},
			},
		},
		{
			name: "REFUND carries no settings", sys: elem, cur: existing,
			patch: LimitsPatch{Types: types(map[OperationType]TypePatch{Refund: {OneTime: set(1)}})},
			want:  existing,
		},
		{
			name: "balance above system", sys: elem, cur: existing,
			patch:  LimitsPatch{Balance: set(15_000_01)},
			fields: []string{"balanceLimit"},
		},
		{
			name: "one-time above system", sys: elem, cur: existing,
			patch:  LimitsPatch{Types: types(map[OperationType]TypePatch{Payment: {OneTime: set(15_000_01)}})},
			fields: []string{"operationLimits.PAYMENT.oneTimeLimit"},
		},
		{
			name: "month above system", sys: elem, cur: existing,
			patch:  LimitsPatch{Types: types(map[OperationType]TypePatch{Payment: {Month: set(40_000_01)}})},
			fields: []string{"operationLimits.PAYMENT.monthLimit"},
		},
		{
			name: "DEBIT amount at ELEMENTARY", sys: elem, cur: existing,
			patch:  LimitsPatch{Types: types(map[OperationType]TypePatch{Debit: {OneTime: set(1)}})},
			fields: []string{"operationLimits.DEBIT.oneTimeLimit"},
		},
		{
			name: "enabling DEBIT at ELEMENTARY", sys: elem, cur: existing,
			patch:  LimitsPatch{Types: types(map[OperationType]TypePatch{Debit: {Enabled: enabledPtr(true)}})},
			fields: []string{"operationLimits.DEBIT.enabled"},
		},
		{
			name: "every refused field is named and nothing applies", sys: elem, cur: existing,
			patch: LimitsPatch{Balance: set(20_000_00), Types: types(map[OperationType]TypePatch{
				Credit:  {OneTime: set(15_000_01), Month: set(1_00)},
				Payment: {OneTime: null, Month: set(40_000_01)},
				Debit:   {Enabled: enabledPtr(true)},
			})},
			fields: []string{"balanceLimit", "operationLimits.CREDIT.oneTimeLimit",
				"operationLimits.PAYMENT.monthLimit", "operationLimits.DEBIT.enabled"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			before := showOverrides(c.cur)
			got, err := c.patch.apply(c.sys, c.cur)
			if showOverrides(c.cur) != before {
				t.Fatalf("apply changed its input: %s, was %s", showOverrides(c.cur), before)
			}
			if c.fields == nil {
				if err != nil {
					t.Fatalf("apply = %v, want success", err)
				}
				if g, w := showOverrides(got), showOverrides(c.want); g != w {
					t.Errorf("apply = %s\nwant    %s", g, w)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeValidation {
				t.Fatalf("apply = %v, want %s", err, CodeValidation)
			}
			if len(e.Fields) != len(c.fields) {
				t.Errorf("fieldErrors = %v, want exactly %v", e.Fields, c.fields)
			}
			for _, f := range c.fields {
				if e.Fields[f] == "" {
					t.Errorf("fieldErrors = %v, want a reason for %s", e.Fields, f)
				}
			}
			if g, w := showOverrides(got), showOverrides(c.cur); g != w {
				t.Errorf("refused apply returned %s, want the current overrides %s", g, w)
			}
		})
	}
}

// TestLimitsPatchApplyNegative: PROTOCOL.md 4.9 refuses a negative limit with a
// field error.
func TestLimitsPatchApplyNegative(t *testing.T) {
	t.Parallel()
	elem := DefaultSystemLimits().Level(Elementary)
	p := LimitsPatch{Types: map[OperationType]TypePatch{Payment: {OneTime: Patch{Set: true, Value: Some(-1)}}}}
	_, err := p.apply(elem, Overrides{})
	if err == nil {
		t.Fatal("apply accepted a negative limit")
	}
	var e *Error
	if !errors.As(err, &e) || e.Fields["operationLimits.PAYMENT.oneTimeLimit"] == "" {
		t.Errorf("apply(negative) = %v, want a field error for operationLimits.PAYMENT.oneTimeLimit", err)
	}
}
