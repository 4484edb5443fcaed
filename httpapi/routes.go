package httpapi

import (
	"net/http"
	"slices"
	"strings"
)

// routes lists every endpoint of the protocol in one place.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(path string, methods map[string]handlerFunc) {
		mux.Handle(path, s.dispatch(methods))
	}
	api := func(p string) string { return BasePath + p }

	handle(api("/oauth/token"), map[string]handlerFunc{http.MethodPost: s.token})
	handle(api("/oauth/revoke"), map[string]handlerFunc{http.MethodPost: s.revoke})
	handle(api("/openapi.yaml"), map[string]handlerFunc{http.MethodGet: s.openapi})

	// Every POST of the protocol takes an Idempotency-Key.
	post := func(h handlerFunc) handlerFunc { return s.protected(s.idempotent(h)) }
	get := s.protected

	handle(api("/account/registration"), map[string]handlerFunc{http.MethodPost: post(s.register)})
	handle(api("/account/{walletId}/info"), map[string]handlerFunc{http.MethodGet: get(s.info)})
	handle(api("/account/{walletId}/deactivation"), map[string]handlerFunc{http.MethodPost: post(s.deactivate)})
	handle(api("/account/{walletId}/identification/{isIdentified}"), map[string]handlerFunc{http.MethodPost: post(s.identify)})
	handle(api("/account/{walletId}/limit"), map[string]handlerFunc{http.MethodGet: get(s.limits), http.MethodPost: post(s.setLimits)})
	handle(api("/account/{walletId}/report"), map[string]handlerFunc{http.MethodGet: get(s.report)})
	handle(api("/account/{walletId}/refill"), map[string]handlerFunc{http.MethodPost: post(s.refill)})
	handle(api("/account/{walletId}/payment/initialization"), map[string]handlerFunc{http.MethodGet: get(s.paymentInit)})
	handle(api("/account/{walletId}/payment"), map[string]handlerFunc{http.MethodPost: post(s.payment)})
	handle(api("/account/{walletId}/payment/{token}/refund"), map[string]handlerFunc{http.MethodPost: post(s.refund)})
	handle(api("/account/{walletId}/operation/{operationId}"), map[string]handlerFunc{http.MethodGet: get(s.operation)})
	// The source's typo is the canonical path; the correct spelling is an alias.
	for _, spelling := range []string{"wifhdrawal", "withdrawal"} {
		handle(api("/account/"+spelling+"/banks"), map[string]handlerFunc{http.MethodGet: get(s.banks)})
		handle(api("/account/{walletId}/"+spelling), map[string]handlerFunc{http.MethodPost: post(s.withdraw)})
	}

	handle("/healthz", map[string]handlerFunc{http.MethodGet: func(w http.ResponseWriter, _ *http.Request) error {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	}})
	handle("/readyz", map[string]handlerFunc{http.MethodGet: s.ready})
	if s.cfg.Sandbox != nil {
		mux.Handle("/sandbox/sbp/", s.cfg.Sandbox)
	}
	if s.cfg.MetricsHandler != nil {
		handle("/metrics", map[string]handlerFunc{http.MethodGet: plain(s.cfg.MetricsHandler)})
	}
	if s.cfg.Docs != nil {
		handle("/docs", map[string]handlerFunc{http.MethodGet: plain(s.cfg.Docs)})
		handle("/docs/", map[string]handlerFunc{http.MethodGet: plain(s.cfg.Docs)})
	}
	mux.Handle("/", s.dispatch(nil))
	return mux
}

// handlerFunc is a handler that returns its error for writeError to answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// plain adapts a handler that answers everything itself.
func plain(h http.Handler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	}
}

// dispatch picks the handler for the request's method and answers 405 with an
// Allow header for the others (404 when the path has no methods at all).
func (s *Server) dispatch(methods map[string]handlerFunc) http.Handler {
	allowed := make([]string, 0, len(methods)+1)
	for m := range methods {
		allowed = append(allowed, m)
	}
	if _, ok := methods[http.MethodGet]; ok {
		allowed = append(allowed, http.MethodHead)
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(methods) == 0 {
			s.writeError(w, r, errNotFound)
			return
		}
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		h, ok := methods[method]
		if !ok {
			w.Header().Set("Allow", allow)
			s.writeError(w, r, errMethodNotAllowed)
			return
		}
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}
