package store

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// stmtCache keeps prepared statements of one pool. SQLite parses every
// statement it is given, and the parse showed as a fifth of walletd's CPU in
// payment profiles; PostgreSQL needs none of this, pgx caches statements itself.
type stmtCache struct {
	pool *sql.DB
	mu   sync.Mutex
	m    map[string]*sql.Stmt
}

// maxCachedStatements bounds the cache: the report builds its WHERE clause from
// optional filters, and anything beyond the fixed set of queries is run unprepared.
const maxCachedStatements = 256

// prepareWait bounds the wait for a connection to prepare a statement on.
const prepareWait = 20 * time.Millisecond

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, m: map[string]*sql.Stmt{}}
}

func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	if len(c.m) >= maxCachedStatements {
		return nil
	}
	// Preparing takes a connection of the pool. A caller inside a transaction
	// holds one already, and when every other is held the same way, waiting
	// would never end: after a moment the query runs unprepared this time.
	pctx, cancel := context.WithTimeout(ctx, prepareWait)
	defer cancel()
	st, err := c.pool.PrepareContext(pctx, query) //nolint:sqlclosecheck // cached; closed by close()
	if err != nil {
		return nil // the query runs unprepared and reports its own error
	}
	c.m[query] = st
	return st
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		_ = st.Close()
		delete(c.m, q)
	}
}

// ExecContext runs a statement on the pool itself, prepared where it can.
func (c *stmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := c.get(ctx, query); st != nil { //nolint:sqlclosecheck // cached; closed by close()
		return st.ExecContext(ctx, args...)
	}
	return c.pool.ExecContext(ctx, query, args...)
}

// QueryContext runs a read on the pool itself, prepared where it can.
func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.get(ctx, query); st != nil { //nolint:sqlclosecheck // cached; closed by close()
		return st.QueryContext(ctx, args...)
	}
	return c.pool.QueryContext(ctx, query, args...)
}

// cachedTx runs a transaction's statements through the cache.
type cachedTx struct {
	tx    *sql.Tx
	cache *stmtCache
}

func (c cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := c.cache.get(ctx, query); st != nil {
		return c.tx.StmtContext(ctx, st).ExecContext(ctx, args...) //nolint:sqlclosecheck // closed with the transaction
	}
	return c.tx.ExecContext(ctx, query, args...)
}

func (c cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.cache.get(ctx, query); st != nil {
		return c.tx.StmtContext(ctx, st).QueryContext(ctx, args...) //nolint:sqlclosecheck // closed with the transaction
	}
	return c.tx.QueryContext(ctx, query, args...)
}
