// Package jobs runs durable background work: top-up expiries, payouts and
// webhook deliveries. Jobs live in the database, are claimed with leases,
// and their handlers are idempotent, so a crash at any moment only means the
// job runs again — never that it is lost or applied twice.
package jobs

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/wallet"
)

// Store is the durable queue.
type Store interface {
	// NextDue tells when the earliest unfinished job of kinds is due.
	NextDue(ctx context.Context, kinds []string) (time.Time, error)
	// Claim leases due jobs of kinds; each claim counts in the job's
	// Attempts and names itself in its Claim.
	Claim(ctx context.Context, now time.Time, lease time.Duration, limit int, kinds []string) ([]wallet.Job, error)
	// Done and Reschedule finish a claimed job. They refuse with
	// wallet.ErrNotFound when the claim is no longer the job's latest: its
	// lease ran out and another runner claimed the job, or it was enqueued
	// again. That runner's outcome stands.
	Done(ctx context.Context, claimed wallet.Job, at time.Time) error
	Reschedule(ctx context.Context, claimed wallet.Job, runAt time.Time, lastError string) error
}

// Handler does one job for the operation ref. A non-zero retryAt asks to run
// again then (work in progress); an error retries with backoff.
type Handler func(ctx context.Context, ref uuid.UUID) (retryAt time.Time, err error)

// Runner polls the queue and runs due jobs of the kinds it has handlers for.
// Work that may be slow for reasons outside walletd (a partner's webhook
// receiver) gets a runner of its own, so that it cannot hold up the rest.
type Runner struct {
	store    Store
	handlers map[string]Handler
	kinds    []string // the handlers' kinds, which alone it claims
	log      *slog.Logger
	now      func() time.Time
	// Poll bounds how long an idle runner sleeps before looking again.
	Poll time.Duration
	// Lease is how long a claimed job is reserved for its runner.
	Lease time.Duration
	// Batch is how many jobs one claim takes.
	Batch int
	// Parallel is how many jobs of a batch run at once: a slow webhook
	// receiver must not hold up payouts.
	Parallel int
}

// DefaultPoll is how often a runner made by NewRunner looks for due work.
const DefaultPoll = 500 * time.Millisecond

// NewRunner returns a runner of the given handlers by job kind.
func NewRunner(store Store, handlers map[string]Handler, log *slog.Logger) *Runner {
	return &Runner{
		store: store, handlers: handlers, kinds: slices.Sorted(maps.Keys(handlers)), log: log, now: time.Now,
		// A claim takes only what runs at once, for a short lease: after a
		// crash, other nodes wait at most that long for the jobs it held.
		Poll: DefaultPoll, Lease: 10 * time.Second, Batch: 8, Parallel: 8,
	}
}

// Run works until ctx ends. The job in hand is finished first, so a graceful
// shutdown leaves no half-done work (and a crash leaves only leased jobs that
// come due again).
func (r *Runner) Run(ctx context.Context) error {
	for {
		n, err := r.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("background work", "error", err.Error())
		}
		if n == r.Batch && err == nil {
			continue // more may be due
		}
		wait := r.Poll
		if next, err := r.store.NextDue(ctx, r.kinds); err == nil && !next.IsZero() {
			wait = min(max(next.Sub(r.now()), 0), r.Poll)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// RunOnce claims and runs the jobs due now; it returns how many it ran.
func (r *Runner) RunOnce(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// Once claiming starts it finishes, and so do the claimed jobs: a claim
	// committed as shutdown begins would otherwise leave its jobs leased, idle
	// until the lease ends.
	work := context.WithoutCancel(ctx)
	jobs, err := r.store.Claim(work, r.now(), r.Lease, r.Batch, r.kinds)
	if err != nil {
		return 0, err
	}
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, max(r.Parallel, 1))
	var wg sync.WaitGroup
	for i, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = r.run(work, j)
		})
	}
	wg.Wait()
	return len(jobs), errors.Join(errs...)
}

func (r *Runner) run(ctx context.Context, j wallet.Job) error {
	h := r.handlers[j.Kind] // claimed by kind: it has one
	// The handler stops well within the lease, so another runner rarely
	// claims a job still running; when it does (a claim that waited for a
	// turn, clocks apart between nodes), the store refuses this run's outcome.
	// The store is told the outcome on a context of its own: a handler that
	// ran out of time still gets its backoff recorded, and a database that
	// does not answer cannot hold the runner (the job comes due again when
	// its lease ends).
	hctx, cancel := context.WithTimeout(ctx, r.Lease*2/3)
	defer cancel()
	retryAt, err := h(hctx, j.Ref)
	ctx, cancelOutcome := context.WithTimeout(ctx, r.Lease/3)
	defer cancelOutcome()
	switch {
	case err != nil:
		r.log.Warn("job failed", "kind", j.Kind, "job", j.ID, "ref", j.Ref, "attempt", j.Attempts, "error", err.Error())
		err = r.store.Reschedule(ctx, j, r.now().Add(backoff(j.Attempts)), err.Error())
	case !retryAt.IsZero():
		err = r.store.Reschedule(ctx, j, retryAt, "")
	default:
		err = r.store.Done(ctx, j, r.now())
	}
	return r.finished(j, err)
}

// finished reports a job's outcome that the store refused because the job was
// claimed again since: not a failure, as the newer claim decides it.
func (r *Runner) finished(j wallet.Job, err error) error {
	if errors.Is(err, wallet.ErrNotFound) {
		r.log.Warn("job claimed again while it ran; the newer claim decides it", "kind", j.Kind, "job", j.ID, "claim", j.Claim)
		return nil
	}
	return err
}

// backoff grows exponentially from one second to ten minutes.
func backoff(attempt int) time.Duration {
	d := time.Second << min(max(attempt-1, 0), 10)
	return min(d, 10*time.Minute)
}
