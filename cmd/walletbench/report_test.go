package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/store"
)

// TestRefusalsByName: a setup request is judged as the setup's, a request of
// the run's operation as the run's, though both are shown as "refill".
func TestRefusalsByName(t *testing.T) {
	m, err := parseMix("topup=1,info=1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{wallets: 5, concurrency: 2, mix: m}
	fl := &fleet{partners: []*partner{{tsps: []string{"t1"}, tokens: &tokenSource{}}}, wallets: []benchWallet{{id: "w1"}}}
	setupRec, runRec := newRecorder(), newRecorder()
	const limit = "400 LIMIT_EXCEEDED"
	setupRec.add("register", time.Millisecond, "", "")
	setupRec.add("refill", time.Millisecond, limit, "e.g.")
	runRec.add("topup/refill", time.Millisecond, limit, "e.g.")
	runRec.add("topup", time.Millisecond, limit, "e.g.")
	runRec.add("info", time.Millisecond, limit, "e.g.")

	res := &result{}
	res.addSetup(cfg, fl, setupRec, time.Second)
	res.addRun(cfg, fl, runRec, time.Second)
	res.finish()

	expected := map[string]bool{}
	for _, l := range res.Setup.Requests {
		for _, e := range l.Errors {
			expected["setup "+l.Name] = e.Expected
		}
	}
	for _, l := range res.Run.Operations {
		for _, e := range l.Errors {
			expected["run "+l.Name] = e.Expected
		}
		for _, sub := range l.Requests {
			for _, e := range sub.Errors {
				expected["run "+l.Name+" "+sub.Name] = e.Expected
			}
		}
	}
	want := map[string]bool{"setup refill": false, "run topup": true, "run topup refill": true, "run info": false}
	for k, w := range want {
		if got, ok := expected[k]; !ok || got != w {
			t.Errorf("%s: LIMIT_EXCEEDED expected %v (seen %v), want %v", k, got, ok, w)
		}
	}
	if res.UnexpectedErrors != 2 {
		t.Errorf("%d unexpected errors, want 2 (the setup's refill and info)", res.UnexpectedErrors)
	}
	if res.Setup.Wallets != 5 || res.Setup.WalletsFunded != 1 {
		t.Errorf("setup: %d of %d wallets, want 1 of the 5 configured", res.Setup.WalletsFunded, res.Setup.Wallets)
	}
}

// TestOperationJudgedByItsRequest: an operation of several requests is
// judged by the request that failed it. A payment may be refused for want of
// money at its payment step, never at its initialization.
func TestOperationJudgedByItsRequest(t *testing.T) {
	const funds = "400 INSUFFICIENT_FUNDS"
	tests := []struct {
		failedAt       string
		wantUnexpected int64
	}{
		{"pay", 0},
		{"init", 1},
	}
	for _, tt := range tests {
		m, err := parseMix("payment=1")
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		if tt.failedAt == "pay" {
			rec.add("payment/init", time.Millisecond, "", "")
		}
		rec.add("payment/"+tt.failedAt, time.Millisecond, funds, "e.g.")
		rec.add("payment", 2*time.Millisecond, funds, "e.g.")
		res := &result{}
		res.addRun(config{mix: m}, &fleet{}, rec, time.Second)
		res.finish()
		if res.UnexpectedErrors != tt.wantUnexpected {
			t.Errorf("refused at %s: %d unexpected errors, want %d", tt.failedAt, res.UnexpectedErrors, tt.wantUnexpected)
		}
	}
}

// benchCase is what can go wrong in finished's benchmark.
type benchCase struct {
	interrupted bool
	baselineErr error
	auditErr    error
	violation   string
	lost        money.Amount // paid to TSPs by the answers, missing from the ledger
	extraTopUp  money.Amount // in the ledger, unknown to the answers
	unexpected  string       // an info's outcome
}

// finished is a small benchmark taken through the report as run does: 3
// wallets funded, then 5 payments (one refused), 3 infos and 2 top-ups in 2 s.
func finished(t *testing.T, c benchCase) *result {
	t.Helper()
	m, err := parseMix("payment=50,info=30,topup=20")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("http://127.0.0.1:8080")
	cfg := config{url: u, dsn: "./bench.db", wallets: 3, concurrency: 4, mix: m, seed: 42}
	p := &partner{tsps: []string{"t1", "t2"}, tokens: &tokenSource{issued: 1}}
	fl := &fleet{partners: []*partner{p}, wallets: []benchWallet{{"w1", p}, {"w2", p}, {"w3", p}}}

	setupRec := newRecorder()
	for range 3 {
		for _, name := range []string{"register", "refill", "confirm"} {
			setupRec.add(name, 2*time.Millisecond, "", "")
		}
	}
	runRec := newRecorder()
	for i, kopecks := range []int64{1_50, 20_00, 49_99, 3_00} {
		runRec.add("payment/init", time.Millisecond, "", "")
		runRec.add("payment/pay", time.Duration(3+i)*time.Millisecond, "", "")
		runRec.moved("payment/pay", kopecks)
		runRec.add("payment", time.Duration(4+i)*time.Millisecond, "", "")
	}
	runRec.add("payment/init", time.Millisecond, "", "")
	runRec.add("payment/pay", 300*time.Microsecond, "400 INSUFFICIENT_FUNDS", "POST /api/wallet/v1/account/w2/payment")
	runRec.add("payment", time.Millisecond, "400 INSUFFICIENT_FUNDS", "POST /api/wallet/v1/account/w2/payment")
	for range 3 {
		runRec.add("info", time.Millisecond, "", "")
	}
	if c.unexpected != "" {
		runRec.add("info", time.Millisecond, c.unexpected, "GET /api/wallet/v1/account/w1/info (X-Request-Id wb-x-9): 500")
	}
	for range 2 {
		runRec.add("topup/refill", 2*time.Millisecond, "", "")
		runRec.add("topup/confirm", 3*time.Millisecond, "", "")
		runRec.moved("topup/confirm", topUpKopecks)
		runRec.add("topup", 5*time.Millisecond, "", "")
	}

	before := store.AuditReport{ToppedUp: 1000_00, InTSPs: 200_00, InWallets: 800_00}
	after := before
	after.ToppedUp += 3*fundKopecks + 2*topUpKopecks + c.extraTopUp
	after.InTSPs += 1_50 + 20_00 + 49_99 + 3_00 - c.lost
	after.InWallets = after.ToppedUp - after.InTSPs
	if c.violation != "" {
		after.Violations = []string{c.violation}
	}

	res := newResult(cfg, "sqlite")
	res.addSetup(cfg, fl, setupRec, 1500*time.Millisecond)
	res.addRun(cfg, fl, runRec, 2*time.Second)
	res.Interrupted = c.interrupted
	res.addAudit(after, c.auditErr)
	res.addAgreement(before, c.baselineErr, after, len(fl.wallets), runRec)
	res.finish()
	return res
}

func TestAddAgreement(t *testing.T) {
	tests := []struct {
		name        string
		c           benchCase
		wantChecked bool
		wantOK      bool
		want        map[string][2]string // check → expected, actual
		notChecked  string
	}{
		{name: "the ledger grew as answered", wantChecked: true, wantOK: true,
			want: map[string][2]string{"top-ups": {"150020.00", "150020.00"}, "TSPs": {"74.49", "74.49"}}},
		{name: "a top-up nobody was told of", c: benchCase{extraTopUp: 10_00}, wantChecked: true,
			want: map[string][2]string{"top-ups": {"150020.00", "150030.00"}, "TSPs": {"74.49", "74.49"}}},
		{name: "a payment answered but not booked", c: benchCase{lost: 20_00}, wantChecked: true,
			want: map[string][2]string{"top-ups": {"150020.00", "150020.00"}, "TSPs": {"74.49", "54.49"}}},
		{name: "interrupted", c: benchCase{interrupted: true, lost: 20_00}, notChecked: "interrupted"},
		{name: "no baseline", c: benchCase{baselineErr: errors.New("database is locked")}, notChecked: "no baseline, the audit before the setup failed: database is locked"},
		{name: "no audit after the run", c: benchCase{auditErr: errors.New("timeout")}, notChecked: "audit after the run failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := finished(t, tt.c).Agreement
			if a.Checked != tt.wantChecked || a.OK != tt.wantOK || !strings.Contains(a.NotChecked, tt.notChecked) {
				t.Fatalf("checked %v ok %v (%q), want %v %v (%q)", a.Checked, a.OK, a.NotChecked, tt.wantChecked, tt.wantOK, tt.notChecked)
			}
			if len(a.Checks) != len(tt.want) {
				t.Fatalf("checks %+v, want %v", a.Checks, tt.want)
			}
			for _, c := range a.Checks {
				w := tt.want[c.Name]
				if c.Expected != w[0] || c.Actual != w[1] || c.OK != (w[0] == w[1]) {
					t.Errorf("%s: expected %s actual %s ok %v, want %s %s", c.Name, c.Expected, c.Actual, c.OK, w[0], w[1])
				}
			}
		})
	}
}

// TestVerdict: what the report ends with, what JSON says and how the process
// exits. A failed check outranks the interruption, which never passes.
func TestVerdict(t *testing.T) {
	tests := []struct {
		name     string
		c        benchCase
		wantErr  error
		wantLine string // the last line of the text
		wantText []string
	}{
		{name: "pass", wantLine: "PASS: ledger balanced and matches the answers walletd gave, no unexpected errors",
			wantText: []string{"  top-ups  ledger 150020.00, answers 150020.00 (3 wallets × 50000.00 + 2 top-ups × 10.00): ok"}},
		{name: "ledger short of the answers", c: benchCase{lost: 20_00}, wantErr: errFailed,
			wantLine: "FAIL: TSPs grew by 54.49, walletd's answers say 74.49",
			wantText: []string{"  TSPs     ledger 54.49, answers 74.49 (4 payments): MISMATCH"}},
		{name: "unexpected error", c: benchCase{unexpected: "500 INTERNAL_ERROR"}, wantErr: errFailed,
			wantLine: "FAIL: 1 unexpected error(s)", wantText: []string{"UNEXPECTED", "e.g. GET /api/wallet/v1/account/w1/info"}},
		{name: "audit and agreement fail", c: benchCase{violation: "money is not conserved", extraTopUp: 1}, wantErr: errFailed,
			wantLine: "FAIL: the ledger audit failed; top-ups grew by 150020.01, walletd's answers say 150020.00"},
		{name: "interrupted", c: benchCase{interrupted: true}, wantErr: errInterrupted,
			wantLine: "INTERRUPTED: the results cover the run until Ctrl-C, which cannot pass",
			wantText: []string{"Ledger against walletd's answers: not checked (the run was interrupted"}},
		{name: "interrupted with a failed audit", c: benchCase{interrupted: true, violation: "money is not conserved"}, wantErr: errFailed,
			wantLine: "FAIL: the ledger audit failed", wantText: []string{"INTERRUPTED"}},
		{name: "no baseline", c: benchCase{baselineErr: errors.New("database is locked")}, wantErr: errFailed,
			wantLine: "FAIL: the ledger was not compared with walletd's answers: no baseline, the audit before the setup failed: database is locked"},
		{name: "no audit", c: benchCase{auditErr: errors.New("timeout")}, wantErr: errFailed,
			wantLine: "FAIL: the ledger audit could not run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := finished(t, tt.c)
			if err := res.exitErr(); !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("exit with %v, want %v", err, tt.wantErr)
			}
			if res.Pass != (tt.wantErr == nil) {
				t.Errorf("pass %v with failures %q", res.Pass, res.Failures)
			}
			var text bytes.Buffer
			if err := res.writeText(&text); err != nil {
				t.Fatal(err)
			}
			out := text.String()
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if last := lines[len(lines)-1]; last != tt.wantLine {
				t.Errorf("last line %q, want %q in\n%s", last, tt.wantLine, out)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(out, s) {
					t.Errorf("no %q in\n%s", s, out)
				}
			}
			if strings.Contains(out, "PASS") != (tt.wantErr == nil) {
				t.Errorf("PASS shown for %s:\n%s", tt.name, out)
			}

			var js bytes.Buffer
			if err := res.writeJSON(&js); err != nil {
				t.Fatal(err)
			}
			var got struct {
				Pass      bool            `json:"pass"`
				Failures  []string        `json:"failures"`
				Agreement agreementResult `json:"agreement"`
			}
			if err := json.Unmarshal(js.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Pass != res.Pass || len(got.Failures) != len(res.Failures) || got.Agreement.Checked != res.Agreement.Checked {
				t.Errorf("JSON pass %v failures %q agreement %+v", got.Pass, got.Failures, got.Agreement)
			}
		})
	}
}

// TestWriteTable: rates are of the successes, and the total adds them up
// (percentiles are their buckets' highest values).
func TestWriteTable(t *testing.T) {
	res := finished(t, benchCase{})
	var b bytes.Buffer
	writeTable(&b, "operation", res.Run.Operations)
	want := []string{
		"  operation          count        ok      ok/s    p50 ms    p95 ms    p99 ms    max ms",
		"  payment                5         4       2.0      5.05      7.00      7.00      7.00",
		"    init                 5         5       2.5      1.00      1.00      1.00      1.00",
		"    pay                  5         4       2.0      4.03      6.00      6.00      6.00",
		"  info                   3         3       1.5      1.00      1.00      1.00      1.00",
		"  topup                  2         2       1.0      5.00      5.00      5.00      5.00",
		"    refill               2         2       1.0      2.00      2.00      2.00      2.00",
		"    confirm              2         2       1.0      3.00      3.00      3.00      3.00",
		"  total                 10         9       4.5",
	}
	if got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("table\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var js bytes.Buffer
	if err := res.writeJSON(&js); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"okPerSecond": 2,`) || strings.Contains(js.String(), `"perSecond"`) {
		t.Errorf(`want "okPerSecond": 2 for the payments in the JSON, and no "perSecond"`)
	}
}
