package store

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/perspektiva/walletd/wallet"
)

func TestRenumber(t *testing.T) {
	tests := []struct {
		name, query string
		by          int
		want        string
	}{
		{"nothing to add", "SELECT $1, $2", 0, "SELECT $1, $2"},
		{"every parameter", "UPDATE a SET b = b + $1 WHERE id = $2", 3, "UPDATE a SET b = b + $4 WHERE id = $5"},
		{"numbers of two digits", "VALUES ($9, $10, $19)", 2, "VALUES ($11, $12, $21)"},
		{"repeated", "SELECT $1 FROM p WHERE id = $1", 4, "SELECT $5 FROM p WHERE id = $5"},
		{"literals untouched", "SELECT '$1', $1, 'it''s $2' FROM t WHERE x <> ''", 1, "SELECT '$1', $2, 'it''s $2' FROM t WHERE x <> ''"},
		{"identifiers untouched", `SELECT "$1", $1`, 1, `SELECT "$1", $2`},
		{"a dollar without digits", "SELECT $a, $", 1, "SELECT $a, $"},
		{"at the end", "WHERE id = $7", 10, "WHERE id = $17"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := renumber(tt.query, tt.by); got != tt.want {
				t.Errorf("renumber(%q, %d) = %q, want %q", tt.query, tt.by, got, tt.want)
			}
		})
	}
}

func TestJoinWrites(t *testing.T) {
	w := func(row rowKey, query string, args ...any) write { return write{row: row, query: query, args: args} }
	tests := []struct {
		name  string
		in    []write
		want  []string
		wargs [][]any
	}{
		{
			name:  "one write as it is",
			in:    []write{w(rowKey{"a", 1}, "INSERT INTO a VALUES ($1)", 1)},
			want:  []string{"INSERT INTO a VALUES ($1)"},
			wargs: [][]any{{1}},
		},
		{
			name: "rows that differ share one statement",
			in: []write{
				w(rowKey{"a", 1}, "INSERT INTO a VALUES ($1, $2)", 1, 2),
				w(rowKey{"b", 1}, "UPDATE b SET n = n + $1 WHERE id = $2", 3, 4),
				w(rowKey{"c", 1}, "INSERT INTO c VALUES ($1)", 5),
			},
			want:  []string{"WITH w0 AS (INSERT INTO a VALUES ($1, $2)), w1 AS (UPDATE b SET n = n + $3 WHERE id = $4) INSERT INTO c VALUES ($5)"},
			wargs: [][]any{{1, 2, 3, 4, 5}},
		},
		{
			name: "the same row twice starts a new statement",
			in: []write{
				w(rowKey{"b", 1}, "UPDATE b SET n = n + $1 WHERE id = $2", 1, "x"),
				w(rowKey{"c", 1}, "INSERT INTO c VALUES ($1)", 2),
				w(rowKey{"b", 1}, "UPDATE b SET n = n + $1 WHERE id = $2", 3, "x"),
			},
			want: []string{
				"WITH w0 AS (UPDATE b SET n = n + $1 WHERE id = $2) INSERT INTO c VALUES ($3)",
				"UPDATE b SET n = n + $1 WHERE id = $2",
			},
			wargs: [][]any{{1, "x", 2}, {3, "x"}},
		},
		{
			name: "a write that names no row stands alone, in its place",
			in: []write{
				w(rowKey{"a", 1}, "INSERT INTO a VALUES ($1)", 1),
				w(rowKey{}, "UPDATE a SET k = NULL WHERE id = $1", 0),
				w(rowKey{"a", 2}, "INSERT INTO a VALUES ($1)", 2),
				w(rowKey{"c", 2}, "INSERT INTO c VALUES ($1)", 3),
			},
			want: []string{
				"INSERT INTO a VALUES ($1)",
				"UPDATE a SET k = NULL WHERE id = $1",
				"WITH w0 AS (INSERT INTO a VALUES ($1)) INSERT INTO c VALUES ($2)",
			},
			wargs: [][]any{{1}, {0}, {2, 3}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := joinWrites(tt.in)
			var queries []string
			var args [][]any
			for _, g := range got {
				queries = append(queries, g.query)
				args = append(args, g.args)
			}
			if !reflect.DeepEqual(queries, tt.want) {
				t.Errorf("statements:\n got %q\nwant %q", queries, tt.want)
			}
			if !reflect.DeepEqual(args, tt.wargs) {
				t.Errorf("arguments: got %v, want %v", args, tt.wargs)
			}
		})
	}
}

// A joined statement's error passes every part's mapping: each maps its own.
func TestJoinedErrorsMapByPart(t *testing.T) {
	errDup, errFunds := errors.New("unique"), errors.New("check")
	domDup, domFunds := errors.New("duplicate"), errors.New("insufficient funds")
	mapTo := func(from, to error) func(error) error {
		return func(err error) error {
			if errors.Is(err, from) {
				return to
			}
			return err
		}
	}
	j := joinWrites([]write{
		{row: rowKey{"a", 1}, query: "INSERT INTO a VALUES ($1)", mapErr: mapTo(errDup, domDup)},
		{row: rowKey{"b", 1}, query: "UPDATE b SET n = 1"},
		{row: rowKey{"c", 1}, query: "UPDATE c SET n = 1", mapErr: mapTo(errFunds, domFunds)},
	})
	if len(j) != 1 {
		t.Fatalf("got %d statements, want 1", len(j))
	}
	other := errors.New("connection lost")
	for in, want := range map[error]error{errDup: domDup, errFunds: domFunds, other: other} {
		if got := j[0].mapErr(in); !errors.Is(got, want) {
			t.Errorf("mapErr(%v) = %v, want %v", in, got, want)
		}
	}
}

// TestJoinedWritesOnPostgres runs queued writes through a real pipeline: the
// joined statements keep every change, including a row's second one, which a
// single statement would drop without an error.
func TestJoinedWritesOnPostgres(t *testing.T) {
	db, _ := openTestPostgres(t, Options{MaxConns: 1})
	t.Parallel()
	ctx := context.Background()
	add := func(id, n int) write {
		return write{row: rowKey{"j", id}, query: `UPDATE j SET n = n + $1 WHERE id = $2`, args: []any{n, id}}
	}
	got := map[int]int{}
	err := db.pipelined(ctx, func(ctx context.Context, p *pipeline) error {
		if _, err := p.exec(ctx, `CREATE TEMPORARY TABLE j (id int PRIMARY KEY, n int NOT NULL) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := p.exec(ctx, `INSERT INTO j VALUES (1, 0), (2, 0)`); err != nil {
			return err
		}
		for _, w := range []write{add(1, 5), add(2, 7), add(1, 11), {row: rowKey{"j", 3}, query: `INSERT INTO j VALUES ($1, $2)`, args: []any{3, 13}}} {
			if err := p.execLater(ctx, w); err != nil {
				return err
			}
		}
		return p.query(ctx, read{query: `SELECT id, n FROM j`, scan: each(func(r scanner) error {
			var id, n int
			err := r.Scan(&id, &n)
			got[id] = n
			return err
		})})
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int]int{1: 16, 2: 7, 3: 13}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows after the joined writes: %v, want %v", got, want)
	}
}

// TestJoinedDuplicateIsTheOperations: an operation's write maps a unique
// violation to ErrDuplicate only when it is its own; joined with it, another
// table's broken key is a failure, not a duplicate to run again.
func TestJoinedDuplicateIsTheOperations(t *testing.T) {
	db, _ := openTestPostgres(t, Options{MaxConns: 1})
	t.Parallel()
	ctx := context.Background()
	tx := &walletTx{eng: &db.eng}
	insert := func(table string, id int, mapErr func(error) error) write {
		return write{row: rowKey{table, id}, mapErr: mapErr, query: `INSERT INTO ` + table + ` VALUES ($1)`, args: []any{id}}
	}
	cases := []struct {
		name      string
		writes    []write
		duplicate bool
	}{
		{"the operation's own key", []write{insert("operations", 1, tx.duplicateOperation), insert("other", 2, nil)}, true},
		{"another table's key", []write{insert("operations", 2, tx.duplicateOperation), insert("other", 1, nil)}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := db.pipelined(ctx, func(ctx context.Context, p *pipeline) error {
				// A temporary operations table hides any real one in this session.
				for _, table := range []string{"operations", "other"} {
					if _, err := p.exec(ctx, `CREATE TEMPORARY TABLE `+table+` (id int PRIMARY KEY) ON COMMIT DROP`); err != nil {
						return err
					}
					if _, err := p.exec(ctx, `INSERT INTO `+table+` VALUES (1)`); err != nil {
						return err
					}
				}
				for _, w := range c.writes {
					if err := p.execLater(ctx, w); err != nil {
						return err
					}
				}
				return nil
			})
			switch {
			case c.duplicate && !errors.Is(err, wallet.ErrDuplicate):
				t.Errorf("commit: %v, want ErrDuplicate", err)
			case !c.duplicate && (errors.Is(err, wallet.ErrDuplicate) || !db.eng.duplicate(err)):
				t.Errorf("commit: %v, want the other table's unique violation as it is", err)
			}
		})
	}
}
