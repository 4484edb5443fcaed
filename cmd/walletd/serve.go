package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/perspektiva/walletd/app"
	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/httpapi"
	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/wallet"
)

// serveConfig is everything serve reads from flags and the environment.
type serveConfig struct {
	dsn        string
	addr       string
	publicURL  string
	sandbox    bool
	accessTTL  time.Duration
	refreshTTL time.Duration
	location   *time.Location
	limits     wallet.SystemLimits
	maxConns   int
	logLevel   slog.Level
	adminAddr  string
	tlsCert    string
	tlsKey     string
	httpLimits httpapi.Limits
	topUpTTL   time.Duration
	payTTL     time.Duration
	payoutWait time.Duration
}

func loadServeConfig(args []string, env envFunc, stderr io.Writer) (serveConfig, error) {
	fs, dsn := newFlags("serve", env, stderr)
	addr := fs.String("addr", env.str("WALLET_ADDR", ":8080"), "listen address (WALLET_ADDR)")
	publicURL := fs.String("public-url", env.str("WALLET_PUBLIC_URL", ""), "base URL partners and clients reach (WALLET_PUBLIC_URL); default http://localhost:PORT")
	// The sandbox's default depends on the database, known only once the
	// flags are parsed; WALLET_SANDBOX, then --sandbox, override it.
	envGiven := env("WALLET_SANDBOX") != ""
	envSandbox, err := env.boolean("WALLET_SANDBOX", false)
	if err != nil {
		return serveConfig{}, err
	}
	sandbox := fs.Bool("sandbox", envSandbox, "serve the SBP sandbox, which credits top-ups without payment (WALLET_SANDBOX); "+
		"default true with SQLite, false with PostgreSQL")
	if err := parse(fs, args); err != nil {
		return serveConfig{}, err
	}
	given := envGiven
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "sandbox" })
	if !given {
		*sandbox = sandboxDefault(*dsn)
	}
	cfg := serveConfig{dsn: *dsn, addr: *addr, publicURL: strings.TrimRight(*publicURL, "/"), sandbox: *sandbox}
	if cfg.accessTTL, err = env.duration("WALLET_ACCESS_TOKEN_TTL", 15*time.Minute); err != nil {
		return cfg, err
	}
	if cfg.refreshTTL, err = env.duration("WALLET_REFRESH_TOKEN_TTL", 30*24*time.Hour); err != nil {
		return cfg, err
	}
	if cfg.topUpTTL, err = env.duration("WALLET_TOPUP_TTL", 30*time.Minute); err != nil {
		return cfg, err
	}
	if cfg.payTTL, err = env.duration("WALLET_PAYMENT_TOKEN_TTL", 15*time.Minute); err != nil {
		return cfg, err
	}
	if cfg.payTTL < time.Second {
		// A payment token carries its expiry in whole seconds.
		return cfg, fmt.Errorf("WALLET_PAYMENT_TOKEN_TTL=%q: want at least 1s", env("WALLET_PAYMENT_TOKEN_TTL"))
	}
	if cfg.payoutWait, err = env.duration("WALLET_SANDBOX_PAYOUT_DELAY", 2*time.Second); err != nil {
		return cfg, err
	}
	if cfg.maxConns, err = env.integer("WALLET_DB_MAX_CONNS", 0); err != nil {
		return cfg, err
	}
	tz := env.str("WALLET_TIMEZONE", "Europe/Moscow")
	if cfg.location, err = time.LoadLocation(tz); err != nil {
		return cfg, fmt.Errorf("WALLET_TIMEZONE=%q: %w", tz, err)
	}
	if cfg.limits, err = loadLimits(env("WALLET_LIMITS_FILE")); err != nil {
		return cfg, err
	}
	cfg.adminAddr = env("WALLET_ADMIN_ADDR")
	if cfg.httpLimits, err = loadHTTPLimits(env); err != nil {
		return cfg, err
	}
	cfg.tlsCert, cfg.tlsKey = env("WALLET_TLS_CERT"), env("WALLET_TLS_KEY")
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return cfg, errors.New("WALLET_TLS_CERT and WALLET_TLS_KEY go together")
	}
	if err := cfg.logLevel.UnmarshalText([]byte(env.str("WALLET_LOG_LEVEL", "info"))); err != nil {
		return cfg, fmt.Errorf("WALLET_LOG_LEVEL: %w", err)
	}
	return cfg, nil
}

func serve(ctx context.Context, args []string, env envFunc, stdout, stderr io.Writer) error {
	cfg, err := loadServeConfig(args, env, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	if cfg.sandbox && store.IsPostgres(cfg.dsn) {
		logger.Warn("the SBP sandbox is on with PostgreSQL: anyone may confirm a top-up at POST /sandbox/sbp/{qrcId}/confirm, " +
			"with no authorisation, and it is credited without any payment; it must not run in production (--sandbox=false)")
	}

	db, err := openDB(ctx, cfg.dsn, cfg.maxConns)
	if err != nil {
		return err
	}
	defer db.Close()

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.addr)
	if err != nil {
		return err
	}
	if cfg.publicURL == "" {
		scheme := "http"
		if cfg.tlsCert != "" {
			scheme = "https"
		}
		cfg.publicURL = scheme + "://localhost:" + portOf(ln.Addr())
	}

	a, err := app.New(ctx, app.Config{
		DB: db, PublicURL: cfg.publicURL, Sandbox: cfg.sandbox, PayoutDelay: cfg.payoutWait,
		TopUpTTL: cfg.topUpTTL, PaymentTokenTTL: cfg.payTTL, AccessTTL: cfg.accessTTL, RefreshTTL: cfg.refreshTTL,
		Location: cfg.location, Limits: cfg.limits, Logger: logger, HTTPLimits: cfg.httpLimits,
	})
	if err != nil {
		ln.Close()
		return err
	}
	if cfg.sandbox {
		// The demo credentials go to stdout, and so to the logs of a
		// container: only a sandbox setup, whose money is play money, gets them.
		if err := bootstrapDemo(ctx, a.Auth, a.Wallets, cfg.publicURL, stdout); err != nil {
			ln.Close()
			return err
		}
	}
	handler := a.Handler
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("walletd listening", "addr", ln.Addr().String(), "tls", cfg.tlsCert != "", "engine", db.Engine(),
		"publicUrl", cfg.publicURL, "sandbox", cfg.sandbox)

	// Background work stops after the HTTP server has drained, so requests in
	// flight can still enqueue it; what is left waits in the database.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	waitWork := a.Background(workCtx)

	if cfg.adminAddr != "" {
		// Profiling stays off the public listener: it is for operators on a
		// private address only.
		admin := &http.Server{Addr: cfg.adminAddr, Handler: adminMux(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := admin.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("admin listener", "error", err.Error())
			}
		}()
		defer func() { _ = admin.Close() }()
		logger.Info("admin listener", "addr", cfg.adminAddr)
	}

	errc := make(chan error, 1)
	if cfg.tlsCert != "" {
		// PROTOCOL.md section 1: TLS 1.2 at least whenever TLS is on.
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		go func() { errc <- srv.ServeTLS(ln, cfg.tlsCert, cfg.tlsKey) }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	select {
	case err := <-errc:
		stopWork()
		waitWork()
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	stopWork()
	waitWork()
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func portOf(a net.Addr) string {
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "8080"
	}
	return port
}

// sandboxDefault is whether serve runs the SBP sandbox unless told: yes for
// the embedded SQLite setup, made to try the service out, and no for
// PostgreSQL, the production setup, where a sandbox left on would let anyone
// top a wallet up for free.
func sandboxDefault(dsn string) bool { return !store.IsPostgres(dsn) }

// bootstrapDemo gives a brand-new database a demo partner and TSP and prints
// their credentials once, so a newcomer can call the API at once.
func bootstrapDemo(ctx context.Context, authSvc *auth.Service, wallets *wallet.Service, publicURL string, stdout io.Writer) error {
	has, err := authSvc.HasPartners(ctx)
	if err != nil || has {
		return err
	}
	creds, err := authSvc.CreatePartner(ctx, "Демо-партнёр", "")
	if err != nil {
		return err
	}
	t, err := wallets.CreateTSP(ctx, creds.PartnerID, "Кофейня «Зерно»")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `A new database: created a demo partner and TSP. These credentials are shown once.
%s
  partner_id     %s
  client_id      %s
  client_secret  %s
  webhook secret %s
  demo TSP id    %s

Get a token:
  curl -s -u '%s:%s' -d grant_type=client_credentials -d partner_id=%s %s/api/wallet/v1/oauth/token

`, strings.Repeat("-", 60), creds.PartnerID, creds.ClientID, creds.ClientSecret, creds.WebhookSecret, t.ID,
		creds.ClientID, creds.ClientSecret, creds.PartnerID, publicURL)
	return nil
}

// adminMux serves the operator's diagnostics: pprof profiles.
func adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// loadHTTPLimits reads the abuse limits: a per-partner request rate (off unless
// set) and the throttling of failed token requests (on by default).
func loadHTTPLimits(env envFunc) (httpapi.Limits, error) {
	var (
		l   httpapi.Limits
		err error
	)
	rate := env("WALLET_RATE_LIMIT")
	if rate != "" {
		if l.PartnerRate, err = strconv.ParseFloat(rate, 64); err != nil || l.PartnerRate < 0 {
			return l, fmt.Errorf("WALLET_RATE_LIMIT=%q: want requests per second per partner", rate)
		}
	}
	if l.PartnerBurst, err = env.integer("WALLET_RATE_BURST", 0); err != nil {
		return l, err
	}
	if l.ClientFailures, err = env.integer("WALLET_TOKEN_FAILURES_PER_CLIENT", 30); err != nil {
		return l, err
	}
	if l.AddressFailures, err = env.integer("WALLET_TOKEN_FAILURES_PER_ADDRESS", 300); err != nil {
		return l, err
	}
	if l.TokenWindow, err = env.duration("WALLET_TOKEN_FAILURE_WINDOW", time.Minute); err != nil {
		return l, err
	}
	l.TrustedProxies, err = prefixes("WALLET_TRUSTED_PROXIES", env("WALLET_TRUSTED_PROXIES"))
	return l, err
}

// prefixes reads a comma-separated list of addresses and CIDR blocks.
func prefixes(name, list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return nil, fmt.Errorf("%s: %q is neither an address nor a CIDR block", name, item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
