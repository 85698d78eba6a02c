package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// faultWorld is a gateway with alice allowed (and recorded) on a real sshd
// target, and what a client needs to reach it.
type faultWorld struct {
	g    *haGateway
	args []string
}

func startFaultWorld(t *testing.T, storeURL func(dir string) string) *faultWorld {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath)
	sshd := testenv.StartSSHD(t)
	unixUser := sshd.AddUser(t)
	dir := testenv.ShortTempDir(t)
	g := startHAGateway(t, dir, "gw", storeURL(dir), filepath.Join(dir, "master.key"))
	key := testenv.NewClientKey(t, dir)
	g.apply(t, fmt.Sprintf(`
kind: User
name: alice
ssh_keys: [%q]
---
kind: Target
name: web1
address: %s
---
kind: Account
name: %s
target: web1
---
kind: Policy
name: p
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [%s]
actions: [exec, shell]
---
kind: Policy
name: rec
type: session-recording
subjects: {users: [alice]}
targets: {names: [web1]}
`, key.AuthorizedKey, sshd.Addr, unixUser, unixUser))
	o, err := g.srv.inv.Get(context.Background(), resource.KindAccount, "web1/"+unixUser)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := resource.ParseAuthorizedKey(o.(*resource.Account).PublicKey)
	sshd.AuthorizeKey(t, unixUser, pub)
	return &faultWorld{g: g, args: testenv.SSHArgs(dir, key, g.srv.SSHAddr().String(), g.srv.HostKey())}
}

// echoSession is a recorded session that answers each line it reads.
type echoSession struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	sc    *bufio.Scanner
}

func (w *faultWorld) startEcho(t *testing.T) *echoSession {
	t.Helper()
	c := exec.Command("ssh", append(w.args, "-l", "alice~web1", "127.0.0.1", "while read l; do echo got-$l; done")...)
	stdin, _ := c.StdinPipe()
	stdout, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	return &echoSession{cmd: c, stdin: stdin, sc: bufio.NewScanner(stdout)}
}

func (s *echoSession) roundTrip(t *testing.T, word string) {
	t.Helper()
	fmt.Fprintln(s.stdin, word)
	if !s.sc.Scan() || s.sc.Text() != "got-"+word {
		t.Fatalf("session answer to %s: %q %v", word, s.sc.Text(), s.sc.Err())
	}
}

func (s *echoSession) end(t *testing.T) {
	t.Helper()
	s.stdin.Close()
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("session ended with %v", err)
	}
}

func (w *faultWorld) exec(t *testing.T, word string) {
	t.Helper()
	out, err := exec.Command("ssh", append(w.args, "-l", "alice~web1", "127.0.0.1", "echo "+word)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), word) {
		t.Fatalf("login and exec (%s): %v %s", word, err, out)
	}
}

// healthz returns /healthz's status and body.
func (w *faultWorld) healthz(t *testing.T) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // self-signed test certificate
	resp, err := hc.Get("https://" + w.g.srv.APIAddr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// checkTrail checks that every session has its login.success,
// session.start and session.end in the store, in that order, that no
// recording is left active, and that the trail verifies against its
// checkpoints (one signed now, after the spool drained).
func (w *faultWorld) checkTrail(t *testing.T, sessions int) {
	t.Helper()
	ctx := context.Background()
	srv := w.g.srv
	waitFor(t, "the spool to drain and the recording rows to be stored", func() bool {
		return srv.spool.Pending() == 0 && srv.recordings.RowsPending() == 0
	})
	// An empty spool is not yet the whole trail: a session that ended
	// while the store refused writes may still be inside its synchronous
	// audit write (up to 10 s against a locked store, in line behind the
	// others) when the spool drains. Wait (generously) for the events the
	// check wants; a trail that never becomes whole fails below as before.
	var evs []store.AuditEvent
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		evs, err = srv.store.ListAudit(ctx, store.AuditFilter{User: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		ends := 0
		for _, ev := range evs {
			if ev.Type == "session.end" {
				ends++
			}
		}
		if (ends >= sessions && srv.spool.Pending() == 0) || time.Now().After(deadline) {
			break
		}
	}
	seen := map[string][]string{} // connection id -> its events in trail order
	conns := map[string]string{}  // session id -> connection id
	for _, ev := range evs {
		switch ev.Type {
		case "login.success":
			seen[ev.SessionID] = append(seen[ev.SessionID], ev.Type)
		case "session.start", "session.end":
			conn := ev.SessionID
			if i := strings.LastIndex(conn, "-"); i > 0 && seen[conn] == nil {
				conn = conn[:i]
			}
			conns[ev.SessionID] = conn
			seen[conn] = append(seen[conn], ev.Type)
		}
	}
	whole := 0
	for conn, types := range seen {
		if fmt.Sprint(types) == "[login.success session.start session.end]" {
			whole++
		} else {
			t.Errorf("connection %s has %v in the trail, want login.success, session.start, session.end", conn, types)
		}
	}
	if whole != sessions {
		t.Errorf("%d whole sessions in the trail, want %d (events: %d)", whole, sessions, len(evs))
		rej, rerr := os.ReadFile(filepath.Join(w.g.cfg.DataDir, "audit.spool.rejected"))
		t.Logf("rejected file: %q %v", rej, rerr)
		all, _ := srv.store.ListAudit(ctx, store.AuditFilter{})
		for _, ev := range all {
			t.Logf("event %d %s %s user=%s session=%s %s", ev.ID, ev.Time.Format("15:04:05.000"), ev.Type, ev.User, ev.SessionID, ev.Message)
		}
	}
	recs, err := srv.store.ListRecordings(ctx, store.RecordingFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != sessions {
		t.Errorf("%d recordings stored, want %d", len(recs), sessions)
	}
	for _, r := range recs {
		if r.State != store.RecordingEnded || r.SHA256 == "" {
			t.Errorf("recording %s: state %q sha256 %q, want ended with its hash", r.ID, r.State, r.SHA256)
		}
	}
	if _, _, err := srv.checkpoints.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := srv.checkpoints.Verify(ctx, nil)
	if err != nil || !v.OK {
		t.Errorf("audit verify after the outage: %+v %v", v, err)
	}
	if code, body := w.healthz(t); code != 200 {
		t.Errorf("/healthz after the outage: %d %s", code, body)
	}
}

// TestSQLiteLockedByAnotherProcess: another process (the sqlite3 shell)
// holds the database's write lock while a recorded session runs and new
// logins come. Reads work, writes fail. Sessions go on and new logins are
// accepted; audit events wait in the spool and /healthz says so; when the
// lock is released every login.success, session.start and session.end is
// in the store in order, no recording is left active, and the trail
// verifies. (The old code spooled only when reads failed too: these
// events went to stderr; and a failed index insert ended the session.)
func TestSQLiteLockedByAnotherProcess(t *testing.T) {
	testenv.Require(t, "sqlite3")
	var dbPath string
	w := startFaultWorld(t, func(dir string) string {
		dbPath = filepath.Join(dir, "gw.db")
		return "sqlite:" + dbPath
	})
	long := w.startEcho(t)
	long.roundTrip(t, "before")

	lock := exec.Command("sqlite3", dbPath)
	lockIn, _ := lock.StdinPipe()
	lockOut, _ := lock.StdoutPipe()
	lock.Stderr = lock.Stdout
	if err := lock.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lock.Process.Kill(); _ = lock.Wait() })
	fmt.Fprintln(lockIn, "BEGIN IMMEDIATE;\nSELECT 'locked';")
	lsc := bufio.NewScanner(lockOut)
	if !lsc.Scan() || lsc.Text() != "locked" {
		t.Fatalf("sqlite3 did not take the write lock: %q", lsc.Text())
	}

	long.roundTrip(t, "during") // recorded and indexed output: the index insert fails
	w.exec(t, "login-during-1")
	w.exec(t, "login-during-2")
	long.roundTrip(t, "still")
	if w.g.srv.spool.Pending() == 0 {
		t.Fatal("no audit event waits in the spool while the store refuses writes")
	}
	code, body := w.healthz(t)
	if code != 503 || !strings.Contains(body, "spool") {
		t.Errorf("/healthz while writes fail: %d %s", code, body)
	}

	fmt.Fprintln(lockIn, "ROLLBACK;\n.quit")
	if err := lock.Wait(); err != nil {
		t.Fatalf("sqlite3: %v", err)
	}
	long.roundTrip(t, "after")
	long.end(t)
	w.checkTrail(t, 3)
}

// TestPostgresDownWhileASessionEnds: PostgreSQL stops while a recorded
// session runs, and the session ends before it is back. The session's
// output, its end event and its recording's end wait (spool, row retry)
// and reach the store once PostgreSQL is back: session.end is stored, the
// recording is not left active, and the trail verifies. (The old code
// left the recording active until the gateway restarted.)
func TestPostgresDownWhileASessionEnds(t *testing.T) {
	var pg *testenv.Postgres
	w := startFaultWorld(t, func(string) string {
		pg = testenv.StartPostgres(t)
		return pg.NewDatabase(t)
	})
	s := w.startEcho(t)
	s.roundTrip(t, "before")
	pg.Stop(t)
	s.roundTrip(t, "during")
	s.end(t)
	waitFor(t, "the recording's end to wait for the store", func() bool { return w.g.srv.recordings.RowsPending() > 0 })
	if code, body := w.healthz(t); code != 503 {
		t.Errorf("/healthz while PostgreSQL is down: %d %s", code, body)
	}
	pg.Start(t)
	w.checkTrail(t, 1)
}

// TestFloodFullySearchableAfterTheSession: a flood of 700 KB through a
// real recorded session (2.7 times the live indexing budget), with
// `seq 1234560 1234570` in its middle: once the session has ended, those
// numbers are found (the old code indexed only the start and the end of a
// flood, for ever) and the recording's index is complete. (Filler with
// repeated words rather than all of seq: under the race detector a flood
// of unique numbers indexes at a few KB/s.)
func TestFloodFullySearchableAfterTheSession(t *testing.T) {
	w := startFaultWorld(t, func(dir string) string { return "sqlite:" + filepath.Join(dir, "gw.db") })
	const filler = "yes 'the quick brown fox jumps over the lazy dog' | head -n 8000"
	cmd := "echo firstword; " + filler + "; seq 1234560 1234570; " + filler + "; echo lastword"
	out, err := exec.Command("ssh", append(w.args, "-l", "alice~web1", "127.0.0.1", cmd)...).Output()
	if err != nil || !strings.HasSuffix(string(out), "\nlastword\n") || len(out) < 700000 {
		t.Fatalf("flood through the gateway: %v (%d bytes)", err, len(out))
	}
	ctx := context.Background()
	st := w.g.srv.store
	var rec store.Recording
	// Generous: the race detector slows SQLite (translated C) tenfold.
	for deadline := time.Now().Add(5 * time.Minute); rec.IndexState != store.IndexComplete; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the recording's index is not complete: %+v", rec)
		}
		if recs, err := st.ListRecordings(ctx, store.RecordingFilter{}); err == nil && len(recs) == 1 {
			rec = recs[0]
		}
	}
	for _, n := range []string{"firstword", "1234560", "1234567", "lastword"} {
		start := time.Now()
		hits, err := st.SearchText(ctx, n, 10)
		took := time.Since(start)
		if err != nil || len(hits) != 1 || hits[0].RecordingID != rec.ID {
			t.Errorf("search %s: %+v %v", n, hits, err)
		}
		t.Logf("search %s: %s", n, took)
	}
}
