package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/perspektiva/walletd/store/storetest"
)

// End-to-end tests of two settings of `walletd serve` as a partner and an
// operator see them (README "Configuration", PROTOCOL.md sections 1 and 5):
// WALLET_LIMITS_FILE lowers the system limits, and never raises them;
// WALLET_TIMEZONE sets the zone of the protocol's times.

// asWalletdEnv, set to 1, makes the test binary run as `walletd` itself (main
// with the process's arguments), so that a test can watch the real program's
// stderr and exit code.
const asWalletdEnv = "WALLETD_TEST_AS_WALLETD"

func TestMain(m *testing.M) {
	if os.Getenv(asWalletdEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// walletdProcess runs `walletd serve` as a process of its own on a fresh SQLite
// file with env (none of this machine's WALLET_ variables), and returns its
// exit code and output. A server that starts is stopped after within and
// reported as exit code -1.
func walletdProcess(t *testing.T, env map[string]string, within time.Duration) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "serve", "--db", filepath.Join(t.TempDir(), "wallet.db"), "--addr", "127.0.0.1:0")
	cmd.Env = []string{asWalletdEnv + "=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WALLET_") && !strings.HasPrefix(kv, asWalletdEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return -1, out.String(), errOut.String()
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String(), errOut.String()
	}
	t.Fatalf("run walletd serve: %v", err)
	return 0, "", ""
}

// writeLimitsFile writes a WALLET_LIMITS_FILE with the given text and returns its path.
func writeLimitsFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "limits.json")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestE2EConfigLimitsFile: values a WALLET_LIMITS_FILE lowers are the system
// limits partners see in GET /limit, cannot exceed with their own values,
// and meet as LIMIT_EXCEEDED or OPERATION_DISABLED; the other levels keep
// the statutory values.
func TestE2EConfigLimitsFile(t *testing.T) {
	t.Parallel()
	file := writeLimitsFile(t, `{
		"ELEMENTARY":   {"balanceLimit": "100.00", "PAYMENT": {"oneTimeLimit": "30.00"}},
		"PERSONALIZED": {"DEBIT": {"enabled": false}},
		"IDENTIFIED":   {"PAYMENT": {"enabled": false}}}`)
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startMoneyServer(t, e, map[string]string{"WALLET_LIMITS_FILE": file})
		tok := s.token(t, s.A)

		t.Run("GET limit", func(t *testing.T) {
			type change struct {
				typ, field string
				value      any
			}
			for _, c := range []struct {
				level          string
				identification int
				changes        []change
			}{
				{"ELEMENTARY", 0, []change{{"", "balanceLimit", 100.0}, {"PAYMENT", "oneTimeLimit", 30.0}}},
				{"PERSONALIZED", 1, []change{{"DEBIT", "enabled", false}}},
				{"IDENTIFIED", 2, []change{{"PAYMENT", "enabled", false}}},
			} {
				w := s.register(t, tok, phone(), c.identification)
				status, _, data := s.do(t, http.MethodGet, moneyAcct(w)+"/limit", tok, nil)
				got := expectOK(t, "GET limit "+c.level, status, data)
				want := systemLimits(t, w, c.level)
				for _, ch := range c.changes {
					want = with(want, ch.typ, ch.field, ch.value)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("GET limit of a %s wallet:\n got %v\nwant %v", c.level, got, want)
				}
			}
		})

		t.Run("balance limit", func(t *testing.T) {
			w := s.register(t, tok, phone())
			status, _, data := s.refill(t, tok, w, `"100.01"`)
			expectError(t, "top-up above the lowered balance limit", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
			expectDetails(t, "top-up above the lowered balance limit", data, "balanceLimit", "100.00", "0.00", "100.00", "")
			s.fund(t, tok, w, "60")
			status, _, data = s.refill(t, tok, w, "40.01")
			expectError(t, "top-up past the lowered balance limit", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
			expectDetails(t, "top-up past the lowered balance limit", data, "balanceLimit", "100.00", "60.00", "40.00", "")
			s.fund(t, tok, w, "40")
			s.expectBalance(t, "up to the lowered balance limit", tok, w, "100.00")
			status, _, data = s.refill(t, tok, w, "0.01")
			expectError(t, "top-up at the lowered balance limit", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")

			// The lowered value is the system's: a partner may not set more.
			status, _, data = s.do(t, http.MethodPost, moneyAcct(w)+"/limit", tok, map[string]any{"balanceLimit": "100.01"})
			expectError(t, "partner balanceLimit above the lowered one", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "balanceLimit")
			s.setLimits(t, tok, w, map[string]any{"balanceLimit": "100.00"})

			// The other levels keep the statutory balance limit.
			p := s.register(t, tok, phone(), 1)
			s.fund(t, tok, p, "100.01")
			s.expectBalance(t, "PERSONALIZED above the ELEMENTARY limit", tok, p, "100.01")
		})

		t.Run("PAYMENT one-time limit", func(t *testing.T) {
			w := s.register(t, tok, phone())
			s.fund(t, tok, w, "100")
			token := s.initPayment(t, tok, w)
			status, _, data := s.pay(t, tok, w, token, "30.01", s.A.TSPID)
			expectError(t, "payment above the lowered one-time limit", status, data, http.StatusBadRequest, "LIMIT_EXCEEDED", "amount")
			expectDetails(t, "payment above the lowered one-time limit", data, "PAYMENT.oneTimeLimit", "30.00", "0.00", "30.00", "")
			status, _, data = s.pay(t, tok, w, token, "30", s.A.TSPID)
			moneyOK(t, "payment at the lowered one-time limit", status, data)
			s.expectBalance(t, "after the payments", tok, w, "70.00")
		})

		for _, c := range []struct {
			typ            string
			level          string
			identification int
			send           func(t *testing.T, w string) (int, http.Header, []byte)
		}{
			{"DEBIT", "PERSONALIZED", 1, func(t *testing.T, w string) (int, http.Header, []byte) {
				return s.withdraw(t, tok, w, sberbank, "10")
			}},
			{"PAYMENT", "IDENTIFIED", 2, func(t *testing.T, w string) (int, http.Header, []byte) {
				return s.pay(t, tok, w, s.initPayment(t, tok, w), "10", s.A.TSPID)
			}},
		} {
			t.Run(c.typ+" disabled at "+c.level, func(t *testing.T) {
				w := s.register(t, tok, phone(), c.identification)
				s.fund(t, tok, w, "100")
				status, _, data := c.send(t, w)
				expectError(t, c.typ+" disabled by the limits file", status, data, http.StatusBadRequest, "OPERATION_DISABLED", "amount")
				s.expectBalance(t, "after the refused "+c.typ, tok, w, "100.00")
				if page, _ := s.report(t, tok, w, "operationType="+c.typ); moneyNum(page, "totalElements") != "0" {
					t.Errorf("the refused %s left an operation: %v", c.typ, page)
				}
				status, _, data = s.do(t, http.MethodPost, moneyAcct(w)+"/limit", tok, typeLimit(c.typ, "enabled", true))
				expectError(t, "partner enables "+c.typ, status, data, http.StatusBadRequest, "VALIDATION_ERROR", "operationLimits."+c.typ+".enabled")
			})
		}
	})
}

// TestE2EConfigRefusesToStart: `walletd serve` exits non-zero, before serving
// anything, with a message on stderr naming the setting and its fault, when the
// limits file would raise a limit or cannot be read, or the time zone is unknown.
func TestE2EConfigRefusesToStart(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		limits string // text of WALLET_LIMITS_FILE, if any
		env    map[string]string
		want   []string // on stderr
	}{
		{name: "balance limit raised", limits: `{"ELEMENTARY": {"balanceLimit": "15000.01"}}`,
			want: []string{"WALLET_LIMITS_FILE", "ELEMENTARY.balanceLimit", "15000.00"}},
		{name: "statutory monthly cap raised", limits: `{"PERSONALIZED": {"statutoryMonthLimit": "200000.01"}}`,
			want: []string{"WALLET_LIMITS_FILE", "PERSONALIZED.statutoryMonthLimit", "200000.00"}},
		{name: "one-time limit raised", limits: `{"PERSONALIZED": {"DEBIT": {"oneTimeLimit": "60000.01"}}}`,
			want: []string{"WALLET_LIMITS_FILE", "PERSONALIZED.DEBIT.oneTimeLimit", "60000.00"}},
		{name: "monthly limit raised", limits: `{"ELEMENTARY": {"PAYMENT": {"monthLimit": "40000.01"}}}`,
			want: []string{"WALLET_LIMITS_FILE", "ELEMENTARY.PAYMENT.monthLimit", "40000.00"}},
		{name: "type the law disables enabled", limits: `{"ELEMENTARY": {"DEBIT": {"enabled": true}}}`,
			want: []string{"WALLET_LIMITS_FILE", "ELEMENTARY.DEBIT"}},
		{name: "one lowered, one raised", limits: `{"ELEMENTARY": {"balanceLimit": "100"}, "IDENTIFIED": {"balanceLimit": "600000.01"}}`,
			want: []string{"WALLET_LIMITS_FILE", "IDENTIFIED.balanceLimit", "600000.00"}},
		{name: "malformed JSON", limits: `{"ELEMENTARY": {"balanceLimit": "100"`,
			want: []string{"WALLET_LIMITS_FILE"}},
		{name: "unknown level", limits: `{"VIP": {"balanceLimit": "100"}}`,
			want: []string{"WALLET_LIMITS_FILE", `"VIP"`}},
		{name: "unknown field", limits: `{"ELEMENTARY": {"balance": "100"}}`,
			want: []string{"WALLET_LIMITS_FILE", `"balance"`}},
		{name: "negative amount", limits: `{"ELEMENTARY": {"balanceLimit": "-1"}}`,
			want: []string{"WALLET_LIMITS_FILE"}},
		{name: "amount with three fraction digits", limits: `{"ELEMENTARY": {"balanceLimit": "99.999"}}`,
			want: []string{"WALLET_LIMITS_FILE"}},
		{name: "missing limits file", env: map[string]string{"WALLET_LIMITS_FILE": "/nonexistent/limits.json"},
			want: []string{"WALLET_LIMITS_FILE", "/nonexistent/limits.json"}},
		{name: "unknown time zone", env: map[string]string{"WALLET_TIMEZONE": "Mars/Olympus"},
			want: []string{"WALLET_TIMEZONE", "Mars/Olympus"}},
		{name: "offset instead of a zone name", env: map[string]string{"WALLET_TIMEZONE": "+10:00"},
			want: []string{"WALLET_TIMEZONE", "+10:00"}},
		{name: "payment token TTL 0s", env: map[string]string{"WALLET_PAYMENT_TOKEN_TTL": "0s"},
			want: []string{"WALLET_PAYMENT_TOKEN_TTL"}},
		{name: "payment token TTL 0", env: map[string]string{"WALLET_PAYMENT_TOKEN_TTL": "0"},
			want: []string{"WALLET_PAYMENT_TOKEN_TTL"}},
		{name: "payment token TTL -1m", env: map[string]string{"WALLET_PAYMENT_TOKEN_TTL": "-1m"},
			want: []string{"WALLET_PAYMENT_TOKEN_TTL"}},
		{name: "payment token TTL 500ms", env: map[string]string{"WALLET_PAYMENT_TOKEN_TTL": "500ms"},
			want: []string{"WALLET_PAYMENT_TOKEN_TTL"}},
		{name: "payment token TTL soon", env: map[string]string{"WALLET_PAYMENT_TOKEN_TTL": "soon"},
			want: []string{"WALLET_PAYMENT_TOKEN_TTL"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			for k, v := range c.env {
				env[k] = v
			}
			if c.limits != "" {
				env["WALLET_LIMITS_FILE"] = writeLimitsFile(t, c.limits)
			}
			code, stdout, stderr := walletdProcess(t, env, 20*time.Second)
			switch code {
			case -1:
				t.Fatalf("walletd serve started and kept running\nstderr:\n%s", stderr)
			case 0:
				t.Fatalf("walletd serve exited 0\nstderr:\n%s", stderr)
			}
			if !strings.HasPrefix(stderr, "walletd: ") || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr is not one line \"walletd: <reason>\":\n%s", stderr)
			}
			for _, frag := range c.want {
				if !strings.Contains(stderr, frag) {
					t.Errorf("stderr does not name %q:\n%s", frag, stderr)
				}
			}
			if stdout != "" {
				t.Errorf("a refused start printed on stdout:\n%s", stdout)
			}
		})
	}
}

// TestE2EConfigTimezone: the protocol's times (an operation's operationDate, a
// top-up's expiresAt) are the wall-clock time of WALLET_TIMEZONE, Europe/Moscow
// by default, and the report's date bounds are read in that zone too. The
// expected offsets are fixed here (neither zone has had summer time since 2014)
// rather than taken from the same zone database the server reads.
func TestE2EConfigTimezone(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		for _, c := range []struct {
			name string
			env  map[string]string
			zone *time.Location
		}{
			{"default Europe/Moscow", nil, time.FixedZone("MSK", 3*60*60)},
			{"Asia/Vladivostok", map[string]string{"WALLET_TIMEZONE": "Asia/Vladivostok"}, time.FixedZone("VLAT", 10*60*60)},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				s := startMoneyServer(t, e, c.env)
				tok := s.token(t, s.A)
				w := s.register(t, tok, phone())
				before := time.Now()
				tu := s.refillOK(t, tok, w, "100")
				after := time.Now()
				at := func(what, text string, lo, hi time.Time) time.Time {
					t.Helper()
					got, err := time.ParseInLocation(time.DateTime, text, c.zone)
					if !moneyDate.MatchString(text) || err != nil {
						t.Fatalf("%s %q is not YYYY-MM-DD HH:MM:SS", what, text)
					}
					if got.Before(lo.Add(-time.Second)) || got.After(hi.Add(time.Second)) {
						t.Errorf("%s %s is not between %s and %s (UTC%s)", what, text,
							lo.In(c.zone).Format(time.DateTime), hi.In(c.zone).Format(time.DateTime), lo.In(c.zone).Format("-07:00"))
					}
					return got
				}
				at("expiresAt", moneyStr(tu.Answer, "expiresAt"), before.Add(30*time.Minute), after.Add(30*time.Minute))
				date := moneyStr(s.operation(t, tok, w, tu.OperationID), "operationDate")
				opAt := at("operationDate", date, before, after)
				if got := s.sbp(t, tu.QRC, "confirm"); got != "SUCCESS" {
					t.Fatalf("confirm: status %s, want SUCCESS", got)
				}
				_, items := s.report(t, tok, w, "")
				if len(items) != 1 || moneyStr(items[0], "operationDate") != date {
					t.Errorf("report items %v, want the top-up with operationDate %s", items, date)
				}

				// dateFrom and dateTo in the zone's wall-clock time.
				f := func(tm time.Time) string { return tm.In(c.zone).Format(time.DateTime) }
				for _, q := range []struct {
					param string
					at    time.Time
					want  []string
				}{
					{"dateFrom", opAt, []string{tu.OperationID}},
					{"dateFrom", opAt.Add(time.Second), nil},
					{"dateTo", opAt, []string{tu.OperationID}},
					{"dateTo", opAt.Add(-time.Second), nil},
				} {
					query := q.param + "=" + url.QueryEscape(f(q.at))
					if _, items := s.report(t, tok, w, query); !slices.Equal(moneyIDs(items), q.want) {
						t.Errorf("report %s: operations %q, want %q", query, moneyIDs(items), q.want)
					}
				}
			})
		}
	})
}
