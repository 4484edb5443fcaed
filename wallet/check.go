package wallet

import (
	"context"
	"fmt"
	"time"

	"github.com/perspektiva/walletd/money"
)

// limits is what an operation is checked against: the wallet's effective limits
// and its usage in the current month, read in the operation's transaction.
type limits struct {
	eff      LevelLimits
	used     map[OperationType]money.Amount
	resetsAt time.Time
	wallet   Wallet
}

func (s *Service) loadLimits(ctx context.Context, tx Tx, w Wallet, month int) (limits, error) {
	st, err := tx.LimitState(ctx, w.ID, month)
	if err != nil {
		return limits{}, err
	}
	return s.limitsOf(w, st.Overrides, st.Usage), nil
}

// limitsOf puts together the limits of a wallet with its settings and usage.
func (s *Service) limitsOf(w Wallet, o Overrides, used map[OperationType]money.Amount) limits {
	return limits{
		eff: Effective(s.limits.Level(w.Identification), o), used: used,
		resetsAt: s.nextMonth(s.now()), wallet: w,
	}
}

func limitExceeded(reason string, d LimitDetails) error {
	if d.Available = d.Value - d.Used; d.Available < 0 {
		d.Available = 0
	}
	e := FailField(CodeLimitExceeded, "amount", reason)
	e.Details = &d
	return e
}

// enabled refuses types the partner or the system disabled.
func (l limits) enabled(t OperationType) error {
	if !l.eff.Type(t).Enabled {
		return FailField(CodeOperationDisabled, "amount", fmt.Sprintf("операции %s запрещены для кошелька", t))
	}
	return nil
}

// typeLimits checks the one-time and monthly limits of type t.
func (l limits) typeLimits(t OperationType, amount money.Amount) error {
	tl := l.eff.Type(t)
	if tl.OneTime.Valid && amount > tl.OneTime.Value {
		return limitExceeded(fmt.Sprintf("превышен разовый лимит %s: не более %s", t, tl.OneTime.Value),
			LimitDetails{Limit: string(t) + ".oneTimeLimit", Value: tl.OneTime.Value})
	}
	if tl.Month.Valid && l.used[t]+amount > tl.Month.Value {
		resets := l.resetsAt
		return limitExceeded(fmt.Sprintf("превышен месячный лимит %s: доступно %s", t, nonNegative(tl.Month.Value-l.used[t])),
			LimitDetails{Limit: string(t) + ".monthLimit", Value: tl.Month.Value, Used: l.used[t], ResetsAt: &resets})
	}
	return nil
}

// spend checks a PAYMENT or DEBIT: its own limits and the statutory monthly cap
// on both together (161-FZ art. 10).
func (l limits) spend(t OperationType, amount money.Amount) error {
	if err := l.enabled(t); err != nil {
		return err
	}
	if err := l.typeLimits(t, amount); err != nil {
		return err
	}
	if cap := l.eff.StatutoryMonth; cap.Valid {
		used := l.used[Payment] + l.used[Debit]
		if used+amount > cap.Value {
			resets := l.resetsAt
			return limitExceeded(fmt.Sprintf("превышен установленный законом месячный лимит переводов: доступно %s", nonNegative(cap.Value-used)),
				LimitDetails{Limit: "statutoryMonthLimit", Value: cap.Value, Used: used, ResetsAt: &resets})
		}
	}
	if amount > l.wallet.Balance {
		e := FailField(CodeInsufficientFunds, "amount", fmt.Sprintf("недостаточно средств: доступно %s", l.wallet.Balance))
		e.Details = &LimitDetails{Limit: "balance", Value: l.wallet.Balance, Available: l.wallet.Balance}
		return e
	}
	return nil
}

// balance checks that a credit of amount keeps the balance, with pending
// top-ups, within the balance limit ("at any moment", 161-FZ).
func (l limits) balance(amount money.Amount, pending money.Amount) error {
	b := l.eff.Balance
	if !b.Valid {
		return nil
	}
	used := l.wallet.Balance + pending
	if used+amount > b.Value {
		return limitExceeded(fmt.Sprintf("баланс превысит лимит %s: доступно %s", b.Value, nonNegative(b.Value-used)),
			LimitDetails{Limit: "balanceLimit", Value: b.Value, Used: used})
	}
	return nil
}

// credit checks a top-up: its type's limits and the balance limit.
func (l limits) credit(amount money.Amount, pending money.Amount) error {
	if err := l.enabled(Credit); err != nil {
		return err
	}
	if err := l.typeLimits(Credit, amount); err != nil {
		return err
	}
	return l.balance(amount, pending)
}

func nonNegative(a money.Amount) money.Amount { return max(a, 0) }
