package sshgate_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
		w.setPaths(paths)
	}
	u, err := user.Lookup(w.unixUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &xferWorld{world: w, home: u.HomeDir, uid: uid, gid: gid}
}

// setPaths replaces the world's policy by one granting file-transfer only,
// with paths.
func (w *world) setPaths(paths string) {
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

// TestTransferPathsSCP: scp in both modes is judged like sftp, on the
// command's path and on every file of a recursive copy. On the old
// gateway plain scp (SFTP mode) went through whatever the rules said.
func TestTransferPathsSCP(t *testing.T) {
	x := newXferWorld(t, "{read: ['~/pub/**'], write: ['~/inbox/**']}")
	x.put(t, "pub/a.txt", "public\n")
	x.put(t, "pub/sub/b.txt", "b\n")
	x.put(t, "secret.txt", "secret\n")
	x.put(t, "inbox/.keep", "")
	up := x.local(t, "up.txt", "uploaded\n")
	tree := filepath.Join(x.clientDir, "tree")
	os.MkdirAll(filepath.Join(tree, "in"), 0o755)
	os.WriteFile(filepath.Join(tree, "in", "f.txt"), []byte("f\n"), 0o644)
	for _, mode := range [][]string{nil, {"-O"}} {
		name := "scp " + strings.Join(mode, "")
		back := filepath.Join(x.clientDir, "back"+strings.Join(mode, ""))
		os.RemoveAll(filepath.Join(x.home, "inbox", "up.txt"))
		if out, errOut, code := x.scp(t, mode, up, "R:inbox/"); code != 0 || x.read("inbox/up.txt") != "uploaded\n" {
			t.Fatalf("%s: allowed upload: %d\n%s\n%s", name, code, out, errOut)
		}
		if out, errOut, code := x.scp(t, mode, "R:pub/a.txt", back); code != 0 {
			t.Fatalf("%s: allowed download: %d\n%s\n%s", name, code, out, errOut)
		}
		if out, errOut, code := x.scp(t, append([]string{"-r"}, mode...), "R:pub", back+"-tree"); code != 0 {
			t.Fatalf("%s: allowed recursive download: %d\n%s\n%s", name, code, out, errOut)
		}
		if b, _ := os.ReadFile(filepath.Join(back+"-tree", "sub", "b.txt")); string(b) != "b\n" {
			t.Fatalf("%s -r: pub/sub/b.txt came back as %q", name, b)
		}
		if _, errOut, code := x.scp(t, mode, up, "R:up.txt"); code == 0 || x.exists("up.txt") {
			t.Fatalf("%s: upload outside paths.write: exit %d, stderr %q", name, code, errOut)
		}
		if _, errOut, code := x.scp(t, mode, up, "R:pub/"); code == 0 || x.exists("pub/up.txt") {
			t.Fatalf("%s: upload into a read-only dir: exit %d, stderr %q", name, code, errOut)
		}
		if _, errOut, code := x.scp(t, mode, "R:secret.txt", back+"-2"); code == 0 {
			t.Fatalf("%s: download outside paths.read: exit %d, stderr %q", name, code, errOut)
		}
		// A recursive upload is judged file by file: into the home, tree
		// and tree/in may not be created.
		if _, errOut, code := x.scp(t, append([]string{"-r"}, mode...), tree, "R:"); code == 0 || x.exists("tree") {
			t.Fatalf("%s -r: upload outside paths.write: exit %d, stderr %q", name, code, errOut)
		}
		if out, errOut, code := x.scp(t, append([]string{"-r"}, mode...), tree, "R:inbox/"); code != 0 || x.read("inbox/tree/in/f.txt") != "f\n" {
			t.Fatalf("%s -r: allowed upload: %d\n%s\n%s", name, code, out, errOut)
		}
		os.RemoveAll(filepath.Join(x.home, "inbox", "tree"))
	}
	if !x.deniedPath(t, "upload", "up.txt") || !x.deniedPath(t, "download", "secret.txt") {
		t.Error("scp -O refusals were not audited with their paths")
	}
}

// TestTransferRsync: rsync is judged on its command, strictly: an upload
// needs paths.write to name its destination as a tree, away from the
// home; options that write elsewhere or run things are refused.
func TestTransferRsync(t *testing.T) {
	x := newXferWorld(t, "{read: ['~/pub/**'], write: ['~/inbox/**']}")
	x.put(t, "pub/a.txt", "public\n")
	x.put(t, "secret.txt", "secret\n")
	x.put(t, "inbox/.keep", "")
	up := x.local(t, "up.txt", "uploaded\n")
	back := filepath.Join(x.clientDir, "back")
	if out, errOut, code := x.rsync(t, up, "R:inbox/"); code != 0 || x.read("inbox/up.txt") != "uploaded\n" {
		t.Fatalf("allowed rsync upload: %d\n%s\n%s", code, out, errOut)
	}
	if out, errOut, code := x.rsync(t, "-r", "R:pub/", back); code != 0 {
		t.Fatalf("allowed rsync download: %d\n%s\n%s", code, out, errOut)
	}
	for _, args := range [][]string{
		{up, "R:up.txt"},                                       // outside paths.write
		{up, "R:pub/"},                                         // read-only
		{"R:secret.txt", back + "-2"},                          // outside paths.read
		{"R:pub/../secret.txt", back + "-3"},                   // ".." is never resolved
		{"-a", up, "R:inbox/"},                                 // -a creates links and devices
		{"--remote-option=--log-file=.bashrc", up, "R:inbox/"}, // a log file written elsewhere
		{"--temp-dir=/tmp", up, "R:inbox/"},
		{"--backup", "--backup-dir=/tmp", up, "R:inbox/"},
	} {
		if _, errOut, code := x.rsync(t, args...); code == 0 || !strings.Contains(errOut, "portcullis: file transfer refused") {
			t.Errorf("rsync %v: exit %d, stderr %q", args, code, errOut)
		}
	}
	if x.exists("up.txt") || x.exists("pub/up.txt") {
		t.Error("a refused rsync upload landed")
	}
	if !x.deniedPath(t, "command", "rsync --server") {
		t.Error("refused rsync commands were not audited")
	}
}

// TestTransferCannotRunCode: with file-transfer alone (no paths), every
// way to plant a shell start-up file, an authorized key or ~/.ssh/rc is
// refused, through sftp, scp in both modes and rsync; then a legacy scp,
// which runs the login shell on the target, proves nothing planted ran.
// On the old gateway "put evil .bashrc" went through and the next scp -O
// ran it.
func TestTransferCannotRunCode(t *testing.T) {
	x := newXferWorld(t, "")
	orig := "# skel\n"
	x.put(t, ".bashrc", orig)
	x.put(t, "data.txt", "data\n")
	evil := x.local(t, "evil", "id > ~/pwned\n")
	dotdir := filepath.Join(x.clientDir, "tree")
	for _, f := range []string{".bashrc", ".profile", ".ssh/authorized_keys", ".ssh/rc", "ok.txt"} {
		p := filepath.Join(dotdir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("id > ~/pwned\n"), 0o644)
	}
	dotfile := filepath.Join(x.clientDir, "d", ".bashrc")
	os.MkdirAll(filepath.Dir(dotfile), 0o755)
	os.WriteFile(dotfile, []byte("id > ~/pwned\n"), 0o644)

	// sftp: every spelling and every second step, in one session ("-"
	// lets the batch go on after a refusal).
	batch := strings.Join([]string{
		"-put " + evil + " .bashrc",
		"-put " + evil + " ./.bashrc",
		"-put " + evil + " /" + x.home + "/.bashrc",
		"-put " + evil + " " + x.home + "/./.bashrc",
		"-mkdir sub",
		"-put " + evil + " sub/../.bashrc",
		"-put " + evil + " .BASHRC",
		"-put " + evil + " .profile",
		"-put " + evil + " .bash_profile",
		"-put " + evil + " .zshenv",
		"-put " + evil + " .pam_environment",
		"-put " + evil + " harmless",        // allowed ...
		"-rename harmless .bashrc",          // ... but not onto .bashrc
		"-ln -s harmless .bashrc",           // symlink named .bashrc
		"-ln -s .bashrc tobashrc",           // symlink pointing at .bashrc
		"-put " + evil + " tobashrc",        // (would write through it)
		"-ln harmless .bash_login",          // hard link named a start-up file
		"-ln .bashrc hardbashrc",            // hard link to .bashrc
		"-put " + evil + " hardbashrc",      // (would write its inode)
		"-chmod 777 .bashrc",                // setstat on the existing file
		"-mkdir .ssh",                       // the directory itself
		"-put " + evil + " .ssh/rc",         // if it existed
		"-put " + evil + " authorized_keys", // anywhere
		"-mkdir up",
		"-put " + evil + " up/.bashrc", // inside a directory, then ...
		"-rename up .ssh",              // ... renaming the directory
		"-rm .bashrc",
		"-mkdir cfg",
		"-mkdir cfg/fish",
		"-put " + evil + " cfg/fish/config.fish",
		"-rename cfg .config", // a directory renamed onto .config ...
		"-ln -s cfg .config",  // ... or linked there
		"-mkdir bin",          // ~/bin comes first on PATH after .profile
		"-mkdir .local",
		"-mkdir .local/bin",
	}, "\n") + "\n"
	if out, errOut, code := x.sftp(t, batch); code != 0 {
		t.Fatalf("sftp batch failed as a whole: %d\n%s\n%s", code, out, errOut)
	}
	// sftp-server run as an exec command (sftp -s PATH) is guarded the same.
	f := filepath.Join(x.clientDir, "batch-s")
	os.WriteFile(f, []byte("put "+evil+" via-exec\nput "+evil+" .bashrc\n"), 0o644)
	if _, _, code := runTool(t, "sftp", append(append([]string{}, x.opts(false)...),
		"-s", "/usr/lib/openssh/sftp-server", "-b", f, "alice~web1@127.0.0.1")...); code == 0 || !x.exists("via-exec") {
		t.Errorf("sftp -s /usr/lib/openssh/sftp-server: exit %d (want the second put refused), first put landed: %v", code, x.exists("via-exec"))
	}
	// scp in SFTP mode.
	for _, dst := range []string{"R:.bashrc", "R:./.bashrc", "R:/" + x.home + "/.bashrc", "R:.ssh/authorized_keys"} {
		if _, _, code := x.scp(t, nil, evil, dst); code == 0 {
			t.Errorf("scp %s succeeded", dst)
		}
	}
	x.scp(t, []string{"-r"}, dotdir, "R:")
	x.scp(t, nil, dotfile, "R:")
	// Legacy scp: the target path and every record of the stream.
	for _, dst := range []string{"R:.bashrc", "R:./.bashrc", "R:~/.bashrc", "R:.ssh/authorized_keys", "R:.profile"} {
		if _, _, code := x.scp(t, []string{"-O"}, evil, dst); code == 0 {
			t.Errorf("scp -O %s succeeded", dst)
		}
	}
	x.scp(t, []string{"-O", "-r"}, dotdir, "R:")
	x.scp(t, []string{"-O"}, dotfile, "R:")
	x.scp(t, []string{"-O"}, dotfile, "R:~")
	// rsync, whose file list the gateway cannot see: refused unless
	// paths.write names the destination.
	for _, args := range [][]string{{evil, "R:.bashrc"}, {"-r", dotdir + "/", "R:"}, {"-r", dotdir + "/", "R:sub"}, {dotfile, "R:"}} {
		if _, _, code := x.rsync(t, args...); code == 0 {
			t.Errorf("rsync %v succeeded", args)
		}
	}

	if got := x.read(".bashrc"); got != orig {
		t.Fatalf(".bashrc changed to %q", got)
	}
	for _, f := range []string{".BASHRC", ".bash_profile", ".bash_login", ".zshenv", ".pam_environment", ".ssh", "authorized_keys", "up/.bashrc", "tree/.bashrc", "tree/.ssh", "sub/.bashrc", "sub/tree", "bin", ".local/bin", ".config", "homelink"} {
		if x.exists(f) {
			t.Errorf("%s was created", f)
		}
	}
	if strings.Contains(x.read(".profile"), "pwned") {
		t.Error(".profile was overwritten")
	}
	// "put tobashrc" may create a plain file, never a link to .bashrc.
	if st, err := os.Lstat(filepath.Join(x.home, "tobashrc")); err == nil && st.Mode()&os.ModeSymlink != 0 {
		t.Error("a symbolic link to .bashrc was created")
	}
	st, err := os.Stat(filepath.Join(x.home, ".bashrc"))
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf(".bashrc mode changed: %v %v", st, err)
	}
	if n := st.Sys().(*syscall.Stat_t).Nlink; n != 1 {
		t.Errorf(".bashrc has %d hard links", n)
	}
	// What is allowed still is: the harmless upload, and the directory
	// tree's harmless file.
	if !x.exists("harmless") || !x.exists("tree/ok.txt") {
		t.Errorf("allowed uploads missing: harmless %v, tree/ok.txt %v", x.exists("harmless"), x.exists("tree/ok.txt"))
	}

	// A legacy scp runs "scp -f" through the account's login shell, which
	// reads .bashrc: nothing planted may run.
	back := filepath.Join(x.clientDir, "back")
	if out, errOut, code := x.scp(t, []string{"-O"}, "R:data.txt", back); code != 0 {
		t.Fatalf("scp -O download: %d\n%s\n%s", code, out, errOut)
	}
	if x.exists("pwned") {
		t.Fatal("a planted start-up file ran on the target")
	}
	// Control: the same download does run .bashrc when one is there, so
	// the check above can fail.
	x.put(t, ".bashrc", "echo ran > ~/control\n")
	x.scp(t, []string{"-O"}, "R:data.txt", back)
	if !x.exists("control") {
		t.Fatal("control: the login shell did not read .bashrc; this test proves nothing here")
	}
	if !x.deniedPath(t, "", ".bashrc") {
		t.Error("no request.deny event names .bashrc")
	}
}

// TestTransferProcAliasesHome: /proc/self/cwd is the home of the
// sftp-server or scp that opens it, and /proc/self/fd/N any directory it
// has open, so "/proc/self/cwd/bin/ls" writes ~/bin/ls under a name that
// is not in the home. Writes through /proc (and /dev/fd), and links to it,
// are refused like ~/bin itself.
func TestTransferProcAliasesHome(t *testing.T) {
	x := newXferWorld(t, "")
	evil := x.local(t, "evil", "id > ~/pwned\n")
	st, err := os.Stat(x.home)
	if err != nil {
		t.Fatal(err)
	}
	batch := strings.Join([]string{
		"-mkdir /proc/self/cwd/bin",
		"-put " + evil + " /proc/self/cwd/bin",
		"-mkdir /proc/thread-self/cwd/.local",
		"-put " + evil + " /proc/self/cwd/.local",
		"-ln -s /proc/self/cwd homealias",
		"-mkdir homealias/bin",
		"-chmod 777 /proc/self/cwd",
		"-put " + evil + " /dev/fd/3",
	}, "\n") + "\n"
	if out, errOut, code := x.sftp(t, batch); code != 0 {
		t.Fatalf("sftp batch failed as a whole: %d\n%s\n%s", code, out, errOut)
	}
	x.scp(t, nil, evil, "R:/proc/self/cwd/bin")
	x.scp(t, []string{"-O"}, evil, "R:/proc/self/cwd/bin")
	for _, f := range []string{"bin", ".local", "homealias"} {
		if x.exists(f) {
			t.Errorf("%s was created", f)
		}
	}
	if st2, err := os.Stat(x.home); err != nil || st2.Mode() != st.Mode() {
		t.Errorf("home mode changed from %v to %v (%v)", st.Mode(), st2.Mode(), err)
	}
	if !x.deniedPath(t, "", "/proc/self/cwd") {
		t.Error("no request.deny event names /proc/self/cwd")
	}
}

// TestTransferSystemdUserUnits: systemd --user loads units, and starts
// what default.target wants, from ~/.local/share/systemd/user as from
// ~/.config/systemd/user: neither a directory renamed to ~/.local/share
// nor one made there may bring units along.
func TestTransferSystemdUserUnits(t *testing.T) {
	x := newXferWorld(t, "")
	x.put(t, ".local/keep", "x")
	x.put(t, "lsh/systemd/user/default.target.wants/x.service", "[Service]\nExecStart=/bin/sh -c 'id > pwned'\n")
	unit := x.local(t, "x.service", "[Service]\nExecStart=/bin/sh -c 'id > pwned'\n")
	batch := "-rename lsh .local/share\n-mkdir .local/share\n-mkdir .local/share/systemd\n" +
		"-put " + unit + " .local/share/systemd/x.service\n"
	if out, errOut, code := x.sftp(t, batch); code != 0 {
		t.Fatalf("sftp batch failed as a whole: %d\n%s\n%s", code, out, errOut)
	}
	if x.exists(".local/share") {
		t.Error(".local/share was created")
	}
	if !x.deniedPath(t, "", ".local/share") {
		t.Error("no request.deny event names .local/share")
	}
}

// TestTransferPathsFollowPolicyChange: path rules are authorization, so a
// policy change applies to the next request of a running sftp session,
// not only to new sessions.
func TestTransferPathsFollowPolicyChange(t *testing.T) {
	x := newXferWorld(t, "{write: ['~/inbox/**']}")
	x.put(t, "inbox/.keep", "")
	up := x.local(t, "up.txt", "uploaded\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sftp", append(append([]string{}, x.opts(false)...), "-b", "-", "alice~web1@127.0.0.1")...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(stdin, "put %s inbox/one\n", up)
	for !x.exists("inbox/one") {
		if ctx.Err() != nil {
			t.Fatalf("first upload never landed: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	x.setPaths("{write: ['~/other/**']}") // re-checks live sessions before it returns
	fmt.Fprintf(stdin, "-put %s inbox/two\nput %s inbox/three\n", up, up)
	stdin.Close()
	if err := cmd.Wait(); err == nil {
		t.Fatal("sftp succeeded after its paths were taken away")
	}
	if x.exists("inbox/two") || x.exists("inbox/three") {
		t.Fatalf("upload after the policy change landed; stderr %s", stderr.String())
	}
}
