package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestConnectionErrors: only a connection the server ended makes work run
// again; failing to connect, a timeout and the errors of the work itself do
// not. Every error of an unreachable database, closed or not, answers 503.
func TestConnectionErrors(t *testing.T) {
	t.Parallel()
	// closed: the server ended the connection, so work may run again;
	// unavailable: the database is out of reach, so the answer is 503. Every
	// closed connection is unavailable, but not the other way round: a server
	// that cannot be reached answers 503 at once, without running anything again.
	cases := []struct {
		name                string
		err                 error
		closed, unavailable bool
	}{
		{"terminated backend", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, true, true},
		{"server crash", &pgconn.PgError{Severity: "FATAL", Code: "57P02"}, true, true},
		{"idle session timeout", &pgconn.PgError{Severity: "FATAL", Code: "57P05"}, true, true},
		{"connection failure", &pgconn.PgError{Severity: "FATAL", Code: "08006"}, true, true},
		{"socket closed mid-read", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true, true},
		{"connection reset", fmt.Errorf("write: %w", syscall.ECONNRESET), true, true},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), true, true},
		{"use of a closed socket", fmt.Errorf("read: %w", net.ErrClosed), true, true},
		{"bad connection", driver.ErrBadConn, true, true},
		{"cannot connect: closed at once", refusedConnect(t), false, true},
		{"server refusing connections", &pgconn.PgError{Code: "57P03"}, false, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, false, true},
		{"deadline", context.DeadlineExceeded, false, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false, false},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, false, false},
		{"no rows", sql.ErrNoRows, false, false},
		{"end of input", io.EOF, false, false},
		{"canceled", context.Canceled, false, false},
		{"nil", nil, false, false},
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range cases {
		if got := closedByServer(c.err); got != c.closed {
			t.Errorf("%s: closedByServer = %v, want %v", c.name, got, c.closed)
		}
		if got := postgresEngine.unavailable(c.err); got != c.unavailable {
			t.Errorf("%s: unavailable = %v, want %v", c.name, got, c.unavailable)
		}
		// Work runs again only when its failure is marked and the caller
		// still waits.
		if got := lostConn(context.Background(), rerunnableIfLost(c.err)); got != c.closed {
			t.Errorf("%s: lostConn(rerunnableIfLost) = %v, want %v", c.name, got, c.closed)
		}
		if lostConn(context.Background(), c.err) || lostConn(done, rerunnableIfLost(c.err)) {
			t.Errorf("%s: runs again though not marked, or with its caller gone", c.name)
		}
	}
}

// refusedConnect returns what pgx answers when the server closes the
// connection before the handshake: a ConnectError around a reset or an EOF,
// which must not count as a closed connection.
func refusedConnect(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = pgconn.Connect(ctx, "postgres://nobody@"+ln.Addr().String()+"/none?sslmode=disable")
	var connect *pgconn.ConnectError
	if !errors.As(err, &connect) {
		t.Fatalf("connecting to a closing listener: %v, want a ConnectError", err)
	}
	return err
}

// TestLostCommitIsNotRunAgain: a transaction whose connection is closed
// before COMMIT runs again; one whose COMMIT got no answer does not, since it
// may have committed. Both paths: pgx pipelines (wallet transactions) and
// database/sql (the rest).
func TestLostCommitIsNotRunAgain(t *testing.T) {
	// Backends are closed by pid, so the store needs no name of its own.
	db, base := openTestPostgres(t, Options{MaxConns: 2})
	t.Parallel()
	ctx := context.Background()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	// kill closes the backend pid, and waits until it is gone.
	kill := func(pid int) {
		t.Helper()
		var ok bool
		if err := admin.QueryRowContext(ctx, `SELECT pg_terminate_backend($1, 5000)`, pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("terminate backend %d: %v %v", pid, ok, err)
		}
	}
	pidRead := func(pid *int) read {
		return read{query: `SELECT pg_backend_pid()`, scan: one(func(r scanner) error { return r.Scan(pid) })}
	}

	paths := []struct {
		name string
		// run runs a transaction whose body reads its backend's pid, then
		// calls body with it, and again reads when second is set.
		run func(body func(pid int), second bool) error
	}{
		{"pipeline", func(body func(int), second bool) error {
			return db.retry(ctx, func() error {
				return db.pipelined(ctx, func(ctx context.Context, p *pipeline) error {
					var pid int
					if err := p.query(ctx, pidRead(&pid)); err != nil {
						return err
					}
					body(pid)
					if second {
						return p.query(ctx, pidRead(&pid))
					}
					return nil
				})
			})
		}},
		{"database/sql", func(body func(int), second bool) error {
			return db.inTx(ctx, db.write, nil, func(ctx context.Context, tx *sql.Tx) error {
				var pid int
				if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
					return err
				}
				body(pid)
				if second {
					return tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid)
				}
				return nil
			})
		}},
	}
	for _, p := range paths {
		// Closed mid-transaction: nothing was committed, the body runs again
		// on a new connection and the transaction succeeds.
		runs := 0
		err := p.run(func(pid int) {
			runs++
			if runs == 1 {
				kill(pid)
			}
		}, true)
		if err != nil || runs != 2 {
			t.Errorf("%s, closed before COMMIT: %d runs, error %v; want 2 runs and success", p.name, runs, err)
		}
		// Closed when COMMIT is sent: its outcome cannot be known, so the
		// body ran once and the caller gets the error (503 to a partner).
		runs = 0
		err = p.run(func(pid int) {
			runs++
			kill(pid)
		}, false)
		if err == nil || runs != 1 || !db.Unavailable(err) {
			t.Errorf("%s, closed at COMMIT: %d runs, error %v; want 1 run and an unavailable error", p.name, runs, err)
		}
	}
}
