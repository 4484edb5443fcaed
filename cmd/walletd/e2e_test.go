package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/perspektiva/walletd/store/storetest"
)

// End-to-end tests of the partner protocol (PROTOCOL.md): each starts the real
// program on a fresh database of every engine and checks what a partner sees.

var (
	uuidRe   = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	digits16 = regexp.MustCompile(`^[0-9]{16}$`)
	digits12 = regexp.MustCompile(`^[0-9]{12}$`)
	digits9  = regexp.MustCompile(`^[0-9]{9}$`)
)

func TestE2ETokens(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startServer(t, e)
		a := s.A
		tokenURL := apiBase + "/oauth/token"
		ccForm := func(p *testPartner) url.Values {
			return url.Values{"grant_type": {"client_credentials"}, "partner_id": {p.PartnerID}}
		}
		basicA := basicAuth(a.ClientID, a.ClientSecret)
		wallet := s.register(t, s.token(t, a), phone())
		infoPath := apiBase + "/account/" + wallet + "/info"
		works := func(t *testing.T, access string) {
			t.Helper()
			status, _, body := s.do(t, http.MethodGet, infoPath, access, nil)
			expectOK(t, "info with a live token", status, body)
		}
		unauthorized := func(t *testing.T, what, access string) {
			t.Helper()
			status, hdr, body := s.do(t, http.MethodGet, infoPath, access, nil)
			expectError(t, what, status, body, http.StatusUnauthorized, "UNAUTHORIZED")
			if h := hdr.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
				t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", what, h)
			}
		}

		t.Run("client_secret_basic", func(t *testing.T) {
			status, _, body := s.tokenRequest(t, ccForm(a), "Authorization", basicA)
			p := s.decodePair(t, status, body)
			if p.ExpiresIn != 900 || p.RefreshExpiresIn != 30*24*3600 {
				t.Errorf("lifetimes %d/%d, want 900/2592000", p.ExpiresIn, p.RefreshExpiresIn)
			}
			if p.AccessToken == p.RefreshToken {
				t.Errorf("access and refresh tokens are the same")
			}
			works(t, p.AccessToken)
		})
		t.Run("client_secret_post", func(t *testing.T) {
			form := ccForm(a)
			form.Set("client_id", a.ClientID)
			form.Set("client_secret", a.ClientSecret)
			status, _, body := s.tokenRequest(t, form)
			works(t, s.decodePair(t, status, body).AccessToken)
		})
		t.Run("JSON body", func(t *testing.T) {
			status, _, body := s.tokenRequest(t, map[string]string{
				"grant_type": "client_credentials", "partner_id": a.PartnerID,
				"client_id": a.ClientID, "client_secret": a.ClientSecret,
			})
			works(t, s.decodePair(t, status, body).AccessToken)
		})
		t.Run("refusals", func(t *testing.T) {
			withSecret := func(id, secret string) []string { return []string{"Authorization", basicAuth(id, secret)} }
			cases := []struct {
				name       string
				body       any
				headers    []string
				wantStatus int
				wantError  string
			}{
				{"wrong secret", ccForm(a), withSecret(a.ClientID, a.ClientSecret+"x"), 401, "invalid_client"},
				{"wrong secret in the form", url.Values{"grant_type": {"client_credentials"}, "partner_id": {a.PartnerID},
					"client_id": {a.ClientID}, "client_secret": {"wcs_nope"}}, nil, 401, "invalid_client"},
				{"unknown client", ccForm(a), withSecret("wc_unknown", a.ClientSecret), 401, "invalid_client"},
				{"no client authentication", ccForm(a), nil, 401, "invalid_client"},
				{"another partner's partner_id", ccForm(s.B), withSecret(a.ClientID, a.ClientSecret), 401, "invalid_client"},
				{"unknown partner_id", url.Values{"grant_type": {"client_credentials"}, "partner_id": {uuid.NewString()}},
					withSecret(a.ClientID, a.ClientSecret), 401, "invalid_client"},
				{"missing partner_id", url.Values{"grant_type": {"client_credentials"}}, withSecret(a.ClientID, a.ClientSecret), 400, "invalid_request"},
				{"malformed partner_id", url.Values{"grant_type": {"client_credentials"}, "partner_id": {"42"}},
					withSecret(a.ClientID, a.ClientSecret), 400, "invalid_request"},
				{"unsupported grant", url.Values{"grant_type": {"password"}, "partner_id": {a.PartnerID}},
					withSecret(a.ClientID, a.ClientSecret), 400, "unsupported_grant_type"},
				{"missing grant_type", url.Values{"partner_id": {a.PartnerID}}, withSecret(a.ClientID, a.ClientSecret), 400, "invalid_request"},
				{"repeated parameter", url.Values{"grant_type": {"client_credentials", "client_credentials"}, "partner_id": {a.PartnerID}},
					withSecret(a.ClientID, a.ClientSecret), 400, "invalid_request"},
				{"two client authentication methods", url.Values{"grant_type": {"client_credentials"}, "partner_id": {a.PartnerID},
					"client_id": {a.ClientID}, "client_secret": {a.ClientSecret}}, withSecret(a.ClientID, a.ClientSecret), 400, "invalid_request"},
				{"JSON value not a string", map[string]any{"grant_type": "client_credentials", "partner_id": a.PartnerID,
					"client_id": a.ClientID, "client_secret": 42}, nil, 400, "invalid_request"},
				{"JSON array", rawBody(`["client_credentials"]`), withSecret(a.ClientID, a.ClientSecret), 400, "invalid_request"},
				{"malformed JSON", rawBody(`{"grant_type":`), withSecret(a.ClientID, a.ClientSecret), 400, "invalid_request"},
				{"refresh grant without refresh_token", url.Values{"grant_type": {"refresh_token"}},
					withSecret(a.ClientID, a.ClientSecret), 400, "invalid_request"},
				{"refresh grant with garbage", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"wrt_garbage"}},
					withSecret(a.ClientID, a.ClientSecret), 400, "invalid_grant"},
			}
			for _, c := range cases {
				status, hdr, body := s.tokenRequest(t, c.body, c.headers...)
				expectOAuthError(t, c.name, status, body, c.wantStatus, c.wantError)
				if c.wantStatus == http.StatusUnauthorized && hdr.Get("WWW-Authenticate") == "" {
					t.Errorf("%s: 401 without WWW-Authenticate", c.name)
				}
			}
		})
		t.Run("credentials in the query string are ignored", func(t *testing.T) {
			q := url.Values{"grant_type": {"client_credentials"}, "partner_id": {a.PartnerID},
				"client_id": {a.ClientID}, "client_secret": {a.ClientSecret}}
			status, _, body := s.do(t, http.MethodPost, tokenURL+"?"+q.Encode(), "", url.Values{})
			expectOAuthError(t, "query-string token request", status, body, 400, "invalid_request")
		})
		t.Run("refresh rotation and reuse detection", func(t *testing.T) {
			first := s.pair(t, a)
			refresh := func(rt string) (int, []byte) {
				status, _, body := s.tokenRequest(t,
					url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "Authorization", basicA)
				return status, body
			}
			status, body := refresh(first.RefreshToken)
			second := s.decodePair(t, status, body)
			if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
				t.Fatalf("refresh did not issue a new pair")
			}
			works(t, second.AccessToken)

			status, body = refresh(first.RefreshToken)
			expectOAuthError(t, "exchanged refresh token again", status, body, 400, "invalid_grant")
			// Reuse revokes the whole family.
			unauthorized(t, "access token of the family after reuse", second.AccessToken)
			unauthorized(t, "first access token after reuse", first.AccessToken)
			status, body = refresh(second.RefreshToken)
			expectOAuthError(t, "refresh token of the family after reuse", status, body, 400, "invalid_grant")

			// Other grants of the same client are not touched.
			works(t, s.token(t, a))
		})
		t.Run("refresh token of another client", func(t *testing.T) {
			p := s.pair(t, a)
			status, _, body := s.tokenRequest(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {p.RefreshToken}},
				"Authorization", basicAuth(s.B.ClientID, s.B.ClientSecret))
			expectOAuthError(t, "B presents A's refresh token", status, body, 400, "invalid_grant")
			// That must not have burnt A's token.
			status, _, body = s.tokenRequest(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {p.RefreshToken}},
				"Authorization", basicA)
			works(t, s.decodePair(t, status, body).AccessToken)
		})
		t.Run("refresh without client credentials", func(t *testing.T) {
			// The OpenAPI document calls client credentials optional on the refresh
			// grant and shows a JSON example without them.
			p := s.pair(t, a)
			status, _, body := s.tokenRequest(t, map[string]string{"grant_type": "refresh_token", "refresh_token": p.RefreshToken})
			// RFC 6749 section 6: a confidential client authenticates on refresh too.
			expectOAuthError(t, "refresh without client credentials", status, body, http.StatusUnauthorized, "invalid_client")
		})
		t.Run("revocation", func(t *testing.T) {
			p := s.pair(t, a)
			works(t, p.AccessToken)
			status, _, body := s.do(t, http.MethodPost, apiBase+"/oauth/revoke", "",
				url.Values{"token": {p.AccessToken}}, "Authorization", basicA)
			if status != http.StatusOK {
				t.Fatalf("revoke: %d %s", status, body)
			}
			unauthorized(t, "revoked access token", p.AccessToken)

			// Revoking a refresh token takes its access token with it.
			q := s.pair(t, a)
			status, _, body = s.do(t, http.MethodPost, apiBase+"/oauth/revoke", "",
				url.Values{"token": {q.RefreshToken}, "token_type_hint": {"refresh_token"}}, "Authorization", basicA)
			if status != http.StatusOK {
				t.Fatalf("revoke refresh token: %d %s", status, body)
			}
			unauthorized(t, "access token of a revoked refresh token", q.AccessToken)
			status, _, body = s.tokenRequest(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {q.RefreshToken}},
				"Authorization", basicA)
			expectOAuthError(t, "revoked refresh token", status, body, 400, "invalid_grant")

			// Another client cannot revoke A's token, and learns nothing from trying.
			r := s.pair(t, a)
			status, _, body = s.do(t, http.MethodPost, apiBase+"/oauth/revoke", "",
				url.Values{"token": {r.AccessToken}}, "Authorization", basicAuth(s.B.ClientID, s.B.ClientSecret))
			if status != http.StatusOK {
				t.Errorf("revoke of a foreign token: %d %s, want 200", status, body)
			}
			works(t, r.AccessToken)

			// Unknown tokens are fine; errors are a missing token or bad client authentication.
			status, _, body = s.do(t, http.MethodPost, apiBase+"/oauth/revoke", "",
				url.Values{"token": {"wat_unknown"}}, "Authorization", basicA)
			if status != http.StatusOK {
				t.Errorf("revoke of an unknown token: %d %s, want 200", status, body)
			}
			status, _, body = s.do(t, http.MethodPost, apiBase+"/oauth/revoke", "", url.Values{}, "Authorization", basicA)
			expectOAuthError(t, "revoke without token", status, body, 400, "invalid_request")
			status, hdr, body := s.do(t, http.MethodPost, apiBase+"/oauth/revoke", "",
				url.Values{"token": {r.AccessToken}}, "Authorization", basicAuth(a.ClientID, "wrong"))
			expectOAuthError(t, "revoke with a wrong secret", status, body, 401, "invalid_client")
			if hdr.Get("WWW-Authenticate") == "" {
				t.Errorf("revoke 401 without WWW-Authenticate")
			}
			works(t, r.AccessToken)
		})
		t.Run("golang.org/x/oauth2 clientcredentials", func(t *testing.T) {
			for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleAutoDetect, oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
				cfg := clientcredentials.Config{
					ClientID:       a.ClientID,
					ClientSecret:   a.ClientSecret,
					TokenURL:       s.URL + tokenURL,
					EndpointParams: url.Values{"partner_id": {a.PartnerID}},
					AuthStyle:      style,
				}
				base := &http.Client{Transport: validatingTransport{t: t, base: s.client.Transport}}
				ctx := context.WithValue(context.Background(), oauth2.HTTPClient, base)
				resp, err := cfg.Client(ctx).Get(s.URL + apiBase + "/account/wifhdrawal/banks")
				if err != nil {
					t.Fatalf("auth style %d: %v", style, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("auth style %d: banks answered %d: %s", style, resp.StatusCode, body)
				}
				var banks struct {
					Banks []map[string]any `json:"banks"`
				}
				if err := json.Unmarshal(body, &banks); err != nil || len(banks.Banks) == 0 {
					t.Errorf("auth style %d: banks answer %s: %v", style, body, err)
				}
			}
		})
		t.Run("bad bearer tokens", func(t *testing.T) {
			p := s.pair(t, a)
			unauthorized(t, "refresh token as a bearer token", p.RefreshToken)
			unauthorized(t, "garbage token", "wat_garbage")
			unauthorized(t, "client secret as a bearer token", a.ClientSecret)

			status, hdr, body := s.do(t, http.MethodGet, infoPath, "", nil)
			expectError(t, "no Authorization header", status, body, http.StatusUnauthorized, "UNAUTHORIZED")
			if h := hdr.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
				t.Errorf("no Authorization header: WWW-Authenticate %q", h)
			}
			status, _, body = s.do(t, http.MethodGet, infoPath, "", nil, "Authorization", basicA)
			expectError(t, "Basic instead of Bearer", status, body, http.StatusUnauthorized, "UNAUTHORIZED")
			status, _, body = s.do(t, http.MethodGet, infoPath, "", nil, "Authorization", "Bearer")
			expectError(t, "empty Bearer", status, body, http.StatusUnauthorized, "UNAUTHORIZED")
			// The scheme is case-insensitive (RFC 7235).
			status, _, body = s.do(t, http.MethodGet, infoPath, "", nil, "Authorization", "bearer "+p.AccessToken)
			expectOK(t, "lower-case bearer scheme", status, body)
		})
		t.Run("disabled partner", func(t *testing.T) {
			b := s.B
			old := s.pair(t, b)
			banks := apiBase + "/account/wifhdrawal/banks"
			status, _, body := s.do(t, http.MethodGet, banks, old.AccessToken, nil)
			expectOK(t, "banks before disabling", status, body)

			out, errOut, err := runCmd(t, s.getenv, "partner", "disable", "--db", s.DSN, "--partner", b.PartnerID)
			if err != nil {
				t.Fatalf("partner disable: %v\n%s", err, errOut)
			}
			if got := object(t, []byte(out)); got["status"] != "DISABLED" || got["partnerId"] != b.PartnerID {
				t.Errorf("partner disable printed %s", out)
			}
			status, _, body = s.do(t, http.MethodGet, banks, old.AccessToken, nil)
			expectError(t, "token of a disabled partner", status, body, http.StatusForbidden, "FORBIDDEN")
			status, _, body = s.do(t, http.MethodPost, apiBase+"/account/registration", old.AccessToken, map[string]any{"phone": phone()})
			expectError(t, "registration by a disabled partner", status, body, http.StatusForbidden, "FORBIDDEN")
			status, _, body = s.tokenRequest(t, ccForm(b), "Authorization", basicAuth(b.ClientID, b.ClientSecret))
			expectOAuthError(t, "token request of a disabled partner", status, body, 401, "invalid_client")
			status, _, body = s.tokenRequest(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old.RefreshToken}},
				"Authorization", basicAuth(b.ClientID, b.ClientSecret))
			expectOAuthError(t, "refresh by a disabled partner", status, body, 401, "invalid_client")
			// Partner A is not affected.
			works(t, s.token(t, a))

			if _, errOut, err := runCmd(t, s.getenv, "partner", "enable", "--db", s.DSN, "--partner", b.PartnerID); err != nil {
				t.Fatalf("partner enable: %v\n%s", err, errOut)
			}
			status, _, body = s.do(t, http.MethodGet, banks, old.AccessToken, nil)
			expectOK(t, "old token after enabling again", status, body)
			status, _, body = s.do(t, http.MethodGet, banks, s.token(t, b), nil)
			expectOK(t, "new token after enabling again", status, body)
		})
	})
}

func TestE2ERegistration(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startServer(t, e)
		tokA, tokB := s.token(t, s.A), s.token(t, s.B)
		regPath := apiBase + "/account/registration"
		reg := func(token string, body any) (int, []byte) {
			status, _, data := s.do(t, http.MethodPost, regPath, token, body)
			return status, data
		}

		t.Run("levels", func(t *testing.T) {
			for _, c := range []struct {
				body map[string]any
				want string
			}{
				{map[string]any{"phone": phone()}, "ELEMENTARY"},
				{map[string]any{"phone": phone(), "identification": 0}, "ELEMENTARY"},
				{map[string]any{"phone": phone(), "identification": nil}, "ELEMENTARY"},
				{map[string]any{"phone": phone(), "identification": 1}, "PERSONALIZED"},
				{map[string]any{"phone": phone(), "identification": 2}, "IDENTIFIED"},
			} {
				status, data := reg(tokA, c.body)
				got := expectOK(t, "register", status, data)
				if id, _ := got["walletId"].(string); !uuidRe.MatchString(id) {
					t.Errorf("walletId %v is not a lower-case UUID", got["walletId"])
				}
				if got["identification"] != c.want {
					t.Errorf("register %v: identification %v, want %s", c.body, got["identification"], c.want)
				}
				status, _, data = s.do(t, http.MethodGet, apiBase+"/account/"+got["walletId"].(string)+"/info", tokA, nil)
				if info := expectOK(t, "info", status, data); info["identification"] != c.want {
					t.Errorf("info identification %v, want %s", info["identification"], c.want)
				}
			}
		})
		t.Run("idempotent", func(t *testing.T) {
			p := phone()
			status, data := reg(tokA, map[string]any{"phone": p, "identification": 0})
			first := expectOK(t, "register", status, data)
			status, data = reg(tokA, map[string]any{"phone": p, "identification": 2})
			again := expectOK(t, "register again", status, data)
			if again["walletId"] != first["walletId"] {
				t.Errorf("registering the same phone again gave wallet %v, want %v", again["walletId"], first["walletId"])
			}
			if again["identification"] != "ELEMENTARY" {
				t.Errorf("registering again changed identification to %v", again["identification"])
			}
			status, _, data = s.do(t, http.MethodGet, apiBase+"/account/"+first["walletId"].(string)+"/info", tokA, nil)
			if info := expectOK(t, "info", status, data); info["identification"] != "ELEMENTARY" {
				t.Errorf("info after re-registration: identification %v", info["identification"])
			}
		})
		t.Run("phone", func(t *testing.T) {
			for name, body := range map[string]any{
				"9 digits":         map[string]any{"phone": "900123456"},
				"11 digits":        map[string]any{"phone": "79001234567"},
				"letters":          map[string]any{"phone": "90012345ab"},
				"all letters":      map[string]any{"phone": "abcdefghij"},
				"plus sign":        map[string]any{"phone": "+900123456"},
				"spaces":           map[string]any{"phone": " 900123456"},
				"non-ASCII digits": map[string]any{"phone": "９００１２３４５６７"},
				"missing":          map[string]any{"identification": 0},
				"null":             map[string]any{"phone": nil},
				"number":           map[string]any{"phone": 9001234567},
				"empty string":     map[string]any{"phone": ""},
				"object":           map[string]any{"phone": map[string]any{}},
				"empty body":       rawBody(""),
				"empty object":     rawBody("{}"),
			} {
				status, data := reg(tokA, body)
				expectError(t, "phone "+name, status, data, http.StatusBadRequest, "VALIDATION_ERROR", "phone")
			}
		})
		t.Run("identification", func(t *testing.T) {
			for _, raw := range []string{`3`, `-1`, `"1"`, `1.5`, `1.0`, `1e0`, `true`, `[]`, `10`, `99999999999999999999`} {
				status, data := reg(tokA, rawBody(`{"phone":"`+phone()+`","identification":`+raw+`}`))
				expectError(t, "identification "+raw, status, data, http.StatusBadRequest, "VALIDATION_ERROR", "identification")
			}
			// Both fields wrong: both are named.
			status, data := reg(tokA, map[string]any{"phone": 1, "identification": 7})
			expectError(t, "phone and identification", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "phone", "identification")
		})
		t.Run("malformed body", func(t *testing.T) {
			for name, raw := range map[string]string{
				"truncated":     `{"phone":"9001234567"`,
				"not JSON":      `phone=9001234567`,
				"array":         `[{"phone":"9001234567"}]`,
				"string":        `"9001234567"`,
				"null":          `null`,
				"trailing data": `{"phone":"9001234567"} {}`,
			} {
				status, data := reg(tokA, rawBody(raw))
				expectError(t, "body "+name, status, data, http.StatusBadRequest, "VALIDATION_ERROR", "body")
			}
		})
		t.Run("same phone at another partner", func(t *testing.T) {
			p := phone()
			wa := s.register(t, tokA, p)
			wb := s.register(t, tokB, p, 1)
			if wa == wb {
				t.Fatalf("both partners got wallet %s for the same phone", wa)
			}
			status, _, data := s.do(t, http.MethodGet, apiBase+"/account/"+wa+"/info", tokA, nil)
			infoA := expectOK(t, "A's info", status, data)
			status, _, data = s.do(t, http.MethodGet, apiBase+"/account/"+wb+"/info", tokB, nil)
			infoB := expectOK(t, "B's info", status, data)
			if infoA["identification"] != "ELEMENTARY" || infoB["identification"] != "PERSONALIZED" {
				t.Errorf("identifications %v / %v, want ELEMENTARY / PERSONALIZED", infoA["identification"], infoB["identification"])
			}
			if infoA["number"] == infoB["number"] {
				t.Errorf("two wallets share the number %v", infoA["number"])
			}
		})
	})
}

func TestE2EInfo(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startServer(t, e)
		tok := s.token(t, s.A)
		numbers := map[string]bool{}
		for i := 0; i < 5; i++ {
			id := s.register(t, tok, phone())
			status, _, data := s.do(t, http.MethodGet, apiBase+"/account/"+id+"/info", tok, nil)
			info := expectOK(t, "info", status, data)
			want := map[string]any{
				"walletId": id, "number": info["number"], "balance": 0.0, "status": "ACTIVE",
				"identification": "ELEMENTARY", "currency": "RUB",
			}
			if !reflect.DeepEqual(info, want) {
				t.Errorf("info = %v, want %v", info, want)
			}
			number, _ := info["number"].(string)
			if !digits16.MatchString(number) || !luhnValid(number) {
				t.Errorf("number %q is not 16 digits with a Luhn check digit", number)
			}
			if numbers[number] {
				t.Errorf("number %s given twice", number)
			}
			numbers[number] = true
			if !strings.Contains(string(data), `"balance":0.00`) {
				t.Errorf("balance is not written as 0.00: %s", data)
			}
		}

		for _, bad := range []string{"not-a-uuid", "12345", strings.ReplaceAll(uuid.NewString(), "-", ""),
			"{" + uuid.NewString() + "}", "urn:uuid:" + uuid.NewString(), uuid.NewString() + "0"} {
			status, _, data := s.do(t, http.MethodGet, apiBase+"/account/"+url.PathEscape(bad)+"/info", tok, nil)
			expectError(t, "walletId "+bad, status, data, http.StatusBadRequest, "VALIDATION_ERROR", "walletId")
		}
		status, _, data := s.do(t, http.MethodGet, apiBase+"/account/"+uuid.NewString()+"/info", tok, nil)
		expectError(t, "unknown wallet", status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
	})
}

func TestE2EDeactivation(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startServer(t, e)
		tok := s.token(t, s.A)
		p := phone()
		id := s.register(t, tok, p)
		acct := apiBase + "/account/" + id

		status, _, data := s.do(t, http.MethodPost, acct+"/limit", tok,
			map[string]any{"operationLimits": map[string]any{"PAYMENT": map[string]any{"oneTimeLimit": "500"}}})
		expectOK(t, "set a limit before closing", status, data)

		status, _, data = s.do(t, http.MethodPost, acct+"/deactivation", tok, nil)
		if got := expectOK(t, "close", status, data); !reflect.DeepEqual(got, map[string]any{"walletId": id}) {
			t.Errorf("close answered %v", got)
		}
		status, _, data = s.do(t, http.MethodGet, acct+"/info", tok, nil)
		if info := expectOK(t, "info of a closed wallet", status, data); info["status"] != "CLOSED" {
			t.Errorf("status %v after closing, want CLOSED", info["status"])
		}
		status, _, data = s.do(t, http.MethodPost, acct+"/deactivation", tok, nil)
		if got := expectOK(t, "close again", status, data); got["walletId"] != id {
			t.Errorf("close again answered %v", got)
		}

		// The phone is free again: a new wallet.
		newID := s.register(t, tok, p)
		if newID == id {
			t.Errorf("registering the phone of a closed wallet returned the closed wallet")
		}
		status, _, data = s.do(t, http.MethodGet, apiBase+"/account/"+newID+"/info", tok, nil)
		if info := expectOK(t, "info of the new wallet", status, data); info["status"] != "ACTIVE" {
			t.Errorf("new wallet status %v", info["status"])
		}
		if again := s.register(t, tok, p); again != newID {
			t.Errorf("registering again gave %s, want the new active wallet %s", again, newID)
		}

		status, _, data = s.do(t, http.MethodPost, acct+"/identification/1", tok, nil)
		expectError(t, "identification of a closed wallet", status, data, http.StatusBadRequest, "WALLET_CLOSED")
		status, _, data = s.do(t, http.MethodPost, acct+"/limit", tok,
			map[string]any{"operationLimits": map[string]any{"PAYMENT": map[string]any{"oneTimeLimit": "100"}}})
		expectError(t, "limits of a closed wallet", status, data, http.StatusBadRequest, "WALLET_CLOSED")

		status, _, data = s.do(t, http.MethodGet, acct+"/limit", tok, nil)
		lim := expectOK(t, "limits of a closed wallet", status, data)
		if lim["identification"] != "ELEMENTARY" || payment(lim)["oneTimeLimit"] != 500.0 {
			t.Errorf("limits of the closed wallet changed: %s", data)
		}
		status, _, data = s.do(t, http.MethodGet, acct+"/info", tok, nil)
		if info := expectOK(t, "info", status, data); info["identification"] != "ELEMENTARY" || info["status"] != "CLOSED" {
			t.Errorf("closed wallet changed: %v", info)
		}

		status, _, data = s.do(t, http.MethodPost, apiBase+"/account/"+uuid.NewString()+"/deactivation", tok, nil)
		expectError(t, "close an unknown wallet", status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
		status, _, data = s.do(t, http.MethodPost, apiBase+"/account/nope/deactivation", tok, nil)
		expectError(t, "close a malformed walletId", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "walletId")
	})
}

// payment returns the PAYMENT member of a limits answer.
func payment(limits map[string]any) map[string]any {
	ops, _ := limits["operationLimits"].(map[string]any)
	p, _ := ops["PAYMENT"].(map[string]any)
	return p
}

// systemLimits is the GET /limit answer of PROTOCOL.md 4.9 and section 5 for a
// wallet without the partner's own values, decoded.
func systemLimits(t *testing.T, walletID, level string) map[string]any {
	t.Helper()
	text := map[string]string{
		"ELEMENTARY": `{"balanceLimit":15000.00,"operationLimits":{
			"CREDIT": {"operationType":"CREDIT","oneTimeLimit":15000.00,"monthLimit":null,"enabled":true,"monthUsed":0.00},
			"PAYMENT":{"operationType":"PAYMENT","oneTimeLimit":15000.00,"monthLimit":40000.00,"enabled":true,"monthUsed":0.00},
			"DEBIT":  {"operationType":"DEBIT","oneTimeLimit":0.00,"monthLimit":0.00,"enabled":false,"monthUsed":0.00}}}`,
		"PERSONALIZED": `{"balanceLimit":60000.00,"operationLimits":{
			"CREDIT": {"operationType":"CREDIT","oneTimeLimit":60000.00,"monthLimit":null,"enabled":true,"monthUsed":0.00},
			"PAYMENT":{"operationType":"PAYMENT","oneTimeLimit":60000.00,"monthLimit":200000.00,"enabled":true,"monthUsed":0.00},
			"DEBIT":  {"operationType":"DEBIT","oneTimeLimit":60000.00,"monthLimit":200000.00,"enabled":true,"monthUsed":0.00}}}`,
		"IDENTIFIED": `{"balanceLimit":600000.00,"operationLimits":{
			"CREDIT": {"operationType":"CREDIT","oneTimeLimit":600000.00,"monthLimit":null,"enabled":true,"monthUsed":0.00},
			"PAYMENT":{"operationType":"PAYMENT","oneTimeLimit":600000.00,"monthLimit":null,"enabled":true,"monthUsed":0.00},
			"DEBIT":  {"operationType":"DEBIT","oneTimeLimit":600000.00,"monthLimit":null,"enabled":true,"monthUsed":0.00}}}`,
	}[level]
	m := object(t, []byte(text))
	m["walletId"] = walletID
	m["identification"] = level
	return m
}

// with returns a copy of limits with one value of a type changed.
func with(limits map[string]any, typ, field string, value any) map[string]any {
	data, _ := json.Marshal(limits)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	if typ == "" {
		out[field] = value
		return out
	}
	out["operationLimits"].(map[string]any)[typ].(map[string]any)[field] = value
	return out
}

func TestE2EIdentification(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startServer(t, e)
		tok := s.token(t, s.A)
		id := s.register(t, tok, phone())
		acct := apiBase + "/account/" + id
		identify := func(level string) (int, []byte) {
			status, _, data := s.do(t, http.MethodPost, acct+"/identification/"+level, tok, nil)
			return status, data
		}
		limits := func() map[string]any {
			status, _, data := s.do(t, http.MethodGet, acct+"/limit", tok, nil)
			return expectOK(t, "limits", status, data)
		}

		for _, step := range []struct{ level, want string }{
			{"1", "PERSONALIZED"}, {"1", "PERSONALIZED"}, {"2", "IDENTIFIED"}, {"0", "ELEMENTARY"}, {"2", "IDENTIFIED"}, {"1", "PERSONALIZED"},
		} {
			status, data := identify(step.level)
			got := expectOK(t, "identification "+step.level, status, data)
			if !reflect.DeepEqual(got, map[string]any{"walletId": id, "identification": step.want}) {
				t.Errorf("identification %s answered %v", step.level, got)
			}
			status, _, data = s.do(t, http.MethodGet, acct+"/info", tok, nil)
			if info := expectOK(t, "info", status, data); info["identification"] != step.want {
				t.Errorf("info after identification %s: %v", step.level, info["identification"])
			}
			lim := limits()
			if want := systemLimits(t, id, step.want); !reflect.DeepEqual(lim, want) {
				t.Errorf("limits after identification %s:\n got %v\nwant %v", step.level, lim, want)
			}
			switch step.want {
			case "PERSONALIZED":
				debit := lim["operationLimits"].(map[string]any)["DEBIT"].(map[string]any)
				if lim["balanceLimit"] != 60000.0 || debit["enabled"] != true || debit["oneTimeLimit"] != 60000.0 {
					t.Errorf("PERSONALIZED limits: %v", lim)
				}
			case "IDENTIFIED":
				if payment(lim)["monthLimit"] != nil {
					t.Errorf("IDENTIFIED PAYMENT monthLimit %v, want null", payment(lim)["monthLimit"])
				}
			}
		}

		for _, bad := range []string{"3", "x", "-1", "01", "1.0", "9", "%20"} {
			status, data := identify(bad)
			expectError(t, "isIdentified "+bad, status, data, http.StatusBadRequest, "VALIDATION_ERROR", "isIdentified")
		}
		status, _, data := s.do(t, http.MethodPost, apiBase+"/account/"+uuid.NewString()+"/identification/1", tok, nil)
		expectError(t, "identify an unknown wallet", status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
		status, _, data = s.do(t, http.MethodPost, apiBase+"/account/x/identification/1", tok, nil)
		expectError(t, "identify a malformed walletId", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "walletId")
	})
}

func TestE2ELimits(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startServer(t, e)
		tok := s.token(t, s.A)
		id := s.register(t, tok, phone())
		acct := apiBase + "/account/" + id
		get := func(t *testing.T) (map[string]any, []byte) {
			t.Helper()
			status, _, data := s.do(t, http.MethodGet, acct+"/limit", tok, nil)
			return expectOK(t, "GET limit", status, data), data
		}
		post := func(t *testing.T, body any) (int, []byte) {
			t.Helper()
			status, _, data := s.do(t, http.MethodPost, acct+"/limit", tok, body)
			return status, data
		}
		setPayment := func(field string, value any) map[string]any {
			return map[string]any{"operationLimits": map[string]any{"PAYMENT": map[string]any{field: value}}}
		}
		identify := func(t *testing.T, level string) {
			t.Helper()
			status, _, data := s.do(t, http.MethodPost, acct+"/identification/"+level, tok, nil)
			expectOK(t, "identification "+level, status, data)
		}
		elementary := systemLimits(t, id, "ELEMENTARY")

		t.Run("default", func(t *testing.T) {
			got, raw := get(t)
			if !reflect.DeepEqual(got, elementary) {
				t.Errorf("GET limit:\n got %v\nwant %v", got, elementary)
			}
			for _, frag := range []string{`"balanceLimit":15000.00`, `"oneTimeLimit":0.00`, `"monthUsed":0.00`, `"monthLimit":null`} {
				if !strings.Contains(string(raw), frag) {
					t.Errorf("GET limit does not contain %s: %s", frag, raw)
				}
			}
		})
		t.Run("set and remove", func(t *testing.T) {
			status, data := post(t, setPayment("oneTimeLimit", "1000.50"))
			answer := expectOK(t, "POST limit", status, data)
			want := with(elementary, "PAYMENT", "oneTimeLimit", 1000.5)
			if !reflect.DeepEqual(answer, want) {
				t.Errorf("POST answer:\n got %v\nwant %v", answer, want)
			}
			if !strings.Contains(string(data), `"oneTimeLimit":1000.50`) {
				t.Errorf("amount not written with two fraction digits: %s", data)
			}
			if got, _ := get(t); !reflect.DeepEqual(got, want) {
				t.Errorf("GET after POST:\n got %v\nwant %v", got, want)
			}
			// An empty body and an empty object change nothing.
			for _, body := range []any{rawBody(""), map[string]any{}, map[string]any{"operationLimits": map[string]any{}}} {
				status, data = post(t, body)
				if got := expectOK(t, "empty POST", status, data); !reflect.DeepEqual(got, want) {
					t.Errorf("empty POST changed limits: %v", got)
				}
			}

			status, data = post(t, setPayment("oneTimeLimit", nil))
			if got := expectOK(t, "POST null", status, data); !reflect.DeepEqual(got, elementary) {
				t.Errorf("after null:\n got %v\nwant %v", got, elementary)
			}
			if got, _ := get(t); !reflect.DeepEqual(got, elementary) {
				t.Errorf("GET after null:\n got %v\nwant %v", got, elementary)
			}
		})
		t.Run("accepted forms", func(t *testing.T) {
			for _, c := range []struct {
				value any
				want  float64
			}{{1000, 1000}, {"1000", 1000}, {1000.5, 1000.5}, {"0.01", 0.01}, {0, 0}, {"15000.00", 15000}} {
				status, data := post(t, setPayment("monthLimit", c.value))
				if got := expectOK(t, "monthLimit", status, data); payment(got)["monthLimit"] != c.want {
					t.Errorf("monthLimit %v: got %v, want %v", c.value, payment(got)["monthLimit"], c.want)
				}
			}
			status, data := post(t, setPayment("monthLimit", nil))
			expectOK(t, "reset monthLimit", status, data)
		})
		t.Run("partner values survive identification", func(t *testing.T) {
			status, data := post(t, map[string]any{
				"balanceLimit":    "10000",
				"operationLimits": map[string]any{"PAYMENT": map[string]any{"oneTimeLimit": "1000.50"}},
			})
			expectOK(t, "POST", status, data)
			identify(t, "1")
			got, _ := get(t)
			want := with(with(systemLimits(t, id, "PERSONALIZED"), "PAYMENT", "oneTimeLimit", 1000.5), "", "balanceLimit", 10000.0)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("after upgrade:\n got %v\nwant %v", got, want)
			}
			// A value allowed at PERSONALIZED only: min(partner, system) at each level.
			status, data = post(t, setPayment("oneTimeLimit", "30000"))
			expectOK(t, "POST 30000 at PERSONALIZED", status, data)
			identify(t, "0")
			if got, _ := get(t); payment(got)["oneTimeLimit"] != 15000.0 || got["balanceLimit"] != 10000.0 {
				t.Errorf("at ELEMENTARY with partner 30000: %v, want PAYMENT.oneTimeLimit 15000.00, balanceLimit 10000.00", got)
			}
			identify(t, "1")
			if got, _ := get(t); payment(got)["oneTimeLimit"] != 30000.0 {
				t.Errorf("back at PERSONALIZED: PAYMENT.oneTimeLimit %v, want 30000.00", payment(got)["oneTimeLimit"])
			}
			identify(t, "0")
			status, data = post(t, map[string]any{"balanceLimit": nil, "operationLimits": map[string]any{"PAYMENT": map[string]any{"oneTimeLimit": nil}}})
			if got := expectOK(t, "reset", status, data); !reflect.DeepEqual(got, elementary) {
				t.Errorf("after reset:\n got %v\nwant %v", got, elementary)
			}
		})
		t.Run("partner may disable a type", func(t *testing.T) {
			status, data := post(t, map[string]any{"operationLimits": map[string]any{"CREDIT": map[string]any{"enabled": false}}})
			got := expectOK(t, "disable CREDIT", status, data)
			if want := with(elementary, "CREDIT", "enabled", false); !reflect.DeepEqual(got, want) {
				t.Errorf("after disabling CREDIT:\n got %v\nwant %v", got, want)
			}
			status, data = post(t, map[string]any{"operationLimits": map[string]any{"CREDIT": map[string]any{"enabled": true}}})
			if got := expectOK(t, "enable CREDIT", status, data); !reflect.DeepEqual(got, elementary) {
				t.Errorf("after enabling CREDIT again:\n got %v\nwant %v", got, elementary)
			}
		})
		t.Run("refusals save nothing", func(t *testing.T) {
			status, data := post(t, setPayment("oneTimeLimit", "700"))
			expectOK(t, "baseline", status, data)
			before, _ := get(t)
			ops := func(typ string, fields map[string]any) map[string]any {
				return map[string]any{"operationLimits": map[string]any{typ: fields}}
			}
			for _, c := range []struct {
				name  string
				body  any
				field string
			}{
				{"above system", setPayment("oneTimeLimit", 15000.01), "operationLimits.PAYMENT.oneTimeLimit"},
				{"above system as text", setPayment("oneTimeLimit", "15000.01"), "operationLimits.PAYMENT.oneTimeLimit"},
				{"month above system", setPayment("monthLimit", "40000.01"), "operationLimits.PAYMENT.monthLimit"},
				{"negative", setPayment("oneTimeLimit", -1), "operationLimits.PAYMENT.oneTimeLimit"},
				{"negative text", setPayment("oneTimeLimit", "-1"), "operationLimits.PAYMENT.oneTimeLimit"},
				{"not a number", setPayment("oneTimeLimit", "abc"), "operationLimits.PAYMENT.oneTimeLimit"},
				{"three decimals", setPayment("oneTimeLimit", rawJSON("1.234")), "operationLimits.PAYMENT.oneTimeLimit"},
				{"three decimals text", setPayment("oneTimeLimit", "1.234"), "operationLimits.PAYMENT.oneTimeLimit"},
				{"exponent", setPayment("oneTimeLimit", rawJSON("1e3")), "operationLimits.PAYMENT.oneTimeLimit"},
				{"empty string", setPayment("oneTimeLimit", ""), "operationLimits.PAYMENT.oneTimeLimit"},
				{"boolean", setPayment("oneTimeLimit", true), "operationLimits.PAYMENT.oneTimeLimit"},
				{"DEBIT enabled at ELEMENTARY", ops("DEBIT", map[string]any{"enabled": true}), "operationLimits.DEBIT.enabled"},
				{"DEBIT above system", ops("DEBIT", map[string]any{"oneTimeLimit": "0.01"}), "operationLimits.DEBIT.oneTimeLimit"},
				{"enabled not a boolean", setPayment("enabled", "yes"), "operationLimits.PAYMENT.enabled"},
				{"enabled null", setPayment("enabled", nil), "operationLimits.PAYMENT.enabled"},
				{"unknown type", ops("FOO", map[string]any{"oneTimeLimit": "1"}), "operationLimits.FOO"},
				{"REFUND has no limits", ops("REFUND", map[string]any{"oneTimeLimit": "1"}), "operationLimits.REFUND"},
				{"type not an object", map[string]any{"operationLimits": map[string]any{"PAYMENT": "1000"}}, "operationLimits.PAYMENT"},
				{"operationLimits not an object", map[string]any{"operationLimits": []any{}}, "operationLimits"},
				{"operationType mismatch", setPayment("operationType", "CREDIT"), "operationLimits.PAYMENT.operationType"},
				{"walletId mismatch", map[string]any{"walletId": uuid.NewString()}, "walletId"},
				{"balanceLimit above system", map[string]any{"balanceLimit": "15000.01"}, "balanceLimit"},
				{"balanceLimit negative", map[string]any{"balanceLimit": -5}, "balanceLimit"},
				{"one valid, one above system", map[string]any{
					"balanceLimit":    "100",
					"operationLimits": map[string]any{"CREDIT": map[string]any{"oneTimeLimit": "10"}, "PAYMENT": map[string]any{"oneTimeLimit": "15000.01"}},
				}, "operationLimits.PAYMENT.oneTimeLimit"},
				{"one valid, one malformed", map[string]any{
					"balanceLimit":    "100",
					"operationLimits": map[string]any{"PAYMENT": map[string]any{"oneTimeLimit": "abc"}},
				}, "operationLimits.PAYMENT.oneTimeLimit"},
				{"valid removal, invalid value", map[string]any{
					"operationLimits": map[string]any{"PAYMENT": map[string]any{"oneTimeLimit": nil, "monthLimit": "40000.01"}},
				}, "operationLimits.PAYMENT.monthLimit"},
				{"malformed JSON", rawBody(`{"balanceLimit":`), "body"},
				{"array body", rawBody(`[]`), "body"},
			} {
				status, data := post(t, c.body)
				expectError(t, c.name, status, data, http.StatusBadRequest, "VALIDATION_ERROR", c.field)
				if after, _ := get(t); !reflect.DeepEqual(after, before) {
					t.Fatalf("%s: a refused POST changed the limits:\nbefore %v\n after %v", c.name, before, after)
				}
			}
			// Several faults are all named.
			status, data = post(t, map[string]any{"balanceLimit": "15000.01", "operationLimits": map[string]any{
				"PAYMENT": map[string]any{"oneTimeLimit": "15000.01"}, "DEBIT": map[string]any{"enabled": true}}})
			expectError(t, "three faults", status, data, http.StatusBadRequest, "VALIDATION_ERROR",
				"balanceLimit", "operationLimits.PAYMENT.oneTimeLimit", "operationLimits.DEBIT.enabled")
			status, data = post(t, setPayment("oneTimeLimit", nil))
			expectOK(t, "reset", status, data)
		})
		t.Run("unknown and foreign wallets", func(t *testing.T) {
			status, _, data := s.do(t, http.MethodGet, apiBase+"/account/"+uuid.NewString()+"/limit", tok, nil)
			expectError(t, "GET unknown", status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
			status, _, data = s.do(t, http.MethodPost, apiBase+"/account/"+uuid.NewString()+"/limit", tok, setPayment("oneTimeLimit", "1"))
			expectError(t, "POST unknown", status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
			status, _, data = s.do(t, http.MethodGet, apiBase+"/account/bad/limit", tok, nil)
			expectError(t, "GET malformed", status, data, http.StatusBadRequest, "VALIDATION_ERROR", "walletId")
		})
	})
}

// rawJSON is a JSON value written exactly as given inside an encoded request.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func TestE2EBanks(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startServer(t, e)
		tok := s.token(t, s.A)
		var lists [2][]byte
		for i, spelling := range []string{"wifhdrawal", "withdrawal"} {
			status, _, data := s.do(t, http.MethodGet, apiBase+"/account/"+spelling+"/banks", tok, nil)
			if status != http.StatusOK {
				t.Fatalf("%s banks: %d %s", spelling, status, data)
			}
			lists[i] = data
			var ans struct {
				Banks []struct {
					BankIdentifier string `json:"bankIdentifier"`
					Name           string `json:"name"`
					OriginalName   string `json:"originalName"`
					BIC            string `json:"bic"`
					LogoURL        string `json:"logoUrl"`
				} `json:"banks"`
			}
			if err := json.Unmarshal(data, &ans); err != nil {
				t.Fatalf("decode banks: %v", err)
			}
			if len(ans.Banks) == 0 {
				t.Fatalf("%s banks: empty list", spelling)
			}
			seen := map[string]bool{}
			for _, b := range ans.Banks {
				if !digits12.MatchString(b.BankIdentifier) || !digits9.MatchString(b.BIC) || b.Name == "" || b.OriginalName == "" {
					t.Errorf("bad bank entry %+v", b)
				}
				if seen[b.BankIdentifier] {
					t.Errorf("bank %s listed twice", b.BankIdentifier)
				}
				seen[b.BankIdentifier] = true
			}
		}
		if string(lists[0]) != string(lists[1]) {
			t.Errorf("the two spellings answer different lists")
		}
		status, _, data := s.do(t, http.MethodGet, apiBase+"/account/wifhdrawal/banks", "", nil)
		expectError(t, "banks without a token", status, data, http.StatusUnauthorized, "UNAUTHORIZED")
	})
}

func TestE2EIsolation(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startServer(t, e)
		tokA, tokB := s.token(t, s.A), s.token(t, s.B)
		phoneA := phone()
		id := s.register(t, tokA, phoneA)
		acct := apiBase + "/account/" + id
		status, _, data := s.do(t, http.MethodPost, acct+"/limit", tokA,
			map[string]any{"operationLimits": map[string]any{"PAYMENT": map[string]any{"oneTimeLimit": "1234.56"}}})
		expectOK(t, "A sets a limit", status, data)
		snapshot := func() (map[string]any, map[string]any) {
			status, _, info := s.do(t, http.MethodGet, acct+"/info", tokA, nil)
			status2, _, lim := s.do(t, http.MethodGet, acct+"/limit", tokA, nil)
			return expectOK(t, "A's info", status, info), expectOK(t, "A's limits", status2, lim)
		}
		infoBefore, limBefore := snapshot()

		for _, c := range []struct {
			method, path string
			body         any
		}{
			{http.MethodGet, "/info", nil},
			{http.MethodPost, "/deactivation", nil},
			{http.MethodPost, "/identification/2", nil},
			{http.MethodGet, "/limit", nil},
			{http.MethodPost, "/limit", map[string]any{"balanceLimit": "1", "operationLimits": map[string]any{"PAYMENT": map[string]any{"oneTimeLimit": nil}}}},
		} {
			status, _, data := s.do(t, c.method, acct+c.path, tokB, c.body)
			expectError(t, "B: "+c.method+" "+c.path, status, data, http.StatusNotFound, "WALLET_NOT_FOUND")
		}
		// B registering the same phone gets a wallet of its own.
		if idB := s.register(t, tokB, phoneA, 2); idB == id {
			t.Errorf("B registering A's client's phone got A's wallet")
		}

		infoAfter, limAfter := snapshot()
		if !reflect.DeepEqual(infoBefore, infoAfter) {
			t.Errorf("A's wallet changed:\nbefore %v\n after %v", infoBefore, infoAfter)
		}
		if !reflect.DeepEqual(limBefore, limAfter) {
			t.Errorf("A's limits changed:\nbefore %v\n after %v", limBefore, limAfter)
		}
	})
}

func TestE2EHTTPEdges(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startServer(t, e)
		tok := s.token(t, s.A)
		id := s.register(t, tok, phone())

		t.Run("unknown URL", func(t *testing.T) {
			for _, path := range []string{"/nope", apiBase + "/nope", apiBase + "/account/" + id, apiBase + "/account/" + id + "/info/",
				apiBase + "/account/registration/", apiBase + "/account/" + id + "/identification", "/sandbox"} {
				status, hdr, data := s.do(t, http.MethodGet, path, tok, nil)
				expectError(t, "GET "+path, status, data, http.StatusNotFound, "NOT_FOUND")
				if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("GET %s: Content-Type %q", path, ct)
				}
			}
		})
		t.Run("non-canonical path", func(t *testing.T) {
			// Whatever the server makes of such a path, the partner must get a protocol
			// answer (JSON, described by the document), not a redirect page.
			var redirected []string
			for _, c := range []struct{ method, path string }{
				{http.MethodGet, apiBase + "//account/" + id + "/info"},
				{http.MethodPost, apiBase + "/account/./registration"},
				{http.MethodPost, apiBase + "/oauth/../account/registration"},
			} {
				req, status, hdr, data := s.send(t, c.method, c.path, tok, map[string]any{"phone": phone()})
				if status >= 300 && status < 400 {
					redirected = append(redirected, fmt.Sprintf("%s %s → %d %s", c.method, c.path, status, hdr.Get("Location")))
					continue
				}
				validate(t, req, status, hdr, data)
				if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("%s %s: %d with Content-Type %q", c.method, c.path, status, ct)
				}
			}
			if len(redirected) > 0 {
				t.Errorf("non-canonical paths are redirected instead of answered: %s", strings.Join(redirected, "; "))
			}
		})
		t.Run("wrong method", func(t *testing.T) {
			for _, c := range []struct{ method, path, allow string }{
				{http.MethodDelete, apiBase + "/account/" + id + "/info", "GET"},
				{http.MethodPost, apiBase + "/account/" + id + "/info", "GET"},
				{http.MethodGet, apiBase + "/account/registration", "POST"},
				{http.MethodPut, apiBase + "/account/" + id + "/limit", "GET"},
				{http.MethodGet, apiBase + "/oauth/token", "POST"},
				{http.MethodGet, apiBase + "/account/" + id + "/deactivation", "POST"},
				{http.MethodPatch, apiBase + "/account/wifhdrawal/banks", "GET"},
				{http.MethodPost, apiBase + "/openapi.yaml", "GET"},
			} {
				status, hdr, data := s.do(t, c.method, c.path, tok, nil)
				expectError(t, c.method+" "+c.path, status, data, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
				if allow := hdr.Get("Allow"); !strings.Contains(allow, c.allow) {
					t.Errorf("%s %s: Allow %q, want it to list %s", c.method, c.path, allow, c.allow)
				}
			}
		})
		t.Run("body too large", func(t *testing.T) {
			big := []byte(`{"phone":"9001234567","pad":"` + strings.Repeat("x", 65<<10) + `"}`)
			status, _, data := s.do(t, http.MethodPost, apiBase+"/account/registration", tok, rawBody(string(big)))
			expectError(t, "65 KiB registration", status, data, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
			status, _, data = s.do(t, http.MethodPost, apiBase+"/account/registration", tok, chunkedBody{big})
			expectError(t, "65 KiB chunked registration", status, data, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
			status, _, data = s.do(t, http.MethodPost, apiBase+"/account/"+id+"/limit", tok, chunkedBody{big})
			expectError(t, "65 KiB chunked limits", status, data, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
			form := []byte("grant_type=client_credentials&pad=" + strings.Repeat("x", 65<<10))
			status, _, data = s.do(t, http.MethodPost, apiBase+"/oauth/token", "", chunkedBody{form},
				"Content-Type", "application/x-www-form-urlencoded")
			expectError(t, "65 KiB chunked token request", status, data, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
			status, _, data = s.do(t, http.MethodPost, apiBase+"/oauth/token", "", rawBody(string(form)),
				"Content-Type", "application/x-www-form-urlencoded")
			expectError(t, "65 KiB token request", status, data, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
			// Just under the limit is a normal request.
			ok := []byte(`{"phone":"` + phone() + `","pad":"` + strings.Repeat("x", 60<<10) + `"}`)
			status, _, data = s.do(t, http.MethodPost, apiBase+"/account/registration", tok, rawBody(string(ok)))
			expectOK(t, "60 KiB registration", status, data)
		})
		t.Run("body too large where none is expected", func(t *testing.T) {
			// The server refuses any body over 64 KiB, so every operation can answer 413.
			big := rawBody(strings.Repeat(" ", 65<<10))
			var undocumented []string
			for _, c := range []struct{ method, path string }{
				{http.MethodGet, apiBase + "/account/" + id + "/info"},
				{http.MethodPost, apiBase + "/account/" + id + "/deactivation"},
				{http.MethodPost, apiBase + "/account/" + id + "/identification/1"},
				{http.MethodGet, apiBase + "/account/" + id + "/limit"},
				{http.MethodGet, apiBase + "/account/wifhdrawal/banks"},
			} {
				req, status, hdr, data := s.send(t, c.method, c.path, tok, big)
				expectError(t, c.method+" "+c.path+" with 65 KiB", status, data, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
				v, err := validator()
				if err != nil {
					t.Fatal(err)
				}
				if err := v.ValidateResponse(req, status, hdr, data); err != nil {
					if strings.Contains(err.Error(), "status 413 is not described") {
						undocumented = append(undocumented, c.method+" "+strings.Replace(strings.TrimPrefix(c.path, apiBase), id, "{walletId}", 1))
						continue
					}
					t.Errorf("answer does not match the OpenAPI document: %v", err)
				}
			}
			status, _, data := s.do(t, http.MethodGet, apiBase+"/account/"+id+"/info", tok, nil)
			if info := expectOK(t, "info", status, data); info["status"] != "ACTIVE" || info["identification"] != "ELEMENTARY" {
				t.Errorf("a refused request changed the wallet: %v", info)
			}
			if len(undocumented) > 0 {
				t.Errorf("openapi.yaml does not list the 413 the server answers for %s", strings.Join(undocumented, ", "))
			}
		})
		t.Run("OpenAPI document", func(t *testing.T) {
			status, hdr, data := s.do(t, http.MethodGet, apiBase+"/openapi.yaml", "", nil)
			if status != http.StatusOK || !strings.HasPrefix(string(data), "openapi: 3.1") {
				t.Errorf("openapi.yaml: %d, starts %.40q", status, data)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/yaml") {
				t.Errorf("openapi.yaml Content-Type %q", ct)
			}
		})
		t.Run("probes and request ids", func(t *testing.T) {
			for _, path := range []string{"/healthz", "/readyz"} {
				status, _, data := s.do(t, http.MethodGet, path, "", nil)
				expectOK(t, path, status, data)
			}
			_, hdr, _ := s.do(t, http.MethodGet, apiBase+"/account/"+id+"/info", tok, nil, "X-Request-Id", "req-123")
			if got := hdr.Get("X-Request-Id"); got != "req-123" {
				t.Errorf("X-Request-Id echoed as %q", got)
			}
			_, hdr, _ = s.do(t, http.MethodGet, apiBase+"/account/"+id+"/info", tok, nil)
			if hdr.Get("X-Request-Id") == "" {
				t.Errorf("no X-Request-Id on an answer")
			}
		})
	})
}

func TestE2EConcurrency(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		s := startServer(t, e)
		tok := s.token(t, s.A)
		const n = 12

		t.Run("same phone at once", func(t *testing.T) {
			p := phone()
			ids := make([]string, n)
			var wg sync.WaitGroup
			for i := range ids {
				wg.Go(func() {
					status, _, data := s.do(t, http.MethodPost, apiBase+"/account/registration", tok, map[string]any{"phone": p})
					if status == http.StatusOK {
						ids[i], _ = object(t, data)["walletId"].(string)
					} else {
						t.Errorf("concurrent registration: %d %s", status, data)
					}
				})
			}
			wg.Wait()
			for _, id := range ids {
				if id != ids[0] {
					t.Fatalf("concurrent registrations of one phone opened several wallets: %q", ids)
				}
			}
		})
		t.Run("one refresh token at once", func(t *testing.T) {
			p := s.pair(t, s.A)
			statuses := make([]int, n)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var winners []tokenPair
			for i := range statuses {
				wg.Go(func() {
					status, _, data := s.tokenRequest(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {p.RefreshToken}},
						"Authorization", basicAuth(s.A.ClientID, s.A.ClientSecret))
					statuses[i] = status
					if status == http.StatusOK {
						var w tokenPair
						_ = json.Unmarshal(data, &w)
						s.remember(w.AccessToken, w.RefreshToken)
						mu.Lock()
						winners = append(winners, w)
						mu.Unlock()
						return
					}
					expectOAuthError(t, "concurrent refresh", status, data, http.StatusBadRequest, "invalid_grant")
				})
			}
			wg.Wait()
			if len(winners) != 1 {
				t.Fatalf("%d of %d concurrent exchanges of one refresh token succeeded, want exactly 1 (statuses %v)", len(winners), n, statuses)
			}
			// The others were reuse: the whole family, the winner's new pair included, is dead.
			status, _, data := s.do(t, http.MethodGet, apiBase+"/account/wifhdrawal/banks", winners[0].AccessToken, nil)
			expectError(t, "winner's access token after reuse", status, data, http.StatusUnauthorized, "UNAUTHORIZED")
		})
	})
}

func TestE2ETokenExpiry(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		// Lifetimes leave seconds of margin, so a loaded machine does not make
		// a live token look expired or the other way round.
		s := startServerEnv(t, e, map[string]string{"WALLET_ACCESS_TOKEN_TTL": "2s", "WALLET_REFRESH_TOKEN_TTL": "5s"})
		p := s.pair(t, s.A)
		if p.ExpiresIn != 2 || p.RefreshExpiresIn != 5 {
			t.Errorf("lifetimes %d/%d, want the configured 2/5", p.ExpiresIn, p.RefreshExpiresIn)
		}
		banks := apiBase + "/account/wifhdrawal/banks"
		time.Sleep(2100 * time.Millisecond)
		status, hdr, data := s.do(t, http.MethodGet, banks, p.AccessToken, nil)
		expectError(t, "expired access token", status, data, http.StatusUnauthorized, "UNAUTHORIZED")
		if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("expired access token: WWW-Authenticate %q", hdr.Get("WWW-Authenticate"))
		}
		// The refresh token still lives: a new pair.
		basic := basicAuth(s.A.ClientID, s.A.ClientSecret)
		status, _, data = s.tokenRequest(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {p.RefreshToken}}, "Authorization", basic)
		q := s.decodePair(t, status, data)
		time.Sleep(5100 * time.Millisecond)
		status, _, data = s.tokenRequest(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {q.RefreshToken}}, "Authorization", basic)
		expectOAuthError(t, "expired refresh token", status, data, http.StatusBadRequest, "invalid_grant")
		// Client credentials always work again.
		status, _, data = s.do(t, http.MethodGet, banks, s.token(t, s.A), nil)
		expectOK(t, "banks with a fresh token", status, data)
	})
}
