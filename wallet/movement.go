package wallet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/idempotency"
	"github.com/perspektiva/walletd/money"
)

// retryDuplicates runs fn again when it lost a race on a unique key (a
// concurrent request under the same Idempotency-Key, say): the next attempt
// sees the winner's row.
func retryDuplicates[T any](fn func() (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := fn()
		if errors.Is(err, ErrDuplicate) && attempt < 3 {
			continue
		}
		return v, err
	}
}

// prior decides what op, the partner's operation under a request's
// Idempotency-Key, means for the request: the answer to give again when it is
// the same request, IDEMPOTENCY_KEY_REUSED when it is not. An operation older
// than the key's window does not count: past it the key is the partner's to
// use again, and in a transaction that may create an operation under it (tx
// not nil) the old operation lets go of it, the key being unique per partner.
func (s *Service) prior(ctx context.Context, tx Tx, op Operation, same func(Operation) bool) (Operation, bool, error) {
	if op.CreatedAt.Before(s.now().Add(-idempotency.TTL)) {
		if tx != nil {
			return Operation{}, false, tx.ReleaseIdemKey(ctx, op.ID)
		}
		return Operation{}, false, nil
	}
	if !same(op) {
		return Operation{}, false, Fail(CodeIdempotencyReused)
	}
	return op, true, nil
}

// newOperation runs the transaction of a request that creates an operation
// under an optional Idempotency-Key: it locks the active wallet, answers a
// repeated request with the operation it created before (same reports whether
// it is the same request), and otherwise lets create make the operation at
// now, the time of the attempt, with the wallet and its limit state in now's
// month read in the same round trip as the lock.
func (s *Service) newOperation(ctx context.Context, partnerID, walletID uuid.UUID, idemKey string,
	same func(Operation) bool, create func(ctx context.Context, tx Tx, sc OperationScope, now time.Time) (Operation, error),
) (Operation, error) {
	return retryDuplicates(func() (Operation, error) {
		var (
			op      Operation
			created bool
		)
		err := s.update(ctx, func(ctx context.Context, tx Tx) error {
			now := s.now()
			sc, err := tx.OperationScope(ctx, partnerID, walletID, idemKey, s.monthOf(now))
			if sc.Wallet, err = found(sc.Wallet, err); err != nil {
				return err
			}
			if sc.PriorFound {
				prev, ok, err := s.prior(ctx, tx, sc.Prior, same)
				if err != nil || ok {
					op, created = prev, false
					return err
				}
			}
			if err := requireActive(sc.Wallet); err != nil {
				return err
			}
			op, err = create(ctx, tx, sc, now)
			created = err == nil
			return err
		})
		if err == nil && created {
			s.observe(op.Type, op.Status)
		}
		return op, err
	})
}

func (s *Service) ledgerTx(opID uuid.UUID, kind string, postings []Posting) (LedgerTx, error) {
	id, err := s.newID()
	return LedgerTx{ID: id, OperationID: opID, Kind: kind, CreatedAt: s.now(), Postings: postings}, err
}

// post writes a ledger transaction.
func (s *Service) post(ctx context.Context, tx Tx, opID uuid.UUID, kind string, postings []Posting) error {
	lt, err := s.ledgerTx(opID, kind, postings)
	if err != nil {
		return err
	}
	return tx.Post(ctx, lt)
}

// update runs fn in a read-write transaction. The store's overdraft guard may
// refuse a posting at the call or, when writes are deferred, at the commit:
// either way the partner gets INSUFFICIENT_FUNDS.
func (s *Service) update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	err := s.store.Update(ctx, fn)
	if errors.Is(err, ErrInsufficientFunds) {
		return FailField(CodeInsufficientFunds, "amount", "недостаточно средств")
	}
	return err
}

// checkAmount refuses an amount of money to move that the protocol does not
// allow, in the words the HTTP edge uses for the same.
func checkAmount(a money.Amount) error {
	switch {
	case a <= 0:
		return Invalid("amount", "должно быть больше нуля")
	case a > money.Max:
		return Invalid("amount", money.ReasonTooLarge)
	}
	return nil
}

// Refill starts a top-up through SBP: a PENDING CREDIT with a link the client
// confirms in a bank app. Errors: VALIDATION_ERROR, WALLET_NOT_FOUND,
// WALLET_CLOSED, OPERATION_DISABLED, LIMIT_EXCEEDED, IDEMPOTENCY_KEY_REUSED,
// UNAVAILABLE (SBP did not issue the link).
func (s *Service) Refill(ctx context.Context, partnerID, walletID uuid.UUID, amount money.Amount, idemKey string) (Operation, error) {
	if err := checkAmount(amount); err != nil {
		return Operation{}, err
	}
	id, err := s.newID()
	if err != nil {
		return Operation{}, err
	}
	// The link's lifetime runs from its issue; the operation is created when
	// its transaction runs, a moment later.
	issued := s.now()
	expires := issued.Add(s.topUpTTL)
	same := func(o Operation) bool { return o.Type == Credit && o.WalletID == walletID && o.Amount == amount }
	// The link is issued outside the transaction (no lock waits on SBP), so
	// refusals and repeats are answered first, from a read: most refused
	// top-ups leave no link at the provider, and an unknown wallet is 404, not
	// 503, while SBP is down. The transaction checks everything again. A link
	// it then drops (a refusal in between, a lost race for the key, a failed
	// commit) was never shown to anyone, so no one can pay it; it lapses at
	// the provider when it expires.
	if prev, done, err := s.precheckRefill(ctx, partnerID, walletID, amount, idemKey, issued, same); err != nil || done {
		return prev, err
	}
	link, err := s.sbp.IssueTopUp(ctx, TopUpOrder{OperationID: id, Amount: amount, ExpiresAt: expires})
	if err != nil {
		return Operation{}, fmt.Errorf("%w: issue SBP link: %w", Fail(CodeUnavailable), err)
	}
	return s.newOperation(ctx, partnerID, walletID, idemKey, same, func(ctx context.Context, tx Tx, sc OperationScope, now time.Time) (Operation, error) {
		w, month := sc.Wallet, s.monthOf(now)
		if err := s.limitsOf(w, sc.Overrides, sc.Usage).credit(amount, w.PendingCredit); err != nil {
			return Operation{}, err
		}
		op := Operation{
			ID: id, WalletID: w.ID, PartnerID: partnerID, Type: Credit, Status: Pending, Amount: amount,
			QRCID: link.QRCID, Payload: link.Payload, IdemKey: idemKey,
			Description: "Пополнение через СБП", Month: month, CreatedAt: now, ExpiresAt: expires,
		}
		if err := tx.InsertOperation(ctx, op); err != nil {
			return Operation{}, err
		}
		if err := tx.AddPendingCredit(ctx, w.ID, amount); err != nil {
			return Operation{}, err
		}
		if err := tx.AddMonthUsage(ctx, w.ID, month, Credit, amount); err != nil {
			return Operation{}, err
		}
		return op, s.enqueue(ctx, tx, JobExpireTopUp, id, expires)
	})
}

// precheckRefill answers a top-up that would be refused, or that repeats an
// Idempotency-Key (done, with the first operation), without a transaction.
func (s *Service) precheckRefill(ctx context.Context, partnerID, walletID uuid.UUID, amount money.Amount, idemKey string,
	now time.Time, same func(Operation) bool,
) (prev Operation, done bool, err error) {
	err = s.store.View(ctx, func(ctx context.Context, tx Tx) error {
		sc, err := tx.OperationScope(ctx, partnerID, walletID, idemKey, s.monthOf(now))
		w, err := found(sc.Wallet, err)
		if err != nil {
			return err
		}
		if sc.PriorFound {
			if prev, done, err = s.prior(ctx, nil, sc.Prior, same); err != nil || done {
				return err
			}
		}
		if err := requireActive(w); err != nil {
			return err
		}
		return s.limitsOf(w, sc.Overrides, sc.Usage).credit(amount, w.PendingCredit)
	})
	return prev, done, err
}

func (s *Service) enqueue(ctx context.Context, tx Tx, kind string, ref uuid.UUID, at time.Time) error {
	j, err := s.newJob(kind, ref, at)
	if err != nil {
		return err
	}
	return tx.EnqueueJob(ctx, j)
}

// newJob is background work of kind on ref, due at.
func (s *Service) newJob(kind string, ref uuid.UUID, at time.Time) (Job, error) {
	id, err := s.newID()
	return Job{ID: id, Kind: kind, Ref: ref, RunAt: at, CreatedAt: s.now()}, err
}

// lockedOperation locks an operation's wallet and then the operation, in that
// order everywhere, so concurrent confirmations, expiries and payouts queue
// instead of deadlocking.
func lockedOperation(ctx context.Context, tx Tx, opID uuid.UUID) (Operation, Wallet, error) {
	op, err := tx.OperationByID(ctx, opID)
	if err != nil {
		return Operation{}, Wallet{}, err
	}
	return lockOperation(ctx, tx, op)
}

// lockOperation is lockedOperation for an operation already read (unlocked):
// the wallet and owner never change, only the status needs the locked read.
func lockOperation(ctx context.Context, tx Tx, op Operation) (Operation, Wallet, error) {
	w, op, err := tx.LockOperation(ctx, op.PartnerID, op.WalletID, op.ID)
	return op, w, err
}

// finishTopUp ends a PENDING top-up: releases its pending amount and, unless it
// succeeded, its monthly usage.
func (s *Service) finishTopUp(ctx context.Context, tx Tx, op *Operation, status OperationStatus, at time.Time) error {
	op.Status, op.FinishedAt = status, at
	if err := tx.UpdateOperation(ctx, *op); err != nil {
		return err
	}
	if err := tx.AddPendingCredit(ctx, op.WalletID, -op.Amount); err != nil {
		return err
	}
	if status != Success {
		if err := tx.AddMonthUsage(ctx, op.WalletID, op.Month, Credit, -op.Amount); err != nil {
			return err
		}
	}
	return s.emitOp(ctx, tx, topUpEvent(status), *op)
}

// ConfirmTopUp is the SBP side's confirmation of a top-up link. It applies once:
// a confirmation of a finished top-up changes nothing and returns it as it is.
// Limits are checked again; when they no longer hold the top-up FAILS.
func (s *Service) ConfirmTopUp(ctx context.Context, qrcID string) (Operation, error) {
	return s.settleTopUp(ctx, qrcID, true)
}

// DeclineTopUp is the client declining the top-up in the bank app.
func (s *Service) DeclineTopUp(ctx context.Context, qrcID string) (Operation, error) {
	return s.settleTopUp(ctx, qrcID, false)
}

func (s *Service) settleTopUp(ctx context.Context, qrcID string, confirm bool) (Operation, error) {
	var (
		op      Operation
		settled bool
	)
	err := s.update(ctx, func(ctx context.Context, tx Tx) error {
		settled = false
		found, err := tx.OperationByQRC(ctx, qrcID)
		if errors.Is(err, ErrNotFound) {
			return Fail(CodeOperationNotFound)
		}
		if err != nil {
			return err
		}
		var w Wallet
		if op, w, err = lockOperation(ctx, tx, found); err != nil || op.Final() {
			return err
		}
		settled = true
		now := s.now()
		switch {
		case !now.Before(op.ExpiresAt):
			return s.finishTopUp(ctx, tx, &op, Expired, now)
		case !confirm:
			return s.finishTopUp(ctx, tx, &op, Failed, now)
		}
		l, err := s.loadLimits(ctx, tx, w, op.Month)
		if err != nil {
			return err
		}
		// The top-up's own amount is already in the month's usage and in the
		// pending sum; check what the wallet will hold once it is credited.
		l.used[Credit] -= op.Amount
		if l.credit(op.Amount, 0) != nil || w.Status != Active {
			return s.finishTopUp(ctx, tx, &op, Failed, now)
		}
		if err := s.finishTopUp(ctx, tx, &op, Success, now); err != nil {
			return err
		}
		return s.post(ctx, tx, op.ID, TxTopUp, transfer(openAcc(SBPInbound), walletAcc(op.WalletID), op.Amount))
	})
	if err == nil && settled {
		s.observe(op.Type, op.Status)
	}
	return op, err
}

// ExpireTopUp is the background work that ends an unconfirmed top-up. It returns
// when to try again if the top-up is not due yet.
func (s *Service) ExpireTopUp(ctx context.Context, opID uuid.UUID) (time.Time, error) {
	var (
		retry   time.Time
		expired bool
	)
	err := s.update(ctx, func(ctx context.Context, tx Tx) error {
		expired = false
		op, _, err := lockedOperation(ctx, tx, opID)
		if errors.Is(err, ErrNotFound) || (err == nil && op.Final()) {
			return nil
		}
		if err != nil {
			return err
		}
		now := s.now()
		if now.Before(op.ExpiresAt) {
			retry = op.ExpiresAt
			return nil
		}
		expired = true
		return s.finishTopUp(ctx, tx, &op, Expired, now)
	})
	if err == nil && expired {
		s.observe(Credit, Expired)
	}
	return retry, err
}

// InitPayment issues a single-use payment token bound to the wallet.
// Errors: WALLET_NOT_FOUND, WALLET_CLOSED.
func (s *Service) InitPayment(ctx context.Context, partnerID, walletID uuid.UUID) (PaymentToken, error) {
	err := s.store.View(ctx, func(ctx context.Context, tx Tx) error {
		_, err := active(tx.Wallet(ctx, partnerID, walletID, false))
		return err
	})
	if err != nil {
		return PaymentToken{}, err
	}
	now := s.now()
	pt := PaymentToken{WalletID: walletID, CreatedAt: now}
	pt.Token, pt.ExpiresAt, err = s.newPaymentToken(walletID, now.Add(s.tokenTTL))
	return pt, err
}

// PaymentRequest is the second step of a payment.
type PaymentRequest struct {
	WalletID uuid.UUID
	Token    uuid.UUID
	Amount   money.Amount
	TSPID    uuid.UUID
}

func tokenInvalid(reason string) error { return FailField(CodeTokenInvalid, "token", reason) }

// Pay debits the wallet and credits the TSP at once. Repeating the same payment
// returns the first answer and moves nothing; a refused payment leaves the token
// usable. Errors: WALLET_NOT_FOUND, WALLET_CLOSED, TOKEN_INVALID, TSP_NOT_FOUND,
// OPERATION_DISABLED, LIMIT_EXCEEDED, INSUFFICIENT_FUNDS.
func (s *Service) Pay(ctx context.Context, partnerID uuid.UUID, req PaymentRequest) (Operation, error) {
	if err := checkAmount(req.Amount); err != nil {
		return Operation{}, err
	}
	id, err := s.newID()
	if err != nil {
		return Operation{}, err
	}
	// Two payments with one token race to the unique index on PAYMENT tokens;
	// the loser runs again and finds the winner's payment.
	return retryDuplicates(func() (Operation, error) { return s.pay(ctx, partnerID, id, req) })
}

func (s *Service) pay(ctx context.Context, partnerID, id uuid.UUID, req PaymentRequest) (Operation, error) {
	var op Operation
	err := s.update(ctx, func(ctx context.Context, tx Tx) error {
		now := s.now()
		month := s.monthOf(now)
		sc, err := tx.PaymentScope(ctx, partnerID, req.WalletID, req.TSPID, req.Token, month)
		w, err := found(sc.Wallet, err)
		if err != nil {
			return err
		}
		prev, tsp := sc.Paid, sc.TSP
		switch {
		case sc.PaidFound && (prev.WalletID != w.ID || prev.Amount != req.Amount || prev.TSPID != req.TSPID):
			return tokenInvalid("токен уже использован для другой оплаты")
		case sc.PaidFound:
			op = prev // the same payment again: its first answer, no money moves
			return nil
		}
		if err := requireActive(w); err != nil {
			return err
		}
		expires, ok := s.checkPaymentToken(w.ID, req.Token)
		if !ok {
			return tokenInvalid("токен не найден или выдан для другого кошелька")
		}
		if !now.Before(expires) {
			return tokenInvalid("срок действия токена истёк")
		}
		if !sc.TSPFound {
			return FailField(CodeTSPNotFound, "tsp", "ТСП не найдено у партнёра")
		}
		l := s.limitsOf(w, sc.Overrides, sc.Usage)
		if err := l.spend(Payment, req.Amount); err != nil {
			return err
		}
		op = Operation{
			ID: id, WalletID: w.ID, PartnerID: partnerID, Type: Payment, Status: Success, Amount: req.Amount,
			TSPID: tsp.ID, Token: req.Token, Description: "Оплата: " + tsp.Name, Month: month,
			CreatedAt: now, FinishedAt: now,
		}
		if err := tx.InsertOperation(ctx, op); err != nil {
			return err
		}
		if err := s.post(ctx, tx, id, TxPayment, transfer(walletAcc(w.ID), openAcc(tsp.ID), req.Amount)); err != nil {
			return err
		}
		if err := tx.AddMonthUsage(ctx, w.ID, month, Payment, req.Amount); err != nil {
			return err
		}
		return s.emitOp(ctx, tx, EventPaymentSucceeded, op)
	})
	if err == nil && op.ID == id {
		s.observe(Payment, Success)
	}
	return op, err
}

// Refund returns (part of) a payment from the TSP to the wallet; amount zero
// means all that is not refunded yet. Refunds never exceed the payment and are
// bound only by the balance limit. Errors: WALLET_NOT_FOUND, WALLET_CLOSED,
// TOKEN_INVALID, VALIDATION_ERROR, LIMIT_EXCEEDED, IDEMPOTENCY_KEY_REUSED.
func (s *Service) Refund(ctx context.Context, partnerID, walletID, token uuid.UUID, requested money.Amount, idemKey string) (Operation, error) {
	if requested != 0 { // zero: all that is not refunded yet
		if err := checkAmount(requested); err != nil {
			return Operation{}, err
		}
	}
	id, err := s.newID()
	if err != nil {
		return Operation{}, err
	}
	same := func(o Operation) bool {
		return o.Type == Refund && o.WalletID == walletID && o.Token == token && (requested == 0 || o.Amount == requested)
	}
	return s.newOperation(ctx, partnerID, walletID, idemKey, same, func(ctx context.Context, tx Tx, sc OperationScope, now time.Time) (Operation, error) {
		w := sc.Wallet
		pay, err := tx.PaymentByToken(ctx, token)
		if errors.Is(err, ErrNotFound) || (err == nil && pay.WalletID != w.ID) {
			return Operation{}, tokenInvalid("оплата с таким токеном не найдена")
		}
		if err != nil {
			return Operation{}, err
		}
		left := pay.Amount - pay.Refunded
		amount := requested
		if amount == 0 {
			amount = left
		}
		if left == 0 {
			return Operation{}, Invalid("amount", "оплата уже возвращена полностью")
		}
		if amount > left {
			return Operation{}, Invalid("amount", fmt.Sprintf("больше суммы, доступной к возврату: %s", left))
		}
		month := s.monthOf(now)
		// A refund is bound by the balance limit alone: the usage does not count.
		if err := s.limitsOf(w, sc.Overrides, nil).balance(amount, w.PendingCredit); err != nil {
			return Operation{}, err
		}
		tsp, err := tx.TSP(ctx, partnerID, pay.TSPID)
		if err != nil {
			return Operation{}, err
		}
		op := Operation{
			ID: id, WalletID: w.ID, PartnerID: partnerID, Type: Refund, Status: Success, Amount: amount,
			TSPID: pay.TSPID, Token: token, ParentID: pay.ID, IdemKey: idemKey,
			Description: "Возврат: " + tsp.Name, Month: month, CreatedAt: now, FinishedAt: now,
		}
		if err := tx.InsertOperation(ctx, op); err != nil {
			return Operation{}, err
		}
		pay.Refunded += amount
		if err := tx.UpdateOperation(ctx, pay); err != nil {
			return Operation{}, err
		}
		if err := s.post(ctx, tx, id, TxRefund, transfer(openAcc(pay.TSPID), walletAcc(w.ID), amount)); err != nil {
			return Operation{}, err
		}
		return op, s.emitOp(ctx, tx, EventRefundSucceeded, op)
	})
}

// Withdraw holds amount at once as a PENDING DEBIT and sends the payout in the
// background. Errors: WALLET_NOT_FOUND, WALLET_CLOSED, BANK_NOT_FOUND,
// OPERATION_DISABLED, LIMIT_EXCEEDED, INSUFFICIENT_FUNDS, IDEMPOTENCY_KEY_REUSED,
// UNAVAILABLE (no SBP provider to pay it out).
func (s *Service) Withdraw(ctx context.Context, partnerID, walletID uuid.UUID, bankID string, amount money.Amount, idemKey string) (Operation, error) {
	if err := checkAmount(amount); err != nil {
		return Operation{}, err
	}
	id, err := s.newID()
	if err != nil {
		return Operation{}, err
	}
	same := func(o Operation) bool {
		return o.Type == Debit && o.WalletID == walletID && o.BankID == bankID && o.Amount == amount
	}
	return s.newOperation(ctx, partnerID, walletID, idemKey, same, func(ctx context.Context, tx Tx, sc OperationScope, now time.Time) (Operation, error) {
		bank, ok := s.bankName(bankID)
		if !ok {
			return Operation{}, FailField(CodeBankNotFound, "bankIdentifier", "банк не является участником СБП")
		}
		w, month := sc.Wallet, s.monthOf(now)
		if err := s.limitsOf(w, sc.Overrides, sc.Usage).spend(Debit, amount); err != nil {
			return Operation{}, err
		}
		if err := s.sbp.PayoutsAvailable(); err != nil {
			return Operation{}, fmt.Errorf("%w: %w", Fail(CodeUnavailable), err)
		}
		op := Operation{
			ID: id, WalletID: w.ID, PartnerID: partnerID, Type: Debit, Status: Pending, Amount: amount,
			BankID: bankID, IdemKey: idemKey, Description: "Вывод в банк: " + bank, Month: month, CreatedAt: now,
		}
		if err := tx.InsertOperation(ctx, op); err != nil {
			return Operation{}, err
		}
		if err := s.post(ctx, tx, id, TxPayoutHold, transfer(walletAcc(w.ID), openAcc(PayoutsInTransit), amount)); err != nil {
			return Operation{}, err
		}
		if err := tx.AddMonthUsage(ctx, w.ID, month, Debit, amount); err != nil {
			return Operation{}, err
		}
		return op, s.enqueue(ctx, tx, JobPayout, id, now)
	})
}

// payoutPollDelay is how long to wait before asking again about a payout the
// provider reports in progress without saying when to ask.
const payoutPollDelay = 10 * time.Second

// ProcessPayout is the background work of a withdrawal: it asks the SBP side to
// pay out and records the outcome once. It returns when to ask again while the
// payout is in progress. Only an explicit PayoutFailed returns the held money:
// a status it does not know is an error, so the job retries with backoff and
// the money stays held, since the payout may have been sent.
func (s *Service) ProcessPayout(ctx context.Context, opID uuid.UUID) (time.Time, error) {
	var op Operation
	err := s.store.View(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		op, err = tx.OperationByID(ctx, opID)
		return err
	})
	if errors.Is(err, ErrNotFound) || (err == nil && op.Final()) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	res, err := s.sbp.Payout(ctx, PayoutOrder{OperationID: op.ID, BankID: op.BankID, Amount: op.Amount, CreatedAt: op.CreatedAt})
	if err != nil {
		return time.Time{}, err
	}
	switch res.Status {
	case PayoutInProgress:
		// A zero time would mark the job done and leave the operation
		// PENDING for ever.
		if res.RetryAt.IsZero() {
			return s.now().Add(payoutPollDelay), nil
		}
		return res.RetryAt, nil
	case PayoutSucceeded:
		return time.Time{}, s.finishPayout(ctx, op, true)
	case PayoutFailed:
		return time.Time{}, s.finishPayout(ctx, op, false)
	default:
		return time.Time{}, fmt.Errorf("payout of operation %s: unknown payout status %d", op.ID, res.Status)
	}
}

// finishPayout records a payout's outcome on op, read before the payout was
// asked for; its status is read again under the lock.
func (s *Service) finishPayout(ctx context.Context, read Operation, ok bool) error {
	var done OperationStatus
	err := s.update(ctx, func(ctx context.Context, tx Tx) error {
		done = ""
		op, _, err := lockOperation(ctx, tx, read)
		if err != nil || op.Final() {
			return err
		}
		done = Failed
		if ok {
			done = Success
		}
		now := s.now()
		if ok {
			op.Status, op.FinishedAt = Success, now
			if err := tx.UpdateOperation(ctx, op); err != nil {
				return err
			}
			if err := s.post(ctx, tx, op.ID, TxPayoutSettle, transfer(openAcc(PayoutsInTransit), openAcc(SBPOutbound), op.Amount)); err != nil {
				return err
			}
			return s.emitOp(ctx, tx, EventWithdrawalSucceeded, op)
		}
		// A failed payout returns the held amount and frees its monthly usage.
		op.Status, op.FinishedAt = Failed, now
		if err := tx.UpdateOperation(ctx, op); err != nil {
			return err
		}
		if err := tx.AddMonthUsage(ctx, op.WalletID, op.Month, Debit, -op.Amount); err != nil {
			return err
		}
		if err := s.post(ctx, tx, op.ID, TxPayoutReturn, transfer(openAcc(PayoutsInTransit), walletAcc(op.WalletID), op.Amount)); err != nil {
			return err
		}
		return s.emitOp(ctx, tx, EventWithdrawalFailed, op)
	})
	if err == nil && done != "" {
		s.observe(Debit, done)
	}
	return err
}

// Operation returns one operation of the partner's wallet.
// Errors: WALLET_NOT_FOUND, OPERATION_NOT_FOUND.
func (s *Service) Operation(ctx context.Context, partnerID, walletID, opID uuid.UUID) (Operation, error) {
	var op Operation
	err := s.store.View(ctx, func(ctx context.Context, tx Tx) error {
		if _, err := wallet(ctx, tx, partnerID, walletID, false); err != nil {
			return err
		}
		var err error
		op, err = tx.Operation(ctx, partnerID, walletID, opID)
		if errors.Is(err, ErrNotFound) {
			return Fail(CodeOperationNotFound)
		}
		return err
	})
	return op, err
}

// ReportPage is one page of the operations report.
type ReportPage struct {
	Operations []Operation
	Total      int
	Page, Size int
}

// MaxPageSize is the largest report page.
const MaxPageSize = 100

// Report returns a page of the wallet's operations, newest first.
// Errors: WALLET_NOT_FOUND, VALIDATION_ERROR.
func (s *Service) Report(ctx context.Context, partnerID, walletID uuid.UUID, f ReportFilter) (ReportPage, error) {
	var v Validation
	if f.Size == 0 {
		f.Size = 20
	}
	if f.Size < 1 || f.Size > MaxPageSize {
		v.Add("size", fmt.Sprintf("от 1 до %d", MaxPageSize))
	}
	if f.Page < 0 {
		v.Add("page", "не может быть отрицательным")
	}
	if f.Type != "" && !f.Type.Valid() {
		v.Add("operationType", "допустимые значения: PAYMENT, CREDIT, DEBIT, REFUND")
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.From.After(f.To) {
		v.Add("dateFrom", "позже dateTo")
	}
	if f.AmountFrom.Valid && f.AmountTo.Valid && f.AmountFrom.Value > f.AmountTo.Value {
		v.Add("amountFrom", "больше amountTo")
	}
	if err := v.Err(); err != nil {
		return ReportPage{}, err
	}
	page := ReportPage{Page: f.Page, Size: f.Size}
	err := s.store.View(ctx, func(ctx context.Context, tx Tx) error {
		if _, err := wallet(ctx, tx, partnerID, walletID, false); err != nil {
			return err
		}
		var err error
		page.Operations, page.Total, err = tx.Report(ctx, walletID, f)
		return err
	})
	return page, err
}

// TopUp returns the top-up behind an SBP link id (the sandbox's bank page).
// Errors: OPERATION_NOT_FOUND.
func (s *Service) TopUp(ctx context.Context, qrcID string) (Operation, error) {
	var op Operation
	err := s.store.View(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		op, err = tx.OperationByQRC(ctx, qrcID)
		if errors.Is(err, ErrNotFound) {
			return Fail(CodeOperationNotFound)
		}
		return err
	})
	return op, err
}
