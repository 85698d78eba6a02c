package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
)

// asciicastType is the media type of an asciicast file (asciinema's own).
const asciicastType = "application/x-asciicast"

// defaultSearchLimit is how many hits a search answers without a limit:
// a screenful or two, the newest first.
const defaultSearchLimit = 100

// Recording is one session recording's metadata, as GET
// /api/v1/recordings returns it. Every field is always present.
type Recording struct {
	ID      string `json:"id"`
	State   string `json:"state"` // active, ended, incomplete or interrupted
	User    string `json:"user"`
	Target  string `json:"target"`
	Account string `json:"account"`
	Source  string `json:"source"`
	Action  string `json:"action"`  // shell, exec or file-transfer
	Command string `json:"command"` // for exec and file-transfer
	// Kind is terminal (played as what the user saw) or file-transfer
	// (a list of file operations: see recording.FileOp).
	Kind string `json:"kind"`
	// StartedAt and EndedAt are UTC; EndedAt is null while active.
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	// Size and SHA256 describe the file when it ended (0 and "" while
	// active); the same hash is in the audit trail, so a download can be
	// checked against it.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Gateway is the id of the gateway that records it (its recordings
	// directory holds the file); empty for recordings made before
	// gateways had ids.
	Gateway string `json:"gateway"`
	// Index is how much of it search sees: live (the session runs; text
	// is indexed as it comes, within a budget), partial (it ended; the
	// rest is being indexed from the file), complete, or failed (the file
	// could not be read).
	Index string `json:"index"`
	// Gap is what an incomplete recording lost: absent when it lost
	// nothing.
	Gap *RecordingGap `json:"gap,omitempty"`
}

// RecordingGap is the output a recording could not write: how many bytes,
// and between which offsets (seconds since its start).
type RecordingGap struct {
	LostBytes int64   `json:"lost_bytes"`
	FromS     float64 `json:"from_s"`
	ToS       float64 `json:"to_s"`
}

// recordingFromStore converts stored metadata to its wire form.
func recordingFromStore(r store.Recording) Recording {
	out := Recording{
		ID: r.ID, State: r.State, User: r.User, Target: r.Target, Account: r.Account, Source: r.Source,
		Action: r.Action, Command: r.Command, StartedAt: r.StartedAt.UTC(), Size: r.Size, SHA256: r.SHA256,
		Gateway: r.Gateway, Index: r.IndexState, Kind: recording.Kind(r.Action),
	}
	if !r.EndedAt.IsZero() {
		t := r.EndedAt.UTC()
		out.EndedAt = &t
	}
	if r.LostBytes > 0 {
		out.Gap = &RecordingGap{LostBytes: r.LostBytes, FromS: r.GapFrom.Seconds(), ToS: r.GapTo.Seconds()}
	}
	return out
}

// SearchHit is one recording where a search matched, as GET
// /api/v1/recordings/search returns it.
type SearchHit struct {
	ID     string `json:"id"` // the recording's
	User   string `json:"user"`
	Target string `json:"target"`
	// Offset is seconds from the recording's start to the matching text:
	// what `recordings play ID --at OFFSET` takes.
	Offset  float64 `json:"offset"`
	Snippet string  `json:"snippet"`
}

var (
	recordingParams = []string{"user", "target", "state", "since", "before", "limit"}
	searchParams    = []string{"q", "limit"}
	castParams      = []string{"purpose"}
)

func (a *api) listRecordings(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, recordingParams); err != nil {
		return err
	}
	f := store.RecordingFilter{User: q.Get("user"), Target: q.Get("target"), State: q.Get("state")}
	switch f.State {
	case "", store.RecordingActive, store.RecordingEnded, store.RecordingIncomplete, store.RecordingInterrupted:
	default:
		return clientError(http.StatusBadRequest, "state: %q is not a recording state (active, ended, incomplete, interrupted)", f.State)
	}
	var err error
	if f.Since, err = queryTime(q, "since"); err != nil {
		return err
	}
	if f.Limit, err = queryLimit(q); err != nil {
		return err
	}
	if f.User, err = scopeUser(caller(r), f.User); err != nil {
		return err
	}
	if id := q.Get("before"); id != "" {
		// The cursor is a recording id; one the caller may not read
		// answers like one that does not exist.
		cur, err := a.store.GetRecording(r.Context(), id)
		if err == nil && !mayRead(caller(r), cur.User) {
			err = store.ErrNotFound
		}
		if errors.Is(err, store.ErrNotFound) {
			return clientError(http.StatusBadRequest, "before: no recording %q (deleted since the last page?)", id)
		}
		if err != nil {
			return fmt.Errorf("read cursor recording %s: %w", id, err)
		}
		f.BeforeStarted, f.BeforeID = cur.StartedAt, cur.ID
	}
	pg := newPage(f.Limit, false)
	f.Limit = pg.ask
	recs, err := a.store.ListRecordings(r.Context(), f)
	if err != nil {
		return fmt.Errorf("list recordings: %w", err)
	}
	if len(recs) > pg.limit {
		recs = recs[:pg.limit]
		w.Header().Set(HeaderNextBefore, recs[len(recs)-1].ID)
	}
	out := make([]Recording, len(recs))
	for i, rec := range recs {
		out[i] = recordingFromStore(rec)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// recording returns the metadata of the {id} in the path, or a 404 that
// names it.
func (a *api) recording(r *http.Request) (store.Recording, error) {
	id := r.PathValue("id")
	rec, err := a.store.GetRecording(r.Context(), id)
	// Someone else's recording answers like a missing one.
	if err == nil && !mayRead(caller(r), rec.User) {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return rec, clientError(http.StatusNotFound, "recording %q not found", id)
	}
	if err != nil {
		return rec, fmt.Errorf("get recording %s: %w", id, err)
	}
	return rec, nil
}

func (a *api) getRecording(w http.ResponseWriter, r *http.Request) error {
	rec, err := a.recording(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, recordingFromStore(rec))
	return nil
}

// castRecording sends a recording's asciicast file as it is now (an active
// one up to its last complete event). The download is audited before the
// first byte goes out, and refused if it cannot be: nobody reads a
// recording without a trace.
func (a *api) castRecording(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, castParams); err != nil {
		return err
	}
	// The CLI says whether it plays or saves the file; both take the
	// whole file out of the gateway, so both are downloads, but an
	// auditor reading the trail can tell them apart.
	purpose := q.Get("purpose")
	switch purpose {
	case "":
		purpose = "download"
	case "download", "play":
	default:
		return clientError(http.StatusBadRequest, "purpose: %q is not play or download", purpose)
	}
	if a.recordings == nil {
		return clientError(http.StatusNotFound, "this gateway keeps no recordings")
	}
	// The metadata first: it answers an unknown (or malformed) id with a
	// 404 that names it, before the manager would call it an error.
	meta, err := a.recording(r)
	if err != nil {
		return err
	}
	id := meta.ID
	f, rec, in, err := a.recordings.OpenChecked(r.Context(), id)
	if err != nil {
		return recordingError(id, "open", err)
	}
	defer f.Close()
	if in.State == recording.IntegrityTampered {
		if err := a.auditTampered(r, rec, in); err != nil {
			return err
		}
	}
	err = a.audit.Write(r.Context(), store.AuditEvent{
		Type: audit.RecordingDownload, Outcome: audit.Success, User: caller(r).actor(), Source: source(r),
		Target: rec.Target, Account: rec.Account, SessionID: rec.ID,
		Message: fmt.Sprintf("recording %s of %s on %s downloaded", rec.ID, rec.User, rec.Target),
		Detail: map[string]any{"purpose": purpose, "state": rec.State, "recording_user": rec.User,
			"integrity": in.State, "request_id": requestID(r.Context())},
	})
	if err != nil {
		return fmt.Errorf("audit download of recording %s: %w", id, err)
	}
	// What the check found goes with the file, for the CLI and the
	// console to put in front of the viewer.
	w.Header().Set(HeaderRecordingIntegrity, in.State)
	if in.Got != "" {
		w.Header().Set(HeaderRecordingSHA256, in.Got)
	}
	if in.Problem != "" {
		w.Header().Set(HeaderRecordingWarning, in.Problem)
	}
	sw := newStreamWriter(w, asciicastType, false)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename=%q`, rec.ID+".cast"))
	// The file is hashed again as it goes out: one changed between the
	// check and the send is cut off rather than served as checked.
	h := sha256.New()
	if _, err := io.Copy(sw, io.TeeReader(f, h)); err != nil {
		return a.abortStream(r, sw, fmt.Errorf("send recording %s: %w", id, err))
	}
	if in.Got != "" && hex.EncodeToString(h.Sum(nil)) != in.Got {
		return a.abortStream(r, sw, fmt.Errorf("send recording %s: the file changed while it was sent", id))
	}
	if !sw.started {
		// An empty file still answers 200 with its type.
		sw.start()
	}
	return nil
}

// Headers of GET /api/v1/recordings/{id}/cast saying whether the file is
// the one recorded (recording.Integrity).
const (
	// HeaderRecordingIntegrity is ok, tampered or unchecked (the
	// recording is active, or no hash was stored for it).
	HeaderRecordingIntegrity = "X-Recording-Integrity"
	// HeaderRecordingSHA256 is the file's SHA-256 as sent (hex).
	HeaderRecordingSHA256 = "X-Recording-SHA256"
	// HeaderRecordingWarning says in words what is wrong when tampered.
	HeaderRecordingWarning = "X-Recording-Warning"
)

// auditTampered records a tampered recording once per recording and file
// content: every later read still warns its viewer, but the trail is not
// filled with the same finding.
func (a *api) auditTampered(r *http.Request, rec store.Recording, in recording.Integrity) error {
	seen, err := a.store.ListAudit(r.Context(), store.AuditFilter{SessionID: rec.ID, Type: audit.RecordingTampered})
	if err != nil {
		return fmt.Errorf("read the tampering events of recording %s: %w", rec.ID, err)
	}
	for _, ev := range seen {
		if ev.Detail["sha256"] == in.Got && ev.Detail["expected_sha256"] == in.Want {
			return nil
		}
	}
	err = a.audit.Write(r.Context(), store.AuditEvent{
		Type: audit.RecordingTampered, Outcome: audit.Failure, User: caller(r).actor(), Source: source(r),
		Target: rec.Target, Account: rec.Account, SessionID: rec.ID,
		Message: fmt.Sprintf("recording %s of %s on %s is not what was recorded: %s", rec.ID, rec.User, rec.Target, in.Problem),
		Detail: map[string]any{"sha256": in.Got, "expected_sha256": in.Want, "stored_sha256": rec.SHA256,
			"recording_user": rec.User, "request_id": requestID(r.Context())},
	})
	if err != nil {
		return fmt.Errorf("audit tampering of recording %s: %w", rec.ID, err)
	}
	return nil
}

func (a *api) deleteRecording(w http.ResponseWriter, r *http.Request) error {
	if a.recordings == nil {
		return clientError(http.StatusNotFound, "this gateway keeps no recordings")
	}
	rec, err := a.recording(r)
	if err != nil {
		return err
	}
	if err := a.recordings.Delete(r.Context(), rec.ID); err != nil {
		return recordingError(rec.ID, "delete", err)
	}
	// The metadata goes into the event: after this, the trail is the only
	// place that says what the recording was.
	ended := ""
	if !rec.EndedAt.IsZero() {
		ended = rec.EndedAt.UTC().Format(time.RFC3339Nano)
	}
	werr := a.audit.Write(r.Context(), store.AuditEvent{
		Type: audit.RecordingDelete, Outcome: audit.Success, User: caller(r).actor(), Source: source(r),
		Target: rec.Target, Account: rec.Account, SessionID: rec.ID,
		Message: fmt.Sprintf("recording %s of %s on %s deleted", rec.ID, rec.User, rec.Target),
		Detail: map[string]any{
			"recording_user": rec.User, "recording_source": rec.Source, "action": rec.Action, "command": rec.Command,
			"started_at": rec.StartedAt.UTC().Format(time.RFC3339Nano), "ended_at": ended, "state": rec.State,
			"size": rec.Size, "sha256": rec.SHA256, "request_id": requestID(r.Context()),
		},
	})
	if werr != nil {
		// As for resource deletes: the deletion is done and cannot be
		// taken back; the client must not be told it failed.
		a.log.Warn("recording deleted without its audit event", "recording", rec.ID, "err", werr)
	}
	writeJSON(w, http.StatusOK, DeleteResponse{Deleted: "Recording/" + rec.ID})
	return nil
}

func (a *api) searchRecordings(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, searchParams); err != nil {
		return err
	}
	query := strings.TrimSpace(q.Get("q"))
	if query == "" {
		return clientError(http.StatusBadRequest, "q: give the words to search for (q=systemctl+restart, or a \"quoted phrase\")")
	}
	limit, err := queryLimit(q)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = defaultSearchLimit
	}
	hits, err := a.store.SearchText(r.Context(), query, limit)
	if errors.Is(err, store.ErrEmptyQuery) {
		return clientError(http.StatusBadRequest, "q: %q has no words to search for (punctuation alone is not indexed)", query)
	}
	if err != nil {
		return fmt.Errorf("search recordings: %w", err)
	}
	out := make([]SearchHit, len(hits))
	for i, h := range hits {
		out[i] = SearchHit{ID: h.RecordingID, User: h.User, Target: h.Target, Offset: h.Offset, Snippet: h.Snippet}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// recordingError turns a recording manager's not-found into a 404 naming
// the recording; anything else stays the gateway's fault.
func recordingError(id, op string, err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return clientError(http.StatusNotFound, "recording %q not found", id)
	}
	return fmt.Errorf("%s recording %s: %w", op, id, err)
}

// streamWriter sends a streamed answer. The header goes out with the first
// bytes, so that a handler that fails before writing anything can still
// answer with a JSON error; with flush set, every write is flushed, so
// that a watcher sees output as it happens.
type streamWriter struct {
	w           http.ResponseWriter
	rc          *http.ResponseController
	contentType string
	flush       bool
	started     bool
}

func newStreamWriter(w http.ResponseWriter, contentType string, flush bool) *streamWriter {
	return &streamWriter{w: w, rc: http.NewResponseController(w), contentType: contentType, flush: flush}
}

// start sends the status and headers.
func (s *streamWriter) start() {
	h := s.w.Header()
	h.Set("Content-Type", s.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	s.w.WriteHeader(http.StatusOK)
	s.started = true
}

func (s *streamWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.start()
	}
	n, err := s.w.Write(p)
	if err != nil {
		return n, err
	}
	if s.flush {
		if err := s.Flush(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Flush sends what is buffered to the client now.
func (s *streamWriter) Flush() error {
	if !s.started {
		s.start()
	}
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// abortStream ends a streamed answer that failed. Before the header is
// out, err is answered like any other; after, the status is spent, so the
// connection is dropped without the stream's terminating chunk: the client
// sees a truncated transfer, never a short stream passing for a whole one.
// A client that went away is not the gateway's failure and is not logged.
func (a *api) abortStream(r *http.Request, sw *streamWriter, err error) error {
	gone := r.Context().Err() != nil
	if !sw.started && !gone {
		return err
	}
	if gone {
		return nil // nobody is left to answer
	}
	a.log.Error("api stream failed", "request_id", requestID(r.Context()),
		"method", r.Method, "path", r.URL.Path, "err", err)
	panic(http.ErrAbortHandler)
}

// RecordingFinding is a recording GET /api/v1/recordings/check found
// missing or changed (recording.Finding).
type RecordingFinding struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Problem string `json:"problem"` // missing or tampered
	Detail  string `json:"detail"`
}

func (a *api) checkRecordings(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		return err
	}
	if a.recordings == nil {
		return clientError(http.StatusNotFound, "this gateway keeps no recordings")
	}
	found, err := a.recordings.Check(r.Context())
	if err != nil {
		return fmt.Errorf("check recordings: %w", err)
	}
	out := make([]RecordingFinding, len(found))
	for i, f := range found {
		out[i] = RecordingFinding(f)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
