package server

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
)

// buildBinary builds cmd/portcullis once into dir.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "portcullis")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/portcullis").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs `portcullis serve` as its own process and waits for its
// admin socket.
func startProcess(t *testing.T, bin, dataDir, sshAddr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--ssh-addr", sshAddr, "--api-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if out, err := exec.Command(bin, "--data-dir", dataDir, "get", "users").CombinedOutput(); err == nil || strings.Contains(string(out), "No users") {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSIGKILLKeepsRecording kills the gateway process mid-session: after a
// restart the recording is marked interrupted, the real asciinema still
// reads it, and it lost at most about the last second of output.
func TestSIGKILLKeepsRecording(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", "asciinema", testenv.SSHDPath)
	sshd := testenv.StartSSHD(t)
	unixUser := sshd.AddUser(t)
	dir := testenv.ShortTempDir(t)
	bin := buildBinary(t, dir)
	dataDir := filepath.Join(dir, "d")
	sshAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	gw := startProcess(t, bin, dataDir, sshAddr)

	key := testenv.NewClientKey(t, dir)
	apply := exec.Command(bin, "--data-dir", dataDir, "apply", "-f", "-")
	apply.Stdin = strings.NewReader(fmt.Sprintf(`
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
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	pubLine, err := exec.Command(bin, "--data-dir", dataDir, "account", "pubkey", "web1/"+unixUser).Output()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := resource.ParseAuthorizedKey(string(pubLine))
	if err != nil {
		t.Fatal(err)
	}
	sshd.AuthorizeKey(t, unixUser, pub)
	hostKeyLine, err := os.ReadFile(filepath.Join(dataDir, "ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	hk, err := resource.ParseAuthorizedKey(string(hostKeyLine))
	if err != nil {
		t.Fatal(err)
	}
	args := testenv.SSHArgs(dir, key, sshAddr, hk)
	client := exec.Command("ssh", append(args, "-l", "alice~web1", "127.0.0.1",
		"for i in $(seq 1 600); do echo tick-$i; sleep 0.1; done")...)
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
	for deadline := time.Now().Add(20 * time.Second); seen.Load() < 30; {
		if time.Now().After(deadline) {
			t.Fatalf("session output stalled at tick %d", seen.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = gw.Process.Signal(syscall.SIGKILL)
	_ = gw.Wait()
	lastSeen := seen.Load()

	startProcess(t, bin, dataDir, sshAddr)
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.ListRecordings(context.Background(), store.RecordingFilter{})
	if err != nil || len(recs) != 1 || recs[0].State != store.RecordingInterrupted || recs[0].SHA256 == "" {
		t.Fatalf("recordings after restart: %+v %v", recs, err)
	}
	file := filepath.Join(dataDir, "recordings", recs[0].ID+".cast")
	out, code := testenv.AsciinemaCat(t, file)
	if code != 0 {
		t.Fatalf("asciinema cat of an interrupted recording: %d %s", code, out)
	}
	last := 0
	for _, m := range regexp.MustCompile(`tick-(\d+)`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		last = max(last, n)
	}
	// Ticks come every 100 ms: at most a second lost is ten ticks, plus
	// scheduling slack on a loaded machine.
	if int64(last) < lastSeen-15 {
		t.Fatalf("recording ends at tick %d, client had seen tick %d: more than a second lost", last, lastSeen)
	}
}
