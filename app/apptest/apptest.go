// Package apptest runs a complete walletd in-process on a temporary SQLite
// database, for the SDK's examples, integration tests and tools: the real
// wiring, the real database, a real HTTP listener on loopback.
package apptest

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/app"
	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/store"
)

// Server is a running walletd with one partner and one TSP.
type Server struct {
	URL     string
	Partner auth.Credentials
	TSPID   uuid.UUID
	DB      *store.DB

	http    *httptest.Server
	stop    context.CancelFunc
	waitBgd func()
	dir     string
}

// Options tune Start.
type Options struct {
	// DSN is the database; a temporary SQLite file when empty.
	DSN string
	// PayoutDelay is the sandbox's payout delay (default 100 ms, to keep examples quick).
	PayoutDelay time.Duration
	// WebhookURL is given to the partner.
	WebhookURL string
}

// Start starts a walletd; Close stops it and removes its temporary files.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	s := &Server{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if opts.DSN == "" {
		if s.dir, err = os.MkdirTemp("", "walletd-apptest-"); err != nil {
			return nil, err
		}
		opts.DSN = filepath.Join(s.dir, "wallet.db")
	}
	if opts.PayoutDelay == 0 {
		opts.PayoutDelay = 100 * time.Millisecond
	}
	if s.DB, err = store.Open(ctx, opts.DSN, store.Options{}); err != nil {
		return nil, err
	}
	if _, err = s.DB.Migrate(ctx); err != nil {
		return nil, err
	}
	s.http = httptest.NewUnstartedServer(nil)
	s.URL = "http://" + s.http.Listener.Addr().String()
	a, err := app.New(ctx, app.Config{DB: s.DB, PublicURL: s.URL, Sandbox: true, PayoutDelay: opts.PayoutDelay})
	if err != nil {
		return nil, err
	}
	if s.Partner, err = a.Auth.CreatePartner(ctx, "Партнёр", opts.WebhookURL); err != nil {
		return nil, err
	}
	tsp, err := a.Wallets.CreateTSP(ctx, s.Partner.PartnerID, "Кофейня «Зерно»")
	if err != nil {
		return nil, err
	}
	s.TSPID = tsp.ID
	s.http.Config.Handler = a.Handler
	s.http.Start()
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop, s.waitBgd = stop, a.Background(bg)
	return s, nil
}

// Close stops the server and its background work.
func (s *Server) Close() {
	if s.http != nil && s.http.URL != "" {
		s.http.Close()
	}
	if s.stop != nil {
		s.stop()
		s.waitBgd()
	}
	var err error
	if s.DB != nil {
		err = s.DB.Close()
	}
	if s.dir != "" {
		err = errors.Join(err, os.RemoveAll(s.dir))
	}
	_ = err
}
