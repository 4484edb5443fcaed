package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// A server restart, a failover or a terminated backend leaves connections in
// the pool that the server has closed, and database/sql learns of each only
// by using it: the work that meets one fails, though the database is up. Work
// that may simply run again then does, on another connection. Each run on a
// closed connection takes it out of the pool, so one run more than the pool
// holds reaches a live or a new one; a server that is down fails every run at
// once, and the caller answers 503 as before.

// unsent marks the failure of work that may run again: nothing of it took
// effect (no COMMIT was sent, or its one statement has the same effect twice)
// and nothing reached its caller that a second run would repeat.
type unsent struct{ err error }

func (e unsent) Error() string { return e.err.Error() }
func (e unsent) Unwrap() error { return e.err }

// markUnsent marks a failure of work that may run again; nil stays nil.
func markUnsent(err error) error {
	if err == nil {
		return nil
	}
	return unsent{err}
}

// unsentIfLost marks err as unsent only when it says the connection was
// lost, so that the errors of a caller's work keep their identity.
func unsentIfLost(err error) error {
	if !closedByServer(err) {
		return err
	}
	return markUnsent(err)
}

// lostConn reports a failure of work that may run again, on a connection the
// server had closed, while the caller still waits.
func lostConn(ctx context.Context, err error) bool {
	var u unsent
	return err != nil && ctx.Err() == nil && errors.As(err, &u) && closedByServer(u.err)
}

// closedByServer reports errors of a connection the server has ended: the
// FATAL of a terminated backend or of a shutdown, or the socket found closed.
// Failing to connect at all is not one: running again would only fail again,
// and a server that is down must answer 503 at once, not after every retry.
func closedByServer(err error) bool {
	if err == nil {
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "57P01", "57P02", "57P05", // admin or crash shutdown, idle session timeout
			"08000", "08003", "08006": // connection exception, lost or gone
			return true
		}
		return false
	}
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) {
		return false
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, driver.ErrBadConn)
}

// again runs try until it succeeds, fails otherwise than on a lost
// connection, or has run once more than the pool holds connections.
func (db *DB) again(ctx context.Context, try func() error) error {
	err := try()
	for n := db.write.Stats().MaxOpenConnections; n > 0 && lostConn(ctx, err); n-- {
		err = try()
	}
	return err
}
