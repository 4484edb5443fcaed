package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/wallet"
)

// runJobs: the durable queue. A claim is an exclusive lease, and its outcome
// counts only while it is the job's latest claim.
func runJobs(t *testing.T, open func(t *testing.T) *store.DB) {
	t0 := time.Date(2026, time.March, 10, 9, 0, 0, 0, time.UTC)
	const lease = time.Minute

	enqueue := func(t *testing.T, db *store.DB, j wallet.Job) wallet.Job {
		t.Helper()
		mustUpdate(t, db, "EnqueueJob", func(ctx context.Context, tx wallet.Tx) error { return tx.EnqueueJob(ctx, j) })
		return j
	}
	newJob := func() wallet.Job {
		return wallet.Job{ID: uuid.New(), Kind: wallet.JobPayout, Ref: uuid.New(), RunAt: t0, CreatedAt: t0}
	}
	claim := func(t *testing.T, db *store.DB, now time.Time) []wallet.Job {
		t.Helper()
		jobs, err := db.JobStore().Claim(context.Background(), now, lease, 100, []string{wallet.JobPayout})
		mustNil(t, err, "Claim")
		return jobs
	}
	claimOne := func(t *testing.T, db *store.DB, now time.Time, attempts int) wallet.Job {
		t.Helper()
		jobs := claim(t, db, now)
		if len(jobs) != 1 || jobs[0].Attempts != attempts {
			t.Fatalf("claim at %s: %+v, want one job at attempt %d", now.Sub(t0), jobs, attempts)
		}
		return jobs[0]
	}

	t.Run("ClaimsAreExclusive", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		const n, claimers = 40, 8
		for range n {
			enqueue(t, db, newJob())
		}
		got := make([][]wallet.Job, claimers)
		errs := concurrently(claimers, func(i int) error {
			var err error
			got[i], err = db.JobStore().Claim(context.Background(), t0, lease, 10, []string{wallet.JobPayout})
			return err
		})
		seen := map[uuid.UUID]int{}
		for i, err := range errs {
			mustNil(t, err, "Claim")
			for _, j := range got[i] {
				seen[j.ID]++
				if j.Attempts != 1 {
					t.Errorf("job %s claimed at attempt %d, want 1", j.ID, j.Attempts)
				}
			}
		}
		for id, k := range seen {
			if k > 1 {
				t.Errorf("job %s claimed %d times under one lease", id, k)
			}
		}
		if len(seen) != n {
			t.Errorf("%d claimers took %d distinct jobs, want all %d", claimers, len(seen), n)
		}
	})

	// A runner claims and waits for the kinds it runs only, so that one kind
	// (webhooks to a dead receiver) cannot hold up another (payouts).
	t.Run("KindsApart", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		db := open(t)
		payout := enqueue(t, db, newJob())
		hook := newJob()
		hook.Kind, hook.RunAt = wallet.JobWebhook, t0.Add(-time.Minute)
		enqueue(t, db, hook)
		for _, tt := range []struct {
			kinds []string
			want  []wallet.Job
			due   time.Time
		}{
			{[]string{wallet.JobPayout}, []wallet.Job{payout}, t0},
			{[]string{wallet.JobWebhook}, []wallet.Job{hook}, hook.RunAt},
			{[]string{wallet.JobExpireTopUp}, nil, time.Time{}},
			{nil, nil, time.Time{}},
		} {
			next, err := db.JobStore().NextDue(ctx, tt.kinds)
			mustNil(t, err, "NextDue")
			if !next.Equal(tt.due) {
				t.Errorf("NextDue(%v) = %v, want %v", tt.kinds, next, tt.due)
			}
			jobs, err := db.JobStore().Claim(ctx, t0, lease, 10, tt.kinds)
			mustNil(t, err, "Claim")
			if len(jobs) != len(tt.want) || (len(jobs) == 1 && jobs[0].ID != tt.want[0].ID) {
				t.Errorf("Claim(%v) took %+v, want %+v", tt.kinds, jobs, tt.want)
			}
		}
	})

	t.Run("LeaseRunsOut", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		enqueue(t, db, newJob())
		claimOne(t, db, t0, 1)
		if jobs := claim(t, db, t0.Add(lease-time.Second)); len(jobs) != 0 {
			t.Fatalf("claimed again within the lease: %+v", jobs)
		}
		claimOne(t, db, t0.Add(lease), 2) // its runner died: the job comes due again
	})

	// A runner whose lease ran out while it worked must not finish the job
	// the next runner holds: not mark it done under that runner, nor hand it
	// to a third.
	finishes := map[string]func(ctx context.Context, db *store.DB, j wallet.Job) error{
		"Done": func(ctx context.Context, db *store.DB, j wallet.Job) error {
			return db.JobStore().Done(ctx, j, t0.Add(lease))
		},
		"Reschedule": func(ctx context.Context, db *store.DB, j wallet.Job) error {
			return db.JobStore().Reschedule(ctx, j, t0.Add(lease), "timeout")
		},
	}
	for name, finish := range finishes {
		t.Run("StaleClaimCannotFinish/"+name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := open(t)
			enqueue(t, db, newJob())
			stale := claimOne(t, db, t0, 1)
			current := claimOne(t, db, t0.Add(lease), 2)
			mustIs(t, finish(ctx, db, stale), wallet.ErrNotFound, name+" by the stale claim")
			if jobs := claim(t, db, t0.Add(lease+time.Second)); len(jobs) != 0 {
				t.Fatalf("the job left its current claim: claimed again at attempt %d", jobs[0].Attempts)
			}
			mustNil(t, finish(ctx, db, current), name+" by the current claim")
		})
	}

	t.Run("DoneIsFinal", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		db := open(t)
		enqueue(t, db, newJob())
		j := claimOne(t, db, t0, 1)
		mustNil(t, db.JobStore().Done(ctx, j, t0), "Done")
		mustIs(t, db.JobStore().Done(ctx, j, t0), wallet.ErrNotFound, "Done again")
		if jobs := claim(t, db, t0.Add(24*time.Hour)); len(jobs) != 0 {
			t.Fatalf("a finished job was claimed: %+v", jobs)
		}
		next, err := db.JobStore().NextDue(ctx, []string{wallet.JobPayout})
		mustNil(t, err, "NextDue")
		if !next.IsZero() {
			t.Errorf("NextDue = %s with every job done, want zero", next)
		}
	})

	t.Run("RescheduleSetsTheNextRun", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		db := open(t)
		enqueue(t, db, newJob())
		j := claimOne(t, db, t0, 1)
		mustNil(t, db.JobStore().Reschedule(ctx, j, t0.Add(time.Hour), "SBP: timeout"), "Reschedule")
		if jobs := claim(t, db, t0.Add(time.Hour-time.Second)); len(jobs) != 0 {
			t.Fatalf("claimed before its next run: %+v", jobs)
		}
		claimOne(t, db, t0.Add(time.Hour), 2)
	})

	// Enqueued again while a runner holds it (a webhook replayed during its
	// delivery), the job runs anew, its attempts from the start: the earlier
	// claim cannot finish it, before the new run's claim or after.
	for _, staleAfterNewClaim := range []bool{false, true} {
		t.Run(fmt.Sprintf("EnqueuedAgainRunsAnew/staleFinishAfterNewClaim=%v", staleAfterNewClaim), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := open(t)
			j := enqueue(t, db, newJob())
			held := claimOne(t, db, t0, 1)
			again := j
			again.ID = uuid.New() // a new job of the same kind and reference
			enqueue(t, db, again)
			var anew wallet.Job
			if staleAfterNewClaim {
				anew = claimOne(t, db, t0, 1)
			}
			mustIs(t, db.JobStore().Done(ctx, held, t0), wallet.ErrNotFound, "Done by the claim before")
			mustIs(t, db.JobStore().Reschedule(ctx, held, t0, "late"), wallet.ErrNotFound, "Reschedule by the claim before")
			if !staleAfterNewClaim {
				anew = claimOne(t, db, t0, 1)
			} else if jobs := claim(t, db, t0.Add(time.Second)); len(jobs) != 0 {
				t.Fatalf("the job left the new run's claim: %+v", jobs)
			}
			if anew.ID != j.ID {
				t.Errorf("claimed job %s, want the one job of its kind and reference, %s", anew.ID, j.ID)
			}
			mustNil(t, db.JobStore().Done(ctx, anew, t0), "Done by the new run")
		})
	}
}
