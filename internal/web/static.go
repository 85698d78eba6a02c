package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// dist is the console as built by `make assets` (npm ci and the bundler)
// into internal/web/dist and committed, so that `go build` alone embeds a
// working console; `make test` fails when it is stale against web/.
//
//go:embed all:dist
var dist embed.FS

// builtAssets returns the embedded build as a tree whose root holds
// index.html and assets/.
func builtAssets() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		// fs.Sub fails only on an invalid name, and "dist" is valid.
		panic(fmt.Sprintf("web: embedded assets: %v", err))
	}
	return sub
}

// notBuilt is the whole answer for /ui/ when dist holds no index.html (a
// tree where someone deleted the committed build).
const notBuilt = "web console assets are not built: run make\n"

// Cache lifetimes. Files under assets/ carry a content hash in their name,
// so a browser may keep them for ever; index.html names the current ones
// and must be checked on every load.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// contentTypes fixes the types of what a bundler emits, whatever the host's
// /etc/mime.types says (mime.TypeByExtension reads it): a wrong type on a
// script is a blank page under nosniff.
var contentTypes = map[string]string{
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".html":  "text/html; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".woff":  "font/woff",
	".woff2": "font/woff2",
	".ttf":   "font/ttf",
	".wasm":  "application/wasm",
	".txt":   "text/plain; charset=utf-8",
}

func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// index is index.html read once at start, with its ETag.
type index struct {
	body []byte
	etag string
}

// loadIndex reads index.html from assets; ok is false when it is absent
// (the front end was not built).
func loadIndex(assets fs.FS) (idx index, ok bool, err error) {
	body, err := fs.ReadFile(assets, "index.html")
	if errors.Is(err, fs.ErrNotExist) {
		return index{}, false, nil
	}
	if err != nil {
		return index{}, false, fmt.Errorf("read console index.html: %w", err)
	}
	sum := sha256.Sum256(body)
	return index{body: body, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}, true, nil
}

// serveIndex answers GET /ui/: the application page, and a login CSRF
// cookie so that the login form can post without a round trip first.
func (c *Console) serveIndex(w http.ResponseWriter, r *http.Request) {
	if !c.built {
		c.unbuilt(w)
		return
	}
	if _, err := c.ensureLoginCSRF(w, r); err != nil {
		c.internalError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType("index.html"))
	h.Set("Cache-Control", cacheRevalidate)
	h.Set("ETag", c.index.etag)
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(c.index.body))
}

// serveAsset answers GET /ui/assets/NAME from the build's assets folder.
// Directories are not listed, and names that could leave the folder are
// not found (fs.ValidPath refuses ".." and empty elements).
func (c *Console) serveAsset(w http.ResponseWriter, r *http.Request) {
	if !c.built {
		c.unbuilt(w)
		return
	}
	name := "assets/" + strings.TrimPrefix(r.URL.Path, "/ui/assets/")
	if !fs.ValidPath(name) {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	st, err := fs.Stat(c.assets, name)
	if errors.Is(err, fs.ErrNotExist) || err == nil && st.IsDir() {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if err != nil {
		c.internalError(w, r, fmt.Errorf("read console asset %s: %w", name, err))
		return
	}
	body, err := fs.ReadFile(c.assets, name)
	if err != nil {
		c.internalError(w, r, fmt.Errorf("read console asset %s: %w", name, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType(name))
	h.Set("Cache-Control", cacheImmutable)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}

// unbuilt answers a request for the console in a binary built without its
// assets: plain text, since there is no page to show it in.
func (c *Console) unbuilt(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(notBuilt))
}
