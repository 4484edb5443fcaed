package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/store"
)

// result is everything the benchmark reports; --json prints it as is.
type result struct {
	URL              string          `json:"url"`
	DB               string          `json:"db"`
	Engine           string          `json:"engine"`
	Seed             uint64          `json:"seed"`
	Setup            setupResult     `json:"setup"`
	Run              runResult       `json:"run"`
	Memory           *memoryResult   `json:"memory,omitempty"`
	CPU              *cpuResult      `json:"cpu,omitempty"`
	Audit            auditResult     `json:"audit"`
	Agreement        agreementResult `json:"agreement"`
	UnexpectedErrors int64           `json:"unexpectedErrors"`
	Interrupted      bool            `json:"interrupted"`
	Failures         []string        `json:"failures"` // the checks that failed, as the FAIL line says
	Pass             bool            `json:"pass"`     // never after a Ctrl-C: the checks are incomplete
}

type setupResult struct {
	DurationMs    float64    `json:"durationMs"`
	Partners      int        `json:"partners"`
	TSPsEach      int        `json:"tspsPerPartner"`
	Wallets       int        `json:"wallets"`
	WalletsFunded int        `json:"walletsFunded"`
	FundAmount    string     `json:"fundAmount"`
	Requests      []opResult `json:"requests"`
}

type runResult struct {
	DurationMs   float64    `json:"durationMs"`
	Workers      int        `json:"workers"`
	Mix          string     `json:"mix"`
	HotTSP       string     `json:"hotTsp,omitempty"`
	TokensIssued int        `json:"tokensIssued"`
	Operations   []opResult `json:"operations"`
}

// opResult is one line of the tables: an operation, or one request of it.
// Rates and latencies are of the successes alone: quick refusals of spent
// wallets are not throughput.
type opResult struct {
	Name        string        `json:"name"`
	Count       int64         `json:"count"`
	OK          int64         `json:"ok"`
	OKPerSecond float64       `json:"okPerSecond"`
	LatencyMs   latencyResult `json:"latencyMs"`
	Errors      []errorResult `json:"errors"`
	Requests    []opResult    `json:"requests,omitempty"`
}

type latencyResult struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

type errorResult struct {
	Outcome  string `json:"outcome"`
	Count    int64  `json:"count"`
	Expected bool   `json:"expected"`
	Example  string `json:"example"`
}

type memoryResult struct {
	PID   int    `json:"pid"`
	HWMkB int64  `json:"vmHWMkB,omitempty"`
	RSSkB int64  `json:"vmRSSkB,omitempty"`
	Error string `json:"error,omitempty"`
}

// cpuResult is the CPU time walletd and the benchmark itself used during the
// run: figures that travel between machines better than rates do, and show
// how much of a shared machine the load generator took.
type cpuResult struct {
	PID            int     `json:"pid,omitempty"` // walletd's, when given
	WalletdSeconds float64 `json:"walletdSeconds,omitempty"`
	BenchSeconds   float64 `json:"benchSeconds"`
	// Per successful operation (an operation of the run's table: a payment is
	// its initialization and its payment).
	WalletdMsPerOp float64 `json:"walletdMsPerOperation,omitempty"`
	BenchMsPerOp   float64 `json:"benchMsPerOperation"`
	Error          string  `json:"error,omitempty"`
}

type auditResult struct {
	OK         bool     `json:"ok"`
	Summary    string   `json:"summary"`
	Violations []string `json:"violations"`
	Error      string   `json:"error,omitempty"`
}

// agreementResult compares the ledger's growth from before the setup to
// after the run with what walletd's answers said succeeded. The audit proves
// the ledger balances against itself; this, that it holds what the service
// told its clients.
type agreementResult struct {
	Checked    bool          `json:"checked"`
	OK         bool          `json:"ok"`
	NotChecked string        `json:"notChecked,omitempty"` // why, when not checked
	Checks     []amountCheck `json:"checks"`
}

// amountCheck is the growth of one total of the audit.
type amountCheck struct {
	Name     string `json:"name"`     // as in the audit's summary
	Expected string `json:"expected"` // by walletd's answers
	Basis    string `json:"basis"`    // how Expected adds up
	Actual   string `json:"actual"`   // by the ledger
	OK       bool   `json:"ok"`
}

func newResult(cfg config, engine string) *result {
	return &result{URL: cfg.url.String(), DB: redact(cfg.dsn), Engine: engine, Seed: cfg.seed}
}

func (res *result) addSetup(cfg config, fl *fleet, rec *recorder, elapsed time.Duration) {
	res.Setup = setupResult{
		DurationMs: ms(elapsed), Partners: len(fl.partners), TSPsEach: len(fl.partners[0].tsps),
		Wallets: cfg.wallets, WalletsFunded: len(fl.wallets),
		FundAmount: money.Amount(fundKopecks).String(),
	}
	for _, name := range []string{"register", "refill", "confirm"} {
		res.Setup.Requests = append(res.Setup.Requests, opLine(name, rec.get(name), elapsed))
	}
}

func (res *result) addRun(cfg config, fl *fleet, rec *recorder, elapsed time.Duration) {
	res.Run = runResult{
		DurationMs: ms(elapsed), Workers: cfg.concurrency, Mix: cfg.mix.String(),
		HotTSP: fl.hotTSP, TokensIssued: fl.tokensIssued(),
	}
	for _, kind := range cfg.mix.kinds {
		line := opLine(kind.String(), rec.get(kind.String()), elapsed)
		for _, req := range kind.requests() {
			// Judged by the full name: the run's "topup/refill" may be
			// refused where the setup's "refill" may not.
			if s, ok := rec.ops[kind.String()+"/"+req]; ok {
				sub := opLine(kind.String()+"/"+req, s, elapsed)
				sub.Name = req
				line.Requests = append(line.Requests, sub)
			}
		}
		if len(line.Requests) > 0 {
			// An operation of several requests failed where one of them did:
			// a refusal is expected only of the request that may give it.
			for i, e := range line.Errors {
				line.Errors[i].Expected = expectedOfRequests(line.Requests, e.Outcome)
			}
		}
		res.Run.Operations = append(res.Run.Operations, line)
	}
}

// expectedOfRequests reports whether every request that failed with outcome
// may give it.
func expectedOfRequests(requests []opResult, outcome string) bool {
	seen := false
	for _, r := range requests {
		for _, e := range r.Errors {
			if e.Outcome == outcome {
				if !e.Expected {
					return false
				}
				seen = true
			}
		}
	}
	return seen
}

// opLine sums up s, recorded under name (see recorder).
func opLine(name string, s *opStats, elapsed time.Duration) opResult {
	h := &s.latency
	line := opResult{
		Name: name, Count: s.count,
		LatencyMs: latencyResult{
			P50: usToMs(h.quantile(0.50)), P95: usToMs(h.quantile(0.95)), P99: usToMs(h.quantile(0.99)),
			Max: usToMs(h.max), Mean: h.mean() / 1000,
		},
		Errors: []errorResult{},
	}
	for outcome, n := range s.errors {
		line.Errors = append(line.Errors, errorResult{Outcome: outcome, Count: n, Expected: expectedRefusal(name, outcome), Example: s.examples[outcome]})
	}
	slices.SortFunc(line.Errors, func(a, b errorResult) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Outcome, b.Outcome))
	})
	line.OK = s.ok()
	line.OKPerSecond = float64(line.OK) / elapsed.Seconds()
	return line
}

// addMemory reads walletd's peak and current resident memory from /proc.
func (res *result) addMemory(pid int) {
	m := &memoryResult{PID: pid}
	res.Memory = m
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		m.Error = err.Error()
		return
	}
	defer func() { _ = f.Close() }()
	m.HWMkB, m.RSSkB, err = parseProcStatus(f)
	if err != nil {
		m.Error = err.Error()
	}
}

// cpuClock is the unit of /proc/PID/stat's times: USER_HZ, 100 on Linux
// whatever the kernel's own tick.
const cpuClock = 100

// cpuTime returns the user and system CPU time a process has used so far.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(data))
}

// parseProcStat reads utime and stime from a /proc/PID/stat line. The command
// name, in parentheses, may itself hold spaces and parentheses, so the fields
// are counted from the last ")".
func parseProcStat(line string) (time.Duration, error) {
	end := strings.LastIndexByte(line, ')')
	if end < 0 {
		return 0, errors.New("no command name in /proc/PID/stat")
	}
	fields := strings.Fields(line[end+1:])
	const utime, stime = 11, 12 // fields 14 and 15 of the line; fields[0] is field 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("/proc/PID/stat has %d fields after the name", len(fields))
	}
	var ticks int64
	for _, i := range []int{utime, stime} {
		n, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("/proc/PID/stat field %d: %q", i+3, fields[i])
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / cpuClock, nil
}

// cpuMeter measures the CPU time walletd (pid, when known) and this process
// use from startCPU to addCPU.
type cpuMeter struct {
	pid            int
	walletd, bench time.Duration
	err            error
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid}
	m.walletd, m.bench, m.err = m.read()
	return m
}

func (m *cpuMeter) read() (walletd, bench time.Duration, err error) {
	if bench, err = cpuTime(os.Getpid()); err != nil || m.pid <= 0 {
		return 0, bench, err
	}
	walletd, err = cpuTime(m.pid)
	return walletd, bench, err
}

// addCPU reports what walletd and the benchmark used since m started, per
// successful operation of the run.
func (res *result) addCPU(m *cpuMeter) {
	c := &cpuResult{}
	res.CPU = c
	walletd, bench, err := m.read()
	if err = cmp.Or(m.err, err); err != nil {
		c.Error = err.Error()
		return
	}
	var done int64
	for _, op := range res.Run.Operations {
		done += op.OK
	}
	perOp := func(d time.Duration) float64 {
		if done == 0 {
			return 0
		}
		return float64(d.Microseconds()) / 1000 / float64(done)
	}
	c.BenchSeconds, c.BenchMsPerOp = (bench - m.bench).Seconds(), perOp(bench-m.bench)
	if m.pid > 0 {
		c.PID = m.pid
		c.WalletdSeconds, c.WalletdMsPerOp = (walletd - m.walletd).Seconds(), perOp(walletd-m.walletd)
	}
}

// parseProcStatus reads VmHWM and VmRSS (in kB) from a /proc/PID/status file.
func parseProcStatus(r io.Reader) (hwm, rss int64, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", key, err)
		}
		if key == "VmHWM" {
			hwm = n
		} else {
			rss = n
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if hwm == 0 && rss == 0 {
		return 0, 0, fmt.Errorf("no VmHWM or VmRSS (is it a kernel thread?)")
	}
	return hwm, rss, nil
}

func (res *result) addAudit(report store.AuditReport, err error) {
	if err != nil {
		res.Audit = auditResult{Error: err.Error(), Summary: "audit could not run: " + err.Error(), Violations: []string{}}
		return
	}
	res.Audit = auditResult{OK: len(report.Violations) == 0, Summary: report.Summary(), Violations: report.Violations}
	if res.Audit.Violations == nil {
		res.Audit.Violations = []string{}
	}
}

// addAgreement checks the ledger's growth from before (the audit before the
// setup) to after (the audit after the run) against walletd's answers: top-ups
// by the wallets the setup funded and the run's confirmed top-ups, TSPs by the
// run's payments (the mix has no refunds). Payouts are left to the audit's
// conservation: the sandbox may fail a withdrawal after its answer and return
// the money. After a Ctrl-C nothing is compared, as requests in flight may
// have succeeded without their answer being read.
func (res *result) addAgreement(before store.AuditReport, beforeErr error, after store.AuditReport, funded int, run *recorder) {
	a := agreementResult{Checks: []amountCheck{}}
	defer func() { res.Agreement = a }()
	switch {
	case res.Interrupted:
		a.NotChecked = "the run was interrupted, and requests in flight may have succeeded unseen"
		return
	case beforeErr != nil:
		a.NotChecked = "no baseline, the audit before the setup failed: " + beforeErr.Error()
		return
	case res.Audit.Error != "":
		a.NotChecked = "the audit after the run failed"
		return
	}
	topUps, payments := run.get("topup/confirm"), run.get("payment/pay") // empty when the mix had none
	a.Checked, a.OK = true, true
	for _, c := range []struct {
		name          string
		want          int64
		basis         string
		before, after money.Amount
	}{
		{"top-ups", int64(funded)*fundKopecks + topUps.kopecks,
			fmt.Sprintf("%d wallets × %s + %d top-ups × %s", funded, money.Amount(fundKopecks), topUps.ok(), money.Amount(topUpKopecks)),
			before.ToppedUp, after.ToppedUp},
		{"TSPs", payments.kopecks, fmt.Sprintf("%d payments", payments.ok()), before.InTSPs, after.InTSPs},
	} {
		grew := c.after - c.before
		ok := grew == money.Amount(c.want)
		a.OK = a.OK && ok
		a.Checks = append(a.Checks, amountCheck{Name: c.name, Expected: money.Amount(c.want).String(), Basis: c.basis, Actual: grew.String(), OK: ok})
	}
}

// finish counts the unexpected errors and decides the verdict.
func (res *result) finish() {
	count := func(lines []opResult) {
		for _, l := range lines {
			for _, e := range l.Errors {
				if !e.Expected {
					res.UnexpectedErrors += e.Count
				}
			}
		}
	}
	count(res.Setup.Requests)
	count(res.Run.Operations) // each failed operation once, under the request that failed it

	res.Failures = []string{}
	fail := func(format string, a ...any) { res.Failures = append(res.Failures, fmt.Sprintf(format, a...)) }
	switch {
	case res.Audit.Error != "":
		fail("the ledger audit could not run")
	case !res.Audit.OK:
		fail("the ledger audit failed")
	}
	for _, c := range res.Agreement.Checks {
		if !c.OK {
			fail("%s grew by %s, walletd's answers say %s", c.Name, c.Actual, c.Expected)
		}
	}
	// Not comparing is a failure unless the interruption or the audit explains it.
	if !res.Agreement.Checked && !res.Interrupted && res.Audit.Error == "" {
		fail("the ledger was not compared with walletd's answers: %s", res.Agreement.NotChecked)
	}
	if res.UnexpectedErrors > 0 {
		fail("%d unexpected error(s)", res.UnexpectedErrors)
	}
	res.Pass = res.Audit.OK && res.Agreement.OK && res.UnexpectedErrors == 0 && !res.Interrupted
}

// exitErr is run's error once the result is out: a failed check outranks the
// interruption, so that exit status 130 never hides one.
func (res *result) exitErr() error {
	switch {
	case res.Pass:
		return nil
	case res.Interrupted && len(res.Failures) == 0:
		return errInterrupted
	}
	return errFailed
}

func (res *result) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

func (res *result) writeText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }

	p("walletbench against %s, database %s (%s), seed %d\n\n", res.URL, res.DB, res.Engine, res.Seed)

	s := res.Setup
	p("Setup: %s — %d partner(s) with %d TSP(s) each; %d of %d wallets opened and funded with %s\n",
		seconds(s.DurationMs), s.Partners, s.TSPsEach, s.WalletsFunded, s.Wallets, s.FundAmount)
	writeTable(bw, "request", s.Requests)
	writeErrors(bw, s.Requests)

	r := res.Run
	p("\nRun: %s — %d workers, mix %s", seconds(r.DurationMs), r.Workers, r.Mix)
	if r.HotTSP != "" {
		p("; every payment to the hot TSP %s", r.HotTSP)
	}
	p("\n")
	writeTable(bw, "operation", r.Operations)
	writeErrors(bw, r.Operations)
	p("Access tokens issued: %d\n", r.TokensIssued)

	if m := res.Memory; m != nil {
		if m.Error != "" {
			p("\nwalletd memory (pid %d): %s\n", m.PID, m.Error)
		} else {
			p("\nwalletd memory (pid %d): peak VmHWM %s, now VmRSS %s\n", m.PID, mib(m.HWMkB), mib(m.RSSkB))
		}
	}

	if c := res.CPU; c != nil {
		switch {
		case c.Error != "":
			p("\nCPU time: %s\n", c.Error)
		case c.PID > 0:
			p("CPU time during the run: walletd %.1f s (%.3f ms per ok operation), walletbench %.1f s (%.3f ms per ok operation)\n",
				c.WalletdSeconds, c.WalletdMsPerOp, c.BenchSeconds, c.BenchMsPerOp)
		default:
			p("\nCPU time during the run: walletbench %.1f s (%.3f ms per ok operation); --pid adds walletd's\n", c.BenchSeconds, c.BenchMsPerOp)
		}
	}

	p("\nLedger: %s\n", res.Audit.Summary)
	for i, v := range res.Audit.Violations {
		if i == 20 {
			p("  … and %d more (--json lists all)\n", len(res.Audit.Violations)-i)
			break
		}
		p("  VIOLATION: %s\n", v)
	}

	if a := res.Agreement; a.Checked {
		p("Ledger against walletd's answers, growth since before the setup:\n")
		for _, c := range a.Checks {
			verdict := "ok"
			if !c.OK {
				verdict = "MISMATCH"
			}
			p("  %-8s ledger %s, answers %s (%s): %s\n", c.Name, c.Actual, c.Expected, c.Basis, verdict)
		}
	} else {
		p("Ledger against walletd's answers: not checked (%s)\n", a.NotChecked)
	}

	if res.Interrupted {
		p("\nINTERRUPTED: the results cover the run until Ctrl-C, which cannot pass\n")
	}
	if res.Pass {
		p("\nPASS: ledger balanced and matches the answers walletd gave, no unexpected errors\n")
	} else if len(res.Failures) > 0 {
		p("\nFAIL: %s\n", strings.Join(res.Failures, "; "))
	}
	return bw.Flush()
}

func writeTable(w io.Writer, title string, lines []opResult) {
	fmt.Fprintf(w, "  %-14s %9s %9s %9s %9s %9s %9s %9s\n", title, "count", "ok", "ok/s", "p50 ms", "p95 ms", "p99 ms", "max ms")
	var row func(indent string, l opResult)
	row = func(indent string, l opResult) {
		fmt.Fprintf(w, "  %-14s %9d %9d %9.1f %9.2f %9.2f %9.2f %9.2f\n", indent+l.Name, l.Count, l.OK, l.OKPerSecond,
			l.LatencyMs.P50, l.LatencyMs.P95, l.LatencyMs.P99, l.LatencyMs.Max)
		for _, sub := range l.Requests {
			row(indent+"  ", sub)
		}
	}
	var total, ok int64
	var rate float64
	for _, l := range lines {
		row("", l)
		total, ok, rate = total+l.Count, ok+l.OK, rate+l.OKPerSecond
	}
	if len(lines) > 1 {
		fmt.Fprintf(w, "  %-14s %9d %9d %9.1f\n", "total", total, ok, rate)
	}
}

func writeErrors(w io.Writer, lines []opResult) {
	first := true
	for _, l := range lines {
		for _, e := range l.Errors {
			if first {
				fmt.Fprintf(w, "  errors (expected: business refusals of a correct service; UNEXPECTED: anything else)\n")
				first = false
			}
			kind := "UNEXPECTED"
			if e.Expected {
				kind = "expected"
			}
			fmt.Fprintf(w, "    %-12s %-28s %8d  %s\n", l.Name, e.Outcome, e.Count, kind)
			if !e.Expected {
				fmt.Fprintf(w, "      e.g. %s\n", e.Example)
			}
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func usToMs(us int64) float64    { return float64(us) / 1000 }
func seconds(ms float64) string  { return fmt.Sprintf("%.2fs", ms/1000) }
func mib(kB int64) string        { return fmt.Sprintf("%.1f MiB", float64(kB)/1024) }
