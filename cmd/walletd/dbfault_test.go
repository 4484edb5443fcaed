package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/perspektiva/walletd/store/storetest"
)

// tcpProxy stands between walletd and PostgreSQL so a test can take the
// database away (every connection cut, new ones refused) and bring it back,
// without touching the server other tests share.
type tcpProxy struct {
	t        *testing.T
	target   string
	addr     string
	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]struct{}
	stopping bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln, p.stopping = ln, false
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *tcpProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

// down cuts every connection and refuses new ones.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopping = true
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// up listens again on the same address.
func (p *tcpProxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy up: %v", err)
	}
	p.serve(ln)
}

// TestE2EDatabaseOutage: while PostgreSQL is unreachable walletd answers 503
// UNAVAILABLE (never a 200, a 400 or a 500) and /readyz says so; when it is
// back walletd recovers by itself, and the books balance.
func TestE2EDatabaseOutage(t *testing.T) {
	t.Parallel()
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skip(storetest.PostgresEnv + " is not set")
	}
	dsn := storetest.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	proxied := u.String()

	a := createPartner(t, proxied, testEnv(nil), "A")
	b := createPartner(t, proxied, testEnv(nil), "B")
	s, _ := startMoneyServerOn(t, proxied, a, b, map[string]string{"WALLET_DB_MAX_CONNS": "4"})
	tok := s.token(t, a)
	w := s.register(t, tok, phone(), 1)
	status, _, body := s.do(t, http.MethodPost, "/api/wallet/v1/account/"+w+"/refill", tok, map[string]any{"amount": "100.00"})
	expectOK(t, "refill before the outage", status, body)

	proxy.down()
	requests := []struct{ method, path string }{
		{http.MethodGet, "/api/wallet/v1/account/" + w + "/info"},
		{http.MethodPost, "/api/wallet/v1/account/" + w + "/refill"},
		{http.MethodGet, "/api/wallet/v1/account/" + w + "/report"},
		{http.MethodPost, "/api/wallet/v1/account/registration"},
	}
	bodies := map[string]any{
		"/api/wallet/v1/account/" + w + "/refill": map[string]any{"amount": "5.00"},
		"/api/wallet/v1/account/registration":     map[string]any{"phone": phone()},
	}
	for round := range 3 {
		for _, r := range requests {
			req, status, hdr, data := s.send(t, r.method, r.path, tok, bodies[r.path])
			if status != http.StatusServiceUnavailable {
				t.Fatalf("round %d, %s %s during the outage: %d %s", round, r.method, r.path, status, data)
			}
			expectError(t, r.path, status, data, http.StatusServiceUnavailable, "UNAVAILABLE")
			validate(t, req, status, hdr, data)
		}
	}
	if _, status, _, _ := s.send(t, http.MethodGet, "/readyz", "", nil); status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz during the outage: %d, want 503", status)
	}

	proxy.up()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, ready, _, _ := s.send(t, http.MethodGet, "/readyz", "", nil)
		_, info, _, data := s.send(t, http.MethodGet, "/api/wallet/v1/account/"+w+"/info", tok, nil)
		if ready == http.StatusOK && info == http.StatusOK {
			var got map[string]any
			if err := json.Unmarshal(data, &got); err != nil || got["walletId"] != w {
				t.Fatalf("info after recovery: %s", data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recovered within 15 s: /readyz %d, info %d %s", ready, info, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	status, _, body = s.do(t, http.MethodPost, "/api/wallet/v1/account/"+w+"/refill", tok, map[string]any{"amount": "7.00"})
	expectOK(t, "refill after recovery", status, body)
	moneyAudit(t, dsn)
}
