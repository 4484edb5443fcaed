package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/perspektiva/walletd/auth"
)

// oauthRequest is a token or revocation request: form fields, or JSON strings.
type oauthRequest struct {
	params url.Values
}

func (s *Server) readOAuth(r *http.Request) (oauthRequest, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	params := url.Values{}
	switch ct {
	case "application/json":
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return oauthRequest{}, oauthBodyError(err, "body could not be read")
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return oauthRequest{}, &auth.Error{Code: auth.InvalidRequest, Description: "body is not a JSON object"}
		}
		for k, v := range m {
			str, ok := v.(string)
			if !ok {
				return oauthRequest{}, &auth.Error{Code: auth.InvalidRequest, Description: "every parameter must be a string"}
			}
			params.Set(k, str)
		}
	default:
		// RFC 6749 section 3.2: parameters in the form body only; a query string
		// would leave credentials in access logs.
		if err := r.ParseForm(); err != nil {
			return oauthRequest{}, oauthBodyError(err, "malformed form body")
		}
		params = r.PostForm
	}
	// Descriptions are fixed texts: RFC 6749 section 5.2 limits their
	// characters, and key names are the caller's.
	for _, vs := range params {
		if len(vs) > 1 {
			return oauthRequest{}, &auth.Error{Code: auth.InvalidRequest, Description: "a parameter is repeated"}
		}
	}
	req := oauthRequest{params: params}
	if id, secret, ok := r.BasicAuth(); ok {
		if params.Has("client_id") || params.Has("client_secret") {
			return oauthRequest{}, &auth.Error{Code: auth.InvalidRequest, Description: "use one client authentication method"}
		}
		// RFC 6749 section 2.3.1: both parts are form-encoded before Base64.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return oauthRequest{}, &auth.Error{Code: auth.InvalidClient, Description: "malformed client credentials"}
		}
		params.Set("client_id", id)
		params.Set("client_secret", secret)
	}
	return req, nil
}

// bodyError turns an over-long body into the 413 refusal.
func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errTooLarge
	}
	return err
}

// oauthBodyError answers a token or revocation body that could not be read or
// parsed: an over-long one with the 413 refusal, as every endpoint does, any
// other with invalid_request and the description.
func oauthBodyError(err error, description string) error {
	if bodyErr := bodyError(err); bodyErr != err { //nolint:errorlint // identity check of a rewrap
		return bodyErr
	}
	return &auth.Error{Code: auth.InvalidRequest, Description: description}
}

type tokenAnswer struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) error {
	noStore(w)
	req, err := s.readOAuth(r)
	if err != nil {
		return s.oauthFailure(w, r, req, err)
	}
	if err := s.throttled(r, req); err != nil {
		return err
	}
	p := req.params
	var pair auth.Pair
	switch p.Get("grant_type") {
	case "client_credentials":
		pair, err = s.cfg.Auth.ClientCredentials(r.Context(), p.Get("client_id"), p.Get("client_secret"), p.Get("partner_id"))
	case "refresh_token":
		pair, err = s.cfg.Auth.Refresh(r.Context(), p.Get("client_id"), p.Get("client_secret"), p.Get("refresh_token"))
	case "":
		err = &auth.Error{Code: auth.InvalidRequest, Description: "grant_type is required"}
	default:
		err = &auth.Error{Code: auth.UnsupportedGrantType, Description: "supported: client_credentials, refresh_token"}
	}
	if err != nil {
		return s.oauthFailure(w, r, req, err)
	}
	writeJSON(w, http.StatusOK, tokenAnswer{
		AccessToken: pair.AccessToken, TokenType: "Bearer", ExpiresIn: int64(pair.AccessTTL.Seconds()),
		RefreshToken: pair.RefreshToken, RefreshExpiresIn: int64(pair.RefreshTTL.Seconds()),
	})
	return nil
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) error {
	noStore(w)
	req, err := s.readOAuth(r)
	if err == nil {
		if err := s.throttled(r, req); err != nil {
			return err
		}
		err = s.cfg.Auth.Revoke(r.Context(), req.params.Get("client_id"), req.params.Get("client_secret"), req.params.Get("token"))
	}
	if err != nil {
		return s.oauthFailure(w, r, req, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// noStore forbids caching of answers that carry tokens (RFC 6749 section 5.1).
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

type oauthErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// throttled refuses a caller that failed too often lately: from its address,
// or with this client id from its address.
func (s *Server) throttled(r *http.Request, req oauthRequest) error {
	if s.failures == nil {
		return nil
	}
	if blocked, wait := s.failures.blocked(time.Now(), s.failures.callerOf(r, req.params.Get("client_id"))); blocked {
		return errRateLimited(wait)
	}
	return nil
}

// oauthFailure answers in RFC 6749 section 5.2 form; other errors go the usual
// way. Every refusal counts against the address, and against the client id
// from that address when one was given.
func (s *Server) oauthFailure(w http.ResponseWriter, r *http.Request, req oauthRequest, err error) error {
	var oe *auth.Error
	if !errors.As(err, &oe) {
		return err
	}
	if s.failures != nil {
		s.failures.fail(time.Now(), s.failures.callerOf(r, req.params.Get("client_id")))
	}
	status := http.StatusBadRequest
	if oe.Code == auth.InvalidClient {
		// RFC 6749 section 5.2: 401 with a challenge for the Basic scheme.
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Basic realm="walletd"`)
	}
	writeJSON(w, status, oauthErrorBody{Error: oe.Code, Description: oe.Description})
	return nil
}
