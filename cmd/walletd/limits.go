package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/wallet"
)

// limitsFile is the operator's limit table: any subset of the defaults of
// PROTOCOL.md section 5, each value lower than or equal to the default.
//
//	{"ELEMENTARY": {"balanceLimit": "10000.00", "PAYMENT": {"monthLimit": "30000.00"}}}
type limitsFile map[string]struct {
	BalanceLimit        *money.Amount `json:"balanceLimit"`
	StatutoryMonthLimit *money.Amount `json:"statutoryMonthLimit"`
	Credit              *typeFile     `json:"CREDIT"`
	Payment             *typeFile     `json:"PAYMENT"`
	Debit               *typeFile     `json:"DEBIT"`
}

type typeFile struct {
	OneTimeLimit *money.Amount `json:"oneTimeLimit"`
	MonthLimit   *money.Amount `json:"monthLimit"`
	Enabled      *bool         `json:"enabled"`
}

// loadLimits reads WALLET_LIMITS_FILE; without one the statutory defaults apply.
func loadLimits(path string) (wallet.SystemLimits, error) {
	limits := wallet.DefaultSystemLimits()
	if path == "" {
		return limits, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return limits, fmt.Errorf("WALLET_LIMITS_FILE: %w", err)
	}
	var file limitsFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return limits, fmt.Errorf("WALLET_LIMITS_FILE %s: %w", path, err)
	}
	levels := map[string]wallet.Identification{
		"ELEMENTARY": wallet.Elementary, "PERSONALIZED": wallet.Personalized, "IDENTIFIED": wallet.Identified,
	}
	for name, lf := range file {
		lvl, ok := levels[name]
		if !ok {
			return limits, fmt.Errorf("WALLET_LIMITS_FILE %s: unknown level %q", path, name)
		}
		l := &limits[lvl]
		set(&l.Balance, lf.BalanceLimit)
		set(&l.StatutoryMonth, lf.StatutoryMonthLimit)
		setType(&l.Credit, lf.Credit)
		setType(&l.Payment, lf.Payment)
		setType(&l.Debit, lf.Debit)
	}
	if err := limits.WithinDefaults(); err != nil {
		return limits, fmt.Errorf("WALLET_LIMITS_FILE %s: %w", path, err)
	}
	return limits, nil
}

func set(dst *wallet.Optional, v *money.Amount) {
	if v != nil {
		*dst = wallet.Some(*v)
	}
}

func setType(dst *wallet.TypeLimits, f *typeFile) {
	if f == nil {
		return
	}
	set(&dst.OneTime, f.OneTimeLimit)
	set(&dst.Month, f.MonthLimit)
	if f.Enabled != nil {
		dst.Enabled = *f.Enabled
	}
}
