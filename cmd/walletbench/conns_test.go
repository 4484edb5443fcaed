package main

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// connServer serves handler and counts the connections it accepted.
func connServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(handler)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &opened
}

// echo answers with the request's method, Content-Type and body.
func echo(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	_, _ = io.WriteString(w, r.Method+" "+r.Header.Get("Content-Type")+" "+string(body))
}

func newTestConns(t *testing.T, srv *httptest.Server) *conns {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	cs := newConns(u, 4)
	t.Cleanup(cs.close)
	return cs
}

func send(t *testing.T, ctx context.Context, cs *conns, base, body string, limit int64) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/x", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	status, got, err := cs.do(req, limit)
	return status, string(got), err
}

func TestConnsKeepConnectionsAlive(t *testing.T) {
	t.Parallel()
	srv, opened := connServer(t, echo)
	cs := newTestConns(t, srv)
	for i := range 10 {
		body := strings.Repeat("b", i)
		status, got, err := send(t, t.Context(), cs, srv.URL, body, maxAnswer)
		if err != nil || status != http.StatusOK || got != "POST application/json "+body {
			t.Fatalf("request %d: %d %q %v", i, status, got, err)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("10 requests one after another opened %d connections, want 1", n)
	}
}

func TestConnsAreNotReused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		handler http.HandlerFunc
		limit   int64
		want    string
		maxIdle time.Duration
	}{
		{"server closes", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			echo(w, r)
		}, maxAnswer, "POST application/json {}", idleReuse},
		{"answer over the limit", echo, 4, "POST", idleReuse},
		{"idle too long", echo, maxAnswer, "POST application/json {}", time.Nanosecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv, opened := connServer(t, c.handler)
			cs := newTestConns(t, srv)
			cs.maxIdle = c.maxIdle
			for i := range 3 {
				status, got, err := send(t, t.Context(), cs, srv.URL, "{}", c.limit)
				if err != nil || status != http.StatusOK || got != c.want {
					t.Fatalf("request %d: %d %q %v, want 200 %q", i, status, got, err, c.want)
				}
			}
			if n := opened.Load(); n != 3 {
				t.Errorf("3 requests opened %d connections, want 3", n)
			}
		})
	}
}

func TestConnsCanceledRequestReturns(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	srv, opened := connServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("hang") != "" {
			close(arrived)
			<-release
		}
		echo(w, r)
	})
	defer close(release)
	cs := newTestConns(t, srv)

	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/x?hang=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := cs.do(req, maxAnswer)
		done <- err
	}()
	<-arrived // the request waits for its answer
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a canceled request that got no answer succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a canceled request still waits for its answer")
	}
	// Its connection is not reused: the next request has a new one.
	if status, got, err := send(t, t.Context(), cs, srv.URL, "{}", maxAnswer); err != nil || status != http.StatusOK {
		t.Fatalf("request after the canceled one: %d %q %v", status, got, err)
	}
	if n := opened.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestConnsHTTPS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(echo))
	t.Cleanup(srv.Close)
	cs := newTestConns(t, srv)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	cs.tls.RootCAs = roots
	for i := range 2 {
		if status, got, err := send(t, t.Context(), cs, srv.URL, "{}", maxAnswer); err != nil || got != "POST application/json {}" {
			t.Fatalf("request %d over TLS: %d %q %v", i, status, got, err)
		}
	}
	// The certificate is checked: without its root the handshake fails.
	cs = newTestConns(t, srv)
	if _, _, err := send(t, t.Context(), cs, srv.URL, "{}", maxAnswer); err == nil {
		t.Fatal("a server with an unknown certificate was trusted")
	}
}
