package store

import (
	"context"
	"database/sql"
	"time"
)

// checkpointer moves SQLite's write-ahead log into the database file in the
// background. Left to SQLite, the commit that grows the log past its limit
// does the checkpoint itself, inside the group committer, and every request
// of the next batches waits for it: the payment rate fell by a fifth over a
// minute-long run. A PASSIVE checkpoint on the writer pool's spare connection
// runs beside the writer without taking its lock.
type checkpointer struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// checkpointEvery is how often the log is checkpointed.
const checkpointEvery = 500 * time.Millisecond

func newCheckpointer(pool *sql.DB) *checkpointer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				// A failure (the file busy, say) is retried at the next tick.
				_, _ = pool.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
			}
		}
	}()
	return c
}

func (c *checkpointer) close() {
	c.cancel()
	<-c.done
}
