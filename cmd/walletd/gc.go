package main

import "runtime/debug"

// Collector defaults for a server whose live heap is small. By default Go
// collects each time the heap doubles; walletd's live heap is a few MiB under
// load, so it collected many times a second, and the collector took 5-7% of
// the throughput of payments (alternating runs, both engines). Letting the heap
// grow fivefold costs about 20 MiB of RSS; the soft limit makes the collector
// work harder instead should the heap itself ever grow large.
const (
	gcPercent   = 400
	memoryLimit = 200 << 20
)

// tuneGC applies the defaults the operator did not set through Go's own
// variables, GOGC and GOMEMLIMIT, which the runtime has already read.
func tuneGC(env envFunc) {
	if env("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if env("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
