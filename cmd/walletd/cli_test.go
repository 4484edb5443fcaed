package main

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/store/storetest"
)

// Tests of the operator commands (PROTOCOL.md section 6), run as the program runs them.

func TestCLIPartnersAndClients(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		dsn := e.DSN(t)
		env := testEnv(nil)
		out, errOut, err := runCmd(t, env, "partner", "create", "--db", dsn, "--name", "Партнёр", "--webhook-url", "https://partner.example/hook")
		if err != nil {
			t.Fatalf("partner create: %v\n%s", err, errOut)
		}
		if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
			t.Errorf("partner create printed %q, want one line", out)
		}
		var creds map[string]any
		if err := json.Unmarshal([]byte(out), &creds); err != nil {
			t.Fatalf("partner create printed %q: %v", out, err)
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range creds {
				if !yield(k) {
					return
				}
			}
		})
		if want := []string{"clientId", "clientSecret", "partnerId", "webhookSecret"}; !slices.Equal(keys, want) {
			t.Errorf("partner create printed keys %q, want %q", keys, want)
		}
		for k, v := range creds {
			if s, ok := v.(string); !ok || s == "" {
				t.Errorf("%s = %v, want a non-empty string", k, v)
			}
		}
		if id, _ := creds["partnerId"].(string); !uuidRe.MatchString(id) {
			t.Errorf("partnerId %v is not a lower-case UUID", creds["partnerId"])
		}

		// A second partner gets other credentials.
		out2, _, err := runCmd(t, env, "partner", "create", "--db", dsn, "--name", "Другой")
		if err != nil {
			t.Fatalf("second partner create: %v", err)
		}
		var creds2 map[string]any
		_ = json.Unmarshal([]byte(out2), &creds2)
		for k := range creds {
			if creds[k] == creds2[k] {
				t.Errorf("two partners share %s", k)
			}
		}

		// tsp create for it prints the TSP.
		pid := creds["partnerId"].(string)
		out, errOut, err = runCmd(t, env, "tsp", "create", "--db", dsn, "--partner", pid, "--name", "Кофейня «Зерно»")
		if err != nil {
			t.Fatalf("tsp create: %v\n%s", err, errOut)
		}
		var tsp map[string]any
		if err := json.Unmarshal([]byte(out), &tsp); err != nil {
			t.Fatalf("tsp create printed %q: %v", out, err)
		}
		if id, _ := tsp["tspId"].(string); !uuidRe.MatchString(id) || tsp["name"] != "Кофейня «Зерно»" || len(tsp) != 2 {
			t.Errorf("tsp create printed %s", out)
		}

		// disable and enable print the new status.
		for _, cmd := range []string{"disable", "enable"} {
			out, errOut, err = runCmd(t, env, "partner", cmd, "--db", dsn, "--partner", pid)
			if err != nil {
				t.Fatalf("partner %s: %v\n%s", cmd, err, errOut)
			}
			want := map[string]string{"disable": "DISABLED", "enable": "ACTIVE"}[cmd]
			var got map[string]string
			if err := json.Unmarshal([]byte(out), &got); err != nil || got["status"] != want || got["partnerId"] != pid {
				t.Errorf("partner %s printed %q", cmd, out)
			}
		}

		// client create gives the partner a second client with a secret of
		// its own; disable and enable set that client's status in the database.
		out, errOut, err = runCmd(t, env, "client", "create", "--db", dsn, "--partner", pid)
		if err != nil {
			t.Fatalf("client create: %v\n%s", err, errOut)
		}
		var client map[string]string
		if err := json.Unmarshal([]byte(out), &client); err != nil || len(client) != 3 || client["partnerId"] != pid ||
			client["clientId"] == "" || client["clientId"] == creds["clientId"] ||
			client["clientSecret"] == "" || client["clientSecret"] == creds["clientSecret"] {
			t.Fatalf("client create printed %q", out)
		}
		raw := storetest.Raw(t, dsn)
		for _, cmd := range []string{"disable", "enable"} {
			out, errOut, err = runCmd(t, env, "client", cmd, "--db", dsn, "--client", client["clientId"])
			if err != nil {
				t.Fatalf("client %s: %v\n%s", cmd, err, errOut)
			}
			want := map[string]string{"disable": "DISABLED", "enable": "ACTIVE"}[cmd]
			var got map[string]string
			if err := json.Unmarshal([]byte(out), &got); err != nil || got["status"] != want || got["clientId"] != client["clientId"] {
				t.Errorf("client %s printed %q", cmd, out)
			}
			var stored string
			if err := raw.QueryRow(`SELECT status FROM oauth_clients WHERE id = $1`, client["clientId"]).Scan(&stored); err != nil || stored != want {
				t.Errorf("after client %s the client's status is %q (%v), want %s", cmd, stored, err, want)
			}
		}
	})
}

func TestCLIErrors(t *testing.T) {
	t.Parallel()
	dsn := filepath.Join(t.TempDir(), "wallet.db")
	env := testEnv(nil)
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"partner create without --name", []string{"partner", "create", "--db", dsn}, 2},
		{"partner create with an empty --name", []string{"partner", "create", "--db", dsn, "--name", ""}, 2},
		{"partner create with a stray argument", []string{"partner", "create", "--db", dsn, "--name", "A", "extra"}, 2},
		{"partner create with an unknown flag", []string{"partner", "create", "--db", dsn, "--name", "A", "--nope"}, 2},
		{"partner without a subcommand", []string{"partner"}, 2},
		{"partner with an unknown subcommand", []string{"partner", "delete", "--db", dsn}, 2},
		{"partner disable without --partner", []string{"partner", "disable", "--db", dsn}, 2},
		{"partner disable of an unknown partner", []string{"partner", "disable", "--db", dsn, "--partner", uuid.NewString()}, 1},
		{"partner enable of an unknown partner", []string{"partner", "enable", "--db", dsn, "--partner", uuid.NewString()}, 1},
		{"client without a subcommand", []string{"client"}, 2},
		{"client with an unknown subcommand", []string{"client", "delete", "--db", dsn}, 2},
		{"client create without --partner", []string{"client", "create", "--db", dsn}, 2},
		{"client create with a malformed partner", []string{"client", "create", "--db", dsn, "--partner", "42"}, 2},
		{"client create for an unknown partner", []string{"client", "create", "--db", dsn, "--partner", uuid.NewString()}, 1},
		{"client disable without --client", []string{"client", "disable", "--db", dsn}, 2},
		{"client disable of an unknown client", []string{"client", "disable", "--db", dsn, "--client", "wc_unknown"}, 1},
		{"client enable of an unknown client", []string{"client", "enable", "--db", dsn, "--client", "wc_unknown"}, 1},
		{"tsp create for an unknown partner", []string{"tsp", "create", "--db", dsn, "--partner", uuid.NewString(), "--name", "T"}, 1},
		{"tsp create with a malformed partner", []string{"tsp", "create", "--db", dsn, "--partner", "42", "--name", "T"}, 2},
		{"tsp create without --name", []string{"tsp", "create", "--db", dsn, "--partner", uuid.NewString()}, 2},
		{"tsp without a subcommand", []string{"tsp"}, 2},
		{"unknown command", []string{"frobnicate"}, 2},
		{"serve with a stray argument", []string{"serve", "--db", dsn, "now"}, 2},
		{"migrate with an unknown flag", []string{"migrate", "--db", dsn, "--force"}, 2},
	}
	for _, c := range cases {
		out, _, err := runCmd(t, env, c.args...)
		if err == nil {
			t.Errorf("%s: no error (printed %q)", c.name, out)
			continue
		}
		if got := exitCode(err); got != c.code {
			t.Errorf("%s: exit code %d, want %d (%v)", c.name, got, c.code, err)
		}
		if c.code == 2 && !errors.Is(err, errUsage) {
			t.Errorf("%s: %v is not a usage error", c.name, err)
		}
	}

	// An unknown command shows the usage on stderr.
	_, errOut, err := runCmd(t, env, "frobnicate")
	if !errors.Is(err, errUsage) || !strings.Contains(errOut, "Usage:") || !strings.Contains(err.Error(), "frobnicate") {
		t.Errorf("unknown command: err %v, stderr %q", err, errOut)
	}
	if got := exitCode(exitError{code: 3}); got != 3 {
		t.Errorf("exitCode(exitError{3}) = %d", got)
	}
	if got := exitCode(errors.New("boom")); got != 1 {
		t.Errorf("exitCode(other) = %d, want 1", got)
	}
}

func TestCLIServeConfigErrors(t *testing.T) {
	t.Parallel()
	dsn := filepath.Join(t.TempDir(), "wallet.db")
	for name, env := range map[string]map[string]string{
		"bad access TTL":   {"WALLET_ACCESS_TOKEN_TTL": "soon"},
		"zero refresh TTL": {"WALLET_REFRESH_TOKEN_TTL": "0s"},
		"bad sandbox":      {"WALLET_SANDBOX": "maybe"},
		"bad log level":    {"WALLET_LOG_LEVEL": "loud"},
		"bad max conns":    {"WALLET_DB_MAX_CONNS": "-1"},
		"bad proxies":      {"WALLET_TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"},
	} {
		if _, _, err := runCmd(t, testEnv(env), "serve", "--db", dsn, "--addr", "127.0.0.1:0"); err == nil {
			t.Errorf("%s: serve started", name)
		}
	}
}

func TestCLIHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"help", "-h", "--help"} {
		out, errOut, err := runCmd(t, testEnv(nil), arg)
		if err != nil {
			t.Errorf("%s: %v", arg, err)
		}
		if out != usage || errOut != "" {
			t.Errorf("%s printed %q to stdout and %q to stderr, want the usage on stdout", arg, out, errOut)
		}
	}
	// A command's own --help lists its flags and is not a mistake (exit 0).
	for _, args := range [][]string{
		{"serve", "--help"}, {"migrate", "-h"}, {"audit", "--help"}, {"partner", "create", "-h"},
		{"webhooks", "replay", "--help"}, {"partner", "--help"}, {"webhooks", "help"},
	} {
		if _, _, err := runCmd(t, testEnv(nil), args...); err != nil {
			t.Errorf("walletd %s: %v (exit %d), want exit 0", strings.Join(args, " "), err, exitCode(err))
		}
	}
	for _, cmd := range []string{"serve", "migrate", "partner create", "partner disable|enable", "client create", "client disable|enable", "tsp create", "audit"} {
		if !strings.Contains(usage, "walletd "+cmd) {
			t.Errorf("usage does not mention %q", cmd)
		}
	}
}

func TestCLIMigrateAndAudit(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		dsn := e.DSN(t)
		// The database comes from WALLET_DB when --db is not given.
		env := testEnv(map[string]string{"WALLET_DB": dsn})
		type migrated struct {
			Engine  string   `json:"engine"`
			Applied []string `json:"applied"`
		}
		migrate := func() migrated {
			t.Helper()
			out, errOut, err := runCmd(t, env, "migrate")
			if err != nil {
				t.Fatalf("migrate: %v\n%s", err, errOut)
			}
			var m migrated
			dec := json.NewDecoder(strings.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&m); err != nil {
				t.Fatalf("migrate printed %q: %v", out, err)
			}
			if m.Engine != e.Name || m.Applied == nil {
				t.Errorf("migrate printed %q", out)
			}
			return m
		}
		if first := migrate(); len(first.Applied) == 0 {
			t.Errorf("first migrate applied nothing")
		}
		if again := migrate(); len(again.Applied) != 0 {
			t.Errorf("second migrate applied %q, want nothing", again.Applied)
		}

		out, errOut, err := runCmd(t, env, "audit")
		if err != nil {
			t.Fatalf("audit on a fresh database: %v (exit %d)\n%s%s", err, exitCode(err), out, errOut)
		}
		if !strings.HasPrefix(out, "audit ok") || strings.Count(out, "\n") != 1 {
			t.Errorf("audit printed %q, want one line starting \"audit ok\"", out)
		}

		// A wallet balance its postings do not explain: audit names it and exits 1.
		// Money then is not conserved either: three violations in all.
		forged := uuid.NewString()
		if _, err := storetest.Raw(t, dsn).Exec(`INSERT INTO accounts (id, kind, balance, created_at) VALUES ($1, 'WALLET', 100, 0)`,
			forged); err != nil {
			t.Fatal(err)
		}
		out, _, err = runCmd(t, env, "audit")
		if exitCode(err) != 1 || strings.Count(out, "VIOLATION: ") != 3 || !strings.Contains(out, forged) ||
			!strings.Contains(out, "audit FAILED: 3 violation(s)") {
			t.Errorf("audit of a damaged database: exit %d, printed %q; want exit 1, three VIOLATION lines naming the account, and the verdict", exitCode(err), out)
		}

		// --db wins over WALLET_DB.
		other := filepath.Join(t.TempDir(), "other.db")
		out, errOut, err = runCmd(t, env, "migrate", "--db", other)
		if err != nil || !strings.Contains(out, `"engine":"sqlite"`) {
			t.Errorf("migrate --db %s: %v %s %s", other, err, out, errOut)
		}
	})
}
