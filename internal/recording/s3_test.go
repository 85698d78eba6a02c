package recording_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/objstore"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
)

// s3World is a real S3 server, one database and the object store config
// gateways share.
type s3World struct {
	s3  *testenv.S3
	st  store.Store
	cfg objstore.Config
	db  string
}

func newS3World(t *testing.T) *s3World {
	t.Helper()
	s3 := testenv.StartS3(t, "rec")
	t.Setenv("AWS_ACCESS_KEY_ID", s3.Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.Secret)
	cfg, err := objstore.ParseURL(s3.URL("rec", "gw"))
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "portcullis.db")
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &s3World{s3: s3, st: st, cfg: cfg, db: db}
}

// objectPath is where the S3 server keeps object name on its disk.
func (w *s3World) objectPath(name string) string {
	return filepath.Join(w.s3.Dir, "rec", "gw", name)
}

// gateway is a Manager recording into dir, shipping to the shared store,
// running until the test ends or its stop is called.
type gateway struct {
	m    *recording.Manager
	stop func()
}

func (w *s3World) gateway(t *testing.T, id, dir string) *gateway {
	t.Helper()
	return w.gatewayLog(t, id, dir, nil, nil)
}

// gatewayLog is gateway with a logger, and a setup run before Run.
func (w *s3World) gatewayLog(t *testing.T, id, dir string, log *slog.Logger, setup func(*recording.Manager)) *gateway {
	t.Helper()
	ctx := context.Background()
	m, err := recording.NewManager(dir, w.st, log)
	if err != nil {
		t.Fatal(err)
	}
	m.SetGateway(id)
	o, err := objstore.Open(ctx, w.cfg)
	if err != nil && !errors.Is(err, objstore.ErrUnavailable) {
		t.Fatal(err)
	}
	m.SetObjectStore(o)
	if _, err := m.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(m)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.Run(runCtx)
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return &gateway{m: m, stop: stop}
}

// eventually polls cond until it holds, failing after a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// syncBuf is a bytes.Buffer safe for one writer and a polling reader.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestObjectStoreShared records a session on gateway A and, through the
// shared store and bucket only, watches it live, plays it, checks it and
// deletes it on gateway B.
func TestObjectStoreShared(t *testing.T) {
	w := newS3World(t)
	ctx := context.Background()
	a := w.gateway(t, "gw-a", filepath.Join(t.TempDir(), "a"))
	b := w.gateway(t, "gw-b", filepath.Join(t.TempDir(), "b"))

	r, err := a.m.Start(ctx, recording.Meta{ID: "s1", User: "alice", Target: "web1", Account: "root", Action: "shell", Term: "xterm"})
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("before the watcher\r\n"))
	eventually(t, "the first segment", func() bool { return exists(w.objectPath("s1.seg/0000000000000000")) })

	// B follows from the start, and another watcher from now on.
	var all, now syncBuf
	followed := make(chan error, 2)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { followed <- b.m.Follow(fctx, "s1", true, &all) }()
	go func() { followed <- b.m.Follow(fctx, "s1", false, &now) }()
	eventually(t, "the live watcher on B to see the first line", func() bool { return strings.Contains(all.String(), "before the watcher") })
	eventually(t, "the header on B", func() bool { return strings.Count(now.String(), "\n") >= 1 })
	r.Output([]byte("while watched\r\n"))
	eventually(t, "the live watchers on B to see the second line", func() bool {
		return strings.Contains(all.String(), "while watched") && strings.Contains(now.String(), "while watched")
	})
	if strings.Contains(now.String(), "before the watcher") {
		t.Errorf("a watcher from now on got what was recorded before it came: %q", now.String())
	}
	r.Output([]byte("last words\r\n"))
	size, sum, err := r.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-followed; err != nil {
			t.Fatalf("Follow on B: %v", err)
		}
	}
	if !strings.Contains(now.String(), "last words") {
		t.Errorf("the watcher missed the end: %q", now.String())
	}

	// Shipped whole, segments and the local copy gone.
	eventually(t, "the whole recording in the bucket", func() bool {
		return exists(w.objectPath("s1.cast")) && !exists(filepath.Join(a.m.Dir(), "s1.cast")) && !exists(w.objectPath("s1.seg"))
	})
	obj, err := os.ReadFile(w.objectPath("s1.cast"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(obj)
	if int64(len(obj)) != size || hex.EncodeToString(h[:]) != sum {
		t.Fatalf("object: %d bytes %x; recording ended with %d bytes %s", len(obj), h, size, sum)
	}
	if all.String() != string(obj) {
		t.Errorf("the live watcher from the start saw\n%q\nthe recording is\n%q", all.String(), obj)
	}

	// B plays and checks it.
	f, rec, in, err := b.m.OpenChecked(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if in.State != recording.IntegrityOK || !bytes.Equal(got, obj) || rec.SHA256 != sum {
		t.Fatalf("OpenChecked on B: %+v, %d bytes, stored %s", in, len(got), rec.SHA256)
	}
	if bad, err := b.m.Check(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("Check of a sound store: %+v %v", bad, err)
	}

	// Changed in the bucket: found on read and by Check.
	if err := os.WriteFile(w.objectPath("s1.cast"), bytes.Replace(obj, []byte("last words"), []byte("LAST WORDS"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	f, _, in, err = b.m.OpenChecked(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if in.State != recording.IntegrityTampered {
		t.Errorf("a changed object reads as %+v", in)
	}
	bad, err := b.m.Check(ctx)
	if err != nil || len(bad) != 1 || bad[0].ID != "s1" || bad[0].Problem != recording.CheckTampered {
		t.Errorf("Check of a changed object: %+v %v", bad, err)
	}

	// Gone from the bucket: Check says missing.
	if err := os.Remove(w.objectPath("s1.cast")); err != nil {
		t.Fatal(err)
	}
	bad, err = a.m.Check(ctx)
	if err != nil || len(bad) != 1 || bad[0].ID != "s1" || bad[0].Problem != recording.CheckMissing {
		t.Errorf("Check of a missing object: %+v %v", bad, err)
	}

	// B deletes a recording A made, objects included.
	r2, err := a.m.Start(ctx, recording.Meta{ID: "s2", User: "alice", Target: "web1", Account: "root", Action: "shell"})
	if err != nil {
		t.Fatal(err)
	}
	r2.Output([]byte("to be deleted\r\n"))
	if _, _, err := r2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "s2 in the bucket", func() bool { return exists(w.objectPath("s2.cast")) })
	ids, err := b.m.DeleteOlderThan(ctx, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[s1 s2]" && fmt.Sprint(ids) != "[s2 s1]" {
		t.Errorf("retention on B deleted %v", ids)
	}
	if exists(w.objectPath("s2.cast")) {
		t.Error("retention left the object")
	}
	if _, err := w.st.GetRecording(ctx, "s2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("retention left the row: %v", err)
	}

	// The trail says s2 and s3 were recorded, with their hashes, and that
	// s2 was deleted; s3's row is gone without a word: Check names it.
	for _, ev := range []store.AuditEvent{
		{Type: audit.SessionEnd, SessionID: "s2", Detail: map[string]any{"recording_sha256": "ab12"}},
		{Type: audit.RecordingDelete, SessionID: "s2"},
		{Type: audit.SessionEnd, SessionID: "s3", Detail: map[string]any{"recording_sha256": "cd34"}},
		{Type: audit.SessionEnd, SessionID: "s4"}, // not recorded: no hash
	} {
		ev.Outcome, ev.Message, ev.Time = audit.Info, "test", time.Now()
		if _, err := w.st.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	bad, err = b.m.Check(ctx)
	if err != nil || len(bad) != 1 || bad[0].ID != "s3" || bad[0].Problem != recording.CheckMissing || bad[0].State != "unlisted" ||
		!strings.Contains(bad[0].Detail, "no recording.delete event") {
		t.Errorf("Check with a row deleted behind the gateway's back: %+v %v", bad, err)
	}
}

// TestObjectStoreDiskLost loses the recording gateway's disk mid-session:
// what was shipped plays from the segments on another gateway.
func TestObjectStoreDiskLost(t *testing.T) {
	w := newS3World(t)
	ctx := context.Background()
	dirA := filepath.Join(t.TempDir(), "a")
	a := w.gateway(t, "gw-a", dirA)
	b := w.gateway(t, "gw-b", filepath.Join(t.TempDir(), "b"))
	r, err := a.m.Start(ctx, recording.Meta{ID: "lost", User: "alice", Target: "web1", Account: "root", Action: "shell"})
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("shipped line\r\n"))
	eventually(t, "a segment with the line", func() bool {
		segs, _ := filepath.Glob(w.objectPath("lost.seg/*"))
		for _, s := range segs {
			if b, _ := os.ReadFile(s); bytes.Contains(b, []byte("shipped line")) {
				return true
			}
		}
		return false
	})
	a.stop()                                   // the gateway dies...
	if err := os.RemoveAll(dirA); err != nil { // ...with its disk
		t.Fatal(err)
	}
	rc, rec, err := b.m.Open(ctx, "lost")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if rec.State != store.RecordingActive || !bytes.Contains(got, []byte("shipped line")) {
		t.Fatalf("B reads %s recording %q", rec.State, got)
	}
	rd, err := recording.NewReader(bytes.NewReader(got))
	if err != nil {
		t.Fatalf("the segments are not a recording: %v", err)
	}
	for {
		if _, err := rd.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("the segments hold a broken event: %v", err)
		}
	}
	// A segment in the middle lost: reading says which bytes.
	if err := os.WriteFile(w.objectPath("lost.seg/0000000000009999"), []byte("[1.0, \"o\", \"x\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.m.Open(ctx, "lost"); err == nil || !strings.Contains(err.Error(), "missing from the object store") {
		t.Errorf("Open with a gap between segments: %v", err)
	}
}

// TestObjectStoreOutage stops the object store for 30 s under a live
// session: the session goes on, nothing is lost, and all is shipped once
// the store is back. A recording ended while the store was down and the
// gateway restarted is shipped from the spool by the next run.
func TestObjectStoreOutage(t *testing.T) {
	w := newS3World(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a")
	a := w.gateway(t, "gw-a", dir)
	var failures syncBuf
	r, err := a.m.Start(ctx, recording.Meta{ID: "out", User: "alice", Target: "web1", Account: "root", Action: "shell",
		OnFailure: func(err error) { fmt.Fprintln(&failures, err) }})
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("line 0\r\n"))
	eventually(t, "the first segment", func() bool { return exists(w.objectPath("out.seg/0000000000000000")) })
	w.s3.Stop()
	end := time.Now().Add(30 * time.Second)
	n := 1
	for ; time.Now().Before(end); n++ {
		r.Output(fmt.Appendf(nil, "line %d\r\n", n))
		time.Sleep(100 * time.Millisecond)
	}
	w.s3.Start()
	// Once the store is back, what was written during the outage is
	// shipped as segments while the session still runs.
	last := fmt.Appendf(nil, "line %d\\r\\n", n-1)
	eventually(t, "the outage's output shipped as segments", func() bool {
		segs, _ := filepath.Glob(w.objectPath("out.seg/*"))
		var all []byte
		for _, s := range segs {
			b, _ := os.ReadFile(s)
			all = append(all, b...)
		}
		return bytes.Contains(all, last) && bytes.Contains(all, []byte("line 1\\r\\n"))
	})
	r.Output(fmt.Appendf(nil, "line %d\r\n", n))
	size, sum, err := r.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the recording shipped after the outage", func() bool {
		return exists(w.objectPath("out.cast")) && !exists(filepath.Join(dir, "out.cast")) && a.m.SpoolPending() == 0
	})
	obj, err := os.ReadFile(w.objectPath("out.cast"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(obj)
	if int64(len(obj)) != size || hex.EncodeToString(h[:]) != sum {
		t.Fatalf("object: %d bytes; recording ended with %d bytes %s", len(obj), size, sum)
	}
	for i := 0; i <= n; i++ {
		if !bytes.Contains(obj, fmt.Appendf(nil, "line %d\\r\\n", i)) {
			t.Fatalf("line %d lost", i)
		}
	}
	if failures.String() != "" {
		t.Errorf("the outage was reported as a recording failure: %s", failures.String())
	}

	// Down again: a recording ends, the gateway stops; the next run ships it.
	w.s3.Stop()
	r2, err := a.m.Start(ctx, recording.Meta{ID: "spooled", User: "alice", Target: "web1", Account: "root", Action: "shell"})
	if err != nil {
		t.Fatal(err)
	}
	r2.Output([]byte("kept in the spool\r\n"))
	_, sum2, err := r2.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.stop()
	if a.m.SpoolPending() != 1 || !exists(filepath.Join(dir, "spooled.cast")) {
		t.Fatalf("spool after a stop with the store down: %d pending", a.m.SpoolPending())
	}
	w.s3.Start()
	a2 := w.gateway(t, "gw-a", dir)
	eventually(t, "the spool shipped by the next run", func() bool {
		return exists(w.objectPath("spooled.cast")) && !exists(filepath.Join(dir, "spooled.cast"))
	})
	f, _, in, err := a2.m.OpenChecked(ctx, "spooled")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if in.State != recording.IntegrityOK || in.Got != sum2 {
		t.Errorf("spooled recording reads as %+v, want %s", in, sum2)
	}
}

// TestObjectStoreComposed ends a recording whose segments are large (a
// flood of output): the store composes the whole object from them and
// the tail, byte for byte the file, without a second upload.
func TestObjectStoreComposed(t *testing.T) {
	w := newS3World(t)
	ctx := context.Background()
	var logs syncBuf
	// Shipped when the test says, so that each segment is one flood.
	a := w.gatewayLog(t, "gw-a", filepath.Join(t.TempDir(), "a"), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		func(m *recording.Manager) { recording.SetShipEvery(m, time.Hour) })
	r, err := a.m.Start(ctx, recording.Meta{ID: "flood", User: "alice", Target: "web1", Account: "root", Action: "exec"})
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("0123456789", 10) + "\n")
	flood := func() {
		for range (6 << 20) / len(line) {
			r.Output(line)
		}
	}
	segments := func() []os.DirEntry {
		ents, _ := os.ReadDir(w.objectPath("flood.seg"))
		return ents
	}
	local := filepath.Join(a.m.Dir(), "flood.cast")
	var size int64
	for i := 1; i <= 2; i++ {
		flood()
		eventually(t, "the flood in the file", func() bool {
			fi, err := os.Stat(local)
			if err == nil && fi.Size() > size+6<<20 {
				size = fi.Size()
				return true
			}
			return false
		})
		recording.ShipNow(a.m)
		if n := len(segments()); n != i {
			t.Fatalf("%d segments after %d shipments", n, i)
		}
	}
	r.Output([]byte("the tail\n"))
	_, sum, err := r.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the whole recording", func() bool { return exists(w.objectPath("flood.cast")) && !exists(w.objectPath("flood.seg")) })
	obj, err := os.ReadFile(w.objectPath("flood.cast"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(obj)
	if hex.EncodeToString(h[:]) != sum || !bytes.HasSuffix(obj, []byte("the tail\\n\"]\n")) {
		t.Fatalf("composed object: %d bytes, sha256 %x, want %s; ends %q", len(obj), h, sum, obj[max(0, len(obj)-40):])
	}
	if strings.Contains(logs.String(), "not composed") {
		t.Errorf("uploaded whole instead of composed:\n%s", logs.String())
	}
}
