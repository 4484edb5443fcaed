package jobs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

var t0 = time.Date(2026, time.March, 10, 9, 0, 0, 0, time.UTC)

func enqueue(t *testing.T, db *store.DB, kind string) wallet.Job {
	t.Helper()
	j := wallet.Job{ID: uuid.New(), Kind: kind, Ref: uuid.New(), RunAt: t0, CreatedAt: t0}
	if err := db.Update(context.Background(), func(ctx context.Context, tx wallet.Tx) error { return tx.EnqueueJob(ctx, j) }); err != nil {
		t.Fatal(err)
	}
	return j
}

func newTestRunner(db *store.DB, handlers map[string]Handler, log *bytes.Buffer) *Runner {
	r := NewRunner(db.JobStore(), handlers, slog.New(slog.NewTextHandler(log, nil)))
	r.now = func() time.Time { return t0 }
	return r
}

// TestRunnerOutcomes: what a handler answers decides whether its job is done,
// runs again later or is retried with backoff.
func TestRunnerOutcomes(t *testing.T) {
	t.Parallel()
	boom := errors.New("SBP: timeout")
	tests := []struct {
		name      string
		retryAt   time.Time
		err       error
		dueAgain  time.Time // zero: never again
		lastError string
	}{
		{name: "done"},
		{name: "in progress", retryAt: t0.Add(time.Minute), dueAgain: t0.Add(time.Minute)},
		{name: "failed", err: boom, dueAgain: t0.Add(backoff(1))},
	}
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		for _, tt := range tests {
			db := storetest.Open(t, e)
			j := enqueue(t, db, "test")
			var ran atomic.Int32
			var log bytes.Buffer
			r := newTestRunner(db, map[string]Handler{"test": func(_ context.Context, ref uuid.UUID) (time.Time, error) {
				if ref != j.Ref {
					t.Errorf("%s: handler got ref %s, want %s", tt.name, ref, j.Ref)
				}
				ran.Add(1)
				return tt.retryAt, tt.err
			}}, &log)
			if n, err := r.RunOnce(context.Background()); n != 1 || err != nil {
				t.Fatalf("%s: RunOnce = %d, %v; want 1 job", tt.name, n, err)
			}
			next, err := db.JobStore().NextDue(context.Background(), []string{"test"})
			if err != nil {
				t.Fatal(err)
			}
			if !next.Equal(tt.dueAgain) {
				t.Errorf("%s: next due %s, want %s", tt.name, next, tt.dueAgain)
			}
			if ran.Load() != 1 {
				t.Errorf("%s: handler ran %d times", tt.name, ran.Load())
			}
		}
	})
}

// TestRunnerLostLease: a job whose lease ran out while its handler worked,
// and which another node claimed meanwhile, is left to that node: this
// runner's outcome is refused, logged and not an error, and the other node
// still holds the job and finishes it.
func TestRunnerLostLease(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		db := storetest.Open(t, e)
		enqueue(t, db, "test")
		var other []wallet.Job
		var log bytes.Buffer
		r := newTestRunner(db, map[string]Handler{"test": func(ctx context.Context, _ uuid.UUID) (time.Time, error) {
			var err error
			other, err = db.JobStore().Claim(ctx, t0.Add(time.Hour), time.Minute, 10, []string{"test"}) // the other node, once the lease is out
			return time.Time{}, err
		}}, &log)
		if n, err := r.RunOnce(context.Background()); n != 1 || err != nil {
			t.Fatalf("RunOnce = %d, %v; want 1 job and no error", n, err)
		}
		if len(other) != 1 || other[0].Attempts != 2 {
			t.Fatalf("the other node claimed %+v, want the job at attempt 2", other)
		}
		if !strings.Contains(log.String(), "claimed again") {
			t.Errorf("the refused outcome is not logged:\n%s", log.String())
		}
		if jobs, err := db.JobStore().Claim(context.Background(), t0.Add(time.Hour+time.Second), time.Minute, 10, []string{"test"}); err != nil || len(jobs) != 0 {
			t.Fatalf("the job left the other node's claim: %+v, %v", jobs, err)
		}
		if err := db.JobStore().Done(context.Background(), other[0], t0.Add(time.Hour)); err != nil {
			t.Fatalf("the other node's Done: %v", err)
		}
	})
}

// TestRunnerHandlerOutOfTime: a handler that runs out of its time (SBP not
// answering) has its job rescheduled with backoff and the reason recorded,
// like any failure, rather than left to come due when its lease ends.
func TestRunnerHandlerOutOfTime(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		db := storetest.Open(t, e)
		enqueue(t, db, "test")
		var log bytes.Buffer
		r := newTestRunner(db, map[string]Handler{"test": func(ctx context.Context, _ uuid.UUID) (time.Time, error) {
			<-ctx.Done()
			return time.Time{}, ctx.Err()
		}}, &log)
		r.Lease = 1500 * time.Millisecond // the handler gives up after 1 s; the outcome has 0.5 s
		if n, err := r.RunOnce(context.Background()); n != 1 || err != nil {
			t.Fatalf("RunOnce = %d, %v; want 1 job and its failure recorded", n, err)
		}
		next, err := db.JobStore().NextDue(context.Background(), []string{"test"})
		if err != nil {
			t.Fatal(err)
		}
		if want := t0.Add(backoff(1)); !next.Equal(want) {
			t.Errorf("next due %s, want %s (the backoff after one failed attempt)", next.Sub(t0), want.Sub(t0))
		}
	})
}

// TestRunnersApart: a runner claims only the kinds it has handlers for, so
// work stuck on one kind (deliveries to a receiver that does not answer)
// holds up no runner of another.
func TestRunnersApart(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		db := storetest.Open(t, e)
		enqueue(t, db, "slow")
		enqueue(t, db, "fast")
		var log bytes.Buffer
		release, started := make(chan struct{}), make(chan struct{})
		slow := newTestRunner(db, map[string]Handler{"slow": func(context.Context, uuid.UUID) (time.Time, error) {
			close(started)
			<-release
			return time.Time{}, nil
		}}, &log)
		var fastRan atomic.Int32
		fast := newTestRunner(db, map[string]Handler{"fast": func(context.Context, uuid.UUID) (time.Time, error) {
			fastRan.Add(1)
			return time.Time{}, nil
		}}, &log)
		slowDone := make(chan error, 1)
		go func() {
			_, err := slow.RunOnce(context.Background())
			slowDone <- err
		}()
		<-started
		if n, err := fast.RunOnce(context.Background()); n != 1 || err != nil || fastRan.Load() != 1 {
			t.Errorf("fast runner while the slow one is stuck: ran %d (handler %d), %v; want its one job", n, fastRan.Load(), err)
		}
		close(release)
		if err := <-slowDone; err != nil {
			t.Fatal(err)
		}
		if next, err := db.JobStore().NextDue(context.Background(), []string{"slow", "fast"}); err != nil || !next.IsZero() {
			t.Errorf("after both: next due %v, %v; want nothing left", next, err)
		}
	})
}
