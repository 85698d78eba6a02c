package filexfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

const sftpServer = "/usr/lib/openssh/sftp-server"

// Environment of the proxy helper: which protocol, where to write the ops
// it saw, and the directory to run the server side in.
const (
	envProxyKind = "FILEXFER_TEST_PROXY_KIND"
	envProxyOps  = "FILEXFER_TEST_PROXY_OPS"
	envProxyDir  = "FILEXFER_TEST_PROXY_DIR"
)

// TestMain lets the test binary stand in for the target's side of a
// channel. `sftp -D PROGRAM` runs PROGRAM with its stdin and stdout as the
// SFTP channel; `scp -S PROGRAM` runs PROGRAM in place of ssh, with the
// remote command last. With the proxy variables set, this binary runs the
// real sftp-server, or the real scp command, behind a tracker instead of
// the tests (before the testing package could write to stdout, which is
// the channel).
func TestMain(m *testing.M) {
	if out := os.Getenv(envProxyOps); out != "" {
		var err error
		switch os.Getenv(envProxyKind) {
		case "sftp":
			err = proxy(out, os.Getenv(envProxyDir), exec.Command(sftpServer), newSFTP)
		case "scp":
			command := os.Args[len(os.Args)-1]
			err = proxy(out, os.Getenv(envProxyDir), exec.Command("/bin/sh", "-c", command), newSCP(command))
		default:
			err = fmt.Errorf("unknown proxy kind %q", os.Getenv(envProxyKind))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "proxy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// proxyResult is what the helper hands back to the test.
type proxyResult struct {
	Ops []Op
	Err string
}

// tee observes, then writes, as the gateway does.
type tee struct {
	w       io.Writer
	observe func([]byte)
}

func (t tee) Write(p []byte) (int, error) {
	t.observe(p)
	return t.w.Write(p)
}

// proxy runs cmd in dir, copies both directions between it and this
// process's stdin/stdout through a tracker, and writes what the tracker
// reported to out.
func proxy(out, dir string, cmd *exec.Cmd, newObs func(func(Op)) observer) error {
	var res proxyResult
	tr := newObs(func(op Op) { res.Ops = append(res.Ops, op) })
	if tr == nil || reflect.ValueOf(tr).IsNil() {
		return fmt.Errorf("no tracker for %q", cmd.Args)
	}
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	srvOut, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(tee{in, tr.FromClient}, os.Stdin)
		in.Close() // the client is done: let the server see EOF and exit
	}()
	_, _ = io.Copy(tee{os.Stdout, tr.FromServer}, srvOut)
	_ = cmd.Wait()
	tr.Close()
	if err := tr.(interface{ Err() error }).Err(); err != nil {
		res.Err = err.Error()
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o600)
}

// TestRealSFTP drives OpenSSH's sftp client against its sftp-server through
// the tracker and checks the operations it reports.
func TestRealSFTP(t *testing.T) {
	sftp, err := exec.LookPath("sftp")
	if err != nil {
		t.Skip("no sftp client")
	}
	if _, err := os.Stat(sftpServer); err != nil {
		t.Skip("no " + sftpServer)
	}
	self, err := os.Executable()
	if err != nil || strings.ContainsAny(self, " \t'\"\\") {
		t.Skipf("test binary path %q cannot be passed to sftp -D", self)
	}
	tmp, err := filepath.EvalSymlinks(t.TempDir()) // sftp reports real paths
	if err != nil {
		t.Fatal(err)
	}
	local, remote := filepath.Join(tmp, "local"), filepath.Join(tmp, "remote")
	for _, d := range []string{local, remote} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	content := make([]byte, 300<<10+123) // several pipelined 32 KiB writes and reads
	_, _ = rand.Read(content)
	if err := os.WriteFile(filepath.Join(local, "up.bin"), content, 0o600); err != nil {
		t.Fatal(err)
	}
	batch := filepath.Join(tmp, "batch")
	script := strings.Join([]string{
		"put " + filepath.Join(local, "up.bin") + " up.bin",
		"get up.bin " + filepath.Join(local, "down.bin"),
		"mkdir newdir",
		"rename up.bin newdir/moved.bin",
		"chmod 600 newdir/moved.bin",
		"symlink newdir/moved.bin link",
		"ln newdir/moved.bin hard",
		"-rm nonexistent",
		"rm link",
		"rm hard",
		"rm newdir/moved.bin",
		"rmdir newdir",
		"",
	}, "\n")
	if err := os.WriteFile(batch, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	opsFile := filepath.Join(tmp, "ops.json")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sftp, "-q", "-b", batch, "-D", self)
	cmd.Env = append(os.Environ(), envProxyKind+"=sftp", envProxyOps+"="+opsFile, envProxyDir+"="+remote)
	cmd.WaitDelay = 5 * time.Second
	var outBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	if err := cmd.Run(); err != nil {
		t.Fatalf("sftp: %v\n%s", err, outBuf.Bytes())
	}
	down, err := os.ReadFile(filepath.Join(local, "down.bin"))
	if err != nil || !bytes.Equal(down, content) {
		t.Fatalf("the round trip through the proxy changed the file (%v)", err)
	}
	raw, err := os.ReadFile(opsFile)
	if err != nil {
		t.Fatalf("the proxy wrote no ops: %v\nsftp said:\n%s", err, outBuf.Bytes())
	}
	var res proxyResult
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.Err != "" {
		t.Fatalf("tracker stopped: %s", res.Err)
	}
	r := func(p string) string { return remote + "/" + p }
	size := int64(len(content))
	want := []Op{
		{Kind: "upload", Path: r("up.bin"), Bytes: size},
		{Kind: "download", Path: r("up.bin"), Bytes: size},
		{Kind: "mkdir", Path: r("newdir")},
		{Kind: "rename", Path: r("up.bin"), Path2: r("newdir/moved.bin")},
		{Kind: "setstat", Path: r("newdir/moved.bin")},
		{Kind: "symlink", Path: r("link"), Path2: "newdir/moved.bin"},
		{Kind: "hardlink", Path: r("hard"), Path2: r("newdir/moved.bin")},
		{Kind: "remove", Path: r("nonexistent"), Error: "No such file"},
		{Kind: "remove", Path: r("link")},
		{Kind: "remove", Path: r("hard")},
		{Kind: "remove", Path: r("newdir/moved.bin")},
		{Kind: "rmdir", Path: r("newdir")},
	}
	if !reflect.DeepEqual(res.Ops, want) {
		var g, w strings.Builder
		for _, op := range res.Ops {
			fmt.Fprintf(&g, "  %+v\n", op)
		}
		for _, op := range want {
			fmt.Fprintf(&w, "  %+v\n", op)
		}
		t.Fatalf("ops:\n%swant:\n%s", g.String(), w.String())
	}
}

// TestRealSCP drives OpenSSH's scp in its legacy mode (-O), with this test
// binary in place of ssh running the real "scp -t" or "scp -f" locally
// behind the tracker.
func TestRealSCP(t *testing.T) {
	scp, err := exec.LookPath("scp")
	if err != nil {
		t.Skip("no scp")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	local, remote := filepath.Join(tmp, "local"), filepath.Join(tmp, "remote")
	files := map[string]int{"a.txt": 5, "b.bin": 70 << 10, "dir/c.txt": 3, "dir/sub/d.txt": 0}
	for name, n := range files {
		p := filepath.Join(local, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, n)
		_, _ = rand.Read(data)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{filepath.Join(remote, "dst"), filepath.Join(tmp, "back")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}

	// scpRun runs scp -O with args and returns the ops the tracker saw.
	n := 0
	scpRun := func(wantFail bool, args ...string) []Op {
		t.Helper()
		n++
		opsFile := filepath.Join(tmp, fmt.Sprintf("ops%d.json", n))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, scp, append([]string{"-O", "-q", "-S", self}, args...)...)
		cmd.Dir = local
		cmd.Env = append(os.Environ(), envProxyKind+"=scp", envProxyOps+"="+opsFile, envProxyDir+"="+remote)
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if (err != nil) != wantFail {
			t.Fatalf("scp %q: %v\n%s", args, err, out)
		}
		raw, err := os.ReadFile(opsFile)
		if err != nil {
			t.Fatalf("scp %q: the proxy wrote no ops: %v\n%s", args, err, out)
		}
		var res proxyResult
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatal(err)
		}
		if res.Err != "" {
			t.Fatalf("scp %q: tracker stopped: %s", args, res.Err)
		}
		sort.Slice(res.Ops, func(i, j int) bool { return res.Ops[i].Path < res.Ops[j].Path })
		return res.Ops
	}
	check := func(got, want []Op) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ops:\n %+v\nwant:\n %+v", got, want)
		}
	}

	// Two files and a directory into a directory (scp sends -r -d -p).
	check(scpRun(false, "-r", "-p", "a.txt", "b.bin", "dir", "host:dst"), []Op{
		{Kind: "upload", Path: "dst/a.txt", Bytes: 5},
		{Kind: "upload", Path: "dst/b.bin", Bytes: 70 << 10},
		{Kind: "upload", Path: "dst/dir/c.txt", Bytes: 3},
		{Kind: "upload", Path: "dst/dir/sub/d.txt"},
	})
	// One file to a new name.
	check(scpRun(false, "a.txt", "host:renamed.txt"), []Op{
		{Kind: "upload", Path: "renamed.txt", Bytes: 5},
	})
	// A recursive download, and a glob.
	check(scpRun(false, "-r", "host:dst", filepath.Join(tmp, "back")), []Op{
		{Kind: "download", Path: "dst/a.txt", Bytes: 5},
		{Kind: "download", Path: "dst/b.bin", Bytes: 70 << 10},
		{Kind: "download", Path: "dst/dir/c.txt", Bytes: 3},
		{Kind: "download", Path: "dst/dir/sub/d.txt"},
	})
	check(scpRun(false, "host:dst/*.txt", filepath.Join(tmp, "back")), []Op{
		{Kind: "download", Path: "dst/a.txt", Bytes: 5},
	})
	// A file that is not there, and a target that cannot be written.
	check(scpRun(true, "host:nope", filepath.Join(tmp, "back")), []Op{
		{Kind: "download", Path: "nope", Error: "scp: nope: No such file or directory"},
	})
	check(scpRun(true, "a.txt", "host:nodir/x"), []Op{
		{Kind: "upload", Path: "nodir/x", Error: "scp: nodir/x: No such file or directory"},
	})
	back, err := os.ReadFile(filepath.Join(tmp, "back", "dst", "b.bin"))
	orig, _ := os.ReadFile(filepath.Join(local, "b.bin"))
	if err != nil || !bytes.Equal(back, orig) {
		t.Fatalf("the round trip through the proxy changed the file (%v)", err)
	}
}
