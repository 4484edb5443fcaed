package store

import (
	"context"
	"errors"
)

// A server restart, a failover or a terminated backend leaves connections in
// the pool that the server has closed, and database/sql learns of each only
// by using it: the work that meets one fails, though the database is up. Work
// that may simply run again then does, on another connection. Each run on a
// closed connection takes it out of the pool, so one run more than the pool
// holds reaches a live or a new one; a server that is down fails at connect,
// which is not run again, and the caller answers 503 at once.

// rerunnable marks the failure of work that may run again: nothing of it took
// effect (no COMMIT was sent, or its one statement means the same twice) and
// nothing reached its caller that a second run would repeat.
type rerunnable struct{ err error }

func (e rerunnable) Error() string { return e.err.Error() }
func (e rerunnable) Unwrap() error { return e.err }

// rerunnableIfLost marks err when it says the connection was closed by the
// server; any other error keeps its identity.
func rerunnableIfLost(err error) error {
	if !closedByServer(err) {
		return err
	}
	return rerunnable{err}
}

// lostConn reports a failure that DB.again runs again: marked rerunnable, with
// the caller still waiting.
func lostConn(ctx context.Context, err error) bool {
	var r rerunnable
	return err != nil && ctx.Err() == nil && errors.As(err, &r)
}

// again runs try until it succeeds, fails otherwise than on a closed
// connection, or has run once more than the pool holds connections. When it
// gives up, the error is no longer marked, so that an again around it (a View
// around a batcher's fetch) does not multiply the runs.
func (db *DB) again(ctx context.Context, try func() error) error {
	err := try()
	if !lostConn(ctx, err) {
		return err
	}
	for n := db.write.Stats().MaxOpenConnections; n > 0 && lostConn(ctx, err); n-- {
		err = try()
	}
	var r rerunnable
	if errors.As(err, &r) {
		return r.err
	}
	return err
}
