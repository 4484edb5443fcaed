package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// checkpointer keeps SQLite's write-ahead log short.
//
// Left to SQLite, the commit that grows the log past its limit does the
// checkpoint itself, inside the group committer, and every request of the
// next batches waits for it: the payment rate fell by a fifth over a
// minute-long run. So a PASSIVE checkpoint runs every checkpointEvery on the
// writer pool's spare connection, beside the writer, without taking its lock.
//
// A PASSIVE checkpoint never restarts the log, though. SQLite writes from the
// start of the file again only when a writer begins after a complete
// checkpoint with no reader left in the log, and under steady load there is
// always a newer frame or a reader: the log grew by some 40 MB a second of
// payments until the disk would fill. So once the log passes restartFrames,
// the committer runs a RESTART checkpoint between two batches, when nobody
// holds the writer's lock: it has little left to copy and waits only for the
// readers still in the log, at most restartWait, and the next batch writes
// from the start of the file.
type checkpointer struct {
	pool   *sql.DB
	due    atomic.Bool // the log is long: restart it between batches
	cancel context.CancelFunc
	done   chan struct{}
}

const (
	// checkpointEvery is how often the log is checkpointed.
	checkpointEvery = 500 * time.Millisecond
	// restartFrames is the log's length, in pages, past which it is restarted.
	restartFrames = 4096
	// restartWait bounds how long a restart waits for readers; the writer
	// waits with it, so a restart that cannot finish soon is tried later.
	restartWait = 20 * time.Millisecond
)

func newCheckpointer(pool *sql.DB) *checkpointer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{pool: pool, cancel: cancel, done: make(chan struct{})}
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
				frames, err := c.checkpoint(ctx, "PASSIVE")
				if err == nil && frames >= restartFrames {
					c.due.Store(true)
				}
			}
		}
	}()
	return c
}

// checkpoint runs a checkpoint of the given mode and returns the log's
// length, in pages, when it ended.
func (c *checkpointer) checkpoint(ctx context.Context, mode string) (frames int, err error) {
	conn, err := c.pool.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	if mode != "PASSIVE" {
		// Other modes wait for readers with the connection's busy timeout.
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", restartWait.Milliseconds())); err != nil {
			return 0, err
		}
		defer func() {
			_, resetErr := conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeout.Milliseconds()))
			err = errors.Join(err, resetErr)
		}()
	}
	var busy, copied int
	err = conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &frames, &copied)
	return frames, err
}

// restartIfDue restarts a long log. The committer calls it between batches;
// a restart that does not finish is tried again after the next checkpoint.
func (c *checkpointer) restartIfDue(ctx context.Context) {
	if c.due.Swap(false) {
		_, _ = c.checkpoint(ctx, "RESTART")
	}
}

func (c *checkpointer) close() {
	c.cancel()
	<-c.done
}
