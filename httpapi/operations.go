package httpapi

import (
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/protocol"
	"github.com/perspektiva/walletd/wallet"
)

func (s *Server) reportItem(op wallet.Operation) protocol.ReportItem {
	return protocol.NewReportItem(op, s.cfg.Wallets.Location())
}

type refillAnswer struct {
	OperationID uuid.UUID    `json:"operationId"`
	Amount      money.Amount `json:"amount"`
	Payload     string       `json:"payload"`
	Status      string       `json:"status"`
	ExpiresAt   string       `json:"expiresAt"`
}

func (s *Server) refill(w http.ResponseWriter, r *http.Request) error {
	id, body, err := walletBody(r)
	if err != nil {
		return err
	}
	var v wallet.Validation
	amount := body.amount("amount", "amount", &v)
	if err := v.Err(); err != nil {
		return err
	}
	op, err := s.cfg.Wallets.Refill(r.Context(), principal(r).PartnerID, id, amount, idempotencyKey(r))
	if err != nil {
		return err
	}
	// A replay under the same key answers as the first time did: PENDING.
	writeJSON(w, http.StatusOK, refillAnswer{
		OperationID: op.ID, Amount: op.Amount, Payload: op.Payload, Status: string(wallet.Pending),
		ExpiresAt: s.formatTime(op.ExpiresAt),
	})
	return nil
}

type paymentInitAnswer struct {
	WalletID uuid.UUID `json:"walletId"`
	Token    uuid.UUID `json:"token"`
}

func (s *Server) paymentInit(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "walletId")
	if err != nil {
		return err
	}
	pt, err := s.cfg.Wallets.InitPayment(r.Context(), principal(r).PartnerID, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, paymentInitAnswer{WalletID: pt.WalletID, Token: pt.Token})
	return nil
}

type paymentAnswer struct {
	WalletID    uuid.UUID    `json:"walletId"`
	Token       uuid.UUID    `json:"token"`
	OperationID uuid.UUID    `json:"operationId"`
	Amount      money.Amount `json:"amount"`
	Status      string       `json:"status"`
}

// paymentJSON is the answer of a payment and of a refund.
func paymentJSON(op wallet.Operation) paymentAnswer {
	return paymentAnswer{WalletID: op.WalletID, Token: op.Token, OperationID: op.ID, Amount: op.Amount, Status: string(op.Status)}
}

// uuidField reads a required UUID member.
func (o object) uuidField(name string, v *wallet.Validation) uuid.UUID {
	s := o.str(name, name, true, v)
	if s == "" {
		return uuid.Nil
	}
	id, err := parseUUID(s)
	if err != nil {
		v.Add(name, "должен быть UUID")
	}
	return id
}

func (s *Server) payment(w http.ResponseWriter, r *http.Request) error {
	id, body, err := walletBody(r)
	if err != nil {
		return err
	}
	var v wallet.Validation
	req := wallet.PaymentRequest{
		WalletID: body.uuidField("walletId", &v),
		Token:    body.uuidField("token", &v),
		Amount:   body.amount("amount", "amount", &v),
		TSPID:    body.uuidField("tsp", &v),
	}
	if body.present("walletId") && req.WalletID != id {
		v.Add("walletId", "не совпадает с кошельком в пути запроса")
	}
	if err := v.Err(); err != nil {
		return err
	}
	op, err := s.cfg.Wallets.Pay(r.Context(), principal(r).PartnerID, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, paymentJSON(op))
	return nil
}

func (s *Server) refund(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "walletId")
	if err != nil {
		return err
	}
	token, err := pathUUID(r, "token")
	if err != nil {
		return err
	}
	body, err := readObject(r)
	if err != nil {
		return err
	}
	var (
		v      wallet.Validation
		amount money.Amount
	)
	if body.present("amount") {
		amount = body.amount("amount", "amount", &v)
	}
	if err := v.Err(); err != nil {
		return err
	}
	op, err := s.cfg.Wallets.Refund(r.Context(), principal(r).PartnerID, id, token, amount, idempotencyKey(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, paymentJSON(op))
	return nil
}

type withdrawalAnswer struct {
	WalletID       uuid.UUID    `json:"walletId"`
	OperationID    uuid.UUID    `json:"operationId"`
	Amount         money.Amount `json:"amount"`
	BankIdentifier string       `json:"bankIdentifier"`
	Status         string       `json:"status"`
}

func (s *Server) withdraw(w http.ResponseWriter, r *http.Request) error {
	id, body, err := walletBody(r)
	if err != nil {
		return err
	}
	var v wallet.Validation
	bank := body.str("bankIdentifier", "bankIdentifier", true, &v)
	if bank != "" && !digits(bank, 12) {
		v.Add("bankIdentifier", "должен состоять из 12 цифр")
	}
	amount := body.amount("amount", "amount", &v)
	if err := v.Err(); err != nil {
		return err
	}
	op, err := s.cfg.Wallets.Withdraw(r.Context(), principal(r).PartnerID, id, bank, amount, idempotencyKey(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, withdrawalAnswer{
		WalletID: op.WalletID, OperationID: op.ID, Amount: op.Amount, BankIdentifier: op.BankID, Status: string(wallet.Pending),
	})
	return nil
}

func digits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (s *Server) operation(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "walletId")
	if err != nil {
		return err
	}
	opID, err := pathUUID(r, "operationId")
	if err != nil {
		return err
	}
	op, err := s.cfg.Wallets.Operation(r.Context(), principal(r).PartnerID, id, opID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.reportItem(op))
	return nil
}

type reportAnswer struct {
	Content       []protocol.ReportItem `json:"content"`
	Page          int                   `json:"page"`
	Size          int                   `json:"size"`
	TotalElements int                   `json:"totalElements"`
	TotalPages    int                   `json:"totalPages"`
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "walletId")
	if err != nil {
		return err
	}
	f, err := s.reportFilter(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := s.cfg.Wallets.Report(r.Context(), principal(r).PartnerID, id, f)
	if err != nil {
		return err
	}
	ans := reportAnswer{Content: make([]protocol.ReportItem, 0, len(page.Operations)), Page: page.Page, Size: page.Size, TotalElements: page.Total}
	ans.TotalPages = (page.Total + page.Size - 1) / page.Size
	for _, op := range page.Operations {
		ans.Content = append(ans.Content, s.reportItem(op))
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

// reportFilter reads the report's query parameters; every bad one is named.
func (s *Server) reportFilter(q url.Values) (wallet.ReportFilter, error) {
	var (
		v wallet.Validation
		f wallet.ReportFilter
	)
	for name, vals := range q {
		if len(vals) > 1 {
			v.Add(name, "параметр указан несколько раз")
		}
	}
	loc := s.cfg.Wallets.Location()
	if raw := q.Get("dateFrom"); raw != "" {
		t, err := parseDate(raw, loc, false)
		if err != nil {
			v.Add("dateFrom", dateFormats)
		}
		f.From = t
	}
	if raw := q.Get("dateTo"); raw != "" {
		t, err := parseDate(raw, loc, true)
		if err != nil {
			v.Add("dateTo", dateFormats)
		}
		f.To = t
	}
	if raw := q.Get("operationType"); raw != "" {
		f.Type = wallet.OperationType(raw)
		if !f.Type.Valid() {
			v.Add("operationType", "допустимые значения: PAYMENT, CREDIT, DEBIT, REFUND")
		}
	}
	amount := func(name string) wallet.Optional {
		raw := q.Get(name)
		if !q.Has(name) {
			return wallet.Optional{}
		}
		a, err := money.Parse(raw)
		if err != nil {
			v.Add(name, reason(err))
			return wallet.Optional{}
		}
		return wallet.Some(a)
	}
	f.AmountFrom, f.AmountTo = amount("amountFrom"), amount("amountTo")
	integer := func(name string, def, lo, hi int) int {
		if !q.Has(name) {
			return def
		}
		n, err := strconv.Atoi(q.Get(name))
		if err != nil || n < lo || n > hi {
			v.Add(name, "целое число от "+strconv.Itoa(lo)+" до "+strconv.Itoa(hi))
			return def
		}
		return n
	}
	f.Page = integer("page", 0, 0, math.MaxInt32)
	f.Size = integer("size", 20, 1, wallet.MaxPageSize)
	return f, v.Err()
}

const dateFormats = "допустимые форматы: ГГГГ-ММ-ДД ЧЧ-ММ-СС, ГГГГ-ММ-ДД ЧЧ:ММ:СС, ГГГГ-ММ-ДД, RFC 3339"

// parseDate accepts the protocol's date forms. A bare date means the start of
// the day for dateFrom and its last instant for dateTo (bounds are inclusive).
func parseDate(raw string, loc *time.Location, endOfDay bool) (time.Time, error) {
	raw = strings.TrimSpace(raw)
	for _, layout := range []string{"2006-01-02 15-04-05", "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, raw, loc); err == nil {
			if endOfDay {
				t = t.Add(time.Second - time.Microsecond)
			}
			return t, nil
		}
	}
	if t, err := time.ParseInLocation("2006-01-02", raw, loc); err == nil {
		if endOfDay {
			t = t.AddDate(0, 0, 1).Add(-time.Microsecond)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err == nil && endOfDay && t.Nanosecond() == 0 {
		// A bound to the second includes that whole second, as the other forms do.
		t = t.Add(time.Second - time.Microsecond)
	}
	return t, err
}
