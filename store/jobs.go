package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/perspektiva/walletd/wallet"
)

// JobStore implements jobs.Store on the database.
func (db *DB) JobStore() JobStore { return JobStore{db} }

// JobStore keeps durable background work. Claims are leases: a claimed job is
// not due again until its lease_until, so a job whose runner died comes due
// again then.
type JobStore struct{ db *DB }

// NextDue returns when the earliest unfinished job of kinds is due (zero when
// none). It reads from the read pool, so idle polling never takes SQLite's
// write lock.
func (s JobStore) NextDue(ctx context.Context, kinds []string) (time.Time, error) {
	var next sql.NullInt64
	in, args := kindIn(kinds, 1)
	err := s.db.row(ctx, `SELECT MIN(CASE WHEN lease_until > run_at THEN lease_until ELSE run_at END)
		FROM jobs WHERE done_at IS NULL AND kind IN (`+in+`)`, args...).Scan(&next)
	return fromNullMicros(next), err
}

// kindIn is an IN list of kinds as placeholders numbered from first, and its
// arguments. A runner's kinds are fixed, so each runner prepares one statement.
func kindIn(kinds []string, first int) (string, []any) {
	if len(kinds) == 0 {
		return "NULL", nil // matches nothing
	}
	marks := make([]string, len(kinds))
	args := make([]any, len(kinds))
	for i, k := range kinds {
		marks[i], args[i] = "$"+strconv.Itoa(first+i), k
	}
	return strings.Join(marks, ", "), args
}

// ReleaseClaims frees every claimed job and every Idempotency-Key claim still
// running. Only a node that knows it is alone may call it: SQLite's single
// node at start, when any claim left belongs to a process that died.
func (s JobStore) ReleaseClaims(ctx context.Context) error {
	if _, err := s.db.exec(ctx, `UPDATE jobs SET lease_until = NULL WHERE lease_until IS NOT NULL AND done_at IS NULL`); err != nil {
		return err
	}
	_, err := s.db.exec(ctx, `DELETE FROM idempotency_keys WHERE status_code = 0`)
	return err
}

// Claim leases up to limit due jobs of kinds until now+lease.
func (s JobStore) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int, kinds []string) ([]wallet.Job, error) {
	var jobs []wallet.Job
	in, kindArgs := kindIn(kinds, 4)
	args := append([]any{micros(now.Add(lease)), micros(now), limit}, kindArgs...)
	err := s.db.inTx(ctx, s.db.write, nil, func(ctx context.Context, tx *sql.Tx) error {
		jobs = jobs[:0]
		rows, err := tx.QueryContext(ctx, `UPDATE jobs SET lease_until = $1, attempts = attempts + 1, claims = claims + 1
			WHERE id IN (SELECT id FROM jobs WHERE done_at IS NULL AND run_at <= $2
			             AND (lease_until IS NULL OR lease_until <= $2) AND kind IN (`+in+`)
			             ORDER BY run_at LIMIT $3`+s.db.eng.skipLocked+`)
			RETURNING id, kind, ref_id, created_at, attempts, claims`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				j       wallet.Job
				created int64
			)
			if err := rows.Scan(&j.ID, &j.Kind, &j.Ref, &created, &j.Attempts, &j.Claim); err != nil {
				return err
			}
			j.CreatedAt = fromMicros(created)
			jobs = append(jobs, j)
		}
		return rows.Err()
	})
	return jobs, err
}

// Done marks a claimed job finished (jobs.Store). The claim fences it: a
// runner whose lease ran out cannot finish the job another runner has claimed
// since, nor a job enqueued again since. attempts is matched as well, so that
// the fence holds while older nodes, which count claims in attempts alone,
// still run beside newer ones.
func (s JobStore) Done(ctx context.Context, claimed wallet.Job, at time.Time) error {
	res, err := s.db.exec(ctx, `UPDATE jobs SET done_at = $1, lease_until = NULL
		WHERE id = $2 AND claims = $3 AND attempts = $4 AND done_at IS NULL`,
		micros(at), claimed.ID, claimed.Claim, claimed.Attempts)
	return mustAffect(res, err)
}

// Reschedule sets when a claimed job runs next, recording why when it failed;
// fenced as Done is.
func (s JobStore) Reschedule(ctx context.Context, claimed wallet.Job, runAt time.Time, lastError string) error {
	res, err := s.db.exec(ctx, `UPDATE jobs SET run_at = $1, last_error = $2, lease_until = NULL
		WHERE id = $3 AND claims = $4 AND attempts = $5 AND done_at IS NULL`,
		micros(runAt), lastError, claimed.ID, claimed.Claim, claimed.Attempts)
	return mustAffect(res, err)
}

// Backlog counts unfinished jobs that are due and tells how late the oldest is.
func (s JobStore) Backlog(ctx context.Context, now time.Time) (int, time.Duration, error) {
	var (
		n      int
		oldest sql.NullInt64
	)
	err := s.db.row(ctx, `SELECT COUNT(*), MIN(run_at) FROM jobs
		WHERE done_at IS NULL AND run_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)`,
		micros(now)).Scan(&n, &oldest)
	if err != nil || !oldest.Valid {
		return n, 0, err
	}
	return n, now.Sub(fromMicros(oldest.Int64)), nil
}

// PendingAge tells, by operation type, how long ago the oldest operation still
// PENDING was created: a payout the provider keeps in progress is retried
// for as long as it takes, and shows here rather than in the backlog.
func (s JobStore) PendingAge(ctx context.Context, now time.Time) (map[wallet.OperationType]time.Duration, error) {
	ages := map[wallet.OperationType]time.Duration{}
	err := s.db.rows(ctx, each(func(r scanner) error {
		var (
			typ    wallet.OperationType
			oldest int64
		)
		if err := r.Scan(&typ, &oldest); err != nil {
			return err
		}
		ages[typ] = now.Sub(fromMicros(oldest))
		return nil
	}), `SELECT type, MIN(created_at) FROM operations WHERE status = 'PENDING' GROUP BY type`)
	return ages, err
}
