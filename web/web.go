// Package web serves the "Your devices" page of sessiond: a sign-in (and
// optional sign-up) form, or a link to the app's own sign-in, and the list
// of the user's signed-in devices.
//
// The page is plain HTML, CSS and a little JavaScript embedded in the binary.
// It talks only to the JSON API of package http under /api/v1 with cookies:
// the tokens live in HttpOnly cookies that its script never sees, so the
// script needs no storage and a cross-site script injection could not steal
// them. Everything the page renders from the API (device names, User-Agent
// derived strings) is set as text, never parsed as HTML.
//
// Handler is meant to be mounted as the catch-all "/" handler of the server's
// ServeMux, next to the more specific /api/v1/ and /.well-known/ patterns:
//
//	mux.Handle("/", web.Handler(web.Options{Signup: true}))
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed templates/*.html static/*
var files embed.FS

// Options configures the page.
type Options struct {
	// Signup shows the sign-up form. It should match whether the API
	// accepts registrations (SESSIOND_SIGNUP). Default false: no form.
	Signup bool

	// PublicURL is the origin users see, such as "https://auth.example.com"
	// (SESSIOND_PUBLIC_URL). When the page is opened over plain HTTP at an
	// address where browsers refuse secure cookies, it links there. Default
	// "": no link.
	PublicURL string

	// External says the app signs its users in (SESSIOND_USERS=external):
	// the page has no sign-in, sign-up or password form, and a visitor
	// without a session is sent to LoginURL. Default false.
	External bool
	// BasePath is the path under which the page, its files and the API
	// are served (SESSIOND_BASE_PATH), with a leading and a trailing
	// slash; "" is "/". The server strips it before the handler sees a
	// request, so the handler still serves "/" and "/static/"; the page
	// writes it into every link and API call.
	BasePath string

	// LoginURL is where the app signs its users in (SESSIOND_LOGIN_URL),
	// linked as "Sign in" when External; "" says sign-in happens in the
	// app. Default "".
	LoginURL string
}

// contentSecurityPolicy allows nothing but this origin's own files: no
// inline script or style, no plugins, no framing, no <base> rewriting, and
// Trusted Types with no policy, so the script cannot assign HTML strings to
// innerHTML and friends even by mistake.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// asset is one embedded static file.
type asset struct {
	name        string
	body        []byte
	contentType string
	// version is a prefix of the SHA-256 of body: the page links to
	// /static/<name>?v=<version>, and only that URL is cached for a year,
	// so a new build never serves a stale script next to a new page.
	version string
}

var contentTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

// loadAssets reads the embedded static directory. It panics on a file
// without a known content type: that is a build mistake, caught by tests.
func loadAssets() map[string]*asset {
	entries, err := fs.ReadDir(files, "static")
	if err != nil {
		panic("web: " + err.Error())
	}
	assets := make(map[string]*asset, len(entries))
	for _, e := range entries {
		body, err := fs.ReadFile(files, "static/"+e.Name())
		if err != nil {
			panic("web: " + err.Error())
		}
		ct, ok := contentTypes[path.Ext(e.Name())]
		if !ok {
			panic("web: no content type for static/" + e.Name())
		}
		sum := sha256.Sum256(body)
		assets[e.Name()] = &asset{
			name:        e.Name(),
			body:        body,
			contentType: ct,
			version:     hex.EncodeToString(sum[:8]),
		}
	}
	return assets
}

var (
	assets = loadAssets()
	page   = template.Must(template.New("index.html").Funcs(template.FuncMap{
		"asset": func(string) (string, error) { return "", nil }, // see Handler
		// inline returns a trusted embedded file as markup, so the icon
		// sprite costs no request and <use href="#icon-..."> works.
		"inline": func(name string) template.HTML {
			a, ok := assets[name]
			if !ok {
				panic("web: no static file " + name)
			}
			return template.HTML(a.body)
		},
	}).ParseFS(files, "templates/index.html"))
	notFoundPage = template.Must(template.ParseFS(files, "templates/404.html"))
)

// assetURL returns the versioned URL of a static file under base.
func assetURL(base, name string) (string, error) {
	a, ok := assets[name]
	if !ok {
		return "", fs.ErrNotExist
	}
	return base + "static/" + a.name + "?v=" + a.version, nil
}

type handler struct {
	page     []byte
	notFound []byte
}

// Handler returns the handler of the page at "/" and its static files under
// "/static/". Any other path is answered with a small HTML 404. Every
// response carries a strict Content-Security-Policy and anti-framing,
// no-sniff and no-referrer headers; the page itself is never cached
// (Cache-Control: no-store), the versioned static files for a year.
func Handler(opts Options) http.Handler {
	if opts.BasePath == "" {
		opts.BasePath = "/"
	}
	var buf bytes.Buffer
	t := template.Must(page.Clone()).Funcs(template.FuncMap{
		"asset": func(name string) (string, error) { return assetURL(opts.BasePath, name) },
	})
	if err := t.Execute(&buf, opts); err != nil {
		// The template and its data are fixed at build time.
		panic("web: render page: " + err.Error())
	}
	h := &handler{page: buf.Bytes()}
	buf = bytes.Buffer{}
	if err := notFoundPage.Execute(&buf, opts); err != nil {
		panic("web: render 404: " + err.Error())
	}
	h.notFound = buf.Bytes()
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")

	switch {
	case r.URL.Path == "/":
		if !allowGet(w, r) {
			return
		}
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(h.page)
		}
	case strings.HasPrefix(r.URL.Path, "/static/"):
		a, ok := assets[strings.TrimPrefix(r.URL.Path, "/static/")]
		if !ok {
			h.serveNotFound(w, r)
			return
		}
		if !allowGet(w, r) {
			return
		}
		if r.URL.Query().Get("v") == a.version {
			hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			// An old or missing version: serve the current file, but
			// make the browser revalidate it next time.
			hdr.Set("Cache-Control", "no-cache")
		}
		hdr.Set("ETag", `"`+a.version+`"`)
		hdr.Set("Content-Type", a.contentType)
		http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
	default:
		h.serveNotFound(w, r)
	}
}

func (h *handler) serveNotFound(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	if r.Method != http.MethodHead {
		w.Write(h.notFound)
	}
}

// allowGet answers 405 to anything but GET and HEAD and reports whether the
// request may go on.
func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}
