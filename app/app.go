// Package app wires walletd together: the domain services over a store, the
// SBP gateway, the HTTP API and the background work. cmd/walletd runs it as a
// process; tests and tools run the same wiring in-process.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/perspektiva/walletd/api"
	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/docs"
	"github.com/perspektiva/walletd/httpapi"
	"github.com/perspektiva/walletd/idempotency"
	"github.com/perspektiva/walletd/jobs"
	"github.com/perspektiva/walletd/sbp"
	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/wallet"
	"github.com/perspektiva/walletd/webhook"
)

// Config is everything the wiring needs; zero values take the documented defaults.
type Config struct {
	DB          *store.DB
	PublicURL   string // where clients reach walletd; SBP links point there
	Sandbox     bool   // serve the SBP sandbox and use it as the gateway
	PayoutDelay time.Duration
	TopUpTTL    time.Duration
	// PaymentTokenTTL is how long a payment token lives; 15 minutes when zero.
	PaymentTokenTTL time.Duration
	AccessTTL       time.Duration
	RefreshTTL      time.Duration
	Location        *time.Location
	Limits          wallet.SystemLimits
	Logger          *slog.Logger
	// HTTPLimits are the abuse limits of the HTTP edge.
	HTTPLimits httpapi.Limits
}

// App is a wired walletd.
type App struct {
	Wallets *wallet.Service
	Auth    *auth.Service
	Handler http.Handler

	db      *store.DB
	runners []*jobs.Runner // the kinds of work apart (see New)
	log     *slog.Logger
}

// New wires an App over cfg.DB (already migrated).
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	banks, err := sbp.LoadBanks()
	if err != nil {
		return nil, err
	}
	var gateway wallet.SBP = sbp.Unconfigured{}
	sandbox := sbp.NewSandbox(cfg.PublicURL, cfg.PayoutDelay)
	if cfg.Sandbox {
		gateway = sandbox
	}
	a := &App{db: cfg.DB, log: cfg.Logger}
	m := newMetrics(cfg.DB)
	a.Auth = auth.NewService(cfg.DB.AuthStore(), auth.Config{AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL})
	tokenKey, err := cfg.DB.ServiceKey(ctx, "payment-token", wallet.TokenKeySize)
	if err != nil {
		return nil, fmt.Errorf("payment token key: %w", err)
	}
	a.Wallets, err = wallet.NewService(cfg.DB, wallet.Config{
		TokenKey: tokenKey,
		Limits:   cfg.Limits, Location: cfg.Location, SBP: gateway, TopUpTTL: cfg.TopUpTTL, TokenTTL: cfg.PaymentTokenTTL, Observe: m.observeOperation,
		BankName: func(id string) (string, bool) {
			b, ok := banks.Find(id)
			return b.Name, ok
		},
	})
	if err != nil {
		return nil, err
	}
	httpCfg := httpapi.Config{
		Wallets: a.Wallets, Auth: a.Auth, Banks: banks, Logger: cfg.Logger, Spec: api.Spec(),
		Idempotency: cfg.DB.IdempotencyStore(),
		Unavailable: cfg.DB.Unavailable,
		Ready:       cfg.DB.Ping,
		Docs:        docs.Handler(api.Spec()),
		Limits:      cfg.HTTPLimits,
		Metrics:     m.http,

		MetricsHandler: m.handler(),
	}
	if cfg.Sandbox {
		httpCfg.Sandbox = sandbox.Handler(a.Wallets, cfg.Logger, a.Wallets.Location())
	}
	a.Handler = httpapi.New(httpCfg)

	hooks := webhook.NewDeliverer(cfg.DB.WebhookStore(), webhook.Config{
		Location: a.Wallets.Location(), Logger: cfg.Logger, Observe: m.observeWebhook,
	})
	a.runners = []*jobs.Runner{
		jobs.NewRunner(cfg.DB.JobStore(), map[string]jobs.Handler{
			wallet.JobExpireTopUp: a.Wallets.ExpireTopUp,
			wallet.JobPayout:      a.Wallets.ProcessPayout,
		}, cfg.Logger),
		// Deliveries wait on partners' receivers, up to their timeout each:
		// on a runner of their own, a receiver that is down holds up no
		// payout or expiry.
		jobs.NewRunner(cfg.DB.JobStore(), map[string]jobs.Handler{wallet.JobWebhook: hooks.Deliver}, cfg.Logger),
	}
	return a, nil
}

// Background runs the durable background work until ctx ends; the returned
// function waits for it to finish the jobs in hand. On SQLite, whose database
// serves one node, claims left by a process that died are released first.
func (a *App) Background(ctx context.Context) (wait func()) {
	if a.db.Engine() == "sqlite" {
		if err := a.db.JobStore().ReleaseClaims(ctx); err != nil {
			a.log.Warn("release claims of a previous process", "error", err.Error())
		}
	}
	var wg sync.WaitGroup
	for _, r := range a.runners {
		wg.Go(func() { _ = r.Run(ctx) })
	}
	wg.Go(func() { a.housekeeping(ctx) })
	return wg.Wait
}

// expiredTokensKept is how long expired OAuth tokens stay before they are
// purged: a day in which an operator can still look at them.
const expiredTokensKept = 24 * time.Hour

// housekeeping drops, hourly, Idempotency-Key records past their window and
// OAuth tokens long expired. Several nodes may do it at once: a row deleted
// twice is deleted once.
func (a *App) housekeeping(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		for _, p := range []struct {
			what  string
			purge func() (int64, error)
		}{
			{"idempotency keys", func() (int64, error) { return a.db.PurgeIdempotency(ctx, now.Add(-idempotency.TTL-time.Hour)) }},
			{"expired OAuth tokens", func() (int64, error) { return a.db.PurgeTokens(ctx, now.Add(-expiredTokensKept)) }},
		} {
			if n, err := p.purge(); err != nil && ctx.Err() == nil {
				a.log.Warn("purge "+p.what, "error", err.Error())
			} else if n > 0 {
				a.log.Info("purged "+p.what, "count", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
