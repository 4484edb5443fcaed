package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/app/apptest"
	"github.com/perspektiva/walletd/client"
	"github.com/perspektiva/walletd/money"
)

// startServer runs a walletd for one test and returns a client of its partner.
func startServer(t *testing.T, opts apptest.Options) (*apptest.Server, *client.Client) {
	t.Helper()
	ctx := t.Context()
	srv, err := apptest.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start walletd: %v", err)
	}
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, client.Credentials{
		PartnerID: srv.Partner.PartnerID, ClientID: srv.Partner.ClientID, ClientSecret: srv.Partner.ClientSecret,
	}, client.WithBackoff(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

// must(f())(t) returns the value of f, failing the test on its error.
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func amount(t *testing.T, s string) money.Amount {
	t.Helper()
	a, err := money.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func balance(t *testing.T, c *client.Client, id uuid.UUID) money.Amount {
	t.Helper()
	return must(c.Info(t.Context(), id))(t).Balance
}

// waitFinal polls an operation until it leaves PENDING.
func waitFinal(t *testing.T, c *client.Client, walletID, opID uuid.UUID) client.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		op, err := c.Operation(ctx, walletID, opID)
		if err != nil {
			t.Fatalf("operation %s: %v", opID, err)
		}
		if op.Status.Final() {
			return op
		}
		select {
		case <-ctx.Done():
			t.Fatalf("operation %s still %s", opID, op.Status)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestIntegrationFullFlow(t *testing.T) {
	t.Parallel()
	srv, c := startServer(t, apptest.Options{})
	ctx := t.Context()
	start := time.Now().Add(-time.Second)

	reg := must(c.Register(ctx, "9001234567", client.Personalized))(t)
	if reg.Identification != client.Personalized || reg.WalletID == uuid.Nil {
		t.Fatalf("register: %+v", reg)
	}
	again := must(c.Register(ctx, "9001234567", client.Elementary))(t)
	if again != reg {
		t.Fatalf("second registration of the phone: %+v, want %+v", again, reg)
	}
	w := reg.WalletID

	info := must(c.Info(ctx, w))(t)
	if info.Balance != 0 || info.Status != client.WalletActive || info.Currency != "RUB" || len(info.Number) != 16 {
		t.Fatalf("info: %+v", info)
	}

	// Top up 1500.00 and confirm it in the sandbox.
	refill := must(c.Refill(ctx, w, amount(t, "1500.00")))(t)
	if refill.Status != client.StatusPending || refill.Amount != 1500_00 || !refill.ExpiresAt.After(time.Now()) {
		t.Fatalf("refill: %+v", refill)
	}
	if got := balance(t, c, w); got != 0 {
		t.Fatalf("balance before confirmation = %s", got)
	}
	conf := must(c.SandboxConfirm(ctx, refill.Payload))(t)
	if conf.Status != client.StatusSuccess || conf.OperationID != refill.OperationID {
		t.Fatalf("confirm: %+v", conf)
	}
	if got := balance(t, c, w); got != 1500_00 {
		t.Fatalf("balance after top-up = %s, want 1500.00", got)
	}

	// Pay 250.00 to the TSP.
	tok := must(c.InitPayment(ctx, w))(t)
	req := client.PaymentRequest{WalletID: w, Token: tok.Token, Amount: amount(t, "250.00"), TSP: srv.TSPID}
	pay := must(c.Pay(ctx, req))(t)
	if pay.Status != client.StatusSuccess || pay.Amount != 250_00 || pay.Token != tok.Token {
		t.Fatalf("pay: %+v", pay)
	}
	// The same payment again replays the answer and moves nothing.
	if replay := must(c.Pay(ctx, req))(t); replay.OperationID != pay.OperationID {
		t.Fatalf("replayed payment: %+v, want operation %s", replay, pay.OperationID)
	}
	if got := balance(t, c, w); got != 1250_00 {
		t.Fatalf("balance after payment = %s, want 1250.00", got)
	}

	// Refund 100.00 of it, then the rest.
	part := amount(t, "100.00")
	ref := must(c.Refund(ctx, w, tok.Token, &part))(t)
	if ref.Status != client.StatusSuccess || ref.Amount != 100_00 {
		t.Fatalf("refund: %+v", ref)
	}
	if got := balance(t, c, w); got != 1350_00 {
		t.Fatalf("balance after refund = %s, want 1350.00", got)
	}

	// Withdraw 500.00 and wait for the payout.
	banks := must(c.Banks(ctx))(t)
	if len(banks) == 0 || len(banks[0].Identifier) != 12 || len(banks[0].BIC) != 9 {
		t.Fatalf("banks: %+v", banks)
	}
	wd := must(c.Withdraw(ctx, w, banks[0].Identifier, amount(t, "500.00")))(t)
	if wd.Status != client.StatusPending || wd.Amount != 500_00 || wd.BankIdentifier != banks[0].Identifier {
		t.Fatalf("withdraw: %+v", wd)
	}
	if got := balance(t, c, w); got != 850_00 {
		t.Fatalf("balance with the payout held = %s, want 850.00", got)
	}
	op := waitFinal(t, c, w, wd.OperationID)
	if op.Status != client.StatusSuccess || op.Type != client.OperationDebit || op.Amount != 500_00 || op.TSPID != nil {
		t.Fatalf("payout: %+v", op)
	}
	if got := balance(t, c, w); got != 850_00 {
		t.Fatalf("balance after payout = %s, want 850.00", got)
	}

	// A payout of an amount ending in .13 fails and the money comes back.
	failed := must(c.Withdraw(ctx, w, banks[0].Identifier, amount(t, "10.13")))(t)
	if got := balance(t, c, w); got != 839_87 {
		t.Fatalf("balance with the failing payout held = %s, want 839.87", got)
	}
	if op := waitFinal(t, c, w, failed.OperationID); op.Status != client.StatusFailed {
		t.Fatalf("payout of 10.13: %+v", op)
	}
	if got := balance(t, c, w); got != 850_00 {
		t.Fatalf("balance after the failed payout = %s, want 850.00", got)
	}

	// The report, newest first.
	page := must(c.Report(ctx, w, client.ReportQuery{}))(t)
	type row struct {
		typ    client.OperationType
		status client.OperationStatus
		amount string
		format string
	}
	want := []row{
		{client.OperationDebit, client.StatusFailed, "10.13", "-10,13\u00a0₽"},
		{client.OperationDebit, client.StatusSuccess, "500.00", "-500,00\u00a0₽"},
		{client.OperationRefund, client.StatusSuccess, "100.00", "+100,00\u00a0₽"},
		{client.OperationPayment, client.StatusSuccess, "250.00", "-250,00\u00a0₽"},
		{client.OperationCredit, client.StatusSuccess, "1500.00", "+1\u00a0500,00\u00a0₽"},
	}
	if page.TotalElements != len(want) || page.TotalPages != 1 || page.Page != 0 || page.Size != 20 || len(page.Content) != len(want) {
		t.Fatalf("report: %d items, total %d, pages %d, page %d, size %d", len(page.Content), page.TotalElements, page.TotalPages, page.Page, page.Size)
	}
	for i, it := range page.Content {
		got := row{it.Type, it.Status, it.Amount.String(), it.FormattedAmount}
		if got != want[i] {
			t.Errorf("report[%d] = %+v, want %+v", i, got, want[i])
		}
		if it.Date.Before(start.Truncate(time.Second)) || it.Date.After(time.Now()) || it.Date.Location() != client.Moscow {
			t.Errorf("report[%d] date %v is not about now in Moscow time", i, it.Date)
		}
		hasTSP := it.Type == client.OperationPayment || it.Type == client.OperationRefund
		if hasTSP != (it.TSPID != nil) || (hasTSP && *it.TSPID != srv.TSPID) {
			t.Errorf("report[%d] tcp = %v", i, it.TSPID)
		}
	}
	if page.Content[4].ID != refill.OperationID || page.Content[3].ID != pay.OperationID || page.Content[2].ID != ref.OperationID {
		t.Errorf("report ids do not match the operations")
	}

	// Filters.
	count := func(q client.ReportQuery) int {
		t.Helper()
		return must(c.Report(ctx, w, q))(t).TotalElements
	}
	a100, a500 := amount(t, "100.00"), amount(t, "500.00")
	cases := []struct {
		name string
		q    client.ReportQuery
		want int
	}{
		{"type DEBIT", client.ReportQuery{Type: client.OperationDebit}, 2},
		{"type REFUND", client.ReportQuery{Type: client.OperationRefund}, 1},
		{"amount 100..500", client.ReportQuery{AmountFrom: &a100, AmountTo: &a500}, 3},
		{"amount from 500", client.ReportQuery{AmountFrom: &a500}, 2},
		{"since start", client.ReportQuery{From: start}, 5},
		{"until start", client.ReportQuery{To: start.Add(-time.Hour)}, 0},
		{"window", client.ReportQuery{From: start, To: time.Now().Add(time.Minute)}, 5},
		{"page size 2", client.ReportQuery{Size: 2, Page: 2}, 5},
	}
	for _, tc := range cases {
		if got := count(tc.q); got != tc.want {
			t.Errorf("report %s: %d operations, want %d", tc.name, got, tc.want)
		}
	}
	last := must(c.Report(ctx, w, client.ReportQuery{Size: 2, Page: 2}))(t)
	if len(last.Content) != 1 || last.TotalPages != 3 || last.Content[0].ID != refill.OperationID {
		t.Errorf("last page of 2: %+v", last)
	}
	_, err := c.Report(ctx, w, client.ReportQuery{Size: 101})
	var e *client.Error
	if !errors.As(err, &e) || e.Code != client.CodeValidation || e.FieldErrors["size"] == "" || e.Status != 400 {
		t.Errorf("report size 101: %v", err)
	}

	// Refund the rest (nil amount), then the wallet cannot close with money on it.
	rest := must(c.Refund(ctx, w, tok.Token, nil))(t)
	if rest.Amount != 150_00 {
		t.Errorf("refund of the rest = %s, want 150.00", rest.Amount)
	}
	if err := c.Close(ctx, w); !client.IsCode(err, client.CodeWalletHasBalance) {
		t.Errorf("close with balance: %v", err)
	}
}

func TestIntegrationErrorsAndLimits(t *testing.T) {
	t.Parallel()
	srv, c := startServer(t, apptest.Options{})
	ctx := t.Context()
	w := must(c.Register(ctx, "9007654321", client.Elementary))(t).WalletID

	// Insufficient funds carries details.
	tok := must(c.InitPayment(ctx, w))(t)
	_, err := c.Pay(ctx, client.PaymentRequest{WalletID: w, Token: tok.Token, Amount: amount(t, "10.00"), TSP: srv.TSPID})
	var e *client.Error
	if !errors.As(err, &e) || e.Code != client.CodeInsufficientFunds || e.Status != 400 || e.Details == nil ||
		e.Details.Limit != "balance" || e.Details.Available != 0 || e.RequestID == "" || e.FieldErrors["amount"] == "" {
		t.Fatalf("pay from an empty wallet: %#v", err)
	}

	// ELEMENTARY wallets cannot withdraw.
	if _, err := c.Withdraw(ctx, w, "100000000111", 1_00); !client.IsCode(err, client.CodeOperationDisabled) {
		t.Errorf("withdraw from ELEMENTARY: %v", err)
	}
	// Unknown wallet, unknown operation, unknown TSP, unknown bank.
	if _, err := c.Info(ctx, uuid.New()); !client.IsCode(err, client.CodeWalletNotFound) {
		t.Errorf("info of an unknown wallet: %v", err)
	}
	if _, err := c.Operation(ctx, w, uuid.New()); !client.IsCode(err, client.CodeOperationNotFound) {
		t.Errorf("unknown operation: %v", err)
	}
	if _, err := c.Pay(ctx, client.PaymentRequest{WalletID: w, Token: tok.Token, Amount: 1_00, TSP: uuid.New()}); !client.IsCode(err, client.CodeTSPNotFound) {
		t.Errorf("unknown TSP: %v", err)
	}
	if _, err := c.Register(ctx, "12345", client.Elementary); !client.IsCode(err, client.CodeValidation) {
		t.Errorf("short phone: %v", err)
	}

	// Balance limit of ELEMENTARY (15 000.00), with details.
	_, err = c.Refill(ctx, w, amount(t, "15000.01"))
	if !errors.As(err, &e) || e.Code != client.CodeLimitExceeded || e.Details == nil || e.Details.Available != 15000_00 {
		t.Errorf("refill above the balance limit: %v", err)
	}

	// Limits: value, null and absent.
	lim := must(c.Limits(ctx, w))(t)
	if lim.Identification != client.Elementary || lim.BalanceLimit == nil || *lim.BalanceLimit != 15000_00 {
		t.Fatalf("limits: %+v", lim)
	}
	pl := lim.OperationLimits[client.OperationPayment]
	if pl.OneTimeLimit == nil || *pl.OneTimeLimit != 15000_00 || pl.MonthLimit == nil || *pl.MonthLimit != 40000_00 || !pl.Enabled {
		t.Fatalf("PAYMENT limits: %+v", pl)
	}
	if lim.OperationLimits[client.OperationCredit].MonthLimit != nil || lim.OperationLimits[client.OperationDebit].Enabled {
		t.Fatalf("CREDIT/DEBIT limits: %+v", lim.OperationLimits)
	}
	lim = must(c.SetLimits(ctx, w, client.LimitsUpdate{
		BalanceLimit: client.SetLimit(10000_00),
		OperationLimits: map[client.OperationType]client.OperationLimitUpdate{
			client.OperationPayment: {OneTimeLimit: client.SetLimit(5000_00), MonthLimit: client.SetLimit(20000_00)},
			client.OperationCredit:  {Enabled: client.Bool(false)},
		},
	}))(t)
	pl = lim.OperationLimits[client.OperationPayment]
	if *lim.BalanceLimit != 10000_00 || *pl.OneTimeLimit != 5000_00 || *pl.MonthLimit != 20000_00 || lim.OperationLimits[client.OperationCredit].Enabled {
		t.Fatalf("after setting limits: %+v", lim)
	}
	if _, err := c.Refill(ctx, w, 1_00); !client.IsCode(err, client.CodeOperationDisabled) {
		t.Errorf("refill with CREDIT disabled: %v", err)
	}
	// null removes the partner's one-time value; absent monthLimit stays.
	lim = must(c.SetLimits(ctx, w, client.LimitsUpdate{
		OperationLimits: map[client.OperationType]client.OperationLimitUpdate{
			client.OperationPayment: {OneTimeLimit: client.ClearLimit()},
			client.OperationCredit:  {Enabled: client.Bool(true)},
		},
	}))(t)
	pl = lim.OperationLimits[client.OperationPayment]
	if *pl.OneTimeLimit != 15000_00 || *pl.MonthLimit != 20000_00 || *lim.BalanceLimit != 10000_00 || !lim.OperationLimits[client.OperationCredit].Enabled {
		t.Fatalf("after clearing PAYMENT.oneTimeLimit: %+v %+v", lim, pl)
	}
	// Above the system value: refused, naming the field.
	_, err = c.SetLimits(ctx, w, client.LimitsUpdate{BalanceLimit: client.SetLimit(15000_01)})
	if !errors.As(err, &e) || e.Code != client.CodeValidation || e.FieldErrors["balanceLimit"] == "" {
		t.Errorf("balance limit above the system's: %v", err)
	}

	// Identification upgrade changes the system limits.
	if lvl := must(c.SetIdentification(ctx, w, client.Identified))(t); lvl != client.Identified {
		t.Errorf("identification = %v", lvl)
	}
	if lim := must(c.Limits(ctx, w))(t); lim.Identification != client.Identified || !lim.OperationLimits[client.OperationDebit].Enabled {
		t.Errorf("limits after upgrade: %+v", lim)
	}

	// A caller-chosen Idempotency-Key replays the first answer.
	kctx := client.ContextWithIdempotencyKey(ctx, "refill-"+w.String())
	r1 := must(c.Refill(kctx, w, 100_00))(t)
	r2 := must(c.Refill(kctx, w, 100_00))(t)
	if r1.OperationID != r2.OperationID || r1.Payload != r2.Payload {
		t.Errorf("same key, two top-ups: %s %s", r1.OperationID, r2.OperationID)
	}
	if _, err := c.Refill(kctx, w, 200_00); !client.IsCode(err, client.CodeIdempotencyKeyReused) {
		t.Errorf("same key, other request: %v", err)
	}
	// Decline, then the top-up stays FAILED.
	if res := must(c.SandboxDecline(ctx, r1.Payload))(t); res.Status != client.StatusFailed {
		t.Errorf("decline: %+v", res)
	}
	if res := must(c.SandboxConfirm(ctx, r1.Payload))(t); res.Status != client.StatusFailed {
		t.Errorf("confirm after decline: %+v", res)
	}

	// Closing: an empty wallet closes, twice; then money operations refuse.
	if err := c.Close(ctx, w); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := c.Close(ctx, w); err != nil {
		t.Fatalf("close again: %v", err)
	}
	if info := must(c.Info(ctx, w))(t); info.Status != client.WalletClosed {
		t.Errorf("status after close: %s", info.Status)
	}
	if _, err := c.Refill(ctx, w, 1_00); !client.IsCode(err, client.CodeWalletClosed) {
		t.Errorf("refill of a closed wallet: %v", err)
	}
}

func TestIntegrationBadCredentials(t *testing.T) {
	t.Parallel()
	srv, _ := startServer(t, apptest.Options{})
	c, err := client.New(srv.URL+"/api/wallet/v1/", client.Credentials{
		PartnerID: srv.Partner.PartnerID, ClientID: srv.Partner.ClientID, ClientSecret: "wrong",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Banks(t.Context())
	var oe *client.OAuthError
	if !errors.As(err, &oe) || oe.Code != client.OAuthInvalidClient || oe.Status != 401 {
		t.Fatalf("wrong secret: %v", err)
	}
	// Another partner's id with the right client is invalid_client too.
	c, _ = client.New(srv.URL, client.Credentials{PartnerID: uuid.New(), ClientID: srv.Partner.ClientID, ClientSecret: srv.Partner.ClientSecret})
	if _, err := c.Banks(t.Context()); !errors.As(err, &oe) || oe.Code != client.OAuthInvalidClient {
		t.Fatalf("foreign partner id: %v", err)
	}
}
