package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestLogStaysShortUnderLoad writes through the group committer while readers
// keep transactions open without pause, which is what kept SQLite from ever
// restarting its log: the log file grew with every byte written. Now it must
// stay near the restart threshold however much is written.
func TestLogStaysShortUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("writes some hundreds of megabytes")
	}
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wallet.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE filler (b BLOB NOT NULL)`); err != nil {
		t.Fatal(err)
	}

	const (
		pageSize  = 4096
		perCommit = 1 << 20                      // bytes a batch writes
		bound     = 4 * restartFrames * pageSize // what the log may reach
		total     = 6 * bound                    // what the test writes
		rows      = perCommit/(pageSize-96) + 1  // a row to a page, less headers
	)

	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := readOnce(ctx, db.read); err != nil {
					t.Errorf("reader: %v", err)
					return
				}
			}
		})
	}

	var largest int64
	for written := 0; written < total; written += perCommit {
		err := db.committer.run(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `DELETE FROM filler`); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
				INSERT INTO filler SELECT randomblob(?) FROM n`, rows, pageSize-200)
			return err
		})
		if err != nil {
			t.Fatalf("write: %v", err)
		}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			largest = max(largest, fi.Size())
		}
	}
	close(stop)
	readers.Wait()
	t.Logf("wrote %d MiB; the log reached %d MiB (bound %d MiB)", total>>20, largest>>20, bound>>20)
	if largest > bound {
		t.Errorf("the log reached %d MiB after %d MiB written; it must stay under %d MiB", largest>>20, total>>20, bound>>20)
	}
}

// readOnce runs one short read transaction, as a request's reads do.
func readOnce(ctx context.Context, pool *sql.DB) error {
	tx, err := pool.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM filler`).Scan(&n)
}

// TestRestartWaitsForNoReader checks the log restart's manners: while a
// reader still reads from the log it gives up at once and stays due, so the
// writer is not held for the reader; once the reader is gone it restarts the
// log, and the next commit writes from the start of the file.
func TestRestartWaitsForNoReader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "wallet.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	write := func(pages int) {
		t.Helper()
		err := db.committer.run(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
				INSERT INTO filler SELECT randomblob(3900) FROM n`, pages)
			return err
		})
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	frames := func() int {
		t.Helper()
		n, err := db.checkpoint.checkpoint(ctx)
		if err != nil {
			t.Fatalf("checkpoint: %v", err)
		}
		return n
	}
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE filler (b BLOB NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	write(500)

	// A reader that began while the log held unchecked frames keeps its
	// place in the log until it ends.
	reader, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = reader.Rollback() }()
	var n int
	if err := reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM filler`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	long := frames()
	if long < 500 {
		t.Fatalf("the log holds %d pages after 500 were written", long)
	}

	db.checkpoint.due.Store(true)
	db.checkpoint.restartIfDue(ctx)
	if !db.checkpoint.due.Load() {
		t.Fatal("the log was restarted under a reader, or the restart was dropped instead of tried again")
	}
	write(10)
	if got := frames(); got <= long {
		t.Fatalf("the log went from %d to %d pages with a reader in it; it must only grow", long, got)
	}

	if err := reader.Rollback(); err != nil {
		t.Fatal(err)
	}
	db.checkpoint.restartIfDue(ctx)
	if db.checkpoint.due.Load() {
		t.Fatal("no reader is left, yet the restart is still due")
	}
	write(10)
	if got := frames(); got >= long {
		t.Fatalf("after the restart the log holds %d pages, no fewer than the %d before it", got, long)
	}
}
