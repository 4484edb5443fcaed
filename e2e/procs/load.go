package procs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/perspektiva/walletd/client"
)

// Settle makes an SDK call until it has a final answer: a success or a refusal
// (4xx other than 429). After a 5xx, a 429 or no answer (the SDK's own retries
// spent) the outcome is unknown, and the call is made again, with the
// Idempotency-Key ctx carries, if any. pause gives the wait before each call
// made again, and so also counts them; answered, when set, sees the error of
// every call made (nil for a success). final is false when ctx ended first.
func Settle(ctx context.Context, pause func() time.Duration, answered func(error), fn func(ctx context.Context) error) (final bool, err error) {
	for {
		err = fn(ctx)
		if answered != nil {
			answered(err)
		}
		var ae *client.Error
		if err == nil || errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusTooManyRequests {
			return true, err
		}
		if ctx.Err() != nil {
			return false, err
		}
		select {
		case <-ctx.Done():
			return false, err
		case <-time.After(pause()):
		}
	}
}

// Problems gathers what a load's workers find wrong while it runs, to fail the
// test with once the load is over. It keeps the first max and counts the rest.
type Problems struct {
	max int

	mu      sync.Mutex
	list    []string
	dropped int
}

// NewProblems keeps up to max problems.
func NewProblems(max int) *Problems { return &Problems{max: max} }

// Add records a problem.
func (p *Problems) Add(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.list) < p.max {
		p.list = append(p.list, fmt.Sprintf(format, args...))
	} else {
		p.dropped++
	}
}

// Report fails t with each problem recorded.
func (p *Problems) Report(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.list {
		t.Error(pr)
	}
	if p.dropped > 0 {
		t.Errorf("and %d problems more", p.dropped)
	}
}
