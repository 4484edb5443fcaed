package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/perspektiva/walletd/money"
)

// topUpKopecks is the amount of the run's top-ups.
const topUpKopecks = 10_00

// opKind is an operation of the run.
type opKind int

const (
	opPayment opKind = iota
	opInfo
	opReport
	opTopUp
	opWithdrawal
	opLimits
	opKinds // the number of kinds
)

func (k opKind) String() string {
	switch k {
	case opPayment:
		return "payment"
	case opInfo:
		return "info"
	case opReport:
		return "report"
	case opTopUp:
		return "topup"
	case opWithdrawal:
		return "withdrawal"
	case opLimits:
		return "limits"
	}
	return "op" + strconv.Itoa(int(k))
}

// requests names the requests of an operation made of more than one, which
// are reported on their own lines as "op/request".
func (k opKind) requests() []string {
	switch k {
	case opPayment:
		return []string{"init", "pay"}
	case opTopUp:
		return []string{"refill", "confirm"}
	case opLimits:
		return []string{"get", "set"}
	}
	return nil
}

// mix is a weighted choice of operations.
type mix struct {
	kinds   []opKind
	weights []int
	total   int
}

// parseMix reads "full", "payments" or a list such as "payment=70,info=30".
func parseMix(spec string) (mix, error) {
	switch spec {
	case "full":
		spec = "payment=50,info=20,report=10,topup=10,withdrawal=5,limits=5"
	case "payments":
		spec = "payment=100"
	}
	var m mix
	seen := map[opKind]bool{}
	for item := range strings.SplitSeq(spec, ",") {
		name, weight, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return mix{}, fmt.Errorf("%q: want full, payments or weights such as payment=70,info=30", spec)
		}
		kind, ok := kindNamed(name)
		if !ok {
			return mix{}, fmt.Errorf("unknown operation %q (payment, info, report, topup, withdrawal, limits)", name)
		}
		w, err := strconv.Atoi(weight)
		if err != nil || w < 0 {
			return mix{}, fmt.Errorf("weight of %s: want a non-negative integer, got %q", name, weight)
		}
		if seen[kind] {
			return mix{}, fmt.Errorf("%s is given twice", name)
		}
		seen[kind] = true
		if w > 0 {
			m.kinds = append(m.kinds, kind)
			m.weights = append(m.weights, w)
			m.total += w
		}
	}
	if m.total == 0 {
		return mix{}, fmt.Errorf("%q: the weights add up to zero", spec)
	}
	return m, nil
}

func kindNamed(name string) (opKind, bool) {
	for k := range opKinds {
		if k.String() == name {
			return k, true
		}
	}
	return 0, false
}

// pick maps n, uniform in [0, total), to an operation with its weight's chance.
func (m mix) pick(n int) opKind {
	for i, w := range m.weights {
		if n < w {
			return m.kinds[i]
		}
		n -= w
	}
	return m.kinds[len(m.kinds)-1]
}

func (m mix) String() string {
	parts := make([]string, len(m.kinds))
	for i, k := range m.kinds {
		parts[i] = fmt.Sprintf("%s %.4g%%", k, 100*float64(m.weights[i])/float64(m.total))
	}
	return strings.Join(parts, ", ")
}

// runLoad drives the fleet with --concurrency workers for --duration. Requests
// in flight when the time is up are finished and counted; after a Ctrl-C they
// are abandoned and not counted.
func runLoad(ctx context.Context, cfg config, fl *fleet, progress io.Writer) (*recorder, time.Duration) {
	runCtx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	start := time.Now()
	var done atomic.Int64
	stop := every(progress, 5*time.Second, func() string {
		secs, n := time.Since(start).Seconds(), done.Load()
		return fmt.Sprintf("run: %3.0fs  %d operations  %.0f/s", secs, n, float64(n)/secs)
	})
	recs := make([]*recorder, cfg.concurrency)
	var wg sync.WaitGroup
	for i := range recs {
		w := &worker{
			mix: cfg.mix, fleet: fl, rec: newRecorder(),
			rng: rand.New(rand.NewPCG(cfg.seed, uint64(i)+1)),
		}
		recs[i] = w.rec
		wg.Go(func() { w.loop(runCtx, ctx, &done) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	return mergeAll(recs), elapsed
}

// worker runs operations one after another, with its own random source and recorder.
type worker struct {
	mix   mix
	fleet *fleet
	rng   *rand.Rand
	rec   *recorder
}

// loop starts operations while runCtx lasts; their requests use reqCtx, which
// only a Ctrl-C cancels.
func (w *worker) loop(runCtx, reqCtx context.Context, done *atomic.Int64) {
	for runCtx.Err() == nil {
		kind := w.mix.pick(w.rng.IntN(w.mix.total))
		wal := w.fleet.wallets[w.rng.IntN(len(w.fleet.wallets))]
		start := time.Now()
		failed := w.perform(reqCtx, kind, wal)
		if failed.canceled {
			return
		}
		w.rec.add(kind.String(), time.Since(start), failed.outcome, failed.example())
		done.Add(1)
	}
}

// perform runs one operation and returns the request that failed it (a zero
// response when all succeeded).
func (w *worker) perform(ctx context.Context, kind opKind, wal benchWallet) response {
	p, base := wal.partner, "/account/"+wal.id
	var r response
	switch kind {
	case opPayment:
		return w.payment(ctx, wal)
	case opInfo:
		r = p.call(ctx, http.MethodGet, base+"/info", nil, nil)
	case opReport:
		r = p.call(ctx, http.MethodGet, base+"/report?size=20", nil, nil)
	case opTopUp:
		refill, confirm := topUp(ctx, p, wal.id, topUpKopecks)
		if !w.rec.request("topup/refill", refill) {
			return refill
		}
		if w.rec.request("topup/confirm", confirm) {
			w.rec.moved("topup/confirm", topUpKopecks)
		}
		return confirm
	case opWithdrawal:
		kopecks := int64(5_00)
		if w.rng.IntN(20) == 0 {
			kopecks = 5_13 // the sandbox fails payouts ending in .13: the held money must come back
		}
		r = p.call(ctx, http.MethodPost, base+"/wifhdrawal",
			map[string]any{"bankIdentifier": "100000000111", "amount": money.Amount(kopecks)}, nil)
	case opLimits:
		r = p.call(ctx, http.MethodGet, base+"/limit", nil, nil)
		if !w.rec.request("limits/get", r) || w.rng.IntN(10) != 0 {
			return r
		}
		r = p.call(ctx, http.MethodPost, base+"/limit",
			map[string]any{"operationLimits": map[string]any{"PAYMENT": map[string]any{"oneTimeLimit": "100000.00"}}}, nil)
		w.rec.request("limits/set", r)
	}
	return r
}

// payment is the protocol's two steps: a single-use token, then the payment.
func (w *worker) payment(ctx context.Context, wal benchWallet) response {
	p, base := wal.partner, "/account/"+wal.id
	var init struct {
		Token string `json:"token"`
	}
	r := p.call(ctx, http.MethodGet, base+"/payment/initialization", nil, &init)
	if !w.rec.request("payment/init", r) {
		return r
	}
	tsp := w.fleet.hotTSP
	if tsp == "" {
		tsp = p.tsps[w.rng.IntN(len(p.tsps))]
	}
	var paid struct {
		Status string `json:"status"`
	}
	kopecks := 100 + w.rng.Int64N(4901)
	body := map[string]any{"walletId": wal.id, "token": init.Token, "amount": money.Amount(kopecks), "tsp": tsp}
	r = p.call(ctx, http.MethodPost, base+"/payment", body, &paid)
	if r.ok() && paid.Status != "SUCCESS" {
		r.fail("status " + paid.Status)
	}
	if w.rec.request("payment/pay", r) {
		w.rec.moved("payment/pay", kopecks)
	}
	return r
}
