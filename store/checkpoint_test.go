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
