package main

import (
	"crypto/sha256"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	// Consecutive values land in the same or the next bucket, and each bucket's
	// highest value is the last one that maps to it.
	prev := bucketOf(0)
	for v := int64(1); v < 1<<16; v++ {
		b := bucketOf(v)
		if b != prev && b != prev+1 {
			t.Fatalf("bucketOf(%d) = %d after %d", v, b, prev)
		}
		if b != prev && bucketHigh(prev) != v-1 {
			t.Fatalf("bucketHigh(%d) = %d, want %d", prev, bucketHigh(prev), v-1)
		}
		prev = b
	}
	if got := bucketHigh(bucketOf(math.MaxInt64)); got != math.MaxInt64 {
		t.Fatalf("the last bucket ends at %d", got)
	}
}

// exactQuantile is the nearest-rank percentile of the samples.
func exactQuantile(sorted []int64, q float64) int64 {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	uniform := func(lo, hi int64, n int) []int64 {
		s := make([]int64, n)
		for i := range s {
			s[i] = lo + rng.Int64N(hi-lo+1)
		}
		return s
	}
	lognormal := make([]int64, 10000)
	for i := range lognormal {
		lognormal[i] = int64(math.Exp(rng.NormFloat64()*1.2 + 9)) // around 8 ms, long tail
	}
	tests := []struct {
		name    string
		samples []int64
		exact   bool // values below 128 µs are kept exactly
	}{
		{"one sample", []int64{4217}, false},
		{"all equal", []int64{900, 900, 900, 900}, false},
		{"small values are exact", uniform(0, 127, 1000), true},
		{"1..100 exactly", func() []int64 {
			s := make([]int64, 100)
			for i := range s {
				s[i] = int64(i + 1)
			}
			return s
		}(), true},
		{"uniform 1 ms..50 ms", uniform(1000, 50000, 5000), false},
		{"long tail", lognormal, false},
		{"minutes", []int64{int64(2 * time.Minute / time.Microsecond), 10, int64(time.Hour / time.Microsecond)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h histogram
			for _, v := range tt.samples {
				h.record(v)
			}
			sorted := slices.Sorted(slices.Values(tt.samples))
			for _, q := range []float64{0, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
				want, got := exactQuantile(sorted, q), h.quantile(q)
				if tt.exact && got != want {
					t.Errorf("q%.3f = %d, want exactly %d", q, got, want)
				}
				if got < want || float64(got) > float64(want)*(1+1.0/64) {
					t.Errorf("q%.3f = %d, want %d within +1/64", q, got, want)
				}
			}
			if h.quantile(1) != sorted[len(sorted)-1] || h.max != sorted[len(sorted)-1] || h.min != sorted[0] {
				t.Errorf("max/min: q1 %d max %d min %d, want %d and %d", h.quantile(1), h.max, h.min, sorted[len(sorted)-1], sorted[0])
			}
		})
	}
}

func TestHistogramMergeEqualsOneHistogram(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var whole, a, b histogram
	for i := range 5000 {
		v := rng.Int64N(2_000_000)
		whole.record(v)
		if i%3 == 0 {
			a.record(v)
		} else {
			b.record(v)
		}
	}
	var merged histogram
	merged.merge(&a)
	merged.merge(&b)
	merged.merge(&histogram{}) // an empty one changes nothing
	for _, q := range []float64{0, 0.5, 0.95, 0.99, 1} {
		if merged.quantile(q) != whole.quantile(q) {
			t.Errorf("q%.2f: merged %d, whole %d", q, merged.quantile(q), whole.quantile(q))
		}
	}
	if merged.n != whole.n || merged.sum != whole.sum || merged.min != whole.min || merged.max != whole.max {
		t.Errorf("merged %+v differs from whole %+v", merged, whole)
	}
	var empty histogram
	if empty.quantile(0.99) != 0 || empty.mean() != 0 {
		t.Error("an empty histogram reports something")
	}
}

func TestRecorder(t *testing.T) {
	tests := []struct {
		name      string
		outcomes  []string
		wantOK    int64
		wantTimed int64 // only successes are timed
	}{
		{"all succeed", []string{"", "", ""}, 3, 3},
		{"refusals are not timed", []string{"", "400 INSUFFICIENT_FUNDS", "503 UNAVAILABLE"}, 1, 1},
		{"transport is not timed", []string{"transport", "", "token 401 invalid_client"}, 1, 1},
		{"all refused", []string{"400 INSUFFICIENT_FUNDS", "400 INSUFFICIENT_FUNDS"}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newRecorder(), newRecorder()
			for i, o := range tt.outcomes {
				r := a
				if i%2 == 1 {
					r = b
				}
				// A refusal answers at once; a success costs the service more.
				latency := time.Millisecond
				if o == "" {
					latency = 40 * time.Millisecond
				}
				r.add("payment", latency, o, "example of "+o)
			}
			b.request("payment", response{canceled: true, outcome: "canceled"}) // not a result
			all := mergeAll([]*recorder{a, b})
			line := opLine("payment", all.get("payment"), 2*time.Second)
			if line.Count != int64(len(tt.outcomes)) || line.OK != tt.wantOK || all.get("payment").latency.n != tt.wantTimed {
				t.Errorf("count %d ok %d timed %d, want %d %d %d", line.Count, line.OK, all.get("payment").latency.n,
					len(tt.outcomes), tt.wantOK, tt.wantTimed)
			}
			if want := float64(tt.wantOK) / 2; line.OKPerSecond != want {
				t.Errorf("%.2f ok/s, want %.2f: the successes over 2 s", line.OKPerSecond, want)
			}
			if tt.wantOK > 0 && (line.LatencyMs.P50 != 40 || line.LatencyMs.Mean != 40) {
				t.Errorf("latency p50 %.2f ms mean %.2f ms, want the successes' 40 ms", line.LatencyMs.P50, line.LatencyMs.Mean)
			}
			for _, e := range line.Errors {
				if e.Example != "example of "+e.Outcome {
					t.Errorf("%s: example %q", e.Outcome, e.Example)
				}
			}
		})
	}
}

func TestExpectedRefusal(t *testing.T) {
	const funds, limit = "400 INSUFFICIENT_FUNDS", "400 LIMIT_EXCEEDED"
	tests := []struct {
		operation, outcome string
		want               bool
	}{
		// The run spends wallets down and fills their limits.
		{"payment/pay", funds, true},
		{"payment/pay", limit, true},
		{"withdrawal", funds, true},
		{"withdrawal", limit, true},
		// A top-up needs no money, but may pass a balance or monthly limit.
		{"topup/refill", limit, true},
		{"topup/refill", funds, false},
		{"topup/confirm", limit, false},
		// The other requests of an operation, and reads, refuse nothing.
		{"payment/init", funds, false},
		{"info", funds, false},
		{"report", limit, false},
		{"limits", limit, false},
		{"limits/set", limit, false},
		// The setup's fresh wallets must open and take their first top-up;
		// its "refill" is not the run's "topup/refill".
		{"register", limit, false},
		{"refill", limit, false},
		{"refill", funds, false},
		{"confirm", limit, false},
		// Faults, wherever they happen.
		{"withdrawal", "400 VALIDATION_ERROR", false},
		{"payment/pay", "400 TOKEN_INVALID", false},
		{"withdrawal", "503 UNAVAILABLE", false},
		{"withdrawal", "500 INTERNAL_ERROR", false},
		{"topup/refill", "transport", false},
		{"payment/pay", "200 status FAILED", false},
		{"payment/pay", "token 401 invalid_client", false},
		{"payment/pay", "409 INSUFFICIENT_FUNDS", false},
	}
	for _, tt := range tests {
		if got := expectedRefusal(tt.operation, tt.outcome); got != tt.want {
			t.Errorf("expectedRefusal(%q, %q) = %v, want %v", tt.operation, tt.outcome, got, tt.want)
		}
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		spec    string
		want    map[opKind]int // weights
		wantErr string
	}{
		{spec: "full", want: map[opKind]int{opPayment: 50, opInfo: 20, opReport: 10, opTopUp: 10, opWithdrawal: 5, opLimits: 5}},
		{spec: "payments", want: map[opKind]int{opPayment: 100}},
		{spec: "payment=70, info=30", want: map[opKind]int{opPayment: 70, opInfo: 30}},
		{spec: "info=1,topup=0", want: map[opKind]int{opInfo: 1}},
		{spec: "", wantErr: "want full"},
		{spec: "payment", wantErr: "want full"},
		{spec: "refund=5", wantErr: "unknown operation"},
		{spec: "payment=-1", wantErr: "non-negative"},
		{spec: "payment=x", wantErr: "non-negative"},
		{spec: "info=1,info=2", wantErr: "twice"},
		{spec: "info=0", wantErr: "zero"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			m, err := parseMix(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[opKind]int{}
			for i, k := range m.kinds {
				got[k] = m.weights[i]
			}
			if len(got) != len(tt.want) {
				t.Fatalf("weights %v, want %v", got, tt.want)
			}
			for k, w := range tt.want {
				if got[k] != w {
					t.Errorf("%s weight %d, want %d", k, got[k], w)
				}
			}
		})
	}
}

func TestMixPickBoundaries(t *testing.T) {
	m, err := parseMix("full")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		n    int
		want opKind
	}{
		{0, opPayment}, {49, opPayment},
		{50, opInfo}, {69, opInfo},
		{70, opReport}, {79, opReport},
		{80, opTopUp}, {89, opTopUp},
		{90, opWithdrawal}, {94, opWithdrawal},
		{95, opLimits}, {99, opLimits},
	}
	for _, tt := range tests {
		if got := m.pick(tt.n); got != tt.want {
			t.Errorf("pick(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
}

func TestMixPickFrequencies(t *testing.T) {
	for _, spec := range []string{"full", "payment=1,limits=3", "payments"} {
		t.Run(spec, func(t *testing.T) {
			m, err := parseMix(spec)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(5, 6))
			const draws = 200_000
			seen := map[opKind]int{}
			for range draws {
				seen[m.pick(rng.IntN(m.total))]++
			}
			for i, k := range m.kinds {
				want := float64(m.weights[i]) / float64(m.total)
				got := float64(seen[k]) / draws
				if math.Abs(got-want) > 0.01 {
					t.Errorf("%s drawn %.3f of the time, want %.3f", k, got, want)
				}
			}
		})
	}
}

func TestQRCID(t *testing.T) {
	tests := []struct{ payload, want string }{
		{"http://localhost:8080/sandbox/sbp/AB12CD34EF56GH78IJ90KL12MN34OP56?type=02&sum=5000000&cur=RUB", "AB12CD34EF56GH78IJ90KL12MN34OP56"},
		{"https://wallet.example/base/sandbox/sbp/XYZ", "XYZ"},
		{"https://qr.nspk.ru/AS1000670LSS7DN18SJQDNP4B05KLJL2?type=02", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := qrcID(tt.payload); got != tt.want {
			t.Errorf("qrcID(%q) = %q, want %q", tt.payload, got, tt.want)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	tests := []struct {
		name     string
		status   string
		hwm, rss int64
		wantErr  bool
	}{
		{"process", "Name:\twalletd\nVmPeak:\t 1300000 kB\nVmHWM:\t   53240 kB\nVmRSS:\t   51200 kB\nThreads:\t12\n", 53240, 51200, false},
		{"kernel thread", "Name:\tkworker/0:1\nThreads:\t1\n", 0, 0, true},
		{"garbage", "VmHWM:\tlots kB\n", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hwm, rss, err := parseProcStatus(strings.NewReader(tt.status))
			if (err != nil) != tt.wantErr || hwm != tt.hwm || rss != tt.rss {
				t.Errorf("got %d %d %v, want %d %d error %v", hwm, rss, err, tt.hwm, tt.rss, tt.wantErr)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    time.Duration
		wantErr bool
	}{
		{"process", "4242 (walletd) S 1 4242 4242 0 -1 4194560 1200 0 0 0 1234 56 0 0 20 0 12 0 100 0 0\n", 12900 * time.Millisecond, false},
		{"name with spaces and parentheses", "7 (a b) (c)) R 1 7 7 0 -1 0 0 0 0 0 250 50 0 0 20 0 1 0 5 0 0\n", 3 * time.Second, false},
		{"cut short", "7 (walletd) S 1 7 7\n", 0, true},
		{"no name", "7 walletd S 1 7 7 0 -1 0 0 0 0 0 250 50\n", 0, true},
		{"garbage time", "7 (walletd) S 1 7 7 0 -1 0 0 0 0 0 x 50 0 0\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat(tt.line)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseProcStat = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestCPUMeter: the meter sees the CPU this process burns, and reports it per
// completed operation.
func TestCPUMeter(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	res := &result{Run: runResult{Operations: []opResult{{Name: "payment", OK: 300}, {Name: "info", OK: 100}}}}
	m := startCPU(os.Getpid())
	// Burn CPU until the process's own clock shows 0.3 s more (wall time
	// says nothing on a busy machine).
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		for i := range 10000 {
			_ = sha256.Sum256([]byte{byte(i)})
		}
		if now, err := cpuTime(os.Getpid()); err != nil || now-m.bench >= 300*time.Millisecond {
			break
		}
	}
	res.addCPU(m)
	c := res.CPU
	if c.Error != "" {
		t.Fatal(c.Error)
	}
	// Both figures measure this process; ticks are 10 ms.
	if c.BenchSeconds < 0.25 || c.WalletdSeconds < 0.25 {
		t.Errorf("CPU seconds = %v (walletd) and %v (bench), want at least 0.3 each, less a few ticks", c.WalletdSeconds, c.BenchSeconds)
	}
	for _, f := range []struct {
		who          string
		seconds, got float64
	}{{"walletbench", c.BenchSeconds, c.BenchMsPerOp}, {"walletd", c.WalletdSeconds, c.WalletdMsPerOp}} {
		if want := f.seconds * 1000 / 400; math.Abs(f.got-want) > 1e-9 {
			t.Errorf("%s: ms per operation = %v, want %v (%v s over 400 operations)", f.who, f.got, want, f.seconds)
		}
	}
}
