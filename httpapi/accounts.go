package httpapi

import (
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/sbp"
	"github.com/perspektiva/walletd/wallet"
)

// pathUUID reads a UUID path parameter; a malformed one is a 400 naming it.
func pathUUID(r *http.Request, name string) (uuid.UUID, error) {
	id, err := parseUUID(r.PathValue(name))
	if err != nil {
		return uuid.Nil, wallet.Invalid(name, "должен быть UUID")
	}
	return id, nil
}

// walletBody reads the walletId of the path and the JSON object of the body,
// the start of every POST on a wallet.
func walletBody(r *http.Request) (uuid.UUID, object, error) {
	id, err := pathUUID(r, "walletId")
	if err != nil {
		return uuid.Nil, nil, err
	}
	body, err := readObject(r)
	return id, body, err
}

// parseUUID accepts only the canonical 36-character form the protocol uses.
func parseUUID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.Nil, strconv.ErrSyntax
	}
	return uuid.Parse(s)
}

type walletAnswer struct {
	WalletID       uuid.UUID `json:"walletId"`
	Identification string    `json:"identification"`
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	body, err := readObject(r)
	if err != nil {
		return err
	}
	var v wallet.Validation
	phone := body.str("phone", "phone", true, &v)
	if phone != "" && !wallet.ValidPhone(phone) {
		v.Add("phone", "должен состоять из 10 цифр")
	}
	level := wallet.Elementary
	if body.present("identification") {
		n, ok := smallInt(body["identification"])
		if !ok || !wallet.Identification(n).Valid() {
			v.Add("identification", "допустимые значения: 0, 1, 2")
		}
		level = wallet.Identification(n)
	}
	if err := v.Err(); err != nil {
		return err
	}
	wal, err := s.cfg.Wallets.Register(r.Context(), principal(r).PartnerID, phone, level)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, walletAnswer{WalletID: wal.ID, Identification: wal.Identification.String()})
	return nil
}

// smallInt reads a JSON integer 0-9 (identification levels).
func smallInt(raw []byte) (int, bool) {
	n, err := strconv.Atoi(string(raw))
	if err != nil || n < 0 || n > 9 {
		return 0, false
	}
	return n, true
}

type infoAnswer struct {
	WalletID       uuid.UUID    `json:"walletId"`
	Number         string       `json:"number"`
	Balance        money.Amount `json:"balance"`
	Status         string       `json:"status"`
	Identification string       `json:"identification"`
	Currency       string       `json:"currency"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "walletId")
	if err != nil {
		return err
	}
	wal, err := s.cfg.Wallets.Wallet(r.Context(), principal(r).PartnerID, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, infoAnswer{
		WalletID: wal.ID, Number: wal.Number, Balance: wal.Balance, Status: string(wal.Status),
		Identification: wal.Identification.String(), Currency: "RUB",
	})
	return nil
}

func (s *Server) deactivate(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "walletId")
	if err != nil {
		return err
	}
	wal, err := s.cfg.Wallets.Close(r.Context(), principal(r).PartnerID, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		WalletID uuid.UUID `json:"walletId"`
	}{wal.ID})
	return nil
}

func (s *Server) identify(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "walletId")
	if err != nil {
		return err
	}
	raw := r.PathValue("isIdentified")
	level, ok := smallInt([]byte(raw))
	if !ok || len(raw) != 1 || !wallet.Identification(level).Valid() {
		return wallet.Invalid("isIdentified", "допустимые значения: 0, 1, 2")
	}
	wal, err := s.cfg.Wallets.Identify(r.Context(), principal(r).PartnerID, id, wallet.Identification(level))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, walletAnswer{WalletID: wal.ID, Identification: wal.Identification.String()})
	return nil
}

type banksAnswer struct {
	Banks []sbp.Bank `json:"banks"`
}

func (s *Server) banks(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, banksAnswer{Banks: s.cfg.Banks.List()})
	return nil
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err := w.Write(s.cfg.Spec)
	return err
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			s.log.WarnContext(r.Context(), "not ready", "error", err.Error())
			return wallet.Fail(wallet.CodeUnavailable)
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
