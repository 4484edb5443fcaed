package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/idempotency"
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
	t.Run("idempotency", func(t *testing.T) { runIdempotency(t, open) })
	t.Run("jobs", func(t *testing.T) { runJobs(t, open) })
}

// runIdempotency: a claim is named by its time, so the answer of a request
// that outlived its lease never lands on the claim of the request that took
// the key over, and releasing twice (a statement run again) is harmless.
func runIdempotency(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("TakenOverClaimStaysWithItsHolder", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		ctx := context.Background()
		st, p, key := b.db.IdempotencyStore(), b.partner.ID, "order-42"
		hash := []byte("request")
		const lease, ttl = 10 * time.Second, 24 * time.Hour
		begin := func(at time.Time, what string) (idempotency.Record, bool) {
			t.Helper()
			rec, claimed, err := st.Begin(ctx, p, key, hash, at, lease, ttl)
			mustNil(t, err, what)
			return rec, claimed
		}

		first := when
		if _, claimed := begin(first, "first Begin"); !claimed {
			t.Fatal("the first request did not claim a fresh key")
		}
		if rec, claimed := begin(first.Add(lease/2), "Begin within the lease"); claimed || rec.Status != 0 {
			t.Fatalf("a second request within the lease: claimed %v, record %+v; want the running claim", claimed, rec)
		}
		second := first.Add(lease + time.Second)
		if _, claimed := begin(second, "Begin after the lease"); !claimed {
			t.Fatal("a request after the lease did not take the key over")
		}

		// The first request ends late: its answer and its release leave the
		// second one's claim alone.
		mustIs(t, st.Finish(ctx, p, key, first, 200, []byte(`{"late":true}`)), idempotency.ErrClaimLost, "Finish of the lost claim")
		mustNil(t, st.Release(ctx, p, key, first), "Release of the lost claim")
		if rec, claimed := begin(second.Add(time.Second), "Begin while the second runs"); claimed || rec.Status != 0 {
			t.Fatalf("after the first request's late answer: claimed %v, record %+v; want the second's running claim", claimed, rec)
		}

		// The second request's answer is kept, also when its Finish runs twice.
		for range 2 {
			mustNil(t, st.Finish(ctx, p, key, second, 201, []byte(`{"ok":true}`)), "Finish of the live claim")
		}
		rec, claimed := begin(second.Add(lease+time.Second), "Begin after the answer")
		if claimed || rec.Status != 201 || string(rec.Body) != `{"ok":true}` {
			t.Fatalf("after the second request's answer: claimed %v, record %d %s; want 201 and its body", claimed, rec.Status, rec.Body)
		}
		// A release of a finished key changes nothing.
		mustNil(t, st.Release(ctx, p, key, second), "Release of a finished claim")
		if rec, _ := begin(second.Add(2*lease), "Begin after the release"); rec.Status != 201 {
			t.Fatalf("a release removed the stored answer: %+v", rec)
		}
	})
}

// when is a fixed time with nanoseconds, which the store keeps to the microsecond.
var when = time.Date(2024, 7, 10, 14, 3, 59, 123456789, time.UTC)

// Phones the cases register wallets for.
const (
	phoneA = "9001234567"
	phoneB = "9007654321"
)

// ---------------------------------------------------------------------------
// the bundle every case starts from

// bundle is a fresh database holding two partners, each with one client. A
// case acts as partner; other is there to show that nothing of partner's
// reaches another partner.
type bundle struct {
	db          *store.DB
	auth        auth.Store
	partner     auth.Partner
	client      auth.Client
	other       auth.Partner
	otherClient auth.Client
}

// setup opens a database and stores the bundle's two partners in it.
func setup(t *testing.T, open func(t *testing.T) *store.DB) *bundle {
	t.Helper()
	db := open(t)
	b := &bundle{db: db, auth: db.AuthStore()}
	b.partner, b.client = newPartner(t, db)
	b.other, b.otherClient = newPartner(t, db)
	return b
}

// setupWithWallet is setup plus a stored wallet of the partner for phoneA.
func setupWithWallet(t *testing.T, open func(t *testing.T) *store.DB) (*bundle, wallet.Wallet) {
	t.Helper()
	b := setup(t, open)
	return b, b.storeWallet(t, b.partner.ID, phoneA)
}

// storeWallet stores an active ELEMENTARY wallet of partnerID and returns it as written.
func (b *bundle) storeWallet(t *testing.T, partnerID uuid.UUID, phone string) wallet.Wallet {
	t.Helper()
	w := newWallet(t, partnerID, phone)
	mustInsertWallet(t, b.db, w)
	return w
}

// newToken returns a token of the partner's client in family, not yet stored.
func (b *bundle) newToken(t *testing.T, kind auth.Kind, family uuid.UUID) auth.Token {
	t.Helper()
	return auth.Token{
		Hash: randomHash(t), Kind: kind, ClientID: b.client.ID, PartnerID: b.client.PartnerID, FamilyID: family,
		CreatedAt: when, ExpiresAt: when.Add(15*time.Minute + 987654321*time.Nanosecond),
	}
}

// storeRefresh stores and returns a refresh token of the partner's client in a
// family of its own.
func (b *bundle) storeRefresh(t *testing.T) auth.Token {
	t.Helper()
	tok := b.newToken(t, auth.Refresh, uuid.New())
	mustNil(t, b.auth.InsertTokens(context.Background(), tok), "InsertTokens")
	return tok
}

// grant returns the grant of the token with hash, which must be stored.
func (b *bundle) grant(t *testing.T, hash []byte, what string) auth.Grant {
	t.Helper()
	g, err := b.auth.Grant(context.Background(), hash)
	mustNil(t, err, what)
	return g
}

// clientWithPartner returns a stored client and its partner.
func (b *bundle) clientWithPartner(t *testing.T, clientID string) (auth.Client, auth.Partner) {
	t.Helper()
	c, p, err := b.auth.ClientWithPartner(context.Background(), clientID)
	mustNil(t, err, "ClientWithPartner("+clientID+")")
	return c, p
}

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

// concurrently calls fn(0) to fn(n-1) on n goroutines released at once and
// returns their errors, by i, when all have returned.
func concurrently(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
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

func samePartner(t *testing.T, what string, got, want auth.Partner) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Status != want.Status ||
		got.WebhookURL != want.WebhookURL || got.WebhookSecret != want.WebhookSecret {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
	sameTime(t, what+".CreatedAt", got.CreatedAt, want.CreatedAt)
}

// wantStatuses checks a client's and its partner's status as a read reported them.
func wantStatuses(t *testing.T, what string, client, partner, wantClient, wantPartner auth.Status) {
	t.Helper()
	if client != wantClient || partner != wantPartner {
		t.Errorf("%s: client %s, partner %s; want %s, %s", what, client, partner, wantClient, wantPartner)
	}
}

// view returns what read finds in a read-only transaction of db.
func view[T any](db *store.DB, read func(context.Context, wallet.Tx) (T, error)) (T, error) {
	var v T
	err := db.View(context.Background(), func(ctx context.Context, tx wallet.Tx) error {
		var err error
		v, err = read(ctx, tx)
		return err
	})
	return v, err
}

// mustView is view for a read that must succeed.
func mustView[T any](t *testing.T, db *store.DB, what string, read func(context.Context, wallet.Tx) (T, error)) T {
	t.Helper()
	v, err := view(db, read)
	mustNil(t, err, what)
	return v
}

// mustUpdate runs write in a transaction of db that must commit.
func mustUpdate(t *testing.T, db *store.DB, what string, write func(context.Context, wallet.Tx) error) {
	t.Helper()
	mustNil(t, db.Update(context.Background(), write), what)
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

func mustInsertWallet(t *testing.T, db *store.DB, w wallet.Wallet) {
	t.Helper()
	mustNil(t, insertWallet(db, w), "InsertWallet")
}

func updateWallet(db *store.DB, w wallet.Wallet) error {
	return db.Update(context.Background(), func(ctx context.Context, tx wallet.Tx) error {
		return tx.UpdateWallet(ctx, w)
	})
}

func readWallet(db *store.DB, partnerID, walletID uuid.UUID) (wallet.Wallet, error) {
	return view(db, func(ctx context.Context, tx wallet.Tx) (wallet.Wallet, error) {
		return tx.Wallet(ctx, partnerID, walletID, false)
	})
}

func byPhone(db *store.DB, partnerID uuid.UUID, phone string) (wallet.Wallet, error) {
	return view(db, func(ctx context.Context, tx wallet.Tx) (wallet.Wallet, error) {
		return tx.ActiveWalletByPhone(ctx, partnerID, phone)
	})
}

// wantWallet checks that partnerID reads want.ID as want, and returns what it read.
func wantWallet(t *testing.T, db *store.DB, partnerID uuid.UUID, want wallet.Wallet, what string) wallet.Wallet {
	t.Helper()
	got, err := readWallet(db, partnerID, want.ID)
	mustNil(t, err, what)
	sameWallet(t, got, want)
	return got
}

// wantNoWallet checks that partnerID finds no wallet walletID, and is handed
// none with the error (not even one it found under walletID that is another
// partner's).
func wantNoWallet(t *testing.T, db *store.DB, partnerID, walletID uuid.UUID, what string) {
	t.Helper()
	got, err := readWallet(db, partnerID, walletID)
	mustIs(t, err, wallet.ErrNotFound, what)
	if got.ID != uuid.Nil || got.PartnerID != uuid.Nil {
		t.Errorf("%s returned wallet %s of partner %s with ErrNotFound, want the zero wallet", what, got.ID, got.PartnerID)
	}
}

// wantActiveWallet checks that want is partnerID's active wallet for want.Phone.
func wantActiveWallet(t *testing.T, db *store.DB, partnerID uuid.UUID, want wallet.Wallet, what string) {
	t.Helper()
	got, err := byPhone(db, partnerID, want.Phone)
	mustNil(t, err, what)
	sameWallet(t, got, want)
}

// wantNoActiveWallet checks that partnerID has no active wallet for phone.
func wantNoActiveWallet(t *testing.T, db *store.DB, partnerID uuid.UUID, phone, what string) {
	t.Helper()
	_, err := byPhone(db, partnerID, phone)
	mustIs(t, err, wallet.ErrNotFound, what)
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

func readOverrides(t *testing.T, db *store.DB, walletID uuid.UUID) wallet.Overrides {
	t.Helper()
	return readLimitState(t, db, walletID, anyMonth).Overrides
}

// anyMonth is the month of a LimitState read only for its settings.
const anyMonth = 202601

// readLimitState reads a wallet's settings and usage in month.
func readLimitState(t *testing.T, db *store.DB, walletID uuid.UUID, month int) wallet.LimitState {
	t.Helper()
	return mustView(t, db, "LimitState", func(ctx context.Context, tx wallet.Tx) (wallet.LimitState, error) {
		return tx.LimitState(ctx, walletID, month)
	})
}

func saveOverrides(t *testing.T, db *store.DB, walletID uuid.UUID, o wallet.Overrides) {
	t.Helper()
	mustUpdate(t, db, "SaveOverrides", func(ctx context.Context, tx wallet.Tx) error {
		return tx.SaveOverrides(ctx, walletID, o)
	})
}

// wantOverrides checks that the stored overrides of walletID are want.
func wantOverrides(t *testing.T, db *store.DB, walletID uuid.UUID, want wallet.Overrides) {
	t.Helper()
	sameOverrides(t, readOverrides(t, db, walletID), want)
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

// sameOperation compares every field of an operation, times to the microsecond.
func sameOperation(t *testing.T, got, want wallet.Operation) {
	t.Helper()
	times := func(o wallet.Operation) wallet.Operation {
		o.CreatedAt, o.ExpiresAt, o.FinishedAt = time.Time{}, time.Time{}, time.Time{}
		return o
	}
	if times(got) != times(want) {
		t.Errorf("operation = %+v\nwant        %+v", got, want)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	sameTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	sameTime(t, "FinishedAt", got.FinishedAt, want.FinishedAt)
}

func insertOperation(db *store.DB, op wallet.Operation) error {
	return db.Update(context.Background(), func(ctx context.Context, tx wallet.Tx) error {
		return tx.InsertOperation(ctx, op)
	})
}

func readUsage(t *testing.T, db *store.DB, walletID uuid.UUID, month int) map[wallet.OperationType]money.Amount {
	t.Helper()
	return readLimitState(t, db, walletID, month).Usage
}

// setupService is setup plus a wallet.Service over the bundle's database.
func setupService(t *testing.T, open func(t *testing.T) *store.DB) (*bundle, *wallet.Service) {
	t.Helper()
	b := setup(t, open)
	svc, err := wallet.NewService(b.db, wallet.Config{})
	mustNil(t, err, "NewService")
	return b, svc
}

// register registers partnerID's wallet for phoneA through svc.
func register(t *testing.T, svc *wallet.Service, partnerID uuid.UUID, level wallet.Identification, what string) wallet.Wallet {
	t.Helper()
	w, err := svc.Register(context.Background(), partnerID, phoneA, level)
	mustNil(t, err, what)
	return w
}

// wantCode checks that err is a wallet error with code.
func wantCode(t *testing.T, err error, code wallet.Code, what string) {
	t.Helper()
	if got := wallet.ErrorCode(err); got != code {
		t.Errorf("%s = %v, want %s", what, err, code)
	}
}

// ---------------------------------------------------------------------------
// partners and clients

func runPartners(t *testing.T, open func(t *testing.T) *store.DB) {
	ctx := context.Background()

	t.Run("InsertPartnerRoundTrip", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		p, c := b.partner, b.client

		got, err := b.auth.Partner(ctx, p.ID)
		mustNil(t, err, "Partner")
		samePartner(t, "Partner", got, p)

		gc, gp := b.clientWithPartner(t, c.ID)
		if gc.ID != c.ID || gc.PartnerID != c.PartnerID || !bytes.Equal(gc.SecretHash, c.SecretHash) || gc.Status != c.Status {
			t.Errorf("Client = %+v, want %+v", gc, c)
		}
		sameTime(t, "Client.CreatedAt", gc.CreatedAt, c.CreatedAt)
		samePartner(t, "client's Partner", gp, p)
	})

	t.Run("InsertClient", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		c := auth.Client{ID: "wc_second", PartnerID: b.partner.ID, SecretHash: randomHash(t), Status: auth.Active, CreatedAt: when}
		mustNil(t, b.auth.InsertClient(ctx, c), "InsertClient")
		gc, gp := b.clientWithPartner(t, c.ID)
		if gc.PartnerID != c.PartnerID || !bytes.Equal(gc.SecretHash, c.SecretHash) || gc.Status != c.Status {
			t.Errorf("Client = %+v, want %+v", gc, c)
		}
		samePartner(t, "the second client's Partner", gp, b.partner)
		// The partner's first client is still there.
		b.clientWithPartner(t, b.client.ID)

		orphan := c
		orphan.ID, orphan.PartnerID = "wc_orphan", uuid.New()
		mustIs(t, b.auth.InsertClient(ctx, orphan), auth.ErrNotFound, "InsertClient for an unknown partner")
		_, _, err := b.auth.ClientWithPartner(ctx, orphan.ID)
		mustIs(t, err, auth.ErrNotFound, "ClientWithPartner of the refused client")
	})

	t.Run("UnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		_, err := b.auth.Partner(ctx, uuid.New())
		mustIs(t, err, auth.ErrNotFound, "Partner(unknown)")
		_, _, err = b.auth.ClientWithPartner(ctx, "wc_unknown")
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
		b := setup(t, open)
		s, p, c := b.auth, b.partner, b.client

		mustNil(t, s.SetPartnerStatus(ctx, p.ID, auth.Disabled), "SetPartnerStatus")
		got, err := s.Partner(ctx, p.ID)
		mustNil(t, err, "Partner")
		if got.Status != auth.Disabled {
			t.Errorf("partner status = %s, want DISABLED", got.Status)
		}
		mustNil(t, s.SetClientStatus(ctx, c.ID, auth.Disabled), "SetClientStatus")
		gc, gp := b.clientWithPartner(t, c.ID)
		wantStatuses(t, "disabled", gc.Status, gp.Status, auth.Disabled, auth.Disabled)

		// The other partner and its client are untouched.
		oc, op := b.clientWithPartner(t, b.otherClient.ID)
		wantStatuses(t, "other", oc.Status, op.Status, auth.Active, auth.Active)
		if op.ID != b.other.ID {
			t.Errorf("other client's partner = %s, want %s", op.ID, b.other.ID)
		}

		mustNil(t, s.SetPartnerStatus(ctx, p.ID, auth.Active), "SetPartnerStatus(ACTIVE)")
		mustNil(t, s.SetClientStatus(ctx, c.ID, auth.Active), "SetClientStatus(ACTIVE)")
		gc, gp = b.clientWithPartner(t, c.ID)
		wantStatuses(t, "after re-enabling", gc.Status, gp.Status, auth.Active, auth.Active)
	})

	t.Run("SetStatusUnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		s := setup(t, open).auth
		mustIs(t, s.SetPartnerStatus(ctx, uuid.New(), auth.Disabled), auth.ErrNotFound, "SetPartnerStatus(unknown)")
		mustIs(t, s.SetClientStatus(ctx, "wc_unknown", auth.Disabled), auth.ErrNotFound, "SetClientStatus(unknown)")
	})

	t.Run("SetStatusFailureIsNotNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// The schema refuses an unknown status; that refusal is a storage
		// failure and must not be reported as "no such partner".
		err := b.auth.SetPartnerStatus(ctx, b.partner.ID, auth.Status("BOGUS"))
		if err == nil {
			t.Fatal("SetPartnerStatus(BOGUS) succeeded; the schema allows only ACTIVE and DISABLED")
		}
		if errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("SetPartnerStatus(BOGUS) = %v, want a storage error other than ErrNotFound", err)
		}
		err = b.auth.SetClientStatus(ctx, b.client.ID, auth.Status("BOGUS"))
		if err == nil || errors.Is(err, auth.ErrNotFound) {
			t.Errorf("SetClientStatus(BOGUS) = %v, want a storage error other than ErrNotFound", err)
		}
	})
}

// ---------------------------------------------------------------------------
// tokens

func runTokens(t *testing.T, open func(t *testing.T) *store.DB) {
	ctx := context.Background()

	t.Run("InsertAndGrantRoundTrip", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		family := uuid.New()
		access, refresh := b.newToken(t, auth.Access, family), b.newToken(t, auth.Refresh, family)
		refresh.ExpiresAt = when.Add(30 * 24 * time.Hour)
		mustNil(t, b.auth.InsertTokens(ctx, access, refresh), "InsertTokens")

		for _, want := range []auth.Token{access, refresh} {
			g := b.grant(t, want.Hash, "Grant("+string(want.Kind)+")")
			if !bytes.Equal(g.Hash, want.Hash) || g.Kind != want.Kind || g.ClientID != want.ClientID ||
				g.PartnerID != want.PartnerID || g.FamilyID != want.FamilyID {
				t.Errorf("Grant = %+v, want %+v", g.Token, want)
			}
			sameTime(t, "CreatedAt", g.CreatedAt, want.CreatedAt)
			sameTime(t, "ExpiresAt", g.ExpiresAt, want.ExpiresAt)
			sameTime(t, "UsedAt", g.UsedAt, time.Time{})
			sameTime(t, "RevokedAt", g.RevokedAt, time.Time{})
			wantStatuses(t, "Grant", g.ClientStatus, g.PartnerStatus, auth.Active, auth.Active)
		}
		_, err := b.auth.Grant(ctx, randomHash(t))
		mustIs(t, err, auth.ErrNotFound, "Grant(unknown)")
	})

	t.Run("PurgeTokensTakesTheExpiredOnly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		live := b.newToken(t, auth.Access, uuid.New())
		live.ExpiresAt = when.Add(time.Hour)
		tokens := []auth.Token{live}
		const expired = 1001 // more than one batch of the purge
		for range expired {
			tok := b.newToken(t, auth.Refresh, uuid.New())
			tok.ExpiresAt = when.Add(-time.Hour)
			tokens = append(tokens, tok)
		}
		mustNil(t, b.auth.InsertTokens(ctx, tokens...), "InsertTokens")
		n, err := b.db.PurgeTokens(ctx, when)
		mustNil(t, err, "PurgeTokens")
		if n != expired {
			t.Errorf("PurgeTokens deleted %d tokens, want the %d expired", n, expired)
		}
		_, err = b.auth.Grant(ctx, tokens[1].Hash)
		mustIs(t, err, auth.ErrNotFound, "Grant(purged)")
		b.grant(t, live.Hash, "Grant(live)")
	})

	t.Run("GrantReflectsStatus", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		s, c := b.auth, b.client
		tok := b.newToken(t, auth.Access, uuid.New())
		mustNil(t, s.InsertTokens(ctx, tok), "InsertTokens")

		mustNil(t, s.SetClientStatus(ctx, c.ID, auth.Disabled), "SetClientStatus")
		g := b.grant(t, tok.Hash, "Grant")
		wantStatuses(t, "client disabled: Grant", g.ClientStatus, g.PartnerStatus, auth.Disabled, auth.Active)

		mustNil(t, s.SetClientStatus(ctx, c.ID, auth.Active), "SetClientStatus")
		mustNil(t, s.SetPartnerStatus(ctx, b.partner.ID, auth.Disabled), "SetPartnerStatus")
		g = b.grant(t, tok.Hash, "Grant")
		wantStatuses(t, "partner disabled: Grant", g.ClientStatus, g.PartnerStatus, auth.Active, auth.Disabled)
	})

	// Concurrent reads may be answered together (PostgreSQL batches them):
	// each must still get its own token's grant, and an unknown token none,
	// even when it is asked for next to known ones.
	t.Run("GrantConcurrent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		const n = 48
		tokens := make([]auth.Token, n)
		for i := range tokens {
			tokens[i] = b.newToken(t, auth.Access, uuid.New())
			if i%3 == 2 {
				continue // never stored
			}
			mustNil(t, b.auth.InsertTokens(ctx, tokens[i]), "InsertTokens")
		}
		grants := make([]auth.Grant, n)
		errs := concurrently(n, func(i int) (err error) {
			grants[i], err = b.auth.Grant(ctx, tokens[i].Hash)
			return err
		})
		for i, tok := range tokens {
			if i%3 == 2 {
				mustIs(t, errs[i], auth.ErrNotFound, fmt.Sprintf("Grant(unknown %d)", i))
				continue
			}
			mustNil(t, errs[i], fmt.Sprintf("Grant(%d)", i))
			if g := grants[i]; !bytes.Equal(g.Hash, tok.Hash) || g.FamilyID != tok.FamilyID {
				t.Errorf("Grant(%d) = hash %x family %s, want %x %s", i, g.Hash, g.FamilyID, tok.Hash, tok.FamilyID)
			}
		}
	})

	t.Run("Rotate", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		old := b.storeRefresh(t)
		family := old.FamilyID

		usedAt := when.Add(time.Minute + 555*time.Nanosecond)
		next := []auth.Token{b.newToken(t, auth.Access, family), b.newToken(t, auth.Refresh, family)}
		mustNil(t, b.auth.Rotate(ctx, old.Hash, usedAt, next...), "Rotate")

		g := b.grant(t, old.Hash, "Grant(old)")
		sameTime(t, "old UsedAt", g.UsedAt, usedAt)
		sameTime(t, "old RevokedAt", g.RevokedAt, time.Time{})
		for _, n := range next {
			g := b.grant(t, n.Hash, "Grant(successor "+string(n.Kind)+")")
			if g.Kind != n.Kind || g.FamilyID != family || !g.UsedAt.IsZero() {
				t.Errorf("successor = %+v, want kind %s of family %s, unused", g.Token, n.Kind, family)
			}
		}

		// A second exchange of the same token fails and stores nothing.
		again := []auth.Token{b.newToken(t, auth.Access, family), b.newToken(t, auth.Refresh, family)}
		mustIs(t, b.auth.Rotate(ctx, old.Hash, usedAt.Add(time.Second), again...), auth.ErrAlreadyUsed, "Rotate(used)")
		for _, n := range again {
			_, err := b.auth.Grant(ctx, n.Hash)
			mustIs(t, err, auth.ErrNotFound, "Grant(successor of a refused Rotate)")
		}
		g = b.grant(t, old.Hash, "Grant(old)")
		sameTime(t, "old UsedAt after a refused Rotate", g.UsedAt, usedAt)
	})

	t.Run("RotateUnknown", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		next := b.newToken(t, auth.Access, uuid.New())
		mustIs(t, b.auth.Rotate(ctx, randomHash(t), when, next), auth.ErrNotFound, "Rotate(unknown)")
		_, err := b.auth.Grant(ctx, next.Hash)
		mustIs(t, err, auth.ErrNotFound, "Grant(successor of an unknown token)")
	})

	t.Run("RotateConcurrent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		old := b.storeRefresh(t)
		family := old.FamilyID

		const n = 8
		successors := make([]auth.Token, n)
		for i := range successors {
			successors[i] = b.newToken(t, auth.Refresh, family)
		}
		errs := concurrently(n, func(i int) error {
			return b.auth.Rotate(ctx, old.Hash, when.Add(time.Minute), successors[i])
		})

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
			_, err := b.auth.Grant(ctx, succ.Hash)
			if i == winner {
				mustNil(t, err, "Grant(winner's successor)")
			} else {
				mustIs(t, err, auth.ErrNotFound, fmt.Sprintf("Grant(successor of loser %d)", i))
			}
		}
	})

	t.Run("RevokeFamily", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		famA, famB := uuid.New(), uuid.New()
		inA := []auth.Token{b.newToken(t, auth.Access, famA), b.newToken(t, auth.Refresh, famA), b.newToken(t, auth.Access, famA)}
		inB := []auth.Token{b.newToken(t, auth.Access, famB), b.newToken(t, auth.Refresh, famB)}
		mustNil(t, b.auth.InsertTokens(ctx, append(append([]auth.Token{}, inA...), inB...)...), "InsertTokens")

		at := when.Add(time.Hour + 333*time.Nanosecond)
		mustNil(t, b.auth.RevokeFamily(ctx, famA, at), "RevokeFamily")
		for _, tok := range inA {
			sameTime(t, "family A RevokedAt", b.grant(t, tok.Hash, "Grant(family A)").RevokedAt, at)
		}
		for _, tok := range inB {
			sameTime(t, "family B RevokedAt", b.grant(t, tok.Hash, "Grant(family B)").RevokedAt, time.Time{})
		}
		// Revoking again keeps the first revocation time.
		mustNil(t, b.auth.RevokeFamily(ctx, famA, at.Add(time.Hour)), "RevokeFamily again")
		sameTime(t, "RevokedAt after a second RevokeFamily", b.grant(t, inA[0].Hash, "Grant").RevokedAt, at)
	})

	t.Run("RevokeToken", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		family := uuid.New()
		access, refresh := b.newToken(t, auth.Access, family), b.newToken(t, auth.Refresh, family)
		mustNil(t, b.auth.InsertTokens(ctx, access, refresh), "InsertTokens")

		at := when.Add(2 * time.Minute)
		mustNil(t, b.auth.RevokeToken(ctx, access.Hash, at), "RevokeToken")
		sameTime(t, "revoked RevokedAt", b.grant(t, access.Hash, "Grant(access)").RevokedAt, at)
		sameTime(t, "sibling RevokedAt", b.grant(t, refresh.Hash, "Grant(refresh)").RevokedAt, time.Time{})
	})
}

// ---------------------------------------------------------------------------
// wallets

func runWallets(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("InsertRoundTrip", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		p := b.partner
		w := newWallet(t, p.ID, phoneA)
		w.Identification = wallet.Personalized
		mustInsertWallet(t, b.db, w)

		got := wantWallet(t, b.db, p.ID, w, "Wallet")
		if got.Balance != 0 || got.Status != wallet.Active {
			t.Errorf("new wallet: balance %s, status %s; want 0.00, ACTIVE", got.Balance, got.Status)
		}

		// The same read with a lock, inside a write transaction.
		mustUpdate(t, b.db, "Wallet(lock)", func(ctx context.Context, tx wallet.Tx) error {
			got, err := tx.Wallet(ctx, p.ID, w.ID, true)
			if err != nil {
				return err
			}
			sameWallet(t, got, w)
			return nil
		})
	})

	// Concurrent reads may be answered together (PostgreSQL batches them):
	// each finds its own wallet, and none of another partner's.
	t.Run("ReadConcurrent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		const n = 36
		wallets := make([]wallet.Wallet, n)
		for i := range wallets {
			wallets[i] = b.storeWallet(t, b.partner.ID, fmt.Sprintf("90012%05d", i))
		}
		asker := func(i int) uuid.UUID { // every third asks as the other partner
			if i%3 == 1 {
				return b.other.ID
			}
			return b.partner.ID
		}
		got := make([]wallet.Wallet, n)
		errs := concurrently(n, func(i int) (err error) {
			got[i], err = readWallet(b.db, asker(i), wallets[i].ID)
			return err
		})
		for i, w := range wallets {
			if asker(i) != b.partner.ID {
				mustIs(t, errs[i], wallet.ErrNotFound, fmt.Sprintf("Wallet(%d, other partner)", i))
				if got[i].ID != uuid.Nil {
					t.Errorf("Wallet(%d, other partner) returned wallet %s with ErrNotFound, want the zero wallet", i, got[i].ID)
				}
				continue
			}
			mustNil(t, errs[i], fmt.Sprintf("Wallet(%d)", i))
			sameWallet(t, got[i], w)
		}
	})

	t.Run("OtherPartnerIsNotFound", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		wantNoWallet(t, b.db, b.other.ID, w.ID, "Wallet(other partner)")
		wantNoWallet(t, b.db, b.partner.ID, uuid.New(), "Wallet(unknown id)")
		wantNoActiveWallet(t, b.db, b.other.ID, w.Phone, "ActiveWalletByPhone(other partner)")
	})

	t.Run("ActiveWalletByPhone", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		b.storeWallet(t, b.partner.ID, phoneB)

		wantActiveWallet(t, b.db, b.partner.ID, w, "ActiveWalletByPhone")
		wantNoActiveWallet(t, b.db, b.partner.ID, "9000000000", "ActiveWalletByPhone(unknown phone)")
	})

	t.Run("OneActiveWalletPerPhone", func(t *testing.T) {
		t.Parallel()
		b, first := setupWithWallet(t, open)
		db, p := b.db, b.partner

		second := newWallet(t, p.ID, first.Phone)
		mustIs(t, insertWallet(db, second), wallet.ErrDuplicate, "InsertWallet(same partner, same phone)")
		wantNoWallet(t, db, p.ID, second.ID, "Wallet(refused duplicate)")

		// Another partner may have a wallet for the same phone.
		elsewhere := b.storeWallet(t, b.other.ID, first.Phone)

		// Closing the wallet frees the phone.
		closed := first
		closed.Status, closed.ClosedAt = wallet.Closed, when.Add(time.Hour+777*time.Nanosecond)
		mustNil(t, updateWallet(db, closed), "UpdateWallet(CLOSED)")
		wantWallet(t, db, p.ID, closed, "Wallet(closed)")
		wantNoActiveWallet(t, db, p.ID, first.Phone, "ActiveWalletByPhone after closing")

		mustInsertWallet(t, db, second)
		wantActiveWallet(t, db, p.ID, second, "ActiveWalletByPhone after re-registering")
		wantActiveWallet(t, db, b.other.ID, elsewhere, "ActiveWalletByPhone(other partner)")
	})

	t.Run("DuplicateNumberAndID", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		db, p := b.db, b.partner

		sameNumber := newWallet(t, p.ID, phoneB)
		sameNumber.Number = w.Number
		mustIs(t, insertWallet(db, sameNumber), wallet.ErrDuplicate, "InsertWallet(taken number)")
		wantNoWallet(t, db, p.ID, sameNumber.ID, "Wallet(refused number)")

		sameID := newWallet(t, p.ID, "9001111111")
		sameID.ID = w.ID
		mustIs(t, insertWallet(db, sameID), wallet.ErrDuplicate, "InsertWallet(taken id)")
		wantWallet(t, db, p.ID, w, "Wallet")
	})

	t.Run("UpdateWallet", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)

		w.Identification = wallet.Identified
		mustNil(t, updateWallet(b.db, w), "UpdateWallet(identification)")
		wantWallet(t, b.db, b.partner.ID, w, "Wallet")

		unknown := newWallet(t, b.partner.ID, phoneB)
		mustIs(t, updateWallet(b.db, unknown), wallet.ErrNotFound, "UpdateWallet(unknown)")
	})

	t.Run("NoPendingOperations", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		pending := mustView(t, b.db, "HasPendingOperations", func(ctx context.Context, tx wallet.Tx) (bool, error) {
			return tx.HasPendingOperations(ctx, w.ID)
		})
		if pending {
			t.Error("HasPendingOperations = true for a new wallet")
		}
	})

	// A PENDING operation makes its wallet pending, and only its own; once
	// it is finished the wallet is not pending any more.
	t.Run("PendingOperations", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		sibling := b.storeWallet(t, b.partner.ID, phoneB)
		hasPending := func(walletID uuid.UUID) bool {
			t.Helper()
			return mustView(t, b.db, "HasPendingOperations", func(ctx context.Context, tx wallet.Tx) (bool, error) {
				return tx.HasPendingOperations(ctx, walletID)
			})
		}
		done := newPayment(w, uuid.New()) // a SUCCESS operation: not pending
		mustNil(t, insertOperation(b.db, done), "insert a finished operation")
		if hasPending(w.ID) {
			t.Fatal("HasPendingOperations = true with only a SUCCESS operation")
		}
		op := newPayment(w, uuid.New())
		op.Status, op.FinishedAt = wallet.Pending, time.Time{}
		mustNil(t, insertOperation(b.db, op), "insert a PENDING operation")
		if !hasPending(w.ID) {
			t.Fatal("HasPendingOperations = false with a PENDING operation")
		}
		if hasPending(sibling.ID) {
			t.Fatal("HasPendingOperations = true for another wallet of the partner")
		}
		mustUpdate(t, b.db, "finish the operation", func(ctx context.Context, tx wallet.Tx) error {
			_, held, err := tx.LockOperation(ctx, w.PartnerID, w.ID, op.ID)
			if err != nil {
				return err
			}
			held.Status, held.FinishedAt = wallet.Failed, when.Add(time.Minute)
			return tx.UpdateOperation(ctx, held)
		})
		if hasPending(w.ID) {
			t.Fatal("HasPendingOperations = true after the operation finished")
		}
	})

	t.Run("UsageOfNewWalletEmpty", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		if used := readUsage(t, b.db, w.ID, 202407); len(used) != 0 {
			t.Errorf("usage of a new wallet = %v, want empty", used)
		}
	})

	// Each transaction locks the wallet, reads a counter kept in its settings,
	// waits and writes it back plus one. Without the lock, or with the counter
	// read on a snapshot older than the lock's last holder's commit, some
	// increments would be lost. On SQLite, whose single writer runs one Update
	// at a time, the test guards that discipline instead.
	lockThenRead := map[string]func(ctx context.Context, tx wallet.Tx, b *bundle, w wallet.Wallet) (wallet.Overrides, error){
		"Wallet, then LimitState": func(ctx context.Context, tx wallet.Tx, b *bundle, w wallet.Wallet) (wallet.Overrides, error) {
			if _, err := tx.Wallet(ctx, b.partner.ID, w.ID, true); err != nil {
				return wallet.Overrides{}, err
			}
			st, err := tx.LimitState(ctx, w.ID, anyMonth)
			return st.Overrides, err
		},
		"OperationScope": func(ctx context.Context, tx wallet.Tx, b *bundle, w wallet.Wallet) (wallet.Overrides, error) {
			sc, err := tx.OperationScope(ctx, b.partner.ID, w.ID, "key", anyMonth)
			return sc.Overrides, err
		},
		"PaymentScope": func(ctx context.Context, tx wallet.Tx, b *bundle, w wallet.Wallet) (wallet.Overrides, error) {
			sc, err := tx.PaymentScope(ctx, b.partner.ID, w.ID, uuid.New(), uuid.New(), anyMonth)
			return sc.Overrides, err
		},
	}
	for name, read := range lockThenRead {
		t.Run("LockSerializes/"+name, func(t *testing.T) {
			t.Parallel()
			b, w := setupWithWallet(t, open)
			saveOverrides(t, b.db, w.ID, wallet.Overrides{Balance: wallet.Some(0)})
			const n = 20
			errs := concurrently(n, func(int) error {
				return b.db.Update(context.Background(), func(ctx context.Context, tx wallet.Tx) error {
					o, err := read(ctx, tx, b, w)
					if err != nil {
						return err
					}
					time.Sleep(2 * time.Millisecond)
					o.Balance = wallet.Some(o.Balance.Value + 1)
					return tx.SaveOverrides(ctx, w.ID, o)
				})
			})
			for i, err := range errs {
				if err != nil {
					t.Errorf("transaction %d: %v", i, err)
				}
			}
			if got := readOverrides(t, b.db, w.ID).Balance; got != wallet.Some(n) {
				t.Fatalf("counter = %s after %d locked increments, want %s", fmtOptional(got), n, fmtOptional(wallet.Some(n)))
			}
		})
	}
}

// ---------------------------------------------------------------------------
// transactions

func runTransactions(t *testing.T, open func(t *testing.T) *store.DB) {
	ctx := context.Background()

	t.Run("ErrorRollsBack", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		w := newWallet(t, b.partner.ID, phoneA)
		boom := errors.New("boom")
		err := b.db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
			if err := tx.InsertWallet(ctx, w); err != nil {
				return err
			}
			if err := tx.SaveOverrides(ctx, w.ID, wallet.Overrides{Balance: wallet.Some(1)}); err != nil {
				return err
			}
			return boom
		})
		mustIs(t, err, boom, "Update")
		wantNoWallet(t, b.db, b.partner.ID, w.ID, "Wallet after a failed transaction")
		wantNoActiveWallet(t, b.db, b.partner.ID, w.Phone, "ActiveWalletByPhone after a failed transaction")
		// Nothing of it is left: the same id, number and phone insert cleanly.
		mustInsertWallet(t, b.db, w)
		wantOverrides(t, b.db, w.ID, wallet.Overrides{})
	})

	// Writes a store may defer (see wallet.Tx) report their failure at the
	// latest from Update, and nothing of the transaction stays: not the
	// writes before them, not the ones after.
	t.Run("RefusedPostingRollsBackAll", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		db, p := b.db, b.partner
		w := newWallet(t, p.ID, phoneA)
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
		wantNoWallet(t, db, p.ID, w.ID, "Wallet after a refused posting")
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
		mustNil(t, insertOperation(db, op), "InsertOperation after the rollback")
	})

	// Deferred writes that the schema refuses fail the whole transaction,
	// the writes queued with them included.
	for name, refused := range map[string]func(ctx context.Context, tx wallet.Tx, w wallet.Wallet, held wallet.Operation) error{
		"pending sum below zero": func(ctx context.Context, tx wallet.Tx, w wallet.Wallet, _ wallet.Operation) error {
			return tx.AddPendingCredit(ctx, w.ID, -1)
		},
		"refunded above the amount": func(ctx context.Context, tx wallet.Tx, _ wallet.Wallet, held wallet.Operation) error {
			held.Refunded = held.Amount + 1
			return tx.UpdateOperation(ctx, held)
		},
	} {
		t.Run("DeferredWriteRefused/"+name, func(t *testing.T) {
			t.Parallel()
			b, w := setupWithWallet(t, open)
			db := b.db
			held := newPayment(w, uuid.New())
			mustNil(t, insertOperation(db, held), "insert")
			next := newPayment(w, uuid.New())
			err := db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
				lw, lheld, err := tx.LockOperation(ctx, w.PartnerID, w.ID, held.ID)
				if err != nil {
					return err
				}
				if err := tx.InsertOperation(ctx, next); err != nil {
					return err
				}
				return refused(ctx, tx, lw, lheld)
			})
			if err == nil {
				t.Fatal("Update with a write the schema refuses succeeded")
			}
			_, err = view(db, func(ctx context.Context, tx wallet.Tx) (wallet.Operation, error) {
				return tx.OperationByID(ctx, next.ID)
			})
			mustIs(t, err, wallet.ErrNotFound, "the operation queued with the refused write")
			got := mustView(t, db, "OperationByID", func(ctx context.Context, tx wallet.Tx) (wallet.Operation, error) {
				return tx.OperationByID(ctx, held.ID)
			})
			gotW := mustView(t, db, "Wallet", func(ctx context.Context, tx wallet.Tx) (wallet.Wallet, error) {
				return tx.Wallet(ctx, w.PartnerID, w.ID, false)
			})
			if got.Refunded != 0 || gotW.PendingCredit != 0 {
				t.Fatalf("after the refused write: refunded %s, pending %s; want both 0.00", got.Refunded, gotW.PendingCredit)
			}
		})
	}

	t.Run("DuplicateOperationRollsBackAll", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		token := uuid.New()
		mustNil(t, insertOperation(b.db, newPayment(w, token)), "first payment")
		second := newPayment(w, token) // another PAYMENT with the same token
		err := b.db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
			if err := tx.SaveOverrides(ctx, w.ID, wallet.Overrides{Balance: wallet.Some(1)}); err != nil {
				return err
			}
			if err := tx.InsertOperation(ctx, second); err != nil {
				return err
			}
			return tx.AddMonthUsage(ctx, w.ID, second.Month, wallet.Payment, 5)
		})
		mustIs(t, err, wallet.ErrDuplicate, "second payment with the token")
		wantOverrides(t, b.db, w.ID, wallet.Overrides{})
		if usage := readUsage(t, b.db, w.ID, second.Month); len(usage) != 0 {
			t.Fatalf("month usage after a refused transaction = %v, want none", usage)
		}
	})

	// The schema itself keeps an operation with its wallet's partner, and a
	// payment's TSP with that partner: a faulty caller cannot book one
	// partner's money to another's wallet or merchant.
	t.Run("OperationKeepsToItsWalletsPartner", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		own := wallet.TSP{ID: uuid.New(), PartnerID: b.partner.ID, Name: "Своя", CreatedAt: when}
		foreign := wallet.TSP{ID: uuid.New(), PartnerID: b.other.ID, Name: "Чужая", CreatedAt: when}
		mustUpdate(t, b.db, "InsertTSP", func(ctx context.Context, tx wallet.Tx) error {
			return errors.Join(tx.InsertTSP(ctx, own), tx.InsertTSP(ctx, foreign))
		})
		cases := []struct {
			name    string
			partner uuid.UUID
			tsp     uuid.UUID
			refused bool
		}{
			{"another partner's operation on the wallet", b.other.ID, uuid.Nil, true},
			{"a payment to another partner's TSP", b.partner.ID, foreign.ID, true},
			{"a payment of the other partner to its own TSP from this wallet", b.other.ID, foreign.ID, true},
			{"a payment to the partner's own TSP", b.partner.ID, own.ID, false},
		}
		for _, c := range cases {
			op := newPayment(w, uuid.New())
			op.PartnerID, op.TSPID = c.partner, c.tsp
			err := insertOperation(b.db, op)
			if c.refused && (err == nil || errors.Is(err, wallet.ErrDuplicate)) {
				t.Errorf("%s: InsertOperation = %v, want the schema to refuse it", c.name, err)
			}
			if !c.refused {
				mustNil(t, err, c.name)
			}
			_, err = view(b.db, func(ctx context.Context, tx wallet.Tx) (wallet.Operation, error) {
				return tx.OperationByID(ctx, op.ID)
			})
			if stored := err == nil; stored == c.refused {
				t.Errorf("%s: operation stored = %v (read: %v), want %v", c.name, stored, err, !c.refused)
			}
		}
	})

	t.Run("IdempotencyKeyRelease", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		db := b.db
		old := newPayment(w, uuid.New())
		old.IdemKey = "k-1"
		mustNil(t, insertOperation(db, old), "operation under the key")
		byKey := func() (wallet.Operation, error) {
			return view(db, func(ctx context.Context, tx wallet.Tx) (wallet.Operation, error) {
				sc, err := tx.OperationScope(ctx, w.PartnerID, w.ID, "k-1", anyMonth)
				if err == nil && !sc.PriorFound {
					err = wallet.ErrNotFound
				}
				return sc.Prior, err
			})
		}
		got, err := byKey()
		mustNil(t, err, "operation under the key")
		if got.ID != old.ID {
			t.Fatalf("operation under the key = %s, want %s", got.ID, old.ID)
		}

		// The key is unique per partner until the old operation lets go of
		// it; then a new operation may carry it, and the old one keeps its data.
		next := newPayment(w, uuid.New())
		next.IdemKey, next.CreatedAt = "k-1", when.Add(25*time.Hour)
		mustIs(t, insertOperation(db, next), wallet.ErrDuplicate, "a new operation under a key still held")
		mustUpdate(t, db, "a new operation under a released key", func(ctx context.Context, tx wallet.Tx) error {
			if err := tx.ReleaseIdemKey(ctx, old.ID); err != nil {
				return err
			}
			return tx.InsertOperation(ctx, next)
		})
		got, err = byKey()
		mustNil(t, err, "operation under the key after the release")
		if got.ID != next.ID {
			t.Fatalf("operation under the key after the release = %s, want the new %s", got.ID, next.ID)
		}
		got = mustView(t, db, "the released operation", func(ctx context.Context, tx wallet.Tx) (wallet.Operation, error) {
			return tx.OperationByID(ctx, old.ID)
		})
		if got.IdemKey != "" || got.Amount != old.Amount || got.Status != old.Status {
			t.Fatalf("the released operation = %+v, want its data without the key", got)
		}
	})

	t.Run("PaymentScope", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		db, p, other := b.db, b.partner, b.other
		tsp := wallet.TSP{ID: uuid.New(), PartnerID: p.ID, Name: "Кофейня", CreatedAt: when}
		foreign := wallet.TSP{ID: uuid.New(), PartnerID: other.ID, Name: "Чужая", CreatedAt: when}
		token := uuid.New()
		paid := newPayment(w, token)
		paid.TSPID = tsp.ID
		limits := wallet.Overrides{Payment: wallet.TypeOverride{OneTime: wallet.Some(500)}}
		mustUpdate(t, db, "setup", func(ctx context.Context, tx wallet.Tx) error {
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
		})

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

	t.Run("OperationScope", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		db, p, other := b.db, b.partner, b.other
		prior := newPayment(w, uuid.New())
		prior.IdemKey = "order-1"
		limits := wallet.Overrides{Credit: wallet.TypeOverride{Month: wallet.Some(900)}}
		mustUpdate(t, db, "setup", func(ctx context.Context, tx wallet.Tx) error {
			if err := tx.SaveOverrides(ctx, w.ID, limits); err != nil {
				return err
			}
			if err := tx.InsertOperation(ctx, prior); err != nil {
				return err
			}
			return tx.AddMonthUsage(ctx, w.ID, prior.Month, wallet.Credit, 250)
		})
		scope := func(partnerID uuid.UUID, key string, month int) (wallet.OperationScope, error) {
			var sc wallet.OperationScope
			err := db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
				var err error
				sc, err = tx.OperationScope(ctx, partnerID, w.ID, key, month)
				return err
			})
			return sc, err
		}

		sc, err := scope(p.ID, "order-1", prior.Month)
		mustNil(t, err, "OperationScope")
		sameWallet(t, sc.Wallet, w)
		if !sc.PriorFound || sc.Prior.ID != prior.ID || sc.Prior.IdemKey != "order-1" {
			t.Fatalf("OperationScope prior = %v (%s), want %s", sc.PriorFound, sc.Prior.ID, prior.ID)
		}
		sameOverrides(t, sc.Overrides, limits)
		if got := sc.Usage[wallet.Credit]; got != 250 || len(sc.Usage) != 1 {
			t.Fatalf("OperationScope usage = %v, want CREDIT 2.50 only", sc.Usage)
		}

		for _, key := range []string{"order-2", ""} {
			sc, err = scope(p.ID, key, prior.Month+1)
			mustNil(t, err, "OperationScope under key "+key)
			if sc.PriorFound || len(sc.Usage) != 0 {
				t.Fatalf("OperationScope under key %q found prior=%v usage=%v, want neither", key, sc.PriorFound, sc.Usage)
			}
			sameOverrides(t, sc.Overrides, limits)
		}

		_, err = scope(other.ID, "order-1", prior.Month)
		mustIs(t, err, wallet.ErrNotFound, "OperationScope of another partner's wallet")
	})

	t.Run("LockOperation", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		db := b.db
		sibling := b.storeWallet(t, b.partner.ID, phoneB)
		op := newPayment(w, uuid.New())
		op.Amount = 100
		mustNil(t, insertOperation(db, op), "insert")
		lock := func(partnerID, walletID uuid.UUID, fn func(wallet.Operation) wallet.Operation) (wallet.Wallet, wallet.Operation, error) {
			var (
				gotW  wallet.Wallet
				gotOp wallet.Operation
			)
			err := db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
				var err error
				if gotW, gotOp, err = tx.LockOperation(ctx, partnerID, walletID, op.ID); err != nil || fn == nil {
					return err
				}
				time.Sleep(2 * time.Millisecond)
				return tx.UpdateOperation(ctx, fn(gotOp))
			})
			return gotW, gotOp, err
		}

		gotW, gotOp, err := lock(b.partner.ID, w.ID, nil)
		mustNil(t, err, "LockOperation")
		sameWallet(t, gotW, w)
		if gotOp.ID != op.ID || gotOp.Amount != op.Amount {
			t.Fatalf("LockOperation = %s of %s, want %s of %s", gotOp.ID, gotOp.Amount, op.ID, op.Amount)
		}
		_, _, err = lock(b.partner.ID, sibling.ID, nil)
		mustIs(t, err, wallet.ErrNotFound, "LockOperation through another wallet")
		_, _, err = lock(b.other.ID, w.ID, nil)
		mustIs(t, err, wallet.ErrNotFound, "LockOperation of another partner's wallet")

		// Each transaction adds one to the refunded sum it read under the
		// locks: none may be lost.
		const n = 20
		errs := concurrently(n, func(int) error {
			_, _, err := lock(b.partner.ID, w.ID, func(o wallet.Operation) wallet.Operation {
				o.Refunded++
				return o
			})
			return err
		})
		for i, err := range errs {
			mustNil(t, err, fmt.Sprintf("transaction %d", i))
		}
		got := mustView(t, db, "OperationByID", func(ctx context.Context, tx wallet.Tx) (wallet.Operation, error) {
			return tx.OperationByID(ctx, op.ID)
		})
		if got.Refunded != n {
			t.Fatalf("refunded = %s after %d locked increments, want %d kopecks", got.Refunded, n, n)
		}
	})

	// A View's OperationScope (a top-up's precheck) reads while a transaction
	// holds the wallet: it must not wait for the lock.
	t.Run("OperationScopeInViewLocksNothing", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		locked, release := make(chan struct{}), make(chan struct{})
		holder := make(chan error, 1)
		go func() {
			holder <- b.db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
				if _, err := tx.Wallet(ctx, b.partner.ID, w.ID, true); err != nil {
					return err
				}
				close(locked)
				<-release
				return nil
			})
		}()
		<-locked
		vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := b.db.View(vctx, func(ctx context.Context, tx wallet.Tx) error {
			sc, err := tx.OperationScope(ctx, b.partner.ID, w.ID, "key", anyMonth)
			if err == nil && sc.Wallet.ID != w.ID {
				err = fmt.Errorf("wallet %s, want %s", sc.Wallet.ID, w.ID)
			}
			return err
		})
		close(release)
		mustNil(t, err, "OperationScope in a View while the wallet is held")
		mustNil(t, <-holder, "the holder's transaction")
	})

	// Only partners with a webhook URL get events, whether the transaction
	// read the partner's scope first (a payment) or not.
	t.Run("EventsOnlyForPartnersWithURL", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		with, without := b.partner, b.other
		mustNil(t, b.db.WebhookStore().SetTarget(ctx, without.ID, webhook.Target{}), "SetTarget")
		for _, p := range []auth.Partner{with, without} {
			w := b.storeWallet(t, p.ID, phoneA)
			for _, scoped := range []bool{false, true} {
				mustUpdate(t, b.db, "InsertEvent", func(ctx context.Context, tx wallet.Tx) error {
					if scoped {
						if _, err := tx.PaymentScope(ctx, p.ID, w.ID, uuid.New(), uuid.New(), 202611); err != nil {
							return err
						}
					}
					id := uuid.New()
					return tx.InsertEvent(ctx,
						wallet.Event{ID: id, PartnerID: p.ID, Type: wallet.EventPaymentSucceeded, WalletID: w.ID, CreatedAt: when},
						wallet.Job{ID: uuid.New(), Kind: wallet.JobWebhook, Ref: id, RunAt: when, CreatedAt: when})
				})
			}
		}
		for p, want := range map[uuid.UUID]int{with.ID: 2, without.ID: 0} {
			recs, err := b.db.WebhookStore().List(ctx, p, 10)
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
		b := setup(t, open)
		db, p := b.db, b.partner
		w := newWallet(t, p.ID, phoneA)
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
			wantOverrides(t, db, w.ID, want)
		}
		if !stored {
			mustInsertWallet(t, db, w)
		}
	})

	// A write the database refuses fails the transaction as a whole even when
	// fn swallows its error and returns nil: nothing of the transaction
	// commits, not the writes before the refused one either (wallet.Tx), and
	// Update reports the refusal. SQLite undoes only the refused statement,
	// PostgreSQL the whole transaction; the store must hide the difference.
	// "then reads" swallows the error of a read after the refused write too,
	// where a store that defers writes reports their failure.
	swallowed := map[string]struct {
		want error // nil: any error
		fn   func(ctx context.Context, tx wallet.Tx, w wallet.Wallet, held wallet.Operation)
	}{
		"overdraft": {wallet.ErrInsufficientFunds, func(ctx context.Context, tx wallet.Tx, _ wallet.Wallet, held wallet.Operation) {
			_ = tx.Post(ctx, payment(held, 1)) // the wallet holds 0.00
		}},
		"writes, then overdraft": {wallet.ErrInsufficientFunds, func(ctx context.Context, tx wallet.Tx, w wallet.Wallet, _ wallet.Operation) {
			_ = tx.SaveOverrides(ctx, w.ID, wallet.Overrides{Balance: wallet.Some(7)})
			next := newPayment(w, uuid.New())
			_ = tx.InsertOperation(ctx, next)
			_ = tx.AddMonthUsage(ctx, w.ID, next.Month, wallet.Payment, 1)
			_ = tx.Post(ctx, payment(next, 1))
		}},
		"writes, then duplicate operation": {wallet.ErrDuplicate, func(ctx context.Context, tx wallet.Tx, w wallet.Wallet, held wallet.Operation) {
			_ = tx.SaveOverrides(ctx, w.ID, wallet.Overrides{Balance: wallet.Some(7)})
			_ = tx.AddMonthUsage(ctx, w.ID, held.Month, wallet.Payment, 1)
			_ = tx.InsertOperation(ctx, newPayment(w, held.Token)) // the token is taken
		}},
		"writes, then duplicate wallet": {nil, func(ctx context.Context, tx wallet.Tx, w wallet.Wallet, _ wallet.Operation) {
			_ = tx.SaveOverrides(ctx, w.ID, wallet.Overrides{Balance: wallet.Some(7)})
			dup := wallet.Wallet{ID: uuid.New(), PartnerID: w.PartnerID, Phone: phoneB, Number: w.Number,
				Identification: wallet.Elementary, Status: wallet.Active, CreatedAt: when}
			_ = tx.InsertWallet(ctx, dup) // the number is taken
		}},
	}
	for name, c := range swallowed {
		for _, thenReads := range []bool{false, true} {
			sub := name
			if thenReads {
				sub += ", then reads"
			}
			t.Run("SwallowedRefusalRollsBackAll/"+sub, func(t *testing.T) {
				t.Parallel()
				b, w := setupWithWallet(t, open)
				db := b.db
				held := newPayment(w, uuid.New())
				mustNil(t, insertOperation(db, held), "insert")
				before, err := db.Audit(ctx)
				mustNil(t, err, "Audit before")
				err = db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
					c.fn(ctx, tx, w, held)
					if thenReads {
						_, _ = tx.Wallet(ctx, w.PartnerID, w.ID, true)
					}
					return nil
				})
				if err == nil {
					t.Fatal("Update whose function swallowed a refused write committed")
				}
				if c.want != nil {
					mustIs(t, err, c.want, "Update whose function swallowed a refused write")
				}
				wantWallet(t, db, w.PartnerID, w, "Wallet after the swallowed refusal")
				wantOverrides(t, db, w.ID, wallet.Overrides{})
				if usage := readUsage(t, db, w.ID, held.Month); len(usage) != 0 {
					t.Errorf("month usage after the swallowed refusal = %v, want none", usage)
				}
				_, err = byPhone(db, w.PartnerID, phoneB)
				mustIs(t, err, wallet.ErrNotFound, "wallet of the swallowed transaction")
				after, err := db.Audit(ctx)
				mustNil(t, err, "Audit after")
				if after.Summary() != before.Summary() {
					t.Errorf("after the swallowed refusal: %s\nwant as before: %s", after.Summary(), before.Summary())
				}
				// The database serves the next transaction.
				saveOverrides(t, db, w.ID, wallet.Overrides{Balance: wallet.Some(1)})
				wantOverrides(t, db, w.ID, wallet.Overrides{Balance: wallet.Some(1)})
			})
		}
	}

	// A panic in fn leaves no transaction open and no lock held: the next
	// transaction that locks the same wallet goes through at once. The panic
	// is not swallowed: Update panics (PostgreSQL) or fails (SQLite, whose
	// committer turns a panic into an error so as not to stop every writer).
	t.Run("PanicReleasesLocks", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		db := b.db
		for attempt := range 3 { // more than once: no connection is left spoilt either
			panicked, err := func() (v any, err error) {
				defer func() { v = recover() }()
				return nil, db.Update(ctx, func(ctx context.Context, tx wallet.Tx) error {
					if _, err := tx.Wallet(ctx, w.PartnerID, w.ID, true); err != nil {
						return err
					}
					if err := tx.SaveOverrides(ctx, w.ID, wallet.Overrides{Balance: wallet.Some(5)}); err != nil {
						return err
					}
					panic("boom")
				})
			}()
			if err == nil && panicked == nil {
				t.Fatalf("attempt %d: Update whose function panicked returned nil", attempt)
			}
			lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err = db.Update(lctx, func(ctx context.Context, tx wallet.Tx) error {
				_, err := tx.Wallet(ctx, w.PartnerID, w.ID, true)
				return err
			})
			cancel()
			mustNil(t, err, fmt.Sprintf("attempt %d: Update locking the wallet after a panic", attempt))
			wantOverrides(t, db, w.ID, wallet.Overrides{})
		}
	})

	// Once fn has returned nil, the client's context ending does not stop the
	// commit: a COMMIT cut short leaves its outcome unknown. SQLite lets
	// queued work run to its end; PostgreSQL must commit as well.
	t.Run("CancelAfterLastStatementCommits", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		db, p := b.db, b.partner
		w := newWallet(t, p.ID, phoneA)
		op := newPayment(w, uuid.New())
		limits := wallet.Overrides{Balance: wallet.Some(100)}
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		err := db.Update(cctx, func(ctx context.Context, tx wallet.Tx) error {
			if err := tx.InsertWallet(ctx, w); err != nil {
				return err
			}
			if err := tx.SaveOverrides(ctx, w.ID, limits); err != nil {
				return err
			}
			if err := tx.InsertOperation(ctx, op); err != nil { // a write a store may defer
				return err
			}
			cancel()
			return nil
		})
		mustNil(t, err, "Update whose context ended after its last statement")
		wantWallet(t, db, p.ID, w, "Wallet")
		wantOverrides(t, db, w.ID, limits)
		got := mustView(t, db, "OperationByID", func(ctx context.Context, tx wallet.Tx) (wallet.Operation, error) {
			return tx.OperationByID(ctx, op.ID)
		})
		sameOperation(t, got, op)
	})

	// Every field of an operation comes back as written, the optional ones
	// set and empty.
	t.Run("OperationRoundTrip", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		db := b.db
		tsp := wallet.TSP{ID: uuid.New(), PartnerID: b.partner.ID, Name: "Кофейня", CreatedAt: when}
		parent := newPayment(w, uuid.New())
		parent.Amount, parent.TSPID = 500, tsp.ID
		mustUpdate(t, db, "setup", func(ctx context.Context, tx wallet.Tx) error {
			if err := tx.InsertTSP(ctx, tsp); err != nil {
				return err
			}
			return tx.InsertOperation(ctx, parent)
		})
		full := wallet.Operation{
			ID: uuid.New(), WalletID: w.ID, PartnerID: w.PartnerID, Type: wallet.Refund, Status: wallet.Pending,
			Amount: 300, Refunded: 120, TSPID: tsp.ID, BankID: "bank-100000000111", Token: parent.Token,
			ParentID: parent.ID, QRCID: "AS1000" + randomDigits(t, 26), Payload: "https://qr.nspk.ru/AS1000?type=02&sum=300",
			IdemKey: "idem-" + randomDigits(t, 8), Description: "Возврат: Кофейня", Month: 202612,
			CreatedAt: when.Add(time.Second), ExpiresAt: when.Add(72*time.Hour + 1500*time.Nanosecond),
			FinishedAt: when.Add(2*time.Hour + 999*time.Nanosecond),
		}
		bare := wallet.Operation{
			ID: uuid.New(), WalletID: w.ID, PartnerID: w.PartnerID, Type: wallet.Credit, Status: wallet.Success,
			Amount: 1, Description: "Пополнение", Month: 202601, CreatedAt: when,
		}
		for name, op := range map[string]wallet.Operation{"every field set": full, "optional fields empty": bare} {
			mustNil(t, insertOperation(db, op), "InsertOperation("+name+")")
			got := mustView(t, db, "Operation("+name+")", func(ctx context.Context, tx wallet.Tx) (wallet.Operation, error) {
				return tx.Operation(ctx, op.PartnerID, op.WalletID, op.ID)
			})
			sameOperation(t, got, op)
			got = mustView(t, db, "OperationByID("+name+")", func(ctx context.Context, tx wallet.Tx) (wallet.Operation, error) {
				return tx.OperationByID(ctx, op.ID)
			})
			sameOperation(t, got, op)
		}
	})

	t.Run("ViewIsReadOnly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		w := newWallet(t, b.partner.ID, phoneA)
		err := b.db.View(ctx, func(ctx context.Context, tx wallet.Tx) error {
			return tx.InsertWallet(ctx, w)
		})
		if err == nil {
			t.Fatal("InsertWallet inside View succeeded")
		}
		wantNoWallet(t, b.db, b.partner.ID, w.ID, "Wallet after a write in View")
	})
}

// ---------------------------------------------------------------------------
// limit overrides

func runOverrides(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("ZeroForNewWallet", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		wantOverrides(t, b.db, w.ID, wallet.Overrides{})
	})

	t.Run("RoundTripAndReplace", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		db := b.db
		sibling := b.storeWallet(t, b.partner.ID, phoneB)

		first := wallet.Overrides{
			Balance: wallet.Some(0),
			Credit:  wallet.TypeOverride{OneTime: wallet.Some(0), Enabled: nil},
			Payment: wallet.TypeOverride{OneTime: wallet.Some(12345), Month: wallet.Some(0), Enabled: boolPtr(false)},
			Debit:   wallet.TypeOverride{Month: wallet.Some(4_000_000), Enabled: boolPtr(true)},
		}
		saveOverrides(t, db, w.ID, first)
		wantOverrides(t, db, w.ID, first)
		wantOverrides(t, db, sibling.ID, wallet.Overrides{})

		second := wallet.Overrides{
			Credit:  wallet.TypeOverride{Month: wallet.Some(1), Enabled: boolPtr(false)},
			Payment: wallet.TypeOverride{Enabled: boolPtr(true)},
			Debit:   wallet.TypeOverride{OneTime: wallet.Some(0)},
		}
		saveOverrides(t, db, w.ID, second)
		wantOverrides(t, db, w.ID, second)

		saveOverrides(t, db, w.ID, wallet.Overrides{})
		wantOverrides(t, db, w.ID, wallet.Overrides{})
	})

	// LimitState reads the settings and one month's usage in one statement:
	// each half must come out whole whether or not the other has rows.
	t.Run("LimitStateOfSettingsAndMonth", func(t *testing.T) {
		t.Parallel()
		b, w := setupWithWallet(t, open)
		db := b.db
		sibling := b.storeWallet(t, b.partner.ID, phoneB)
		settings := wallet.Overrides{Balance: wallet.Some(70_000), Payment: wallet.TypeOverride{Month: wallet.Some(9_000), Enabled: boolPtr(true)}}
		saveOverrides(t, db, sibling.ID, settings)
		mustUpdate(t, db, "usage", func(ctx context.Context, tx wallet.Tx) error {
			for _, u := range []struct {
				wallet uuid.UUID
				month  int
				typ    wallet.OperationType
				amount money.Amount
			}{
				{w.ID, 202603, wallet.Payment, 150}, {w.ID, 202603, wallet.Debit, 7}, {w.ID, 202604, wallet.Credit, 1},
				{sibling.ID, 202603, wallet.Refund, 40}, {sibling.ID, 202603, wallet.Credit, 2},
			} {
				if err := tx.AddMonthUsage(ctx, u.wallet, u.month, u.typ, u.amount); err != nil {
					return err
				}
			}
			return nil
		})
		for name, c := range map[string]struct {
			wallet    uuid.UUID
			month     int
			overrides wallet.Overrides
			usage     map[wallet.OperationType]money.Amount
		}{
			"usage, no settings":    {w.ID, 202603, wallet.Overrides{}, map[wallet.OperationType]money.Amount{wallet.Payment: 150, wallet.Debit: 7}},
			"another month":         {w.ID, 202604, wallet.Overrides{}, map[wallet.OperationType]money.Amount{wallet.Credit: 1}},
			"settings and usage":    {sibling.ID, 202603, settings, map[wallet.OperationType]money.Amount{wallet.Refund: 40, wallet.Credit: 2}},
			"settings, no usage":    {sibling.ID, 202605, settings, map[wallet.OperationType]money.Amount{}},
			"no settings, no usage": {w.ID, 202612, wallet.Overrides{}, map[wallet.OperationType]money.Amount{}},
		} {
			t.Run(name, func(t *testing.T) {
				got := readLimitState(t, db, c.wallet, c.month)
				sameOverrides(t, got.Overrides, c.overrides)
				if !maps.Equal(got.Usage, c.usage) {
					t.Errorf("usage = %v, want %v", got.Usage, c.usage)
				}
			})
		}
	})
}

// ---------------------------------------------------------------------------
// TSPs

func runTSP(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("RoundTripAndPartnerScope", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		db, p := b.db, b.partner
		ts := wallet.TSP{ID: uuid.New(), PartnerID: p.ID, Name: "Кофейня «Зерно»", CreatedAt: when}
		mustUpdate(t, db, "InsertTSP", func(ctx context.Context, tx wallet.Tx) error { return tx.InsertTSP(ctx, ts) })

		read := func(partnerID, tspID uuid.UUID) (wallet.TSP, error) {
			return view(db, func(ctx context.Context, tx wallet.Tx) (wallet.TSP, error) {
				return tx.TSP(ctx, partnerID, tspID)
			})
		}
		got, err := read(p.ID, ts.ID)
		mustNil(t, err, "TSP")
		if got.ID != ts.ID || got.PartnerID != ts.PartnerID || got.Name != ts.Name {
			t.Errorf("TSP = %+v, want %+v", got, ts)
		}
		sameTime(t, "TSP.CreatedAt", got.CreatedAt, ts.CreatedAt)

		_, err = read(b.other.ID, ts.ID)
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
		b := setup(t, open)
		applied, err := b.db.Migrate(context.Background())
		mustNil(t, err, "Migrate again")
		if len(applied) != 0 {
			t.Errorf("Migrate again applied %v, want nothing", applied)
		}
		// The data is still there.
		if _, err := b.auth.Partner(context.Background(), b.partner.ID); err != nil {
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
		b, svc := setupService(t, open)

		w1 := register(t, svc, b.partner.ID, wallet.Elementary, "Register")
		if len(w1.Number) != 16 || !wallet.ValidLuhn(w1.Number) {
			t.Errorf("number %q: want 16 digits with a Luhn check digit", w1.Number)
		}
		if w1.Status != wallet.Active || w1.Identification != wallet.Elementary || w1.Balance != 0 {
			t.Errorf("registered wallet = %+v", w1)
		}
		// Again, even with another level: the existing wallet, unchanged.
		w2 := register(t, svc, b.partner.ID, wallet.Identified, "Register again")
		if w2.ID != w1.ID || w2.Number != w1.Number || w2.Identification != wallet.Elementary {
			t.Errorf("second Register = %+v, want the first wallet %+v unchanged", w2, w1)
		}
		// The same phone at another partner is another wallet.
		w3 := register(t, svc, b.other.ID, wallet.Elementary, "Register(other partner)")
		if w3.ID == w1.ID || w3.Number == w1.Number {
			t.Errorf("another partner's wallet %+v shares id or number with %+v", w3, w1)
		}
	})

	t.Run("RegisterConcurrent", func(t *testing.T) {
		t.Parallel()
		b, svc := setupService(t, open)

		const n = 10
		ids := make([]uuid.UUID, n)
		errs := concurrently(n, func(i int) error {
			w, err := svc.Register(ctx, b.partner.ID, phoneA, wallet.Elementary)
			ids[i] = w.ID
			return err
		})
		for i, err := range errs {
			mustNil(t, err, fmt.Sprintf("Register %d", i))
		}
		for i, id := range ids {
			if id != ids[0] {
				t.Fatalf("Register %d returned wallet %s, Register 0 returned %s", i, id, ids[0])
			}
		}
		got, err := byPhone(b.db, b.partner.ID, phoneA)
		mustNil(t, err, "ActiveWalletByPhone")
		if got.ID != ids[0] {
			t.Errorf("stored wallet %s, Register returned %s", got.ID, ids[0])
		}
	})

	t.Run("CloseAndIdentify", func(t *testing.T) {
		t.Parallel()
		b, svc := setupService(t, open)
		p := b.partner
		w := register(t, svc, p.ID, wallet.Elementary, "Register")

		_, err := svc.Close(ctx, b.other.ID, w.ID)
		wantCode(t, err, wallet.CodeWalletNotFound, "Close(other partner)")

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
		wantCode(t, err, wallet.CodeWalletClosed, "Identify(closed)")
		_, err = svc.SetLimits(ctx, p.ID, w.ID, wallet.LimitsPatch{Balance: wallet.Patch{Set: true, Value: wallet.Some(100)}})
		wantCode(t, err, wallet.CodeWalletClosed, "SetLimits(closed)")

		// The phone is free again: a new wallet.
		fresh := register(t, svc, p.ID, wallet.Elementary, "Register after Close")
		if fresh.ID == w.ID || fresh.Status != wallet.Active {
			t.Errorf("Register after Close = %+v, want a new active wallet", fresh)
		}
	})

	t.Run("SetLimits", func(t *testing.T) {
		t.Parallel()
		b, svc := setupService(t, open)
		p := b.partner
		w := register(t, svc, p.ID, wallet.Elementary, "Register")

		bad := wallet.LimitsPatch{Types: map[wallet.OperationType]wallet.TypePatch{
			wallet.Credit:  {OneTime: wallet.Patch{Set: true, Value: wallet.Some(100_00)}},
			wallet.Payment: {OneTime: wallet.Patch{Set: true, Value: wallet.Some(15_000_01)}},
		}}
		_, err := svc.SetLimits(ctx, p.ID, w.ID, bad)
		var e *wallet.Error
		if !errors.As(err, &e) || e.Code != wallet.CodeValidation {
			t.Fatalf("SetLimits above system = %v, want %s", err, wallet.CodeValidation)
		}
		if _, ok := e.Fields["operationLimits.PAYMENT.oneTimeLimit"]; !ok || len(e.Fields) != 1 {
			t.Errorf("fieldErrors = %v, want only operationLimits.PAYMENT.oneTimeLimit", e.Fields)
		}
		wantOverrides(t, b.db, w.ID, wallet.Overrides{})
		limits, err := svc.Limits(ctx, p.ID, w.ID)
		mustNil(t, err, "Limits")
		if got := limits.Effective.Credit.OneTime; got != wallet.Some(15_000_00) {
			t.Errorf("effective CREDIT one-time after a refused patch = %s, want 15000.00", fmtOptional(got))
		}

		good := wallet.LimitsPatch{Types: map[wallet.OperationType]wallet.TypePatch{
			wallet.Credit:  {OneTime: wallet.Patch{Set: true, Value: wallet.Some(100_00)}},
			wallet.Payment: {Month: wallet.Patch{Set: true, Value: wallet.Some(0)}, Enabled: boolPtr(false)},
		}}
		limits, err = svc.SetLimits(ctx, p.ID, w.ID, good)
		mustNil(t, err, "SetLimits")
		if got := limits.Effective.Credit.OneTime; got != wallet.Some(100_00) {
			t.Errorf("effective CREDIT one-time = %s, want 100.00", fmtOptional(got))
		}
		if got := limits.Effective.Payment; got.Month != wallet.Some(0) || got.Enabled || got.OneTime != wallet.Some(15_000_00) {
			t.Errorf("effective PAYMENT = %+v", got)
		}
		wantOverrides(t, b.db, w.ID, wallet.Overrides{
			Credit:  wallet.TypeOverride{OneTime: wallet.Some(100_00)},
			Payment: wallet.TypeOverride{Month: wallet.Some(0), Enabled: boolPtr(false)},
		})
	})
}
