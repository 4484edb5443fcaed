package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fetcher records the keys of each fetch and answers key*10 for even keys
// (odd keys have no value); a fetch waits for hold, when set, to close.
type fetcher struct {
	mu      sync.Mutex
	fetches [][]int
	hold    chan struct{}
	fail    error
}

func (f *fetcher) fetch(ctx context.Context, keys []int) (map[int]int, error) {
	f.mu.Lock()
	f.fetches = append(f.fetches, slices.Clone(keys))
	hold, fail := f.hold, f.fail
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		return nil, fail
	}
	out := map[int]int{}
	for _, k := range keys {
		if k%2 == 0 {
			out[k] = k * 10
		}
	}
	return out, nil
}

func (f *fetcher) calls() [][]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.fetches)
}

// TestBatcherGathersWaitingLookups: the lookups that arrive while a fetch runs
// are answered by the next one, once per key, each with its own value.
func TestBatcherGathersWaitingLookups(t *testing.T) {
	f := &fetcher{hold: make(chan struct{})}
	b := newBatcher(f.fetch)
	defer b.close()
	ctx := context.Background()

	first := make(chan found[int], 1)
	go func() {
		v, ok, err := b.get(ctx, 100)
		first <- found[int]{v, ok, err}
	}()
	waitUntil(t, func() bool { return len(f.calls()) == 1 })

	keys := []int{1, 2, 3, 4, 4, 5, 6, 6, 6}
	got := make([]found[int], len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			v, ok, err := b.get(ctx, k)
			got[i] = found[int]{v, ok, err}
		})
	}
	// Parked: the first lookup, waiting for its fetch, and every new one.
	waitUntil(t, func() bool { return parkedIn("(*batcher[...]).get") == len(keys)+1 })
	close(f.hold)
	wg.Wait()

	if r := <-first; r.err != nil || !r.ok || r.v != 1000 {
		t.Errorf("get(100) = %+v, want 1000", r)
	}
	for i, k := range keys {
		want := found[int]{v: k * 10, ok: k%2 == 0}
		if !want.ok {
			want.v = 0
		}
		if got[i] != want {
			t.Errorf("get(%d) = %+v, want %+v", k, got[i], want)
		}
	}
	calls := f.calls()
	if len(calls) != 2 {
		t.Fatalf("fetches = %v, want 2: the first lookup's and one for all that waited", calls)
	}
	second := slices.Sorted(slices.Values(calls[1]))
	if !slices.Equal(second, []int{1, 2, 3, 4, 5, 6}) {
		t.Errorf("second fetch asked for %v, want each waiting key once", calls[1])
	}
}

func TestBatcherFailureReachesEveryLookup(t *testing.T) {
	boom := errors.New("server gone")
	f := &fetcher{fail: boom}
	b := newBatcher(f.fetch)
	defer b.close()
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { _, _, errs[i] = b.get(context.Background(), i) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, boom) {
			t.Errorf("get(%d): %v, want the fetch's error", i, err)
		}
	}
}

// TestBatcherCallerMayLeave: a lookup whose context ends returns at once, and
// the loop goes on serving the others.
func TestBatcherCallerMayLeave(t *testing.T) {
	f := &fetcher{hold: make(chan struct{})}
	b := newBatcher(f.fetch)
	defer b.close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := b.get(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get with an ending context: %v", err)
	}
	close(f.hold)
	if v, ok, err := b.get(context.Background(), 4); err != nil || !ok || v != 40 {
		t.Fatalf("get after a caller left = %d, %v, %v; want 40", v, ok, err)
	}
}

func TestBatcherClosed(t *testing.T) {
	f := &fetcher{}
	b := newBatcher(f.fetch)
	b.close()
	b.close() // a second Close of the DB must not hang or panic
	if _, _, err := b.get(context.Background(), 2); !errors.Is(err, sql.ErrConnDone) {
		t.Fatalf("get on a closed batcher: %v, want sql.ErrConnDone", err)
	}
}

// parkedIn counts goroutines blocked in a select inside fn.
func parkedIn(fn string) int {
	n := 0
	for _, g := range goroutines() {
		if strings.Contains(g, " [select") && strings.Contains(g, fn) {
			n++
		}
	}
	return n
}
