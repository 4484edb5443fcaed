package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestClosedByServer: only a connection the server ended makes work run
// again; failing to connect, a timeout and the errors of the work itself do not.
func TestClosedByServer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"terminated backend", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, true},
		{"server crash", &pgconn.PgError{Severity: "FATAL", Code: "57P02"}, true},
		{"idle session timeout", &pgconn.PgError{Severity: "FATAL", Code: "57P05"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"socket closed mid-read", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"connection reset", fmt.Errorf("write: %w", syscall.ECONNRESET), true},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), true},
		{"server refusing connections", &pgconn.PgError{Code: "57P03"}, false},
		{"cannot connect", &pgconn.ConnectError{}, false},
		{"too many connections", &pgconn.PgError{Code: "53300"}, false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, false},
		{"no rows", sql.ErrNoRows, false},
		{"deadline", context.DeadlineExceeded, false},
		{"canceled", context.Canceled, false},
		{"nil", nil, false},
	}
	for _, c := range cases {
		if got := closedByServer(c.err); got != c.want {
			t.Errorf("%s: closedByServer = %v, want %v", c.name, got, c.want)
		}
		// Work runs again only when its failure is marked unsent and the
		// caller still waits.
		live, done := context.Background(), canceled()
		if got := lostConn(live, markUnsent(c.err)); got != c.want {
			t.Errorf("%s: lostConn(unsent) = %v, want %v", c.name, got, c.want)
		}
		if lostConn(live, c.err) || lostConn(done, markUnsent(c.err)) {
			t.Errorf("%s: runs again though not unsent, or with its caller gone", c.name)
		}
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
