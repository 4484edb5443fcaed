package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/wallet"
	"github.com/perspektiva/walletd/webhook"
)

// WebhookStore implements webhook.Store and the operator's webhook commands.
func (db *DB) WebhookStore() WebhookStore { return WebhookStore{db} }

// WebhookStore is the webhook outbox.
type WebhookStore struct{ db *DB }

var _ webhook.Store = WebhookStore{}

const eventColumns = `id, partner_id, type, wallet_id, operation_id, created_at, status, attempts, delivered_at, replayed_at`

func scanEvent(row scanner) (webhook.Record, error) {
	var (
		r                   webhook.Record
		op                  uuid.NullUUID
		created             int64
		delivered, replayed sql.NullInt64
	)
	err := row.Scan(&r.ID, &r.PartnerID, &r.Type, &r.WalletID, &op, &created, &r.Status, &r.Attempts, &delivered, &replayed)
	r.OperationID, r.CreatedAt = op.UUID, fromMicros(created)
	r.DeliveredAt, r.ReplayedAt = fromNullMicros(delivered), fromNullMicros(replayed)
	return r, notFound(err)
}

// Event returns one event with its delivery state.
func (s WebhookStore) Event(ctx context.Context, id uuid.UUID) (webhook.Record, error) {
	return scanEvent(s.db.row(ctx, `SELECT `+eventColumns+` FROM webhook_events WHERE id = $1`, id))
}

// Target returns the partner's webhook URL and secret.
func (s WebhookStore) Target(ctx context.Context, partnerID uuid.UUID) (webhook.Target, error) {
	var t webhook.Target
	err := s.db.row(ctx, `SELECT webhook_url, webhook_secret FROM partners WHERE id = $1`, partnerID).
		Scan(&t.URL, &t.Secret)
	return t, notFound(err)
}

// Operation returns the operation an event is about.
func (s WebhookStore) Operation(ctx context.Context, id uuid.UUID) (wallet.Operation, error) {
	return scanOperation(s.db.row(ctx, `SELECT `+operationColumns+` FROM operations WHERE id = $1`, id))
}

// RecordAttempt keeps one delivery attempt and the event's state after it,
// in one transaction.
func (s WebhookStore) RecordAttempt(ctx context.Context, a webhook.Attempt, st webhook.Status, at time.Time) error {
	return s.db.inTx(ctx, s.db.write, nil, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts
			(event_id, attempt, attempted_at, url, status_code, error, duration_us) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (event_id, attempt) DO NOTHING`,
			a.EventID, a.Number, micros(a.At), a.URL, a.StatusCode, a.Error, a.Duration.Microseconds()); err != nil {
			return err
		}
		return mustAffect(tx.ExecContext(ctx, setEventStatus, string(st), a.Number, nullMicros(at), a.EventID))
	})
}

// setEventStatus records an event's delivery state: status, attempts, when it
// was settled, of the event $4.
const setEventStatus = `UPDATE webhook_events SET status = $1, attempts = $2, delivered_at = $3 WHERE id = $4`

// SetStatus records an event's delivery state.
func (s WebhookStore) SetStatus(ctx context.Context, id uuid.UUID, st webhook.Status, attempts int, at time.Time) error {
	return mustAffect(s.db.exec(ctx, setEventStatus, string(st), attempts, nullMicros(at), id))
}

// List returns a partner's latest events, newest first.
func (s WebhookStore) List(ctx context.Context, partnerID uuid.UUID, limit int) ([]webhook.Record, error) {
	var out []webhook.Record
	err := s.db.rows(ctx, each(func(r scanner) error {
		rec, err := scanEvent(r)
		if err == nil {
			out = append(out, rec)
		}
		return err
	}), `SELECT `+eventColumns+` FROM webhook_events
		WHERE partner_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`, partnerID, limit)
	return out, err
}

// Attempts returns the delivery attempts of an event, oldest first.
func (s WebhookStore) Attempts(ctx context.Context, eventID uuid.UUID) ([]webhook.Attempt, error) {
	var out []webhook.Attempt
	err := s.db.rows(ctx, each(func(r scanner) error {
		var (
			a      webhook.Attempt
			at, us int64
		)
		if err := r.Scan(&a.Number, &at, &a.URL, &a.StatusCode, &a.Error, &us); err != nil {
			return err
		}
		a.EventID, a.At, a.Duration = eventID, fromMicros(at), time.Duration(us)*time.Microsecond
		out = append(out, a)
		return nil
	}), `SELECT attempt, attempted_at, url, status_code, error, duration_us
		FROM webhook_attempts WHERE event_id = $1 ORDER BY attempt`, eventID)
	return out, err
}

// Replay sends an event again, with the same eventId: it goes back to PENDING
// and its delivery job runs at once.
func (s WebhookStore) Replay(ctx context.Context, eventID uuid.UUID, now time.Time) error {
	return s.db.inTx(ctx, s.db.write, nil, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_events SET status = 'PENDING', delivered_at = NULL, replayed_at = $2
			WHERE id = $1`, eventID, micros(now))
		if err := mustAffect(res, err); err != nil {
			return err
		}
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		wt := &walletTx{q: sqlStmts{tx}, eng: &s.db.eng}
		return wt.EnqueueJob(ctx, wallet.Job{ID: id, Kind: wallet.JobWebhook, Ref: eventID, RunAt: now, CreatedAt: now})
	})
}

// SetTarget sets a partner's webhook URL and secret.
func (s WebhookStore) SetTarget(ctx context.Context, partnerID uuid.UUID, t webhook.Target) error {
	res, err := s.db.exec(ctx, `UPDATE partners SET webhook_url = $1, webhook_secret = $2 WHERE id = $3`,
		t.URL, t.Secret, partnerID)
	return mustAffect(res, err)
}
