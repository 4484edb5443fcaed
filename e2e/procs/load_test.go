package procs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/perspektiva/walletd/client"
)

func TestSettle(t *testing.T) {
	t.Parallel()
	apiErr := func(status int) error { return &client.Error{Status: status, Code: http.StatusText(status)} }
	transport := errors.New("connection reset")
	// When the case's ctx ends.
	const (
		never   = iota
		inCall  // during the first attempt
		inPause // shortly after the first attempt, while Settle waits to call again
	)
	const short, long = time.Millisecond, 10 * time.Second
	cases := []struct {
		name          string
		answers       []error // what the attempts get, in turn
		ends          int
		pause         time.Duration
		final         bool
		calls, pauses int
	}{
		{"success at once", []error{nil}, never, short, true, 1, 0},
		{"refusal at once", []error{apiErr(http.StatusBadRequest)}, never, short, true, 1, 0},
		{"unknown outcomes, then success", []error{transport, apiErr(503), apiErr(429), apiErr(500), nil}, never, short, true, 5, 4},
		{"unknown outcome, then refusal", []error{apiErr(502), apiErr(http.StatusConflict)}, never, short, true, 2, 1},
		{"context ended", []error{apiErr(503), nil}, inCall, short, false, 1, 0},
		// The pause is far longer than the bound below: Settle must leave it
		// when ctx ends, not sleep it out.
		{"context ended in the pause", []error{apiErr(503), nil}, inPause, long, false, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var seen []error
			pauses, calls := 0, 0
			start := time.Now()
			final, err := Settle(ctx,
				func() time.Duration {
					pauses++
					if c.ends == inPause {
						// Armed as the pause begins, so ctx ends only
						// once Settle has passed its check of ctx and
						// is waiting.
						time.AfterFunc(50*time.Millisecond, cancel)
					}
					return c.pause
				},
				func(err error) { seen = append(seen, err) },
				func(context.Context) error {
					err := c.answers[calls]
					calls++
					if c.ends == inCall {
						cancel()
					}
					return err
				})
			// Generous against a slow machine, yet far below the long pause.
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("returned after %v, want well within the pause", elapsed)
			}
			if final != c.final || calls != c.calls || pauses != c.pauses {
				t.Errorf("final %v after %d calls and %d pauses, want %v after %d and %d", final, calls, pauses, c.final, c.calls, c.pauses)
			}
			// With or without a final answer, err is the last call's.
			if want := c.answers[c.calls-1]; !errors.Is(err, want) {
				t.Errorf("error %v, want the last answer %v", err, want)
			}
			if !slices.Equal(seen, c.answers[:c.calls]) {
				t.Errorf("answered saw %v, want %v", seen, c.answers[:c.calls])
			}
		})
	}
}

// reportRecorder takes what Problems.Report says to a test. Report may only
// call Helper, Error and Errorf: the nil testing.TB it embeds panics on
// anything else.
type reportRecorder struct {
	testing.TB
	lines []string
}

func (r *reportRecorder) Helper()           {}
func (r *reportRecorder) Error(args ...any) { r.lines = append(r.lines, fmt.Sprint(args...)) }
func (r *reportRecorder) Errorf(f string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(f, args...))
}

func TestProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		added int // problems added to NewProblems(2)
		want  []string
	}{
		{"none", 0, nil},
		{"exactly max", 2, []string{"problem 0", "problem 1"}},
		// The first max are kept; the rest are only counted.
		{"more than max", 4, []string{"problem 0", "problem 1", "and 2 problems more"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := NewProblems(2)
			for i := range c.added {
				p.Add("problem %d", i)
			}
			r := &reportRecorder{}
			p.Report(r)
			if !slices.Equal(r.lines, c.want) {
				t.Errorf("report %q, want %q", r.lines, c.want)
			}
		})
	}
}
