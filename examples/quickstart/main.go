// Command quickstart walks through the whole partner flow of the e-wallet API
// against a running walletd, printing each step:
//
//	register a wallet → top up through SBP → pay a TSP → refund part of it →
//	withdraw to a bank → read the report → final balance.
//
// Start a local walletd (on an SQLite database, the default, it prints a demo
// partner on its first start; else create one with `walletd partner create`
// and `walletd tsp create`), then:
//
//	export WALLET_PARTNER_ID=… WALLET_CLIENT_ID=… WALLET_CLIENT_SECRET=… WALLET_TSP_ID=…
//	go run ./examples/quickstart
//
// Settings come from the environment (WALLET_URL, default
// http://localhost:8080, WALLET_PARTNER_ID, WALLET_CLIENT_ID,
// WALLET_CLIENT_SECRET, WALLET_TSP_ID) or from the flags of the same names
// (-url, -partner-id, -client-id, -client-secret, -tsp-id), which win. With
// the SBP sandbox on (the default of a local walletd on SQLite; on PostgreSQL
// walletd serves it only with --sandbox=true) the top-up is confirmed
// by the program itself; with -sandbox=false it waits for the link to be
// paid in a bank app.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/client"
	"github.com/perspektiva/walletd/money"
)

// Amounts of the walk-through, in kopecks.
const (
	topUpAmount      money.Amount = 1500_00
	paymentAmount    money.Amount = 250_00
	refundAmount     money.Amount = 100_00
	withdrawalAmount money.Amount = 500_00
)

// config is what the walk-through needs.
type config struct {
	URL         string
	Credentials client.Credentials
	TSPID       uuid.UUID
	Phone       string // the client's phone, 10 digits
	Sandbox     bool   // confirm the top-up through the sandbox SBP
	Wait        time.Duration
	Options     []client.Option
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// parseConfig reads the flags, with the environment as their defaults.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg                             config
		partnerID, clientID, secret, ts string
	)
	fs.StringVar(&cfg.URL, "url", env("WALLET_URL", "http://localhost:8080"), "walletd base URL (WALLET_URL)")
	fs.StringVar(&partnerID, "partner-id", env("WALLET_PARTNER_ID", ""), "partner id (WALLET_PARTNER_ID)")
	fs.StringVar(&clientID, "client-id", env("WALLET_CLIENT_ID", ""), "OAuth client id (WALLET_CLIENT_ID)")
	fs.StringVar(&secret, "client-secret", env("WALLET_CLIENT_SECRET", ""), "OAuth client secret (WALLET_CLIENT_SECRET)")
	fs.StringVar(&ts, "tsp-id", env("WALLET_TSP_ID", ""), "TSP (merchant) to pay (WALLET_TSP_ID)")
	fs.StringVar(&cfg.Phone, "phone", "9001234567", "client's phone, 10 digits")
	fs.BoolVar(&cfg.Sandbox, "sandbox", true, "confirm the top-up through the walletd SBP sandbox")
	fs.DurationVar(&cfg.Wait, "wait", 2*time.Minute, "how long to wait for a payout (and, without the sandbox, a top-up)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	var problems []string
	var err error
	if cfg.Credentials.PartnerID, err = uuid.Parse(partnerID); err != nil {
		problems = append(problems, "a partner id (-partner-id or WALLET_PARTNER_ID, a UUID)")
	}
	if cfg.TSPID, err = uuid.Parse(ts); err != nil {
		problems = append(problems, "a TSP id (-tsp-id or WALLET_TSP_ID, a UUID)")
	}
	if clientID == "" || secret == "" {
		problems = append(problems, "client credentials (-client-id/-client-secret or WALLET_CLIENT_ID/WALLET_CLIENT_SECRET)")
	}
	if len(problems) > 0 {
		return config{}, errors.New("need " + strings.Join(problems, ", "))
	}
	cfg.Credentials.ClientID, cfg.Credentials.ClientSecret = clientID, secret
	return cfg, nil
}

// run is the walk-through; it writes its story to out.
func run(ctx context.Context, cfg config, out io.Writer) error {
	c, err := client.New(cfg.URL, cfg.Credentials, cfg.Options...)
	if err != nil {
		return err
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if cfg.Wait <= 0 {
		cfg.Wait = 2 * time.Minute
	}

	// 1. The first call fetches an OAuth token; the client keeps it fresh.
	banks, err := c.Banks(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if len(banks) == 0 {
		return errors.New("walletd lists no banks to withdraw to")
	}
	say("1. Connected to %s: %d banks available for withdrawals", cfg.URL, len(banks))

	// 2. A wallet for the phone (the existing one if the phone has one).
	// Withdrawals need at least simplified identification.
	reg, err := c.Register(ctx, cfg.Phone, client.Personalized)
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	wallet := reg.WalletID
	if reg.Identification == client.Elementary {
		if _, err := c.SetIdentification(ctx, wallet, client.Personalized); err != nil {
			return fmt.Errorf("identification: %w", err)
		}
	}
	info, err := c.Info(ctx, wallet)
	if err != nil {
		return fmt.Errorf("wallet info: %w", err)
	}
	say("2. Registered wallet %s for phone %s: number %s, %s, balance %s", wallet, cfg.Phone, info.Number, info.Identification, info.Balance)

	// 3. Top up through SBP.
	refill, err := c.Refill(ctx, wallet, topUpAmount)
	if err != nil {
		return fmt.Errorf("top-up: %w", err)
	}
	say("3. Top-up of %s started: operation %s is %s until %s", refill.Amount, refill.OperationID, refill.Status, refill.ExpiresAt.Format(client.TimeLayout))
	say("   SBP link for the client: %s", refill.Payload)
	var status client.OperationStatus
	if cfg.Sandbox {
		res, err := c.SandboxConfirm(ctx, refill.Payload)
		if err != nil {
			return fmt.Errorf("sandbox confirmation (is the walletd sandbox on? else use -sandbox=false): %w", err)
		}
		status = res.Status
		say("   Sandbox SBP confirmed the top-up: %s", status)
	} else {
		say("   Open the link in a bank app and pay; waiting…")
		op, err := waitFinal(ctx, c, wallet, refill.OperationID, time.Until(refill.ExpiresAt)+10*time.Second)
		if err != nil {
			return fmt.Errorf("top-up: %w", err)
		}
		status = op.Status
		say("   Top-up finished: %s", status)
	}
	if status != client.StatusSuccess {
		return fmt.Errorf("top-up ended %s", status)
	}
	if info, err = c.Info(ctx, wallet); err != nil {
		return fmt.Errorf("wallet info: %w", err)
	}
	say("   Balance: %s", info.Balance)

	// 4. Pay a TSP: a single-use token, then the payment.
	tok, err := c.InitPayment(ctx, wallet)
	if err != nil {
		return fmt.Errorf("payment token: %w", err)
	}
	pay, err := c.Pay(ctx, client.PaymentRequest{WalletID: wallet, Token: tok.Token, Amount: paymentAmount, TSP: cfg.TSPID})
	if err != nil {
		return fmt.Errorf("payment: %w", err)
	}
	say("4. Paid %s to TSP %s: %s (operation %s)", pay.Amount, cfg.TSPID, pay.Status, pay.OperationID)

	// 5. Refund part of the payment.
	amount := refundAmount
	ref, err := c.Refund(ctx, wallet, tok.Token, &amount)
	if err != nil {
		return fmt.Errorf("refund: %w", err)
	}
	say("5. Refunded %s of that payment: %s (operation %s)", ref.Amount, ref.Status, ref.OperationID)

	// 6. Withdraw to a bank; the payout completes asynchronously.
	bank := banks[0]
	wd, err := c.Withdraw(ctx, wallet, bank.Identifier, withdrawalAmount)
	if err != nil {
		return fmt.Errorf("withdrawal: %w", err)
	}
	say("6. Withdrawal of %s to %s (%s): %s, operation %s", wd.Amount, bank.Name, bank.Identifier, wd.Status, wd.OperationID)
	op, err := waitFinal(ctx, c, wallet, wd.OperationID, cfg.Wait)
	if err != nil {
		return fmt.Errorf("withdrawal: %w", err)
	}
	say("   Payout finished: %s", op.Status)

	// 7. The report, newest first.
	page, err := c.Report(ctx, wallet, client.ReportQuery{Size: 10})
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	say("7. Report: %d operations in total, the latest %d:", page.TotalElements, len(page.Content))
	for _, it := range page.Content {
		// FormattedAmount uses no-break spaces; plain ones read the same in a terminal.
		amount := strings.ReplaceAll(it.FormattedAmount, "\u00a0", " ")
		say("   %s  %-7s %-7s %s  %s", it.Date.Format(client.TimeLayout), it.Type, it.Status, padLeft(amount, 12), it.Description)
	}

	// 8. The final balance.
	if info, err = c.Info(ctx, wallet); err != nil {
		return fmt.Errorf("wallet info: %w", err)
	}
	say("8. Final balance: %s %s", info.Balance, info.Currency)
	return nil
}

// padLeft right-aligns s in width characters (not bytes: "₽" is three).
func padLeft(s string, width int) string {
	return strings.Repeat(" ", max(width-utf8.RuneCountInString(s), 0)) + s
}

// waitFinal polls an operation until it is no longer PENDING.
func waitFinal(ctx context.Context, c *client.Client, wallet, opID uuid.UUID, limit time.Duration) (client.Operation, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		op, err := c.Operation(ctx, wallet, opID)
		if err != nil {
			return client.Operation{}, err
		}
		if op.Status.Final() {
			return op, nil
		}
		select {
		case <-ctx.Done():
			return client.Operation{}, fmt.Errorf("operation %s still %s: %w", opID, op.Status, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
