package recording

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// Integrity states of a recording file read back.
const (
	// IntegrityOK: the file is what was recorded.
	IntegrityOK = "ok"
	// IntegrityTampered: the file, or the hash stored for it, changed
	// after the recording ended.
	IntegrityTampered = "tampered"
	// IntegrityUnchecked: the recording is still being written, or no
	// hash was ever stored for it (it failed to close).
	IntegrityUnchecked = "unchecked"
)

// Integrity is what checking a recording file against its hashes found.
type Integrity struct {
	// State is IntegrityOK, IntegrityTampered or IntegrityUnchecked.
	State string
	// Want is the SHA-256 the recording ended with (hex), Got the file's
	// now; Got is empty when unchecked.
	Want, Got string
	// Problem says what is wrong, in words for the viewer; empty when OK.
	Problem string
}

// hashKey is the audit detail that holds a recording's SHA-256 in the
// events of hashEvents: session.end, or recording.interrupted for one the
// gateway closed at its next start.
const hashKey = "recording_sha256"

var hashEvents = []string{audit.SessionEnd, audit.RecordingInterrupted}

// OpenChecked opens a recording like Open and, when it has ended, checks
// its file: the file's SHA-256 must be the one stored when the recording
// ended, and that must be the one the trail's session.end (or
// recording.interrupted) event holds, where the hash chain protects it. A
// mismatch is not an error: the file is still returned, with the finding,
// so that the viewer can be told and see what is there. The reader is at
// the start of the file.
func (m *Manager) OpenChecked(ctx context.Context, id string) (*os.File, store.Recording, Integrity, error) {
	if err := checkID(id); err != nil {
		return nil, store.Recording{}, Integrity{}, fmt.Errorf("open recording: %w", err)
	}
	rec, err := m.st.GetRecording(ctx, id)
	if err != nil {
		return nil, store.Recording{}, Integrity{}, fmt.Errorf("open recording %s: %w", id, err)
	}
	f, err := m.openFile(ctx, id)
	if err != nil {
		return nil, store.Recording{}, Integrity{}, fmt.Errorf("open recording %s: %w", id, err)
	}
	in, err := m.check(ctx, rec, f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, store.Recording{}, Integrity{}, fmt.Errorf("check recording %s: %w", id, err)
	}
	return f, rec, in, nil
}

// check hashes r and compares it with rec's hash and the trail's.
func (m *Manager) check(ctx context.Context, rec store.Recording, r io.Reader) (Integrity, error) {
	if rec.State == store.RecordingActive {
		return Integrity{State: IntegrityUnchecked}, nil
	}
	var trail string // the last hash the trail holds for it
	for _, typ := range hashEvents {
		evs, err := m.st.ListAudit(ctx, store.AuditFilter{SessionID: rec.ID, Type: typ})
		if err != nil {
			return Integrity{}, fmt.Errorf("read the audit trail of recording %s: %w", rec.ID, err)
		}
		for _, ev := range evs {
			if h, ok := ev.Detail[hashKey].(string); ok && h != "" {
				trail = h
			}
		}
	}
	want := rec.SHA256
	if want == "" && trail == "" {
		return Integrity{State: IntegrityUnchecked}, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return Integrity{}, fmt.Errorf("hash recording %s: %w", rec.ID, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	in := Integrity{State: IntegrityOK, Want: want, Got: got}
	switch {
	case trail != "" && want != trail:
		in.Want = trail
		in.State = IntegrityTampered
		in.Problem = fmt.Sprintf("the SHA-256 stored for this recording (%s) is not the one its audit event recorded when it ended (%s): the stored hash was changed", short(want), short(trail))
		if got != trail {
			in.Problem += fmt.Sprintf(", and the file (%s) is not what was recorded", short(got))
		}
	case got != want:
		in.State = IntegrityTampered
		in.Problem = fmt.Sprintf("this recording's file (SHA-256 %s) is not the one recorded when the session ended (SHA-256 %s): it was changed since", short(got), short(want))
	}
	return in, nil
}

// short abbreviates a hex hash for a message.
func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "..."
	}
	return h
}

// Problems Check finds.
const (
	// CheckMissing: the recording's file (or object) is gone.
	CheckMissing = "missing"
	// CheckTampered: its SHA-256 is not the one recorded when it ended.
	CheckTampered = "tampered"
)

// Finding is a recording Check found wrong.
type Finding struct {
	ID      string `json:"id"`
	State   string `json:"state"`   // the recording's state (ended, incomplete, interrupted), or unlisted (its row is gone)
	Problem string `json:"problem"` // CheckMissing or CheckTampered
	Detail  string `json:"detail"`  // in words
}

// Check reads every recording that has ended and returns those whose
// file is missing or whose SHA-256 is not the one recorded when it ended
// (the store's and the audit trail's, as OpenChecked). With an object
// store that is every gateway's recordings; without one, this gateway's
// (the others' files are on their disks). It reads every byte: it costs
// what downloading them all does.
func (m *Manager) Check(ctx context.Context) ([]Finding, error) {
	var out []Finding
	known := map[string]bool{} // every recording the store lists
	for _, state := range []string{store.RecordingEnded, store.RecordingIncomplete, store.RecordingInterrupted, store.RecordingActive} {
		recs, err := m.st.ListRecordings(ctx, store.RecordingFilter{State: state, Limit: math.MaxInt32})
		if err != nil {
			return nil, fmt.Errorf("check recordings: %w", err)
		}
		for _, rec := range recs {
			known[rec.ID] = true
			if state == store.RecordingActive {
				continue
			}
			if m.objects == nil && rec.Gateway != m.gateway {
				continue
			}
			f, err := m.openFile(ctx, rec.ID)
			if errors.Is(err, os.ErrNotExist) {
				detail := "the recording's file is not in the recordings store"
				if m.objects != nil && rec.Gateway != m.gateway {
					detail += fmt.Sprintf(" (if gateway %q could not reach the store, it may still wait in that gateway's spool)", rec.Gateway)
				}
				out = append(out, Finding{ID: rec.ID, State: rec.State, Problem: CheckMissing, Detail: detail})
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("check recording %s: %w", rec.ID, err)
			}
			in, err := m.check(ctx, rec, f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("check recording %s: %w", rec.ID, err)
			}
			if in.State == IntegrityTampered {
				out = append(out, Finding{ID: rec.ID, State: rec.State, Problem: CheckTampered, Detail: in.Problem})
			}
		}
	}
	// The trail, which the hash chain protects, is the list of what was
	// recorded: a recording it gave a hash to that the store no longer
	// lists, without a recording.delete event, was removed behind the
	// gateway's back (its row deleted in the database).
	gone, err := m.unlisted(ctx, known)
	if err != nil {
		return nil, err
	}
	return append(out, gone...), nil
}

// unlisted returns the recordings the audit trail gave a hash to that are
// neither in known nor deleted through the gateway.
func (m *Manager) unlisted(ctx context.Context, known map[string]bool) ([]Finding, error) {
	hashed := map[string]string{}
	var order []string
	deleted := map[string]bool{}
	for _, typ := range append(slices.Clone(hashEvents), audit.RecordingDelete) {
		for after := int64(0); ; {
			evs, err := m.st.ListAudit(ctx, store.AuditFilter{Type: typ, AfterID: after, Limit: 1000})
			if err != nil {
				return nil, fmt.Errorf("check recordings: read the audit trail: %w", err)
			}
			for _, ev := range evs {
				after = ev.ID
				if ev.SessionID == "" {
					continue
				}
				if typ == audit.RecordingDelete {
					deleted[ev.SessionID] = true
					continue
				}
				if h, ok := ev.Detail[hashKey].(string); ok && h != "" {
					if _, seen := hashed[ev.SessionID]; !seen {
						order = append(order, ev.SessionID)
					}
					hashed[ev.SessionID] = h
				}
			}
			if len(evs) < 1000 {
				break
			}
		}
	}
	var out []Finding
	for _, id := range order {
		if known[id] || deleted[id] {
			continue
		}
		out = append(out, Finding{ID: id, State: "unlisted", Problem: CheckMissing,
			Detail: fmt.Sprintf("the audit trail recorded this recording (SHA-256 %s) when it ended, but the store no longer lists it and no recording.delete event says it was deleted", short(hashed[id]))})
	}
	return out, nil
}
