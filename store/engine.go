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
func (e *engine) duplicate(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
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

// unavailable reports errors that mean the database is out of reach.
func (e *engine) unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		// Class 08: connection exception; 57P01-57P03: shutdown, cannot connect now.
		return pg.Code[:2] == "08" || pg.Code == "57P01" || pg.Code == "57P02" || pg.Code == "57P03" || pg.Code == "53300"
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	return errors.As(err, &netErr) || errors.As(err, &connErr) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded)
}
