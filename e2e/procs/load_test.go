package procs

import (
	"context"
	"errors"
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
	cases := []struct {
		name    string
		answers []error // what the attempts get, in turn
		cancel  bool    // ctx ends after the first attempt
		final   bool
		calls   int
	}{
		{"success at once", []error{nil}, false, true, 1},
		{"refusal at once", []error{apiErr(http.StatusBadRequest)}, false, true, 1},
		{"unknown outcomes, then success", []error{transport, apiErr(503), apiErr(429), apiErr(500), nil}, false, true, 5},
		{"unknown outcome, then refusal", []error{apiErr(502), apiErr(http.StatusConflict)}, false, true, 2},
		{"context ended", []error{apiErr(503), nil}, true, false, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var seen []error
			pauses, calls := 0, 0
			final, err := Settle(ctx, func() time.Duration { pauses++; return time.Millisecond },
				func(err error) { seen = append(seen, err) },
				func(context.Context) error {
					err := c.answers[calls]
					calls++
					if c.cancel {
						cancel()
					}
					return err
				})
			if final != c.final || calls != c.calls || pauses != c.calls-1 {
				t.Errorf("final %v after %d calls and %d pauses, want %v after %d", final, calls, pauses, c.final, c.calls)
			}
			if want := c.answers[c.calls-1]; !errors.Is(err, want) {
				t.Errorf("error %v, want the last answer %v", err, want)
			}
			if !slices.Equal(seen, c.answers[:c.calls]) {
				t.Errorf("answered saw %v, want %v", seen, c.answers[:c.calls])
			}
		})
	}
}

func TestProblems(t *testing.T) {
	t.Parallel()
	p := NewProblems(2)
	for i := range 4 {
		p.Add("problem %d", i)
	}
	if !slices.Equal(p.list, []string{"problem 0", "problem 1"}) || p.dropped != 2 {
		t.Errorf("kept %q and dropped %d, want the first two and 2 dropped", p.list, p.dropped)
	}
}
