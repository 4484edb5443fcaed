package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/perspektiva/walletd/app/apptest"
)

// nbsp groups thousands and separates the rouble sign in displayed amounts.
const nbsp = "\u00a0"

// TestPages tops a wallet up through the sandbox bank page, once paid and once
// declined, checking the outcome through the API, then opens the API
// reference and waits for Redoc to render it under the page's CSP.
func TestPages(t *testing.T) {
	chromium := findChromium(t)
	// The whole test, browser included, has 50 seconds. Canceled last, after
	// the cleanups below have closed the tab and stopped the browser.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)

	srv, err := apptest.Start(ctx, apptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopWithin(t, "walletd", srv.Close) })

	api := newClient(t, ctx, srv)
	walletID := api.registerWallet("9001234567")
	tab, events := newTab(t, ctx, chromium)

	t.Run("pay", func(t *testing.T) {
		topUp := api.refill(walletID, "1500.00")
		events.reset()
		openBankPage(t, tab, topUp.Payload, "1"+nbsp+"500,00"+nbsp+"₽")
		screenshot(t, tab, "sandbox-pending.png", true)

		clickAndWait(t, tab, "pay")
		checkResult(t, tab, "SUCCESS", "Перевод выполнен", "Кошелёк пополнен.")
		screenshot(t, tab, "sandbox-success.png", true)
		events.check(t, srv.URL)

		if got := api.balance(walletID); got != "1500.00" {
			t.Errorf("balance after paying %s: %s, want 1500.00", topUp.Amount, got)
		}
		if got := api.operationStatus(walletID, topUp.OperationID); got != "SUCCESS" {
			t.Errorf("operation %s: %s, want SUCCESS", topUp.OperationID, got)
		}
	})

	t.Run("decline", func(t *testing.T) {
		topUp := api.refill(walletID, "2000.00")
		events.reset()
		openBankPage(t, tab, topUp.Payload, "2"+nbsp+"000,00"+nbsp+"₽")

		clickAndWait(t, tab, "decline")
		checkResult(t, tab, "FAILED", "Перевод отклонён", "Деньги не списаны.")
		screenshot(t, tab, "sandbox-declined.png", true)
		events.check(t, srv.URL)

		if got := api.balance(walletID); got != "1500.00" {
			t.Errorf("balance after declining %s: %s, want 1500.00 (unchanged)", topUp.Amount, got)
		}
		if got := api.operationStatus(walletID, topUp.OperationID); got != "FAILED" {
			t.Errorf("operation %s: %s, want FAILED", topUp.OperationID, got)
		}
	})

	t.Run("docs", func(t *testing.T) {
		events.reset()
		resp, err := chromedp.Run(tab, chromedp.NavigateResponse(srv.URL+"/docs"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusOK {
			t.Fatalf("GET /docs: %d", resp.Status)
		}
		if csp := resp.Headers["Content-Security-Policy"]; !strings.Contains(fmt.Sprint(csp), "script-src 'self'") {
			t.Fatalf("GET /docs: Content-Security-Policy %q", csp)
		}
		// Redoc has rendered when the operations' headings are there: one from
		// the partner API and one from the sandbox paths.
		rendered, cancel := context.WithTimeout(tab, 20*time.Second)
		defer cancel()
		for _, summary := range []string{"Top up through SBP", "Sandbox bank-app page"} {
			heading := fmt.Sprintf(`//h2[contains(normalize-space(.), %q)]`, summary)
			if err := chromedp.Do(rendered, chromedp.WaitVisible(heading)); err != nil {
				events.check(t, srv.URL) // the likely reason
				t.Fatalf("Redoc did not render %q: %v", summary, err)
			}
		}
		title, err := chromedp.Run(tab, chromedp.Title())
		if err != nil {
			t.Fatal(err)
		}
		if title != "VsePlatezhi 3.0 e-wallet — partner API" {
			t.Errorf("title %q", title)
		}
		screenshot(t, tab, "docs.png", false) // the whole reference is some 40 000 px tall
		if os.Getenv("WALLET_BROWSER_SCREENSHOTS") != "" {
			if err := chromedp.Do(tab, chromedp.ScrollIntoView(`//h2[contains(normalize-space(.), "Top up through SBP")]`)); err != nil {
				t.Fatal(err)
			}
			screenshot(t, tab, "docs-refill.png", false)
		}
		events.check(t, srv.URL)
	})
}

// TestDocsMounted checks, without a browser, that walletd serves the API
// reference and its embedded assets.
func TestDocsMounted(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	srv, err := apptest.Start(ctx, apptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopWithin(t, "walletd", srv.Close) })
	for _, c := range []struct {
		method, path string
		status       int
		contentType  string
	}{
		{http.MethodGet, "/docs", http.StatusOK, "text/html; charset=utf-8"},
		{http.MethodGet, "/docs/redoc.standalone.js", http.StatusOK, "text/javascript; charset=utf-8"},
		{http.MethodHead, "/docs/redoc.standalone.js", http.StatusOK, "text/javascript; charset=utf-8"},
		{http.MethodGet, "/docs/unknown.js", http.StatusNotFound, ""},
		{http.MethodPost, "/docs", http.StatusMethodNotAllowed, "application/json; charset=utf-8"},
		{http.MethodGet, "/api/wallet/v1/openapi.yaml", http.StatusOK, "application/yaml; charset=utf-8"},
	} {
		req, err := http.NewRequestWithContext(ctx, c.method, srv.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, res.StatusCode, c.status)
		}
		if ct := res.Header.Get("Content-Type"); c.contentType != "" && ct != c.contentType {
			t.Errorf("%s %s: Content-Type %q, want %q", c.method, c.path, ct, c.contentType)
		}
	}
}

// findChromium returns the browser to drive, or skips the test when there is
// none, unless WALLET_BROWSER_TESTS=1 requires one.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WALLET_CHROMIUM"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("WALLET_CHROMIUM=%s: %v", p, err)
		}
		return path
	}
	candidates := []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}
	for _, c := range candidates {
		if path, err := exec.LookPath(c); err == nil {
			return path
		}
	}
	msg := fmt.Sprintf("no Chromium found (looked for %s; WALLET_CHROMIUM names another binary); "+
		"install it with `apt-get install -y chromium`", strings.Join(candidates, ", "))
	if os.Getenv("WALLET_BROWSER_TESTS") == "1" {
		t.Fatal(msg + "; WALLET_BROWSER_TESTS=1 requires the browser tests to run")
	}
	t.Skip(msg + "; set WALLET_BROWSER_TESTS=1 to make this a failure")
	return ""
}

// newTab starts a headless Chromium for the test and returns its tab, and the
// record of what the tab loaded and logged. The browser gets a new, empty
// profile: chromedp makes a temporary --user-data-dir, and when the browser
// stops it kills any process still using it and removes it.
func newTab(t *testing.T, ctx context.Context, chromium string) (context.Context, *pageEvents) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(func() { stopWithin(t, "the browser", cancelAlloc) })
	events := &pageEvents{}
	events.reset()
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(events.record))
	t.Cleanup(func() { stopWithin(t, "the browser tab", cancelTab) })
	if err := chromedp.Do(tab); err != nil { // starts the browser
		t.Fatalf("start %s: %v", chromium, err)
	}
	return tab, events
}

// stopWithin runs stop, and fails the test with every goroutine's stack when
// stop takes longer than 20 seconds, instead of hanging until go test's timeout.
func stopWithin(t *testing.T, what string, stop func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		stop()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		buf := make([]byte, 1<<20)
		buf = buf[:goruntime.Stack(buf, true)]
		t.Errorf("stopping %s took more than 20s; goroutines:\n%s", what, buf)
	}
}

// openBankPage opens a top-up's payload link and checks the pending page.
func openBankPage(t *testing.T, tab context.Context, link, amount string) {
	t.Helper()
	resp, err := chromedp.Run(tab, chromedp.NavigateResponse(link))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("GET %s: %d", link, resp.Status)
	}
	if err := chromedp.Do(tab, chromedp.WaitVisible(chromedp.CSS(`#status[data-status="PENDING"]`))); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(tab, chromedp.TextContent(chromedp.ID("amount")))
	if err != nil {
		t.Fatal(err)
	}
	if got != amount {
		t.Errorf("bank page shows %q, want %q", got, amount)
	}
	for _, button := range []string{"pay", "decline"} {
		if err := chromedp.Do(tab, chromedp.WaitVisible(chromedp.ID(button))); err != nil {
			t.Fatalf("button #%s: %v", button, err)
		}
	}
}

// clickAndWait clicks a button of the bank page and waits for the page its
// form posts to.
func clickAndWait(t *testing.T, tab context.Context, button string) {
	t.Helper()
	resp, err := chromedp.RunResponse(tab, chromedp.Click(chromedp.ID(button)))
	if err != nil {
		t.Fatalf("click #%s: %v", button, err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("click #%s: %s answered %d", button, resp.URL, resp.Status)
	}
}

// checkResult checks the result page of the bank page.
func checkResult(t *testing.T, tab context.Context, status, title, message string) {
	t.Helper()
	sel := chromedp.CSS(fmt.Sprintf(`#status[data-status=%q]`, status))
	if err := chromedp.Do(tab, chromedp.WaitVisible(sel)); err != nil {
		t.Fatalf("waiting for status %s: %v", status, err)
	}
	for id, want := range map[string]string{"title": title, "result": message, "status": status} {
		got, err := chromedp.Run(tab, chromedp.TextContent(chromedp.ID(id)))
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(got) != want {
			t.Errorf("#%s %q, want %q", id, got, want)
		}
	}
	if err := chromedp.Do(tab, chromedp.WaitNotPresent(chromedp.ID("pay"))); err != nil {
		t.Errorf("the result page still has a Pay button: %v", err)
	}
}

// screenshot saves the page (all of it, or the window when full is false) in
// WALLET_BROWSER_SCREENSHOTS, when that is set.
func screenshot(t *testing.T, tab context.Context, name string, full bool) {
	t.Helper()
	dir := os.Getenv("WALLET_BROWSER_SCREENSHOTS")
	if dir == "" {
		return
	}
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(100)
	}
	png, err := chromedp.Run(tab, shot)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pageEvents records what the tab requested and what it logged. The pages
// must load nothing from another host, and the browser must report no script
// error and no Content-Security-Policy violation but the known one.
type pageEvents struct {
	mu       sync.Mutex
	requests map[network.RequestID]string
	blocked  map[network.RequestID]bool // by the page's CSP
	problems []string
}

// blockedByDesign are requests of the vendored Redoc that the docs page's CSP
// is meant to block: Redoc 2 shows its "API docs by Redocly" credit with a
// logo from its CDN, and hides the image when it does not load.
var blockedByDesign = []string{"https://cdn.redoc.ly/redoc/logo-mini.svg"}

func (e *pageEvents) record(ev any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		e.requests[ev.RequestID] = ev.Request.URL
	case *network.EventLoadingFailed:
		if ev.BlockedReason == network.BlockedReasonCsp {
			e.blocked[ev.RequestID] = true
		}
	case *log.EventEntryAdded:
		en := ev.Entry
		if en.Level != log.EntryLevelError && en.Source != log.EntrySourceSecurity {
			return
		}
		for _, u := range blockedByDesign {
			if en.Source == log.EntrySourceSecurity && strings.Contains(en.Text, "'"+u+"'") {
				return
			}
		}
		e.problems = append(e.problems, fmt.Sprintf("%s %s: %s (%s)", en.Source, en.Level, en.Text, en.URL))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + d.Exception.Description
		}
		e.problems = append(e.problems, "exception: "+text)
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			e.problems = append(e.problems, "console.error: "+strings.Join(args, " "))
		}
	}
}

func (e *pageEvents) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests = map[network.RequestID]string{}
	e.blocked = map[network.RequestID]bool{}
	e.problems = nil
}

// check fails the test for a request to another origin that was not blocked,
// or that is not one of blockedByDesign, and for each problem logged.
func (e *pageEvents) check(t *testing.T, origin string) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.requests) == 0 {
		t.Error("no requests recorded")
	}
	for id, u := range e.requests {
		if strings.HasPrefix(u, origin+"/") || strings.HasPrefix(u, "data:") || strings.HasPrefix(u, "blob:"+origin+"/") {
			continue
		}
		switch {
		case !e.blocked[id]:
			t.Errorf("the page loaded %s, not from %s", u, origin)
		case !slices.Contains(blockedByDesign, u):
			t.Errorf("the page tried to load %s (blocked by its CSP)", u)
		}
	}
	for _, p := range e.problems {
		t.Errorf("browser reported: %s", p)
	}
}

// client is a partner of the API.
type client struct {
	t     *testing.T
	ctx   context.Context
	base  string
	token string
	seq   int
}

func newClient(t *testing.T, ctx context.Context, srv *apptest.Server) *client {
	c := &client{t: t, ctx: ctx, base: srv.URL + "/api/wallet/v1"}
	form := url.Values{"grant_type": {"client_credentials"}, "partner_id": {srv.Partner.PartnerID.String()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(srv.Partner.ClientID, srv.Partner.ClientSecret)
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	c.send(req, &tok)
	if tok.AccessToken == "" || tok.TokenType != "Bearer" {
		t.Fatalf("token answer: %+v", tok)
	}
	c.token = tok.AccessToken
	return c
}

// call sends a request with the access token and decodes the 200 answer.
func (c *client) call(method, path string, body, answer any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(c.ctx, method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		c.seq++
		req.Header.Set("Idempotency-Key", fmt.Sprintf("browser-test-%d", c.seq))
	}
	c.send(req, answer)
}

func (c *client) send(req *http.Request, answer any) {
	c.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		c.t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, res.StatusCode, b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // amounts keep their two fraction digits
	if err := dec.Decode(answer); err != nil {
		c.t.Fatalf("%s %s: %v in %s", req.Method, req.URL.Path, err, b)
	}
}

func (c *client) registerWallet(phone string) string {
	c.t.Helper()
	var ans struct {
		WalletID string `json:"walletId"`
	}
	c.call(http.MethodPost, "/account/registration", map[string]any{"phone": phone, "identification": 0}, &ans)
	if ans.WalletID == "" {
		c.t.Fatal("no walletId")
	}
	return ans.WalletID
}

type topUp struct {
	OperationID string      `json:"operationId"`
	Amount      json.Number `json:"amount"`
	Payload     string      `json:"payload"`
	Status      string      `json:"status"`
}

func (c *client) refill(walletID, amount string) topUp {
	c.t.Helper()
	var ans topUp
	c.call(http.MethodPost, "/account/"+walletID+"/refill", map[string]any{"amount": amount}, &ans)
	if ans.Status != "PENDING" || ans.Amount.String() != amount {
		c.t.Fatalf("refill %s: %+v", amount, ans)
	}
	if want := strings.TrimSuffix(c.base, "/api/wallet/v1") + "/sandbox/sbp/"; !strings.HasPrefix(ans.Payload, want) {
		c.t.Fatalf("payload %q is not a sandbox link (%s...)", ans.Payload, want)
	}
	return ans
}

func (c *client) balance(walletID string) string {
	c.t.Helper()
	var ans struct {
		Balance json.Number `json:"balance"`
	}
	c.call(http.MethodGet, "/account/"+walletID+"/info", nil, &ans)
	return ans.Balance.String()
}

func (c *client) operationStatus(walletID, operationID string) string {
	c.t.Helper()
	var ans struct {
		Status string `json:"status"`
	}
	c.call(http.MethodGet, "/account/"+walletID+"/operation/"+operationID, nil, &ans)
	return ans.Status
}
