package cli_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the driver, to tamper with the store behind its back

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/cli"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
)

// recGateway is a real API with a real store and recording manager on a
// unix socket, and a fake session controller.
type recGateway struct {
	*gateway
	st       *sqlite.Store
	mgr      *recording.Manager
	sessions *fakeSessions
	dbPath   string
	// checkpoints signs the trail's head into the store and
	// DIR/audit.checkpoints, as the gateway does.
	checkpoints *audit.Checkpointer
}

func startRecGateway(t *testing.T) *recGateway {
	t.Helper()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	dbPath := filepath.Join(dir, "portcullis.db")
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	mgr, err := recording.NewManager(filepath.Join(dir, "recordings"), st, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	mgrDone := make(chan struct{})
	go func() {
		defer close(mgrDone)
		mgr.Run(runCtx)
	}()
	sessions := &fakeSessions{}
	v, _, err := vault.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := audit.LoadOrCreateKey(ctx, st, v)
	if err != nil {
		t.Fatal(err)
	}
	auditLog := audit.New(st, log)
	cps := audit.NewCheckpointer(audit.CheckpointConfig{Store: st, Key: key, Gateway: "gw1",
		File: filepath.Join(dir, "audit.checkpoints"), Audit: auditLog, Log: log})
	h := api.WithLocalAdmin(api.New(api.Config{Store: st, Audit: auditLog, Log: log, Sessions: sessions, Recordings: mgr,
		Checkpoints: cps}))
	ln, err := net.Listen("unix", filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
		cancel()
		<-mgrDone
		st.Close()
	})
	return &recGateway{gateway: &gateway{dataDir: dir}, st: st, mgr: mgr, sessions: sessions, dbPath: dbPath, checkpoints: cps}
}

// fakeSessions is a livesession.Controller over a fixed list.
type fakeSessions struct {
	mu      sync.Mutex
	running []livesession.Session
	kills   []string // "ID BY MESSAGE"
}

func (f *fakeSessions) List() []livesession.Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.running)
}

func (f *fakeSessions) Kill(id, by, message string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.running, func(s livesession.Session) bool { return s.ID == id })
	if i < 0 {
		return livesession.ErrNotFound
	}
	f.running = slices.Delete(f.running, i, i+1)
	f.kills = append(f.kills, id+" "+by+" "+message)
	return nil
}

// record starts a recording and writes output to it; the caller closes it.
func (g *recGateway) record(t *testing.T, id, user, target string, output ...string) *recording.Recorder {
	t.Helper()
	r, err := g.mgr.Start(context.Background(), recording.Meta{
		ID: id, User: user, Target: target, Account: "svc", Source: "192.0.2.7:50000",
		Action: "shell", Width: 100, Height: 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range output {
		r.Output([]byte(o))
	}
	return r
}

// tamper runs one statement on the database file, as an intruder with
// access to it would.
func (g *recGateway) tamper(t *testing.T, stmt string) {
	t.Helper()
	db, err := sql.Open("sqlite", g.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatal(err)
	}
}

func TestCLIRecordings(t *testing.T) {
	g := startRecGateway(t)
	ctx := context.Background()
	r1 := g.record(t, "rec1", "alice", "web1", "$ sudo systemctl restart nginx\r\n", "\x1b[32mrestarted\x1b[0m\r\n")
	if _, _, err := r1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r2 := g.record(t, "rec2", "bob", "db1", "$ psql\r\n")
	defer r2.Close(ctx)

	t.Run("ls", func(t *testing.T) {
		r := g.run(t, "", "recordings", "ls")
		r.want(t, 0, []string{"ID", "STATE", "DURATION", "INDEX", "rec1", "ended", "alice", "web1", "rec2", "active", "bob", "live"}, nil)
		if strings.Index(r.stdout, "rec2") > strings.Index(r.stdout, "rec1") {
			t.Errorf("not newest first:\n%s", r.stdout)
		}
		g.run(t, "", "recordings", "ls", "--user", "alice").want(t, 0, []string{"rec1"}, nil)
		if r := g.run(t, "", "recordings", "ls", "--state", "active"); strings.Contains(r.stdout, "rec1") || !strings.Contains(r.stdout, "rec2") {
			t.Errorf("--state active:\n%s", r.stdout)
		}
		g.run(t, "", "recordings", "ls", "--target", "nowhere").want(t, 0, nil, []string{"No recordings found."})
		g.run(t, "", "recordings", "ls", "--since", "2200-01-01").want(t, 0, nil, []string{"No recordings found."})
		g.run(t, "", "recordings", "ls", "--state", "paused").want(t, 2, nil, []string{"--state"})
		g.run(t, "", "recordings", "ls", "--since", "soon").want(t, 2, nil, []string{"--since"})
		g.run(t, "", "recordings", "ls", "extra").want(t, 2, nil, []string{"unexpected argument"})
		// A page at a time, saying how to see the next.
		g.run(t, "", "recordings", "ls", "--limit", "1").want(t, 0, []string{"rec2"}, []string{"more exist: see older ones with --before rec2"})
		if r := g.run(t, "", "recordings", "ls", "--limit", "1", "--before", "rec2"); !strings.Contains(r.stdout, "rec1") ||
			strings.Contains(r.stdout, "rec2") || strings.Contains(r.stderr, "more exist") {
			t.Errorf("--before rec2:\n%s\n%s", r.stdout, r.stderr)
		}
		g.run(t, "", "recordings", "ls", "--before", "nosuch").want(t, 2, nil, []string{`before: no recording "nosuch"`})

		r = g.run(t, "", "recordings", "ls", "--json")
		r.want(t, 0, nil, nil)
		var recs []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &recs); err != nil {
			t.Fatalf("not a JSON array: %v\n%s", err, r.stdout)
		}
		if len(recs) != 2 || recs[0]["id"] != "rec2" || recs[0]["state"] != "active" || recs[1]["state"] != "ended" {
			t.Errorf("--json: %v", recs)
		}
		// rec2 runs: indexed live. rec1 ended with everything indexed
		// (nothing was over the budget).
		if recs[0]["index"] != "live" || recs[1]["index"] != "complete" {
			t.Errorf("--json index states: %v, %v; want live, complete", recs[0]["index"], recs[1]["index"])
		}
		r = g.run(t, "", "recordings", "ls", "--json", "--target", "nowhere")
		if strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("empty --json: %q", r.stdout)
		}
	})

	t.Run("play", func(t *testing.T) {
		r := g.run(t, "", "recordings", "play", "rec1", "--speed", "1000")
		r.want(t, 0, []string{"$ sudo systemctl restart nginx\r\n\x1b[32mrestarted\x1b[0m\r\n"}, nil)
		g.run(t, "", "recordings", "play", "rec1", "--at", "3600", "--idle-limit", "0.5").want(t, 0, []string{"restarted"}, nil)
		g.run(t, "", "recordings", "play", "nope").want(t, 1, nil, []string{`recording "nope" not found`})
		g.run(t, "", "recordings", "play", "rec1", "--speed", "0").want(t, 2, nil, []string{"--speed"})
		g.run(t, "", "recordings", "play", "rec1", "--at", "-1").want(t, 2, nil, []string{"--at"})
		g.run(t, "", "recordings", "play", "rec1", "--idle-limit", "x").want(t, 2, nil, []string{"idle-limit"})
		g.run(t, "", "recordings", "play").want(t, 2, nil, []string{"recording ID is required"})
	})

	// A file transfer is listed as such and played as its operations, one
	// line each, never as the channel's bytes.
	t.Run("file-transfer", func(t *testing.T) {
		x, err := g.mgr.Start(ctx, recording.Meta{ID: "xfer1", User: "alice", Target: "web1", Account: "svc",
			Action: "file-transfer", Command: "sftp", Width: 80, Height: 24})
		if err != nil {
			t.Fatal(err)
		}
		x.Output([]byte("\x00\x00\x00\x05RAW-PACKET"))
		x.FileOp(recording.FileOp{Op: "upload", Path: "/srv/in/report.csv", Bytes: 1234})
		x.FileOp(recording.FileOp{Op: "remove", Path: "/srv/in/\x1b[2Jold", Error: "Permission denied"})
		if _, _, err := x.Close(ctx); err != nil {
			t.Fatal(err)
		}
		g.run(t, "", "recordings", "ls", "--user", "alice").want(t, 0, []string{"KIND", "file-transfer", "terminal"}, nil)
		r := g.run(t, "", "recordings", "play", "xfer1")
		r.want(t, 0, []string{"upload  /srv/in/report.csv  1234 bytes\n", `remove  "/srv/in/\x1b[2Jold"  error: "Permission denied"`}, nil)
		if strings.Contains(r.stdout, "RAW-PACKET") || strings.Contains(r.stdout, "\x1b") {
			t.Errorf("play printed channel bytes or a raw escape:\n%q", r.stdout)
		}
		if err := g.mgr.Delete(ctx, "xfer1"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("download", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		var meta api.Recording
		r := g.run(t, "", "recordings", "ls", "--json", "--user", "alice")
		var list []api.Recording
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 {
			t.Fatalf("ls: %v %s", err, r.stdout)
		}
		meta = list[0]

		g.run(t, "", "recordings", "download", "rec1").want(t, 0, []string{"recording rec1 saved to rec1.cast", meta.SHA256}, nil)
		b, err := os.ReadFile(filepath.Join(dir, "rec1.cast"))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != meta.SHA256 {
			t.Errorf("saved file's hash differs from the recording's")
		}
		if fi, _ := os.Stat(filepath.Join(dir, "rec1.cast")); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
		g.run(t, "", "recordings", "download", "rec1").want(t, 2, nil, []string{"rec1.cast exists", "--force"})
		g.run(t, "", "recordings", "download", "rec1", "--force").want(t, 0, []string{"saved to rec1.cast"}, nil)
		g.run(t, "", "recordings", "download", "rec1", "-o", filepath.Join(dir, "copy.cast")).want(t, 0, []string{"copy.cast"}, nil)
		// A pipe or a device is written to, never replaced: renaming over
		// -o /dev/null --force once turned /dev/null into a regular file.
		fifo := filepath.Join(dir, "pipe")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		got := make(chan []byte, 1)
		go func() {
			b, _ := os.ReadFile(fifo) // opens when the CLI opens it for writing
			got <- b
		}()
		g.run(t, "", "recordings", "download", "rec1", "-o", fifo, "--force").want(t, 0, nil, nil)
		select {
		case fb := <-got:
			if string(fb) != string(b) {
				t.Errorf("-o FIFO delivered %d bytes, want the recording's %d", len(fb), len(b))
			}
		case <-time.After(10 * time.Second):
			// The reader still waits for a writer: the CLI wrote elsewhere.
			t.Errorf("-o FIFO --force wrote nothing to the pipe")
		}
		if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
			t.Errorf("-o FIFO --force replaced the pipe: %v %v", fi.Mode(), err)
		}
		r = g.run(t, "", "recordings", "download", "rec1", "-o", "-")
		r.want(t, 0, nil, []string{"saved to standard output"})
		if r.stdout != string(b) {
			t.Errorf("-o - wrote something else than the file")
		}
		// An active recording downloads as far as it is written; there
		// is no final hash to check yet.
		g.run(t, "", "recordings", "download", "rec2").want(t, 0, []string{"saved to rec2.cast"}, nil)
		g.run(t, "", "recordings", "download", "nope").want(t, 1, nil, []string{`recording "nope" not found`})
		if _, err := os.Stat(filepath.Join(dir, "nope.cast")); err == nil {
			t.Errorf("a failed download left a file")
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".part") {
				t.Errorf("temporary file left: %s", e.Name())
			}
		}

		// A recording file changed after it ended no longer matches the
		// hash stored (and audited) then.
		path := filepath.Join(g.mgr.Dir(), "rec1.cast")
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		edited := bytes.Replace(orig, []byte("nginx"), []byte("httpd"), 1)
		if err := os.WriteFile(path, edited, 0o600); err != nil {
			t.Fatal(err)
		}
		g.run(t, "", "recordings", "download", "rec1", "-o", "edited.cast").want(t, 1, nil, []string{"was tampered with", "it was changed since"})
		// recordings check finds it too; an active one (rec2) is not judged.
		r = g.run(t, "", "recordings", "check")
		r.want(t, 1, []string{"PROBLEM", "rec1", "tampered"}, []string{"1 recordings are missing or changed"})
		if strings.Contains(r.stdout, "rec2") {
			t.Errorf("check judged an active recording:\n%s", r.stdout)
		}
		r = g.run(t, "", "recordings", "check", "--json")
		var found []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &found); err != nil || len(found) != 1 || found[0]["id"] != "rec1" || found[0]["problem"] != "tampered" ||
			!strings.Contains(found[0]["detail"].(string), "it was changed since") {
			t.Errorf("check --json: %v %s", err, r.stdout)
		}
		if err := os.WriteFile(path, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		g.run(t, "", "recordings", "check").want(t, 0, nil, []string{"Every recording is what was recorded."})
		g.run(t, "", "recordings", "check", "extra").want(t, 2, nil, []string{"takes no arguments"})
		if err := os.Rename(path, path+".moved"); err != nil {
			t.Fatal(err)
		}
		g.run(t, "", "recordings", "check").want(t, 1, []string{"rec1", "missing"}, nil)
		if err := os.Rename(path+".moved", path); err != nil {
			t.Fatal(err)
		}

		var downloads int
		evs, err := g.st.ListAudit(ctx, store.AuditFilter{Type: audit.RecordingDownload})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.SessionID == "rec1" && ev.Detail["purpose"] == "download" {
				downloads++
			}
		}
		if downloads != 6 {
			t.Errorf("%d downloads of rec1 audited, want 6", downloads)
		}
	})

	t.Run("search", func(t *testing.T) {
		r := g.run(t, "", "recordings", "search", "systemctl", "restart")
		r.want(t, 0, []string{"ID", "OFFSET", "SNIPPET", "rec1", "alice", "web1", "restart"},
			[]string{"play with: portcullis recordings play ID --at OFFSET"})
		r = g.run(t, "", "recordings", "search", `"restart nginx"`, "--json")
		var hits []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &hits); err != nil {
			t.Fatalf("not a JSON array: %v\n%s", err, r.stdout)
		}
		if len(hits) != 1 || hits[0]["id"] != "rec1" || hits[0]["offset"] == nil || hits[0]["snippet"] == nil {
			t.Errorf("--json: %v", hits)
		}
		g.run(t, "", "recordings", "search", "nothingsuchhere").want(t, 0, nil, []string{"No recordings match."})
		g.run(t, "", "recordings", "search").want(t, 2, nil, []string{"QUERY is required"})
		g.run(t, "", "recordings", "search", "--").want(t, 2, nil, []string{"QUERY is required"})
		g.run(t, "", "recordings", "search", "...").want(t, 2, nil, []string{"no words"})
	})

	t.Run("rm", func(t *testing.T) {
		g.run(t, "", "recordings", "rm", "--yes", "rec1").want(t, 0, []string{"recording rec1 deleted"}, nil)
		g.run(t, "", "recordings", "rm", "rec1", "-y").want(t, 1, nil, []string{`recording "rec1" not found`})
		g.run(t, "", "recordings", "rm").want(t, 2, nil, []string{"recording ID is required"})
		g.run(t, "", "recordings", "rm", "a", "b").want(t, 2, nil, []string{"unexpected argument"})
		g.run(t, "", "recordings", "search", "nginx").want(t, 0, nil, []string{"No recordings match."})
		g.run(t, "", "audit", "ls", "--type", "recording.delete").want(t, 0, []string{"recording.delete", "local-admin", "recording rec1 of alice on web1 deleted"}, nil)
	})
}

func TestCLISessions(t *testing.T) {
	g := startRecGateway(t)
	g.run(t, "", "sessions", "ls").want(t, 0, nil, []string{"No sessions running."})
	if r := g.run(t, "", "sessions", "ls", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("empty --json: %q", r.stdout)
	}
	started := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	g.sessions.mu.Lock()
	g.sessions.running = []livesession.Session{
		{ID: "s1", User: "alice", Target: "web1", Account: "svc", Source: "192.0.2.7:50000", Action: "shell", Started: started, Recorded: true},
		{ID: "s2", User: "bob", Target: "db1", Account: "pg", Action: "exec", Command: "uptime", Started: started.Add(time.Minute)},
	}
	g.sessions.mu.Unlock()
	g.run(t, "", "sessions", "ls").want(t, 0, []string{
		"ID", "USER", "TARGET", "ACCOUNT", "ACTION", "SOURCE", "STARTED", "RECORDED",
		"s1", "alice", "web1", "svc", "shell", "192.0.2.7:50000", "2026-03-01T10:00:00Z", "yes", "s2", "exec", "no",
	}, nil)
	r := g.run(t, "", "sessions", "ls", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 || list[0]["id"] != "s1" {
		t.Errorf("--json: %v %s", err, r.stdout)
	}

	g.run(t, "", "sessions", "kill", "s1", "--message", "maintenance window").want(t, 0, []string{"session s1 killed"}, nil)
	g.run(t, "", "sessions", "kill", "s1").want(t, 1, nil, []string{`session "s1" is not running`})
	g.run(t, "", "sessions", "kill", "s2", "--message", "two\nlines").want(t, 2, nil, []string{"control characters"})
	g.run(t, "", "sessions", "kill").want(t, 2, nil, []string{"session ID is required"})
	g.sessions.mu.Lock()
	kills := slices.Clone(g.sessions.kills)
	g.sessions.mu.Unlock()
	if want := []string{"s1 local-admin maintenance window"}; !slices.Equal(kills, want) {
		t.Errorf("kills %q, want %q", kills, want)
	}
}

func TestCLISessionsWatch(t *testing.T) {
	g := startRecGateway(t)
	ctx := context.Background()
	rec := g.record(t, "live1", "alice", "web1", "$ top\r\n")
	defer rec.Close(ctx)

	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		var out, errOut bytes.Buffer
		code := cli.Run(ctx, []string{"--data-dir", g.dataDir, "sessions", "watch", "live1", "--from-start"}, nil, &out, &errOut)
		done <- result{code, out.String(), errOut.String()}
	}()
	// The watch is audited before the stream starts: once the event is
	// there, the watcher is following.
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := g.st.ListAudit(ctx, store.AuditFilter{Type: audit.RecordingView})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch did not start in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec.Output([]byte("load average: 0.01\r\n"))
	if _, _, err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not end with the recording")
	}
	if r.code != 0 || r.stdout != "$ top\r\nload average: 0.01\r\n" ||
		!strings.Contains(r.stderr, "Watching session live1 (its terminal is 100x30)") || !strings.Contains(r.stderr, "Session live1 ended.") {
		t.Errorf("exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}

	g.run(t, "", "sessions", "watch", "live1").want(t, 1, nil, []string{"is not running", "recordings play live1"})
	g.run(t, "", "sessions", "watch", "nope").want(t, 1, nil, []string{"has no recording"})
	g.run(t, "", "sessions", "watch").want(t, 2, nil, []string{"session ID is required"})
}

func TestCLICommands(t *testing.T) {
	g := startRecGateway(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []store.Command{
		{Time: t0, User: "alice", Target: "web1", Account: "svc", SessionID: "s1", Command: "uptime"},
		{Time: t0.Add(time.Minute), User: "alice", Target: "web1", Account: "svc", SessionID: "s2", Command: "ls -l", Interactive: true, Certain: true},
		{Time: t0.Add(2 * time.Minute), User: "bob", Target: "db1", Account: "pg", SessionID: "s3", Command: "rm -rf /tmp/x", Interactive: true},
	} {
		id, err := g.st.AppendCommand(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if c.Command == "uptime" {
			if err := g.st.SetCommandExit(ctx, id, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := g.run(t, "", "commands", "ls")
	r.want(t, 0, []string{"TIME", "TYPE", "EXIT", "COMMAND", "2026-03-01T10:00:00Z", "uptime", "exec", "ls -l", "shell ", "rm -rf /tmp/x", "shell?"}, nil)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.Contains(lines[3], " 0 ") || !strings.Contains(lines[1], "rm -rf") {
		t.Errorf("table:\n%s", r.stdout)
	}
	g.run(t, "", "commands", "ls", "--user", "bob").want(t, 0, []string{"rm -rf /tmp/x"}, nil)
	if r := g.run(t, "", "commands", "ls", "--session", "s2"); strings.Contains(r.stdout, "uptime") || !strings.Contains(r.stdout, "ls -l") {
		t.Errorf("--session s2:\n%s", r.stdout)
	}
	if r := g.run(t, "", "commands", "ls", "--target", "web1", "--since", "2026-03-01T10:00:30Z"); strings.Contains(r.stdout, "uptime") || !strings.Contains(r.stdout, "ls -l") {
		t.Errorf("--target --since:\n%s", r.stdout)
	}
	g.run(t, "", "commands", "ls", "--since", "2200-01-01").want(t, 0, nil, []string{"No commands found."})
	g.run(t, "", "commands", "ls", "--limit", "1").want(t, 0, []string{"rm -rf /tmp/x"}, []string{"more exist: see older ones with --before 3"})
	g.run(t, "", "commands", "ls", "--limit", "2", "--before", "3").want(t, 0, []string{"uptime", "ls -l"}, nil)
	g.run(t, "", "commands", "ls", "--limit", "1", "--after", "0").want(t, 0, []string{"uptime"}, []string{"more exist: see newer ones with --after 1"})
	g.run(t, "", "commands", "ls", "--since", "later").want(t, 2, nil, []string{"--since"})

	r = g.run(t, "", "commands", "ls", "--json")
	var cmds []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &cmds); err != nil || len(cmds) != 3 {
		t.Fatalf("--json: %v %s", err, r.stdout)
	}
	if cmds[2]["id"] == nil || cmds[2]["exit_status"] != float64(0) || cmds[1]["exit_status"] != nil || cmds[0]["certain"] != false {
		t.Errorf("--json: %v", cmds)
	}
}

func TestCLIAuditVerifyExport(t *testing.T) {
	g := startRecGateway(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := g.st.AppendAudit(ctx, store.AuditEvent{Type: "login.success", Outcome: "success",
			Time: time.Now().UTC(), User: "alice", Message: "login " + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	g.run(t, "", "audit", "verify").want(t, 0, []string{"audit chain intact: 5 events checked (ids 1 to 5)"}, nil)
	r := g.run(t, "", "audit", "verify", "--json")
	r.want(t, 0, []string{`"ok": true`}, nil)

	r = g.run(t, "", "audit", "export")
	r.want(t, 0, nil, nil)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("export: %d lines\n%s", len(lines), r.stdout)
	}
	for i, l := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev["id"] != float64(i+1) || ev["hash"] == "" || ev["prev_hash"] == nil {
			t.Errorf("line %d: %v %s", i+1, err, l)
		}
	}
	g.run(t, "", "audit", "export", "--since", "2200-01-01").want(t, 0, nil, nil)
	g.run(t, "", "audit", "export", "--since", "tomorrow").want(t, 2, nil, []string{"--since"})

	g.tamper(t, `UPDATE audit_events SET user_name = 'mallory' WHERE id = 2`)
	g.run(t, "", "audit", "verify").want(t, 1, nil, []string{"the audit chain is broken at event 2 (edited)"})
	r = g.run(t, "", "audit", "verify", "--json")
	r.want(t, 1, []string{`"ok": false`, `"id": 2`}, []string{"event 2"})
}

// TestCLIAuditCheckpoints: audit pubkey prints the key; audit verify holds
// the trail to its signed checkpoints, and --checkpoint to a copy kept
// elsewhere, which catches a cut the gateway's own copies no longer show.
func TestCLIAuditCheckpoints(t *testing.T) {
	g := startRecGateway(t)
	ctx := context.Background()
	r := g.run(t, "", "audit", "pubkey")
	r.want(t, 0, []string{"ssh-ed25519 AAAA", "portcullis-audit"}, nil)
	if _, err := audit.ParsePublicKey(r.stdout); err != nil {
		t.Errorf("audit pubkey printed %q: %v", r.stdout, err)
	}
	for i := range 30 {
		if _, err := g.st.AppendAudit(ctx, store.AuditEvent{Type: "login.success", Outcome: "success", User: "alice",
			Message: "login " + string(rune('a'+i%26))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := g.checkpoints.Checkpoint(ctx); !ok || err != nil {
		t.Fatalf("Checkpoint = %v, %v", ok, err)
	}
	g.run(t, "", "audit", "verify").want(t, 0, []string{"audit chain intact: 30 events checked",
		"2 signed checkpoints checked", "names event 30"}, nil)
	file := filepath.Join(g.dataDir, "audit.checkpoints")
	kept, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "elsewhere.checkpoints")
	writeFile(t, copyPath, kept)
	g.run(t, "", "audit", "verify", "--checkpoint", copyPath).want(t, 0, []string{"3 signed checkpoints checked"}, nil)

	// The last 10 events go, with the checkpoint in the store and the file.
	g.tamper(t, `DELETE FROM audit_events WHERE id > 20`)
	g.run(t, "", "audit", "verify").want(t, 1, nil, []string{"the audit chain is broken at event 21 (truncated)", "entries after 20 were removed"})
	g.tamper(t, `DELETE FROM audit_checkpoints`)
	writeFile(t, file, nil)
	g.run(t, "", "audit", "verify").want(t, 0, []string{"no signed head checkpoint yet"}, nil)
	g.run(t, "", "audit", "verify", "--checkpoint", copyPath).want(t, 1, nil,
		[]string{"the audit chain is broken at event 21 (truncated): the trail ends at entry 20, but the head checkpoint signed"})
	r = g.run(t, "", "audit", "verify", "--checkpoint", copyPath, "--json")
	r.want(t, 1, []string{`"problem": "truncated"`}, nil)

	// A checkpoint whose signature does not hold, given as one line.
	forged := strings.Replace(string(kept), `"event_id":30`, `"event_id":20`, 1)
	writeFile(t, copyPath, []byte(forged))
	g.run(t, "", "audit", "verify", "--checkpoint", copyPath).want(t, 1, nil, []string{"(bad-checkpoint)", "does not verify with the audit key"})
	// A file that is not checkpoints is a usage error naming its line.
	writeFile(t, copyPath, []byte("\nhello\n"))
	g.run(t, "", "audit", "verify", "--checkpoint", copyPath).want(t, 2, nil, []string{"line 2: not a checkpoint"})
	g.run(t, "", "audit", "verify", "--checkpoint", filepath.Join(t.TempDir(), "none")).want(t, 2, nil, []string{"--checkpoint"})
}

// TestCLIRecordingTampered: a recording edited on disk after its session
// ended is still shown, but every read says so: the cast route's headers,
// recordings play and download (one line on stderr, exit 1), and the
// trail gets one recording.tampered event. Making the stored hash match
// the edited file does not hide it: the session.end event, in the hash
// chain, holds the hash the recording ended with.
func TestCLIRecordingTampered(t *testing.T) {
	g := startRecGateway(t)
	ctx := context.Background()
	rec := g.record(t, "rt1", "alice", "web1", "$ rm -rf /srv/data\r\n")
	size, sum, err := rec.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// As sshgate writes it when the session ends.
	if err := audit.New(g.st, slog.New(slog.DiscardHandler)).Write(ctx, store.AuditEvent{Type: audit.SessionEnd, Outcome: audit.Success,
		User: "alice", Target: "web1", SessionID: "rt1",
		Detail: map[string]any{"recording": "rt1", "recording_sha256": sum, "recording_bytes": size}}); err != nil {
		t.Fatal(err)
	}
	g.run(t, "", "recordings", "play", "rt1", "--speed", "1000").want(t, 0, []string{"rm -rf /srv/data"}, nil)
	if h := g.castHeader(t, "rt1"); h.Get(api.HeaderRecordingIntegrity) != "ok" || h.Get(api.HeaderRecordingSHA256) != sum {
		t.Errorf("intact recording: headers %v", h)
	}

	path := filepath.Join(g.mgr.Dir(), "rt1.cast")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(orig, []byte("rm -rf /srv/data"), []byte("ls -la /srv/data"), 1)
	if err := os.WriteFile(path, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	editedSum := sha256.Sum256(edited)
	for _, tc := range []struct {
		name   string
		before func()
		warn   string
	}{
		{"file edited", func() {}, "is not the one recorded when the session ended"},
		{"file edited and its stored hash with it", func() {
			g.tamper(t, `UPDATE recordings SET sha256 = '`+hex.EncodeToString(editedSum[:])+`' WHERE id = 'rt1'`)
		}, "is not the one its audit event recorded when it ended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.before()
			h := g.castHeader(t, "rt1")
			if h.Get(api.HeaderRecordingIntegrity) != "tampered" || !strings.Contains(h.Get(api.HeaderRecordingWarning), tc.warn) {
				t.Errorf("cast headers %v, want tampered: %q", h, tc.warn)
			}
			r := g.run(t, "", "recordings", "play", "rt1", "--speed", "1000")
			r.want(t, 1, []string{"ls -la /srv/data"}, []string{"portcullis recordings play: warning: recording rt1 was tampered with: ", tc.warn})
			if n := strings.Count(r.stderr, "\n"); n != 1 {
				t.Errorf("play wrote %d lines on stderr, want 1:\n%s", n, r.stderr)
			}
			out := filepath.Join(t.TempDir(), "rt1.cast")
			r = g.run(t, "", "recordings", "download", "rt1", "-o", out)
			r.want(t, 1, []string{"saved to " + out}, []string{"warning: recording rt1 was tampered with", tc.warn})
			if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, edited) {
				t.Errorf("download saved %q, %v; want the file as it is", b, err)
			}
		})
	}
	// Many reads of one file content against the hash it ended with: one
	// event, naming what was expected and what was found.
	evs, err := g.st.ListAudit(ctx, store.AuditFilter{Type: audit.RecordingTampered})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("%d recording.tampered events, want 1 (one per recording and file content): %+v", len(evs), evs)
	}
	if ev := evs[0]; ev.SessionID != "rt1" || ev.Detail["sha256"] != hex.EncodeToString(editedSum[:]) || ev.Detail["expected_sha256"] != sum {
		t.Errorf("recording.tampered event %+v", ev)
	}
}

// castHeader reads the header of the recording's cast route over the
// admin socket.
func (g *recGateway) castHeader(t *testing.T, id string) http.Header {
	t.Helper()
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(g.dataDir, "admin.sock"))
	}}}
	resp, err := hc.Get("http://portcullis/api/v1/recordings/" + id + "/cast")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cast %s: %s", id, resp.Status)
	}
	return resp.Header
}

func TestCLIHelpRecordings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "recordings search QUERY"},
		{[]string{"help"}, "audit verify"},
		{[]string{"help"}, "sessions watch ID"},
		{[]string{"help"}, "commands ls"},
		{[]string{"sessions", "--help"}, "--from-start"},
		{[]string{"sessions", "kill", "-h"}, "--message TEXT"},
		{[]string{"recordings", "play", "--help"}, "--idle-limit S"},
		{[]string{"help", "recordings", "download"}, "--force"},
		{[]string{"commands", "ls", "--help"}, "shell?"},
		{[]string{"audit", "--help"}, "portcullis audit verify"},
		{[]string{"audit", "verify", "--help"}, "--checkpoint FILE"},
		{[]string{"audit", "pubkey", "--help"}, "authorized_keys line"},
		{[]string{"audit", "export", "-h"}, "JSON lines"},
	} {
		var out, errOut bytes.Buffer
		code := cli.Run(context.Background(), tc.args, nil, &out, &errOut)
		if code != 0 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: exit %d, stdout lacks %q:\n%s%s", tc.args, code, tc.want, out.String(), errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := cli.Run(context.Background(), []string{"recordings"}, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "Usage: portcullis recordings ls") {
		t.Errorf("recordings alone: exit %d: %s", code, errOut.String())
	}
}

// TestCLIBrokenStreams checks that a stream the gateway cuts off is a
// failure (exit 3), never taken for a whole one, and that a cut download
// leaves no file.
func TestCLIBrokenStreams(t *testing.T) {
	dir, err := os.MkdirTemp("", "pc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	cut := func(contentType, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Write([]byte(body))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/audit/export", cut("application/x-ndjson", `{"id":1}`+"\n"))
	mux.HandleFunc("GET /api/v1/recordings/r1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"r1","state":"ended","sha256":"00"}`))
	})
	header := `{"version":2,"width":80,"height":24}` + "\n" + `[0.1,"o","partial"]` + "\n"
	mux.HandleFunc("GET /api/v1/recordings/r1/cast", cut("application/x-asciicast", header))
	mux.HandleFunc("GET /api/v1/sessions/r1/watch", cut("application/x-asciicast", header))
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	work := t.TempDir()
	t.Chdir(work)
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"audit", "export"}, "the export broke off"},
		{[]string{"recordings", "download", "r1"}, "download of recording r1 broke off"},
		{[]string{"recordings", "play", "r1", "--speed", "1000"}, "play recording r1"},
		{[]string{"sessions", "watch", "r1"}, "the stream from the gateway broke off"},
	} {
		var out, errOut bytes.Buffer
		code := cli.Run(context.Background(), append([]string{"--data-dir", dir}, tc.args...), nil, &out, &errOut)
		if code != 3 || !strings.Contains(errOut.String(), tc.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want 3 and %q", tc.args, code, errOut.String(), tc.stderr)
		}
	}
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Errorf("a cut download left files: %v", entries)
	}
}

// TestCLIRecordingGap: an incomplete recording says what it lost, in the
// table and in JSON.
func TestCLIRecordingGap(t *testing.T) {
	g := startRecGateway(t)
	ctx := context.Background()
	r1 := g.record(t, "rec1", "alice", "web1", "$ yes\r\n")
	if _, _, err := r1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.st.FinishRecording(ctx, "rec1", store.RecordingIncomplete, time.Now(), 10, "ab"); err != nil {
		t.Fatal(err)
	}
	if err := g.st.SetRecordingGap(ctx, "rec1", 3<<20, 4*time.Second, 9*time.Second); err != nil {
		t.Fatal(err)
	}
	g.run(t, "", "recordings", "ls", "--user", "alice").want(t, 0, []string{"incomplete (lost 3.0MiB at 4s-9s)"}, nil)
	r := g.run(t, "", "recordings", "ls", "--json", "--user", "alice")
	if !strings.Contains(r.stdout, `"lost_bytes": 3145728`) {
		t.Errorf("--json has no gap: %s", r.stdout)
	}
}
