package httpapi

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/wallet"
)

type typeLimitsAnswer struct {
	OperationType string        `json:"operationType"`
	OneTimeLimit  *money.Amount `json:"oneTimeLimit"`
	MonthLimit    *money.Amount `json:"monthLimit"`
	Enabled       bool          `json:"enabled"`
	MonthUsed     money.Amount  `json:"monthUsed"`
}

type limitsAnswer struct {
	WalletID        uuid.UUID     `json:"walletId"`
	Identification  string        `json:"identification"`
	BalanceLimit    *money.Amount `json:"balanceLimit"`
	OperationLimits struct {
		Credit  typeLimitsAnswer `json:"CREDIT"`
		Payment typeLimitsAnswer `json:"PAYMENT"`
		Debit   typeLimitsAnswer `json:"DEBIT"`
	} `json:"operationLimits"`
}

// nullable renders an absent limit as JSON null.
func nullable(o wallet.Optional) *money.Amount {
	if !o.Valid {
		return nil
	}
	v := o.Value
	return &v
}

func limitsJSON(v wallet.LimitsView) limitsAnswer {
	a := limitsAnswer{
		WalletID:       v.Wallet.ID,
		Identification: v.Wallet.Identification.String(),
		BalanceLimit:   nullable(v.Effective.Balance),
	}
	typ := func(t wallet.OperationType) typeLimitsAnswer {
		l := v.Effective.Type(t)
		return typeLimitsAnswer{
			OperationType: string(t), OneTimeLimit: nullable(l.OneTime), MonthLimit: nullable(l.Month),
			Enabled: l.Enabled, MonthUsed: v.MonthUsed[t],
		}
	}
	a.OperationLimits.Credit = typ(wallet.Credit)
	a.OperationLimits.Payment = typ(wallet.Payment)
	a.OperationLimits.Debit = typ(wallet.Debit)
	return a
}

func (s *Server) limits(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "walletId")
	if err != nil {
		return err
	}
	view, err := s.cfg.Wallets.Limits(r.Context(), principal(r).PartnerID, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, limitsJSON(view))
	return nil
}

func (s *Server) setLimits(w http.ResponseWriter, r *http.Request) error {
	id, body, err := walletBody(r)
	if err != nil {
		return err
	}
	patch, err := decodeLimits(body, id)
	if err != nil {
		return err
	}
	view, err := s.cfg.Wallets.SetLimits(r.Context(), principal(r).PartnerID, id, patch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, limitsJSON(view))
	return nil
}

// decodeLimits reads a POST /limit body: the GET shape, any subset of it. Read-only
// members of that shape (identification, monthUsed) are ignored so a partner may
// send back what it read.
func decodeLimits(body object, walletID uuid.UUID) (wallet.LimitsPatch, error) {
	var v wallet.Validation
	if body.present("walletId") {
		if id := body.uuidField("walletId", &v); id != uuid.Nil && id != walletID {
			v.Add("walletId", "не совпадает с кошельком в пути запроса")
		}
	}
	patch := wallet.LimitsPatch{
		Balance: body.limit("balanceLimit", "balanceLimit", &v),
		Types:   map[wallet.OperationType]wallet.TypePatch{},
	}
	ops := body.obj("operationLimits", "operationLimits", &v)
	for key := range ops {
		t := wallet.OperationType(key)
		path := "operationLimits." + key
		if t != wallet.Credit && t != wallet.Payment && t != wallet.Debit {
			v.Add(path, "допустимые типы: CREDIT, PAYMENT, DEBIT")
			continue
		}
		o := ops.obj(key, path, &v)
		if o == nil {
			continue
		}
		if o.present("operationType") {
			if s := o.str("operationType", path+".operationType", false, &v); s != "" && s != key {
				v.Add(path+".operationType", "не совпадает с ключом "+key)
			}
		}
		patch.Types[t] = wallet.TypePatch{
			OneTime: o.limit("oneTimeLimit", path+".oneTimeLimit", &v),
			Month:   o.limit("monthLimit", path+".monthLimit", &v),
			Enabled: o.boolean("enabled", path+".enabled", &v),
		}
	}
	if err := v.Err(); err != nil {
		return wallet.LimitsPatch{}, err
	}
	return patch, nil
}
