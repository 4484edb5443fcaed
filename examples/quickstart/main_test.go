package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/app/apptest"
	"github.com/perspektiva/walletd/client"
)

func TestRun(t *testing.T) {
	srv, err := apptest.Start(t.Context(), apptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := config{
		URL: srv.URL,
		Credentials: client.Credentials{
			PartnerID: srv.Partner.PartnerID, ClientID: srv.Partner.ClientID, ClientSecret: srv.Partner.ClientSecret,
		},
		TSPID:   srv.TSPID,
		Phone:   "9001234567",
		Sandbox: true,
		Wait:    10 * time.Second,
	}
	var out strings.Builder
	if err := run(t.Context(), cfg, &out); err != nil {
		t.Fatalf("run: %v\noutput so far:\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"1. Connected to " + srv.URL + ":",
		"2. Registered wallet ",
		"PERSONALIZED, balance 0.00",
		"3. Top-up of 1500.00 started",
		"SBP link for the client: " + srv.URL + "/sandbox/sbp/",
		"Sandbox SBP confirmed the top-up: SUCCESS",
		"Balance: 1500.00",
		"4. Paid 250.00 to TSP " + srv.TSPID.String() + ": SUCCESS",
		"5. Refunded 100.00 of that payment: SUCCESS",
		"6. Withdrawal of 500.00 to Сбербанк (100000000111): PENDING",
		"Payout finished: SUCCESS",
		"7. Report: 4 operations in total, the latest 4:",
		"DEBIT   SUCCESS    -500,00 ₽  Вывод в банк: Сбербанк",
		"REFUND  SUCCESS    +100,00 ₽  Возврат: Кофейня «Зерно»",
		"PAYMENT SUCCESS    -250,00 ₽  Оплата: Кофейня «Зерно»",
		"CREDIT  SUCCESS  +1 500,00 ₽  Пополнение через СБП",
		"8. Final balance: 850.00 RUB",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}

	// A second run finds the same wallet and adds to its balance.
	out.Reset()
	if err := run(t.Context(), cfg, &out); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if !strings.Contains(out.String(), "balance 850.00") || !strings.Contains(out.String(), "8. Final balance: 1700.00 RUB") {
		t.Errorf("second run:\n%s", out.String())
	}
}

func TestRunWrongCredentials(t *testing.T) {
	srv, err := apptest.Start(t.Context(), apptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := config{
		URL:         srv.URL,
		Credentials: client.Credentials{PartnerID: srv.Partner.PartnerID, ClientID: srv.Partner.ClientID, ClientSecret: "wrong"},
		TSPID:       srv.TSPID, Phone: "9001234567", Sandbox: true,
	}
	err = run(t.Context(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseConfig(t *testing.T) {
	pid, tsp := uuid.New(), uuid.New()
	env := map[string]string{
		"WALLET_PARTNER_ID": pid.String(), "WALLET_CLIENT_ID": "wc_1", "WALLET_CLIENT_SECRET": "wcs_1", "WALLET_TSP_ID": tsp.String(),
	}
	getenv := func(k string) string { return env[k] }

	cfg, err := parseConfig(nil, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "http://localhost:8080" || cfg.Credentials.PartnerID != pid || cfg.Credentials.ClientID != "wc_1" ||
		cfg.Credentials.ClientSecret != "wcs_1" || cfg.TSPID != tsp || !cfg.Sandbox || cfg.Phone != "9001234567" {
		t.Errorf("from the environment: %+v", cfg)
	}

	env["WALLET_URL"] = "http://wallet:9000"
	cfg, err = parseConfig([]string{"-client-id", "wc_2", "-sandbox=false", "-phone", "9990001122"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "http://wallet:9000" || cfg.Credentials.ClientID != "wc_2" || cfg.Sandbox || cfg.Phone != "9990001122" {
		t.Errorf("flags over the environment: %+v", cfg)
	}

	_, err = parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "partner id") || !strings.Contains(err.Error(), "TSP id") || !strings.Contains(err.Error(), "client credentials") {
		t.Errorf("nothing configured: %v", err)
	}
}
