package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/jobs"
	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/sbp"
	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
	"github.com/perspektiva/walletd/webhook"
)

func TestSign(t *testing.T) {
	t.Parallel()
	body := []byte(`{"eventId":"x"}`)
	at := time.Unix(1_700_000_000, 0)
	mac := hmac.New(sha256.New, []byte("whs_secret"))
	mac.Write([]byte("1700000000." + string(body)))
	want := "t=1700000000,v1=" + hex.EncodeToString(mac.Sum(nil))
	if got := webhook.Sign("whs_secret", at, body); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if webhook.Sign("other", at, body) == want || webhook.Sign("whs_secret", at.Add(time.Second), body) == want {
		t.Fatal("signature ignores the secret or the time")
	}
}

// receiver records deliveries and fails the first `failFirst` of them.
type receiver struct {
	mu        sync.Mutex
	failFirst int
	calls     int
	got       []delivery
}

type delivery struct {
	signature string
	body      []byte
	event     webhook.Body
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.failFirst {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var ev webhook.Body
	_ = json.Unmarshal(body, &ev)
	r.got = append(r.got, delivery{signature: req.Header.Get(webhook.SignatureHeader), body: body, event: ev})
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// verify checks a delivery's signature as a partner would.
func verify(t *testing.T, secret string, d delivery) {
	t.Helper()
	ts, sig, ok := strings.Cut(strings.TrimPrefix(d.signature, "t="), ",v1=")
	if !ok {
		t.Fatalf("malformed signature header %q", d.signature)
	}
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		t.Fatalf("timestamp %q: %v", ts, err)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(d.body)
	if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(sig)) {
		t.Fatalf("signature of event %s does not verify", d.event.EventID)
	}
}

type fixture struct {
	db      *store.DB
	svc     *wallet.Service
	creds   auth.Credentials
	tsp     wallet.TSP
	runner  *jobs.Runner
	recv    *receiver
	hookURL string
}

func newFixture(t *testing.T, e storetest.Engine, failFirst int) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{db: storetest.Open(t, e), recv: &receiver{failFirst: failFirst}}
	srv := httptest.NewServer(f.recv)
	t.Cleanup(srv.Close)
	f.hookURL = srv.URL + "/hook"
	var err error
	f.creds, err = auth.NewService(f.db.AuthStore(), auth.Config{}).CreatePartner(ctx, "P", f.hookURL)
	if err != nil {
		t.Fatal(err)
	}
	f.svc, err = wallet.NewService(f.db, wallet.Config{
		SBP: sbp.NewSandbox("http://wallet.test", 0), TopUpTTL: time.Hour,
		BankName: func(id string) (string, bool) { return "Сбербанк", id == "100000000111" },
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.tsp, err = f.svc.CreateTSP(ctx, f.creds.PartnerID, "Кофейня"); err != nil {
		t.Fatal(err)
	}
	hooks := webhook.NewDeliverer(f.db.WebhookStore(), webhook.Config{})
	f.runner = jobs.NewRunner(f.db.JobStore(), map[string]jobs.Handler{
		wallet.JobPayout:  f.svc.ProcessPayout,
		wallet.JobWebhook: hooks.Deliver,
	}, slog.New(slog.DiscardHandler))
	return f
}

// drain runs due jobs until every event is delivered or the deadline passes.
func (f *fixture) drain(t *testing.T, want int) []delivery {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := f.runner.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := f.recv.deliveries(); len(got) >= want {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("delivered %d events, want %d", len(f.recv.deliveries()), want)
	return nil
}

// oneEvent opens a wallet, settles a top-up of it with settle (the service's
// ConfirmTopUp or DeclineTopUp) and returns the one event that made.
func (f *fixture) oneEvent(t *testing.T, settle func(context.Context, string) (wallet.Operation, error)) webhook.Record {
	t.Helper()
	ctx := context.Background()
	w := ok[wallet.Wallet](t)(f.svc.Register(ctx, f.creds.PartnerID, "9001234567", wallet.Elementary))
	op := ok[wallet.Operation](t)(f.svc.Refill(ctx, f.creds.PartnerID, w.ID, 1000, ""))
	ok[wallet.Operation](t)(settle(ctx, op.QRCID))
	recs := ok[[]webhook.Record](t)(f.db.WebhookStore().List(ctx, f.creds.PartnerID, 10))
	if len(recs) != 1 {
		t.Fatalf("events = %+v, want one", recs)
	}
	return recs[0]
}

// ok fails the test on err; it takes a call's two results directly.
func ok[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestEveryOutcomeIsDeliveredSigned(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		ctx := context.Background()
		f := newFixture(t, e, 0)
		p := f.creds.PartnerID
		w := ok[wallet.Wallet](t)(f.svc.Register(ctx, p, "9001234567", wallet.Personalized))

		topped := ok[wallet.Operation](t)(f.svc.Refill(ctx, p, w.ID, 100_000, ""))
		ok[wallet.Operation](t)(f.svc.ConfirmTopUp(ctx, topped.QRCID))
		declined := ok[wallet.Operation](t)(f.svc.Refill(ctx, p, w.ID, 500, ""))
		ok[wallet.Operation](t)(f.svc.DeclineTopUp(ctx, declined.QRCID))
		pt := ok[wallet.PaymentToken](t)(f.svc.InitPayment(ctx, p, w.ID))
		ok[wallet.Operation](t)(f.svc.Pay(ctx, p, wallet.PaymentRequest{WalletID: w.ID, Token: pt.Token, Amount: 25_000, TSPID: f.tsp.ID}))
		ok[wallet.Operation](t)(f.svc.Refund(ctx, p, w.ID, pt.Token, 5_000, ""))
		ok[wallet.Operation](t)(f.svc.Withdraw(ctx, p, w.ID, "100000000111", 10_000, ""))
		ok[wallet.Operation](t)(f.svc.Withdraw(ctx, p, w.ID, "100000000111", money.Amount(10_013), ""))

		got := f.drain(t, 6)
		types := map[string]int{}
		for _, d := range got {
			verify(t, f.creds.WebhookSecret, d)
			types[d.event.Type]++
			if d.event.WalletID != w.ID || d.event.EventID == uuid.Nil {
				t.Errorf("event %+v: wrong wallet or no id", d.event)
			}
			if d.event.Operation == nil {
				t.Errorf("event %s has no operation", d.event.Type)
			}
		}
		for _, typ := range []string{wallet.EventRefillSucceeded, wallet.EventRefillFailed, wallet.EventPaymentSucceeded,
			wallet.EventRefundSucceeded, wallet.EventWithdrawalSucceeded, wallet.EventWithdrawalFailed} {
			if types[typ] == 0 {
				t.Errorf("no %s event among %v", typ, types)
			}
		}
		// Empty the wallet and close it: wallet.closed carries no operation.
		info := ok[wallet.Wallet](t)(f.svc.Wallet(ctx, p, w.ID))
		ok[wallet.Operation](t)(f.svc.Withdraw(ctx, p, w.ID, "100000000111", info.Balance, ""))
		f.drain(t, 7)
		ok[wallet.Wallet](t)(f.svc.Close(ctx, p, w.ID))
		last := f.drain(t, 8)[7]
		if last.event.Type != wallet.EventWalletClosed || last.event.Operation != nil {
			t.Errorf("last event = %s with operation %v, want wallet.closed without one", last.event.Type, last.event.Operation)
		}
	})
}

func TestFailingReceiverGetsTheEventLater(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		ctx := context.Background()
		f := newFixture(t, e, 2)
		w := ok[wallet.Wallet](t)(f.svc.Register(ctx, f.creds.PartnerID, "9001234567", wallet.Elementary))
		op := ok[wallet.Operation](t)(f.svc.Refill(ctx, f.creds.PartnerID, w.ID, 1000, ""))
		// The operation commits with its event; nothing is delivered until a
		// runner comes, as after a crash between the commit and the delivery.
		ok[wallet.Operation](t)(f.svc.ConfirmTopUp(ctx, op.QRCID))
		got := f.drain(t, 1)
		verify(t, f.creds.WebhookSecret, got[0])
		if got[0].event.Type != wallet.EventRefillSucceeded || got[0].event.Operation.OperationID != op.ID {
			t.Fatalf("got %+v", got[0].event)
		}
		recs := ok[[]webhook.Record](t)(f.db.WebhookStore().List(ctx, f.creds.PartnerID, 10))
		if len(recs) != 1 || recs[0].Status != webhook.Delivered || recs[0].Attempts != 3 {
			t.Fatalf("records = %+v, want one DELIVERED after 3 attempts", recs)
		}
		attempts := ok[[]webhook.Attempt](t)(f.db.WebhookStore().Attempts(ctx, recs[0].ID))
		if len(attempts) != 3 || attempts[0].StatusCode != 503 || attempts[2].StatusCode != 204 {
			t.Fatalf("attempts = %+v", attempts)
		}

		// Replay sends the same event again, with the same id and body.
		if err := f.db.WebhookStore().Replay(ctx, recs[0].ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		again := f.drain(t, 2)[1]
		verify(t, f.creds.WebhookSecret, again)
		if again.event.EventID != got[0].event.EventID || string(again.body) != string(got[0].body) {
			t.Fatalf("replay differs:\n%s\n%s", again.body, got[0].body)
		}
	})
}

// An unpaid top-up that expires is told to the partner as refill.expired,
// with the operation in its final state.
func TestExpiredTopUpIsDelivered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.Engines()[0], 0)
	short, err := wallet.NewService(f.db, wallet.Config{SBP: sbp.NewSandbox("http://wallet.test", 0), TopUpTTL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := ok[wallet.Wallet](t)(short.Register(ctx, f.creds.PartnerID, "9001234567", wallet.Elementary))
	op := ok[wallet.Operation](t)(short.Refill(ctx, f.creds.PartnerID, w.ID, 1000, ""))
	time.Sleep(5 * time.Millisecond)
	if _, err := short.ExpireTopUp(ctx, op.ID); err != nil {
		t.Fatal(err)
	}
	got := f.drain(t, 1)[0]
	verify(t, f.creds.WebhookSecret, got)
	if got.event.Type != wallet.EventRefillExpired || got.event.WalletID != w.ID || got.event.Operation == nil ||
		got.event.Operation.OperationID != op.ID || got.event.Operation.Status != string(wallet.Expired) ||
		got.event.Operation.OperationType != string(wallet.Credit) {
		t.Fatalf("delivered %s", got.body)
	}
}

func TestNoURL(t *testing.T) {
	t.Parallel()
	e := storetest.Engines()[0]
	ctx := context.Background()
	f := newFixture(t, e, 0)
	w := ok[wallet.Wallet](t)(f.svc.Register(ctx, f.creds.PartnerID, "9001234567", wallet.Elementary))

	// An outcome while the partner has a URL is kept; when the URL is gone by
	// the time of delivery, the event is SKIPPED, not sent.
	op := ok[wallet.Operation](t)(f.svc.Refill(ctx, f.creds.PartnerID, w.ID, 1000, ""))
	ok[wallet.Operation](t)(f.svc.DeclineTopUp(ctx, op.QRCID))
	if err := f.db.WebhookStore().SetTarget(ctx, f.creds.PartnerID, webhook.Target{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.runner.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	recs := ok[[]webhook.Record](t)(f.db.WebhookStore().List(ctx, f.creds.PartnerID, 10))
	if len(recs) != 1 || recs[0].Status != webhook.Skipped || len(f.recv.deliveries()) != 0 {
		t.Fatalf("records = %+v, deliveries %d", recs, len(f.recv.deliveries()))
	}

	// Outcomes while the partner has no URL make no event at all.
	op = ok[wallet.Operation](t)(f.svc.Refill(ctx, f.creds.PartnerID, w.ID, 1000, ""))
	ok[wallet.Operation](t)(f.svc.DeclineTopUp(ctx, op.QRCID))
	if _, err := f.runner.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	recs = ok[[]webhook.Record](t)(f.db.WebhookStore().List(ctx, f.creds.PartnerID, 10))
	if len(recs) != 1 || len(f.recv.deliveries()) != 0 {
		t.Fatalf("after outcomes without a URL: records = %+v, deliveries %d", recs, len(f.recv.deliveries()))
	}
}

// failingRecord is the real store with its first fail writes of an attempt
// refused, as when the database drops the connection mid-write.
type failingRecord struct {
	webhook.Store
	fail int
}

func (s *failingRecord) RecordAttempt(ctx context.Context, a webhook.Attempt, st webhook.Status, at time.Time) error {
	if s.fail > 0 {
		s.fail--
		return errors.New("connection reset")
	}
	return s.Store.RecordAttempt(ctx, a, st, at)
}

// An attempt whose record fails is made again, and its outcome is counted
// once, when it is recorded: the delivery metrics match the outbox.
func TestOutcomeCountedWhenRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.Engines()[0], 0)
	var outcomes []string
	hooks := webhook.NewDeliverer(&failingRecord{Store: f.db.WebhookStore(), fail: 1}, webhook.Config{
		Observe: func(outcome string) { outcomes = append(outcomes, outcome) },
	})
	event := f.oneEvent(t, f.svc.ConfirmTopUp)

	if _, err := hooks.Deliver(ctx, event.ID); err == nil {
		t.Fatal("Deliver succeeded though its attempt was not recorded")
	}
	if len(outcomes) != 0 {
		t.Fatalf("outcomes %v counted before anything was recorded", outcomes)
	}
	if next, err := hooks.Deliver(ctx, event.ID); err != nil || !next.IsZero() {
		t.Fatalf("second Deliver = %v, %v; want settled", next, err)
	}
	if len(outcomes) != 1 || outcomes[0] != "delivered" {
		t.Fatalf("outcomes = %v, want [delivered]", outcomes)
	}
	recs := ok[[]webhook.Record](t)(f.db.WebhookStore().List(ctx, f.creds.PartnerID, 10))
	if recs[0].Status != webhook.Delivered || recs[0].Attempts != 1 {
		t.Fatalf("record = %+v, want DELIVERED after 1 recorded attempt", recs[0])
	}
	// At least once: the receiver saw the event on both attempts.
	if n := len(f.recv.deliveries()); n != 2 {
		t.Fatalf("receiver got %d deliveries, want 2", n)
	}
}

// TestReplayStartsANewWindow: an event the operator asks for again, days after
// it was given up (a partner down since), is retried over a new window, not
// given up again after one attempt.
func TestReplayStartsANewWindow(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		ctx := context.Background()
		f := newFixture(t, e, 1000) // the receiver is down
		id := f.oneEvent(t, f.svc.ConfirmTopUp).ID

		later := time.Now().Add(48 * time.Hour)
		hooks := webhook.NewDeliverer(f.db.WebhookStore(), webhook.Config{Now: func() time.Time { return later }})
		status := func() webhook.Status { return ok[webhook.Record](t)(f.db.WebhookStore().Event(ctx, id)).Status }
		if next := ok[time.Time](t)(hooks.Deliver(ctx, id)); !next.IsZero() || status() != webhook.Failed {
			t.Fatalf("two days late: next %v, status %s; want it given up", next, status())
		}
		if err := f.db.WebhookStore().Replay(ctx, id, later); err != nil {
			t.Fatal(err)
		}
		if next := ok[time.Time](t)(hooks.Deliver(ctx, id)); next.IsZero() || status() != webhook.Pending {
			t.Fatalf("replayed, one attempt failed: next %v, status %s; want another attempt to come", next, status())
		}
	})
}
