package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// conns are the benchmark's keep-alive HTTP/1.1 connections to walletd, each
// carrying one request at a time, written and read by the worker that sends
// it with the standard library's own request writer and response reader.
//
// The benchmark shares its machine with walletd and the database. net/http's
// Transport hands each request to a connection's reader and writer goroutines
// and back; doing without that took the tool's CPU per payment from 0.13 to
// 0.08 ms, and leaves the rest to the service, as partners on machines of
// their own would. Unlike the Transport, a request that meets a connection
// the server has just closed is not sent again: idleReuse keeps that to a
// server restarting under the run.
type conns struct {
	addr    string
	tls     *tls.Config // nil for http://
	dialer  net.Dialer
	maxIdle time.Duration // a connection idle longer is closed, not reused
	idle    chan *conn
}

type conn struct {
	nc       net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
}

// idleReuse is how long an idle connection is reused: well within the idle
// timeouts of walletd (120 s) and of the usual proxies (60 s and more), so a
// request never meets a connection the server is closing.
const idleReuse = 15 * time.Second

// newConns keeps up to size idle connections to the origin of base (an
// http:// or https:// URL).
func newConns(base *url.URL, size int) *conns {
	cs := &conns{
		addr:    base.Host,
		dialer:  net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		maxIdle: idleReuse,
		idle:    make(chan *conn, size),
	}
	port := "80"
	if base.Scheme == "https" {
		port = "443"
		cs.tls = &tls.Config{ServerName: base.Hostname(), MinVersion: tls.VersionTLS12}
	}
	if base.Port() == "" {
		cs.addr = net.JoinHostPort(base.Hostname(), port)
	}
	return cs
}

// do sends req and reads its answer, of which at most limit bytes of body,
// until req's context ends.
func (cs *conns) do(req *http.Request, limit int64) (status int, body []byte, err error) {
	ctx := req.Context()
	c, err := cs.get(ctx)
	if err != nil {
		return 0, nil, err
	}
	reuse := false
	defer func() {
		if reuse {
			cs.put(c)
		} else {
			_ = c.nc.Close()
		}
	}()
	if err := c.nc.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return 0, nil, err
	}
	// A deadline in the past wakes a worker blocked on the connection when
	// ctx ends; such a connection is not reused. Set after the request's own
	// deadline, which would otherwise undo it if ctx ended in between.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := req.Write(c.bw); err != nil {
		return 0, nil, err
	}
	if err := c.bw.Flush(); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		return 0, nil, err
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	_ = resp.Body.Close()
	if err != nil {
		return resp.StatusCode, body, err
	}
	if int64(len(body)) > limit {
		return resp.StatusCode, body[:limit], nil // the rest is unread: the connection is done
	}
	reuse = !resp.Close && stop()
	return resp.StatusCode, body, nil
}

// get takes an idle connection, or dials one.
func (cs *conns) get(ctx context.Context) (*conn, error) {
	if c := cs.takeIdle(); c != nil {
		return c, nil
	}
	nc, err := cs.dialer.DialContext(ctx, "tcp", cs.addr)
	if err != nil {
		return nil, err
	}
	if cs.tls != nil {
		tc := tls.Client(nc, cs.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, err
		}
		nc = tc
	}
	return &conn{nc: nc, br: bufio.NewReader(nc), bw: bufio.NewWriter(nc)}, nil
}

// takeIdle returns an idle connection fit for reuse, nil when there is none.
func (cs *conns) takeIdle() *conn {
	for {
		select {
		case c := <-cs.idle:
			if time.Since(c.lastUsed) < cs.maxIdle {
				return c
			}
			_ = c.nc.Close()
		default:
			return nil
		}
	}
}

// put keeps c for the next request, or closes it when enough are kept.
func (cs *conns) put(c *conn) {
	c.lastUsed = time.Now()
	select {
	case cs.idle <- c:
	default:
		_ = c.nc.Close()
	}
}

// close closes the idle connections.
func (cs *conns) close() {
	for {
		select {
		case c := <-cs.idle:
			_ = c.nc.Close()
		default:
			return
		}
	}
}
