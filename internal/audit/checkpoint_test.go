package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/vault"
)

// testKey is a key made the way the gateway makes it, on a store of its own.
func testKey(t *testing.T) *Key {
	t.Helper()
	st, _ := newTrail(t, 0)
	return newKey(t, st)
}

func testVault(t *testing.T) *vault.Vault {
	t.Helper()
	v, _, err := vault.LoadOrCreateMasterKey(filepath.Join(t.TempDir(), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newKey(t *testing.T, st store.Store) *Key {
	t.Helper()
	k, created, err := LoadOrCreateKey(context.Background(), st, testVault(t))
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey = %v, created %v", err, created)
	}
	return k
}

// checkpointed is a trail of n events with a Checkpointer that has signed
// its head, and the checkpoint file's path.
type checkpointed struct {
	st   store.Store
	db   *sql.DB
	c    *Checkpointer
	file string
}

func newCheckpointed(t *testing.T, n int, retention time.Duration, now time.Time) *checkpointed {
	t.Helper()
	st, db := newTrail(t, n)
	file := filepath.Join(t.TempDir(), "audit.checkpoints")
	c := NewCheckpointer(CheckpointConfig{Store: st, Key: newKey(t, st), Gateway: "gw1", File: file,
		Audit: New(st, quietLog()), Retention: retention, Now: func() time.Time { return now }})
	if _, ok, err := c.Checkpoint(context.Background()); n > 0 && (err != nil || !ok) {
		t.Fatalf("Checkpoint = %v, %v", ok, err)
	}
	return &checkpointed{st: st, db: db, c: c, file: file}
}

func (p *checkpointed) verify(t *testing.T, extra ...store.AuditCheckpoint) Verification {
	t.Helper()
	v, err := p.c.Verify(context.Background(), extra)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return v
}

func (p *checkpointed) login(t *testing.T) {
	t.Helper()
	if err := New(p.st, quietLog()).Write(context.Background(), store.AuditEvent{Type: LoginSuccess, Outcome: Success, User: "mallory"}); err != nil {
		t.Fatal(err)
	}
}

// rehash recomputes every entry's prev_hash and hash from the first one
// on, as an attacker who can write the database would after removing or
// renumbering entries.
func rehash(t *testing.T, st store.Store, db *sql.DB) {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	prev := ""
	for _, ev := range evs {
		h := store.HashEvent(prev, ev)
		exec(t, db, "UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE id = $3", prev, h, ev.ID)
		prev = h
	}
}

// TestVerifyFindsTruncation is each way the issue found to shorten the
// trail unseen, and the ways around the first fixes: each must fail with
// a message naming what is wrong.
func TestVerifyFindsTruncation(t *testing.T) {
	cases := []struct {
		name    string
		n       int
		tamper  func(t *testing.T, p *checkpointed)
		problem string
		detail  string
	}{
		{"first 100 removed", 150, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "DELETE FROM audit_events WHERE id <= 100")
		}, ProblemRemoved, "entries 1 to 100 are missing, and no signed retention checkpoint covers them"},
		{"first 100 removed, the rest rehashed from an empty anchor", 150, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "DELETE FROM audit_events WHERE id <= 100")
			rehash(t, p.st, p.db)
		}, ProblemRemoved, "entries 1 to 100 are missing"},
		{"all removed", 30, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "DELETE FROM audit_events")
		}, ProblemRemoved, "the trail is empty, but the head checkpoint"},
		{"all removed, with the stored checkpoints", 30, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "DELETE FROM audit_events")
			exec(t, p.db, "DELETE FROM audit_checkpoints")
		}, ProblemRemoved, "shows entry 30: every entry was removed"},
		{"last 10 removed, then a login", 30, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "DELETE FROM audit_events WHERE id > 20")
			p.login(t)
		}, ProblemRemoved, "entries 21 to 30 are missing: entry 31 chains to entry 20"},
		{"last 10 removed and the id counter reset, then a login", 30, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "DELETE FROM audit_events WHERE id > 20")
			exec(t, p.db, "UPDATE sqlite_sequence SET seq = 20 WHERE name = 'audit_events'")
			p.login(t)
		}, ProblemTruncated, "the trail ends at entry 21, but the head checkpoint signed"},
		{"last 10 removed and as many logins since", 30, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "DELETE FROM audit_events WHERE id > 20")
			exec(t, p.db, "UPDATE sqlite_sequence SET seq = 20 WHERE name = 'audit_events'")
			for range 12 {
				p.login(t)
			}
		}, ProblemTruncated, "entry 30 is not the entry the head checkpoint signed"},
		{"last 10 removed, checkpoints removed from the store", 30, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "DELETE FROM audit_events WHERE id > 20")
			exec(t, p.db, "DELETE FROM audit_checkpoints")
		}, ProblemTruncated, "the trail ends at entry 20, but the head checkpoint"},
		{"an id gap", 30, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "DELETE FROM audit_events WHERE id = 12")
			rehash(t, p.st, p.db)
		}, ProblemRemoved, "entry 12 is missing: entry 13 chains to entry 11"},
		{"removed, renumbered and rehashed", 30, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "DELETE FROM audit_events WHERE id = 12")
			exec(t, p.db, "UPDATE audit_events SET id = id - 1 WHERE id > 12")
			rehash(t, p.st, p.db)
		}, ProblemTruncated, "the trail ends at entry 29, but the head checkpoint"},
		{"edited and everything after rehashed", 30, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "UPDATE audit_events SET message = 'nothing happened' WHERE id = 7")
			rehash(t, p.st, p.db)
		}, ProblemTruncated, "entry 30 is not the entry the head checkpoint signed"},
		{"stored checkpoint's hash altered", 30, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "UPDATE audit_checkpoints SET hash = $1", strings.Repeat("0", 64))
		}, ProblemBadCheckpoint, "the signature does not verify with the audit key"},
		{"stored checkpoint's signature replaced", 30, func(t *testing.T, p *checkpointed) {
			exec(t, p.db, "UPDATE audit_checkpoints SET signature = $1", strings.Repeat("A", 86)+"==")
		}, ProblemBadCheckpoint, "forged or altered"},
		{"checkpoint file line altered", 30, func(t *testing.T, p *checkpointed) {
			b, err := os.ReadFile(p.file)
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.Replace(b, []byte(`"event_id":30`), []byte(`"event_id":29`), 1)
			if err := os.WriteFile(p.file, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, ProblemBadCheckpoint, "head checkpoint at event 29"},
		{"checkpoint file garbled", 30, func(t *testing.T, p *checkpointed) {
			if err := os.WriteFile(p.file, []byte("{not json\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ProblemBadCheckpoint, "line 1: not a checkpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			smallPages(t)
			p := newCheckpointed(t, c.n, 0, time.Now())
			if v := p.verify(t); !v.OK || v.Head == nil || v.Head.EventID != int64(c.n) {
				t.Fatalf("before tampering: %+v %+v", v, v.FirstBad)
			}
			c.tamper(t, p)
			v := p.verify(t)
			if v.OK || v.FirstBad == nil {
				t.Fatalf("Verify = %+v, want the tampering found", v)
			}
			if b := v.FirstBad; b.Problem != c.problem || !strings.Contains(b.Detail, c.detail) {
				t.Errorf("FirstBad = %+v, want %s (%q)", *b, c.problem, c.detail)
			}
		})
	}
}

// TestRetentionAccepted: retention removes old events with a signed
// record, and verify accepts exactly that missing prefix: not one entry
// more, and not an unsigned DeleteAuditBefore.
func TestRetentionAccepted(t *testing.T) {
	ctx := context.Background()
	smallPages(t)
	// Events are one second apart from trailBase; keep those 20 s old.
	now := trailBase.Add(30 * time.Second)
	p := newCheckpointed(t, 25, 20*time.Second, now)
	all, err := p.st.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.c.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	v := p.verify(t)
	if !v.OK || v.FirstID != 10 || !v.StartsAfterRetention || v.Anchor != all[8].Hash || v.Retention == nil {
		t.Fatalf("Verify after retention = %+v %+v, want OK from entry 10", v, v.FirstBad)
	}
	evs, err := p.st.ListAudit(ctx, store.AuditFilter{Type: AuditRetention})
	if err != nil || len(evs) != 1 || evs[0].Detail["first_kept_id"] != float64(10) || evs[0].Detail["continues_from"] != all[8].Hash {
		t.Fatalf("audit.retention events = %+v, %v", evs, err)
	}
	// The retention checkpoint is in the file too.
	cps, err := readCheckpointFile(p.file)
	if err != nil || len(cps) != 2 || cps[1].Kind != store.CheckpointRetention || cps[1].EventID != 10 {
		t.Fatalf("checkpoint file = %+v, %v", cps, err)
	}
	// New checkpoints and events go on.
	p.login(t)
	if _, ok, err := p.c.Checkpoint(ctx); !ok || err != nil {
		t.Fatalf("Checkpoint = %v, %v", ok, err)
	}
	if v := p.verify(t); !v.OK {
		t.Fatalf("Verify after more events = %+v %+v", v, v.FirstBad)
	}
	// One entry more than retention removed is a removal.
	exec(t, p.db, "DELETE FROM audit_events WHERE id = 10")
	if v := p.verify(t); v.OK || v.FirstBad.Problem != ProblemRemoved || !strings.Contains(v.FirstBad.Detail, "kept entries from 10 on") {
		t.Errorf("Verify after removing a kept entry = %+v %+v", v, v.FirstBad)
	}
}

func TestUnsignedRetentionRefused(t *testing.T) {
	p := newCheckpointed(t, 25, 0, time.Now())
	if _, err := p.st.DeleteAuditBefore(context.Background(), trailBase.Add(8*time.Second)); err != nil {
		t.Fatal(err)
	}
	if v := p.verify(t); v.OK || v.FirstBad.Problem != ProblemRemoved {
		t.Errorf("Verify after an unsigned prefix removal = %+v %+v", v, v.FirstBad)
	}
}

// TestVerifyWithCheckpointFile: a copy of the checkpoint file, or one line
// of it, kept elsewhere, catches a truncation after the store's checkpoints
// and DATA/audit.checkpoints were both cut back.
func TestVerifyWithCheckpointFile(t *testing.T) {
	ctx := context.Background()
	p := newCheckpointed(t, 20, 0, time.Now())
	for range 10 {
		p.login(t)
	}
	if _, ok, err := p.c.Checkpoint(ctx); !ok || err != nil {
		t.Fatalf("Checkpoint = %v, %v", ok, err)
	}
	kept, err := os.ReadFile(p.file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSpace(string(kept)), "\n")
	if len(lines) != 2 {
		t.Fatalf("checkpoint file has %d lines, want 2", len(lines))
	}
	// The attacker removes the last 10 events, and every trace of the
	// checkpoint that named them but the copy.
	exec(t, p.db, "DELETE FROM audit_events WHERE id > 20")
	exec(t, p.db, "DELETE FROM audit_checkpoints WHERE event_id > 20")
	if err := os.WriteFile(p.file, []byte(lines[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	if v := p.verify(t); !v.OK {
		t.Fatalf("without the copy the cut is not seen (that is why a copy is kept elsewhere): %+v %+v", v, v.FirstBad)
	}
	for name, copyText := range map[string]string{"whole file": string(kept), "last line only": lines[1]} {
		cps, err := ParseCheckpoints(strings.NewReader(copyText))
		if err != nil {
			t.Fatal(err)
		}
		v := p.verify(t, cps...)
		if v.OK || v.FirstBad.Problem != ProblemTruncated || !strings.Contains(v.FirstBad.Detail, "the trail ends at entry 20") {
			t.Errorf("%s: Verify = %+v %+v, want truncated at 20", name, v, v.FirstBad)
		}
	}
	// A copy signed by another key is refused, not trusted.
	other := newCheckpointed(t, 40, 0, time.Now())
	forged, err := readCheckpointFile(other.file)
	if err != nil {
		t.Fatal(err)
	}
	if v := p.verify(t, forged...); v.OK || v.FirstBad.Problem != ProblemBadCheckpoint {
		t.Errorf("a checkpoint of another key: %+v %+v", v, v.FirstBad)
	}
}

func TestCheckpointOnlyWhenTheTrailMoved(t *testing.T) {
	ctx := context.Background()
	p := newCheckpointed(t, 3, 0, time.Now())
	if _, ok, err := p.c.Checkpoint(ctx); ok || err != nil {
		t.Errorf("Checkpoint of an unchanged head = %v, %v; want none", ok, err)
	}
	p.login(t)
	cp, ok, err := p.c.Checkpoint(ctx)
	if !ok || err != nil || cp.EventID != 4 || cp.Gateway != "gw1" {
		t.Errorf("Checkpoint after an event = %+v, %v, %v", cp, ok, err)
	}
	if err := CheckSignature(p.c.cfg.Key.Public(), cp); err != nil {
		t.Error(err)
	}
	// Every N events wake the checkpointer.
	c := NewCheckpointer(CheckpointConfig{Store: p.st, Key: p.c.cfg.Key, Every: 3})
	l := New(p.st, quietLog())
	l.SetCheckpointer(c)
	for i := range 3 {
		if len(c.kick) != 0 {
			t.Fatalf("woken after %d events, want after 3", i)
		}
		p.login(t)
		_ = l.Write(ctx, store.AuditEvent{Type: LoginSuccess})
	}
	if len(c.kick) != 1 {
		t.Error("not woken after 3 events")
	}
}

// The audit key is made once per store, sealed under the master key, and
// loaded (not made again) by the next gateway; another master key cannot
// open it, and a swapped public key is refused.
func TestAuditKeyLoadOrCreate(t *testing.T) {
	ctx := context.Background()
	st, db := newTrail(t, 0)
	v := testVault(t)
	k1, created, err := LoadOrCreateKey(ctx, st, v)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateKey = %v, %v", created, err)
	}
	k2, created, err := LoadOrCreateKey(ctx, st, v)
	if err != nil || created || !bytes.Equal(k1.Public(), k2.Public()) {
		t.Fatalf("second LoadOrCreateKey = %v, %v; want the same key loaded", created, err)
	}
	pub, err := ParsePublicKey(k1.AuthorizedKey())
	if err != nil || !ed25519.PublicKey(pub).Equal(k1.Public()) || !strings.HasPrefix(k1.AuthorizedKey(), "ssh-ed25519 ") {
		t.Errorf("AuthorizedKey %q does not parse back: %v", k1.AuthorizedKey(), err)
	}
	if _, _, err := LoadOrCreateKey(ctx, st, testVault(t)); err == nil {
		t.Error("another master key opened the audit key")
	}
	other := testKey(t)
	exec(t, db, "UPDATE audit_key SET public_key = $1", other.AuthorizedKey())
	if _, _, err := LoadOrCreateKey(ctx, st, v); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Errorf("LoadOrCreateKey with a swapped public key = %v", err)
	}
}

func FuzzParseCheckpoints(f *testing.F) {
	good := string(MarshalCheckpoint(store.AuditCheckpoint{Kind: store.CheckpointHead, EventID: 7, Hash: strings.Repeat("ab", 32),
		Time: trailBase, Gateway: "gw1", Signature: strings.Repeat("A", 86) + "=="}))
	for _, seed := range []string{
		good, good + good, "\n\n" + good, strings.TrimSuffix(good, "\n"), "",
		`{"kind":"retention","event_id":1,"hash":"` + strings.Repeat("0", 64) + `","time":"2026-01-02T03:04:05Z","gateway":"","signature":"x"}`,
		`{"kind":"head","event_id":-1}`, `{"kind":"head","event_id":1,"extra":1}`, `{}{}`, "null", "[]",
		`{"kind":"head","event_id":9223372036854775808}`, strings.Repeat("{", 5000),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		cps, err := ParseCheckpoints(strings.NewReader(in))
		if err != nil {
			return
		}
		// Whatever parses writes back to lines that parse to the same.
		var out []byte
		for _, cp := range cps {
			if cp.EventID <= 0 || len(cp.Hash) != 64 || cp.Signature == "" || cp.Time.IsZero() {
				t.Fatalf("parsed an invalid checkpoint %+v", cp)
			}
			out = append(out, MarshalCheckpoint(cp)...)
		}
		again, err := ParseCheckpoints(bytes.NewReader(out))
		if err != nil || len(again) != len(cps) {
			t.Fatalf("round trip: %v, %d of %d", err, len(again), len(cps))
		}
		for i := range cps {
			if !again[i].Time.Equal(cps[i].Time) || again[i].Hash != cps[i].Hash || again[i].EventID != cps[i].EventID {
				t.Fatalf("round trip changed %+v to %+v", cps[i], again[i])
			}
		}
	})
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A checkpoint reaches the syslog collector as one RFC 5424 message whose
// text is the checkpoint line, which `audit verify --checkpoint` reads back.
func TestCheckpointToSyslog(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	sink, err := NewSyslog("udp://"+pc.LocalAddr().String(), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sink.Run(ctx)
	st, _ := newTrail(t, 3)
	c := NewCheckpointer(CheckpointConfig{Store: st, Key: newKey(t, st), Gateway: "gw1", Syslog: sink})
	cp, ok, err := c.Checkpoint(ctx)
	if !ok || err != nil {
		t.Fatalf("Checkpoint = %v, %v", ok, err)
	}
	buf := make([]byte, 4096)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(buf[:n])
	prefix := "<86>1 "
	i := strings.Index(msg, " audit.checkpoint - ")
	if !strings.HasPrefix(msg, prefix) || i < 0 {
		t.Fatalf("syslog message %q", msg)
	}
	cps, err := ParseCheckpoints(strings.NewReader(msg[i+len(" audit.checkpoint - "):]))
	if err != nil || len(cps) != 1 || cps[0].EventID != 3 || CheckSignature(c.cfg.Key.Public(), cps[0]) != nil || cps[0].Signature != cp.Signature {
		t.Errorf("checkpoint from syslog = %+v, %v", cps, err)
	}
}

// Without a key, checkpoints cannot vouch for anything: refused, not a panic.
func TestVerifyWithoutKeyRefusesCheckpoints(t *testing.T) {
	p := newCheckpointed(t, 3, 0, time.Now())
	cp, err := p.st.LatestCheckpoint(context.Background(), store.CheckpointHead)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(context.Background(), p.st, nil, []store.AuditCheckpoint{cp})
	if err != nil || v.OK || v.FirstBad.Problem != ProblemBadCheckpoint {
		t.Errorf("Verify without a key = %+v %+v, %v", v, v.FirstBad, err)
	}
}

// lateStore answers its first GetAuditKey as if no key were stored yet: a
// gateway that lost the race to make the key.
type lateStore struct {
	store.Store
	asked bool
}

func (s *lateStore) GetAuditKey(ctx context.Context) (store.AuditKey, error) {
	if !s.asked {
		s.asked = true
		return store.AuditKey{}, store.ErrNotFound
	}
	return s.Store.GetAuditKey(ctx)
}

func TestAuditKeyRaceLoadsTheWinner(t *testing.T) {
	ctx := context.Background()
	st, _ := newTrail(t, 0)
	v := testVault(t)
	first, _, err := LoadOrCreateKey(ctx, st, v)
	if err != nil {
		t.Fatal(err)
	}
	second, created, err := LoadOrCreateKey(ctx, &lateStore{Store: st}, v)
	if err != nil || created || !first.Public().Equal(second.Public()) {
		t.Fatalf("the gateway that lost the race = %v, created %v; want the winner's key", err, created)
	}
}
