// Package webhook delivers partner notifications (PROTOCOL.md section 8): events
// written to the outbox with their operations are POSTed to the partner's URL,
// signed with its webhook secret, at least once, with exponential backoff for
// 24 hours, every attempt recorded.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/protocol"
	"github.com/perspektiva/walletd/wallet"
)

// SignatureHeader carries the signature of a delivery.
const SignatureHeader = "X-Wallet-Signature"

// Sign returns the header value for body sent at t:
// t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Status of an event's delivery.
type Status string

// Delivery statuses.
const (
	Pending   Status = "PENDING"
	Delivered Status = "DELIVERED"
	Failed    Status = "FAILED"  // gave up after the retry window
	Skipped   Status = "SKIPPED" // the partner has no webhook URL
)

// Record is an event with its delivery state, for the operator.
type Record struct {
	wallet.Event
	Status      Status
	Attempts    int
	DeliveredAt time.Time
	ReplayedAt  time.Time // when the operator last asked for it again; zero if never
}

// Attempt is one delivery try.
type Attempt struct {
	EventID    uuid.UUID
	Number     int
	At         time.Time
	URL        string
	StatusCode int // 0 when no HTTP answer came back
	Error      string
	Duration   time.Duration
}

// Target is where a partner's events go.
type Target struct {
	URL    string
	Secret string
}

// Store is the outbox as delivery needs it.
type Store interface {
	Event(ctx context.Context, id uuid.UUID) (Record, error)
	Target(ctx context.Context, partnerID uuid.UUID) (Target, error)
	Operation(ctx context.Context, id uuid.UUID) (wallet.Operation, error)
	// RecordAttempt keeps an attempt and the event's state after it (at: when
	// it was settled, zero while pending) together.
	RecordAttempt(ctx context.Context, a Attempt, s Status, at time.Time) error
	SetStatus(ctx context.Context, id uuid.UUID, s Status, attempts int, at time.Time) error
}

// Body is the JSON a partner receives.
type Body struct {
	EventID   uuid.UUID            `json:"eventId"`
	Type      string               `json:"type"`
	CreatedAt string               `json:"createdAt"`
	WalletID  uuid.UUID            `json:"walletId"`
	Operation *protocol.ReportItem `json:"operation"`
}

// Config tunes a Deliverer.
type Config struct {
	Client   *http.Client     // 5 s timeout when nil; redirects are never followed
	Location *time.Location   // protocol times
	Window   time.Duration    // how long to keep retrying; 24 h when zero
	Now      func() time.Time // time.Now when nil
	Logger   *slog.Logger
	// Observe, when set, hears each attempt's outcome: delivered, retry, failed, skipped.
	Observe func(outcome string)
}

// Deliverer sends events.
type Deliverer struct {
	store   Store
	client  *http.Client
	loc     *time.Location
	window  time.Duration
	now     func() time.Time
	log     *slog.Logger
	observe func(string)
}

// NewDeliverer returns a Deliverer over store.
func NewDeliverer(store Store, cfg Config) *Deliverer {
	d := &Deliverer{store: store, client: cfg.Client, loc: cfg.Location, window: cfg.Window, now: cfg.Now, log: cfg.Logger, observe: cfg.Observe}
	if d.observe == nil {
		d.observe = func(string) {}
	}
	if d.client == nil {
		// Shorter than a job's run time, so a slow receiver is an attempt that
		// failed rather than a job that timed out.
		d.client = &http.Client{Timeout: 5 * time.Second}
	}
	// A redirect is never followed: a 302 would GET the target without the
	// body (and its 200 would count as delivered), a 307 would re-send the
	// signed body to another host. The 3xx answer is a failed attempt. The
	// caller's client is copied, not changed.
	c := *d.client
	c.CheckRedirect = noRedirect
	d.client = &c
	if d.loc == nil {
		d.loc = time.UTC
	}
	if d.window <= 0 {
		d.window = 24 * time.Hour
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	return d
}

// Render builds an event's body. It depends only on the event and its
// operation's final state, so every attempt sends the same bytes.
func (d *Deliverer) Render(ctx context.Context, e wallet.Event) ([]byte, error) {
	b := Body{EventID: e.ID, Type: e.Type, CreatedAt: protocol.FormatTime(e.CreatedAt, d.loc), WalletID: e.WalletID}
	if e.OperationID != uuid.Nil {
		op, err := d.store.Operation(ctx, e.OperationID)
		if err != nil {
			return nil, fmt.Errorf("operation of event %s: %w", e.ID, err)
		}
		item := protocol.NewReportItem(op, d.loc)
		b.Operation = &item
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Deliver makes one attempt at an event (a jobs.Handler). It returns when to
// try again after a failure, or zero when the event is settled.
func (d *Deliverer) Deliver(ctx context.Context, eventID uuid.UUID) (time.Time, error) {
	rec, err := d.store.Event(ctx, eventID)
	if err != nil || rec.Status != Pending {
		return time.Time{}, err
	}
	target, err := d.store.Target(ctx, rec.PartnerID)
	if err != nil {
		return time.Time{}, err
	}
	now := d.now()
	if target.URL == "" {
		if err := d.store.SetStatus(ctx, eventID, Skipped, rec.Attempts, now); err != nil {
			return time.Time{}, err
		}
		d.observe("skipped")
		return time.Time{}, nil
	}
	body, err := d.Render(ctx, rec.Event)
	if err != nil {
		return time.Time{}, err
	}
	attempt := rec.Attempts + 1
	a := d.post(ctx, target, body, now)
	a.EventID, a.Number = eventID, attempt
	st, settled, next, outcome := Pending, time.Time{}, now.Add(backoff(attempt)), "retry"
	switch {
	case a.StatusCode >= 200 && a.StatusCode < 300:
		st, settled, next, outcome = Delivered, d.now(), time.Time{}, "delivered"
	case next.After(windowStart(rec).Add(d.window)):
		st, settled, next, outcome = Failed, d.now(), time.Time{}, "failed"
	}
	// One write: the outbox never shows an attempt its event does not count.
	// The outcome is counted once it is recorded: a failed write is tried
	// again, and would count twice.
	if err := d.store.RecordAttempt(ctx, a, st, settled); err != nil {
		return time.Time{}, err
	}
	d.observe(outcome)
	if st == Failed {
		d.log.Warn("webhook given up", "event", eventID, "attempts", attempt)
	}
	return next, nil
}

// windowStart is when an event's retry window began: when it was created, or
// when the operator last asked for it again.
func windowStart(rec Record) time.Time {
	if rec.ReplayedAt.After(rec.CreatedAt) {
		return rec.ReplayedAt
	}
	return rec.CreatedAt
}

func (d *Deliverer) post(ctx context.Context, target Target, body []byte, now time.Time) Attempt {
	a := Attempt{At: now, URL: target.URL}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.URL, bytes.NewReader(body))
	if err != nil {
		a.Error = err.Error()
		return a
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "walletd-webhooks/1")
	req.Header.Set(SignatureHeader, Sign(target.Secret, now, body))
	start := time.Now()
	resp, err := d.client.Do(req)
	a.Duration = time.Since(start)
	if err != nil {
		a.Error = err.Error()
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			a.Error = "timeout"
		}
		return a
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	a.StatusCode = resp.StatusCode
	return a
}

// noRedirect makes the client return a redirect answer as it is.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// backoff is 1 s, 2 s, 4 s, ... capped at one hour between attempts.
func backoff(attempt int) time.Duration {
	return min(time.Second<<min(attempt-1, 12), time.Hour)
}
