package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// engine holds what differs between SQLite and PostgreSQL.
type engine struct {
	name string
	// forUpdate is appended to SELECTs that lock rows. SQLite needs none: its
	// write transactions begin IMMEDIATE and so hold the database's write lock.
	forUpdate string
	// snapshot is the isolation level for reads that must see one state (audit).
	snapshot sql.IsolationLevel
	// skipLocked lets concurrent job runners pass over each other's claims.
	skipLocked string
	// pipelines runs wallet transactions through pgx batches (see pipeline).
	pipelines bool
}

var (
	sqliteEngine   = engine{name: "sqlite"}
	postgresEngine = engine{
		name: "postgres", forUpdate: " FOR UPDATE", snapshot: sql.LevelRepeatableRead,
		skipLocked: " FOR UPDATE SKIP LOCKED", pipelines: true,
	}
)

// duplicate reports a unique-constraint violation, by code, never by message.
func (e *engine) duplicate(err error) bool { return e.uniqueViolation(err, "") }

// uniqueViolation reports a unique constraint of table ("": of any table)
// refusing a row, by code. SQLite does not name the table: its callers ask
// about one statement only.
func (e *engine) uniqueViolation(err error, table string) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505" && (table == "" || pg.TableName == table)
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		return lite.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || lite.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// checkViolation reports a CHECK constraint of table refusing a row, by code.
// SQLite does not name the table: its callers ask about one statement only.
func (e *engine) checkViolation(err error, table string) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23514" && pg.TableName == table
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		return lite.Code() == sqlite3.SQLITE_CONSTRAINT_CHECK
	}
	return false
}

// retryable reports errors after which the whole transaction may simply run again.
func (e *engine) retryable(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "40001" || pg.Code == "40P01"
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		primary := lite.Code() & 0xff
		return primary == sqlite3.SQLITE_BUSY || primary == sqlite3.SQLITE_LOCKED
	}
	return false
}

// unavailable reports errors that mean the database is out of reach: a
// connection the server ended (closedByServer), or no connection to be had.
func (e *engine) unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var connErr *pgconn.ConnectError
	if closedByServer(err) || errors.As(err, &connErr) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		// Class 08: connection exception; 57P03: cannot connect now; 53300: too many connections.
		return pg.Code[:2] == "08" || pg.Code == "57P03" || pg.Code == "53300"
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded)
}

// closedByServer reports errors of a connection the server has ended: the
// FATAL of a terminated backend or of a shutdown, or the socket found closed
// (pgx reports a closed socket as io.ErrUnexpectedEOF). Work that meets one
// may run again on another connection (lost.go). Failing to connect is not
// one, whatever it wraps: running again would only fail again, and a server
// that is down must answer 503 at once, not after every retry.
func closedByServer(err error) bool {
	if err == nil {
		return false
	}
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) {
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		// Admin or crash shutdown, idle session timeout, connection failure.
		return pg.Code == "57P01" || pg.Code == "57P02" || pg.Code == "57P05" || pg.Code == "08006"
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) || errors.Is(err, driver.ErrBadConn)
}
