package web

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/portcullis/portcullis/internal/api"
)

// contentSecurityPolicy allows only the gateway's own files: no inline
// script or style, no framing, no form posts elsewhere. The one addition
// is 'wasm-unsafe-eval': asciinema-player (3.17) runs its terminal
// emulator as WebAssembly, which Chromium will not compile without it.
// It permits compiling WebAssembly from the gateway's own script only;
// eval(), inline and remote scripts stay blocked.
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; " +
	"base-uri 'none'; form-action 'self'"

// securityHeaders sets the headers every console response carries,
// errors and redirects included.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The console is only ever served over TLS; a year, without
		// includeSubDomains, which would bind hosts this gateway does
		// not own.
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// codeCSRF is the error code of a missing or wrong CSRF token, so that
// the console can tell it from a refusal and reload.
const codeCSRF = "csrf"

// writeError answers status in the API's error shape, with the code the
// contract gives the status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeErrorCode(w, status, "", msg)
}

// writeErrorCode answers an error with a code of the caller's choosing
// ("" for the status's own).
func writeErrorCode(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	api.WriteError(w, status, code, msg)
}

// writeJSON writes v as the body. Console JSON is about a session, so no
// cache may keep it.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	// An encoding failure after the header is out leaves a truncated body
	// the client fails to parse; there is nothing better left to do.
	_ = enc.Encode(v)
}

// tooManyRequests answers 429 with Retry-After in whole seconds, rounded
// up so that a client waiting that long is let in.
func tooManyRequests(w http.ResponseWriter, wait time.Duration) {
	secs := int((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, "too many failed sign-ins: try again in "+strconv.Itoa(secs)+" s")
}

// internalError logs err and answers 500 without detail: paths and SQL
// stay in the gateway log.
func (c *Console) internalError(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Error("web console request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error; the gateway log has the detail")
}
