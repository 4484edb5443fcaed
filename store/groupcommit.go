package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// committer batches SQLite's write transactions (group commit). SQLite has
// one writer, and with synchronous=FULL every commit waits for the disk; run
// one at a time, the fsync bounded payments at a few hundred a second. The
// committer runs the work of every request that is waiting in one SQLite
// transaction, each request in its own savepoint, so a request that fails
// rolls back alone, and one fsync makes the whole batch durable. A request is
// answered only after that commit.
type committer struct {
	db   *sql.DB
	reqs chan *commitReq
	done chan struct{} // closed by close: the loop stops, run refuses new work
	// stopped is closed when the loop has returned, its last batch done.
	stopped chan struct{}
	// between runs after each batch, while no transaction holds the writer's
	// lock (the checkpointer's log restart); nil: nothing.
	between func(context.Context)
}

type commitReq struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	errc chan error
}

// maxBatch bounds the work of one commit, so a burst cannot hold the writer long.
const maxBatch = 128

func newCommitter(db *sql.DB, between func(context.Context)) *committer {
	c := &committer{db: db, reqs: make(chan *commitReq), done: make(chan struct{}), stopped: make(chan struct{}), between: between}
	go c.loop()
	return c
}

// run queues fn and waits for its batch to commit.
func (c *committer) run(ctx context.Context, fn func(*sql.Tx) error) error {
	r := &commitReq{ctx: ctx, fn: fn, errc: make(chan error, 1)}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return sql.ErrConnDone
	}
	// Once queued the request is answered even if ctx ends: its work may
	// already be in a commit, and the caller must not guess.
	return <-r.errc
}

// close stops the loop and waits until the batch it is running, if any, has
// committed (and between has run after it): the caller may then close the
// statements and the pool the batch uses.
func (c *committer) close() {
	close(c.done)
	<-c.stopped
}

func (c *committer) loop() {
	defer close(c.stopped)
	for {
		var first *commitReq
		select {
		case first = <-c.reqs:
		case <-c.done:
			return
		}
		c.commit(drain([]*commitReq{first}, c.reqs, maxBatch))
		if c.between != nil {
			c.between(context.Background())
		}
	}
}

// commit runs a batch in one transaction. If the transaction as a whole fails
// (SQLite can abort it, for instance when an interrupted statement rolls it
// back), nothing of it was written, and every request runs again on its own.
func (c *committer) commit(batch []*commitReq) {
	errs := make([]error, len(batch))
	if err := c.batch(batch, errs); err != nil {
		for _, r := range batch {
			r.errc <- c.single(r)
		}
		return
	}
	for i, r := range batch {
		r.errc <- errs[i]
	}
}

func (c *committer) batch(batch []*commitReq, errs []error) error {
	bg := context.Background()
	tx, err := c.db.BeginTx(bg, nil)
	if err != nil {
		return err
	}
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if _, err := tx.ExecContext(bg, "SAVEPOINT request"); err != nil {
			_ = tx.Rollback()
			return err
		}
		if errs[i] = call(r.fn, tx); errs[i] != nil {
			if _, err := tx.ExecContext(bg, "ROLLBACK TO request"); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		if _, err := tx.ExecContext(bg, "RELEASE request"); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

// single runs one request in a transaction of its own.
func (c *committer) single(r *commitReq) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	tx, err := c.db.BeginTx(context.Background(), nil)
	if err != nil {
		return err
	}
	if err := call(r.fn, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// call runs fn, turning a panic into an error so one bad request cannot stop
// the writer of every other.
func call(fn func(*sql.Tx) error, tx *sql.Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = errors.Join(errPanic, fmt.Errorf("%v", v))
		}
	}()
	return fn(tx)
}

var errPanic = errors.New("store: transaction function panicked")
