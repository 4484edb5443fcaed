package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// openPostgres opens a pool on a PostgreSQL server. Transactions run at READ
// COMMITTED and take row locks in a fixed order where they change several rows.
func openPostgres(dsn string, opts Options) (*DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	var opt []stdlib.OptionOpenDB
	if _, set := cfg.RuntimeParams["plan_cache_mode"]; !set {
		opt = append(opt, stdlib.OptionAfterConnect(genericPlans))
	}
	db := stdlib.OpenDB(*cfg, opt...)
	conns := opts.MaxConns
	if conns <= 0 {
		conns = 16
	}
	// Beyond what the gate lets through, a connection for each batcher.
	const batchers = 2
	db.SetMaxOpenConns(conns + batchers)
	db.SetMaxIdleConns(conns + batchers)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &DB{write: db, read: db, eng: postgresEngine, gate: newGate(conns)}
	s.grants = newBatcher(s.fetchGrants)
	s.wallets = newBatcher(s.fetchWallets)
	return s, nil
}

// genericPlans makes the connection's prepared statements keep one generic
// plan. Every walletd query is a lookup by key, and by default PostgreSQL plans
// a statement afresh on each of its first runs and, when the generic plan is not
// cheaper, for good: planning showed as a fifth of the server's time in payment
// profiles. A server that does not know the setting (a PostgreSQL-wire
// database) is left as it is; plan_cache_mode in the DSN overrides this.
func genericPlans(ctx context.Context, conn *pgx.Conn) error {
	_, _ = conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
	return nil
}
