// Package httpapi is the partner protocol over HTTP: routing, request decoding,
// authentication of callers and the one place where domain errors become HTTP
// answers. Handlers are thin: decode, call the wallet.Service, encode.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/idempotency"
	"github.com/perspektiva/walletd/protocol"
	"github.com/perspektiva/walletd/sbp"
	"github.com/perspektiva/walletd/wallet"
)

// BasePath prefixes every protocol endpoint.
const BasePath = "/api/wallet/v1"

// maxBody is the largest request body accepted (PROTOCOL.md section 2, 413).
const maxBody = 64 << 10

// Config is what the HTTP layer needs from the rest of the program.
type Config struct {
	Wallets *wallet.Service
	Auth    *auth.Service
	Banks   *sbp.Banks
	Logger  *slog.Logger
	// Spec is the OpenAPI document served at BasePath/openapi.yaml.
	Spec []byte
	// Unavailable tells failures of an unreachable dependency (answered 503)
	// from other internal errors (500).
	Unavailable func(error) bool
	// Ready reports whether the service can take traffic (GET /readyz).
	Ready func(ctx context.Context) error
	// Idempotency keeps answers to requests with an Idempotency-Key.
	Idempotency idempotency.Store
	// Sandbox, when set, serves the SBP sandbox pages and API under /sandbox/sbp/.
	Sandbox http.Handler
	// Limits are the abuse limits; the zero value limits nothing.
	Limits Limits
	// Metrics, when set, counts requests (see NewMetrics).
	Metrics *Metrics
	// MetricsHandler, when set, serves GET /metrics.
	MetricsHandler http.Handler
	// Docs, when set, serves the API reference page at GET /docs and its assets under /docs/.
	Docs http.Handler
}

// Server serves the protocol.
type Server struct {
	cfg      Config
	log      *slog.Logger
	handler  http.Handler
	partners *partnerLimiter
	failures *failureThrottle
}

// New returns the protocol's HTTP handler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Unavailable == nil {
		cfg.Unavailable = func(error) bool { return false }
	}
	s := &Server{cfg: cfg, log: cfg.Logger, partners: newPartnerLimiter(cfg.Limits), failures: newFailureThrottle(cfg.Limits)}
	s.handler = s.recoverPanics(s.logRequests(s.canonicalPaths(s.limitBody(s.routes()))))
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) formatTime(t time.Time) string {
	return protocol.FormatTime(t, s.cfg.Wallets.Location())
}
