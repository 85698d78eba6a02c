package audit

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
)

var trailBase = time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC)

// newTrail opens a SQLite store with n events (IDs 1..n, one second apart)
// and a second, raw connection to its file for tampering.
func newTrail(t *testing.T, n int) (*sqlite.Store, *sql.DB) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portcullis.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for i := 1; i <= n; i++ {
		ev := store.AuditEvent{
			Time: trailBase.Add(time.Duration(i) * time.Second), Type: []string{LoginSuccess, SessionStart, SessionEnd}[i%3],
			Outcome: Success, User: fmt.Sprint("user", i%4), Target: "db1", SessionID: fmt.Sprint("s", i/3),
			Message: fmt.Sprint("event ", i),
			Detail:  map[string]any{"i": i, "nested": map[string]any{"list": []int{i, i * 2}, "none": nil}},
		}
		if i%5 == 0 {
			ev.Detail = nil
		}
		id, err := st.AppendAudit(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if id != int64(i) {
			t.Fatalf("event %d got id %d", i, id)
		}
	}
	db, err := sql.Open("sqlite", path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return st, db
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// auditCols are every column of audit_events but the id.
const auditCols = "time, type, outcome, user_name, source, target, account, session_id, policy, message, detail, prev_hash, hash"

// swapRows swaps everything but the ids of two events: each event, hashes
// and all, moves to the other's position.
func swapRows(t *testing.T, db *sql.DB, a, b int64) {
	t.Helper()
	read := func(id int64) []any {
		vals := make([]any, 13)
		ptrs := make([]any, 13)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := db.QueryRow("SELECT "+auditCols+" FROM audit_events WHERE id = $1", id).Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		return vals
	}
	write := func(id int64, vals []any) {
		var set []string
		for i, c := range strings.Split(auditCols, ", ") {
			set = append(set, fmt.Sprintf("%s = $%d", c, i+1))
		}
		exec(t, db, "UPDATE audit_events SET "+strings.Join(set, ", ")+" WHERE id = $14", append(vals, id)...)
	}
	va, vb := read(a), read(b)
	write(a, vb)
	write(b, va)
}

// verify checks st's chain with no checkpoints.
func verify(t *testing.T, st store.Store) Verification {
	t.Helper()
	v, err := Verify(context.Background(), st, testKey(t).Public(), nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return v
}

func smallPages(t *testing.T) {
	old := verifyPage
	verifyPage = 7
	t.Cleanup(func() { verifyPage = old })
}

func TestVerifyIntact(t *testing.T) {
	smallPages(t)
	st, _ := newTrail(t, 25)
	v := verify(t, st)
	if !v.OK || v.FirstBad != nil || v.Events != 25 || v.FirstID != 1 || v.LastID != 25 || v.Anchor != "" || v.StartsAfterRetention {
		t.Errorf("Verify of an intact trail = %+v", v)
	}
}

func TestVerifyEmpty(t *testing.T) {
	st, _ := newTrail(t, 0)
	if v := verify(t, st); !v.OK || v.Events != 0 {
		t.Errorf("Verify of an empty trail = %+v", v)
	}
}

func TestVerifyTampered(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func(t *testing.T, st store.Store, db *sql.DB)
		id      int64
		problem string
		detail  string // a part of the Detail
	}{
		{"message edited", func(t *testing.T, _ store.Store, db *sql.DB) {
			exec(t, db, "UPDATE audit_events SET message = 'nothing happened' WHERE id = 10")
		}, 10, ProblemEdited, "entry 10 does not match its hash"},
		{"detail edited", func(t *testing.T, _ store.Store, db *sql.DB) {
			exec(t, db, `UPDATE audit_events SET detail = '{"i":11,"nested":{"list":[11,23],"none":null}}' WHERE id = 11`)
		}, 11, ProblemEdited, "entry 11"},
		{"detail reformatted only", func(t *testing.T, _ store.Store, db *sql.DB) {
			// The same JSON value, spelled differently, reads back the
			// same: not an edit anyone can see, and not reported.
			exec(t, db, `UPDATE audit_events SET detail = '{ "nested" : {"none":null,"list":[11,22.0]}, "i" : 11 }' WHERE id = 11`)
		}, 0, "", ""},
		{"time edited", func(t *testing.T, _ store.Store, db *sql.DB) {
			exec(t, db, "UPDATE audit_events SET time = time + 1 WHERE id = 12")
		}, 12, ProblemEdited, "entry 12"},
		{"user moved between fields", func(t *testing.T, _ store.Store, db *sql.DB) {
			exec(t, db, "UPDATE audit_events SET user_name = '', source = user_name WHERE id = 13")
		}, 13, ProblemEdited, "entry 13"},
		{"hash edited", func(t *testing.T, _ store.Store, db *sql.DB) {
			exec(t, db, "UPDATE audit_events SET hash = $1 WHERE id = 14", strings.Repeat("0", 64))
		}, 14, ProblemEdited, "entry 14"},
		{"edited and rehashed", func(t *testing.T, st store.Store, db *sql.DB) {
			evs, err := st.ListAudit(context.Background(), store.AuditFilter{AfterID: 9, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			ev := evs[0]
			ev.Message = "rewritten"
			exec(t, db, "UPDATE audit_events SET message = $1, hash = $2 WHERE id = 10", ev.Message, store.HashEvent(ev.PrevHash, ev))
		}, 10, ProblemEdited, "entry 10 was edited and rehashed"},
		{"removed", func(t *testing.T, _ store.Store, db *sql.DB) {
			exec(t, db, "DELETE FROM audit_events WHERE id = 10")
		}, 10, ProblemRemoved, "entry 10 is missing"},
		{"several removed", func(t *testing.T, _ store.Store, db *sql.DB) {
			exec(t, db, "DELETE FROM audit_events WHERE id BETWEEN 10 AND 12")
		}, 10, ProblemRemoved, "entries 10 to 12 are missing"},
		{"removed and later edited", func(t *testing.T, _ store.Store, db *sql.DB) {
			exec(t, db, "DELETE FROM audit_events WHERE id = 6")
			exec(t, db, "UPDATE audit_events SET message = 'x' WHERE id = 20")
		}, 6, ProblemRemoved, "entry 6 is missing"},
		{"swapped", func(t *testing.T, _ store.Store, db *sql.DB) {
			swapRows(t, db, 5, 15)
		}, 5, ProblemReordered, "entry 5 holds the entry appended as 15"},
		{"neighbours swapped", func(t *testing.T, _ store.Store, db *sql.DB) {
			swapRows(t, db, 8, 9)
		}, 8, ProblemReordered, "appended as 9"},
		{"renumbered after a removal", func(t *testing.T, _ store.Store, db *sql.DB) {
			exec(t, db, "DELETE FROM audit_events WHERE id = 10")
			exec(t, db, "UPDATE audit_events SET id = id - 1 WHERE id > 10")
		}, 10, ProblemReordered, "appended as 11"},
		{"first entry edited", func(t *testing.T, _ store.Store, db *sql.DB) {
			exec(t, db, "UPDATE audit_events SET outcome = 'deny' WHERE id = 1")
		}, 1, ProblemEdited, "entry 1"},
		{"last entry edited", func(t *testing.T, _ store.Store, db *sql.DB) {
			exec(t, db, "UPDATE audit_events SET message = 'x' WHERE id = 25")
		}, 25, ProblemEdited, "entry 25"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			smallPages(t)
			st, db := newTrail(t, 25)
			c.tamper(t, st, db)
			v := verify(t, st)
			if c.problem == "" {
				if !v.OK {
					t.Errorf("Verify = %+v (%+v), want OK", v, v.FirstBad)
				}
				return
			}
			if v.OK || v.FirstBad == nil {
				t.Fatalf("Verify = %+v, want the tampering found", v)
			}
			if b := v.FirstBad; b.ID != c.id || b.Problem != c.problem || !strings.Contains(b.Detail, c.detail) {
				t.Errorf("FirstBad = %+v, want entry %d %s (%q)", *b, c.id, c.problem, c.detail)
			}
			if v.Events < 20 {
				t.Errorf("Events = %d: Verify stopped early", v.Events)
			}
		})
	}
}

// TestVerifyPrefixRemoved: removing the oldest entries no longer passes
// for retention; only a signed retention checkpoint makes a missing prefix
// acceptable (TestRetentionAccepted).
func TestVerifyPrefixRemoved(t *testing.T) {
	st, db := newTrail(t, 10)
	exec(t, db, "DELETE FROM audit_events WHERE id <= 3")
	v := verify(t, st)
	if v.OK || v.FirstBad.Problem != ProblemRemoved || !strings.Contains(v.FirstBad.Detail, "entries 1 to 3 are missing") {
		t.Errorf("Verify = %+v %+v, want entries 1 to 3 removed", v, v.FirstBad)
	}
}

func TestVerifyCancelled(t *testing.T) {
	st, _ := newTrail(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, st, testKey(t).Public(), nil); err == nil {
		t.Error("Verify with a cancelled context succeeded")
	}
}
