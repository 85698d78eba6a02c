package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
)

// maxKillMessage bounds the message shown to the user of a killed session:
// a line on their terminal, not a document.
const maxKillMessage = 500

// KillRequest is the body of POST /api/v1/sessions/{id}/kill; an empty
// body is a kill without a message.
type KillRequest struct {
	// Message is shown to the session's user, after "ended by NAME: ".
	Message string `json:"message"`
}

// KillResponse is the answer of a successful kill.
type KillResponse struct {
	Killed string `json:"killed"` // the session id
}

var watchParams = []string{"from"}

func (a *api) listSessions(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		return err
	}
	list := []livesession.Session{}
	p := caller(r)
	if a.sessions != nil {
		for _, s := range a.sessions.List() {
			if mayRead(p, s.User) {
				list = append(list, s)
			}
		}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (a *api) killSession(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var req KillRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return clientError(http.StatusBadRequest, "read request body: %v", err)
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return clientError(http.StatusBadRequest, `request body is not {"message": "..."}: %v`, err)
		}
	}
	// The message lands on the user's terminal: control characters there
	// could move the cursor or rewrite what the user sees.
	if strings.ContainsFunc(req.Message, unicode.IsControl) {
		return clientError(http.StatusBadRequest, "message: control characters (newlines, escapes) are not allowed")
	}
	if n := len([]rune(req.Message)); n > maxKillMessage {
		return clientError(http.StatusBadRequest, "message: %d characters; at most %d", n, maxKillMessage)
	}
	if a.sessions == nil || !a.ownsSession(caller(r), id) {
		return clientError(http.StatusNotFound, "session %q is not running", id)
	}
	// The controller writes the session.kill event itself, beside the
	// session's own end event, naming the principal as who ended it.
	err = a.sessions.Kill(id, caller(r).actor(), req.Message)
	if errors.Is(err, livesession.ErrNotFound) {
		return clientError(http.StatusNotFound, "session %q is not running", id)
	}
	if err != nil {
		return fmt.Errorf("kill session %s: %w", id, err)
	}
	writeJSON(w, http.StatusOK, KillResponse{Killed: id})
	return nil
}

// watchSession streams an active recording as asciicast: from its start
// (the header and every event so far, then live) or from now (a header,
// then live). The answer ends when the recording does, or when the client
// goes away. The view is audited before anything is sent.
func (a *api) watchSession(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, watchParams); err != nil {
		return err
	}
	var fromStart bool
	switch from := q.Get("from"); from {
	case "start":
		fromStart = true
	case "", "now":
	default:
		return clientError(http.StatusBadRequest, "from: %q is not start or now", from)
	}
	id := r.PathValue("id")
	rec, err := a.store.GetRecording(r.Context(), id)
	if err == nil && !mayRead(caller(r), rec.User) {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return clientError(http.StatusNotFound, "session %q has no recording: only recorded sessions can be watched (see sessions ls, column RECORDED)", id)
	}
	if err != nil {
		return fmt.Errorf("get recording %s: %w", id, err)
	}
	if a.recordings == nil {
		return clientError(http.StatusNotFound, "this gateway keeps no recordings")
	}
	if rec.State != store.RecordingActive {
		return clientError(http.StatusNotFound, "session %q is not running (its recording is %s): play it with recordings play %s", id, rec.State, id)
	}
	err = a.audit.Write(r.Context(), store.AuditEvent{
		Type: audit.RecordingView, Outcome: audit.Success, User: caller(r).actor(), Source: source(r),
		Target: rec.Target, Account: rec.Account, SessionID: rec.ID,
		Message: fmt.Sprintf("live session %s of %s on %s watched", rec.ID, rec.User, rec.Target),
		Detail: map[string]any{"live": true, "from_start": fromStart, "recording_user": rec.User,
			"request_id": requestID(r.Context())},
	})
	if err != nil {
		return fmt.Errorf("audit watch of session %s: %w", id, err)
	}
	sw := newStreamWriter(w, asciicastType, true)
	fctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	go a.recheckWatcher(fctx, cancel, r, rec.User)
	guard := &guardedWriter{w: sw, gen: &a.accessGen, seen: a.accessGen.Load(), check: func() error {
		if err := a.stillAllowed(r, rec.User); err != nil {
			cancel(errAccessLost{err})
			return errAccessLost{err}
		}
		return nil
	}}
	if err := a.recordings.Follow(fctx, id, fromStart, guard); err != nil {
		if r.Context().Err() != nil {
			return nil // the watcher left; nothing to answer
		}
		var lost errAccessLost
		if errors.As(context.Cause(fctx), &lost) {
			a.log.Info("watcher lost access; stream cut off", "recording", id, "principal", caller(r).actor(),
				"why", lost.err, "request_id", requestID(r.Context()))
			panic(http.ErrAbortHandler)
		}
		if errors.Is(err, recording.ErrDeleted) {
			// Deleted while watched: the watcher is cut off, which is
			// the deleter's doing, not a failure of the gateway.
			if !sw.started {
				return clientError(http.StatusNotFound, "the recording of session %q was deleted", id)
			}
			a.log.Info("watched recording deleted; watcher cut off", "recording", id, "request_id", requestID(r.Context()))
			panic(http.ErrAbortHandler)
		}
		if !sw.started {
			return recordingError(id, "follow", err)
		}
		return a.abortStream(r, sw, fmt.Errorf("follow recording %s: %w", id, err))
	}
	if !sw.started {
		sw.start()
	}
	return nil
}

// recheckEvery is how often a live view checks that its watcher may still
// watch.
const recheckEvery = 2 * time.Second

// errAccessLost ends a live view whose watcher lost the right to it.
type errAccessLost struct{ err error }

func (e errAccessLost) Error() string { return "access lost: " + e.err.Error() }

// recheckWatcher checks the watcher's access every recheckEvery until ctx
// ends, and cancels ctx with errAccessLost when it is gone.
func (a *api) recheckWatcher(ctx context.Context, cancel context.CancelCauseFunc, r *http.Request, owner string) {
	t := time.NewTicker(recheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.stillAllowed(r, owner); err != nil {
				cancel(errAccessLost{err})
				return
			}
		}
	}
}

// guardedWriter checks the watcher's access again before writing when
// something that may take access away (a key revoked, resources changed)
// happened since the last check, so that the output written right after
// a revocation is not sent; recheckWatcher covers the rest (a console
// sign-out, a change on another gateway) within recheckEvery.
type guardedWriter struct {
	w     io.Writer
	gen   *atomic.Int64
	seen  int64
	check func() error
}

func (g *guardedWriter) Write(p []byte) (int, error) {
	if now := g.gen.Load(); now != g.seen {
		if err := g.check(); err != nil {
			return 0, err
		}
		g.seen = now
	}
	return g.w.Write(p)
}
