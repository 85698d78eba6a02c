package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// lockedBuf is a buffer one goroutine writes and another reads.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var tickRE = regexp.MustCompile(`tick-(\d+)`)

// lastTick returns the highest tick-N in s, 0 if none.
func lastTick(s string) int {
	n := 0
	for _, m := range tickRE.FindAllStringSubmatch(s, -1) {
		if v, _ := strconv.Atoi(m[1]); v > n {
			n = v
		}
	}
	return n
}

// TestRecordingsInS3 runs two gateways on one PostgreSQL and one bucket
// of a real S3 server: a session recorded through gateway A (its own
// process) is watched live through gateway B; then A is killed with
// SIGKILL and its data directory deleted mid-session, and B still plays
// the recording from the bucket, up to at most 10 s before the kill.
func TestRecordingsInS3(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath)
	s3 := testenv.StartS3(t, "rec")
	t.Setenv("AWS_ACCESS_KEY_ID", s3.Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.Secret)
	storeURL := s3.URL("rec", "casts")
	pg := testenv.StartPostgres(t)
	db := pg.NewDatabase(t)
	sshd := testenv.StartSSHD(t)
	unixUser := sshd.AddUser(t)
	dir := testenv.ShortTempDir(t)
	masterKey := filepath.Join(dir, "master.key")
	b := startHAGateway(t, dir, "gwb", db, masterKey, "--recordings-store", storeURL)
	key := testenv.NewClientKey(t, dir)
	b.apply(t, fmt.Sprintf(`
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
actions: [exec]
---
kind: Policy
name: rec
type: session-recording
subjects: {users: [alice]}
targets: {names: [web1]}
`, key.AuthorizedKey, sshd.Addr, unixUser, unixUser))
	o, err := b.srv.inv.Get(context.Background(), resource.KindAccount, "web1/"+unixUser)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := resource.ParseAuthorizedKey(o.(*resource.Account).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sshd.AuthorizeKey(t, unixUser, pub)

	// Gateway A, a process of its own so that it can be killed.
	bin := buildBinary(t, dir)
	dataA := filepath.Join(dir, "gwa")
	sshA := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	gwA := exec.Command(bin, "serve", "--data-dir", dataA, "--ssh-addr", sshA, "--api-addr", "", "--store", db,
		"--master-key-file", masterKey, "--gateway-id", "gwa", "--recordings-store", storeURL, "--log-level", "warn")
	gwA.Stdout, gwA.Stderr = io.Discard, os.Stderr
	if err := gwA.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gwA.Process.Kill(); _ = gwA.Wait() })
	waitFor(t, "gateway A's admin socket", func() bool {
		return exec.Command(bin, "--data-dir", dataA, "get", "users").Run() == nil
	})
	hostKeyLine, err := os.ReadFile(filepath.Join(dataA, "ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	hk, err := resource.ParseAuthorizedKey(string(hostKeyLine))
	if err != nil {
		t.Fatal(err)
	}
	client := exec.Command("ssh", append(testenv.SSHArgs(dir, key, sshA, hk), "-l", "alice~web1", "127.0.0.1",
		"for i in $(seq 1 1200); do echo tick-$i; sleep 0.1; done")...)
	stdout, _ := client.StdoutPipe()
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Process.Kill(); _ = client.Wait() }()
	var seen atomic.Int64
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "tick-")); err == nil {
				seen.Store(int64(n))
			}
		}
	}()
	ctx := context.Background()
	var id string
	waitFor(t, "the session's recording in the shared store", func() bool {
		recs, err := b.srv.store.ListRecordings(ctx, store.RecordingFilter{State: store.RecordingActive})
		if err == nil && len(recs) == 1 && recs[0].Gateway == "gwa" {
			id = recs[0].ID
		}
		return id != ""
	})

	// Watched live through B, with the CLI on B's admin socket.
	var watched lockedBuf
	watch := exec.Command(bin, "--data-dir", filepath.Join(dir, "gwb"), "sessions", "watch", id)
	watch.Stdout, watch.Stderr = &watched, os.Stderr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = watch.Process.Kill(); _ = watch.Wait() }()
	from := int(seen.Load())
	waitFor(t, "the live watch through B to show new output", func() bool { return lastTick(watched.String()) > from+10 })

	for deadline := time.Now().Add(time.Minute); seen.Load() < 100; {
		if time.Now().After(deadline) {
			t.Fatalf("session output stalled at tick %d", seen.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = gwA.Process.Signal(syscall.SIGKILL)
	_ = gwA.Wait()
	killedAt := int(seen.Load())
	if err := os.RemoveAll(dataA); err != nil {
		t.Fatal(err)
	}

	// B plays what the bucket holds: a valid recording, at most 10 s
	// (100 ticks, one every 0.1 s) short of what the client saw.
	rc, _, err := b.srv.recordings.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := recording.Play(ctx, bytes.NewReader(raw), &out, recording.PlayOptions{At: 1e9}); err != nil {
		t.Fatalf("the recording in the bucket does not play: %v", err)
	}
	got := lastTick(out.String())
	t.Logf("killed at tick %d (0.1 s each); the bucket holds up to tick %d (%d bytes)", killedAt, got, len(raw))
	if killedAt-got > 100 {
		t.Errorf("the bucket lost %d ticks (more than 10 s) of a session whose gateway died with its disk", killedAt-got)
	}

	// A session through B that ends: the bucket holds one whole object
	// whose SHA-256 is the one in session.end; recordings check passes,
	// and fails (exit 1) once the object is changed in the bucket.
	argsB := testenv.SSHArgs(dir, key, b.srv.SSHAddr().String(), b.srv.HostKey())
	if out, err := exec.Command("ssh", append(argsB, "-l", "alice~web1", "127.0.0.1", "echo via-b")...).CombinedOutput(); err != nil {
		t.Fatalf("exec through B: %v %s", err, out)
	}
	var idB string
	waitFor(t, "B's recording to end", func() bool {
		recs, err := b.srv.store.ListRecordings(ctx, store.RecordingFilter{State: store.RecordingEnded})
		for _, r := range recs {
			if err == nil && r.Gateway == "gwb" {
				idB = r.ID
			}
		}
		return idB != ""
	})
	obj := filepath.Join(s3.Dir, "rec", "casts", idB+".cast")
	waitFor(t, "B's recording in the bucket", func() bool { _, err := os.Stat(obj); return err == nil })
	raw, err = os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	var evs []store.AuditEvent
	waitFor(t, "session.end of B's session", func() bool {
		evs, err = b.srv.store.ListAudit(ctx, store.AuditFilter{SessionID: idB, Type: audit.SessionEnd})
		return err != nil || len(evs) > 0
	})
	if err != nil || len(evs) != 1 || evs[0].Detail["recording_sha256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("session.end of %s: %+v %v; object sha256 %x", idB, evs, err, sum)
	}
	check := func() (string, int) {
		out, err := exec.Command(bin, "--data-dir", filepath.Join(dir, "gwb"), "recordings", "check").CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := check(); code != 0 {
		t.Fatalf("recordings check on a sound bucket: exit %d\n%s", code, out)
	}
	if err := os.WriteFile(obj, bytes.Replace(raw, []byte("via-b"), []byte("VIA-B"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := check(); code != 1 || !strings.Contains(out, idB) || !strings.Contains(out, "tampered") {
		t.Fatalf("recordings check of a changed object: exit %d\n%s", code, out)
	}
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:9000": true, "[::1]:9000": true, "localhost:9000": true, "localhost": true, "127.0.0.2": true,
		"10.0.0.5:9000": false, "s3.example.com": false, "localhost.example.com:9000": false, "[::ffff:10.0.0.1]:1": false,
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
