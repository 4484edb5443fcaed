package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/app/apptest"
	"github.com/perspektiva/walletd/client"
	"github.com/perspektiva/walletd/money"
)

// walletd starts an in-process walletd and returns it with a client of its
// partner. A real integration reads these values from its configuration.
func walletd(opts apptest.Options) (*apptest.Server, *client.Client) {
	srv, err := apptest.Start(context.Background(), opts)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(srv.URL, client.Credentials{
		PartnerID:    srv.Partner.PartnerID,
		ClientID:     srv.Partner.ClientID,
		ClientSecret: srv.Partner.ClientSecret,
	})
	if err != nil {
		log.Fatal(err)
	}
	return srv, c
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// A client opens a wallet, tops it up through SBP and pays a merchant.
func Example() {
	srv, c := walletd(apptest.Options{})
	defer srv.Close()
	ctx := context.Background()

	w, err := c.Register(ctx, "9001234567", client.Personalized)
	check(err)
	fmt.Println("registered:", w.Identification)

	refill, err := c.Refill(ctx, w.WalletID, 1500_00) // 1 500.00 roubles
	check(err)
	fmt.Println("top-up:", refill.Status, refill.Amount)

	// The client would open refill.Payload in a bank app; the sandbox confirms.
	res, err := c.SandboxConfirm(ctx, refill.Payload)
	check(err)
	fmt.Println("confirmed:", res.Status)

	info, err := c.Info(ctx, w.WalletID)
	check(err)
	fmt.Println("balance:", info.Balance)

	tok, err := c.InitPayment(ctx, w.WalletID)
	check(err)
	pay, err := c.Pay(ctx, client.PaymentRequest{WalletID: w.WalletID, Token: tok.Token, Amount: 250_00, TSP: srv.TSPID})
	check(err)
	fmt.Println("paid:", pay.Status, pay.Amount)

	info, err = c.Info(ctx, w.WalletID)
	check(err)
	fmt.Println("balance:", info.Balance)
	// Output:
	// registered: PERSONALIZED
	// top-up: PENDING 1500.00
	// confirmed: SUCCESS
	// balance: 1500.00
	// paid: SUCCESS 250.00
	// balance: 1250.00
}

// A payment above the balance is refused with INSUFFICIENT_FUNDS, and the
// error says how much is available.
func ExampleIsCode() {
	srv, c := walletd(apptest.Options{})
	defer srv.Close()
	ctx := context.Background()

	w, err := c.Register(ctx, "9001234567", client.Elementary)
	check(err)
	refill, err := c.Refill(ctx, w.WalletID, 100_00)
	check(err)
	_, err = c.SandboxConfirm(ctx, refill.Payload)
	check(err)

	tok, err := c.InitPayment(ctx, w.WalletID)
	check(err)
	amount, _ := money.Parse("150.00")
	_, err = c.Pay(ctx, client.PaymentRequest{WalletID: w.WalletID, Token: tok.Token, Amount: amount, TSP: srv.TSPID})
	if client.IsCode(err, client.CodeInsufficientFunds) {
		var e *client.Error
		errors.As(err, &e)
		fmt.Println(e.Status, e.Code)
		fmt.Println("available:", e.Details.Available)
	}

	// The token was not used up: pay what is there.
	pay, err := c.Pay(ctx, client.PaymentRequest{WalletID: w.WalletID, Token: tok.Token, Amount: 100_00, TSP: srv.TSPID})
	check(err)
	fmt.Println("paid:", pay.Amount)
	// Output:
	// 400 INSUFFICIENT_FUNDS
	// available: 100.00
	// paid: 100.00
}

// A withdrawal is held at once and completes asynchronously: poll the
// operation (or wait for the withdrawal.* notification).
func ExampleClient_Withdraw() {
	srv, c := walletd(apptest.Options{})
	defer srv.Close()
	ctx := context.Background()

	// ELEMENTARY wallets cannot withdraw to a bank; PERSONALIZED ones can.
	w, err := c.Register(ctx, "9001234567", client.Personalized)
	check(err)
	refill, err := c.Refill(ctx, w.WalletID, 1000_00)
	check(err)
	_, err = c.SandboxConfirm(ctx, refill.Payload)
	check(err)

	banks, err := c.Banks(ctx)
	check(err)
	wd, err := c.Withdraw(ctx, w.WalletID, banks[0].Identifier, 400_00)
	check(err)
	fmt.Println("withdrawal:", wd.Status, wd.Amount)

	op, err := c.Operation(ctx, w.WalletID, wd.OperationID)
	for err == nil && op.Status == client.StatusPending {
		time.Sleep(50 * time.Millisecond)
		op, err = c.Operation(ctx, w.WalletID, wd.OperationID)
	}
	check(err)
	// FormattedAmount separates with no-break spaces (U+00A0); %q shows them.
	fmt.Printf("payout: %s %s %q\n", op.Type, op.Status, op.FormattedAmount)

	info, err := c.Info(ctx, w.WalletID)
	check(err)
	fmt.Println("balance:", info.Balance)
	// Output:
	// withdrawal: PENDING 400.00
	// payout: DEBIT SUCCESS "-400,00\u00a0₽"
	// balance: 600.00
}

// The partner's own limits: a value sets one, ClearLimit removes it (the
// system's applies again), and what is left out stays as it was.
func ExampleClient_SetLimits() {
	srv, c := walletd(apptest.Options{})
	defer srv.Close()
	ctx := context.Background()

	w, err := c.Register(ctx, "9001234567", client.Elementary)
	check(err)
	show := func(l client.Limits) {
		p := l.OperationLimits[client.OperationPayment]
		fmt.Printf("PAYMENT one-time %s, month %s\n", p.OneTimeLimit, p.MonthLimit)
	}

	l, err := c.SetLimits(ctx, w.WalletID, client.LimitsUpdate{
		OperationLimits: map[client.OperationType]client.OperationLimitUpdate{
			client.OperationPayment: {OneTimeLimit: client.SetLimit(5000_00), MonthLimit: client.SetLimit(20000_00)},
		},
	})
	check(err)
	show(l)

	l, err = c.SetLimits(ctx, w.WalletID, client.LimitsUpdate{
		OperationLimits: map[client.OperationType]client.OperationLimitUpdate{
			client.OperationPayment: {OneTimeLimit: client.ClearLimit()},
		},
	})
	check(err)
	show(l)

	_, err = c.SetLimits(ctx, w.WalletID, client.LimitsUpdate{BalanceLimit: client.SetLimit(20000_00)})
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, "on", len(e.FieldErrors), "field: balanceLimit ->", e.FieldErrors["balanceLimit"] != "")
	}
	// Output:
	// PAYMENT one-time 5000.00, month 20000.00
	// PAYMENT one-time 15000.00, month 20000.00
	// VALIDATION_ERROR on 1 field: balanceLimit -> true
}

// WebhookHandler receives the service's notifications: it answers 2xx only
// after the function succeeded, and 400 to anything not signed with the
// partner's webhook secret.
func ExampleWebhookHandler() {
	events := make(chan client.WebhookEvent, 10)
	var (
		mu      sync.Mutex
		handler = http.NotFoundHandler()
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := handler
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	defer receiver.Close()

	srv, c := walletd(apptest.Options{WebhookURL: receiver.URL + "/walletd/events"})
	defer srv.Close()
	mu.Lock()
	handler = client.WebhookHandler(srv.Partner.WebhookSecret, func(ctx context.Context, ev client.WebhookEvent) error {
		events <- ev // a real receiver stores it, deduplicating by ev.ID
		return nil
	})
	mu.Unlock()

	ctx := context.Background()
	w, err := c.Register(ctx, "9001234567", client.Elementary)
	check(err)
	refill, err := c.Refill(ctx, w.WalletID, 1500_00)
	check(err)
	_, err = c.SandboxConfirm(ctx, refill.Payload)
	check(err)

	select {
	case ev := <-events:
		fmt.Println("event:", ev.Type, ev.WalletID == w.WalletID)
		fmt.Println("operation:", ev.Operation.Type, ev.Operation.Status, ev.Operation.Amount, ev.Operation.ID == refill.OperationID)
	case <-time.After(10 * time.Second):
		fmt.Println("no notification")
	}

	// A forged notification is refused.
	forged := `{"eventId":"` + uuid.NewString() + `","type":"refill.succeeded","createdAt":"2024-07-10 14:00:03","walletId":"` + w.WalletID.String() + `"}`
	req, _ := http.NewRequest(http.MethodPost, receiver.URL+"/walletd/events", bytes.NewBufferString(forged))
	req.Header.Set(client.WebhookSignatureHeader, fmt.Sprintf("t=%d,v1=%064x", time.Now().Unix(), 42))
	resp, err := http.DefaultClient.Do(req)
	check(err)
	_ = resp.Body.Close()
	fmt.Println("forged:", resp.Status)
	// Output:
	// event: refill.succeeded true
	// operation: CREDIT SUCCESS 1500.00 true
	// forged: 400 Bad Request
}

// VerifyWebhook checks a notification received by any HTTP stack: the raw
// body and the X-Wallet-Signature header.
func ExampleVerifyWebhook() {
	type delivery struct {
		header string
		body   []byte
	}
	deliveries := make(chan delivery, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		deliveries <- delivery{r.Header.Get(client.WebhookSignatureHeader), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	srv, c := walletd(apptest.Options{WebhookURL: receiver.URL})
	defer srv.Close()
	ctx := context.Background()
	w, err := c.Register(ctx, "9001234567", client.Elementary)
	check(err)
	refill, err := c.Refill(ctx, w.WalletID, 700_00)
	check(err)
	_, err = c.SandboxDecline(ctx, refill.Payload)
	check(err)

	var d delivery
	select {
	case d = <-deliveries:
	case <-time.After(10 * time.Second):
		fmt.Println("no notification")
		return
	}
	ev, err := client.VerifyWebhook(srv.Partner.WebhookSecret, d.header, d.body, time.Now(), 5*time.Minute)
	fmt.Println("verified:", err == nil, ev.Type, ev.Operation.Status, ev.Operation.Amount)

	_, err = client.VerifyWebhook("whs_not_the_secret", d.header, d.body, time.Now(), 5*time.Minute)
	fmt.Println("wrong secret:", errors.Is(err, client.ErrWebhookSignature))

	tampered := bytes.Replace(d.body, []byte("700.00"), []byte("7000.00"), 1)
	_, err = client.VerifyWebhook(srv.Partner.WebhookSecret, d.header, tampered, time.Now(), 5*time.Minute)
	fmt.Println("tampered body:", errors.Is(err, client.ErrWebhookSignature))

	_, err = client.VerifyWebhook(srv.Partner.WebhookSecret, d.header, d.body, time.Now().Add(time.Hour), 5*time.Minute)
	fmt.Println("replayed an hour later:", errors.Is(err, client.ErrWebhookTimestamp))
	// Output:
	// verified: true refill.failed FAILED 700.00
	// wrong secret: true
	// tampered body: true
	// replayed an hour later: true
}
