package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
)

const usage = `walletd — the e-wallet service and its operator tools.

Usage:
  walletd serve [--addr :8080] [--public-url URL] [--sandbox=true|false]
  walletd migrate
  walletd partner create --name NAME [--webhook-url URL]
  walletd partner disable|enable --partner ID
  walletd partner set-webhook --partner ID --url URL
  walletd client create --partner ID
  walletd client disable|enable --client ID
  walletd webhooks list --partner ID [--limit 50]
  walletd webhooks replay EVENT_ID
  walletd tsp create --partner PARTNER_ID --name NAME
  walletd audit

Every command takes --db (or WALLET_DB): a file path for embedded SQLite
(default ./wallet.db) or a postgres:// URL. "walletd serve" alone starts on :8080
with ./wallet.db and the SBP sandbox, which is on by default with SQLite only:
on PostgreSQL it needs --sandbox=true (or WALLET_SANDBOX=true).
`

// errUsage marks mistakes in the command line (exit code 2).
var errUsage = errors.New("usage")

// exitError carries a specific exit code (audit failures exit 1 quietly).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func exitCode(err error) int {
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// run is the whole program; main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, envFunc(getenv), stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // asked for: the flag set has printed the command's flags
	}
	return err
}

func dispatch(ctx context.Context, args []string, env envFunc, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	if len(args) == 2 && isHelp(args[1]) && slices.Contains([]string{"partner", "client", "tsp", "webhooks"}, args[0]) {
		// The command groups have no flags of their own; the usage lists their commands.
		fmt.Fprint(stdout, usage)
		return nil
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], env, stdout, stderr)
	case "migrate":
		return migrate(ctx, args[1:], env, stdout, stderr)
	case "partner":
		return partner(ctx, args[1:], env, stdout, stderr)
	case "client":
		return clients(ctx, args[1:], env, stdout, stderr)
	case "tsp":
		return tsp(ctx, args[1:], env, stdout, stderr)
	case "webhooks":
		return webhooks(ctx, args[1:], env, stdout, stderr)
	case "audit":
		return audit(ctx, args[1:], env, stdout, stderr)
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

func isHelp(arg string) bool { return arg == "help" || arg == "-h" || arg == "--help" }

// newFlags returns a flag set that reports to stderr and always knows --db.
func newFlags(name string, env envFunc, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", env.str("WALLET_DB", "./wallet.db"), "SQLite file path or postgres:// URL (WALLET_DB)")
	return fs, db
}

// parse parses flags and refuses stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}
