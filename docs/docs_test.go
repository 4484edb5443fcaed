package docs

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/perspektiva/walletd/api"
)

func serve(t *testing.T, h http.Handler, method, target string, header http.Header) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPageReferencesEmbeddedBundle(t *testing.T) {
	h := Handler(api.Spec())
	for _, path := range []string{"/docs", "/docs/"} {
		res := serve(t, h, http.MethodGet, path, nil)
		page := body(t, res)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, page)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		if csp := res.Header.Get("Content-Security-Policy"); csp != ContentSecurityPolicy {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", path, cc)
		}

		// The page's only script is the embedded bundle, named by its content hash.
		bundle, err := files.ReadFile("assets/" + BundleName)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(bundle)
		want := `<script src="/docs/redoc.standalone.js?v=` + hex.EncodeToString(sum[:])[:12] + `"></script>`
		if !strings.Contains(page, want) {
			t.Errorf("GET %s: page lacks %s:\n%s", path, want, page)
		}
		if n := strings.Count(page, "<script"); n != 1 {
			t.Errorf("GET %s: %d script elements, want the bundle only", path, n)
		}
		if !strings.Contains(page, `<redoc spec-url="/api/wallet/v1/openapi.yaml"`) {
			t.Errorf("GET %s: page does not point Redoc at the document:\n%s", path, page)
		}
		if !strings.Contains(page, "<title>VsePlatezhi 3.0 e-wallet — partner API</title>") {
			t.Errorf("GET %s: title not taken from the document:\n%s", path, page)
		}
		if regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).MatchString(page) {
			t.Errorf("GET %s: page refers to another host:\n%s", path, page)
		}
	}
}

func TestCSPAllowsOnlyThisOriginsScripts(t *testing.T) {
	directives := map[string]string{}
	for d := range strings.SplitSeq(ContentSecurityPolicy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, want := range map[string]string{
		"default-src":     "'none'",
		"script-src":      "'self'",
		"connect-src":     "'self'",
		"worker-src":      "blob:",
		"frame-ancestors": "'none'",
	} {
		if got := directives[name]; got != want {
			t.Errorf("%s %q, want %q", name, got, want)
		}
	}
}

func TestBundleServedWithTypeAndLongCache(t *testing.T) {
	h := Handler(api.Spec())
	want, err := files.ReadFile("assets/" + BundleName)
	if err != nil {
		t.Fatal(err)
	}
	res := serve(t, h, http.MethodGet, "/docs/redoc.standalone.js?v=anything", nil)
	got := body(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if got != string(want) {
		t.Fatalf("served %d bytes, the embedded bundle has %d", len(got), len(want))
	}
	if len(got) < 100<<10 || !strings.Contains(got[:512], "redoc") {
		t.Errorf("the embedded bundle does not look like Redoc (%d bytes): %.200q", len(got), got)
	}
	for k, v := range map[string]string{
		"Content-Type":           "text/javascript; charset=utf-8",
		"Cache-Control":          "public, max-age=31536000, immutable",
		"X-Content-Type-Options": "nosniff",
	} {
		if g := res.Header.Get(k); g != v {
			t.Errorf("%s %q, want %q", k, g, v)
		}
	}
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	res = serve(t, h, http.MethodGet, "/docs/redoc.standalone.js", http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: %d, want 304", res.StatusCode)
	}
	res = serve(t, h, http.MethodHead, "/docs/redoc.standalone.js", nil)
	if res.StatusCode != http.StatusOK || body(t, res) != "" {
		t.Errorf("HEAD: %d", res.StatusCode)
	}
}

func TestLicensesServed(t *testing.T) {
	h := Handler(api.Spec())
	for _, name := range []string{"redoc.standalone.js.LICENSE.txt", "LICENSE.redoc", "VERSION"} {
		res := serve(t, h, http.MethodGet, "/docs/"+name, nil)
		if b := body(t, res); res.StatusCode != http.StatusOK || b == "" {
			t.Errorf("GET /docs/%s: %d, %d bytes", name, res.StatusCode, len(b))
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("GET /docs/%s: Content-Type %q", name, ct)
		}
	}
}

func TestVersionFileMatchesBundle(t *testing.T) {
	version, err := files.ReadFile("assets/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := files.ReadFile("assets/" + BundleName)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bundle)
	if want := "sha256: " + hex.EncodeToString(sum[:]) + "\n"; !strings.Contains(string(version), want) {
		t.Errorf("assets/VERSION does not record the bundle's %q; run docs/update-assets.sh:\n%s", want, version)
	}
	if !regexp.MustCompile(`(?m)^version: \d+\.\d+\.\d+$`).Match(version) {
		t.Errorf("assets/VERSION names no version:\n%s", version)
	}
}

func TestUnknownAssetIs404(t *testing.T) {
	h := Handler(api.Spec())
	for _, path := range []string{"/docs/nope.js", "/docs/assets/redoc.standalone.js", "/docs/docs.go", "/docs/../docs.go", "/docsx", "/"} {
		res := serve(t, h, http.MethodGet, path, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
		if cc := res.Header.Get("Cache-Control"); strings.Contains(cc, "immutable") {
			t.Errorf("GET %s: a 404 cached as %q", path, cc)
		}
	}
}

func TestOtherMethods(t *testing.T) {
	h := Handler(api.Spec())
	res := serve(t, h, http.MethodPost, "/docs", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /docs: %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
}

func TestTitle(t *testing.T) {
	for _, c := range []struct{ spec, want string }{
		{"openapi: 3.1.0\ninfo:\n  title: Wallet\n  version: 1\n", "Wallet"},
		{"openapi: 3.1.0\ninfo:\n  # a comment\n  title: 'Quoted: yes'\n", "Quoted: yes"},
		{"info:\n  contact:\n    title: no\n  title: \"Yes\"\n", "Yes"},
		{"paths:\n  title: not this\ninfo:\n  version: 1\n", "API reference"},
		{"", "API reference"},
	} {
		if got := title([]byte(c.spec)); got != c.want {
			t.Errorf("title(%q) = %q, want %q", c.spec, got, c.want)
		}
	}
}
