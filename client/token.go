package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// OAuth error codes of the token endpoint (RFC 6749 section 5.2).
const (
	OAuthInvalidRequest       = "invalid_request"
	OAuthInvalidClient        = "invalid_client"
	OAuthInvalidGrant         = "invalid_grant"
	OAuthUnsupportedGrantType = "unsupported_grant_type"
	OAuthUnauthorizedClient   = "unauthorized_client"
)

// tokenSource holds the client's token pair. Reads of a live access token take
// only mu; getting a new pair is serialised by sem so that concurrent callers
// share one token request (and one refresh token is never exchanged twice).
type tokenSource struct {
	c   *Client
	now func() time.Time
	sem chan struct{} // capacity 1: the right to fetch

	mu         sync.Mutex
	access     string
	accessExp  time.Time // the token stops working here
	renewAt    time.Time // a new one is fetched from here on
	refresh    string
	refreshExp time.Time // zero: no known expiry
}

// tokenAnswer is the token endpoint's success body.
type tokenAnswer struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
}

// current returns the cached access token while it is fresh.
func (ts *tokenSource) current() (string, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.access != "" && ts.now().Before(ts.renewAt) {
		return ts.access, true
	}
	return "", false
}

// token returns an access token: the cached one while fresh; otherwise the
// pair is refreshed with the refresh_token grant, and when that is refused
// with invalid_grant (or there is no refresh token) a new pair is requested
// with the client credentials.
func (ts *tokenSource) token(ctx context.Context) (string, error) {
	if tok, ok := ts.current(); ok {
		return tok, nil
	}
	select {
	case ts.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-ts.sem }()
	// Another caller may have fetched while this one waited.
	if tok, ok := ts.current(); ok {
		return tok, nil
	}

	ts.mu.Lock()
	refresh, refreshExp := ts.refresh, ts.refreshExp
	ts.mu.Unlock()

	if refresh != "" && (refreshExp.IsZero() || ts.now().Before(refreshExp)) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
		tok, err := ts.fetch(ctx, form)
		if err == nil {
			return tok, nil
		}
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Code != OAuthInvalidGrant {
			// The refresh did not happen (network, 5xx, ...). An access token
			// that has not expired yet still serves this call.
			ts.mu.Lock()
			defer ts.mu.Unlock()
			if ts.access != "" && ts.now().Before(ts.accessExp) {
				return ts.access, nil
			}
			return "", err
		}
		// The refresh token is dead (expired, revoked or already exchanged):
		// the protocol's answer is to ask again with the client credentials.
		ts.mu.Lock()
		ts.access, ts.refresh = "", ""
		ts.mu.Unlock()
	}
	form := url.Values{"grant_type": {"client_credentials"}, "partner_id": {ts.c.creds.PartnerID.String()}}
	return ts.fetch(ctx, form)
}

// invalidate drops an access token the service refused (401), unless a newer
// one has replaced it already. The refresh token is kept for the next fetch.
func (ts *tokenSource) invalidate(tok string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.access == tok {
		ts.access = ""
		ts.renewAt, ts.accessExp = time.Time{}, time.Time{}
	}
}

// fetch asks the token endpoint for a pair, authenticating the client with
// HTTP Basic, and caches the answer.
func (ts *tokenSource) fetch(ctx context.Context, form url.Values) (string, error) {
	c := ts.c
	ex := &exchange{
		method: http.MethodPost,
		url:    c.endpoint("/oauth/token", nil),
		body:   []byte(form.Encode()),
		ctype:  "application/x-www-form-urlencoded",
		basic:  [2]string{c.creds.ClientID, c.creds.ClientSecret},
	}
	issued := ts.now()
	ans, err := c.send(ctx, ex)
	if err != nil {
		return "", err
	}
	if ans.status != http.StatusOK {
		return "", oauthError(ans)
	}
	var ta tokenAnswer
	if err := json.Unmarshal(ans.body, &ta); err != nil {
		return "", fmt.Errorf("walletd client: decode token answer: %w", err)
	}
	if ta.AccessToken == "" || !strings.EqualFold(ta.TokenType, "Bearer") {
		return "", fmt.Errorf("walletd client: token answer without a Bearer access token (token_type %q)", ta.TokenType)
	}
	ttl := time.Duration(ta.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = time.Minute
	}
	// Renew a little before expiry, so a token does not die on its way to the
	// service: 30 s early, or a quarter of a short lifetime.
	margin := min(30*time.Second, ttl/4)

	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.access = ta.AccessToken
	ts.accessExp = issued.Add(ttl)
	ts.renewAt = ts.accessExp.Add(-margin)
	if ta.RefreshToken != "" {
		ts.refresh = ta.RefreshToken
		ts.refreshExp = time.Time{}
		if ta.RefreshExpiresIn > 0 {
			ts.refreshExp = issued.Add(time.Duration(ta.RefreshExpiresIn)*time.Second - margin)
		}
	}
	return ta.AccessToken, nil
}
