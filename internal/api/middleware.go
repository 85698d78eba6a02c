package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// requirePrincipal refuses requests no front authenticated, but for the
// public routes. It fails closed so that mounting the handler behind a
// listener that forgot its authentication exposes nothing.
func (a *api) requirePrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := PrincipalFrom(r.Context()); !ok && !publicPaths[r.URL.Path] {
			writeError(w, http.StatusUnauthorized,
				"not authenticated: send an API key in the "+APIKeyHeader+" header, or sign in to the console")
			return
		}
		next.ServeHTTP(w, r)
	})
}

type requestIDKey struct{}

// requestID returns the id withRequestID gave the request.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// withRequestID tags each request with a random id, returned in the
// X-Request-Id header and in 500 answers, so that a user's report can be
// matched with the gateway log line that holds the detail.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
		id := hex.EncodeToString(b[:])
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// statusWriter remembers the status written, for the request log and so
// that a panic after the header went out does not write a second one.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverPanics turns a handler panic into a 500 and a logged stack: no
// input may take the gateway down or leave a client hanging. It also logs
// every request at debug level.
func (a *api) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			v := recover()
			if v == http.ErrAbortHandler {
				// The server's own signal to drop the connection.
				panic(v)
			}
			if v != nil {
				a.log.Error("panic in API handler", "request_id", requestID(r.Context()),
					"method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeError(sw, http.StatusInternalServerError, internalMessage(r.Context()))
				}
			}
			a.log.Debug("api request", "request_id", requestID(r.Context()), "principal", caller(r).actor(),
				"method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", time.Since(start))
		}()
		next.ServeHTTP(sw, r)
	})
}

// jsonMuxErrors serves mux, rewriting the plain-text 404 and 405 answers
// the mux itself produces for unknown routes into the API's JSON error
// shape, so that clients parse every error the same way.
func jsonMuxErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(&muxErrorWriter{ResponseWriter: w, r: r}, r)
	})
}

// muxErrorWriter replaces the body of a mux-generated 404 or 405.
type muxErrorWriter struct {
	http.ResponseWriter
	r        *http.Request
	replaced bool
}

func (w *muxErrorWriter) WriteHeader(code int) {
	var msg string
	switch code {
	case http.StatusNotFound:
		msg = fmt.Sprintf("no API route %s %s", w.r.Method, w.r.URL.Path)
	case http.StatusMethodNotAllowed:
		msg = fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", w.r.Method, w.r.URL.Path,
			strings.Join(w.Header().Values("Allow"), ", "))
	default:
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.replaced = true
	writeError(w.ResponseWriter, code, msg)
}

func (w *muxErrorWriter) Write(p []byte) (int, error) {
	if w.replaced {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}
