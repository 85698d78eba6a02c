package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// exportPage is how many events the export reads from the store at a
// time: memory stays bounded however long the trail is.
const exportPage = 1000

// ExportedEvent is one line of GET /api/v1/audit/export: the event as GET
// /api/v1/audit shows it, plus its place in the hash chain, so that an
// exported trail can be verified away from the gateway.
type ExportedEvent struct {
	Event
	// PrevHash is the Hash of the event before (empty for the first).
	PrevHash string `json:"prev_hash"`
	// Hash is store.HashEvent(PrevHash, event).
	Hash string `json:"hash"`
}

// Verification is the answer of GET /api/v1/audit/verify (see
// audit.Verify for what each check means).
type Verification struct {
	// OK is true when every event's hash matches its content and its
	// predecessor's hash.
	OK bool `json:"ok"`
	// Events is how many events were checked, FirstID and LastID the
	// oldest and newest of them (0 for an empty trail).
	Events  int   `json:"events"`
	FirstID int64 `json:"first_id"`
	LastID  int64 `json:"last_id"`
	// FirstBad names the first event that was edited, removed or
	// reordered; null when OK.
	FirstBad *BadEntry `json:"first_bad"`
	// Anchor is the prev_hash of the oldest event: empty for a trail
	// whole since its first event, else the hash of the last event
	// retention removed, as its signed checkpoint states.
	Anchor string `json:"anchor"`
	// StartsAfterRetention is set when the oldest events were removed by
	// retention, accepted on its signed checkpoint.
	StartsAfterRetention bool `json:"starts_after_retention"`
	// Checkpoints is how many signed checkpoints were checked; Head the
	// newest one the trail was held to (null if none).
	Checkpoints int                `json:"checkpoints"`
	Head        *CheckpointSummary `json:"head"`
}

// CheckpointSummary names a signed checkpoint.
type CheckpointSummary struct {
	EventID int64     `json:"event_id"`
	Hash    string    `json:"hash"`
	Time    time.Time `json:"time"`
	Gateway string    `json:"gateway"`
}

// BadEntry is the first event where the chain breaks.
type BadEntry struct {
	// ID is the event's id; for removed events, the first missing id.
	ID int64 `json:"id"`
	// Problem is edited, removed or reordered.
	Problem string `json:"problem"`
	// Detail says what was found, for humans.
	Detail string `json:"detail"`
}

// maxCheckpointBody bounds the checkpoint lines POST /audit/verify takes:
// some two years of a checkpoint a minute.
const maxCheckpointBody = 256 << 20

// verifyAudit checks the whole chain against the signed checkpoints (and,
// for a POST, the checkpoint lines of the body: a copy of
// DATA/audit.checkpoints or one line of it). A broken chain is an answer,
// not an error: 200 either way, the body says which.
func (a *api) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		return err
	}
	var extra []store.AuditCheckpoint
	if r.Method == http.MethodPost {
		var err error
		extra, err = audit.ParseCheckpoints(http.MaxBytesReader(w, r.Body, maxCheckpointBody))
		if err != nil {
			return clientError(http.StatusBadRequest, "checkpoints: %v", err)
		}
		if len(extra) == 0 {
			return clientError(http.StatusBadRequest, "checkpoints: the body holds none")
		}
	}
	var (
		v   audit.Verification
		err error
	)
	if a.checkpts != nil {
		v, err = a.checkpts.Verify(r.Context(), extra)
	} else {
		if len(extra) > 0 {
			return clientError(http.StatusNotFound, "this gateway has no audit key to check checkpoints with")
		}
		v, err = audit.Verify(r.Context(), a.store, nil, nil)
	}
	if err != nil {
		return fmt.Errorf("verify audit chain: %w", err)
	}
	out := Verification{OK: v.OK, Events: v.Events, FirstID: v.FirstID, LastID: v.LastID, Anchor: v.Anchor,
		StartsAfterRetention: v.StartsAfterRetention, Checkpoints: v.Checkpoints}
	if v.FirstBad != nil {
		out.FirstBad = &BadEntry{ID: v.FirstBad.ID, Problem: v.FirstBad.Problem, Detail: v.FirstBad.Detail}
	}
	if h := v.Head; h != nil {
		out.Head = &CheckpointSummary{EventID: h.EventID, Hash: h.Hash, Time: h.Time.UTC(), Gateway: h.Gateway}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// AuditKeyResponse is the answer of GET /api/v1/audit/pubkey.
type AuditKeyResponse struct {
	// PublicKey is the Ed25519 key that signs audit checkpoints, as one
	// OpenSSH authorized_keys line (ssh-ed25519 AAAA... portcullis-audit).
	PublicKey string `json:"public_key"`
}

// auditPublicKey answers the audit key, for checking checkpoints away
// from the gateway.
func (a *api) auditPublicKey(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		return err
	}
	if a.checkpts == nil {
		return clientError(http.StatusNotFound, "this gateway has no audit key")
	}
	writeJSON(w, http.StatusOK, AuditKeyResponse{PublicKey: a.checkpts.PublicKey()})
	return nil
}

var exportParams = []string{"since", "until"}

// exportAudit streams events as JSON lines, oldest first, a page at a
// time. The end of the export is fixed when the request arrives (until,
// or now), so that an export of a busy gateway ends.
func (a *api) exportAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, exportParams); err != nil {
		return err
	}
	f := store.AuditFilter{Limit: exportPage}
	var err error
	if f.Since, err = queryTime(q, "since"); err != nil {
		return err
	}
	if f.Until, err = queryTime(q, "until"); err != nil {
		return err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return clientError(http.StatusBadRequest, "until (%s) must be after since (%s)", q.Get("until"), q.Get("since"))
	}
	if f.Until.IsZero() {
		// Events stamped in this nanosecond are stored after the request
		// arrived; the next export starting here has them. A since in
		// the future then exports nothing, as audit ls lists nothing.
		f.Until = time.Now().UTC().Add(time.Nanosecond)
	}
	sw := newStreamWriter(w, "application/x-ndjson", false)
	bw := bufio.NewWriterSize(sw, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for {
		evs, err := a.store.ListAudit(r.Context(), f)
		if err != nil {
			return a.abortStream(r, sw, fmt.Errorf("export audit events after %d: %w", f.AfterID, err))
		}
		for _, ev := range evs {
			line := ExportedEvent{Event: eventFromStore(ev), PrevHash: ev.PrevHash, Hash: ev.Hash}
			if err := enc.Encode(line); err != nil {
				return a.abortStream(r, sw, fmt.Errorf("export audit event %d: %w", ev.ID, err))
			}
		}
		// Each page goes out as it is read, so that a long export shows
		// progress and the gateway holds one page at most.
		if err := bw.Flush(); err != nil {
			return a.abortStream(r, sw, fmt.Errorf("export audit events: %w", err))
		}
		if err := sw.Flush(); err != nil {
			return a.abortStream(r, sw, fmt.Errorf("export audit events: %w", err))
		}
		if len(evs) < f.Limit {
			return nil
		}
		f.AfterID = evs[len(evs)-1].ID
	}
}
