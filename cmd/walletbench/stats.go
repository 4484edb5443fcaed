package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram counts latencies in microseconds in log-linear buckets, as HDR
// histograms do: values below 128 µs are exact, larger ones fall into buckets
// 1/64 of their power of two wide, so a percentile is off by less than 1.6%.
// Its size does not grow with the number of samples.
type histogram struct {
	counts   []int64
	n        int64
	sum      int64
	min, max int64
}

const subBucketBits = 6 // 64 buckets per power of two

// bucketOf maps v >= 0 to its bucket: v itself below 128; above, the top seven
// bits of v (64..127) shifted by 64 buckets for each extra bit.
func bucketOf(v int64) int {
	shift := max(bits.Len64(uint64(v))-subBucketBits-1, 0)
	return shift<<subBucketBits + int(v>>shift)
}

// bucketHigh is the largest value that falls into bucket i.
func bucketHigh(i int) int64 {
	if i < 2<<subBucketBits {
		return int64(i)
	}
	shift := i>>subBucketBits - 1
	mantissa := int64(i - shift<<subBucketBits)
	return (mantissa+1)<<shift - 1
}

func (h *histogram) record(us int64) {
	us = max(us, 0)
	b := bucketOf(us)
	if b >= len(h.counts) {
		h.counts = append(h.counts, make([]int64, b+1-len(h.counts))...)
	}
	h.counts[b]++
	if h.n == 0 || us < h.min {
		h.min = us
	}
	h.max = max(h.max, us)
	h.n++
	h.sum += us
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.counts = append(h.counts, make([]int64, len(o.counts)-len(h.counts))...)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// quantile is the value at or below which a fraction q (0..1) of the samples
// lie (nearest rank), reported as the highest value of its bucket and kept
// within the smallest and largest sample seen.
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := max(int64(math.Ceil(q*float64(h.n))), 1)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(bucketHigh(i), h.min), h.max)
		}
	}
	return h.max
}

func (h *histogram) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return float64(h.sum) / float64(h.n)
}

// opStats is what was seen of one operation or request type.
type opStats struct {
	count    int64            // finished, errors included
	errors   map[string]int64 // outcome → count
	examples map[string]string
	latency  histogram // successes only: a refusal is answered without the work a success costs
	// Kopecks that successful requests moved by walletd's answers, noted for
	// "payment/pay" and "topup/confirm": to compare with the ledger's growth.
	kopecks int64
}

// ok is how many succeeded.
func (s *opStats) ok() int64 {
	n := s.count
	for _, e := range s.errors {
		n -= e
	}
	return n
}

// recorder collects opStats by name: a setup request ("register", "refill",
// "confirm"), a run operation ("payment") or one request of it
// ("payment/pay"). Each worker owns one; they are merged at the end, so
// recording needs no locks.
type recorder struct {
	ops map[string]*opStats
}

func newRecorder() *recorder { return &recorder{ops: map[string]*opStats{}} }

func (r *recorder) get(name string) *opStats {
	s, ok := r.ops[name]
	if !ok {
		s = &opStats{errors: map[string]int64{}, examples: map[string]string{}}
		r.ops[name] = s
	}
	return s
}

// add records one finished operation; outcome is "" for success.
func (r *recorder) add(name string, latency time.Duration, outcome, example string) {
	s := r.get(name)
	s.count++
	if outcome != "" {
		s.errors[outcome]++
		if _, ok := s.examples[outcome]; !ok {
			s.examples[outcome] = example
		}
	}
	if outcome == "" {
		s.latency.record(latency.Microseconds())
	}
}

// moved notes the kopecks a successful request under name moved.
func (r *recorder) moved(name string, kopecks int64) { r.get(name).kopecks += kopecks }

// request records one request under name unless the benchmark was interrupted
// while it ran, and reports whether it succeeded.
func (r *recorder) request(name string, resp response) bool {
	if resp.canceled {
		return false
	}
	r.add(name, resp.latency, resp.outcome, resp.example())
	return resp.ok()
}

func (r *recorder) merge(o *recorder) {
	for name, src := range o.ops {
		s := r.get(name)
		s.count += src.count
		s.kopecks += src.kopecks
		for k, v := range src.errors {
			s.errors[k] += v
		}
		for k, v := range src.examples {
			if _, ok := s.examples[k]; !ok {
				s.examples[k] = v
			}
		}
		s.latency.merge(&src.latency)
	}
}

func mergeAll(recs []*recorder) *recorder {
	all := newRecorder()
	for _, r := range recs {
		all.merge(r)
	}
	return all
}

// firstExample is one failed request, to explain a setup that failed entirely.
func (r *recorder) firstExample() string {
	for _, s := range r.ops {
		for _, e := range s.examples {
			return e
		}
	}
	return "no request was answered"
}

// expectedRefusal tells business refusals a correct service gives under this
// load from errors that point at a fault. name is as recorded (see recorder).
// Only the run spends wallets down and fills their limits, and only by
// paying, withdrawing and topping up; the setup's fresh wallets, reads and
// limit changes have nothing to refuse.
func expectedRefusal(name, outcome string) bool {
	// An operation of several requests ("payment", "topup") is judged by the
	// request that failed it (see addRun).
	switch name {
	case "payment/pay", "withdrawal":
		return outcome == "400 INSUFFICIENT_FUNDS" || outcome == "400 LIMIT_EXCEEDED"
	case "topup/refill":
		return outcome == "400 LIMIT_EXCEEDED" // a balance or monthly limit; money is not needed
	}
	return false
}
