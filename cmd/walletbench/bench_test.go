package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"testing"

	"github.com/perspektiva/walletd/app/apptest"
	"github.com/perspektiva/walletd/store/storetest"
)

// TestBenchmarkEndToEnd runs the tool as the README does, briefly, against a
// complete walletd on each engine: the setup, a run and the audit, once with
// every operation (in equal shares, so that a short run on a slow machine
// still makes each of them many times) and once with --hot. The run must pass
// (audit clean, the ledger grown by what walletd answered, no unexpected
// error) and have each operation of its mix succeed.
func TestBenchmarkEndToEnd(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		cases := []struct {
			name string
			args []string
			ops  []string
			hot  bool
		}{
			{"every operation", []string{"--partners", "2", "--mix", "payment=1,info=1,report=1,topup=1,withdrawal=1,limits=1"},
				[]string{"payment", "info", "report", "topup", "withdrawal", "limits"}, false},
			{"hot", []string{"--mix", "payments", "--hot"}, []string{"payment"}, true},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				dsn := e.DSN(t)
				srv, err := apptest.Start(t.Context(), apptest.Options{DSN: dsn})
				if err != nil {
					t.Fatalf("start walletd: %v", err)
				}
				defer srv.Close()
				const wallets = 30
				args := append([]string{"--url", srv.URL, "--db", dsn, "--wallets", strconv.Itoa(wallets),
					"--concurrency", "6", "--setup-concurrency", "6", "--duration", "2s", "--json"}, c.args...)
				var out bytes.Buffer
				if err := run(t.Context(), args, &out, io.Discard); err != nil {
					t.Fatalf("walletbench %v: %v\n%s", args, err, out.Bytes())
				}
				var res result
				if err := json.Unmarshal(out.Bytes(), &res); err != nil {
					t.Fatalf("--json printed %s: %v", out.Bytes(), err)
				}
				if !res.Pass || !res.Audit.OK || !res.Agreement.Checked || !res.Agreement.OK || res.UnexpectedErrors != 0 || res.Interrupted {
					t.Errorf("pass %v, audit %+v, agreement %+v, %d unexpected errors, interrupted %v",
						res.Pass, res.Audit, res.Agreement, res.UnexpectedErrors, res.Interrupted)
				}
				if res.Setup.WalletsFunded != wallets || res.Engine != e.Name {
					t.Errorf("setup funded %d wallets on %q, want %d on %q", res.Setup.WalletsFunded, res.Engine, wallets, e.Name)
				}
				done := map[string]int64{}
				for _, op := range res.Run.Operations {
					done[op.Name] = op.OK
				}
				for _, name := range c.ops {
					if done[name] == 0 {
						t.Errorf("no %s succeeded in the run: %+v", name, res.Run.Operations)
					}
				}
				if c.hot != (res.Run.HotTSP != "") {
					t.Errorf("hot TSP %q in the %s run", res.Run.HotTSP, c.name)
				}
			})
		}
	})
}
