package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
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
// holds the writer's lock, and the next batch writes from the start of the
// file.
//
// The writer waits for that restart, so it is prepared to cost little:
//   - A PASSIVE checkpoint that readers keep from reaching the end of the log
//     writes pages into the database file but does not sync it; the restart's
//     sync then flushed everything since the last complete checkpoint, and
//     the writer stood still 20 to 70 ms, the worst latencies of a payment
//     run. The checkpointer syncs the file itself first, off the writer's
//     path, and checkpoints once more, so the restart has a few pages to copy
//     and sync.
//   - SQLite's busy handler sleeps 1, 2, 5, then 10 ms between its tries, while
//     the readers it waits for take well under a millisecond. The restart is
//     tried with no wait inside SQLite, every restartPoll for at most
//     restartWait, and otherwise again after the next batch.
type checkpointer struct {
	pool *sql.DB
	path string      // the database file
	file *os.File    // opened once, to sync the file; see syncFile
	due  atomic.Bool // the log is long: restart it between batches

	cancel context.CancelFunc
	done   chan struct{}
}

const (
	// checkpointEvery is how often the log is checkpointed.
	checkpointEvery = 500 * time.Millisecond
	// restartFrames is the log's length, in pages, past which it is restarted.
	restartFrames = 4096
	// restartWait bounds how long one restart tries while the writer waits;
	// restartPoll is the pause between its tries.
	restartWait = 3 * time.Millisecond
	restartPoll = 200 * time.Microsecond
)

func newCheckpointer(pool *sql.DB, path string) *checkpointer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{pool: pool, path: path, cancel: cancel, done: make(chan struct{})}
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
				if frames, err := c.checkpoint(ctx); err != nil || frames < restartFrames {
					continue
				}
				// A file this process cannot reopen by its name leaves
				// the sync to the restart: a longer stall, but the log
				// is still kept short.
				_ = c.syncFile()
				if _, err := c.checkpoint(ctx); err == nil {
					c.due.Store(true)
				}
			}
		}
	}()
	return c
}

// checkpoint runs a PASSIVE checkpoint and returns the log's length, in
// pages, when it ended.
func (c *checkpointer) checkpoint(ctx context.Context) (frames int, err error) {
	var busy, copied int
	err = c.pool.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	return frames, err
}

// syncFile flushes the pages checkpoints wrote into the database file. The
// file stays open until the store closes: closing any descriptor of a file
// drops every POSIX lock the process holds on it, SQLite's included.
func (c *checkpointer) syncFile() error {
	if c.file == nil {
		f, err := os.Open(c.path)
		if err != nil {
			return err
		}
		c.file = f
	}
	return c.file.Sync()
}

// restartIfDue restarts a long log. The committer calls it between batches.
func (c *checkpointer) restartIfDue(ctx context.Context) {
	if !c.due.Load() {
		return
	}
	conn, err := c.pool.Conn(ctx)
	if err != nil {
		return
	}
	defer func() { _ = conn.Close() }()
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		return
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeout.Milliseconds()))
	}()
	deadline := time.Now().Add(restartWait)
	for {
		var busy, frames, copied int
		if err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &frames, &copied); err != nil {
			return
		}
		if busy == 0 {
			c.due.Store(false)
			return
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(restartPoll)
	}
}

// stop ends the background checkpoints.
func (c *checkpointer) stop() {
	c.cancel()
	<-c.done
}

// release closes the database file; call it after SQLite's connections are
// closed (see syncFile).
func (c *checkpointer) release() error {
	if c.file == nil {
		return nil
	}
	return c.file.Close()
}
