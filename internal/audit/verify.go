package audit

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// What Verify found wrong with an entry.
const (
	// ProblemEdited: the entry's content (or its stored hash) is not what
	// was appended.
	ProblemEdited = "edited"
	// ProblemRemoved: entries are missing between two kept ones.
	ProblemRemoved = "removed"
	// ProblemReordered: the entry holds an event appended at another
	// position (with another ID): rows were moved or renumbered.
	ProblemReordered = "reordered"
	// ProblemTruncated: the trail stops short of a signed checkpoint, or
	// no longer holds the event a checkpoint signed: its newest entries
	// were removed (perhaps with new ones appended since).
	ProblemTruncated = "truncated"
	// ProblemBadCheckpoint: a checkpoint does not verify with the audit
	// key (forged or altered), or a checkpoint file does not read.
	ProblemBadCheckpoint = "bad-checkpoint"
)

// BadEntry is the first entry of the trail that fails verification.
type BadEntry struct {
	// ID is the entry's ID; for removed entries, the first missing ID.
	ID int64
	// Problem is ProblemEdited, ProblemRemoved or ProblemReordered.
	Problem string
	// Detail says what was found, for humans.
	Detail string
}

// Verification is what Verify found.
type Verification struct {
	// Events is how many entries were checked: the whole trail.
	Events int
	// OK is set when every entry checked out; FirstBad is nil then.
	OK       bool
	FirstBad *BadEntry
	// FirstID and LastID are the IDs of the oldest and newest entries.
	FirstID, LastID int64
	// Anchor is the PrevHash of the oldest entry, accepted as it is: the
	// hash of the last entry retention removed (DeleteAuditBefore), or
	// empty when the trail is whole since its first event.
	Anchor string
	// StartsAfterRetention is set when the oldest entries were removed by
	// retention: a signed retention checkpoint names the first kept entry
	// and its Anchor, and the chain is verified from there on.
	StartsAfterRetention bool
	// Checkpoints is how many signed checkpoints were checked. Head is
	// the one naming the newest entry (nil if none): the trail holds that
	// entry with that hash. Retention is the latest retention checkpoint.
	Checkpoints int
	Head        *store.AuditCheckpoint
	Retention   *store.AuditCheckpoint
}

// verifyPage is how many entries Verify reads at a time (a variable for
// tests).
var verifyPage = 1000

// maxMoveSearch bounds how many IDs Verify tries when looking for where an
// entry that fails its own hash was appended.
const maxMoveSearch = 1 << 17

// moveMargin is how far beyond the trail's IDs that search goes: rows
// renumbered after a removal may carry IDs the trail no longer has.
const moveMargin = 1024

// Verify checks the audit trail's hash chain from the oldest entry to the
// newest against signed checkpoints, and names the first thing wrong.
//
// Each entry's Hash must be store.HashEvent(PrevHash, entry), or the entry
// was edited after it was appended. When it was, Verify tries the entry
// with the other IDs of the trail: if one gives the stored hash, the entry
// was appended with that ID and has been moved (reordered). Each entry's
// PrevHash must be the Hash of the entry before it, and its ID the next
// one (the stores hand out IDs without holes): else entries were removed,
// or, with no ID missing, the entry before was edited and rehashed.
//
// A chain alone cannot show that its newest entries were removed, nor
// tell retention from the removal of its oldest, nor catch someone who
// recomputed every hash after the one edited. The checkpoints close those:
// every one must verify with pub; the trail must reach and hold the entry
// the newest head checkpoint signed, with the signed hash (an empty trail
// after any checkpoint fails); and a trail that does not start at entry 1
// with an empty PrevHash must start exactly where the latest signed
// retention checkpoint says, continuing from the hash it names. Verify
// reads a trail that may grow while it runs; retention cutting it between
// the caller's reading of the checkpoints and Verify's reading of the
// trail shows as a removal (run it again).
//
// The error is for a trail Verify could not read; a trail that fails
// verification is a result with OK false.
func Verify(ctx context.Context, st store.Store, pub ed25519.PublicKey, cps []store.AuditCheckpoint) (Verification, error) {
	var (
		v       Verification
		prev    *store.AuditEvent
		badSelf *store.AuditEvent // first entry failing its own hash, for the move search
		after   int64
		badCP   *BadEntry
	)
	// Every checkpoint must be the audit key's; of the good ones, the
	// newest of each kind is what the trail is held to (the chain makes
	// holding the newest hold the older ones too).
	for i := range cps {
		cp := cps[i]
		v.Checkpoints++
		if err := CheckSignature(pub, cp); err != nil {
			if badCP == nil {
				badCP = &BadEntry{ID: cp.EventID, Problem: ProblemBadCheckpoint, Detail: err.Error()}
			}
			continue
		}
		switch cp.Kind {
		case store.CheckpointHead:
			if v.Head == nil || cp.EventID > v.Head.EventID {
				v.Head = &cp
			}
		case store.CheckpointRetention:
			if v.Retention == nil || cp.EventID > v.Retention.EventID {
				v.Retention = &cp
			}
		}
	}
	var (
		headHash, retPrev   string
		headSeen, retSeen   bool
		headID, retentionID int64 = -1, -1
	)
	if v.Head != nil {
		headID = v.Head.EventID
	}
	if v.Retention != nil {
		retentionID = v.Retention.EventID
	}
	for {
		page, err := st.ListAudit(ctx, store.AuditFilter{AfterID: after, Limit: verifyPage})
		if err != nil {
			return Verification{}, fmt.Errorf("verify audit trail after entry %d: %w", after, err)
		}
		for i := range page {
			ev := &page[i]
			v.Events++
			if prev == nil {
				v.FirstID, v.Anchor = ev.ID, ev.PrevHash
			}
			v.LastID = ev.ID
			if ev.ID == headID {
				headHash, headSeen = ev.Hash, true
			}
			if ev.ID == retentionID {
				retPrev, retSeen = ev.PrevHash, true
			}
			if v.FirstBad == nil {
				if ev.Hash != store.HashEvent(ev.PrevHash, *ev) {
					v.FirstBad = &BadEntry{ID: ev.ID, Problem: ProblemEdited,
						Detail: fmt.Sprintf("entry %d does not match its hash: its content or hash was changed", ev.ID)}
					cp := *ev
					badSelf = &cp
				} else if prev != nil && (ev.PrevHash != prev.Hash || ev.ID != prev.ID+1) {
					v.FirstBad = brokenLink(prev, ev)
				}
			}
			p := *ev
			prev = &p
		}
		if len(page) < verifyPage {
			break
		}
		after = page[len(page)-1].ID
	}
	if badSelf != nil {
		if id, ok := appendedAs(ctx, *badSelf, v.FirstID, v.LastID); ok {
			v.FirstBad = &BadEntry{ID: badSelf.ID, Problem: ProblemReordered,
				Detail: fmt.Sprintf("entry %d holds the entry appended as %d: entries were moved or renumbered", badSelf.ID, id)}
		} else if err := ctx.Err(); err != nil {
			return Verification{}, fmt.Errorf("verify audit trail: %w", err)
		}
	}
	switch {
	case badCP != nil:
		v.FirstBad = badCP
	case v.FirstBad != nil:
	default:
		v.FirstBad = v.checkEnds(headSeen, headHash, retSeen, retPrev)
	}
	v.OK = v.FirstBad == nil
	return v, nil
}

// checkEnds holds the trail's two ends to the checkpoints: its start to
// the retention checkpoint (or to entry 1), its end to the head one.
func (v *Verification) checkEnds(headSeen bool, headHash string, retSeen bool, retPrev string) *BadEntry {
	signed := func(cp *store.AuditCheckpoint) string {
		return fmt.Sprintf("the %s checkpoint signed %s by gateway %q", cp.Kind, cp.Time.UTC().Format(time.RFC3339), cp.Gateway)
	}
	if v.Events == 0 {
		for _, cp := range []*store.AuditCheckpoint{v.Head, v.Retention} {
			if cp != nil {
				return &BadEntry{ID: cp.EventID, Problem: ProblemRemoved,
					Detail: fmt.Sprintf("the trail is empty, but %s shows entry %d: every entry was removed", signed(cp), cp.EventID)}
			}
		}
		return nil
	}
	if r := v.Retention; r != nil {
		switch {
		case r.EventID > v.LastID:
			return &BadEntry{ID: v.LastID + 1, Problem: ProblemTruncated,
				Detail: fmt.Sprintf("the trail ends at entry %d, but %s kept entry %d on: entries from %d on were removed",
					v.LastID, signed(r), r.EventID, v.LastID+1)}
		case retSeen && retPrev != r.Hash:
			return &BadEntry{ID: r.EventID, Problem: ProblemEdited,
				Detail: fmt.Sprintf("entry %d does not continue from the hash %s names: the trail was rewritten", r.EventID, signed(r))}
		}
	}
	// The start: entry 1 with nothing before it, or exactly where retention
	// cut. A trail that was whole may still have a retention checkpoint
	// below its start from a restored backup; entries the retention
	// checkpoint kept must all be there.
	whole := v.FirstID == 1 && v.Anchor == ""
	cut := v.Retention != nil && v.Retention.EventID == v.FirstID && v.Retention.Hash == v.Anchor
	if !whole && !cut {
		missing := fmt.Sprintf("entries 1 to %d are missing", v.FirstID-1)
		if v.FirstID == 2 {
			missing = "entry 1 is missing"
		}
		if v.FirstID == 1 {
			missing = "entry 1 chains to an entry the trail never had"
		}
		why := "and no signed retention checkpoint covers them: they were removed"
		if v.Retention != nil {
			why = fmt.Sprintf("and %s kept entries from %d on: entries it kept were removed", signed(v.Retention), v.Retention.EventID)
		}
		return &BadEntry{ID: max(v.FirstID-1, 1), Problem: ProblemRemoved, Detail: missing + ", " + why}
	}
	v.StartsAfterRetention = cut && !whole
	if h := v.Head; h != nil {
		switch {
		case h.EventID > v.LastID:
			return &BadEntry{ID: v.LastID + 1, Problem: ProblemTruncated,
				Detail: fmt.Sprintf("the trail ends at entry %d, but %s shows entry %d: entries after %d were removed",
					v.LastID, signed(h), h.EventID, v.LastID)}
		case h.EventID >= v.FirstID && (!headSeen || headHash != h.Hash):
			return &BadEntry{ID: h.EventID, Problem: ProblemTruncated,
				Detail: fmt.Sprintf("entry %d is not the entry %s shows: the trail was cut there and appended to again, or rewritten",
					h.EventID, signed(h))}
		}
	}
	return nil
}

// brokenLink describes an entry whose own hash holds but whose PrevHash is
// not the Hash of prev, the entry listed before it.
func brokenLink(prev, ev *store.AuditEvent) *BadEntry {
	if ev.ID > prev.ID+1 && ev.PrevHash == prev.Hash {
		missing := fmt.Sprintf("entry %d is missing", prev.ID+1)
		if ev.ID > prev.ID+2 {
			missing = fmt.Sprintf("entries %d to %d are missing", prev.ID+1, ev.ID-1)
		}
		return &BadEntry{ID: prev.ID + 1, Problem: ProblemRemoved,
			Detail: fmt.Sprintf("%s: entry %d chains to entry %d, so they were removed from the end and the trail appended to since",
				missing, ev.ID, prev.ID)}
	}
	if ev.ID > prev.ID+1 {
		missing := fmt.Sprintf("entry %d is missing", prev.ID+1)
		if ev.ID > prev.ID+2 {
			missing = fmt.Sprintf("entries %d to %d are missing", prev.ID+1, ev.ID-1)
		}
		return &BadEntry{ID: prev.ID + 1, Problem: ProblemRemoved,
			Detail: fmt.Sprintf("%s: entry %d chains to a hash entry %d does not have", missing, ev.ID, prev.ID)}
	}
	return &BadEntry{ID: prev.ID, Problem: ProblemEdited,
		Detail: fmt.Sprintf("entry %d matches its hash, but entry %d chains to a different one: entry %d was edited and rehashed (or the link of entry %d rewritten)",
			prev.ID, ev.ID, prev.ID, ev.ID)}
}

// appendedAs looks for the ID with which ev hashes to its stored hash:
// where an entry that fails its own hash was appended, if it is intact but
// moved. It tries the IDs of the trail (first..last, and moveMargin either
// side, for renumbered entries) nearest ev.ID first, at most maxMoveSearch
// of them, and stops early if ctx ends.
func appendedAs(ctx context.Context, ev store.AuditEvent, first, last int64) (int64, bool) {
	first, last = max(first-moveMargin, 1), last+moveMargin
	at := ev.ID
	for d, tries := int64(1), 0; tries < maxMoveSearch; d++ {
		lo, hi := at-d, at+d
		if lo < first && hi > last {
			return 0, false
		}
		for _, id := range []int64{lo, hi} {
			if id < first || id > last {
				continue
			}
			tries++
			ev.ID = id
			if store.HashEvent(ev.PrevHash, ev) == ev.Hash {
				return id, true
			}
		}
		if d%1024 == 0 && ctx.Err() != nil {
			return 0, false
		}
	}
	return 0, false
}
