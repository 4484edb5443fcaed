package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/wallet"
)

type ctxKey int

const (
	principalKey ctxKey = iota
	requestInfoKey
)

// requestInfo is filled in as a request goes through, for its log line.
type requestInfo struct {
	id        string
	partnerID string
	code      string // the protocol error code of the answer, if any
}

// recoverPanics turns a panic into a plain 500: a bug must not take the process
// down or show a partner a stack trace.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { //nolint:contextcheck // uses the request's own context
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
					panic(v)
				}
				s.log.LogAttrs(r.Context(), slog.LevelError, "panic", slog.Any("panic", v))
				s.writeError(w, r, wallet.Fail(wallet.CodeInternal)) // logged just above

			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests gives every request an id (X-Request-Id, echoed back) and logs one
// line per request. Paths, never bodies or headers: they carry secrets and phones.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{id: requestID(r)}
		w.Header().Set("X-Request-Id", info.id)
		rec := &statusRecorder{ResponseWriter: w}
		ctx := context.WithValue(r.Context(), requestInfoKey, info)
		// The mux records the matched pattern on this request value.
		req := r.WithContext(ctx)
		next.ServeHTTP(rec, req)
		took := time.Since(start)
		s.cfg.Metrics.observe(req, rec.status, info.code, took)
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelWarn
		}
		s.log.LogAttrs(ctx, level, "request",
			slog.String("requestId", info.id),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Duration("duration", took),
			slog.String("partnerId", info.partnerID),
		)
	})
}

// requestID keeps a sane caller-supplied id so partners can correlate, else makes one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && printable(id) {
		return id
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// canonicalPaths answers 404 for paths with "//", "." or ".." segments instead
// of letting the mux redirect: a redirect of a POST loses its body, and a
// partner deserves the protocol's error answer, not an HTML page.
func (s *Server) canonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if p == "" || clean != p {
			s.writeError(w, r, errNotFound)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody refuses bodies over 64 KiB: at once when Content-Length says so,
// otherwise when reading crosses the limit.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			s.writeError(w, r, errTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

// protected requires a live access token and puts its principal in the context.
func (s *Server) protected(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		token, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="walletd"`)
			return auth.ErrUnauthorized
		}
		p, err := s.cfg.Auth.Verify(r.Context(), token)
		if err != nil {
			return err
		}
		partner := p.PartnerID.String()
		if info, ok := r.Context().Value(requestInfoKey).(*requestInfo); ok {
			info.partnerID = partner
		}
		if s.partners != nil {
			if ok, wait := s.partners.allow(partner, time.Now()); !ok {
				return errRateLimited(wait)
			}
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
	}
}

// bearer extracts an RFC 6750 bearer token from the Authorization header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// principal is the authenticated partner of a protected request.
func principal(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey).(auth.Principal)
	return p
}
