package store

import (
	"database/sql"
	"fmt"
	"net/url"
	"runtime"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// busyTimeout is how long a connection waits for SQLite's locks.
const busyTimeout = 10 * time.Second

// openSQLite opens a writer pool and a pool of readers on the same file.
// SQLite allows one writer at a time anyway; write transactions go through the
// group committer (one at a time, batched) instead of busy retries in SQLite.
// The writer pool has a second connection so statements can be prepared while
// a transaction runs.
func openSQLite(path string, opts Options) (*DB, error) {
	pragmas := url.Values{}
	for _, p := range []string{
		fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
		"journal_mode(WAL)",
		"foreign_keys(1)",
		// FULL: a commit is on disk before the partner hears "success".
		"synchronous(FULL)",
		// The committer's per-request savepoints journal the pages they change;
		// in a temporary file that was a sixth of the writer's time in payment
		// profiles. The sub-journal only serves ROLLBACK TO: memory loses nothing.
		"temp_store(MEMORY)",
	} {
		pragmas.Add("_pragma", p)
	}
	with := func(extra ...string) []string {
		return append(pragmas["_pragma"][:len(pragmas["_pragma"]):len(pragmas["_pragma"])], extra...)
	}
	// The writer leaves checkpoints to the checkpointer, and keeps 32 MiB of
	// pages (SQLite's default is 2 MiB): the indexes a payment touches are
	// spread over the wallets, and rereading their pages was a twentieth of
	// the writer's time once the database passed a hundred megabytes.
	writeQ := url.Values{"_pragma": with("wal_autocheckpoint(0)", "cache_size(-32768)"), "_txlock": {"immediate"}}
	write, err := sql.Open("sqlite", path+"?"+writeQ.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	write.SetMaxOpenConns(2)
	write.SetMaxIdleConns(2)
	write.SetConnMaxLifetime(0)

	readQ := url.Values{"_pragma": with("query_only(1)", "cache_size(-8192)")}
	read, err := sql.Open("sqlite", path+"?"+readQ.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	readers := opts.MaxConns
	if readers <= 0 {
		readers = max(4, runtime.GOMAXPROCS(0))
	}
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	read.SetConnMaxLifetime(0)
	ckpt := newCheckpointer(write, path)
	return &DB{
		write: write, read: read, eng: sqliteEngine,
		writeStmts: newStmtCache(write),
		readStmts:  newStmtCache(read),
		committer:  newCommitter(write, ckpt.restartIfDue),
		checkpoint: ckpt,
	}, nil
}
