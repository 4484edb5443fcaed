package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/wallet"
	"github.com/perspektiva/walletd/webhook"
)

// Run is the storage conformance suite: every engine must pass it. open returns
// a fresh, migrated database that is closed when its test ends; every subtest
// opens its own, so they run in parallel.
func Run(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("partners", func(t *testing.T) { runPartners(t, open) })
	t.Run("tokens", func(t *testing.T) { runTokens(t, open) })
	t.Run("wallets", func(t *testing.T) { runWallets(t, open) })
	t.Run("transactions", func(t *testing.T) { runTransactions(t, open) })
	t.Run("overrides", func(t *testing.T) { runOverrides(t, open) })
	t.Run("tsp", func(t *testing.T) { runTSP(t, open) })
	t.Run("migrate", func(t *testing.T) { runMigrate(t, open) })
	t.Run("service", func(t *testing.T) { runService(t, open) })
}

// when is a fixed time with nanoseconds, which the store keeps to the microsecond.
var when = time.Date(2024, 7, 10, 14, 3, 59, 123456789, time.UTC)

// ---------------------------------------------------------------------------
// helpers

func mustNil(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", what, err)
	}
}

func mustIs(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func sameTime(t *testing.T, field string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want the zero time", field, got)
		}
		return
	}
	if w := want.Truncate(time.Microsecond); !got.Equal(w) {
		t.Errorf("%s = %v, want %v (microsecond precision)", field, got, w)
	}
}

// randomDigits returns n random decimal digits.
func randomDigits(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		d, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			t.Fatalf("random digit: %v", err)
		}
		b[i] = byte('0' + d.Int64())
	}
	return string(b)
}

func randomHash(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random hash: %v", err)
	}
	return b
}

// newPartner stores a partner with one client and returns both as written.
func newPartner(t *testing.T, db *store.DB) (auth.Partner, auth.Client) {
	t.Helper()
	p := auth.Partner{
		ID: uuid.New(), Name: "Partner " + randomDigits(t, 4), Status: auth.Active,
		WebhookURL: "https://partner.example/hook", WebhookSecret: "whs_" + randomDigits(t, 20), CreatedAt: when,
	}
	c := auth.Client{
		ID: "wc_" + randomDigits(t, 20), PartnerID: p.ID, SecretHash: randomHash(t),
		Status: auth.Active, CreatedAt: when.Add(time.Second),
	}
	mustNil(t, db.AuthStore().InsertPartner(context.Background(), p, c), "InsertPartner")
	return p, c
}

// newWallet returns an active ELEMENTARY wallet of partnerID, not yet stored.
func newWallet(t *testing.T, partnerID uuid.UUID, phone string) wallet.Wallet {
	t.Helper()
	return wallet.Wallet{
		ID: uuid.New(), PartnerID: partnerID, Phone: phone, Number: "9" + randomDigits(t, 15),
		Identification: wallet.Elementary, Status: wallet.Active, CreatedAt: when,
	}
}

func insertWallet(db *store.DB, w wallet.Wallet) error {
	return db.Update(context.Background(), func(ctx context.Context, tx wallet.Tx) error {
		return tx.InsertWallet(ctx, w)
	})
}

// openWithWallet opens a database with a partner and one stored wallet of it.
func openWithWallet(t *testing.T, open func(t *testing.T) *store.DB) (*store.DB, auth.Partner, wallet.Wallet) {
	t.Helper()
	db := open(t)
	p, _ := newPartner(t, db)
	w := newWallet(t, p.ID, "9001234567")
	mustInsertWallet(t, db, w)
	return db, p, w
}

func mustInsertWallet(t *testing.T, db *store.DB, w wallet.Wallet) {
	t.Helper()
	mustNil(t, insertWallet(db, w), "InsertWallet")
}

func readWallet(db *store.DB, partnerID, walletID uuid.UUID) (wallet.Wallet, error) {
	var w wallet.Wallet
	err := db.View(context.Background(), func(ctx context.Context, tx wallet.Tx) error {
		var err error
		w, err = tx.Wallet(ctx, partnerID, walletID, false)
		return err
	})
	return w, err
}

func byPhone(db *store.DB, partnerID uuid.UUID, phone string) (wallet.Wallet, error) {
	var w wallet.Wallet
	err := db.View(context.Background(), func(ctx context.Context, tx wallet.Tx) error {
		var err error
		w, err = tx.ActiveWalletByPhone(ctx, partnerID, phone)
		return err
	})
	return w, err
}

func updateWallet(db *store.DB, w wallet.Wallet) error {
	return db.Update(context.Background(), func(ctx context.Context, tx wallet.Tx) error {
		return tx.UpdateWallet(ctx, w)
	})
}

func readOverrides(t *testing.T, db *store.DB, walletID uuid.UUID) wallet.Overrides {
	t.Helper()
	var o wallet.Overrides
	mustNil(t, db.View(context.Background(), func(ctx context.Context, tx wallet.Tx) error {
		var err error
		o, err = tx.Overrides(ctx, walletID)
		return err
	}), "Overrides")
	return o
}

func saveOverrides(t *testing.T, db *store.DB, walletID uuid.UUID, o wallet.Overrides) {
	t.Helper()
	mustNil(t, db.Update(context.Background(), func(ctx context.Context, tx wallet.Tx) error {
		return tx.SaveOverrides(ctx, walletID, o)
	}), "SaveOverrides")
}

func sameWallet(t *testing.T, got, want wallet.Wallet) {
	t.Helper()
	if got.ID != want.ID || got.PartnerID != want.PartnerID || got.Phone != want.Phone ||
		got.Number != want.Number || got.Identification != want.Identification || got.Status != want.Status ||
		got.Balance != want.Balance || got.PendingCredit != want.PendingCredit {
		t.Errorf("wallet = %+v\nwant     %+v", got, want)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	sameTime(t, "ClosedAt", got.ClosedAt, want.ClosedAt)
}

func boolPtr(b bool) *bool { return &b }

func fmtEnabled(b *bool) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprint(*b)
}

func fmtOptional(o wallet.Optional) string {
	if !o.Valid {
		return "absent"
	}
	return o.Value.String()
}

// fmtOverrides writes overrides with pointers dereferenced, for comparison.
func fmtOverrides(o wallet.Overrides) string {
	s := "balance=" + fmtOptional(o.Balance)
	for _, typ := range wallet.LimitedTypes {
		v := o.Type(typ)
		s += fmt.Sprintf(" %s{oneTime=%s month=%s enabled=%s}", typ, fmtOptional(v.OneTime), fmtOptional(v.Month), fmtEnabled(v.Enabled))
	}
	return s
}

func sameOverrides(t *testing.T, got, want wallet.Overrides) {
	t.Helper()
	if g, w := fmtOverrides(got), fmtOverrides(want); g != w {
		t.Errorf("overrides = %s\nwant        %s", g, w)
	}
}

func newService(t *testing.T, db *store.DB) *wallet.Service {
	t.Helper()
	svc, err := wallet.NewService(db, wallet.Config{})
	mustNil(t, err, "NewService")
	return svc
}

// ---------------------------------------------------------------------------
// partners and clients

func runPartners(t *testing.T, open func(t *testing.T) *store.DB) {
	ctx := context.Background()

	t.Run("InsertPartnerRoundTrip", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		p, c := newPartner(t, db)

		got, err := s.Partner(ctx, p.ID)
		mustNil(t, err, "Partner")
		if got.ID != p.ID || got.Name != p.Name || got.Status != p.Status ||
			got.WebhookURL != p.WebhookURL || got.WebhookSecret != p.WebhookSecret {
			t.Errorf("Partner = %+v, want %+v", got, p)
		}
		sameTime(t, "Partner.CreatedAt", got.CreatedAt, p.CreatedAt)

		gc, gp, err := s.ClientWithPartner(ctx, c.ID)
		mustNil(t, err, "ClientWithPartner")
		if gc.ID != c.ID || gc.PartnerID != c.PartnerID || !bytes.Equal(gc.SecretHash, c.SecretHash) || gc.Status != c.Status {
			t.Errorf("Client = %+v, want %+v", gc, c)
		}
		sameTime(t, "Client.CreatedAt", gc.CreatedAt, c.CreatedAt)
		if gp.ID != p.ID || gp.Name != p.Name || gp.Status != p.Status || gp.WebhookSecret != p.WebhookSecret {
			t.Errorf("client's Partner = %+v, want %+v", gp, p)
		}
		sameTime(t, "client's Partner.CreatedAt", gp.CreatedAt, p.CreatedAt)
	})

	t.Run("UnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		newPartner(t, db)
		_, err := s.Partner(ctx, uuid.New())
		mustIs(t, err, auth.ErrNotFound, "Partner(unknown)")
		_, _, err = s.ClientWithPartner(ctx, "wc_unknown")
		mustIs(t, err, auth.ErrNotFound, "ClientWithPartner(unknown)")
	})

	t.Run("HasPartners", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		has, err := s.HasPartners(ctx)
		mustNil(t, err, "HasPartners on an empty database")
		if has {
			t.Fatal("HasPartners = true on an empty database")
		}
		newPartner(t, db)
		has, err = s.HasPartners(ctx)
		mustNil(t, err, "HasPartners")
		if !has {
			t.Fatal("HasPartners = false after InsertPartner")
		}
	})

	t.Run("SetStatus", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		p, c := newPartner(t, db)
		other, otherClient := newPartner(t, db)

		mustNil(t, s.SetPartnerStatus(ctx, p.ID, auth.Disabled), "SetPartnerStatus")
		got, err := s.Partner(ctx, p.ID)
		mustNil(t, err, "Partner")
		if got.Status != auth.Disabled {
			t.Errorf("partner status = %s, want DISABLED", got.Status)
		}
		mustNil(t, s.SetClientStatus(ctx, c.ID, auth.Disabled), "SetClientStatus")
		gc, gp, err := s.ClientWithPartner(ctx, c.ID)
		mustNil(t, err, "ClientWithPartner")
		if gc.Status != auth.Disabled || gp.Status != auth.Disabled {
			t.Errorf("client status %s, partner status %s; want both DISABLED", gc.Status, gp.Status)
		}

		// The other partner and its client are untouched.
		oc, op, err := s.ClientWithPartner(ctx, otherClient.ID)
		mustNil(t, err, "ClientWithPartner(other)")
		if oc.Status != auth.Active || op.Status != auth.Active || op.ID != other.ID {
			t.Errorf("other client %s, partner %s; want both ACTIVE", oc.Status, op.Status)
		}

		mustNil(t, s.SetPartnerStatus(ctx, p.ID, auth.Active), "SetPartnerStatus(ACTIVE)")
		mustNil(t, s.SetClientStatus(ctx, c.ID, auth.Active), "SetClientStatus(ACTIVE)")
		gc, gp, err = s.ClientWithPartner(ctx, c.ID)
		mustNil(t, err, "ClientWithPartner")
		if gc.Status != auth.Active || gp.Status != auth.Active {
			t.Errorf("after re-enabling: client %s, partner %s; want both ACTIVE", gc.Status, gp.Status)
		}
	})

	t.Run("SetStatusUnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		newPartner(t, db)
		mustIs(t, s.SetPartnerStatus(ctx, uuid.New(), auth.Disabled), auth.ErrNotFound, "SetPartnerStatus(unknown)")
		mustIs(t, s.SetClientStatus(ctx, "wc_unknown", auth.Disabled), auth.ErrNotFound, "SetClientStatus(unknown)")
	})

	t.Run("SetStatusFailureIsNotNotFound", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		p, c := newPartner(t, db)
		// The schema refuses an unknown status; that refusal is a storage
		// failure and must not be reported as "no such partner".
		err := s.SetPartnerStatus(ctx, p.ID, auth.Status("BOGUS"))
		if err == nil {
			t.Fatal("SetPartnerStatus(BOGUS) succeeded; the schema allows only ACTIVE and DISABLED")
		}
		if errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("SetPartnerStatus(BOGUS) = %v, want a storage error other than ErrNotFound", err)
		}
		err = s.SetClientStatus(ctx, c.ID, auth.Status("BOGUS"))
		if err == nil || errors.Is(err, auth.ErrNotFound) {
			t.Errorf("SetClientStatus(BOGUS) = %v, want a storage error other than ErrNotFound", err)
		}
	})
}

// ---------------------------------------------------------------------------
// tokens

func newToken(t *testing.T, kind auth.Kind, c auth.Client, family uuid.UUID) auth.Token {
	t.Helper()
	return auth.Token{
		Hash: randomHash(t), Kind: kind, ClientID: c.ID, PartnerID: c.PartnerID, FamilyID: family,
		CreatedAt: when, ExpiresAt: when.Add(15*time.Minute + 987654321*time.Nanosecond),
	}
}

func runTokens(t *testing.T, open func(t *testing.T) *store.DB) {
	ctx := context.Background()

	t.Run("InsertAndGrantRoundTrip", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		_, c := newPartner(t, db)
		family := uuid.New()
		access, refresh := newToken(t, auth.Access, c, family), newToken(t, auth.Refresh, c, family)
		refresh.ExpiresAt = when.Add(30 * 24 * time.Hour)
		mustNil(t, s.InsertTokens(ctx, access, refresh), "InsertTokens")

		for _, want := range []auth.Token{access, refresh} {
			g, err := s.Grant(ctx, want.Hash)
			mustNil(t, err, "Grant("+string(want.Kind)+")")
			if !bytes.Equal(g.Hash, want.Hash) || g.Kind != want.Kind || g.ClientID != want.ClientID ||
				g.PartnerID != want.PartnerID || g.FamilyID != want.FamilyID {
				t.Errorf("Grant = %+v, want %+v", g.Token, want)
			}
			sameTime(t, "CreatedAt", g.CreatedAt, want.CreatedAt)
			sameTime(t, "ExpiresAt", g.ExpiresAt, want.ExpiresAt)
			sameTime(t, "UsedAt", g.UsedAt, time.Time{})
			sameTime(t, "RevokedAt", g.RevokedAt, time.Time{})
			if g.ClientStatus != auth.Active || g.PartnerStatus != auth.Active {
				t.Errorf("Grant statuses = client %s, partner %s; want ACTIVE, ACTIVE", g.ClientStatus, g.PartnerStatus)
			}
		}
		_, err := s.Grant(ctx, randomHash(t))
		mustIs(t, err, auth.ErrNotFound, "Grant(unknown)")
	})

	t.Run("GrantReflectsStatus", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		p, c := newPartner(t, db)
		tok := newToken(t, auth.Access, c, uuid.New())
		mustNil(t, s.InsertTokens(ctx, tok), "InsertTokens")

		mustNil(t, s.SetClientStatus(ctx, c.ID, auth.Disabled), "SetClientStatus")
		g, err := s.Grant(ctx, tok.Hash)
		mustNil(t, err, "Grant")
		if g.ClientStatus != auth.Disabled || g.PartnerStatus != auth.Active {
			t.Errorf("client disabled: Grant statuses = client %s, partner %s", g.ClientStatus, g.PartnerStatus)
		}

		mustNil(t, s.SetClientStatus(ctx, c.ID, auth.Active), "SetClientStatus")
		mustNil(t, s.SetPartnerStatus(ctx, p.ID, auth.Disabled), "SetPartnerStatus")
		g, err = s.Grant(ctx, tok.Hash)
		mustNil(t, err, "Grant")
		if g.ClientStatus != auth.Active || g.PartnerStatus != auth.Disabled {
			t.Errorf("partner disabled: Grant statuses = client %s, partner %s", g.ClientStatus, g.PartnerStatus)
		}
	})

	t.Run("Rotate", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		_, c := newPartner(t, db)
		family := uuid.New()
		old := newToken(t, auth.Refresh, c, family)
		mustNil(t, s.InsertTokens(ctx, old), "InsertTokens")

		usedAt := when.Add(time.Minute + 555*time.Nanosecond)
		next := []auth.Token{newToken(t, auth.Access, c, family), newToken(t, auth.Refresh, c, family)}
		mustNil(t, s.Rotate(ctx, old.Hash, usedAt, next...), "Rotate")

		g, err := s.Grant(ctx, old.Hash)
		mustNil(t, err, "Grant(old)")
		sameTime(t, "old UsedAt", g.UsedAt, usedAt)
		sameTime(t, "old RevokedAt", g.RevokedAt, time.Time{})
		for _, n := range next {
			g, err := s.Grant(ctx, n.Hash)
			mustNil(t, err, "Grant(successor "+string(n.Kind)+")")
			if g.Kind != n.Kind || g.FamilyID != family || !g.UsedAt.IsZero() {
				t.Errorf("successor = %+v, want kind %s of family %s, unused", g.Token, n.Kind, family)
			}
		}

		// A second exchange of the same token fails and stores nothing.
		again := []auth.Token{newToken(t, auth.Access, c, family), newToken(t, auth.Refresh, c, family)}
		mustIs(t, s.Rotate(ctx, old.Hash, usedAt.Add(time.Second), again...), auth.ErrAlreadyUsed, "Rotate(used)")
		for _, n := range again {
			_, err := s.Grant(ctx, n.Hash)
			mustIs(t, err, auth.ErrNotFound, "Grant(successor of a refused Rotate)")
		}
		g, err = s.Grant(ctx, old.Hash)
		mustNil(t, err, "Grant(old)")
		sameTime(t, "old UsedAt after a refused Rotate", g.UsedAt, usedAt)
	})

	t.Run("RotateUnknown", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		_, c := newPartner(t, db)
		next := newToken(t, auth.Access, c, uuid.New())
		mustIs(t, s.Rotate(ctx, randomHash(t), when, next), auth.ErrNotFound, "Rotate(unknown)")
		_, err := s.Grant(ctx, next.Hash)
		mustIs(t, err, auth.ErrNotFound, "Grant(successor of an unknown token)")
	})

	t.Run("RotateConcurrent", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		_, c := newPartner(t, db)
		family := uuid.New()
		old := newToken(t, auth.Refresh, c, family)
		mustNil(t, s.InsertTokens(ctx, old), "InsertTokens")

		const n = 8
		successors := make([]auth.Token, n)
		for i := range successors {
			successors[i] = newToken(t, auth.Refresh, c, family)
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = s.Rotate(ctx, old.Hash, when.Add(time.Minute), successors[i])
			}()
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("Rotate succeeded twice (goroutines %d and %d)", winner, i)
				}
				winner = i
			case !errors.Is(err, auth.ErrAlreadyUsed):
				t.Errorf("goroutine %d: Rotate = %v, want nil or ErrAlreadyUsed", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no Rotate succeeded")
		}
		for i, succ := range successors {
			_, err := s.Grant(ctx, succ.Hash)
			if i == winner {
				mustNil(t, err, "Grant(winner's successor)")
			} else {
				mustIs(t, err, auth.ErrNotFound, fmt.Sprintf("Grant(successor of loser %d)", i))
			}
		}
	})

	t.Run("RevokeFamily", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		_, c := newPartner(t, db)
		famA, famB := uuid.New(), uuid.New()
		a := []auth.Token{newToken(t, auth.Access, c, famA), newToken(t, auth.Refresh, c, famA), newToken(t, auth.Access, c, famA)}
		b := []auth.Token{newToken(t, auth.Access, c, famB), newToken(t, auth.Refresh, c, famB)}
		mustNil(t, s.InsertTokens(ctx, append(append([]auth.Token{}, a...), b...)...), "InsertTokens")

		at := when.Add(time.Hour + 333*time.Nanosecond)
		mustNil(t, s.RevokeFamily(ctx, famA, at), "RevokeFamily")
		for _, tok := range a {
			g, err := s.Grant(ctx, tok.Hash)
			mustNil(t, err, "Grant(family A)")
			sameTime(t, "family A RevokedAt", g.RevokedAt, at)
		}
		for _, tok := range b {
			g, err := s.Grant(ctx, tok.Hash)
			mustNil(t, err, "Grant(family B)")
			sameTime(t, "family B RevokedAt", g.RevokedAt, time.Time{})
		}
		// Revoking again keeps the first revocation time.
		mustNil(t, s.RevokeFamily(ctx, famA, at.Add(time.Hour)), "RevokeFamily again")
		g, err := s.Grant(ctx, a[0].Hash)
		mustNil(t, err, "Grant")
		sameTime(t, "RevokedAt after a second RevokeFamily", g.RevokedAt, at)
	})

	t.Run("RevokeToken", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		s := db.AuthStore()
		_, c := newPartner(t, db)
		family := uuid.New()
		access, refresh := newToken(t, auth.Access, c, family), newToken(t, auth.Refresh, c, family)
		mustNil(t, s.InsertTokens(ctx, access, refresh), "InsertTokens")

		at := when.Add(2 * time.Minute)
		mustNil(t, s.RevokeToken(ctx, access.Hash, at), "RevokeToken")
		g, err := s.Grant(ctx, access.Hash)
		mustNil(t, err, "Grant(access)")
		sameTime(t, "revoked RevokedAt", g.RevokedAt, at)
		g, err = s.Grant(ctx, refresh.Hash)
		mustNil(t, err, "Grant(refresh)")
		sameTime(t, "sibling RevokedAt", g.RevokedAt, time.Time{})
	})
}

// ---------------------------------------------------------------------------
// wallets

func runWallets(t *testing.T, open func(t *testing.T) *store.DB) {
	ctx := context.Background()

	t.Run("InsertRoundTrip", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		p, _ := newPartner(t, db)
		w := newWallet(t, p.ID, "9001234567")
		w.Identification = wallet.Personalized
		mustInsertWallet(t, db, w)

		got, err := readWallet(db, p.ID, w.ID)
		mustNil(t, err, "Wallet")
		sameWallet(t, got, w)
		if got.Balance != 0 || got.Status != wallet.Active {
			t.Errorf("new wallet: balance %s, status %s; want 0.00, ACTIVE", got.Balance, got.Status)
		}

		// The same read with a lock, inside a write transaction.
		mustNil(t, db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
			got, err := tx.Wallet(ctx, p.ID, w.ID, true)
			if err != nil {
				return err
			}
			sameWallet(t, got, w)
			return nil
		}), "Wallet(lock)")
	})

	t.Run("OtherPartnerIsNotFound", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		p, _ := newPartner(t, db)
		other, _ := newPartner(t, db)
		w := newWallet(t, p.ID, "9001234567")
		mustInsertWallet(t, db, w)

		_, err := readWallet(db, other.ID, w.ID)
		mustIs(t, err, wallet.ErrNotFound, "Wallet(other partner)")
		_, err = readWallet(db, p.ID, uuid.New())
		mustIs(t, err, wallet.ErrNotFound, "Wallet(unknown id)")
		_, err = byPhone(db, other.ID, w.Phone)
		mustIs(t, err, wallet.ErrNotFound, "ActiveWalletByPhone(other partner)")
	})

	t.Run("ActiveWalletByPhone", func(t *testing.T) {
		t.Parallel()
		db, p, w := openWithWallet(t, open)
		mustInsertWallet(t, db, newWallet(t, p.ID, "9007654321"))

		got, err := byPhone(db, p.ID, w.Phone)
		mustNil(t, err, "ActiveWalletByPhone")
		sameWallet(t, got, w)
		_, err = byPhone(db, p.ID, "9000000000")
		mustIs(t, err, wallet.ErrNotFound, "ActiveWalletByPhone(unknown phone)")
	})

	t.Run("OneActiveWalletPerPhone", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		p, _ := newPartner(t, db)
		other, _ := newPartner(t, db)
		first := newWallet(t, p.ID, "9001234567")
		mustInsertWallet(t, db, first)

		second := newWallet(t, p.ID, first.Phone)
		mustIs(t, insertWallet(db, second), wallet.ErrDuplicate, "InsertWallet(same partner, same phone)")
		_, err := readWallet(db, p.ID, second.ID)
		mustIs(t, err, wallet.ErrNotFound, "Wallet(refused duplicate)")

		// Another partner may have a wallet for the same phone.
		elsewhere := newWallet(t, other.ID, first.Phone)
		mustInsertWallet(t, db, elsewhere)

		// Closing the wallet frees the phone.
		closed := first
		closed.Status, closed.ClosedAt = wallet.Closed, when.Add(time.Hour+777*time.Nanosecond)
		mustNil(t, updateWallet(db, closed), "UpdateWallet(CLOSED)")
		got, err := readWallet(db, p.ID, first.ID)
		mustNil(t, err, "Wallet(closed)")
		sameWallet(t, got, closed)
		_, err = byPhone(db, p.ID, first.Phone)
		mustIs(t, err, wallet.ErrNotFound, "ActiveWalletByPhone after closing")

		mustInsertWallet(t, db, second)
		got, err = byPhone(db, p.ID, first.Phone)
		mustNil(t, err, "ActiveWalletByPhone after re-registering")
		sameWallet(t, got, second)
		got, err = byPhone(db, other.ID, first.Phone)
		mustNil(t, err, "ActiveWalletByPhone(other partner)")
		sameWallet(t, got, elsewhere)
	})

	t.Run("DuplicateNumberAndID", func(t *testing.T) {
		t.Parallel()
		db, p, w := openWithWallet(t, open)

		sameNumber := newWallet(t, p.ID, "9007654321")
		sameNumber.Number = w.Number
		mustIs(t, insertWallet(db, sameNumber), wallet.ErrDuplicate, "InsertWallet(taken number)")
		_, err := readWallet(db, p.ID, sameNumber.ID)
		mustIs(t, err, wallet.ErrNotFound, "Wallet(refused number)")

		sameID := newWallet(t, p.ID, "9001111111")
		sameID.ID = w.ID
		mustIs(t, insertWallet(db, sameID), wallet.ErrDuplicate, "InsertWallet(taken id)")
		got, err := readWallet(db, p.ID, w.ID)
		mustNil(t, err, "Wallet")
		sameWallet(t, got, w)
	})

	t.Run("UpdateWallet", func(t *testing.T) {
		t.Parallel()
		db, p, w := openWithWallet(t, open)

		w.Identification = wallet.Identified
		mustNil(t, updateWallet(db, w), "UpdateWallet(identification)")
		got, err := readWallet(db, p.ID, w.ID)
		mustNil(t, err, "Wallet")
		sameWallet(t, got, w)

		unknown := newWallet(t, p.ID, "9007654321")
		mustIs(t, updateWallet(db, unknown), wallet.ErrNotFound, "UpdateWallet(unknown)")
	})

	t.Run("NoPendingOperations", func(t *testing.T) {
		t.Parallel()
		db, _, w := openWithWallet(t, open)
		var pending bool
		mustNil(t, db.View(ctx, func(ctx context.Context, tx wallet.Tx) error {
			var err error
			pending, err = tx.HasPendingOperations(ctx, w.ID)
			return err
		}), "HasPendingOperations")
		if pending {
			t.Error("HasPendingOperations = true for a new wallet")
		}
	})

	t.Run("MonthUsageEmpty", func(t *testing.T) {
		t.Parallel()
		db, _, w := openWithWallet(t, open)
		var used map[wallet.OperationType]money.Amount
		mustNil(t, db.View(ctx, func(ctx context.Context, tx wallet.Tx) error {
			var err error
			used, err = tx.MonthUsage(ctx, w.ID, 202407)
			return err
		}), "MonthUsage")
		if len(used) != 0 {
			t.Errorf("MonthUsage of a new wallet = %v, want empty", used)
		}
	})

	t.Run("LockSerializes", func(t *testing.T) {
		t.Parallel()
		db, p, w := openWithWallet(t, open)
		saveOverrides(t, db, w.ID, wallet.Overrides{Balance: wallet.Some(0)})

		// Each transaction locks the wallet, reads a counter, waits and writes
		// it back plus one. Without the lock some increments would be lost.
		const n = 20
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
					if _, err := tx.Wallet(ctx, p.ID, w.ID, true); err != nil {
						return err
					}
					o, err := tx.Overrides(ctx, w.ID)
					if err != nil {
						return err
					}
					time.Sleep(2 * time.Millisecond)
					o.Balance = wallet.Some(o.Balance.Value + 1)
					return tx.SaveOverrides(ctx, w.ID, o)
				})
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("transaction %d: %v", i, err)
			}
		}
		if got := readOverrides(t, db, w.ID).Balance; got != wallet.Some(n) {
			t.Fatalf("counter = %s after %d locked increments, want %d kopecks", fmtOptional(got), n, n)
		}
	})
}

// ---------------------------------------------------------------------------
// transactions

func runTransactions(t *testing.T, open func(t *testing.T) *store.DB) {
	ctx := context.Background()

	t.Run("ErrorRollsBack", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		p, _ := newPartner(t, db)
		w := newWallet(t, p.ID, "9001234567")
		boom := errors.New("boom")
		err := db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
			if err := tx.InsertWallet(ctx, w); err != nil {
				return err
			}
			if err := tx.SaveOverrides(ctx, w.ID, wallet.Overrides{Balance: wallet.Some(1)}); err != nil {
				return err
			}
			return boom
		})
		mustIs(t, err, boom, "Update")
		_, err = readWallet(db, p.ID, w.ID)
		mustIs(t, err, wallet.ErrNotFound, "Wallet after a failed transaction")
		_, err = byPhone(db, p.ID, w.Phone)
		mustIs(t, err, wallet.ErrNotFound, "ActiveWalletByPhone after a failed transaction")
		// Nothing of it is left: the same id, number and phone insert cleanly.
		mustInsertWallet(t, db, w)
		sameOverrides(t, readOverrides(t, db, w.ID), wallet.Overrides{})
	})

	// Writes a store may defer (see wallet.Tx) report their failure at the
	// latest from Update, and nothing of the transaction stays: not the
	// writes before them, not the ones after.
	t.Run("RefusedPostingRollsBackAll", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		p, _ := newPartner(t, db)
		w := newWallet(t, p.ID, "9001234567")
		op := newPayment(w, uuid.New())
		err := db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
			if err := tx.InsertWallet(ctx, w); err != nil {
				return err
			}
			if err := tx.InsertOperation(ctx, op); err != nil {
				return err
			}
			// The wallet holds 0.00: taking 0.01 would overdraw it.
			if err := tx.Post(ctx, payment(op, 1)); err != nil {
				return err
			}
			return tx.AddMonthUsage(ctx, w.ID, op.Month, wallet.Payment, 1)
		})
		mustIs(t, err, wallet.ErrInsufficientFunds, "Update with an overdraft")
		_, err = readWallet(db, p.ID, w.ID)
		mustIs(t, err, wallet.ErrNotFound, "Wallet after a refused posting")
		// The connection went back clean: every later transaction works.
		for range 5 {
			mustNil(t, db.View(ctx, func(ctx context.Context, tx wallet.Tx) error {
				_, err := tx.Wallet(ctx, p.ID, w.ID, false)
				if !errors.Is(err, wallet.ErrNotFound) {
					return fmt.Errorf("read of the rolled-back wallet = %w, want ErrNotFound", err)
				}
				return nil
			}), "View after a refused posting")
		}
		mustInsertWallet(t, db, w)
		mustNil(t, db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error { return tx.InsertOperation(ctx, op) }),
			"InsertOperation after the rollback")
	})

	t.Run("DuplicateOperationRollsBackAll", func(t *testing.T) {
		t.Parallel()
		db, _, w := openWithWallet(t, open)
		token := uuid.New()
		mustNil(t, db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
			return tx.InsertOperation(ctx, newPayment(w, token))
		}), "first payment")
		second := newPayment(w, token) // another PAYMENT with the same token
		err := db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
			if err := tx.SaveOverrides(ctx, w.ID, wallet.Overrides{Balance: wallet.Some(1)}); err != nil {
				return err
			}
			if err := tx.InsertOperation(ctx, second); err != nil {
				return err
			}
			return tx.AddMonthUsage(ctx, w.ID, second.Month, wallet.Payment, 5)
		})
		mustIs(t, err, wallet.ErrDuplicate, "second payment with the token")
		sameOverrides(t, readOverrides(t, db, w.ID), wallet.Overrides{})
		usage := readUsage(t, db, w.ID, second.Month)
		if len(usage) != 0 {
			t.Fatalf("month usage after a refused transaction = %v, want none", usage)
		}
	})

	t.Run("IdempotencyKeyRelease", func(t *testing.T) {
		t.Parallel()
		db, _, w := openWithWallet(t, open)
		old := newPayment(w, uuid.New())
		old.IdemKey = "k-1"
		mustNil(t, db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
			return tx.InsertOperation(ctx, old)
		}), "operation under the key")
		byKey := func() (wallet.Operation, error) {
			var op wallet.Operation
			err := db.View(ctx, func(ctx context.Context, tx wallet.Tx) (err error) {
				op, err = tx.OperationByIdemKey(ctx, w.PartnerID, "k-1")
				return err
			})
			return op, err
		}
		got, err := byKey()
		mustNil(t, err, "OperationByIdemKey")
		if got.ID != old.ID {
			t.Fatalf("OperationByIdemKey = %s, want %s", got.ID, old.ID)
		}

		// The key is unique per partner until the old operation lets go of
		// it; then a new operation may carry it, and the old one keeps its data.
		next := newPayment(w, uuid.New())
		next.IdemKey, next.CreatedAt = "k-1", when.Add(25*time.Hour)
		err = db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error { return tx.InsertOperation(ctx, next) })
		mustIs(t, err, wallet.ErrDuplicate, "a new operation under a key still held")
		mustNil(t, db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
			if err := tx.ReleaseIdemKey(ctx, old.ID); err != nil {
				return err
			}
			return tx.InsertOperation(ctx, next)
		}), "a new operation under a released key")
		got, err = byKey()
		mustNil(t, err, "OperationByIdemKey after the release")
		if got.ID != next.ID {
			t.Fatalf("OperationByIdemKey after the release = %s, want the new %s", got.ID, next.ID)
		}
		mustNil(t, db.View(ctx, func(ctx context.Context, tx wallet.Tx) (err error) {
			got, err = tx.OperationByID(ctx, old.ID, false)
			return err
		}), "the released operation")
		if got.IdemKey != "" || got.Amount != old.Amount || got.Status != old.Status {
			t.Fatalf("the released operation = %+v, want its data without the key", got)
		}
	})

	t.Run("PaymentScope", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		p, _ := newPartner(t, db)
		other, _ := newPartner(t, db)
		w := newWallet(t, p.ID, "9001234567")
		mustInsertWallet(t, db, w)
		tsp := wallet.TSP{ID: uuid.New(), PartnerID: p.ID, Name: "Кофейня", CreatedAt: when}
		foreign := wallet.TSP{ID: uuid.New(), PartnerID: other.ID, Name: "Чужая", CreatedAt: when}
		token := uuid.New()
		paid := newPayment(w, token)
		paid.TSPID = tsp.ID
		limits := wallet.Overrides{Payment: wallet.TypeOverride{OneTime: wallet.Some(500)}}
		mustNil(t, db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
			for _, ts := range []wallet.TSP{tsp, foreign} {
				if err := tx.InsertTSP(ctx, ts); err != nil {
					return err
				}
			}
			if err := tx.SaveOverrides(ctx, w.ID, limits); err != nil {
				return err
			}
			if err := tx.InsertOperation(ctx, paid); err != nil {
				return err
			}
			return tx.AddMonthUsage(ctx, w.ID, paid.Month, wallet.Payment, 300)
		}), "setup")

		scope := func(partnerID, tspID, token uuid.UUID, month int) (wallet.PaymentScope, error) {
			var sc wallet.PaymentScope
			err := db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
				var err error
				sc, err = tx.PaymentScope(ctx, partnerID, w.ID, tspID, token, month)
				return err
			})
			return sc, err
		}
		sc, err := scope(p.ID, tsp.ID, token, paid.Month)
		mustNil(t, err, "PaymentScope")
		sameWallet(t, sc.Wallet, w)
		if !sc.PaidFound || sc.Paid.ID != paid.ID || !sc.TSPFound || sc.TSP.ID != tsp.ID || sc.TSP.Name != tsp.Name {
			t.Fatalf("PaymentScope found paid=%v (%s) tsp=%v (%s), want the payment %s and TSP %s",
				sc.PaidFound, sc.Paid.ID, sc.TSPFound, sc.TSP.ID, paid.ID, tsp.ID)
		}
		sameOverrides(t, sc.Overrides, limits)
		if got := sc.Usage[wallet.Payment]; got != 300 || len(sc.Usage) != 1 {
			t.Fatalf("PaymentScope usage = %v, want PAYMENT 3.00 only", sc.Usage)
		}

		sc, err = scope(p.ID, foreign.ID, uuid.New(), paid.Month+1)
		mustNil(t, err, "PaymentScope with a fresh token and another partner's TSP")
		if sc.PaidFound || sc.TSPFound || len(sc.Usage) != 0 {
			t.Fatalf("PaymentScope found paid=%v tsp=%v usage=%v, want nothing", sc.PaidFound, sc.TSPFound, sc.Usage)
		}

		_, err = scope(other.ID, foreign.ID, token, paid.Month)
		mustIs(t, err, wallet.ErrNotFound, "PaymentScope of another partner's wallet")
	})

	// Only partners with a webhook URL get events, whether the transaction
	// read the partner's scope first (a payment) or not.
	t.Run("EventsOnlyForPartnersWithURL", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		with, _ := newPartner(t, db)
		without, _ := newPartner(t, db)
		mustNil(t, db.WebhookStore().SetTarget(ctx, without.ID, webhook.Target{}), "SetTarget")
		for _, p := range []auth.Partner{with, without} {
			w := newWallet(t, p.ID, "9001234567")
			mustInsertWallet(t, db, w)
			for _, scoped := range []bool{false, true} {
				mustNil(t, db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
					if scoped {
						if _, err := tx.PaymentScope(ctx, p.ID, w.ID, uuid.New(), uuid.New(), 202611); err != nil {
							return err
						}
					}
					id := uuid.New()
					return tx.InsertEvent(ctx,
						wallet.Event{ID: id, PartnerID: p.ID, Type: wallet.EventPaymentSucceeded, WalletID: w.ID, CreatedAt: when},
						wallet.Job{ID: uuid.New(), Kind: wallet.JobWebhook, Ref: id, RunAt: when, CreatedAt: when})
				}), "InsertEvent")
			}
		}
		for p, want := range map[uuid.UUID]int{with.ID: 2, without.ID: 0} {
			recs, err := db.WebhookStore().List(ctx, p, 10)
			mustNil(t, err, "List")
			if len(recs) != want {
				t.Errorf("partner %s: %d events, want %d", p, len(recs), want)
			}
		}
	})

	// A request whose context ends mid-transaction leaves all of it or none
	// (SQLite finishes queued work; PostgreSQL rolls back), and the
	// connection it used serves the next transactions cleanly.
	t.Run("CancelledTransactionIsAtomic", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		p, _ := newPartner(t, db)
		w := newWallet(t, p.ID, "9001234567")
		limits := wallet.Overrides{Balance: wallet.Some(100)}
		cctx, cancel := context.WithCancel(ctx)
		_ = db.Update(cctx, func(ctx context.Context, tx wallet.Tx) error {
			if err := tx.InsertWallet(ctx, w); err != nil {
				return err
			}
			cancel()
			return tx.SaveOverrides(ctx, w.ID, limits)
		})
		_, err := readWallet(db, p.ID, w.ID)
		stored := err == nil
		if !stored {
			mustIs(t, err, wallet.ErrNotFound, "Wallet after a cancelled transaction")
		}
		want := wallet.Overrides{}
		if stored {
			want = limits
		}
		for range 5 {
			sameOverrides(t, readOverrides(t, db, w.ID), want)
		}
		if !stored {
			mustInsertWallet(t, db, w)
		}
	})

	t.Run("ViewIsReadOnly", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		p, _ := newPartner(t, db)
		w := newWallet(t, p.ID, "9001234567")
		err := db.View(ctx, func(ctx context.Context, tx wallet.Tx) error {
			return tx.InsertWallet(ctx, w)
		})
		if err == nil {
			t.Fatal("InsertWallet inside View succeeded")
		}
		_, err = readWallet(db, p.ID, w.ID)
		mustIs(t, err, wallet.ErrNotFound, "Wallet after a write in View")
	})
}

// ---------------------------------------------------------------------------
// limit overrides

func runOverrides(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("ZeroForNewWallet", func(t *testing.T) {
		t.Parallel()
		db, _, w := openWithWallet(t, open)
		sameOverrides(t, readOverrides(t, db, w.ID), wallet.Overrides{})
	})

	t.Run("RoundTripAndReplace", func(t *testing.T) {
		t.Parallel()
		db, p, w := openWithWallet(t, open)
		other := newWallet(t, p.ID, "9007654321")
		mustInsertWallet(t, db, other)

		first := wallet.Overrides{
			Balance: wallet.Some(0),
			Credit:  wallet.TypeOverride{OneTime: wallet.Some(0), Enabled: nil},
			Payment: wallet.TypeOverride{OneTime: wallet.Some(12345), Month: wallet.Some(0), Enabled: boolPtr(false)},
			Debit:   wallet.TypeOverride{Month: wallet.Some(4_000_000), Enabled: boolPtr(true)},
		}
		saveOverrides(t, db, w.ID, first)
		sameOverrides(t, readOverrides(t, db, w.ID), first)
		sameOverrides(t, readOverrides(t, db, other.ID), wallet.Overrides{})

		second := wallet.Overrides{
			Credit:  wallet.TypeOverride{Month: wallet.Some(1), Enabled: boolPtr(false)},
			Payment: wallet.TypeOverride{Enabled: boolPtr(true)},
			Debit:   wallet.TypeOverride{OneTime: wallet.Some(0)},
		}
		saveOverrides(t, db, w.ID, second)
		sameOverrides(t, readOverrides(t, db, w.ID), second)

		saveOverrides(t, db, w.ID, wallet.Overrides{})
		sameOverrides(t, readOverrides(t, db, w.ID), wallet.Overrides{})
	})
}

// ---------------------------------------------------------------------------
// TSPs

func runTSP(t *testing.T, open func(t *testing.T) *store.DB) {
	ctx := context.Background()

	t.Run("RoundTripAndPartnerScope", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		p, _ := newPartner(t, db)
		other, _ := newPartner(t, db)
		ts := wallet.TSP{ID: uuid.New(), PartnerID: p.ID, Name: "Кофейня «Зерно»", CreatedAt: when}
		mustNil(t, db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error { return tx.InsertTSP(ctx, ts) }), "InsertTSP")

		read := func(partnerID, tspID uuid.UUID) (wallet.TSP, error) {
			var got wallet.TSP
			err := db.View(ctx, func(ctx context.Context, tx wallet.Tx) error {
				var err error
				got, err = tx.TSP(ctx, partnerID, tspID)
				return err
			})
			return got, err
		}
		got, err := read(p.ID, ts.ID)
		mustNil(t, err, "TSP")
		if got.ID != ts.ID || got.PartnerID != ts.PartnerID || got.Name != ts.Name {
			t.Errorf("TSP = %+v, want %+v", got, ts)
		}
		sameTime(t, "TSP.CreatedAt", got.CreatedAt, ts.CreatedAt)

		_, err = read(other.ID, ts.ID)
		mustIs(t, err, wallet.ErrNotFound, "TSP(other partner)")
		_, err = read(p.ID, uuid.New())
		mustIs(t, err, wallet.ErrNotFound, "TSP(unknown)")
	})
}

// ---------------------------------------------------------------------------
// migrations

func runMigrate(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("Idempotent", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		p, _ := newPartner(t, db)
		applied, err := db.Migrate(context.Background())
		mustNil(t, err, "Migrate again")
		if len(applied) != 0 {
			t.Errorf("Migrate again applied %v, want nothing", applied)
		}
		// The data is still there.
		if _, err := db.AuthStore().Partner(context.Background(), p.ID); err != nil {
			t.Errorf("Partner after a second Migrate: %v", err)
		}
	})
}

// ---------------------------------------------------------------------------
// the wallet Service over the store

func runService(t *testing.T, open func(t *testing.T) *store.DB) {
	ctx := context.Background()

	t.Run("RegisterIdempotent", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		svc := newService(t, db)
		p, _ := newPartner(t, db)
		other, _ := newPartner(t, db)

		w1, err := svc.Register(ctx, p.ID, "9001234567", wallet.Elementary)
		mustNil(t, err, "Register")
		if len(w1.Number) != 16 || !wallet.ValidLuhn(w1.Number) {
			t.Errorf("number %q: want 16 digits with a Luhn check digit", w1.Number)
		}
		if w1.Status != wallet.Active || w1.Identification != wallet.Elementary || w1.Balance != 0 {
			t.Errorf("registered wallet = %+v", w1)
		}
		// Again, even with another level: the existing wallet, unchanged.
		w2, err := svc.Register(ctx, p.ID, "9001234567", wallet.Identified)
		mustNil(t, err, "Register again")
		if w2.ID != w1.ID || w2.Number != w1.Number || w2.Identification != wallet.Elementary {
			t.Errorf("second Register = %+v, want the first wallet %+v unchanged", w2, w1)
		}
		// The same phone at another partner is another wallet.
		w3, err := svc.Register(ctx, other.ID, "9001234567", wallet.Elementary)
		mustNil(t, err, "Register(other partner)")
		if w3.ID == w1.ID || w3.Number == w1.Number {
			t.Errorf("another partner's wallet %+v shares id or number with %+v", w3, w1)
		}
	})

	t.Run("RegisterConcurrent", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		svc := newService(t, db)
		p, _ := newPartner(t, db)

		const n = 10
		ids := make([]uuid.UUID, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				w, err := svc.Register(ctx, p.ID, "9001234567", wallet.Elementary)
				ids[i], errs[i] = w.ID, err
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			mustNil(t, err, fmt.Sprintf("Register %d", i))
		}
		for i, id := range ids {
			if id != ids[0] {
				t.Fatalf("Register %d returned wallet %s, Register 0 returned %s", i, id, ids[0])
			}
		}
		got, err := byPhone(db, p.ID, "9001234567")
		mustNil(t, err, "ActiveWalletByPhone")
		if got.ID != ids[0] {
			t.Errorf("stored wallet %s, Register returned %s", got.ID, ids[0])
		}
	})

	t.Run("CloseAndIdentify", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		svc := newService(t, db)
		p, _ := newPartner(t, db)
		other, _ := newPartner(t, db)
		w, err := svc.Register(ctx, p.ID, "9001234567", wallet.Elementary)
		mustNil(t, err, "Register")

		_, err = svc.Close(ctx, other.ID, w.ID)
		if code := wallet.ErrorCode(err); code != wallet.CodeWalletNotFound {
			t.Errorf("Close(other partner) = %v, want %s", err, wallet.CodeWalletNotFound)
		}

		idf, err := svc.Identify(ctx, p.ID, w.ID, wallet.Personalized)
		mustNil(t, err, "Identify")
		if idf.Identification != wallet.Personalized {
			t.Errorf("Identify returned level %s, want PERSONALIZED", idf.Identification)
		}

		closed, err := svc.Close(ctx, p.ID, w.ID)
		mustNil(t, err, "Close")
		if closed.Status != wallet.Closed || closed.ClosedAt.IsZero() {
			t.Errorf("Close returned status %s, closedAt %v", closed.Status, closed.ClosedAt)
		}
		again, err := svc.Close(ctx, p.ID, w.ID)
		mustNil(t, err, "Close again")
		if again.Status != wallet.Closed {
			t.Errorf("second Close returned status %s", again.Status)
		}
		stored, err := svc.Wallet(ctx, p.ID, w.ID)
		mustNil(t, err, "Wallet(closed)")
		if stored.Status != wallet.Closed || stored.Identification != wallet.Personalized {
			t.Errorf("closed wallet = %+v", stored)
		}
		sameTime(t, "ClosedAt", stored.ClosedAt, closed.ClosedAt)

		_, err = svc.Identify(ctx, p.ID, w.ID, wallet.Identified)
		if code := wallet.ErrorCode(err); code != wallet.CodeWalletClosed {
			t.Errorf("Identify(closed) = %v, want %s", err, wallet.CodeWalletClosed)
		}
		_, err = svc.SetLimits(ctx, p.ID, w.ID, wallet.LimitsPatch{Balance: wallet.Patch{Set: true, Value: wallet.Some(100)}})
		if code := wallet.ErrorCode(err); code != wallet.CodeWalletClosed {
			t.Errorf("SetLimits(closed) = %v, want %s", err, wallet.CodeWalletClosed)
		}

		// The phone is free again: a new wallet.
		fresh, err := svc.Register(ctx, p.ID, "9001234567", wallet.Elementary)
		mustNil(t, err, "Register after Close")
		if fresh.ID == w.ID || fresh.Status != wallet.Active {
			t.Errorf("Register after Close = %+v, want a new active wallet", fresh)
		}
	})

	t.Run("SetLimits", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		svc := newService(t, db)
		p, _ := newPartner(t, db)
		w, err := svc.Register(ctx, p.ID, "9001234567", wallet.Elementary)
		mustNil(t, err, "Register")

		bad := wallet.LimitsPatch{Types: map[wallet.OperationType]wallet.TypePatch{
			wallet.Credit:  {OneTime: wallet.Patch{Set: true, Value: wallet.Some(100_00)}},
			wallet.Payment: {OneTime: wallet.Patch{Set: true, Value: wallet.Some(15_000_01)}},
		}}
		_, err = svc.SetLimits(ctx, p.ID, w.ID, bad)
		var e *wallet.Error
		if !errors.As(err, &e) || e.Code != wallet.CodeValidation {
			t.Fatalf("SetLimits above system = %v, want %s", err, wallet.CodeValidation)
		}
		if _, ok := e.Fields["operationLimits.PAYMENT.oneTimeLimit"]; !ok || len(e.Fields) != 1 {
			t.Errorf("fieldErrors = %v, want only operationLimits.PAYMENT.oneTimeLimit", e.Fields)
		}
		sameOverrides(t, readOverrides(t, db, w.ID), wallet.Overrides{})
		view, err := svc.Limits(ctx, p.ID, w.ID)
		mustNil(t, err, "Limits")
		if got := view.Effective.Credit.OneTime; got != wallet.Some(15_000_00) {
			t.Errorf("effective CREDIT one-time after a refused patch = %s, want 15000.00", fmtOptional(got))
		}

		good := wallet.LimitsPatch{Types: map[wallet.OperationType]wallet.TypePatch{
			wallet.Credit:  {OneTime: wallet.Patch{Set: true, Value: wallet.Some(100_00)}},
			wallet.Payment: {Month: wallet.Patch{Set: true, Value: wallet.Some(0)}, Enabled: boolPtr(false)},
		}}
		view, err = svc.SetLimits(ctx, p.ID, w.ID, good)
		mustNil(t, err, "SetLimits")
		if got := view.Effective.Credit.OneTime; got != wallet.Some(100_00) {
			t.Errorf("effective CREDIT one-time = %s, want 100.00", fmtOptional(got))
		}
		if got := view.Effective.Payment; got.Month != wallet.Some(0) || got.Enabled || got.OneTime != wallet.Some(15_000_00) {
			t.Errorf("effective PAYMENT = %+v", got)
		}
		sameOverrides(t, readOverrides(t, db, w.ID), wallet.Overrides{
			Credit:  wallet.TypeOverride{OneTime: wallet.Some(100_00)},
			Payment: wallet.TypeOverride{Month: wallet.Some(0), Enabled: boolPtr(false)},
		})
	})
}

// newPayment returns a SUCCESS payment of 0.01 from w, not yet stored.
func newPayment(w wallet.Wallet, token uuid.UUID) wallet.Operation {
	return wallet.Operation{
		ID: uuid.New(), WalletID: w.ID, PartnerID: w.PartnerID, Type: wallet.Payment, Status: wallet.Success,
		Amount: 1, Token: token, Description: "Оплата", Month: 202611, CreatedAt: when, FinishedAt: when,
	}
}

// payment is the ledger transaction of op, taking amount from its wallet.
func payment(op wallet.Operation, amount money.Amount) wallet.LedgerTx {
	return wallet.LedgerTx{ID: uuid.New(), OperationID: op.ID, Kind: wallet.TxPayment, CreatedAt: when, Postings: []wallet.Posting{
		{Account: op.WalletID, Kind: wallet.WalletAccount, Amount: -amount},
		{Account: wallet.SBPOutbound, Kind: wallet.OpenAccount, Amount: amount},
	}}
}

func readUsage(t *testing.T, db *store.DB, walletID uuid.UUID, month int) map[wallet.OperationType]money.Amount {
	t.Helper()
	var used map[wallet.OperationType]money.Amount
	mustNil(t, db.View(context.Background(), func(ctx context.Context, tx wallet.Tx) error {
		var err error
		used, err = tx.MonthUsage(ctx, walletID, month)
		return err
	}), "MonthUsage")
	return used
}
