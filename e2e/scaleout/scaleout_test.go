package scaleout

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
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
	payoutDelay = 300 * time.Millisecond
	topUpTTL    = time.Second
	// settleWithin bounds the wait for payouts and expiries.
	settleWithin = 15 * time.Second
)

// cluster is two walletd processes on one database, used in turn.
type cluster struct {
	t       *testing.T
	dsn     string
	procs   [2]*procs.Process
	clients [2]*client.Client
	tsp     uuid.UUID
	bank    string
	phone   int
}

// node returns the client of node i%2.
func (c *cluster) node(i int) *client.Client { return c.clients[i%2] }

// TestTwoNodesOnePostgres runs two walletd processes on one PostgreSQL
// database and alternates requests between them.
func TestTwoNodesOnePostgres(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skip(storetest.PostgresEnv + " is not set")
	}
	began := time.Now()
	dsn := storetest.PostgresDSN(t)

	// Both nodes migrate an empty database at the same moment.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { _, errs[i] = procs.Command(t, dsn, "migrate") })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}

	partner := procs.CreatePartner(t, dsn, "Scale-out partner")
	c := &cluster{t: t, dsn: dsn, tsp: procs.CreateTSP(t, dsn, partner.PartnerID, "Scale-out TSP")}
	env := map[string]string{
		"WALLET_SANDBOX":              "true", // off by default on PostgreSQL; the nodes confirm top-ups through it
		"WALLET_SANDBOX_PAYOUT_DELAY": payoutDelay.String(),
		"WALLET_TOPUP_TTL":            topUpTTL.String(),
	}
	for i, name := range []string{"node-a", "node-b"} {
		c.procs[i] = procs.Start(t, procs.Options{Name: name, DSN: dsn, Env: env})
		c.clients[i] = procs.NewClient(t, c.procs[i].URL(), partner.Credentials(), nil, 2)
	}
	banks, err := c.node(0).Banks(context.Background())
	if err != nil || len(banks) == 0 {
		t.Fatalf("banks: %v (%d)", err, len(banks))
	}
	c.bank = banks[0].Identifier

	t.Run("no double spend", c.noDoubleSpend)
	t.Run("no limit overrun", c.noLimitOverrun)
	t.Run("background work once", c.backgroundOnce)
	t.Run("one Idempotency-Key on both nodes", c.sharedKeys)

	// The end: both nodes stop gracefully, and the books balance.
	for i, p := range c.procs {
		if err := p.Stop(30 * time.Second); err != nil {
			t.Errorf("stop node %d: %v", i, err)
		}
	}
	out := procs.Audit(t, dsn, "after the scale-out run")
	t.Logf("%s; %.1fs", out, time.Since(began).Seconds())
}

// wallet registers a PERSONALIZED wallet on one node and funds it with a
// top-up made on that node and confirmed through the other one's sandbox.
func (c *cluster) wallet(t *testing.T, funds money.Amount) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	c.phone++
	w, err := c.node(c.phone).Register(ctx, fmt.Sprintf("96%08d", c.phone), client.Personalized)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if funds == 0 {
		return w.WalletID
	}
	r, err := c.node(c.phone).Refill(ctx, w.WalletID, funds)
	if err != nil {
		t.Fatalf("refill: %v", err)
	}
	res, err := c.node(c.phone+1).SandboxConfirm(ctx, c.onNode(t, r.Payload, c.phone+1))
	if err != nil || res.Status != client.StatusSuccess {
		t.Fatalf("confirm on the other node: %s %v", res.Status, err)
	}
	return w.WalletID
}

// onNode points a sandbox payment link at node i.
func (c *cluster) onNode(t *testing.T, payload string, i int) string {
	t.Helper()
	u, err := url.Parse(payload)
	if err != nil {
		t.Fatalf("payload %q: %v", payload, err)
	}
	node, _ := url.Parse(c.procs[i%2].URL())
	u.Host = node.Host
	return u.String()
}

// balance reads a wallet's balance on both nodes; they must agree.
func (c *cluster) balance(t *testing.T, w uuid.UUID) money.Amount {
	t.Helper()
	var got [2]money.Amount
	for i := range 2 {
		info, err := c.node(i).Info(context.Background(), w)
		if err != nil {
			t.Fatalf("info on node %d: %v", i, err)
		}
		got[i] = info.Balance
	}
	if got[0] != got[1] {
		t.Errorf("wallet %s: balance %s on one node, %s on the other", w, got[0], got[1])
	}
	return got[0]
}

// payAll makes n payments of amount from w at once, each token issued by one
// node and spent on the other; it counts the answers by error code ("" for success).
func (c *cluster) payAll(t *testing.T, w uuid.UUID, n int, amount money.Amount) map[string]int {
	t.Helper()
	ctx := context.Background()
	tokens := make([]uuid.UUID, n)
	for i := range n {
		tok, err := c.node(i).InitPayment(ctx, w)
		if err != nil {
			t.Fatalf("init payment: %v", err)
		}
		tokens[i] = tok.Token
	}
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
		start  = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := c.node(i+1).Pay(ctx, client.PaymentRequest{WalletID: w, Token: tokens[i], Amount: amount, TSP: c.tsp})
			code := client.ErrorCode(err)
			if err != nil && code == "" {
				code = err.Error()
			}
			mu.Lock()
			counts[code]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return counts
}

// operations reads a wallet's report on node i.
func (c *cluster) operations(t *testing.T, i int, w uuid.UUID) []client.Operation {
	t.Helper()
	rp, err := c.node(i).Report(context.Background(), w, client.ReportQuery{Size: 100})
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	if rp.TotalElements > len(rp.Content) {
		t.Fatalf("report: %d operations, more than a page", rp.TotalElements)
	}
	return rp.Content
}

func countOps(ops []client.Operation, typ client.OperationType, status client.OperationStatus) int {
	n := 0
	for _, op := range ops {
		if op.Type == typ && op.Status == status {
			n++
		}
	}
	return n
}

// noDoubleSpend: 40 payments of 100.00 from a wallet of 1 000.00, across the nodes.
func (c *cluster) noDoubleSpend(t *testing.T) {
	w := c.wallet(t, 1_000_00)
	counts := c.payAll(t, w, 40, 100_00)
	if counts[""] != 10 || counts[client.CodeInsufficientFunds] != 30 {
		t.Errorf("40 payments of 100.00 from 1 000.00 on two nodes: %v; want 10 successes and 30 INSUFFICIENT_FUNDS", counts)
	}
	if b := c.balance(t, w); b != 0 {
		t.Errorf("balance %s, want 0.00", b)
	}
	if n := countOps(c.operations(t, 1, w), client.OperationPayment, client.StatusSuccess); n != 10 {
		t.Errorf("the report has %d payments, want 10", n)
	}
	t.Logf("40 parallel payments of 100.00 from 1 000.00 over two nodes: %v", counts)
}

// noLimitOverrun: a partner's monthly PAYMENT limit of 1 000.00 and 30
// payments of 100.00 across the nodes.
func (c *cluster) noLimitOverrun(t *testing.T) {
	ctx := context.Background()
	w := c.wallet(t, 5_000_00)
	_, err := c.node(1).SetLimits(ctx, w, client.LimitsUpdate{OperationLimits: map[client.OperationType]client.OperationLimitUpdate{
		client.OperationPayment: {MonthLimit: client.SetLimit(1_000_00)},
	}})
	if err != nil {
		t.Fatalf("set limits: %v", err)
	}
	// The other node sees the new limit at once.
	lim, err := c.node(0).Limits(ctx, w)
	if err != nil {
		t.Fatalf("limits: %v", err)
	}
	if m := lim.OperationLimits[client.OperationPayment].MonthLimit; m == nil || *m != 1_000_00 {
		t.Fatalf("the other node shows PAYMENT.monthLimit %v, want 1000.00", m)
	}
	counts := c.payAll(t, w, 30, 100_00)
	if counts[""] != 10 || counts[client.CodeLimitExceeded] != 20 {
		t.Errorf("30 payments of 100.00 under a 1 000.00 monthly limit on two nodes: %v; want 10 successes and 20 LIMIT_EXCEEDED", counts)
	}
	if b := c.balance(t, w); b != 4_000_00 {
		t.Errorf("balance %s, want 4000.00", b)
	}
	lim, err = c.node(1).Limits(ctx, w)
	if err != nil {
		t.Fatalf("limits: %v", err)
	}
	if used := lim.OperationLimits[client.OperationPayment].MonthUsed; used != 1_000_00 {
		t.Errorf("PAYMENT.monthUsed %s, want 1000.00", used)
	}
	t.Logf("30 parallel payments of 100.00 under a monthly limit of 1 000.00 over two nodes: %v", counts)
}

// waitFinal polls the operations on alternating nodes until none is PENDING.
func (c *cluster) waitFinal(t *testing.T, w uuid.UUID, ids []uuid.UUID) map[uuid.UUID]client.Operation {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(settleWithin)
	for i := 0; ; i++ {
		ops := map[uuid.UUID]client.Operation{}
		pending := 0
		for j, id := range ids {
			op, err := c.node(i+j).Operation(ctx, w, id)
			if err != nil {
				t.Fatalf("operation %s: %v", id, err)
			}
			ops[id] = op
			if op.Status == client.StatusPending {
				pending++
			}
		}
		if pending == 0 {
			return ops
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d operations still PENDING after %s", pending, len(ids), settleWithin)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// backgroundOnce: withdrawals requested on both nodes are paid out once, and
// top-ups left unconfirmed on both nodes expire once, while both nodes' job
// runners compete for the work.
func (c *cluster) backgroundOnce(t *testing.T) {
	ctx := context.Background()
	const withdrawals, topUps = 40, 20
	w := c.wallet(t, 40_000_00)
	started := time.Now()

	type request struct {
		amount money.Amount
		id     uuid.UUID
		err    error
	}
	reqs := make([]request, withdrawals+topUps)
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() {
			r := &reqs[i]
			if i < withdrawals {
				r.amount = money.Amount(100+i)*100 + 50
				if i%2 == 1 {
					r.amount = money.Amount(100+i)*100 + 13 // the sandbox fails these payouts
				}
				res, err := c.node(i).Withdraw(ctx, w, c.bank, r.amount)
				r.id, r.err = res.OperationID, err
				return
			}
			r.amount = money.Amount(500+i) * 100
			res, err := c.node(i).Refill(ctx, w, r.amount)
			r.id, r.err = res.OperationID, err
		})
	}
	wg.Wait()
	ids := make([]uuid.UUID, len(reqs))
	for i, r := range reqs {
		if r.err != nil {
			t.Fatalf("request %d (%s): %v", i, r.amount, r.err)
		}
		ids[i] = r.id
	}
	ops := c.waitFinal(t, w, ids)
	settled := time.Since(started)

	want := money.Amount(40_000_00)
	for i, r := range reqs {
		op := ops[r.id]
		var status client.OperationStatus
		switch {
		case i >= withdrawals:
			status = client.StatusExpired
		case r.amount%100 == 13:
			status = client.StatusFailed
		default:
			status = client.StatusSuccess
			want -= r.amount
		}
		if op.Status != status || op.Amount != r.amount {
			t.Errorf("%s %s %s ended %s, want %s", op.Type, op.Amount, op.ID, op.Status, status)
		}
	}
	if b := c.balance(t, w); b != want {
		t.Errorf("balance %s, want %s", b, want)
	}

	// Exactly once, as the database shows it: one settle or return per
	// withdrawal, one outcome event per operation, every job done (a job is
	// marked done just after its outcome commits, so this is polled briefly).
	db := procs.OpenDB(t, c.dsn)
	var faults []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		faults = faults[:0]
		for i, r := range reqs {
			var settles, holds, events, jobs, done int
			err := db.QueryRow(`SELECT
				(SELECT COUNT(*) FROM ledger_transactions WHERE operation_id = $1 AND kind IN ('PAYOUT_SETTLE', 'PAYOUT_RETURN', 'TOPUP')),
				(SELECT COUNT(*) FROM ledger_transactions WHERE operation_id = $1 AND kind = 'PAYOUT_HOLD'),
				(SELECT COUNT(*) FROM webhook_events WHERE operation_id = $1),
				(SELECT COUNT(*) FROM jobs WHERE ref_id = $1),
				(SELECT COUNT(*) FROM jobs WHERE ref_id = $1 AND done_at IS NOT NULL)`, r.id).
				Scan(&settles, &holds, &events, &jobs, &done)
			if err != nil {
				t.Fatalf("read the ledger: %v", err)
			}
			wantSettles, wantHolds := 1, 1
			if i >= withdrawals {
				wantSettles, wantHolds = 0, 0
			}
			if settles != wantSettles || holds != wantHolds || events != 1 || jobs != 1 || done != 1 {
				faults = append(faults, fmt.Sprintf("operation %s (%s): %d settle/return and %d hold transactions, "+
					"%d outcome events, %d jobs (%d done); want %d, %d, 1, 1 (1)",
					r.id, r.amount, settles, holds, events, jobs, done, wantSettles, wantHolds))
			}
		}
		if len(faults) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, f := range faults {
		t.Error(f)
	}
	out := procs.Audit(t, c.dsn, "with both nodes running")
	t.Logf("%d withdrawals and %d top-ups left to expire, on both nodes, all final %.1fs after the requests; %s",
		withdrawals, topUps, settled.Seconds(), out)
}

// sharedKeys: the same request with the same Idempotency-Key sent to both
// nodes at once (a retry that lands on the other node) makes one operation.
func (c *cluster) sharedKeys(t *testing.T) {
	ctx := context.Background()
	const n = 20
	w := c.wallet(t, 10_000_00)
	type answer struct {
		id  uuid.UUID
		err error
	}
	answers := make([][2]answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		key := "scaleout-" + uuid.NewString()
		amount := money.Amount(200+i) * 100
		for node := range 2 {
			wg.Go(func() {
				<-start
				kctx := client.ContextWithIdempotencyKey(ctx, key)
				var (
					id  uuid.UUID
					err error
				)
				if i%2 == 0 {
					var res client.Withdrawal
					res, err = c.node(node).Withdraw(kctx, w, c.bank, amount)
					id = res.OperationID
				} else {
					var res client.Refill
					res, err = c.node(node).Refill(kctx, w, amount)
					id = res.OperationID
				}
				answers[i][node] = answer{id, err}
			})
		}
	}
	close(start)
	wg.Wait()
	var ids []uuid.UUID
	for i, a := range answers {
		if a[0].err != nil || a[1].err != nil {
			t.Errorf("request %d: %v / %v", i, a[0].err, a[1].err)
			continue
		}
		if a[0].id != a[1].id {
			t.Errorf("DOUBLED: request %d with one Idempotency-Key made operation %s on one node and %s on the other", i, a[0].id, a[1].id)
		}
		ids = append(ids, a[0].id)
	}
	// The payouts complete and the top-ups expire, once each.
	for _, op := range c.waitFinal(t, w, ids) {
		want := client.StatusSuccess
		if op.Type == client.OperationCredit {
			want = client.StatusExpired
		}
		if op.Status != want {
			t.Errorf("%s %s %s ended %s, want %s", op.Type, op.Amount, op.ID, op.Status, want)
		}
	}
	ops := c.operations(t, 0, w)
	debits, credits := 0, 0
	for _, op := range ops {
		switch op.Type {
		case client.OperationDebit:
			debits++
		case client.OperationCredit:
			credits++
		}
	}
	if debits != n/2 || credits != n/2+1 {
		t.Errorf("the report has %d withdrawals and %d top-ups, want %d and %d", debits, credits, n/2, n/2+1)
	}
	t.Logf("%d requests, each sent with one Idempotency-Key to both nodes at once: %d withdrawals and %d top-ups made",
		n, debits, credits-1)
}
