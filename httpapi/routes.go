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

	handle(api("/account/registration"), map[string]handlerFunc{http.MethodPost: s.protected(s.register)})
	handle(api("/account/{walletId}/info"), map[string]handlerFunc{http.MethodGet: s.protected(s.info)})
	handle(api("/account/{walletId}/deactivation"), map[string]handlerFunc{http.MethodPost: s.protected(s.deactivate)})
	handle(api("/account/{walletId}/identification/{isIdentified}"), map[string]handlerFunc{http.MethodPost: s.protected(s.identify)})
	handle(api("/account/{walletId}/limit"), map[string]handlerFunc{
		http.MethodGet:  s.protected(s.limits),
		http.MethodPost: s.protected(s.setLimits),
	})
	// The source's typo is the canonical path; the correct spelling is an alias.
	for _, spelling := range []string{"wifhdrawal", "withdrawal"} {
		handle(api("/account/"+spelling+"/banks"), map[string]handlerFunc{http.MethodGet: s.protected(s.banks)})
	}

	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	handle("/readyz", map[string]handlerFunc{http.MethodGet: s.ready})
	if s.cfg.Sandbox != nil {
		mux.Handle("/sandbox/sbp/", s.cfg.Sandbox)
	}
	mux.Handle("/", s.dispatch(nil))
	return mux
}

// handlerFunc is a handler that returns its error for writeError to answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

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
