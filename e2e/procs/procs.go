// Package procs runs the real walletd binary for process-level tests: it
// builds the binary once per test binary, starts `walletd serve` as a child
// process on a local port, waits for /healthz, kills it (SIGKILL) or stops it
// (SIGTERM, which must end with exit code 0), restarts it on the same
// address, and runs the operator commands (partner create, tsp create, audit).
//
// Each process writes its stdout and stderr to a log file in the test's
// temporary directory; when the test fails, the tail of every log is printed.
package procs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/client"
)

// Package is the import path of the program under test.
const Package = "github.com/perspektiva/walletd/cmd/walletd"

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Main runs a package's tests (call it from TestMain) and removes the binary
// built for them afterwards.
func Main(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// goTool finds the go command: the one on PATH, else the standard install.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// Binary returns the path of the walletd binary, building it on the first call.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "walletd-e2e-")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "walletd")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if build.err = statSources(ctx); build.err != nil {
			return
		}
		cmd := exec.CommandContext(ctx, goTool(), "build", "-o", build.path, Package)
		out, err := cmd.CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build %s: %w\n%s", Package, err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// statSources stats every file of the module the binary may be built from.
// go test reuses a cached result while the files a test opened or stat'ed
// are unchanged, and the files the go build it runs reads are not among
// them: without this, `go test ./...` replayed a pass of these tests after
// walletd's own code (cmd/walletd, httpapi, app) had changed.
func statSources(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, goTool(), "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules"):
			return filepath.SkipDir
		case d.IsDir() || strings.HasSuffix(path, "_test.go"):
			return nil
		}
		_, err = os.Stat(path)
		return err
	})
}

// childEnv is the environment of a child process: this process's, without any
// WALLET_ variable (the machine's settings must not leak in), plus vars.
func childEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WALLET_") {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// Command runs `walletd ARGS... --db DSN` to its end and returns its stdout.
// A non-zero exit is an *exec.ExitError, with stderr in the returned error's text.
func Command(t testing.TB, dsn string, args ...string) (string, error) {
	t.Helper()
	bin := Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--db", dsn)...)
	cmd.Env = childEnv(nil)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("walletd %s: %w\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// Partner is what `walletd partner create` prints.
type Partner struct {
	PartnerID     uuid.UUID `json:"partnerId"`
	ClientID      string    `json:"clientId"`
	ClientSecret  string    `json:"clientSecret"`
	WebhookSecret string    `json:"webhookSecret"`
}

// Credentials are the partner's credentials for the SDK.
func (p Partner) Credentials() client.Credentials {
	return client.Credentials{PartnerID: p.PartnerID, ClientID: p.ClientID, ClientSecret: p.ClientSecret}
}

// CreatePartner runs `walletd partner create`. The partner takes webhooks, at
// a receiver of the test's that accepts every delivery, so every outcome
// leaves its event in the outbox for the tests to count.
func CreatePartner(t testing.TB, dsn, name string) Partner {
	t.Helper()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	out, err := Command(t, dsn, "partner", "create", "--name", name, "--webhook-url", hook.URL)
	if err != nil {
		t.Fatal(err)
	}
	var p Partner
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.PartnerID == uuid.Nil || p.ClientSecret == "" {
		t.Fatalf("partner create printed %q (%v)", out, err)
	}
	return p
}

// CreateTSP runs `walletd tsp create` and returns the TSP's id.
func CreateTSP(t testing.TB, dsn string, partnerID uuid.UUID, name string) uuid.UUID {
	t.Helper()
	out, err := Command(t, dsn, "tsp", "create", "--partner", partnerID.String(), "--name", name)
	if err != nil {
		t.Fatal(err)
	}
	var tsp struct {
		TSPID uuid.UUID `json:"tspId"`
	}
	if err := json.Unmarshal([]byte(out), &tsp); err != nil || tsp.TSPID == uuid.Nil {
		t.Fatalf("tsp create printed %q (%v)", out, err)
	}
	return tsp.TSPID
}

// Audit runs `walletd audit` and fails the test (when names the moment) unless
// it exited 0 with its "audit ok" summary, which it returns.
func Audit(t testing.TB, dsn, when string) string {
	t.Helper()
	out, err := Command(t, dsn, "audit")
	out = strings.TrimSpace(out)
	if err != nil {
		t.Errorf("walletd audit %s: %v", when, err)
	} else if !strings.HasPrefix(out, "audit ok") {
		t.Errorf("walletd audit %s printed %q", when, out)
	}
	return out
}

// Options describe a `walletd serve` process.
type Options struct {
	Name string // names the log file; default "walletd"
	DSN  string
	// Addr is host:port to listen on; empty picks a free port on 127.0.0.1.
	Addr string
	// Env holds WALLET_ variables for the process (WALLET_LOG_LEVEL defaults to warn).
	Env map[string]string
}

// Process is a `walletd serve` child process that can be killed and started
// again on the same address and database. Its methods other than Start may be
// called from any goroutine.
type Process struct {
	opts    Options
	bin     string
	logPath string

	mu     sync.Mutex
	addr   string
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	state  *os.ProcessState
	starts int
}

// Start starts walletd and waits until it answers /healthz. The process is
// killed when the test ends, and the tail of its log is printed if the test failed.
func Start(t testing.TB, opts Options) *Process {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "walletd"
	}
	env := map[string]string{"WALLET_LOG_LEVEL": "warn"}
	for k, v := range opts.Env {
		env[k] = v
	}
	opts.Env = env
	p := &Process{opts: opts, bin: Binary(t), logPath: filepath.Join(t.TempDir(), opts.Name+".log")}
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			t.Logf("last lines of the log of %s (%s):\n%s", opts.Name, p.logPath, p.LogTail(40))
		}
	})
	// A reserved port may be taken by another process before walletd takes it;
	// then try another one.
	for attempt := 1; ; attempt++ {
		p.addr = opts.Addr
		if p.addr == "" {
			p.addr = freeAddr(t)
		}
		err := p.start()
		if err == nil {
			return p
		}
		if opts.Addr == "" && attempt < 3 && strings.Contains(p.LogTail(5), "address already in use") {
			continue
		}
		t.Fatalf("start %s: %v\nlog:\n%s", opts.Name, err, p.LogTail(40))
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("release port: %v", err)
	}
	return addr
}

// URL is the process's origin, such as http://127.0.0.1:41234.
func (p *Process) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "http://" + p.addr
}

// Starts counts the starts of the process, the first included.
func (p *Process) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// start launches the process and waits for /healthz.
func (p *Process) start() error {
	p.mu.Lock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			p.mu.Unlock()
			return errors.New("already running")
		}
	}
	p.starts++
	n, addr := p.starts, p.addr
	p.mu.Unlock()

	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== start #%d on %s at %s\n", n, addr, time.Now().Format(time.RFC3339Nano))
	public := "http://" + addr
	cmd := exec.Command(p.bin, "serve", "--db", p.opts.DSN, "--addr", addr, "--public-url", public)
	cmd.Env = childEnv(p.opts.Env)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.state = cmd, done, nil
	p.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(done)
	}()
	return p.waitHealthy(done, public, 30*time.Second)
}

func (p *Process) waitHealthy(done <-chan struct{}, public string, within time.Duration) error {
	probe := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for {
		select {
		case <-done:
			return fmt.Errorf("walletd exited before it was healthy: %s", p.exitState())
		default:
		}
		resp, err := probe.Get(public + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("walletd not healthy within %s (last: %w)", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *Process) exitState() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return "running"
	}
	return p.state.String()
}

// Restart starts the process again on the same address and database after
// Kill or Stop, and waits for /healthz. A port still held by the dying process
// is tried again for a few seconds.
func (p *Process) Restart() error {
	var err error
	for attempt := 1; attempt <= 20; attempt++ {
		if err = p.start(); err == nil {
			return nil
		}
		if !strings.Contains(p.LogTail(5), "address already in use") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("restart %s: %w\nlog:\n%s", p.opts.Name, err, p.LogTail(40))
}

// Kill sends SIGKILL and waits for the process to die. Killing a process that
// is not running does nothing.
func (p *Process) Kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("walletd did not die within 10s of SIGKILL")
	}
}

// Stop sends SIGTERM and waits up to within for a graceful exit, which must
// have exit code 0; a process that does not exit in time is killed and an
// error returned.
func (p *Process) Stop(within time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if done == nil {
		return errors.New("not started")
	}
	select {
	case <-done:
		return fmt.Errorf("walletd was not running: %s", p.exitState())
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(within):
		_ = p.Kill()
		return fmt.Errorf("walletd did not exit within %s of SIGTERM", within)
	}
	p.mu.Lock()
	state := p.state
	p.mu.Unlock()
	if code := state.ExitCode(); code != 0 {
		return fmt.Errorf("walletd exited with %s after SIGTERM (want exit code 0)\nlog:\n%s", state, p.LogTail(20))
	}
	return nil
}

// LogTail returns the last n lines of the process's log.
func (p *Process) LogTail(n int) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 4*n {
			lines = append(lines[:0], lines[len(lines)-n:]...)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
