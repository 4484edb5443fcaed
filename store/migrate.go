package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations
var migrations embed.FS

// Migrate brings the schema up to date. On PostgreSQL concurrent walletd nodes
// serialise on a lock table rather than an advisory lock, which PostgreSQL-wire
// distributed databases lack.
func (db *DB) Migrate(ctx context.Context) ([]string, error) {
	dir, err := fs.Sub(migrations, "migrations/"+db.eng.name)
	if err != nil {
		return nil, err
	}
	dialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if db.eng.name == postgresEngine.name {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresTableLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.write, dir, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	applied := make([]string, 0, len(results))
	for _, r := range results {
		applied = append(applied, r.Source.Path)
	}
	return applied, nil
}
