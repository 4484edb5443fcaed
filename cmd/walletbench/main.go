// Command walletbench is a load benchmark for a running walletd: it opens and
// funds wallets as several partners would, drives a mix of protocol operations
// over HTTP for a while, reports throughput, latency and errors, and finally
// audits the ledger of the same database.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/perspektiva/walletd/store"
)

const usage = `walletbench — load benchmark for a running walletd.

Usage:
  go run ./cmd/walletbench [flags]

Start walletd first on a fresh database and give walletbench the same one,
for example:
  go run ./cmd/walletd serve --db ./bench.db --addr :8080
  go run ./cmd/walletbench --url http://127.0.0.1:8080 --db ./bench.db
On PostgreSQL walletd serves the sandbox only when asked:
  go run ./cmd/walletd serve --db postgres://... --addr :8080 --sandbox=true

Setup (timed on its own): creates --partners partners with --tsps TSPs each
directly in --db, gets their OAuth tokens from walletd, opens --wallets wallets
(identification 2, IDENTIFIED) spread evenly over the partners and funds each
with a 50000.00 top-up confirmed through the SBP sandbox (walletd must serve it:
the default with SQLite; on PostgreSQL start walletd with --sandbox=true).

Run: --concurrency workers for --duration; each picks an operation by --mix for
a random wallet and calls with the token of that wallet's partner:
  payment     GET payment/initialization + POST payment (1.00-50.00 to a TSP of the partner)
  info        GET info
  report      GET report?size=20
  topup       POST refill 10.00 + POST /sandbox/sbp/{qrcId}/confirm
  withdrawal  POST wifhdrawal 5.00 to bank 100000000111 (1 in 20 is 5.13: the sandbox fails it)
  limits      GET limit (1 in 10 also POSTs a PAYMENT oneTimeLimit of 100000.00)
--mix is "full" (payment 50, info 20, report 10, topup 10, withdrawal 5, limits 5),
"payments" (payments only) or your own weights, e.g. "payment=70,info=30".

--hot sends every payment to ONE TSP. A TSP takes payments only from wallets of
its own partner, so --hot runs with a single partner that owns all the wallets
(--partners must be 1 or left out) and every payment goes to its first TSP.

Access tokens are renewed shortly before they expire, and at once after a 401.

Results: per operation count, successes, successes per second (ok/s), latency
p50/p95/p99/max of the successes and errors by HTTP status and protocol code (an
operation of two requests is timed as a whole, and each request on its own line
as well). Each worker waits for an answer before its next request (a closed
loop), so under saturation the latencies leave out the queueing that clients
arriving at their own pace would meet. Expected business refusals are
INSUFFICIENT_FUNDS and LIMIT_EXCEEDED for payments and withdrawals, and
LIMIT_EXCEEDED for top-ups; every other error, and any in the setup, is
unexpected. Then walletd's memory (with --pid), and the CPU time walletbench used
during the run, and walletd's (with --pid), in all and per successful operation:
on a shared machine the load generator's share shows, and CPU per operation
compares across machines better than rates do. Then the ledger audit of --db,
and a check that the ledger grew by what walletd answered succeeded: its top-ups
by the funded wallets' and the run's confirmed top-ups, its TSPs by the
payments (against an audit taken before the setup; nothing else may move money
in --db meanwhile).

Exit status: 0 when the audit holds, the ledger matches the answers and no
unexpected error occurred, 1 otherwise, 2 for bad flags; 130 when interrupted
and nothing failed (a first Ctrl-C stops the run and still reports and audits,
but cannot pass; a second one ends the program at once).

Flags:
`

// Exit statuses other than 0.
var (
	errUsage       = errors.New("usage")
	errFailed      = errors.New("benchmark failed")
	errInterrupted = errors.New("interrupted")
)

func exitCode(err error) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errInterrupted):
		return 130
	}
	return 1
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // from now on a second Ctrl-C ends the process at once
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "walletbench:", err)
		}
		os.Exit(exitCode(err))
	}
}

// config is the command line.
type config struct {
	url              *url.URL // walletd's base URL, without a trailing slash
	dsn              string
	wallets          int
	partners         int
	tsps             int
	concurrency      int
	setupConcurrency int
	duration         time.Duration
	mix              mix
	hot              bool
	json             bool
	seed             uint64
	pid              int
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("walletbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	dsnDefault := getenv("WALLET_DB")
	if dsnDefault == "" {
		dsnDefault = "./wallet.db"
	}
	var cfg config
	var mixSpec string
	var rawURL string
	fs.StringVar(&rawURL, "url", "http://127.0.0.1:8080", "base URL of the running walletd")
	fs.StringVar(&cfg.dsn, "db", dsnDefault, "the database walletd uses: SQLite file path or postgres:// URL (WALLET_DB)")
	fs.IntVar(&cfg.wallets, "wallets", 10000, "wallets to open and fund")
	fs.IntVar(&cfg.partners, "partners", 4, "partners to create (1 with --hot)")
	fs.IntVar(&cfg.tsps, "tsps", 3, "TSPs per partner")
	fs.IntVar(&cfg.concurrency, "concurrency", 64, "workers during the run")
	fs.IntVar(&cfg.setupConcurrency, "setup-concurrency", 32, "workers opening and funding wallets")
	fs.DurationVar(&cfg.duration, "duration", 60*time.Second, "length of the run")
	fs.StringVar(&mixSpec, "mix", "full", `operation mix: "full", "payments" or weights such as "payment=70,info=30"`)
	fs.BoolVar(&cfg.hot, "hot", false, "send every payment to one TSP (implies a single partner)")
	fs.BoolVar(&cfg.json, "json", false, "print the result as one JSON object on stdout")
	fs.Uint64Var(&cfg.seed, "seed", 0, "random seed for phones and the workload (0: pick one; the result shows it)")
	fs.IntVar(&cfg.pid, "pid", 0, "walletd's process id, to report its memory and CPU time (Linux /proc)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	var err error
	if cfg.mix, err = parseMix(mixSpec); err != nil {
		return cfg, fmt.Errorf("%w: --mix: %w", errUsage, err)
	}
	partnersSet := false
	fs.Visit(func(f *flag.Flag) { partnersSet = partnersSet || f.Name == "partners" })
	if cfg.hot {
		if partnersSet && cfg.partners != 1 {
			return cfg, fmt.Errorf("%w: --hot runs with a single partner (a TSP takes payments only from its own partner's wallets); drop --partners", errUsage)
		}
		cfg.partners = 1
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"wallets", cfg.wallets}, {"partners", cfg.partners}, {"tsps", cfg.tsps}, {"concurrency", cfg.concurrency}, {"setup-concurrency", cfg.setupConcurrency}} {
		if c.v < 1 {
			return cfg, fmt.Errorf("%w: --%s must be at least 1", errUsage, c.name)
		}
	}
	if cfg.duration <= 0 {
		return cfg, fmt.Errorf("%w: --duration must be positive", errUsage)
	}
	u, err := url.Parse(strings.TrimRight(rawURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("%w: --url must be an http:// or https:// URL", errUsage)
	}
	cfg.url = u
	if cfg.seed == 0 {
		cfg.seed = rand.Uint64N(1<<53) + 1 // fits a JSON number exactly
	}
	return cfg, nil
}

// run is the whole program; main only wires it to the process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	api := newAPIClient(cfg.url, max(cfg.concurrency, cfg.setupConcurrency)+cfg.partners, cfg.seed)
	defer api.close()
	if err := api.ready(ctx); err != nil {
		return fmt.Errorf("walletd at %s is not ready: %w", cfg.url, err)
	}
	db, err := store.Open(ctx, cfg.dsn, store.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}

	res := newResult(cfg, db.Engine())
	// The baseline for checking the ledger against the answers; when it is
	// missing, the report says so.
	fmt.Fprintln(stderr, "baseline: auditing the ledger before the setup")
	baseline, baselineErr := db.Audit(ctx)
	fmt.Fprintf(stderr, "setup: %d partner(s), %d TSP(s) each, %d wallet(s), %d workers\n",
		cfg.partners, cfg.tsps, cfg.wallets, cfg.setupConcurrency)
	fl, setupRec, setupTime, err := setup(ctx, cfg, api, db, stderr)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w during setup", errInterrupted)
		}
		return fmt.Errorf("setup: %w", err)
	}
	res.addSetup(cfg, fl, setupRec, setupTime)

	fmt.Fprintf(stderr, "run: %d workers for %s, mix %s\n", cfg.concurrency, cfg.duration, cfg.mix)
	cpu := startCPU(cfg.pid)
	runRec, runTime := runLoad(ctx, cfg, fl, stderr)
	res.addRun(cfg, fl, runRec, runTime)
	res.addCPU(cpu)
	res.Interrupted = ctx.Err() != nil

	if cfg.pid > 0 {
		res.addMemory(cfg.pid)
	}
	// The audit runs even after a Ctrl-C: a stopped run must still leave correct books.
	auditCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	fmt.Fprintln(stderr, "audit: checking the ledger")
	report, err := db.Audit(auditCtx)
	res.addAudit(report, err)
	res.addAgreement(baseline, baselineErr, report, len(fl.wallets), runRec)
	res.finish()

	if cfg.json {
		err = res.writeJSON(stdout)
	} else {
		err = res.writeText(stdout)
	}
	if err != nil {
		return err
	}
	return res.exitErr()
}

// every writes line() to w at each interval until the returned stop is called.
func every(w io.Writer, interval time.Duration, line func() string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(w, line())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
