package audit

import (
	"context"
	"fmt"

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
	// StartsAfterRetention is set when Anchor is not empty: the oldest
	// entries were removed by retention, and the chain is verified from
	// the first kept entry on.
	StartsAfterRetention bool
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
// newest and names the first entry that was edited, removed or reordered.
//
// Each entry's Hash must be store.HashEvent(PrevHash, entry), or the entry
// was edited after it was appended. When it was, Verify tries the entry
// with the other IDs of the trail: if one gives the stored hash, the entry
// was appended with that ID and has been moved (reordered). Each entry's
// PrevHash must be the Hash of the entry before it. When it is not and
// IDs are missing between the two, those entries were removed; when no
// ID is missing, the entry before was edited and its hash recomputed to
// match (or the link itself was rewritten).
//
// The oldest entry's PrevHash is the anchor: it cannot be checked, since
// the entry it names was removed by retention (or there is none). So a
// hash chain alone cannot tell retention from the removal of the oldest
// entries, nor notice the removal of the newest ones, nor an attacker who
// recomputes every hash after the one edited: keep the hashes somewhere
// else too (the syslog sink) to close those. Verify reads a trail that may
// grow while it runs; retention running at the same time may show as a
// removal.
//
// The error is for a trail Verify could not read; a trail that fails
// verification is a result with OK false.
func Verify(ctx context.Context, st store.Store) (Verification, error) {
	var (
		v       Verification
		prev    *store.AuditEvent
		badSelf *store.AuditEvent // first entry failing its own hash, for the move search
		after   int64
	)
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
			if v.FirstBad == nil {
				if ev.Hash != store.HashEvent(ev.PrevHash, *ev) {
					v.FirstBad = &BadEntry{ID: ev.ID, Problem: ProblemEdited,
						Detail: fmt.Sprintf("entry %d does not match its hash: its content or hash was changed", ev.ID)}
					cp := *ev
					badSelf = &cp
				} else if prev != nil && ev.PrevHash != prev.Hash {
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
	v.OK = v.FirstBad == nil
	v.StartsAfterRetention = v.Anchor != ""
	return v, nil
}

// brokenLink describes an entry whose own hash holds but whose PrevHash is
// not the Hash of prev, the entry listed before it.
func brokenLink(prev, ev *store.AuditEvent) *BadEntry {
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
