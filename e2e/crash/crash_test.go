package crash

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/client"
	"github.com/perspektiva/walletd/e2e/procs"
	"github.com/perspektiva/walletd/jobs"
	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/store/storetest"
)

func TestMain(m *testing.M) { procs.Main(m) }

const (
	walletCount = 20
	workerCount = 8
	// kills is how many times the process is killed with SIGKILL; one more
	// restart is a graceful SIGTERM under load.
	kills = 6
	// gracefulAt is the restart that is a SIGTERM (1-based, among kills+1).
	// The first: later, requests cut off by a kill wait for their claims of
	// an Idempotency-Key, and a graceful shutdown waits for them.
	gracefulAt = 1

	payoutDelay = 300 * time.Millisecond
	topUpTTL    = 2 * time.Second

	// loadAfterLastRestart keeps the load on the last incarnation a little.
	loadAfterLastRestart = time.Second
	// drainMax bounds how long the workers may take to settle the operations
	// they had in flight once no new ones start. A request cut off by a kill
	// after it claimed its Idempotency-Key is answered again only when that
	// claim's lease has passed (httpapi's idempotencyLease, 10 s), so this is
	// well above that.
	drainMax = 40 * time.Second
	// resumeWithin is when, after the last restart, background work due
	// before then must be done: top-up expiries and payouts resumed. Work
	// held by the lease of a killed process has its own, often earlier,
	// bound: the lease's end plus leaseSlack. For the rest, the restarted
	// runner claims due work within a poll, but it claims again only once
	// the whole batch in hand is done, and a job may run up to two thirds of
	// the lease (jobs.Runner.run), so resumeWithin is the bound.
	resumeWithin = 10 * time.Second
	// dueGrace is how long past its due time work not held by a lease may
	// still be PENDING when it comes due too late for resumeWithin to cover.
	dueGrace = 2 * time.Second
	// runAllowance is how long a job, once it may be claimed and the runner
	// has looked, may take to be claimed and run to the end.
	runAllowance = 2 * time.Second
	// finishWithin bounds, after the last kill, the wait for every operation
	// to be final, whatever held it up.
	finishWithin = 45 * time.Second
)

// TestCrashSafety runs a mixed load against walletd, kills it at random moments
// and restarts it on the same database and address, then checks that every
// acknowledged operation is there as acknowledged, that nothing was applied
// twice, that the books balance, and that pending work finished.
func TestCrashSafety(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		crashSafety(t, e)
	})
}

// kind is what a worker meant to do.
type kind int

const (
	topUpConfirmed kind = iota // refill, then the sandbox confirmation
	topUpLeft                  // refill left unconfirmed: it must expire
	payment
	refund
	withdrawal
	kinds
)

var kindNames = [...]string{"top-up", "top-up left to expire", "payment", "refund", "withdrawal"}

func (k kind) String() string { return kindNames[k] }

// opType is the type of the operation the intent creates.
func (k kind) opType() client.OperationType {
	switch k {
	case topUpConfirmed, topUpLeft:
		return client.OperationCredit
	case payment:
		return client.OperationPayment
	case refund:
		return client.OperationRefund
	}
	return client.OperationDebit
}

// weights of the kinds in the load.
var weights = [kinds]int{topUpConfirmed: 25, topUpLeft: 10, payment: 35, refund: 10, withdrawal: 20}

type outcome int

const (
	unresolved outcome = iota // no final answer: the operation may or may not exist
	acked                     // answered 200: the operation must exist, once
	refused                   // answered 4xx: no operation may exist
)

// intent is one operation a worker asked for, with a unique amount among the
// operations of its type, so every operation in a report maps back to the one
// intent that caused it (a second operation for an intent is a doubled one).
type intent struct {
	kind   kind
	wallet uuid.UUID
	key    string // the Idempotency-Key of every attempt
	amount money.Amount
	token  uuid.UUID // payment token (refunds: the payment's)

	outcome outcome
	opID    uuid.UUID
	refusal string
	confirm client.OperationStatus // top-ups: what the confirmation answered
}

// wantStatus returns the final statuses the intent's operation may have.
func (in *intent) wantStatus() []client.OperationStatus {
	switch in.kind {
	case topUpConfirmed:
		if in.outcome == acked && in.confirm != "" {
			return []client.OperationStatus{in.confirm}
		}
		if in.outcome == acked {
			return []client.OperationStatus{client.StatusSuccess, client.StatusFailed, client.StatusExpired}
		}
		// The refill's answer was lost, so it was never confirmed.
		return []client.OperationStatus{client.StatusExpired}
	case topUpLeft:
		return []client.OperationStatus{client.StatusExpired}
	case withdrawal:
		if in.amount%100 == 13 {
			return []client.OperationStatus{client.StatusFailed}
		}
	}
	return []client.OperationStatus{client.StatusSuccess}
}

// leaseSlack is how long after a job's lease ends its operation may stay
// PENDING: walletd's runner (its defaults, as serve uses them) looks for due
// work every Poll, then claims and runs the job.
const leaseSlack = jobs.DefaultPoll + runAllowance

type opKey struct {
	typ    client.OperationType
	amount money.Amount
}

// load is the state of one crash run.
type load struct {
	t       *testing.T
	c       *client.Client
	tsp     uuid.UUID
	bank    string
	wallets []uuid.UUID

	stop    atomic.Bool // no new intents
	seq     [kinds]atomic.Int64
	retries atomic.Int64 // calls made again after an unknown outcome
	answers [600]atomic.Int64

	problems *procs.Problems

	mu      sync.Mutex
	intents []*intent
	byKey   map[opKey]*intent
}

// newIntent registers an intent with the next unique amount of its kind.
func (l *load) newIntent(k kind, w uuid.UUID, amount money.Amount) *intent {
	in := &intent{kind: k, wallet: w, key: "crash-" + uuid.NewString(), amount: amount}
	l.mu.Lock()
	defer l.mu.Unlock()
	key := opKey{k.opType(), amount}
	if l.byKey[key] != nil {
		panic(fmt.Sprintf("amount %s of %s used twice by the test", amount, k.opType()))
	}
	l.byKey[key] = in
	l.intents = append(l.intents, in)
	return in
}

// call makes one SDK call until it has a final answer (procs.Settle), each
// attempt after an unknown outcome with the same Idempotency-Key, and counts
// the answers. final is false when ctx ended first.
func (l *load) call(ctx context.Context, key string, fn func(ctx context.Context) error) (final bool, err error) {
	if key != "" {
		ctx = client.ContextWithIdempotencyKey(ctx, key)
	}
	again := func() time.Duration {
		l.retries.Add(1)
		return 50*time.Millisecond + rand.N(100*time.Millisecond)
	}
	return procs.Settle(ctx, again, l.count, fn)
}

// count records an answer by its status; a 500 is a problem (the call is
// still made again, as a partner would).
func (l *load) count(err error) {
	var ae *client.Error
	switch {
	case err == nil:
		l.answers[200].Add(1)
	case errors.As(err, &ae) && ae.Status < len(l.answers):
		l.answers[ae.Status].Add(1)
		if ae.Status == http.StatusInternalServerError {
			l.problems.Add("500 answer (the call is made again): %v", err)
		}
	}
}

// settle records a final answer of the call that creates in's operation.
func (l *load) settle(in *intent, err error, opID uuid.UUID, allowed ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		in.outcome, in.opID = acked, opID
		return
	}
	in.outcome, in.refusal = refused, client.ErrorCode(err)
	if !slices.Contains(allowed, in.refusal) {
		l.problems.Add("%s of %s on wallet %s refused unexpectedly: %v", in.kind, in.amount, in.wallet, err)
	}
}

func crashSafety(t *testing.T, e storetest.Engine) {
	began := time.Now()
	dsn := e.DSN(t)
	partner := procs.CreatePartner(t, dsn, "Crash partner")
	tsp := procs.CreateTSP(t, dsn, partner.PartnerID, "Crash TSP")
	p := procs.Start(t, procs.Options{Name: "walletd-" + e.Name, DSN: dsn, Env: map[string]string{
		"WALLET_SANDBOX":              "true", // top-ups are confirmed through it; off by default on PostgreSQL
		"WALLET_SANDBOX_PAYOUT_DELAY": payoutDelay.String(),
		"WALLET_TOPUP_TTL":            topUpTTL.String(),
	}})
	ctx := context.Background()
	l := &load{t: t, c: procs.NewClient(t, p.URL(), partner.Credentials(), nil, 2), tsp: tsp, byKey: map[opKey]*intent{},
		problems: procs.NewProblems(50)}

	banks, err := l.c.Banks(ctx)
	if err != nil || len(banks) == 0 {
		t.Fatalf("banks: %v (%d)", err, len(banks))
	}
	l.bank = banks[0].Identifier

	// Wallets at PERSONALIZED (withdrawals allowed), each funded with one
	// confirmed top-up before the chaos starts.
	for i := range walletCount {
		w, err := l.c.Register(ctx, fmt.Sprintf("95%08d", i), client.Personalized)
		if err != nil {
			t.Fatalf("register: %v", err)
		}
		l.wallets = append(l.wallets, w.WalletID)
		in := l.newIntent(topUpConfirmed, w.WalletID, 20_000_00+money.Amount(i))
		r, err := l.c.Refill(client.ContextWithIdempotencyKey(ctx, in.key), w.WalletID, in.amount)
		if err != nil {
			t.Fatalf("refill: %v", err)
		}
		res, err := l.c.SandboxConfirm(ctx, r.Payload)
		if err != nil || res.Status != client.StatusSuccess {
			t.Fatalf("confirm: %v %v", res.Status, err)
		}
		in.outcome, in.opID, in.confirm = acked, r.OperationID, res.Status
	}
	setup := time.Since(began)

	// The load: workers run until stop, then settle what they have in flight
	// until drainCtx ends.
	drainCtx, drainCancel := context.WithCancel(ctx)
	defer drainCancel()
	var wg sync.WaitGroup
	for range workerCount {
		wg.Go(func() { l.worker(drainCtx) })
	}

	// The chaos: SIGKILL at random moments (one graceful SIGTERM among them),
	// each followed by a restart on the same database and address.
	db := procs.OpenDB(t, dsn)
	var (
		killed, stopped int
		downtime        time.Duration
		chaosErr        error
		lastDown        time.Time
		leases          map[string]time.Time // before the last restart
	)
	loadStart := time.Now()
	for i := 1; i <= kills+1; i++ {
		time.Sleep(time.Second + rand.N(2*time.Second))
		down := time.Now()
		lastDown = down
		if i == gracefulAt {
			if err := p.Stop(30 * time.Second); err != nil {
				chaosErr = fmt.Errorf("graceful stop under load: %w", err)
				break
			}
			stopped++
		} else {
			if err := p.Kill(); err != nil {
				chaosErr = fmt.Errorf("kill: %w", err)
				break
			}
			killed++
		}
		time.Sleep(rand.N(400 * time.Millisecond))
		if i == kills+1 {
			// No walletd runs: every lease still ahead was taken by a
			// process that is gone.
			leases = heldLeases(t, db)
		}
		if err := p.Restart(); err != nil {
			chaosErr = err
			break
		}
		downtime += time.Since(down)
	}
	lastRestart := time.Now()
	if chaosErr != nil {
		drainCancel()
		wg.Wait()
		t.Fatal(chaosErr)
	}

	// (d) Background work resumed: expiries and payouts whose jobs a killed
	// process held are done once the lease ends (plus leaseSlack), and the
	// rest due by then resumeWithin after the last restart (the workers are
	// still settling requests cut off by the kills meanwhile).
	watched := make(chan resumed, 1)
	go func() { watched <- watchResumed(t, db, lastRestart, leases) }()

	time.Sleep(loadAfterLastRestart)
	l.stop.Store(true)
	loadTime := time.Since(loadStart)
	drainTimer := time.AfterFunc(drainMax, drainCancel)
	bg := <-watched

	wg.Wait()
	drainTimer.Stop()
	drained := time.Since(lastRestart)

	// ...and in the end every operation is final.
	reports, pendingLeft := l.waitNoPending(ctx, max(5*time.Second, time.Until(lastDown.Add(finishWithin))))
	settled := time.Since(lastRestart)
	if len(pendingLeft) > 0 {
		explainPending(t, dsn, pendingLeft)
	}

	// (a) and (b): every acknowledged operation is there as acknowledged;
	// every operation belongs to exactly one intent; balances add up.
	verified := l.verify(ctx, reports)

	l.problems.Report(t)

	// Exactly one outcome event per finished operation (a job or request
	// applied twice would write two).
	outcomeEvents(t, dsn)

	// The end: a graceful stop, and the operator's audit.
	if err := p.Stop(30 * time.Second); err != nil {
		t.Errorf("final graceful stop: %v", err)
	}
	out := procs.Audit(t, dsn, "after the crashes")

	counts := map[outcome]int{}
	perKind := map[kind]int{}
	for _, in := range l.intents {
		counts[in.outcome]++
		if in.outcome == acked {
			perKind[in.kind]++
		}
	}
	var answers []string
	for code := range l.answers {
		if n := l.answers[code].Load(); n > 0 {
			answers = append(answers, fmt.Sprintf("%d×%d", n, code))
		}
	}
	t.Logf("%s: survived %d SIGKILLs and %d graceful restart(s) in %.1fs of load (down %.1fs in all); %d process starts",
		e.Name, killed, stopped, loadTime.Seconds(), downtime.Seconds(), p.Starts())
	t.Logf("%s: %d intents: %d acknowledged, %d refused, %d without a final answer; %d acknowledged operations verified "+
		"(top-ups %d, left to expire %d, payments %d, refunds %d, withdrawals %d)",
		e.Name, len(l.intents), counts[acked], counts[refused], counts[unresolved], verified,
		perKind[topUpConfirmed], perKind[topUpLeft], perKind[payment], perKind[refund], perKind[withdrawal])
	t.Logf("%s: answers %s; %d calls repeated after an unknown outcome; in-flight work settled %.1fs and all operations final %.1fs after the last restart; setup %.1fs, total %.1fs",
		e.Name, strings.Join(answers, " "), l.retries.Load(), drained.Seconds(), settled.Seconds(), setup.Seconds(), time.Since(began).Seconds())
	switch {
	case bg.leased > 0 && bg.leasedFinal == 0:
		t.Logf("%s: %d expiries or payouts waited for the lease of a killed process: the last lease ended %.1fs after "+
			"the last restart, and some were still PENDING %.1fs after it (bound: lease end + %s)",
			e.Name, bg.leased, bg.leaseEnd.Seconds(), time.Since(lastRestart).Seconds(), leaseSlack)
	case bg.leased > 0:
		t.Logf("%s: %d expiries or payouts waited for the lease of a killed process: the last lease ended %.1fs after "+
			"the last restart, and all of them were final %.1fs after it (bound: lease end + %s)",
			e.Name, bg.leased, bg.leaseEnd.Seconds(), bg.leasedFinal.Seconds(), leaseSlack)
	default:
		t.Logf("%s: no expiry or payout waited for the lease of a killed process", e.Name)
	}
	if bg.caughtUp > 0 {
		t.Logf("%s: %d expiries or payouts due before the last restart were PENDING after it, and none %.1fs after it",
			e.Name, bg.backlog, bg.caughtUp.Seconds())
	} else {
		t.Logf("%s: %d expiries or payouts due before the last restart were PENDING after it, and some still were %.1fs after it",
			e.Name, bg.backlog, time.Since(lastRestart).Seconds())
	}
	t.Logf("%s: %d expiries or payouts PENDING past their bound (held by a lease: lease end + %s; otherwise %s after the "+
		"last restart, or %s after coming due); all operations final %.1fs after the last restart",
		e.Name, bg.late, leaseSlack, resumeWithin, dueGrace, settled.Seconds())
	t.Logf("%s: %s", e.Name, out)
}

// worker makes intents until stop, each to its final answer (or until ctx ends).
func (l *load) worker(ctx context.Context) {
	total := 0
	for _, w := range weights {
		total += w
	}
	var payments []*intent // this worker's acknowledged payments, not refunded yet
	for !l.stop.Load() && ctx.Err() == nil {
		n := rand.N(total)
		k := kind(0)
		for ; n >= weights[k]; k++ {
			n -= weights[k]
		}
		w := l.wallets[rand.N(len(l.wallets))]
		switch k {
		case topUpConfirmed, topUpLeft:
			l.topUp(ctx, k, w)
		case payment:
			if in := l.pay(ctx, w); in != nil {
				payments = append(payments, in)
			}
		case refund:
			if len(payments) == 0 {
				continue
			}
			i := rand.N(len(payments))
			pay := payments[i]
			payments = slices.Delete(payments, i, i+1)
			l.refund(ctx, pay)
		case withdrawal:
			l.withdraw(ctx, w)
		}
	}
}

func (l *load) topUp(ctx context.Context, k kind, w uuid.UUID) {
	in := l.newIntent(k, w, 1000_00+money.Amount(l.seq[topUpConfirmed].Add(1)))
	var r client.Refill
	final, err := l.call(ctx, in.key, func(ctx context.Context) error {
		var err error
		r, err = l.c.Refill(ctx, w, in.amount)
		return err
	})
	if !final {
		return
	}
	l.settle(in, err, r.OperationID, client.CodeLimitExceeded)
	if err != nil {
		return
	}
	if r.Amount != in.amount {
		l.problems.Add("refill of %s answered amount %s", in.amount, r.Amount)
	}
	if k == topUpLeft {
		return
	}
	var res client.SandboxResult
	final, err = l.call(ctx, "", func(ctx context.Context) error {
		var err error
		res, err = l.c.SandboxConfirm(ctx, r.Payload)
		return err
	})
	switch {
	case !final:
	case err != nil:
		l.problems.Add("confirmation of top-up %s refused: %v", r.OperationID, err)
	case res.OperationID != r.OperationID:
		l.problems.Add("confirmation of top-up %s answered operation %s", r.OperationID, res.OperationID)
	default:
		l.mu.Lock()
		in.confirm = res.Status
		l.mu.Unlock()
	}
}

func (l *load) pay(ctx context.Context, w uuid.UUID) *intent {
	var tok client.PaymentToken
	final, err := l.call(ctx, "", func(ctx context.Context) error {
		var err error
		tok, err = l.c.InitPayment(ctx, w)
		return err
	})
	if !final {
		return nil
	}
	if err != nil {
		l.problems.Add("payment initialization refused: %v", err)
		return nil
	}
	in := l.newIntent(payment, w, 50_00+money.Amount(l.seq[payment].Add(1)))
	in.token = tok.Token
	var res client.Payment
	final, err = l.call(ctx, in.key, func(ctx context.Context) error {
		var err error
		res, err = l.c.Pay(ctx, client.PaymentRequest{WalletID: w, Token: tok.Token, Amount: in.amount, TSP: l.tsp})
		return err
	})
	if !final {
		return nil
	}
	l.settle(in, err, res.OperationID, client.CodeInsufficientFunds, client.CodeLimitExceeded)
	if err != nil {
		return nil
	}
	if res.Amount != in.amount || res.Status != client.StatusSuccess {
		l.problems.Add("payment of %s answered %s %s", in.amount, res.Amount, res.Status)
	}
	return in
}

func (l *load) refund(ctx context.Context, pay *intent) {
	in := l.newIntent(refund, pay.wallet, pay.amount-1_00)
	in.token = pay.token
	var res client.Refund
	final, err := l.call(ctx, in.key, func(ctx context.Context) error {
		var err error
		res, err = l.c.Refund(ctx, pay.wallet, pay.token, &in.amount)
		return err
	})
	if !final {
		return
	}
	l.settle(in, err, res.OperationID, client.CodeLimitExceeded)
	if err == nil && (res.Amount != in.amount || res.Status != client.StatusSuccess) {
		l.problems.Add("refund of %s answered %s %s", in.amount, res.Amount, res.Status)
	}
}

func (l *load) withdraw(ctx context.Context, w uuid.UUID) {
	kop := money.Amount(50)
	if rand.N(3) == 0 {
		kop = 13 // the sandbox fails these payouts
	}
	in := l.newIntent(withdrawal, w, (100+money.Amount(l.seq[withdrawal].Add(1)))*100+kop)
	var res client.Withdrawal
	final, err := l.call(ctx, in.key, func(ctx context.Context) error {
		var err error
		res, err = l.c.Withdraw(ctx, w, l.bank, in.amount)
		return err
	})
	if !final {
		return
	}
	l.settle(in, err, res.OperationID, client.CodeInsufficientFunds, client.CodeLimitExceeded)
	if err == nil && res.Amount != in.amount {
		l.problems.Add("withdrawal of %s answered amount %s", in.amount, res.Amount)
	}
}

// report reads all of a wallet's operations.
func (l *load) report(ctx context.Context, w uuid.UUID) ([]client.Operation, error) {
	all, err := procs.ReadReport(func(page int) (rp client.ReportPage, err error) {
		// Settle ends without a final answer only with an error.
		_, err = l.call(ctx, "", func(ctx context.Context) error {
			var err error
			rp, err = l.c.Report(ctx, w, client.ReportQuery{Page: page, Size: 100})
			return err
		})
		return rp, err
	})
	if err != nil {
		return nil, fmt.Errorf("report of %s: %w", w, err)
	}
	return all, nil
}

// waitNoPending reads every wallet's report until none has a PENDING
// operation, or within has passed; it returns the last reports and the
// operations still PENDING.
func (l *load) waitNoPending(ctx context.Context, within time.Duration) (map[uuid.UUID][]client.Operation, []client.Operation) {
	deadline := time.Now().Add(within)
	for {
		reports := map[uuid.UUID][]client.Operation{}
		var pending []client.Operation
		for _, w := range l.wallets {
			ops, err := l.report(ctx, w)
			if err != nil {
				l.t.Fatal(err)
			}
			reports[w] = ops
			for _, op := range ops {
				if op.Status == client.StatusPending {
					pending = append(pending, op)
				}
			}
		}
		if len(pending) == 0 || time.Now().After(deadline) {
			return reports, pending
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// heldLeases returns, while no walletd runs, the operations still PENDING
// whose expiry or payout job is under a lease that has not ended: a process
// killed since claimed it, and no process may claim it again before the lease
// ends (store.JobStore.Claim). The map is by operation id, with the lease's end.
func heldLeases(t *testing.T, db *sql.DB) map[string]time.Time {
	t.Helper()
	leases := map[string]time.Time{}
	rows, err := db.Query(`SELECT o.id, j.lease_until FROM operations o
		JOIN jobs j ON j.ref_id = o.id AND j.kind <> 'webhook'
		WHERE o.status = 'PENDING' AND j.done_at IS NULL AND j.lease_until > $1`, time.Now().UnixMicro())
	if err != nil {
		t.Errorf("read the leases of the killed process: %v", err)
		return leases
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id    string
			until int64
		)
		if err := rows.Scan(&id, &until); err != nil {
			t.Error(err)
			return leases
		}
		leases[id] = time.UnixMicro(until)
	}
	if err := rows.Err(); err != nil {
		t.Error(err)
	}
	return leases
}

// resumed is what watchResumed saw of the background work after the last
// restart; the times are since the last restart.
type resumed struct {
	leased      int           // operations whose job a killed process held under lease
	leaseEnd    time.Duration // when the last of those leases ended
	leasedFinal time.Duration // when all of those operations were final
	backlog     int           // operations PENDING, due before the last restart, when the watch began
	caughtUp    time.Duration // when no operation due before the last restart was PENDING
	late        int           // operations PENDING past their bound
}

// watchResumed watches the background work after the last restart until every
// bound below has passed, and fails the test for each expiry or payout still
// PENDING past its bound:
//   - one whose job was under the lease of a killed process (leases, by
//     operation id): the lease's end plus leaseSlack, and not before the
//     restart plus leaseSlack, since no process ran before;
//   - any other: resumeWithin after the last restart, or dueGrace after it
//     came due if that is later.
//
// An overdue operation without a job, or with a job marked done, fails the
// test too.
func watchResumed(t *testing.T, db *sql.DB, lastRestart time.Time, leases map[string]time.Time) resumed {
	r := resumed{leased: len(leases)}
	end := lastRestart.Add(resumeWithin)
	for _, until := range leases {
		r.leaseEnd = max(r.leaseEnd, until.Sub(lastRestart))
		end = later(end, leaseBound(until, lastRestart))
	}
	reported, first := map[string]bool{}, true
	const show = 10 // the first few say enough
	for {
		now := time.Now()
		pending, err := pendingWork(db)
		if err != nil {
			t.Errorf("read pending operations: %v", err)
			return r
		}
		waiting, behind := 0, 0
		for _, op := range pending {
			until, held := leases[op.id]
			if held {
				waiting++
			}
			if op.due.Before(lastRestart) {
				behind++
			}
			bound := later(lastRestart.Add(resumeWithin), op.due.Add(dueGrace))
			if held {
				bound = leaseBound(later(until, op.due), lastRestart)
			}
			if reported[op.id] || now.Before(bound) {
				continue
			}
			reported[op.id] = true
			r.late++
			if r.late > show {
				continue
			}
			what := fmt.Sprintf("%s %s %s (due %.1fs after the last restart)", op.typ, money.Amount(op.amount), op.id,
				op.due.Sub(lastRestart).Seconds())
			lease := "not leased"
			if !op.leaseUntil.IsZero() {
				lease = fmt.Sprintf("leased until %.1fs", op.leaseUntil.Sub(lastRestart).Seconds())
			}
			job := fmt.Sprintf("its %s job (times after the last restart) has been claimed %d time(s), runs at %.1fs, %s, last error %q",
				op.kind, op.attempts, op.runAt.Sub(lastRestart).Seconds(), lease, op.lastError)
			switch {
			case op.kind == "":
				t.Errorf("%s is PENDING and has no background job", what)
			case op.done:
				t.Errorf("%s is PENDING but its %s job is done", what, op.kind)
			case held:
				t.Errorf("%s is still PENDING %.1fs after the last restart: its job was under the lease of a killed process "+
					"until %.1fs after the last restart, and must be done %s after that lease ended; %s",
					what, now.Sub(lastRestart).Seconds(), until.Sub(lastRestart).Seconds(), leaseSlack, job)
			default:
				t.Errorf("%s is still PENDING %.1fs after the last restart: background work must resume within %s "+
					"of the last restart and be done %s after it comes due; %s",
					what, now.Sub(lastRestart).Seconds(), resumeWithin, dueGrace, job)
			}
		}
		if first {
			r.backlog, first = behind, false
		}
		if waiting == 0 && r.leased > 0 && r.leasedFinal == 0 {
			r.leasedFinal = now.Sub(lastRestart)
		}
		if behind == 0 && r.caughtUp == 0 {
			r.caughtUp = now.Sub(lastRestart)
		}
		if now.After(end) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r.late > show {
		t.Errorf("...and %d more expiries or payouts PENDING past their bound", r.late-show)
	}
	return r
}

// leaseBound is when an operation whose job was under a lease until until must
// be done: once the lease ends, the restarted runner looks within a poll and
// runs the job.
func leaseBound(until, lastRestart time.Time) time.Time {
	return later(until, lastRestart).Add(leaseSlack)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pendingOp is a PENDING operation with its expiry or payout job.
type pendingOp struct {
	id, typ, kind, lastError string
	amount                   int64
	due                      time.Time // when the expiry or payout is due
	runAt, leaseUntil        time.Time // the job's; leaseUntil is zero when not leased
	attempts                 int
	done                     bool
}

// pendingWork reads the PENDING operations and their expiry or payout jobs.
func pendingWork(db *sql.DB) ([]pendingOp, error) {
	rows, err := db.Query(`SELECT o.id, o.type, o.amount, o.created_at, COALESCE(o.expires_at, 0),
			COALESCE(j.kind, ''), COALESCE(j.run_at, 0), COALESCE(j.lease_until, 0), COALESCE(j.attempts, 0), COALESCE(j.last_error, ''), j.done_at
		FROM operations o LEFT JOIN jobs j ON j.ref_id = o.id AND j.kind <> 'webhook'
		WHERE o.status = 'PENDING'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ops []pendingOp
	for rows.Next() {
		var (
			op                                  pendingOp
			created, expires, runAt, leaseUntil int64
			doneAt                              sql.NullInt64
		)
		if err := rows.Scan(&op.id, &op.typ, &op.amount, &created, &expires, &op.kind, &runAt, &leaseUntil,
			&op.attempts, &op.lastError, &doneAt); err != nil {
			return nil, err
		}
		op.due = time.UnixMicro(expires)
		if op.typ == string(client.OperationDebit) {
			op.due = time.UnixMicro(created).Add(payoutDelay)
		}
		op.runAt, op.done = time.UnixMicro(runAt), doneAt.Valid
		if leaseUntil != 0 {
			op.leaseUntil = time.UnixMicro(leaseUntil)
		}
		ops = append(ops, op)
	}
	return ops, rows.Err()
}

// explainPending fails the test for operations still PENDING at the end,
// with what their background jobs look like.
func explainPending(t *testing.T, dsn string, pending []client.Operation) {
	t.Helper()
	db := procs.OpenDB(t, dsn)
	now := time.Now()
	for _, op := range pending {
		var (
			kind, lastError string
			runAt           int64
			doneAt          sql.NullInt64
			attempts        int
		)
		err := db.QueryRow(`SELECT kind, run_at, attempts, last_error, done_at FROM jobs WHERE ref_id = $1 AND kind <> 'webhook'`,
			op.ID).Scan(&kind, &runAt, &attempts, &lastError, &doneAt)
		if err != nil {
			t.Errorf("%s %s %s is still PENDING, and its job cannot be read: %v", op.Type, op.Amount, op.ID, err)
			continue
		}
		t.Errorf("%s %s %s is still PENDING %s after the last kill: job %s attempts %d, due in %.1fs, done %v, last error %q",
			op.Type, op.Amount, op.ID, finishWithin, kind, attempts, time.UnixMicro(runAt).Sub(now).Seconds(), doneAt.Valid, lastError)
	}
}

// verify checks the acknowledged intents against the API and the reports
// against the intents; it returns how many acknowledged operations it verified.
func (l *load) verify(ctx context.Context, reports map[uuid.UUID][]client.Operation) int {
	t := l.t
	// The workers are done: l.intents and l.byKey no longer change.

	// Every operation in a report belongs to exactly one intent of its wallet.
	found := map[*intent][]client.Operation{}
	for w, ops := range reports {
		var balance money.Amount
		for _, op := range ops {
			in := l.byKey[opKey{op.Type, op.Amount}]
			if in == nil || in.wallet != w {
				t.Errorf("wallet %s has %s %s %s (%s) that no request asked for", w, op.Type, op.Amount, op.ID, op.Status)
				continue
			}
			found[in] = append(found[in], op)
			switch {
			case op.Status != client.StatusSuccess && (op.Type != client.OperationDebit || op.Status != client.StatusPending):
			case op.Type == client.OperationCredit || op.Type == client.OperationRefund:
				balance += op.Amount
			default:
				balance -= op.Amount
			}
		}
		var info client.WalletInfo
		_, err := l.call(ctx, "", func(ctx context.Context) error {
			var err error
			info, err = l.c.Info(ctx, w)
			return err
		})
		if err != nil {
			t.Fatalf("info %s: %v", w, err)
		}
		if info.Balance != balance {
			t.Errorf("wallet %s: balance %s, but its report adds up to %s", w, info.Balance, balance)
		}
	}

	verified := 0
	for _, in := range l.intents {
		ops := found[in]
		if len(ops) > 1 {
			ids := make([]string, len(ops))
			for i, op := range ops {
				ids[i] = op.ID.String() + " " + string(op.Status)
			}
			t.Errorf("DOUBLED: %s of %s on wallet %s (Idempotency-Key %s, %s) made %d operations: %s",
				in.kind, in.amount, in.wallet, in.key, outcomeName(in.outcome), len(ops), strings.Join(ids, ", "))
		}
		switch in.outcome {
		case refused:
			if len(ops) > 0 {
				t.Errorf("%s of %s on wallet %s was refused (%s) but operation %s exists", in.kind, in.amount, in.wallet, in.refusal, ops[0].ID)
			}
			continue
		case unresolved:
			for _, op := range ops {
				if !slices.Contains(in.wantStatus(), op.Status) {
					t.Errorf("%s of %s on wallet %s (answer lost) ended %s, want one of %v", in.kind, in.amount, in.wallet, op.Status, in.wantStatus())
				}
			}
			continue
		}
		if len(ops) == 0 {
			t.Errorf("LOST: %s of %s on wallet %s was acknowledged as operation %s but is not in the report", in.kind, in.amount, in.wallet, in.opID)
		} else if ops[0].ID != in.opID {
			t.Errorf("%s of %s on wallet %s was acknowledged as operation %s but the report has %s", in.kind, in.amount, in.wallet, in.opID, ops[0].ID)
		}
		// The operation itself, as GET /operation shows it.
		var op client.Operation
		final, err := l.call(ctx, "", func(ctx context.Context) error {
			var err error
			op, err = l.c.Operation(ctx, in.wallet, in.opID)
			return err
		})
		switch {
		case !final:
			t.Fatalf("operation %s: %v", in.opID, err)
		case client.IsCode(err, client.CodeOperationNotFound):
			t.Errorf("LOST: %s of %s on wallet %s was acknowledged as operation %s, which is not found", in.kind, in.amount, in.wallet, in.opID)
			continue
		case err != nil:
			t.Errorf("operation %s: %v", in.opID, err)
			continue
		}
		if op.Type != in.kind.opType() || op.Amount != in.amount {
			t.Errorf("operation %s was acknowledged as %s %s but is %s %s", in.opID, in.kind.opType(), in.amount, op.Type, op.Amount)
		}
		if !slices.Contains(in.wantStatus(), op.Status) {
			t.Errorf("%s %s of %s on wallet %s ended %s, want one of %v", in.kind, in.opID, in.amount, in.wallet, op.Status, in.wantStatus())
		}
		verified++
	}
	return verified
}

func outcomeName(o outcome) string {
	return [...]string{"answer lost", "acknowledged", "refused"}[o]
}

// outcomeEvents checks that every operation has exactly one outcome event in
// the webhook outbox (written in the same transaction as the outcome).
func outcomeEvents(t *testing.T, dsn string) {
	t.Helper()
	db := procs.OpenDB(t, dsn)
	rows, err := db.Query(`SELECT o.id, o.type, o.status, COUNT(e.id) FROM operations o
		LEFT JOIN webhook_events e ON e.operation_id = o.id
		GROUP BY o.id, o.type, o.status HAVING COUNT(e.id) <> CASE WHEN o.status = 'PENDING' THEN 0 ELSE 1 END`)
	if err != nil {
		t.Errorf("read the webhook outbox: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, typ, status string
			n               int
		)
		if err := rows.Scan(&id, &typ, &status, &n); err != nil {
			t.Error(err)
			return
		}
		t.Errorf("operation %s (%s, %s) has %d outcome events, want one per finished operation", id, typ, status, n)
	}
	if err := rows.Err(); err != nil {
		t.Error(err)
	}
}
