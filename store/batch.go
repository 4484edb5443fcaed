package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// batcher runs concurrent lookups of one kind as one query. Every request
// checks its access token, and a payment's initialization reads the wallet; on
// PostgreSQL each of those one-row reads cost a statement and a round trip,
// three of the five round trips of a payment. The batcher's loop takes every
// lookup waiting when it is free and fetches their keys at once; the lookups
// that arrive meanwhile wait for the next fetch. A lookup therefore always
// reads data committed after it was asked for, as a read of its own would: a
// token revoked, or a partner disabled, before a request arrives stops that
// request.
//
// The loop has a connection of its own (the pool holds one per batcher beyond
// the gate's width), so it never waits for a turn behind the requests that
// wait for it.
type batcher[K comparable, V any] struct {
	fetch func(ctx context.Context, keys []K) (map[K]V, error)
	reqs  chan lookup[K, V]
	stop  context.CancelFunc
	done  chan struct{}
}

type lookup[K comparable, V any] struct {
	key K
	res chan<- found[V] // buffered: the loop never waits for a caller that left
}

type found[V any] struct {
	v   V
	ok  bool
	err error
}

const (
	// maxLookups bounds one fetch (and the size of its array parameter).
	maxLookups = 256
	// fetchTimeout fails a fetch that hangs (a lost server), rather than every
	// lookup after it.
	fetchTimeout = 10 * time.Second
)

func newBatcher[K comparable, V any](fetch func(ctx context.Context, keys []K) (map[K]V, error)) *batcher[K, V] {
	ctx, stop := context.WithCancel(context.Background()) //nolint:gosec // stop is kept and called by close
	b := &batcher[K, V]{fetch: fetch, reqs: make(chan lookup[K, V]), stop: stop, done: make(chan struct{})}
	go b.loop(ctx)
	return b
}

// get returns the value under key; ok is false when there is none.
func (b *batcher[K, V]) get(ctx context.Context, key K) (v V, ok bool, err error) {
	res := make(chan found[V], 1)
	select {
	case b.reqs <- lookup[K, V]{key: key, res: res}:
	case <-ctx.Done():
		return v, false, ctx.Err()
	case <-b.done:
		return v, false, sql.ErrConnDone
	}
	select {
	case r := <-res:
		return r.v, r.ok, r.err
	case <-ctx.Done():
		return v, false, ctx.Err()
	}
}

// close stops the loop after the fetch it is running; lookups still waiting
// get sql.ErrConnDone.
func (b *batcher[K, V]) close() {
	b.stop()
	<-b.done
}

// eachKey turns lookup, a read of the rows under one key written k.key, into
// a batch read of the keys in the array $1 of type typ. The LATERAL subquery,
// which OFFSET 0 keeps the planner from folding into a join, is planned as the
// one-key lookup it is: an index probe per key, whatever the table's size.
// "key = ANY($1)" was not: its generic plan scanned the whole table while the
// table was small, a few thousand rows, and kept doing so as it grew, until the
// next ANALYZE; a batch then read every row of the table.
func eachKey(typ, lookup string) string {
	return `SELECT l.* FROM unnest($1::` + typ + `[]) AS k(key) CROSS JOIN LATERAL (` +
		strings.TrimSpace(lookup) + ` OFFSET 0) AS l`
}

// fetch runs a batcher's read and hands scan each row. It goes to the pool
// directly, outside the gate: each batcher has a connection of its own there.
func (db *DB) fetch(ctx context.Context, scan func(scanner) error, query string, arg any) error {
	return db.again(ctx, func() error {
		return sqlStmts{db.read}.query(ctx, read{query: query, args: []any{arg}, scan: each(scan)})
	})
}

// drain appends to batch what is waiting on ch, without waiting, until batch
// holds limit.
func drain[T any](batch []T, ch <-chan T, limit int) []T {
	for len(batch) < limit {
		select {
		case v := <-ch:
			batch = append(batch, v)
		default:
			return batch
		}
	}
	return batch
}

func (b *batcher[K, V]) loop(ctx context.Context) {
	defer close(b.done)
	var (
		batch []lookup[K, V]
		keys  []K
		seen  = map[K]struct{}{}
	)
	for {
		batch, keys = batch[:0], keys[:0]
		clear(seen)
		select {
		case l := <-b.reqs:
			batch = drain(append(batch, l), b.reqs, maxLookups)
		case <-ctx.Done():
			return
		}
		for _, l := range batch {
			if _, dup := seen[l.key]; !dup {
				seen[l.key] = struct{}{}
				keys = append(keys, l.key)
			}
		}
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		values, err := b.fetch(fctx, keys)
		cancel()
		for _, l := range batch {
			v, ok := values[l.key]
			l.res <- found[V]{v: v, ok: ok, err: err}
		}
	}
}
