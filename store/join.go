package store

import (
	"strconv"
	"strings"
)

// joinWrites turns a transaction's queued writes into as few statements as it
// may (PostgreSQL): each run of writes that name a row becomes one statement,
// the others as data-modifying WITH parts of the last. Every statement costs
// the server an executor start-up and its own checks and locks; a payment's
// writes were three statements, five when its partner takes webhooks.
//
// A run breaks at a write that names no row (it stands alone, in its place)
// and before a write that names a row already in the run: PostgreSQL lets one
// statement change a row once, and an UPDATE's second change of it would be
// lost without an error.
func joinWrites(ws []write) []write {
	if len(ws) < 2 {
		return ws
	}
	out := make([]write, 0, len(ws))
	var run []write
	rows := make(map[rowKey]bool, len(ws))
	flush := func() {
		if len(run) > 0 {
			out = append(out, joined(run))
			run = run[:0]
			clear(rows)
		}
	}
	for _, w := range ws {
		if w.row == (rowKey{}) {
			flush()
			out = append(out, w)
			continue
		}
		if rows[w.row] {
			flush()
		}
		rows[w.row] = true
		run = append(run, w)
	}
	flush()
	return out
}

// joined makes one statement of writes: the last is the statement, the others
// its WITH parts, their parameters renumbered after those before them. Its
// error passes through every part's mapErr: each maps only its own
// constraint's error and hands on any other.
func joined(ws []write) write {
	if len(ws) == 1 {
		return ws[0]
	}
	var args []any
	parts := make([]string, 0, len(ws)-1)
	maps := make([]func(error) error, 0, len(ws))
	for i, w := range ws[:len(ws)-1] {
		parts = append(parts, "w"+strconv.Itoa(i)+" AS ("+renumber(w.query, len(args))+")")
		args = append(args, w.args...)
	}
	last := ws[len(ws)-1]
	query := "WITH " + strings.Join(parts, ", ") + " " + renumber(last.query, len(args))
	args = append(args, last.args...)
	for _, w := range ws {
		if w.mapErr != nil {
			maps = append(maps, w.mapErr)
		}
	}
	return write{query: query, args: args, mapErr: func(err error) error {
		for _, m := range maps {
			err = m(err)
		}
		return err
	}}
}

// renumber adds by to the number of every parameter ($1, $2, …) of query,
// outside quoted literals and identifiers.
func renumber(query string, by int) string {
	if by == 0 {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	var quote byte // the quote we are inside, or 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0 // a doubled quote closes and reopens: same result
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '$' && i+1 < len(query) && isDigit(query[i+1]):
			j := i + 1
			for j < len(query) && isDigit(query[j]) {
				j++
			}
			n, _ := strconv.Atoi(query[i+1 : j]) // digits only
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n + by))
			i = j - 1
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
