package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/perspektiva/walletd/store/storetest"
)

// Tests of the SBP sandbox's default (README "Configuration", PROTOCOL.md
// section 4.6): on for the embedded SQLite setup, off for PostgreSQL, and
// whatever --sandbox or WALLET_SANDBOX says when either is given. A sandbox
// confirms top-ups with no payment behind them and no authorisation, so a
// production database must not get one, nor the demo partner whose working
// credentials a new database prints.

const (
	sqliteDSN   = "/var/lib/walletd/wallet.db"
	postgresDSN = "postgres://walletd@db.internal:5432/walletd?sslmode=verify-full"
)

func TestServeSandboxDefault(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{"SQLite by default (./wallet.db)", nil, nil, true},
		{"SQLite file from --db", []string{"--db", sqliteDSN}, nil, true},
		{"SQLite file from WALLET_DB", nil, map[string]string{"WALLET_DB": sqliteDSN}, true},
		{"postgres:// from --db", []string{"--db", postgresDSN}, nil, false},
		{"postgresql:// from --db", []string{"--db", "postgresql://walletd@db.internal/walletd"}, nil, false},
		{"postgres:// from WALLET_DB", nil, map[string]string{"WALLET_DB": postgresDSN}, false},
		{"--db postgres:// wins over an SQLite WALLET_DB", []string{"--db", postgresDSN}, map[string]string{"WALLET_DB": sqliteDSN}, false},

		{"WALLET_SANDBOX=true on PostgreSQL", []string{"--db", postgresDSN}, map[string]string{"WALLET_SANDBOX": "true"}, true},
		{"WALLET_SANDBOX=1 on PostgreSQL", []string{"--db", postgresDSN}, map[string]string{"WALLET_SANDBOX": "1"}, true},
		{"WALLET_SANDBOX=false on SQLite", []string{"--db", sqliteDSN}, map[string]string{"WALLET_SANDBOX": "false"}, false},
		{"WALLET_SANDBOX=false with the default database", nil, map[string]string{"WALLET_SANDBOX": "false"}, false},
		{"--sandbox on PostgreSQL", []string{"--db", postgresDSN, "--sandbox"}, nil, true},
		{"--sandbox=true on PostgreSQL", []string{"--db", postgresDSN, "--sandbox=true"}, nil, true},
		{"--sandbox=false on SQLite", []string{"--db", sqliteDSN, "--sandbox=false"}, nil, false},
		{"-sandbox=false on SQLite", []string{"-sandbox=false"}, nil, false},

		{"--sandbox=true wins over WALLET_SANDBOX=false on PostgreSQL", []string{"--db", postgresDSN, "--sandbox=true"},
			map[string]string{"WALLET_SANDBOX": "false"}, true},
		{"--sandbox=false wins over WALLET_SANDBOX=true on PostgreSQL", []string{"--db", postgresDSN, "--sandbox=false"},
			map[string]string{"WALLET_SANDBOX": "true"}, false},
		{"--sandbox=true wins over WALLET_SANDBOX=false on SQLite", []string{"--db", sqliteDSN, "--sandbox=true"},
			map[string]string{"WALLET_SANDBOX": "false"}, true},
		{"--sandbox=false wins over WALLET_SANDBOX=true on SQLite", []string{"--db", sqliteDSN, "--sandbox=false"},
			map[string]string{"WALLET_SANDBOX": "true"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadServeConfig(c.args, testEnv(c.env), io.Discard)
			if err != nil {
				t.Fatalf("loadServeConfig(%q): %v", c.args, err)
			}
			if cfg.sandbox != c.want {
				t.Errorf("loadServeConfig(%q) with %v: sandbox %v, want %v", c.args, c.env, cfg.sandbox, c.want)
			}
		})
	}

	// A value that is not a boolean is a mistake, on the command line (exit 2) or in the environment.
	for _, c := range []struct {
		args  []string
		env   map[string]string
		usage bool
	}{
		{[]string{"--db", postgresDSN, "--sandbox=maybe"}, nil, true},
		{[]string{"--db", postgresDSN}, map[string]string{"WALLET_SANDBOX": "yes please"}, false},
	} {
		_, err := loadServeConfig(c.args, testEnv(c.env), io.Discard)
		if err == nil || errors.Is(err, errUsage) != c.usage {
			t.Errorf("loadServeConfig(%q) with %v: error %v, want one (a usage error: %v)", c.args, c.env, err, c.usage)
		}
	}

	// serve --help says what the default depends on.
	_, errOut, err := runCmd(t, testEnv(nil), "serve", "--help")
	if err != nil || !strings.Contains(errOut, "-sandbox") || !strings.Contains(errOut, "default true with SQLite, false with PostgreSQL") {
		t.Errorf("serve --help: %v\n%s", err, errOut)
	}
}

// demoRe picks the credentials out of what serve prints for a new database.
var demoRe = regexp.MustCompile(`(?m)^  partner_id +(\S+)\n  client_id +(\S+)\n  client_secret +(\S+)\n  webhook secret +(\S+)\n  demo TSP id +(\S+)$`)

// sandboxWarning is a fragment of the warning serve logs when the sandbox is on with PostgreSQL.
const sandboxWarning = "must not run in production"

// TestE2EServeSandboxDefault starts `walletd serve` on an empty database of
// each engine, by default and with WALLET_SANDBOX set against the default:
// with the sandbox on it prints a demo partner whose credentials work and
// tops up through the sandbox (and warns on PostgreSQL); with it off it
// prints nothing, creates no partner, and the sandbox paths are 404, even for
// a top-up a sandbox issued before.
func TestE2EServeSandboxDefault(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		newDB   func(testing.TB) string
		env     map[string]string
		sandbox bool
		warn    bool
	}{
		{"SQLite, default", storetest.SQLiteDSN, nil, true, false},
		{"SQLite, WALLET_SANDBOX=false", storetest.SQLiteDSN, map[string]string{"WALLET_SANDBOX": "false"}, false, false},
		{"PostgreSQL, default", storetest.PostgresDSN, nil, false, false},
		{"PostgreSQL, WALLET_SANDBOX=true", storetest.PostgresDSN, map[string]string{"WALLET_SANDBOX": "true"}, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dsn := c.newDB(t) // PostgreSQL skips unless WALLET_TEST_POSTGRES is set
			s, stop := launchEmpty(t, dsn, c.env)
			if warned := hasWarning(t, s.logs.String(), sandboxWarning); warned != c.warn {
				t.Errorf("the sandbox warning logged: %v, want %v\nlog:\n%s", warned, c.warn, s.logs.String())
			}
			if c.sandbox {
				demoWorks(t, s)
			} else {
				noDemo(t, s, stop, c.env)
			}
			moneyAudit(t, dsn)
		})
	}
}

// launchEmpty starts `walletd serve` on dsn with exactly env (not the
// harness's sandbox for PostgreSQL); stop is as launch's.
func launchEmpty(t *testing.T, dsn string, env map[string]string) (s *moneyServer, stop func()) {
	t.Helper()
	ts := &testServer{DSN: dsn, getenv: testEnv(env), logs: &syncBuffer{}}
	stop = ts.launch(t)
	return &moneyServer{ts}, stop
}

// hasWarning reports whether the JSON log has a WARN line whose message contains frag.
func hasWarning(t *testing.T, logs, frag string) bool {
	t.Helper()
	for line := range strings.Lines(logs) {
		var entry struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("a log line is not JSON: %v: %s", err, line)
			continue
		}
		if entry.Level == "WARN" && strings.Contains(entry.Msg, frag) {
			return true
		}
	}
	return false
}

// demoWorks requires the demo partner serve printed to get a token, and a
// top-up of its wallet confirmed through the sandbox to be credited.
func demoWorks(t *testing.T, s *moneyServer) {
	t.Helper()
	out := s.out.String()
	m := demoRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("serve on an empty database with the sandbox on printed no demo credentials:\n%s", out)
	}
	demo := &testPartner{PartnerID: m[1], ClientID: m[2], ClientSecret: m[3], WebhookSecret: m[4], TSPID: m[5]}
	s.remember(demo.ClientSecret, demo.WebhookSecret)
	tok := s.token(t, demo)
	w := s.register(t, tok, phone())
	s.fund(t, tok, w, "100.00")
	s.expectBalance(t, "the demo partner's wallet after a sandbox top-up", tok, w, "100.00")
	moneyEqual(t, "the demo TSP takes a payment", s.payOK(t, tok, w, "40.00", demo.TSPID), "status", "SUCCESS")
}

// noDemo requires serve to have printed nothing and created no partner, and
// the sandbox paths to be 404: for an unknown link, and, once s is stopped,
// for the link of a top-up a server with the sandbox on issued on the same
// database, which stays PENDING and credits nothing.
func noDemo(t *testing.T, s *moneyServer, stop func(), env map[string]string) {
	t.Helper()
	if out := s.out.String(); out != "" {
		t.Errorf("serve with the sandbox off printed on stdout:\n%s", out)
	}
	raw := storetest.Raw(t, s.DSN)
	for _, table := range []string{"partners", "oauth_clients", "tsps"} {
		var n int
		if err := raw.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s after serve on an empty database with the sandbox off: %d rows (%v), want none", table, n, err)
		}
	}
	unknown := strings.Repeat("B", 32)
	sandboxGone(t, s, unknown)
	stop()

	// An operator's partner, a top-up a sandbox issued, and the sandbox off again.
	a, b := createPartner(t, s.DSN, testEnv(nil), "A"), createPartner(t, s.DSN, testEnv(nil), "B")
	on, stopOn := startMoneyServerOn(t, s.DSN, a, b, map[string]string{"WALLET_SANDBOX": "true"})
	tok := on.token(t, a)
	w := on.register(t, tok, phone())
	tu := on.refillOK(t, tok, w, "100.00")
	stopOn()
	if out := on.out.String(); out != "" {
		t.Errorf("serve on a database with partners printed on stdout:\n%s", out)
	}

	off, _ := launchEmpty(t, s.DSN, env)
	sandboxGone(t, off, tu.QRC)
	status, _, page := off.do(t, http.MethodGet, "/sandbox/sbp/"+tu.QRC+"?type=02&sum=10000&cur=RUB", "", nil)
	expectError(t, "the sandbox bank page of an issued link", status, page, http.StatusNotFound, "NOT_FOUND")
	moneyEqual(t, "the top-up after a confirmation with the sandbox off", off.operation(t, tok, w, tu.OperationID), "status", "PENDING")
	off.expectBalance(t, "after a confirmation with the sandbox off", tok, w, "0.00")
}

// sandboxGone requires the sandbox's page, confirm and decline of qrc to be 404.
func sandboxGone(t *testing.T, s *moneyServer, qrc string) {
	t.Helper()
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/sandbox/sbp/" + qrc},
		{http.MethodPost, "/sandbox/sbp/" + qrc + "/confirm"},
		{http.MethodPost, "/sandbox/sbp/" + qrc + "/decline"},
	} {
		status, _, data := s.do(t, c.method, c.path, "", nil)
		expectError(t, c.method+" "+c.path+" with the sandbox off", status, data, http.StatusNotFound, "NOT_FOUND")
	}
}
