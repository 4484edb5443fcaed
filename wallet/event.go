package wallet

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Event is a notification to a partner about an operation outcome (PROTOCOL.md
// section 8). It is written in the same transaction as the outcome (an outbox)
// and delivered by background work.
type Event struct {
	ID          uuid.UUID
	PartnerID   uuid.UUID
	Type        string
	WalletID    uuid.UUID
	OperationID uuid.UUID // Nil for wallet.closed
	CreatedAt   time.Time
}

// Event types.
const (
	EventRefillSucceeded     = "refill.succeeded"
	EventRefillFailed        = "refill.failed"
	EventRefillExpired       = "refill.expired"
	EventWithdrawalSucceeded = "withdrawal.succeeded"
	EventWithdrawalFailed    = "withdrawal.failed"
	EventPaymentSucceeded    = "payment.succeeded"
	EventRefundSucceeded     = "refund.succeeded"
	EventWalletClosed        = "wallet.closed"
)

// JobWebhook delivers one event.
const JobWebhook = "webhook"

// emit records an event and schedules its delivery, inside the caller's
// transaction, when the partner takes webhooks.
func (s *Service) emit(ctx context.Context, tx Tx, typ string, partnerID, walletID, opID uuid.UUID) error {
	id, err := s.newID()
	if err != nil {
		return err
	}
	now := s.now()
	delivery, err := s.newJob(JobWebhook, id, now)
	if err != nil {
		return err
	}
	return tx.InsertEvent(ctx, Event{ID: id, PartnerID: partnerID, Type: typ, WalletID: walletID, OperationID: opID, CreatedAt: now}, delivery)
}

// emitOp records the event of an operation's outcome.
func (s *Service) emitOp(ctx context.Context, tx Tx, typ string, op Operation) error {
	return s.emit(ctx, tx, typ, op.PartnerID, op.WalletID, op.ID)
}

// topUpEvent names the event of a top-up's outcome.
func topUpEvent(st OperationStatus) string {
	switch st {
	case Success:
		return EventRefillSucceeded
	case Expired:
		return EventRefillExpired
	}
	return EventRefillFailed
}
