package wallet

import (
	"fmt"

	"github.com/perspektiva/walletd/money"
)

// Optional is an amount that may be absent. An absent limit means "no limit";
// an absent partner value means "use the system's".
type Optional struct {
	Value money.Amount
	Valid bool
}

// Some returns a present Optional.
func Some(a money.Amount) Optional { return Optional{Value: a, Valid: true} }

// min returns the stricter of two limits; an absent limit is no limit.
func (o Optional) min(p Optional) Optional {
	switch {
	case !o.Valid:
		return p
	case !p.Valid:
		return o
	case p.Value < o.Value:
		return p
	}
	return o
}

// above reports whether o allows more than the ceiling c.
func (o Optional) above(c Optional) bool {
	return c.Valid && (!o.Valid || o.Value > c.Value)
}

// LimitedTypes are the operation types that carry limit settings. REFUND has
// none: it is bound only by the balance limit.
var LimitedTypes = [...]OperationType{Credit, Payment, Debit}

// TypeLimits are the limits of one operation type.
type TypeLimits struct {
	OneTime Optional
	Month   Optional
	Enabled bool
}

// LevelLimits are the system limits of one identification level.
type LevelLimits struct {
	Balance        Optional
	StatutoryMonth Optional // PAYMENT + DEBIT together, per calendar month
	Credit         TypeLimits
	Payment        TypeLimits
	Debit          TypeLimits
}

// Type returns the limits of t; REFUND has no limits of its own.
func (l LevelLimits) Type(t OperationType) TypeLimits {
	switch t {
	case Credit:
		return l.Credit
	case Payment:
		return l.Payment
	case Debit:
		return l.Debit
	}
	return TypeLimits{Enabled: true}
}

func (l *LevelLimits) setType(t OperationType, v TypeLimits) {
	switch t {
	case Credit:
		l.Credit = v
	case Payment:
		l.Payment = v
	case Debit:
		l.Debit = v
	}
}

// SystemLimits is the operator's table of limits per identification level.
type SystemLimits [3]LevelLimits

// Level returns the limits of level i.
func (s SystemLimits) Level(i Identification) LevelLimits { return s[i] }

// rub converts whole roubles to an Amount for the limit table.
func rub(r int64) money.Amount { return money.Amount(r * 100) }

// DefaultSystemLimits returns the limits of PROTOCOL.md section 5 (161-FZ art. 10).
func DefaultSystemLimits() SystemLimits {
	return SystemLimits{
		Elementary: {
			Balance:        Some(rub(15_000)),
			StatutoryMonth: Some(rub(40_000)),
			Credit:         TypeLimits{OneTime: Some(rub(15_000)), Enabled: true},
			Payment:        TypeLimits{OneTime: Some(rub(15_000)), Month: Some(rub(40_000)), Enabled: true},
			// Non-identified e-money may be spent only with legal entities: no withdrawals.
			Debit: TypeLimits{OneTime: Some(0), Month: Some(0), Enabled: false},
		},
		Personalized: {
			Balance:        Some(rub(60_000)),
			StatutoryMonth: Some(rub(200_000)),
			Credit:         TypeLimits{OneTime: Some(rub(60_000)), Enabled: true},
			Payment:        TypeLimits{OneTime: Some(rub(60_000)), Month: Some(rub(200_000)), Enabled: true},
			Debit:          TypeLimits{OneTime: Some(rub(60_000)), Month: Some(rub(200_000)), Enabled: true},
		},
		Identified: {
			Balance: Some(rub(600_000)),
			Credit:  TypeLimits{OneTime: Some(rub(600_000)), Enabled: true},
			Payment: TypeLimits{OneTime: Some(rub(600_000)), Enabled: true},
			Debit:   TypeLimits{OneTime: Some(rub(600_000)), Enabled: true},
		},
	}
}

// WithinDefaults returns an error naming the first value of s that is looser than
// the statutory defaults: the operator may lower limits by configuration, never raise them.
func (s SystemLimits) WithinDefaults() error {
	def := DefaultSystemLimits()
	for lvl := Elementary; lvl <= Identified; lvl++ {
		got, want := s[lvl], def[lvl]
		if got.Balance.above(want.Balance) {
			return fmt.Errorf("%s.balanceLimit is above the statutory %s", lvl, want.Balance.Value)
		}
		if got.StatutoryMonth.above(want.StatutoryMonth) {
			return fmt.Errorf("%s.statutoryMonthLimit is above the statutory %s", lvl, want.StatutoryMonth.Value)
		}
		for _, t := range LimitedTypes {
			g, w := got.Type(t), want.Type(t)
			if g.OneTime.above(w.OneTime) {
				return fmt.Errorf("%s.%s.oneTimeLimit is above the default %s", lvl, t, w.OneTime.Value)
			}
			if g.Month.above(w.Month) {
				return fmt.Errorf("%s.%s.monthLimit is above the default %s", lvl, t, w.Month.Value)
			}
			if g.Enabled && !w.Enabled {
				return fmt.Errorf("%s.%s cannot be enabled: the law forbids it at this level", lvl, t)
			}
		}
	}
	return nil
}

// TypeOverride is a partner's own setting for one operation type; absent fields
// fall back to the system's.
type TypeOverride struct {
	OneTime Optional
	Month   Optional
	Enabled *bool
}

// Overrides are the partner's own limit settings for one wallet. They survive a
// change of identification; the effective value is always the stricter one.
type Overrides struct {
	Balance Optional
	Credit  TypeOverride
	Payment TypeOverride
	Debit   TypeOverride
}

// Type returns the override of t.
func (o Overrides) Type(t OperationType) TypeOverride {
	switch t {
	case Credit:
		return o.Credit
	case Payment:
		return o.Payment
	case Debit:
		return o.Debit
	}
	return TypeOverride{}
}

func (o *Overrides) setType(t OperationType, v TypeOverride) {
	switch t {
	case Credit:
		o.Credit = v
	case Payment:
		o.Payment = v
	case Debit:
		o.Debit = v
	}
}

// Effective merges system limits with a partner's overrides: min(partner, system),
// and enabled only where both allow it.
func Effective(sys LevelLimits, o Overrides) LevelLimits {
	eff := sys
	eff.Balance = sys.Balance.min(o.Balance)
	for _, t := range LimitedTypes {
		s, p := sys.Type(t), o.Type(t)
		e := TypeLimits{OneTime: s.OneTime.min(p.OneTime), Month: s.Month.min(p.Month), Enabled: s.Enabled}
		if p.Enabled != nil {
			e.Enabled = s.Enabled && *p.Enabled
		}
		eff.setType(t, e)
	}
	return eff
}

// Patch is one field of a limits request: absent (Set false) leaves the partner's
// value as it is, null (Set true, Value absent) removes it, a value replaces it.
type Patch struct {
	Set   bool
	Value Optional
}

// TypePatch is the request for one operation type.
type TypePatch struct {
	OneTime Patch
	Month   Patch
	Enabled *bool // nil: unchanged
}

// LimitsPatch is a POST /limit request: any subset of types and fields.
type LimitsPatch struct {
	Balance Patch
	Types   map[OperationType]TypePatch
}

// apply validates p against the system limits of the wallet's level and returns the
// new overrides. Nothing is applied when any field is refused.
func (p LimitsPatch) apply(sys LevelLimits, cur Overrides) (Overrides, error) {
	var v Validation
	// check refuses a value above the system's ceiling or below zero.
	check := func(field string, val, ceiling Optional) {
		switch {
		case val.Valid && val.Value < 0:
			v.Add(field, "не может быть отрицательным")
		case val.Valid && val.above(ceiling):
			v.Add(field, fmt.Sprintf("не может быть больше системного значения %s", ceiling.Value))
		}
	}
	next := cur
	if p.Balance.Set {
		check("balanceLimit", p.Balance.Value, sys.Balance)
		next.Balance = p.Balance.Value
	}
	for _, t := range LimitedTypes {
		tp, ok := p.Types[t]
		if !ok {
			continue
		}
		s, o := sys.Type(t), next.Type(t)
		prefix := "operationLimits." + string(t) + "."
		if tp.OneTime.Set {
			check(prefix+"oneTimeLimit", tp.OneTime.Value, s.OneTime)
			o.OneTime = tp.OneTime.Value
		}
		if tp.Month.Set {
			check(prefix+"monthLimit", tp.Month.Value, s.Month)
			o.Month = tp.Month.Value
		}
		if tp.Enabled != nil {
			if *tp.Enabled && !s.Enabled {
				v.Add(prefix+"enabled", "операция запрещена системными лимитами для этого уровня идентификации")
			}
			enabled := *tp.Enabled
			o.Enabled = &enabled
		}
		next.setType(t, o)
	}
	if err := v.Err(); err != nil {
		return cur, err
	}
	return next, nil
}
