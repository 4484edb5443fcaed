package client

import (
	"encoding/json"

	"github.com/perspektiva/walletd/money"
)

// LimitChange is one value of a LimitsUpdate, in one of three states:
//
//   - the zero value: absent, the value stays as it is;
//   - SetLimit(a): the partner's own value becomes a (sent as a number);
//   - ClearLimit(): the partner's own value is removed and the system's
//     applies again (sent as null).
type LimitChange struct {
	state limitState
	value money.Amount
}

type limitState uint8

const (
	limitAbsent limitState = iota
	limitNull
	limitValue
)

// SetLimit sets the partner's own value of a limit.
func SetLimit(a money.Amount) LimitChange { return LimitChange{state: limitValue, value: a} }

// ClearLimit removes the partner's own value of a limit (JSON null).
func ClearLimit() LimitChange { return LimitChange{state: limitNull} }

// IsAbsent reports whether the change leaves the value alone.
func (l LimitChange) IsAbsent() bool { return l.state == limitAbsent }

// IsClear reports whether the change removes the partner's value.
func (l LimitChange) IsClear() bool { return l.state == limitNull }

// Value returns the value to set, and false unless the change sets one.
func (l LimitChange) Value() (money.Amount, bool) { return l.value, l.state == limitValue }

// MarshalJSON writes null or the amount. An absent change is left out of a
// LimitsUpdate altogether; standing alone it is written as null.
func (l LimitChange) MarshalJSON() ([]byte, error) {
	if l.state == limitValue {
		return l.value.MarshalJSON()
	}
	return []byte("null"), nil
}

// LimitsUpdate changes the partner's own limits of a wallet. Only what is set
// is sent: absent fields and types keep their values.
type LimitsUpdate struct {
	BalanceLimit LimitChange
	// OperationLimits by type: OperationCredit, OperationPayment, OperationDebit.
	OperationLimits map[OperationType]OperationLimitUpdate
}

// OperationLimitUpdate changes the limits of one operation type.
type OperationLimitUpdate struct {
	OneTimeLimit LimitChange
	MonthLimit   LimitChange
	// Enabled switches the type on or off; nil leaves it. Turning on a type
	// the system disables for the wallet's level is refused.
	Enabled *bool
}

// Bool returns a pointer to b, for OperationLimitUpdate.Enabled.
func Bool(b bool) *bool { return &b }

// MarshalJSON writes the protocol's LimitsUpdate body.
func (u LimitsUpdate) MarshalJSON() ([]byte, error) {
	body := map[string]any{}
	if !u.BalanceLimit.IsAbsent() {
		body["balanceLimit"] = u.BalanceLimit
	}
	if len(u.OperationLimits) > 0 {
		body["operationLimits"] = u.OperationLimits
	}
	return json.Marshal(body)
}

// MarshalJSON writes one type's part of a LimitsUpdate body.
func (u OperationLimitUpdate) MarshalJSON() ([]byte, error) {
	body := map[string]any{}
	if !u.OneTimeLimit.IsAbsent() {
		body["oneTimeLimit"] = u.OneTimeLimit
	}
	if !u.MonthLimit.IsAbsent() {
		body["monthLimit"] = u.MonthLimit
	}
	if u.Enabled != nil {
		body["enabled"] = *u.Enabled
	}
	return json.Marshal(body)
}
