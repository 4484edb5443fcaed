package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/wallet"
	"github.com/perspektiva/walletd/webhook"
)

// setWebhook sets a partner's webhook URL and prints a new signing secret once.
func setWebhook(ctx context.Context, fs *flag.FlagSet, dsn *string, args []string, stdout io.Writer) error {
	id := fs.String("partner", "", "partner id (required)")
	raw := fs.String("url", "", "webhook URL, http or https (required; empty string removes it)")
	if err := parse(fs, args); err != nil {
		return err
	}
	pid, err := partnerID(*id)
	if err != nil {
		return err
	}
	if err := checkWebhookURL(*raw); err != nil {
		return err
	}
	secret, err := auth.NewWebhookSecret()
	if err != nil {
		return err
	}
	db, err := openDB(ctx, *dsn, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.WebhookStore().SetTarget(ctx, pid, webhook.Target{URL: *raw, Secret: secret}); err != nil {
		return partnerNotFound(pid, err)
	}
	return printJSON(stdout, map[string]string{"partnerId": pid.String(), "webhookUrl": *raw, "webhookSecret": secret})
}

// checkWebhookURL accepts an absolute http(s) URL, or none.
func checkWebhookURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: the webhook URL must be an absolute http(s) URL", errUsage)
	}
	return nil
}

type eventLine struct {
	EventID     string   `json:"eventId"`
	Type        string   `json:"type"`
	CreatedAt   string   `json:"createdAt"`
	WalletID    string   `json:"walletId"`
	OperationID string   `json:"operationId,omitempty"`
	Status      string   `json:"status"`
	Attempts    int      `json:"attempts"`
	DeliveredAt string   `json:"deliveredAt,omitempty"`
	Last        *attempt `json:"lastAttempt,omitempty"`
}

type attempt struct {
	At         string `json:"at"`
	StatusCode int    `json:"statusCode"`
	Error      string `json:"error,omitempty"`
	DurationMs int64  `json:"durationMs"`
}

func webhooks(ctx context.Context, args []string, env envFunc, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: webhooks list|replay", errUsage)
	}
	fs, dsn := newFlags("webhooks "+args[0], env, stderr)
	switch args[0] {
	case "list":
		id := fs.String("partner", "", "partner id (required)")
		limit := fs.Int("limit", 50, "how many of the latest events")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		pid, err := partnerID(*id)
		if err != nil {
			return err
		}
		db, err := openDB(ctx, *dsn, 2)
		if err != nil {
			return err
		}
		defer db.Close()
		ws := db.WebhookStore()
		recs, err := ws.List(ctx, pid, max(*limit, 1))
		if err != nil {
			return err
		}
		for _, r := range recs {
			line := eventLine{
				EventID: r.ID.String(), Type: r.Type, CreatedAt: rfc3339(r.CreatedAt),
				WalletID: r.WalletID.String(), Status: string(r.Status), Attempts: r.Attempts,
			}
			if r.OperationID != uuid.Nil {
				line.OperationID = r.OperationID.String()
			}
			if !r.DeliveredAt.IsZero() {
				line.DeliveredAt = rfc3339(r.DeliveredAt)
			}
			atts, err := ws.Attempts(ctx, r.ID)
			if err != nil {
				return err
			}
			if n := len(atts); n > 0 {
				a := atts[n-1]
				line.Last = &attempt{At: rfc3339(a.At), StatusCode: a.StatusCode, Error: a.Error, DurationMs: a.Duration.Milliseconds()}
			}
			if err := printJSON(stdout, line); err != nil {
				return err
			}
		}
		return nil
	case "replay":
		// EVENT_ID may stand before or after the flags.
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		if fs.NArg() == 0 {
			return fmt.Errorf("%w: webhooks replay EVENT_ID", errUsage)
		}
		raw := fs.Arg(0)
		if err := parse(fs, fs.Args()[1:]); err != nil {
			return err
		}
		eid, err := uuid.Parse(raw)
		if err != nil {
			return fmt.Errorf("%w: EVENT_ID must be a UUID", errUsage)
		}
		db, err := openDB(ctx, *dsn, 2)
		if err != nil {
			return err
		}
		defer db.Close()
		if err := db.WebhookStore().Replay(ctx, eid, time.Now()); err != nil {
			if errors.Is(err, wallet.ErrNotFound) {
				return fmt.Errorf("event %s not found", eid)
			}
			return err
		}
		return printJSON(stdout, map[string]string{"eventId": eid.String(), "status": string(webhook.Pending)})
	}
	return fmt.Errorf("%w: webhooks list|replay", errUsage)
}

// rfc3339 writes operator-facing times unambiguously, in UTC.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
