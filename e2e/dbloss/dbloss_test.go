package dbloss

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/client"
	"github.com/perspektiva/walletd/e2e/procs"
	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/store/storetest"
)

func TestMain(m *testing.M) { procs.Main(m) }

const (
	walletCount  = 10
	workerCount  = 8
	terminations = 5
	// gap is about the time between two terminations, and the load's time
	// before the first.
	gap = time.Second
	// loadAfter keeps the load on after the last termination.
	loadAfter = 1500 * time.Millisecond
	// recoverWithin bounds, from the last termination, when /readyz must
	// answer 200 and a new payment must succeed.
	recoverWithin = 2 * time.Second
	// funding is each wallet's one top-up. The wallets are IDENTIFIED
	// (balance limit 600 000.00, no monthly limits) and the load spends far
	// less, so no payment is refused on purpose and any refusal is a fault.
	funding = money.Amount(500_000_00)
	// drainMax bounds how long the workers may take, once no new payment
	// starts, to get a final answer for the ones in flight. It stays above
	// httpapi's lease of an Idempotency-Key claim (10 s), so that a claim
	// walletd failed to release shows as such (below) rather than as a
	// payment without an answer.
	drainMax = 25 * time.Second
)

// errDrained is the cause of the end of the workers' context: requests cut
// off by it are the test's doing, not walletd's.
var errDrained = errors.New("the drain time is over")

// TestDatabaseConnectionLoss terminates walletd's PostgreSQL connections
// under load and checks what the partner saw, the money, and the recovery.
func TestDatabaseConnectionLoss(t *testing.T) {
	began := time.Now()
	dsn := storetest.PostgresDSN(t) // skips without PostgreSQL
	partner := procs.CreatePartner(t, dsn, "DB-loss partner")
	tsp := procs.CreateTSP(t, dsn, partner.PartnerID, "DB-loss TSP")

	// walletd's connections carry an application name of their own, so the
	// terminations hit them and nothing else: the test's database is a
	// schema in a database other tests may be using at the same time.
	app, serveDSN := storetest.WithApplicationName(t, dsn)
	// The wallets are funded through the sandbox, off by default on PostgreSQL.
	p := procs.Start(t, procs.Options{Name: "walletd", DSN: serveDSN, Env: map[string]string{"WALLET_SANDBOX": "true"}})
	db := procs.OpenDB(t, dsn)

	rec := &recorder{base: http.DefaultTransport}
	l := &load{
		t:        t,
		c:        procs.NewClient(t, p.URL(), partner.Credentials(), rec, 2),
		tsp:      tsp,
		byAmount: map[money.Amount]*payment{},
		problems: procs.NewProblems(30),
	}
	// The probe makes one attempt per call, so it sees the first success.
	probe := procs.NewClient(t, p.URL(), partner.Credentials(), rec, 0)
	readyz := func() int {
		hc := &http.Client{Transport: rec, Timeout: 5 * time.Second}
		resp, err := hc.Get(p.URL() + "/readyz")
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	l.fund(walletCount)
	setup := time.Since(began)

	ctx, drain := context.WithCancelCause(context.Background())
	defer drain(nil)
	var wg sync.WaitGroup
	for range workerCount {
		wg.Go(func() { l.worker(ctx) })
	}

	// The loss: every backend of walletd terminated, about gap apart.
	loadStart := time.Now()
	var (
		killed   []int
		firstErr error
		first    time.Time
		last     time.Time
	)
	for i := range terminations {
		time.Sleep(gap - 200*time.Millisecond + mrand.N(400*time.Millisecond))
		at := time.Now()
		tctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, err := storetest.TerminateBackends(tctx, db, app, 0)
		cancel()
		if err != nil {
			firstErr = err
			break
		}
		if i == 0 {
			first = at
		}
		last = time.Now()
		killed = append(killed, n)
	}
	if firstErr != nil {
		l.stop.Store(true)
		drain(errDrained)
		wg.Wait()
		t.Fatalf("terminate walletd's connections: %v", firstErr)
	}

	// (3) Recovery, with the load still on: /readyz, and a new payment.
	readyAfter, paidAfter := l.recovery(ctx, probe, readyz, last)
	if d := time.Until(last.Add(loadAfter)); d > 0 {
		time.Sleep(d)
	}
	l.stop.Store(true)
	loadTime := time.Since(loadStart)
	drainTimer := time.AfterFunc(drainMax, func() { drain(errDrained) })
	wg.Wait()
	l.settleLeft(ctx)
	drainTimer.Stop()
	drained := time.Since(loadStart) - loadTime

	for i, n := range killed {
		if n == 0 {
			t.Errorf("termination %d found no backend of walletd (application_name %s): the test proved nothing", i+1, app)
		}
	}
	switch {
	case readyAfter < 0:
		t.Errorf("/readyz did not answer 200 within %s of the last termination", 4*recoverWithin)
	case readyAfter > recoverWithin:
		t.Errorf("/readyz answered 200 only %.2fs after the last termination, want within %s", readyAfter.Seconds(), recoverWithin)
	}
	switch {
	case paidAfter < 0:
		t.Errorf("no new payment succeeded within %s of the last termination", 4*recoverWithin)
	case paidAfter > recoverWithin:
		t.Errorf("the first new payment succeeded only %.2fs after the last termination, want within %s", paidAfter.Seconds(), recoverWithin)
	}

	// The checks have a context of their own: the workers' may have ended.
	vctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// With the load over, a payment on every wallet succeeds at the first
	// attempt, without a restart of walletd.
	for _, w := range l.wallets {
		if err := l.onePayment(vctx, probe, w); err != nil {
			t.Errorf("a payment after the load, in one attempt: %v", err)
		}
	}
	l.settleLeft(vctx) // those that failed: reported above, not again as unanswered
	if st := readyz(); st != http.StatusOK {
		t.Errorf("/readyz after the load: %d, want 200", st)
	}
	if n := p.Starts(); n != 1 {
		t.Errorf("walletd was started %d times, want 1", n)
	}

	// (1) Every answer walletd gave.
	answers := rec.all()
	recovered := last.Add(recoverWithin)
	if readyAfter >= 0 && paidAfter >= 0 {
		recovered = last.Add(max(readyAfter, paidAfter))
	}
	phases := judgeAll(t, answers, first, recovered)
	// Once recovered, walletd answers as if nothing had happened: a request
	// sent then meets no closed connection it cannot replace, and no COMMIT
	// of it can be lost, since the terminations are over.
	late := 0
	for _, a := range answers {
		if a.sent.After(recovered) && a.status == http.StatusServiceUnavailable {
			late++
		}
	}
	if late > 0 {
		t.Errorf("%d requests sent after walletd recovered were answered 503 (%s)", late, phases[2])
	}

	l.problems.Report(t)

	// (2) and (4) The money, as the database and the API show it.
	ops := l.checkLedger(db)
	l.checkAPI(vctx, ops)
	retried, slowest := l.checkRetries(vctx, answers)

	if err := p.Stop(30 * time.Second); err != nil {
		t.Errorf("graceful stop after the connection loss: %v", err)
	}
	// What walletd's log says of it: internal errors (the answers above fail
	// the test for those a partner saw), and claims of an Idempotency-Key
	// that could not be finished or released. Those hold the key for the
	// whole lease and so hold up the partner's retry of a 503: the server
	// was up all along, so there must be none.
	var (
		logErrors, keysHeld int
		firstHeld           string
	)
	for line := range strings.Lines(p.LogTail(1 << 20)) {
		switch {
		case strings.Contains(line, `"level":"ERROR"`):
			logErrors++
		case strings.Contains(line, `"msg":"idempotency record"`):
			if keysHeld == 0 {
				firstHeld = "; the first: " + strings.TrimSpace(line)
			}
			keysHeld++
		}
	}
	if keysHeld > 0 {
		t.Errorf("walletd could not finish or release %d Idempotency-Key claims%s", keysHeld, firstHeld)
	}
	out := procs.Audit(t, dsn, "after the connection loss")

	acked, unresolved := 0, 0
	for _, pay := range l.pays {
		switch {
		case pay.opID != uuid.Nil:
			acked++
		case !pay.final:
			unresolved++
		}
	}
	if unresolved > 0 {
		t.Errorf("%d payments had no final answer %s after the load's end", unresolved, drainMax)
	}
	t.Logf("%d terminations %.1fs apart on average, backends terminated: %v; %.1fs of load, in-flight work settled %.1fs after it",
		len(killed), last.Sub(first).Seconds()/float64(max(len(killed)-1, 1)), killed, loadTime.Seconds(), drained.Seconds())
	t.Logf("after the last termination: /readyz 200 after %.2fs, a new payment after %.2fs (bound %s)",
		readyAfter.Seconds(), paidAfter.Seconds(), recoverWithin)
	t.Logf("answers (attempts by HTTP status) before the first termination: %s; from it to the recovery after the last: %s; after the recovery: %s",
		phases[0], phases[1], phases[2])
	t.Logf("%d payments: %d answered as made, %d without a final answer; %d calls made again by the test after the SDK's retries; "+
		"%d payments sent more than once under their Idempotency-Key",
		len(l.pays), acked, unresolved, l.repeats.Load(), retried)
	t.Logf("the payment longest to its final answer took %s", slowest)
	t.Logf("walletd logged %d errors, and %d Idempotency-Key claims it could not finish or release%s", logErrors, keysHeld, firstHeld)
	t.Logf("%s; setup %.1fs, total %.1fs", out, setup.Seconds(), time.Since(began).Seconds())
}

// answer is one HTTP attempt, as the partner's side saw it.
type answer struct {
	sent   time.Time
	at     time.Time
	method string
	path   string
	key    string // Idempotency-Key
	status int    // 0: no answer
	body   []byte
	err    error
	cutOff bool // ended by the test (the drain), not by walletd
}

// recorder is the SDK's transport: it keeps every attempt, the SDK's own
// retries included, with its raw status and body.
type recorder struct {
	base    http.RoundTripper
	mu      sync.Mutex
	answers []answer
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	a := answer{sent: time.Now(), method: req.Method, path: req.URL.Path, key: req.Header.Get("Idempotency-Key")}
	resp, err := r.base.RoundTrip(req)
	if err == nil {
		a.status = resp.StatusCode
		a.body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(a.body))
	}
	a.at, a.err = time.Now(), err
	a.cutOff = err != nil && errors.Is(context.Cause(req.Context()), errDrained)
	r.mu.Lock()
	r.answers = append(r.answers, a)
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (r *recorder) all() []answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.answers)
}

// leaks are what no error answer may show: SQL, the driver, Go internals.
var leaks = []string{
	"SQLSTATE", "pgconn", "pgx", "terminating connection", "administrator command", "sql:", "database/sql",
	"driver:", "goroutine", "panic", "runtime error", "unexpected EOF", "connection reset", "broken pipe",
	"dial tcp", "context deadline", "context canceled",
}

// judge says what is wrong with an answer, or "" when it is a success or the
// protocol's 503 UNAVAILABLE. No payment is refused on purpose, so no other
// refusal is allowed either.
func judge(a answer) string {
	if a.err != nil {
		return "no answer: " + a.err.Error()
	}
	if a.status >= 200 && a.status <= 299 {
		// Not searched for leaks: a random access token may spell one.
		return ""
	}
	for _, s := range leaks {
		if bytes.Contains(a.body, []byte(s)) {
			return fmt.Sprintf("HTTP %d whose body shows %q", a.status, s)
		}
	}
	var body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(a.body, &body) != nil || body.Code == "" || body.Message == "" {
		return fmt.Sprintf("HTTP %d without the protocol's error body", a.status)
	}
	if a.status == http.StatusServiceUnavailable && body.Code == client.CodeUnavailable {
		return ""
	}
	return fmt.Sprintf("HTTP %d %s, neither a success nor 503 UNAVAILABLE", a.status, body.Code)
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// judgeAll fails the test for every wrong answer (a few shown in full, the
// rest counted by kind) and returns the answers counted by status before
// from, between from and to, and after to.
func judgeAll(t *testing.T, answers []answer, from, to time.Time) [3]string {
	t.Helper()
	var (
		counts [3]map[string]int
		faults = map[string]int{}
		shown  int
	)
	for i := range counts {
		counts[i] = map[string]int{}
	}
	for _, a := range answers {
		if a.cutOff {
			continue
		}
		phase := 1
		switch {
		case a.at.Before(from):
			phase = 0
		case a.at.After(to):
			phase = 2
		}
		status := fmt.Sprint(a.status)
		if a.err != nil {
			status = "none"
		}
		counts[phase][status]++
		fault := judge(a)
		if fault == "" {
			continue
		}
		kind := fmt.Sprintf("%s %s: %s", a.method, uuidRE.ReplaceAllString(a.path, "{id}"), fault)
		faults[kind]++
		if shown < 10 {
			shown++
			t.Errorf("%s %s (%.2fs after the first termination): %s; body: %s",
				a.method, a.path, a.at.Sub(from).Seconds(), fault, bytes.TrimSpace(a.body))
		}
	}
	kinds := make([]string, 0, len(faults))
	for k := range faults {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Errorf("%d× %s", faults[k], k)
	}
	var out [3]string
	for i, c := range counts {
		var parts []string
		for s, n := range c {
			parts = append(parts, fmt.Sprintf("%d×%s", n, s))
		}
		sort.Strings(parts)
		out[i] = strings.Join(parts, " ")
	}
	return out
}

// payment is one payment the test meant to make, with an amount no other
// payment has, so every PAYMENT operation maps back to the one payment that
// caused it.
type payment struct {
	wallet uuid.UUID
	token  uuid.UUID
	key    string // the Idempotency-Key of every attempt
	amount money.Amount

	final bool      // a final answer came
	opID  uuid.UUID // the success's operation
}

// load is the state of the run.
type load struct {
	t       *testing.T
	c       *client.Client
	tsp     uuid.UUID
	wallets []uuid.UUID

	stop    atomic.Bool
	seq     atomic.Int64
	repeats atomic.Int64 // calls made again after an unknown outcome

	problems *procs.Problems

	mu       sync.Mutex
	pays     []*payment
	byAmount map[money.Amount]*payment
	left     []*payment // the probe's payments without a final answer
}

// fund opens n IDENTIFIED wallets, each topped up once through the sandbox.
func (l *load) fund(n int) {
	t, ctx := l.t, context.Background()
	for i := range n {
		w, err := l.c.Register(ctx, fmt.Sprintf("94%08d", i), client.Identified)
		if err != nil {
			t.Fatalf("register: %v", err)
		}
		r, err := l.c.Refill(ctx, w.WalletID, funding)
		if err != nil {
			t.Fatalf("refill: %v", err)
		}
		res, err := l.c.SandboxConfirm(ctx, r.Payload)
		if err != nil || res.Status != client.StatusSuccess {
			t.Fatalf("confirm: %s %v", res.Status, err)
		}
		l.wallets = append(l.wallets, w.WalletID)
	}
}

func (l *load) newPayment(w, token uuid.UUID) *payment {
	p := &payment{wallet: w, token: token, key: "dbloss-" + uuid.NewString(), amount: 10_00 + money.Amount(l.seq.Add(1))}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pays = append(l.pays, p)
	l.byAmount[p.amount] = p
	return p
}

// settle makes an SDK call until it has a final answer (procs.Settle); a POST
// carries the same Idempotency-Key in ctx. final is false when ctx ended first.
func (l *load) settle(ctx context.Context, fn func(ctx context.Context) error) (final bool, err error) {
	again := func() time.Duration {
		l.repeats.Add(1)
		return 50 * time.Millisecond
	}
	return procs.Settle(ctx, again, nil, fn)
}

// worker pays from random wallets until stop, each payment to its final
// answer, and reads between payments as a partner would.
func (l *load) worker(ctx context.Context) {
	var mine []*payment // this worker's payments answered as made
	for i := 0; !l.stop.Load() && ctx.Err() == nil; i++ {
		w := l.wallets[mrand.N(len(l.wallets))]
		if i%4 == 3 {
			l.read(ctx, w, mine)
			continue
		}
		if p := l.pay(ctx, w); p != nil {
			mine = append(mine, p)
		}
	}
}

// pay initializes and makes one payment from w.
func (l *load) pay(ctx context.Context, w uuid.UUID) *payment {
	var tok client.PaymentToken
	final, err := l.settle(ctx, func(ctx context.Context) error {
		var err error
		tok, err = l.c.InitPayment(ctx, w)
		return err
	})
	if !final {
		return nil
	}
	if err != nil {
		l.problems.Add("payment initialization on wallet %s refused: %v", w, err)
		return nil
	}
	p := l.newPayment(w, tok.Token)
	var res client.Payment
	final, err = l.settle(client.ContextWithIdempotencyKey(ctx, p.key), func(ctx context.Context) error {
		var err error
		res, err = l.c.Pay(ctx, client.PaymentRequest{WalletID: w, Token: tok.Token, Amount: p.amount, TSP: l.tsp})
		return err
	})
	if !final {
		return nil
	}
	p.final = true
	if err != nil {
		l.problems.Add("payment of %s from wallet %s refused: %v", p.amount, w, err)
		return nil
	}
	p.opID = res.OperationID
	if res.Amount != p.amount || res.Status != client.StatusSuccess || res.Token != tok.Token || res.WalletID != w {
		l.problems.Add("payment of %s with token %s answered %s %s with token %s", p.amount, tok.Token, res.Amount, res.Status, res.Token)
	}
	return p
}

// read asks for a wallet's data and for one of the worker's payments.
func (l *load) read(ctx context.Context, w uuid.UUID, mine []*payment) {
	var info client.WalletInfo
	if final, err := l.settle(ctx, func(ctx context.Context) error {
		var err error
		info, err = l.c.Info(ctx, w)
		return err
	}); final && (err != nil || info.WalletID != w) {
		l.problems.Add("info of wallet %s: %v (answered wallet %s)", w, err, info.WalletID)
	}
	if len(mine) == 0 {
		return
	}
	p := mine[mrand.N(len(mine))]
	if wrong := l.readBack(ctx, p); wrong != "" {
		l.problems.Add("payment %s of %s %s", p.opID, p.amount, wrong)
	}
}

// readBack reads an answered payment through the API and says how it reads
// when that is not as made ("" when it is, or when the read got no final answer).
func (l *load) readBack(ctx context.Context, p *payment) string {
	var op client.Operation
	final, err := l.settle(ctx, func(ctx context.Context) error {
		var err error
		op, err = l.c.Operation(ctx, p.wallet, p.opID)
		return err
	})
	if !final || (err == nil && op.Status == client.StatusSuccess && op.Amount == p.amount) {
		return ""
	}
	return fmt.Sprintf("reads as %s %s (%v)", op.Status, op.Amount, err)
}

// onePayment makes a new payment from w with c, each call in one attempt
// when c makes no retries. A payment left without a final answer is settled
// later by settleLeft.
func (l *load) onePayment(ctx context.Context, c *client.Client, w uuid.UUID) error {
	tok, err := c.InitPayment(ctx, w)
	if err != nil {
		return fmt.Errorf("initialization: %w", err)
	}
	p := l.newPayment(w, tok.Token)
	res, err := c.Pay(client.ContextWithIdempotencyKey(ctx, p.key), client.PaymentRequest{WalletID: w, Token: tok.Token, Amount: p.amount, TSP: l.tsp})
	if err != nil {
		l.mu.Lock()
		l.left = append(l.left, p)
		l.mu.Unlock()
		return fmt.Errorf("payment: %w", err)
	}
	p.final, p.opID = true, res.OperationID
	return nil
}

// recovery returns how long after since /readyz first answered 200 and a new
// payment, in one attempt per call, first succeeded; -1 for what did not
// happen within 4·recoverWithin.
func (l *load) recovery(ctx context.Context, probe *client.Client, readyz func() int, since time.Time) (ready, paid time.Duration) {
	ready, paid = -1, -1
	for time.Since(since) < 4*recoverWithin && (ready < 0 || paid < 0) {
		if ready < 0 && readyz() == http.StatusOK {
			ready = time.Since(since)
		}
		if paid < 0 && l.onePayment(ctx, probe, l.wallets[0]) == nil {
			paid = time.Since(since)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ready, paid
}

// settleLeft makes the probe's unanswered payments again under their
// Idempotency-Keys, to their final answers.
func (l *load) settleLeft(ctx context.Context) {
	l.mu.Lock()
	left := l.left
	l.mu.Unlock()
	for _, p := range left {
		if p.final {
			continue // settled by an earlier call
		}
		var res client.Payment
		final, err := l.settle(client.ContextWithIdempotencyKey(ctx, p.key), func(ctx context.Context) error {
			var err error
			res, err = l.c.Pay(ctx, client.PaymentRequest{WalletID: p.wallet, Token: p.token, Amount: p.amount, TSP: l.tsp})
			return err
		})
		switch {
		case !final:
		case err != nil:
			p.final = true
			l.problems.Add("payment of %s from wallet %s, made again, refused: %v", p.amount, p.wallet, err)
		default:
			p.final, p.opID = true, res.OperationID
		}
	}
}

// ledgerOp is a PAYMENT operation as the database holds it.
type ledgerOp struct {
	id, wallet    uuid.UUID
	amount        money.Amount
	status, token string
	txs, outcomes int
}

// checkLedger reads every PAYMENT operation from the database and checks
// each against the payment that caused it: one operation per payment, none
// for a payment nobody made, one ledger transaction and one outcome event
// each. It returns the operations by payment.
func (l *load) checkLedger(db *sql.DB) map[*payment]ledgerOp {
	t := l.t
	rows, err := db.Query(`SELECT o.id, o.wallet_id, o.amount, o.status, COALESCE(o.payment_token::text, ''),
			(SELECT COUNT(*) FROM ledger_transactions x WHERE x.operation_id = o.id),
			(SELECT COUNT(*) FROM webhook_events e WHERE e.operation_id = o.id)
		FROM operations o WHERE o.type = 'PAYMENT'`)
	if err != nil {
		t.Fatalf("read the payments: %v", err)
	}
	defer rows.Close()
	found := map[*payment][]ledgerOp{}
	for rows.Next() {
		var op ledgerOp
		if err := rows.Scan(&op.id, &op.wallet, &op.amount, &op.status, &op.token, &op.txs, &op.outcomes); err != nil {
			t.Fatal(err)
		}
		p := l.byAmount[op.amount]
		if p == nil || p.wallet != op.wallet {
			t.Errorf("payment %s of %s from wallet %s was made, but no request asked for it", op.id, op.amount, op.wallet)
			continue
		}
		found[p] = append(found[p], op)
		if op.token != p.token.String() {
			t.Errorf("payment %s of %s carries token %s, but was asked for with %s", op.id, op.amount, op.token, p.token)
		}
		if op.status != string(client.StatusSuccess) || op.txs != 1 || op.outcomes != 1 {
			t.Errorf("payment %s of %s: status %s, %d ledger transactions, %d outcome events; want SUCCESS, 1, 1",
				op.id, op.amount, op.status, op.txs, op.outcomes)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	ops := map[*payment]ledgerOp{}
	for _, p := range l.pays {
		got := found[p]
		switch {
		case len(got) > 1:
			t.Errorf("DOUBLED: payment of %s from wallet %s (Idempotency-Key %s) made %d operations", p.amount, p.wallet, p.key, len(got))
		case len(got) == 1 && p.final && p.opID == uuid.Nil:
			t.Errorf("payment of %s from wallet %s was refused, yet operation %s exists", p.amount, p.wallet, got[0].id)
		case len(got) == 0 && p.opID != uuid.Nil:
			t.Errorf("LOST: payment of %s from wallet %s was answered as operation %s, which does not exist", p.amount, p.wallet, p.opID)
		case len(got) == 1 && p.opID != uuid.Nil && got[0].id != p.opID:
			t.Errorf("payment of %s was answered as operation %s, but the database has %s", p.amount, p.opID, got[0].id)
		}
		if len(got) > 0 {
			ops[p] = got[0]
		}
	}
	return ops
}

// checkAPI checks what the partner reads: each wallet's report holds its
// top-up and exactly the payments the database holds, and its balance is
// the top-up less those payments.
func (l *load) checkAPI(ctx context.Context, ops map[*payment]ledgerOp) {
	t := l.t
	want := map[uuid.UUID]money.Amount{}
	count := map[uuid.UUID]int{}
	for p, op := range ops {
		want[p.wallet] += op.amount
		count[p.wallet]++
	}
	for _, w := range l.wallets {
		all, err := procs.ReadReport(func(page int) (rp client.ReportPage, err error) {
			// Settle ends without a final answer only with an error.
			_, err = l.settle(ctx, func(ctx context.Context) error {
				var err error
				rp, err = l.c.Report(ctx, w, client.ReportQuery{Page: page, Size: 100})
				return err
			})
			return rp, err
		})
		if err != nil {
			t.Fatalf("report of wallet %s: %v", w, err)
		}
		seen := map[uuid.UUID]bool{}
		var credits, paid money.Amount
		payments := 0
		for _, op := range all {
			if seen[op.ID] {
				t.Errorf("wallet %s: operation %s twice in the report", w, op.ID)
			}
			seen[op.ID] = true
			switch {
			case op.Type == client.OperationCredit && op.Status == client.StatusSuccess:
				credits += op.Amount
			case op.Type == client.OperationPayment && op.Status == client.StatusSuccess:
				paid += op.Amount
				payments++
				if p := l.byAmount[op.Amount]; p == nil || ops[p].id != op.ID {
					t.Errorf("wallet %s: the report has payment %s of %s that the database does not", w, op.ID, op.Amount)
				}
			default:
				t.Errorf("wallet %s: unexpected %s %s %s in the report", w, op.Type, op.Status, op.ID)
			}
		}
		if credits != funding || paid != want[w] || payments != count[w] {
			t.Errorf("wallet %s: the report has top-ups of %s and %d payments of %s in all; the database has %s and %d payments of %s",
				w, credits, payments, paid, funding, count[w], want[w])
		}
		var info client.WalletInfo
		final, err := l.settle(ctx, func(ctx context.Context) error {
			var err error
			info, err = l.c.Info(ctx, w)
			return err
		})
		if !final || err != nil {
			t.Fatalf("info of wallet %s: %v", w, err)
		}
		if info.Balance != funding-want[w] {
			t.Errorf("wallet %s: balance %s, want %s (top-up %s less payments of %s)", w, info.Balance, funding-want[w], funding, want[w])
		}
	}
}

// checkRetries looks at every attempt of every payment: each carried its
// payment's Idempotency-Key, and every success answered for one key named
// the same operation, the one the payment was answered as. A payment sent
// more than once is read once more through the API. It returns how many
// payments were sent more than once, and the attempts of the one that took
// longest to its final answer.
func (l *load) checkRetries(ctx context.Context, answers []answer) (int, string) {
	t := l.t
	byKey := map[string]*payment{}
	for _, p := range l.pays {
		byKey[p.key] = p
	}
	attempts := map[*payment][]answer{}
	for _, a := range answers {
		if a.method != http.MethodPost || !strings.HasSuffix(a.path, "/payment") {
			continue
		}
		p := byKey[a.key]
		if p == nil {
			t.Errorf("POST %s sent with Idempotency-Key %q, which no payment has", a.path, a.key)
			continue
		}
		attempts[p] = append(attempts[p], a)
		if a.status < 200 || a.status > 299 {
			continue
		}
		var res struct {
			OperationID uuid.UUID `json:"operationId"`
		}
		if err := json.Unmarshal(a.body, &res); err != nil || res.OperationID != p.opID {
			t.Errorf("DOUBLED? payment of %s (Idempotency-Key %s) was answered with operation %s on one attempt, and as %s in the end",
				p.amount, p.key, res.OperationID, p.opID)
		}
	}
	var (
		retried int
		slowest []answer
	)
	for p, as := range attempts {
		if span(as) > span(slowest) {
			slowest = as
		}
		if len(as) < 2 {
			continue
		}
		retried++
		if p.opID == uuid.Nil {
			continue
		}
		if wrong := l.readBack(ctx, p); wrong != "" {
			t.Errorf("payment %s of %s, sent %d times: %s", p.opID, p.amount, len(as), wrong)
		}
	}
	var steps []string
	for _, a := range slowest {
		steps = append(steps, fmt.Sprintf("sent at +%.2fs, answered %d after %.2fs",
			a.sent.Sub(slowest[0].sent).Seconds(), a.status, a.at.Sub(a.sent).Seconds()))
	}
	return retried, fmt.Sprintf("%.2fs: %s", span(slowest).Seconds(), strings.Join(steps, "; "))
}

// span is the time from the first attempt's sending to the last one's answer.
func span(as []answer) time.Duration {
	if len(as) == 0 {
		return 0
	}
	return as[len(as)-1].at.Sub(as[0].sent)
}
