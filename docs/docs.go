// Package docs serves the partner API reference at /docs: a small HTML page on
// which Redoc renders the OpenAPI document served at SpecURL.
//
// Redoc's standalone bundle is vendored in assets/ (update-assets.sh fetches it
// with npm and records its version and sha256 in assets/VERSION) and embedded in
// the binary, so the page loads nothing from any other host. The page's
// Content-Security-Policy allows scripts from this origin only.
package docs

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"
)

const (
	// Path is where the page is served; assets are under Path + "/".
	Path = "/docs"
	// SpecURL is where the page fetches the OpenAPI document from.
	SpecURL = "/api/wallet/v1/openapi.yaml"
	// BundleName is Redoc's standalone bundle, served at Path + "/" + BundleName.
	BundleName = "redoc.standalone.js"

	// ContentSecurityPolicy of the page: scripts from this origin only, and
	// no more than Redoc needs to render (checked in Chromium by
	// e2e/browser): inline styles (it is styled with styled-components), the
	// document fetched from this origin, a web worker from a blob: URL (its
	// search index) and data: images (the icons in its stylesheet). Redoc's
	// "API docs by Redocly" credit asks for a logo from Redocly's CDN; the
	// policy blocks it and Redoc then shows the credit without it.
	ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; " +
		"img-src data:; connect-src 'self'; worker-src blob:; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

//go:embed assets/redoc.standalone.js assets/redoc.standalone.js.LICENSE.txt assets/LICENSE.redoc assets/VERSION
var files embed.FS

// served lists the embedded files the handler answers, with their types.
var served = map[string]string{
	BundleName:                  "text/javascript; charset=utf-8",
	BundleName + ".LICENSE.txt": "text/plain; charset=utf-8",
	"LICENSE.redoc":             "text/plain; charset=utf-8",
	"VERSION":                   "text/plain; charset=utf-8",
}

type asset struct {
	body        []byte
	contentType string
	sum         string // hex sha256 of body
}

type handler struct {
	page   []byte
	assets map[string]asset
}

// Handler serves the page at Path (and Path + "/") and the embedded assets
// under Path + "/". spec is the OpenAPI document; the page takes its title
// from it. Assets are cached for a year: the page names the bundle with its
// content hash in the query, so a new bundle gets a new URL.
func Handler(spec []byte) http.Handler {
	h := &handler{assets: loadAssets()}
	var page bytes.Buffer
	err := pageTemplate.Execute(&page, pageData{
		Title:     title(spec),
		SpecURL:   SpecURL,
		BundleURL: Path + "/" + BundleName + "?v=" + h.assets[BundleName].sum[:12],
	})
	if err != nil {
		panic("docs: page template: " + err.Error())
	}
	h.page = page.Bytes()
	return h
}

// loadAssets reads and hashes the embedded assets, once per process.
var loadAssets = sync.OnceValue(func() map[string]asset {
	assets := make(map[string]asset, len(served))
	for name, typ := range served {
		body, err := files.ReadFile("assets/" + name)
		if err != nil {
			panic("docs: embedded asset missing: " + name) // caught by the package's tests
		}
		sum := sha256.Sum256(body)
		assets[name] = asset{body: body, contentType: typ, sum: hex.EncodeToString(sum[:])}
	}
	return assets
})

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Path == Path || r.URL.Path == Path+"/" {
		h.servePage(w, r)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Path+"/")
	a, found := h.assets[name]
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	hdr.Set("ETag", `"`+a.sum[:32]+`"`)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	// Revalidated on every visit, so a new binary's bundle URL is picked up.
	hdr.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(h.page))
}

type pageData struct {
	Title, SpecURL, BundleURL string
}

// pageTemplate is the page. The bundle finds the <redoc> element when it runs
// and renders the document named by spec-url into it, so the page needs no
// script of its own.
var pageTemplate = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="icon" href="data:,">
<style>body{margin:0;padding:0}</style>
</head>
<body>
<noscript><p>The API reference needs JavaScript. The OpenAPI document itself is at <a href="{{.SpecURL}}">{{.SpecURL}}</a>.</p></noscript>
<redoc spec-url="{{.SpecURL}}" expand-responses="200,201" required-props-first="true"></redoc>
<script src="{{.BundleURL}}"></script>
</body>
</html>
`))

// title is info.title of the OpenAPI document, read without a YAML parser:
// the first "title:" key indented under the top-level "info:" key.
func title(spec []byte) string {
	const fallback = "API reference"
	sc := bufio.NewScanner(bytes.NewReader(spec))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	inInfo := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if line[0] != ' ' {
			inInfo = strings.TrimSpace(line) == "info:"
			continue
		}
		if !inInfo {
			continue
		}
		rest, ok := strings.CutPrefix(line, "  title:")
		if !ok {
			continue
		}
		t := strings.TrimSpace(rest)
		if len(t) >= 2 && (t[0] == '"' || t[0] == '\'') && t[len(t)-1] == t[0] {
			t = t[1 : len(t)-1]
		}
		if t == "" {
			return fallback
		}
		return t
	}
	return fallback
}
