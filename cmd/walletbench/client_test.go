package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/perspektiva/walletd/money"
)

// fakeWallet issues numbered tokens and refuses every token but the newest.
type fakeWallet struct {
	mu     sync.Mutex
	issued int
}

func (f *fakeWallet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == apiPath+"/oauth/token" {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "wc_1" || secret != "s%2B" || r.FormValue("partner_id") != "p1" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		f.issued++
		fmt.Fprintf(w, `{"access_token":"at%d","token_type":"Bearer","expires_in":900}`, f.issued)
		return
	}
	if r.Header.Get("Authorization") != fmt.Sprintf("Bearer at%d", f.issued) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"code":"UNAUTHORIZED","message":"","fieldErrors":{}}`)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/payment") {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"code":"INSUFFICIENT_FUNDS","message":"","fieldErrors":{}}`)
		return
	}
	fmt.Fprint(w, `{"walletId":"w1","balance":10.00}`)
}

func TestPartnerCallRenewsTokenAfter401(t *testing.T) {
	fake := &fakeWallet{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	base, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	api := newAPIClient(base, 4, 1)
	p := &partner{id: "p1", api: api, tokens: &tokenSource{api: api, partnerID: "p1", clientID: "wc_1", secret: "s+"}}
	ctx := context.Background()

	var info struct {
		WalletID string `json:"walletId"`
	}
	if r := p.call(ctx, http.MethodGet, "/account/w1/info", nil, &info); !r.ok() || info.WalletID != "w1" {
		t.Fatalf("first call: %q %s", r.outcome, r.example())
	}
	// The server forgets the token (as after expiry or revocation): one 401, a new token, success.
	fake.mu.Lock()
	fake.issued++
	fake.mu.Unlock()
	if r := p.call(ctx, http.MethodGet, "/account/w1/info", nil, nil); !r.ok() {
		t.Fatalf("after the token died: %q %s", r.outcome, r.example())
	}
	if n := p.tokens.count(); n != 2 {
		t.Errorf("%d tokens issued, want 2", n)
	}
	r := p.call(ctx, http.MethodPost, "/account/w1/payment", map[string]any{"amount": money.Amount(1_50)}, nil)
	if r.outcome != "400 INSUFFICIENT_FUNDS" || !strings.Contains(r.example(), "POST /api/wallet/v1/account/w1/payment") {
		t.Errorf("refusal: outcome %q, example %q", r.outcome, r.example())
	}

	bad := &partner{id: "p2", api: api, tokens: &tokenSource{api: api, partnerID: "p2", clientID: "wc_1", secret: "s+"}}
	if r := bad.call(ctx, http.MethodGet, "/account/w1/info", nil, nil); r.outcome != "token 401 invalid_client" {
		t.Errorf("wrong partner: outcome %q", r.outcome)
	}
}

func TestAbbreviate(t *testing.T) {
	tests := map[string]struct {
		in   string
		n    int
		want string
	}{
		"short":             {in: " ok ", n: 10, want: "ok"},
		"cut":               {in: "abcdef", n: 3, want: "abc…"},
		"not inside a rune": {in: "ТОКЕН", n: 3, want: "Т…"},
		"rune boundary":     {in: "ТОКЕН", n: 4, want: "ТО…"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := abbreviate([]byte(tc.in), tc.n); got != tc.want {
				t.Errorf("abbreviate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}
