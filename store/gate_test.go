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
		waitUntil(t, func() bool { return parkedIn("semaphore.(*Weighted).Acquire") == i+1 })
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
	// A nil gate has no seats to run out of: a caller that waited would
	// meet the deadline instead of getting in.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var g *gate
	for i := range 3 {
		if err := g.enter(ctx); err != nil {
			t.Fatalf("enter %d: %v", i+1, err)
		}
	}
	g.leave()
}

// goroutines returns the stack of every goroutine. Tests use it to know that
// a caller is parked (waiting in a queue) before they send the next one: a
// goroutine blocked in a select has already joined the queue it waits on.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	return strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
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
