package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/idempotency"
)

// IdempotencyStore implements idempotency.Store on the database.
func (db *DB) IdempotencyStore() idempotency.Store { return idempotencyStore{db} }

type idempotencyStore struct{ db *DB }

func (s idempotencyStore) Begin(ctx context.Context, partnerID uuid.UUID, key string, hash []byte, now time.Time,
	lease, ttl time.Duration,
) (idempotency.Record, bool, error) {
	var (
		rec     idempotency.Record
		claimed bool
	)
	err := s.db.inTx(ctx, s.db.write, nil, func(ctx context.Context, tx *sql.Tx) error {
		rec, claimed = idempotency.Record{}, false
		res, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (partner_id, key, request_hash, status_code, body, created_at)
			VALUES ($1, $2, $3, 0, $4, $5) ON CONFLICT (partner_id, key) DO NOTHING`,
			partnerID, key, hash, []byte{}, micros(now))
		if err := mustAffect(res, err); err == nil {
			claimed = true
			return nil
		} else if !isNotFound(err) {
			return err
		}
		// Take over a claim abandoned by a crashed request, or a record past its 24 hours.
		res, err = tx.ExecContext(ctx, `UPDATE idempotency_keys SET request_hash = $1, status_code = 0, body = $2, created_at = $3
			WHERE partner_id = $4 AND key = $5 AND ((status_code = 0 AND created_at < $6) OR created_at < $7)`,
			hash, []byte{}, micros(now), partnerID, key, micros(now.Add(-lease)), micros(now.Add(-ttl)))
		if err := mustAffect(res, err); err == nil {
			claimed = true
			return nil
		} else if !isNotFound(err) {
			return err
		}
		err = tx.QueryRowContext(ctx, `SELECT request_hash, status_code, body FROM idempotency_keys WHERE partner_id = $1 AND key = $2`,
			partnerID, key).Scan(&rec.Hash, &rec.Status, &rec.Body)
		if errors.Is(err, sql.ErrNoRows) {
			return errors.New("idempotency key vanished during its claim")
		}
		return err
	})
	return rec, claimed, err
}

func (s idempotencyStore) Finish(ctx context.Context, partnerID uuid.UUID, key string, claimedAt time.Time, status int, body []byte) error {
	// Tied to the claim's time: an answer never lands on a later request's
	// claim, and running the statement again (exec) finds the same row.
	err := mustAffect(s.db.exec(ctx, `UPDATE idempotency_keys SET status_code = $1, body = $2
		WHERE partner_id = $3 AND key = $4 AND created_at = $5`,
		status, body, partnerID, key, micros(claimedAt)))
	if isNotFound(err) {
		return idempotency.ErrClaimLost
	}
	return err
}

func (s idempotencyStore) Release(ctx context.Context, partnerID uuid.UUID, key string, claimedAt time.Time) error {
	_, err := s.db.exec(ctx, `DELETE FROM idempotency_keys
		WHERE partner_id = $1 AND key = $2 AND status_code = 0 AND created_at = $3`,
		partnerID, key, micros(claimedAt))
	return err
}

// PurgeIdempotency deletes records older than cutoff (background housekeeping).
func (db *DB) PurgeIdempotency(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := db.exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, micros(cutoff))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
