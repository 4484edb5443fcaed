package store

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestGateServesInOrder: callers that wait for a turn get it in the order they
// asked, which is the whole point of the gate (database/sql picks at random).
func TestGateServesInOrder(t *testing.T) {
	g := newGate(1)
	ctx := context.Background()
	if err := g.enter(ctx); err != nil {
		t.Fatal(err)
	}
	const waiters = 5
	served := make(chan int, waiters)
	for i := range waiters {
		go func() {
			if err := g.enter(ctx); err != nil {
				t.Error(err)
				return
			}
			served <- i
		}()
		waitUntil(t, func() bool { return queued() == i+1 })
	}
	for want := range waiters {
		g.leave()
		if got := <-served; got != want {
			t.Fatalf("turn %d went to waiter %d", want, got)
		}
	}
	g.leave()
}

// TestGateGivesUpWithTheContext: a caller whose context ends stops waiting and
// takes no turn with it.
func TestGateGivesUpWithTheContext(t *testing.T) {
	g := newGate(1)
	if err := g.enter(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := g.enter(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("enter on a full gate with an ending context: %v", err)
	}
	g.leave()
	if !g.sem.TryAcquire(1) {
		t.Fatal("the turn given back is still taken: the caller that gave up kept one")
	}
}

func TestNilGateLetsEveryoneThrough(t *testing.T) {
	var g *gate
	for range 3 {
		if err := g.enter(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	g.leave()
}

// queued counts the callers parked at a gate: goroutines blocked in the
// semaphore's select, which they reach only after joining its queue. The
// semaphore does not tell its queue's length, and the order test must know
// that one waiter is queued before it sends the next.
func queued() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, " [select") && strings.Contains(g, "semaphore.(*Weighted).Acquire") {
			n++
		}
	}
	return n
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
