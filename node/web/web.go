// Package web is the node's dashboard: plain HTML, CSS and JavaScript,
// embedded in the binary and served by node/api at / and /static/. It
// loads nothing from any other origin, so it works on an air-gapped
// network; charts are inline SVG drawn by static/charts.js.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Static returns the embedded files, rooted at the static directory.
func Static() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		// fs.Sub only fails on an invalid path, and "static" is valid.
		return files
	}
	return sub
}

// Handler serves index.html at /, the icon at /favicon.ico and the other
// files under /static/.
func Handler() http.Handler {
	static := Static()
	fileServer := http.StripPrefix("/static/", http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The page talks only to its own origin; say so to the browser.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		switch r.URL.Path {
		case "/":
			http.ServeFileFS(w, r, static, "index.html")
			return
		case "/favicon.ico":
			// Browsers ask for it whatever the page says; answer rather
			// than log a 404 in every console.
			http.ServeFileFS(w, r, static, "favicon.svg")
			return
		}
		fileServer.ServeHTTP(w, r)
	})
}
