package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// httpError is an error whose status and message are meant for the client.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// clientError returns an error answered with status and the formatted
// message.
func clientError(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// handle adapts a handler that returns an error. The error decides the
// status: input errors keep their message; anything unrecognised is the
// gateway's fault, logged in full and answered with a request id only, so
// that no internal detail (paths, SQL) reaches a client.
func (a *api) handle(fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		var (
			he  *httpError
			de  *resource.DocError
			mbe *http.MaxBytesError
		)
		switch {
		case errors.As(err, &he):
			writeError(w, he.status, he.msg)
		case errors.As(err, &de):
			writeError(w, http.StatusBadRequest, de.Error())
		case errors.As(err, &mbe):
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"request body is larger than %d bytes (%d MiB): split the stream into several applies", mbe.Limit, mbe.Limit>>20))
		case errors.Is(err, store.ErrConflict):
			writeError(w, http.StatusConflict, "the resources changed meanwhile (another gateway or client wrote them): read them again and retry")
		case errors.Is(err, inventory.ErrReferenced):
			writeError(w, http.StatusConflict, err.Error()+": change or delete those first")
		case errors.Is(err, store.ErrNotFound):
			// Handlers turn expected not-found cases into their own
			// message; this catches the rest without leaking detail.
			writeError(w, http.StatusNotFound, "not found")
		default:
			a.log.Error("api request failed", "request_id", requestID(r.Context()),
				"method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, http.StatusInternalServerError, internalMessage(r.Context()))
		}
	}
}

// internalMessage is the whole of what a client learns about a 500.
func internalMessage(ctx context.Context) string {
	return fmt.Sprintf("internal error (request id %s); the gateway log has the detail", requestID(ctx))
}

// writeError writes {"error": {"code", "message"}} with the code that
// goes with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeErrorCode(w, status, statusCode(status), msg)
}

// writeErrorCode writes an error with a code of the caller's choosing
// ("csrf"); the message is put on one line.
func writeErrorCode(w http.ResponseWriter, status int, code, msg string) {
	msg = strings.Join(strings.Fields(msg), " ")
	writeJSON(w, status, ErrorResponse{Error: ErrorBody{Code: code, Message: msg}})
}

// WriteError writes the API's error shape, for the other handlers on the
// HTTPS listener (the web console) to answer alike.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	if code == "" {
		code = statusCode(status)
	}
	writeErrorCode(w, status, code, msg)
}

// statusCode is the error code of a status.
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusTooManyRequests:
		return "too_many_requests"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	if status >= 500 {
		return "internal"
	}
	return "bad_request"
}

// writeJSON writes v as the JSON body. An encoding failure after the
// header is out can only be logged by the server; the client sees a
// truncated body and fails to parse it, which is the best left to do.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
