package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	tests := map[string]struct {
		env         map[string]string
		wantPercent int
		wantLimit   int64
	}{
		"defaults":            {env: map[string]string{}, wantPercent: gcPercent, wantLimit: memoryLimit},
		"operator's GOGC":     {env: map[string]string{"GOGC": "50"}, wantPercent: 77, wantLimit: memoryLimit},
		"operator's limit":    {env: map[string]string{"GOMEMLIMIT": "1GiB"}, wantPercent: gcPercent, wantLimit: math.MaxInt64},
		"both the operator's": {env: map[string]string{"GOGC": "off", "GOMEMLIMIT": "1GiB"}, wantPercent: 77, wantLimit: math.MaxInt64},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// The runtime's settings are the process's: start each case from
			// known values (77, no limit, standing in for what the runtime read
			// from the operator's variables) and put the test's own back.
			oldPercent := debug.SetGCPercent(77)
			oldLimit := debug.SetMemoryLimit(math.MaxInt64)
			defer func() { debug.SetGCPercent(oldPercent); debug.SetMemoryLimit(oldLimit) }()

			tuneGC(func(k string) string { return tc.env[k] })
			if got := debug.SetGCPercent(77); got != tc.wantPercent {
				t.Errorf("GC percent = %d, want %d", got, tc.wantPercent)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("memory limit = %d, want %d", got, tc.wantLimit)
			}
		})
	}
}
