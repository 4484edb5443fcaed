package main

import (
	"math"
	"math/bits"
	"strings"
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
	latency  histogram // answered requests only: a transport failure has no meaningful time
}

// recorder collects opStats by name. Each worker owns one; they are merged at
// the end, so recording needs no locks.
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
	if outcome != "transport" && !strings.HasPrefix(outcome, "token") {
		s.latency.record(latency.Microseconds())
	}
}

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
// load (a wallet spent down, a limit reached) from errors that point at a fault.
func expectedRefusal(outcome string) bool {
	switch outcome {
	case "400 INSUFFICIENT_FUNDS", "400 LIMIT_EXCEEDED":
		return true
	}
	return false
}
