package wallet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
)

// Config tunes a Service.
type Config struct {
	Limits   SystemLimits              // the operator's table; DefaultSystemLimits when zero
	Location *time.Location            // calendar months for limits; Europe/Moscow when nil
	Now      func() time.Time          // the clock; time.Now when nil
	NewID    func() (uuid.UUID, error) // identifiers; UUIDv7 when nil

	SBP      SBP           // top-up links and payouts; required for money movement
	TopUpTTL time.Duration // an unconfirmed top-up expires after this; 30 minutes when zero
	TokenTTL time.Duration // a payment token lives this long; 15 minutes when zero
	// BankName returns the name of an SBP member bank, false when it is not one.
	BankName func(id string) (string, bool)
	// TokenKey signs payment tokens (TokenKeySize bytes; every node of one
	// database must share it). A random key when nil, good for one process.
	TokenKey []byte
	// Observe, when set, hears of every operation state a commit made (metrics).
	Observe func(OperationType, OperationStatus)
}

// Service carries out the partner protocol's use cases.
type Service struct {
	store    Store
	limits   SystemLimits
	loc      *time.Location
	now      func() time.Time
	newID    func() (uuid.UUID, error)
	sbp      SBP
	topUpTTL time.Duration
	tokenTTL time.Duration
	bankName func(string) (string, bool)
	observe  func(OperationType, OperationStatus)
	tokenKey []byte
}

// NewService returns a Service over store.
func NewService(store Store, cfg Config) (*Service, error) {
	s := &Service{
		store: store, limits: cfg.Limits, loc: cfg.Location, now: cfg.Now, newID: cfg.NewID,
		sbp: cfg.SBP, topUpTTL: cfg.TopUpTTL, tokenTTL: cfg.TokenTTL, bankName: cfg.BankName, observe: cfg.Observe,
	}
	if s.observe == nil {
		s.observe = func(OperationType, OperationStatus) {}
	}
	s.tokenKey = cfg.TokenKey
	if len(s.tokenKey) == 0 {
		s.tokenKey = make([]byte, TokenKeySize)
		if _, err := rand.Read(s.tokenKey); err != nil {
			return nil, err
		}
	}
	if s.topUpTTL <= 0 {
		s.topUpTTL = 30 * time.Minute
	}
	if s.tokenTTL <= 0 {
		s.tokenTTL = 15 * time.Minute
	}
	if s.bankName == nil {
		s.bankName = func(string) (string, bool) { return "", false }
	}
	if s.limits == (SystemLimits{}) {
		s.limits = DefaultSystemLimits()
	}
	if err := s.limits.WithinDefaults(); err != nil {
		return nil, fmt.Errorf("system limits: %w", err)
	}
	if s.loc == nil {
		loc, err := time.LoadLocation("Europe/Moscow")
		if err != nil {
			return nil, fmt.Errorf("load Europe/Moscow: %w", err)
		}
		s.loc = loc
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = uuid.NewV7
	}
	return s, nil
}

// Location is the time zone of calendar months and of protocol times.
func (s *Service) Location() *time.Location { return s.loc }

// SystemLimits returns the operator's limit table.
func (s *Service) SystemLimits() SystemLimits { return s.limits }

// monthOf returns the calendar month (yyyymm) of t in the service's time zone.
func (s *Service) monthOf(t time.Time) int {
	t = t.In(s.loc)
	return t.Year()*100 + int(t.Month())
}

// nextMonth returns the start of the month after t's, in the service's time zone.
func (s *Service) nextMonth(t time.Time) time.Time {
	t = t.In(s.loc)
	return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, s.loc)
}

// ValidPhone checks the protocol's phone format: exactly 10 digits.
func ValidPhone(phone string) bool {
	if len(phone) != 10 {
		return false
	}
	for i := 0; i < len(phone); i++ {
		if phone[i] < '0' || phone[i] > '9' {
			return false
		}
	}
	return true
}

// Register opens a wallet for phone, or returns the partner's active wallet for
// that phone unchanged. Errors: VALIDATION_ERROR.
func (s *Service) Register(ctx context.Context, partnerID uuid.UUID, phone string, level Identification) (Wallet, error) {
	var v Validation
	if !ValidPhone(phone) {
		v.Add("phone", "должен состоять из 10 цифр")
	}
	if !level.Valid() {
		v.Add("identification", "допустимые значения: 0, 1, 2")
	}
	if err := v.Err(); err != nil {
		return Wallet{}, err
	}
	// A duplicate is a concurrent registration of the same phone (the next
	// attempt finds it) or, very rarely, a wallet number already taken.
	return retryDuplicates(func() (Wallet, error) { return s.register(ctx, partnerID, phone, level) })
}

func (s *Service) register(ctx context.Context, partnerID uuid.UUID, phone string, level Identification) (Wallet, error) {
	var w Wallet
	err := s.update(ctx, func(ctx context.Context, tx Tx) error {
		existing, err := tx.ActiveWalletByPhone(ctx, partnerID, phone)
		if err == nil {
			w = existing
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		id, err := s.newID()
		if err != nil {
			return err
		}
		number, err := newWalletNumber()
		if err != nil {
			return err
		}
		w = Wallet{
			ID: id, PartnerID: partnerID, Phone: phone, Number: number,
			Identification: level, Status: Active, CreatedAt: s.now(),
		}
		return tx.InsertWallet(ctx, w)
	})
	return w, err
}

// Wallet returns the partner's wallet. Errors: WALLET_NOT_FOUND.
func (s *Service) Wallet(ctx context.Context, partnerID, walletID uuid.UUID) (Wallet, error) {
	var w Wallet
	err := s.store.View(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		w, err = wallet(ctx, tx, partnerID, walletID, false)
		return err
	})
	return w, err
}

// wallet reads a wallet and turns "not found" into the protocol's refusal.
func wallet(ctx context.Context, tx Tx, partnerID, walletID uuid.UUID, lock bool) (Wallet, error) {
	return found(tx.Wallet(ctx, partnerID, walletID, lock))
}

// activeWallet reads and locks a wallet that money or status operations may change.
func activeWallet(ctx context.Context, tx Tx, partnerID, walletID uuid.UUID) (Wallet, error) {
	return active(tx.Wallet(ctx, partnerID, walletID, true))
}

// found turns a wallet read's ErrNotFound into WALLET_NOT_FOUND.
func found(w Wallet, err error) (Wallet, error) {
	if errors.Is(err, ErrNotFound) {
		return Wallet{}, Fail(CodeWalletNotFound)
	}
	return w, err
}

// active turns a wallet read into the protocol's refusals: WALLET_NOT_FOUND,
// WALLET_CLOSED.
func active(w Wallet, err error) (Wallet, error) {
	if w, err = found(w, err); err != nil {
		return Wallet{}, err
	}
	return w, requireActive(w)
}

// requireActive refuses new money movement on a closed wallet. A repeated
// request is answered before it is called: the first answer stands, whatever
// happened to the wallet since.
func requireActive(w Wallet) error {
	if w.Status != Active {
		return Fail(CodeWalletClosed)
	}
	return nil
}

// Close closes a wallet with nothing on it. Closing a closed wallet succeeds again.
// Errors: WALLET_NOT_FOUND, WALLET_HAS_BALANCE.
func (s *Service) Close(ctx context.Context, partnerID, walletID uuid.UUID) (Wallet, error) {
	var w Wallet
	err := s.update(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		if w, err = wallet(ctx, tx, partnerID, walletID, true); err != nil || w.Status == Closed {
			return err
		}
		pending, err := tx.HasPendingOperations(ctx, walletID)
		if err != nil {
			return err
		}
		if w.Balance != 0 || pending {
			return Fail(CodeWalletHasBalance)
		}
		w.Status, w.ClosedAt = Closed, s.now()
		if err := tx.UpdateWallet(ctx, w); err != nil {
			return err
		}
		return s.emit(ctx, tx, EventWalletClosed, w.PartnerID, w.ID, uuid.Nil)
	})
	return w, err
}

// Identify sets the wallet's identification level; its system limits change at once.
// Errors: WALLET_NOT_FOUND, WALLET_CLOSED, VALIDATION_ERROR.
func (s *Service) Identify(ctx context.Context, partnerID, walletID uuid.UUID, level Identification) (Wallet, error) {
	if !level.Valid() {
		return Wallet{}, Invalid("isIdentified", "допустимые значения: 0, 1, 2")
	}
	var w Wallet
	err := s.update(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		if w, err = activeWallet(ctx, tx, partnerID, walletID); err != nil {
			return err
		}
		if w.Identification == level {
			return nil
		}
		w.Identification = level
		return tx.UpdateWallet(ctx, w)
	})
	return w, err
}

// LimitsView is what GET /limit shows: the effective limits and this month's usage.
type LimitsView struct {
	Wallet    Wallet
	Effective LevelLimits
	MonthUsed map[OperationType]money.Amount
}

// Limits returns the wallet's effective limits. Errors: WALLET_NOT_FOUND.
func (s *Service) Limits(ctx context.Context, partnerID, walletID uuid.UUID) (LimitsView, error) {
	var view LimitsView
	err := s.store.View(ctx, func(ctx context.Context, tx Tx) error {
		w, err := wallet(ctx, tx, partnerID, walletID, false)
		if err != nil {
			return err
		}
		l, err := s.loadLimits(ctx, tx, w, s.monthOf(s.now()))
		view = LimitsView{Wallet: w, Effective: l.eff, MonthUsed: l.used}
		return err
	})
	return view, err
}

// SetLimits applies a partner's limit settings; when any field is refused nothing
// is saved. Errors: WALLET_NOT_FOUND, WALLET_CLOSED, VALIDATION_ERROR.
func (s *Service) SetLimits(ctx context.Context, partnerID, walletID uuid.UUID, p LimitsPatch) (LimitsView, error) {
	var view LimitsView
	err := s.update(ctx, func(ctx context.Context, tx Tx) error {
		w, err := activeWallet(ctx, tx, partnerID, walletID)
		if err != nil {
			return err
		}
		cur, err := tx.LimitState(ctx, w.ID, s.monthOf(s.now()))
		if err != nil {
			return err
		}
		next, err := p.apply(s.limits.Level(w.Identification), cur.Overrides)
		if err != nil {
			return err
		}
		view = LimitsView{Wallet: w, Effective: Effective(s.limits.Level(w.Identification), next), MonthUsed: cur.Usage}
		return tx.SaveOverrides(ctx, w.ID, next)
	})
	return view, err
}

// CreateTSP registers a merchant of a partner (an operator command).
func (s *Service) CreateTSP(ctx context.Context, partnerID uuid.UUID, name string) (TSP, error) {
	if name == "" {
		return TSP{}, Invalid("name", "обязательное поле")
	}
	id, err := s.newID()
	if err != nil {
		return TSP{}, err
	}
	t := TSP{ID: id, PartnerID: partnerID, Name: name, CreatedAt: s.now()}
	err = s.update(ctx, func(ctx context.Context, tx Tx) error { return tx.InsertTSP(ctx, t) })
	return t, err
}
