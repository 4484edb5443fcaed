package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/wallet"
)

// openDB opens and migrates the database named by --db.
func openDB(ctx context.Context, dsn string, maxConns int) (*store.DB, error) {
	db, err := store.Open(ctx, dsn, store.Options{MaxConns: maxConns})
	if err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func migrate(ctx context.Context, args []string, env envFunc, stdout, stderr io.Writer) error {
	fs, dsn := newFlags("migrate", env, stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	db, err := store.Open(ctx, *dsn, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	if applied == nil {
		applied = []string{}
	}
	return printJSON(stdout, map[string]any{"engine": db.Engine(), "applied": applied})
}

func partner(ctx context.Context, args []string, env envFunc, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: partner create|disable|enable|set-webhook", errUsage)
	}
	fs, dsn := newFlags("partner "+args[0], env, stderr)
	switch args[0] {
	case "create":
		name := fs.String("name", "", "partner name (required)")
		hook := fs.String("webhook-url", "", "URL for event notifications")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *name == "" {
			return fmt.Errorf("%w: --name is required", errUsage)
		}
		if err := checkWebhookURL(*hook); err != nil {
			return err
		}
		return withAuth(ctx, *dsn, func(svc *auth.Service) error {
			creds, err := svc.CreatePartner(ctx, *name, *hook)
			if err != nil {
				return err
			}
			return printJSON(stdout, creds)
		})
	case "set-webhook":
		return setWebhook(ctx, fs, dsn, args[1:], stdout)
	case "disable", "enable":
		id := fs.String("partner", "", "partner id (required)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		pid, err := partnerID(*id)
		if err != nil {
			return err
		}
		status := statusFor(args[0])
		return withAuth(ctx, *dsn, func(svc *auth.Service) error {
			if err := svc.SetPartnerStatus(ctx, pid, status); err != nil {
				return partnerNotFound(pid, err)
			}
			return printJSON(stdout, map[string]string{"partnerId": pid.String(), "status": string(status)})
		})
	}
	return fmt.Errorf("%w: partner create|disable|enable|set-webhook", errUsage)
}

// clients manages a partner's OAuth clients: a second client and the old one
// disabled is how a secret is replaced without stopping the partner.
func clients(ctx context.Context, args []string, env envFunc, stdout, stderr io.Writer) error {
	const clientUsage = "client create --partner ID | client disable|enable --client ID"
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, clientUsage)
	}
	fs, dsn := newFlags("client "+args[0], env, stderr)
	switch args[0] {
	case "create":
		id := fs.String("partner", "", "partner id (required)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		pid, err := partnerID(*id)
		if err != nil {
			return err
		}
		return withAuth(ctx, *dsn, func(svc *auth.Service) error {
			creds, err := svc.CreateClient(ctx, pid)
			if err != nil {
				return partnerNotFound(pid, err)
			}
			return printJSON(stdout, creds)
		})
	case "disable", "enable":
		id := fs.String("client", "", "client id (required)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *id == "" {
			return fmt.Errorf("%w: --client is required", errUsage)
		}
		status := statusFor(args[0])
		return withAuth(ctx, *dsn, func(svc *auth.Service) error {
			err := svc.SetClientStatus(ctx, *id, status)
			if errors.Is(err, auth.ErrNotFound) {
				return fmt.Errorf("client %s not found", *id)
			}
			if err != nil {
				return err
			}
			return printJSON(stdout, map[string]string{"clientId": *id, "status": string(status)})
		})
	}
	return fmt.Errorf("%w: %s", errUsage, clientUsage)
}

// statusFor is the status the verb "disable" or "enable" sets.
func statusFor(verb string) auth.Status {
	if verb == "disable" {
		return auth.Disabled
	}
	return auth.Active
}

// withAuth runs fn with the auth service of the database at dsn.
func withAuth(ctx context.Context, dsn string, fn func(*auth.Service) error) error {
	db, err := openDB(ctx, dsn, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(auth.NewService(db.AuthStore(), auth.Config{}))
}

func tsp(ctx context.Context, args []string, env envFunc, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("%w: tsp create --partner PARTNER_ID --name NAME", errUsage)
	}
	fs, dsn := newFlags("tsp create", env, stderr)
	id := fs.String("partner", "", "partner id (required)")
	name := fs.String("name", "", "TSP name (required)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	pid, err := partnerID(*id)
	if err != nil {
		return err
	}
	if *name == "" {
		return fmt.Errorf("%w: --name is required", errUsage)
	}
	db, err := openDB(ctx, *dsn, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.AuthStore().Partner(ctx, pid); err != nil {
		return partnerNotFound(pid, err)
	}
	svc, err := wallet.NewService(db, wallet.Config{})
	if err != nil {
		return err
	}
	t, err := svc.CreateTSP(ctx, pid, *name)
	if err != nil {
		return err
	}
	return printJSON(stdout, map[string]string{"tspId": t.ID.String(), "name": t.Name})
}

func audit(ctx context.Context, args []string, env envFunc, stdout, stderr io.Writer) error {
	fs, dsn := newFlags("audit", env, stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	db, err := openDB(ctx, *dsn, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	report, err := db.Audit(ctx)
	if err != nil {
		return err
	}
	if len(report.Violations) == 0 {
		fmt.Fprintln(stdout, report.Summary())
		return nil
	}
	for _, v := range report.Violations {
		fmt.Fprintln(stdout, "VIOLATION:", v)
	}
	fmt.Fprintln(stdout, report.Summary())
	return exitError{code: 1}
}

// partnerID parses the --partner flag.
func partnerID(raw string) (uuid.UUID, error) {
	id, err := uuid.Parse(raw)
	if err != nil {
		return uuid.Nil, fmt.Errorf("%w: --partner must be a UUID", errUsage)
	}
	return id, nil
}

// partnerNotFound names the partner when err says there is no such partner
// (the auth and the wallet stores each say it their own way).
func partnerNotFound(id uuid.UUID, err error) error {
	if errors.Is(err, auth.ErrNotFound) || errors.Is(err, wallet.ErrNotFound) {
		return fmt.Errorf("partner %s not found", id)
	}
	return err
}
