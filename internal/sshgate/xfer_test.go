package sshgate_test

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/audit"
)

// xferWorld is a world whose policy grants file-transfer only, with the
// given paths (none: every path), and knows the account's home.
type xferWorld struct {
	*world
	home     string
	uid, gid int
}

func newXferWorld(t *testing.T, paths string) *xferWorld {
	t.Helper()
	w := newWorld(t, "file-transfer")
	if paths != "" {
		w.gw.apply(fmt.Sprintf(`
kind: Policy
name: alice-web1
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [%s]
actions: [file-transfer]
source_cidrs: [127.0.0.0/8]
paths: %s
`, w.unixUser, paths))
	}
	u, err := user.Lookup(w.unixUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &xferWorld{world: w, home: u.HomeDir, uid: uid, gid: gid}
}

// put creates a file (and its directories) in the account's home, owned
// by the account, as the test's setup.
func (x *xferWorld) put(t *testing.T, rel, content string) {
	t.Helper()
	p := filepath.Join(x.home, rel)
	for d := filepath.Dir(p); d != x.home && strings.HasPrefix(d, x.home); d = filepath.Dir(d) {
		defer os.Lchown(d, x.uid, x.gid)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(p, x.uid, x.gid); err != nil {
		t.Fatal(err)
	}
}

func (x *xferWorld) exists(rel string) bool {
	_, err := os.Lstat(filepath.Join(x.home, rel))
	return err == nil
}

func (x *xferWorld) read(rel string) string {
	b, _ := os.ReadFile(filepath.Join(x.home, rel))
	return string(b)
}

// local writes a file on the client's side and returns its path.
func (x *xferWorld) local(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(x.clientDir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sftp runs one sftp batch through the gateway.
func (x *xferWorld) sftp(t *testing.T, batch string) (string, string, int) {
	t.Helper()
	f := filepath.Join(x.clientDir, "batch")
	if err := os.WriteFile(f, []byte(batch), 0o644); err != nil {
		t.Fatal(err)
	}
	return runTool(t, "sftp", append(append([]string{}, x.opts(false)...), "-b", f, "alice~web1@127.0.0.1")...)
}

// scp runs scp through the gateway with extra flags (-O for the legacy
// protocol); remote paths are written "R:PATH".
func (x *xferWorld) scp(t *testing.T, flags []string, args ...string) (string, string, int) {
	t.Helper()
	a := append(append([]string{}, x.opts(false)...), flags...)
	for _, s := range args {
		if r, ok := strings.CutPrefix(s, "R:"); ok {
			s = "alice~web1@127.0.0.1:" + r
		}
		a = append(a, s)
	}
	return runTool(t, "scp", a...)
}

// rsync runs rsync through the gateway; remote paths are written "R:PATH".
func (x *xferWorld) rsync(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	a := []string{"-e", "ssh " + strings.Join(quoteAll(x.opts(false)), " ")}
	for _, s := range args {
		if r, ok := strings.CutPrefix(s, "R:"); ok {
			s = "alice~web1@127.0.0.1:" + r
		}
		a = append(a, s)
	}
	return runTool(t, "rsync", a...)
}

// deniedPath reports whether a file-transfer refusal naming path was
// audited.
func (x *xferWorld) deniedPath(t *testing.T, op, p string) bool {
	t.Helper()
	for _, ev := range x.gw.events(audit.RequestDeny) {
		if ev.Detail["action"] == "file-transfer" && (op == "" || ev.Detail["operation"] == op) && strings.Contains(fmt.Sprint(ev.Detail["path"]), p) {
			return true
		}
	}
	return false
}

// TestTransferPathsSFTP: paths.read and paths.write decide each SFTP
// operation; a refused one fails in the client with "Permission denied",
// never reaches the target, and is audited. Before paths existed every
// one of these went through.
func TestTransferPathsSFTP(t *testing.T) {
	x := newXferWorld(t, "{read: ['~/pub/**'], write: ['~/inbox/**']}")
	x.put(t, "pub/a.txt", "public\n")
	x.put(t, "secret.txt", "secret\n")
	x.put(t, "inbox/keep", "keep\n")
	up := x.local(t, "up.txt", "uploaded\n")
	back := filepath.Join(x.clientDir, "back")

	// Allowed: reading under pub, writing under inbox.
	if out, errOut, code := x.sftp(t, "get pub/a.txt "+back+"\nput "+up+" inbox/up.txt\nls inbox\n"); code != 0 {
		t.Fatalf("allowed sftp batch: exit %d\n%s\n%s", code, out, errOut)
	}
	if x.read("inbox/up.txt") != "uploaded\n" {
		t.Fatal("allowed upload did not land")
	}

	for _, tc := range []struct {
		name, batch string
		op, path    string
		unchanged   func() bool
	}{
		{"get outside paths.read", "get secret.txt " + back + "-2", "", "secret.txt", func() bool { _, err := os.Stat(back + "-2"); return err != nil }},
		{"put outside paths.write", "put " + up + " up.txt", "open", "up.txt", func() bool { return !x.exists("up.txt") }},
		{"put into a read-only dir", "put " + up + " pub/up.txt", "open", "pub/up.txt", func() bool { return !x.exists("pub/up.txt") }},
		{"rm", "rm pub/a.txt", "remove", "pub/a.txt", func() bool { return x.exists("pub/a.txt") }},
		{"rename out of inbox", "rename inbox/keep keep", "rename", "keep", func() bool { return x.exists("inbox/keep") }},
		{"rename into pub", "rename inbox/keep pub/keep", "rename", "pub/keep", func() bool { return x.exists("inbox/keep") }},
		{"mkdir", "mkdir newdir", "mkdir", "newdir", func() bool { return !x.exists("newdir") }},
		{"rmdir", "rmdir pub", "rmdir", "pub", func() bool { return x.exists("pub") }},
		{"chmod", "chmod 600 pub/a.txt", "setstat", "pub/a.txt", func() bool { return true }},
		{"ls outside", "ls /etc", "", "/etc", func() bool { return true }},
		{"dotdot escape", "get inbox/../secret.txt " + back + "-3", "", "..", func() bool { _, err := os.Stat(back + "-3"); return err != nil }},
		{"symlink into inbox pointing out", "ln -s ../secret.txt inbox/link", "symlink", "secret.txt", func() bool { return !x.exists("inbox/link") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := x.sftp(t, tc.batch+"\n")
			if code == 0 {
				t.Fatalf("%q succeeded:\n%s\n%s", tc.batch, out, errOut)
			}
			// The client words a refused stat as "not found".
			if !strings.Contains(errOut, "ermission denied") && !strings.Contains(errOut, "not found") {
				t.Errorf("%q: stderr %q lacks the refusal", tc.batch, errOut)
			}
			if !tc.unchanged() {
				t.Errorf("%q changed the target", tc.batch)
			}
			if !x.deniedPath(t, tc.op, tc.path) {
				t.Errorf("%q: no request.deny event for %s %s", tc.batch, tc.op, tc.path)
			}
		})
	}
	// The session itself went on: an allowed operation after a refused
	// one in the same session works.
	if out, errOut, code := x.sftp(t, "-rm pub/a.txt\nget pub/a.txt "+back+"-4\n"); code != 0 {
		t.Fatalf("refusal then allowed get: exit %d\n%s\n%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(back + "-4"); string(b) != "public\n" {
		t.Fatalf("get after a refusal returned %q", b)
	}
}

// TestTransferPathsSCP: plain scp (SFTP mode) is judged like sftp.
func TestTransferPathsSCP(t *testing.T) {
	x := newXferWorld(t, "{read: ['~/pub/**'], write: ['~/inbox/**']}")
	x.put(t, "pub/a.txt", "public\n")
	x.put(t, "secret.txt", "secret\n")
	x.put(t, "inbox/.keep", "")
	up := x.local(t, "up.txt", "uploaded\n")
	back := filepath.Join(x.clientDir, "back")
	if out, errOut, code := x.scp(t, nil, up, "R:inbox/"); code != 0 {
		t.Fatalf("allowed scp upload: %d\n%s\n%s", code, out, errOut)
	}
	if out, errOut, code := x.scp(t, nil, "R:pub/a.txt", back); code != 0 {
		t.Fatalf("allowed scp download: %d\n%s\n%s", code, out, errOut)
	}
	if _, errOut, code := x.scp(t, nil, up, "R:up.txt"); code == 0 || x.exists("up.txt") {
		t.Fatalf("scp upload outside paths.write: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := x.scp(t, nil, "R:secret.txt", back+"-2"); code == 0 {
		t.Fatalf("scp download outside paths.read: exit %d, stderr %q", code, errOut)
	}
}
