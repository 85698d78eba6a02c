package sshgate

import (
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/shellcmd"
)

func TestLineGateFilter(t *testing.T) {
	// Denies a line that runs a command with FORBID in it, judged on the
	// parsed shell like the policy does.
	deny := func(line string, _ bool) (bool, string) {
		res := shellcmd.Parse(line)
		for _, c := range res.Commands {
			for _, f := range c.Forms {
				if strings.Contains(f, "FORBID") {
					return false, "denied"
				}
			}
		}
		return true, ""
	}
	clear := "\x07\x05\x15\r"
	tests := []struct {
		name    string
		pty     bool
		in      []string // chunks as they arrive
		want    string
		denials int
	}{
		{"allowed line passes", true, []string{"ls\r"}, "ls\r", 0},
		{"denied line is erased", true, []string{"echo FORBID\r"}, "echo FORBID" + clear, 1},
		{"edited into a denied line", true, []string{"echo FORBIX", "\x7fD\r", "ok\r"}, "echo FORBIX\x7fD" + clear + "ok\r", 1},
		{"denied inside a paste ends it and drops the rest", true, []string{"\x1b[200~echo FORBID\recho later\x1b[201~", "ok\r"},
			"\x1b[200~echo FORBID" + "\x1b[201~" + clear + "ok\r", 1},
		{"no pty: lines held until allowed", false, []string{"echo a\necho FOR", "BID\necho b\n"}, "echo a\necho b\n", 1},
		// Continued lines are judged whole, as the shell runs them; a
		// denied one is dropped with Ctrl-C, which drops its earlier lines
		// in the shell too.
		{"continuation", true, []string{"echo FOR\\\r", "BID\r", "ok\r"}, "echo FOR\\\rBID\x07\x05\x15\x03ok\r", 1},
		{"continuation with Enter as LF", true, []string{"r\\\n", "m FORBID\r"}, "r\\\nm FORBID\x07\x05\x15\x03", 1},
		{"open quote", true, []string{"echo 'a\r", "b' $(echo FORBID)\r"}, "echo 'a\rb' $(echo FORBID)\x07\x05\x15\x03", 1},
		{"here-document", true, []string{"cat <<E\r", "$(echo FORBID)\r", "E\r"}, "cat <<E\r$(echo FORBID)\rE\x07\x05\x15\x03", 1},
		{"allowed continuation", true, []string{"echo a\\\r", "b\r"}, "echo a\\\rb\r", 0},
		{"no pty: continuation", false, []string{"echo FOR\\\nBID\necho ok\n"}, "echo ok\n", 1},
		{"no pty: here-document", false, []string{"cat <<E\n$(echo FORBID)\nE\necho ok\n"}, "echo ok\n", 1},
		{"no pty: allowed here-document", false, []string{"cat <<E\nFORBID is data\nE\n"}, "cat <<E\nFORBID is data\nE\n", 0},
		{"no pty: partial line held", false, []string{"echo a"}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			denials := 0
			g := &lineGate{pty: tt.pty, check: deny, deny: func(string) { denials++ }}
			if tt.pty {
				g.alt = &altScreen{}
			}
			var out []byte
			for _, chunk := range tt.in {
				out = g.filter(out, []byte(chunk))
			}
			if string(out) != tt.want || denials != tt.denials {
				t.Fatalf("out %q (%d denials), want %q (%d)", out, denials, tt.want, tt.denials)
			}
		})
	}

	// Output alone (printf '\033[?1049h') does not pause checking.
	g := &lineGate{pty: true, alt: &altScreen{}, check: deny, deny: func(string) {}}
	g.alt.observe([]byte("\x1b[?1049h"))
	if g.alt.active() {
		t.Fatal("alternate screen entered by output alone")
	}

	// After a line that runs a listed full-screen program (vim), the
	// program's alternate screen pauses checking until it leaves it.
	g = &lineGate{pty: true, alt: &altScreen{}, check: deny, deny: func(string) { t.Fatal("checked in alternate screen") }}
	g.alt.arm(true)
	g.alt.observe([]byte("\x1b[?1049h\x1b[H"))
	if out := g.filter(nil, []byte("iFORBID\r")); string(out) != "iFORBID\r" {
		t.Fatalf("alternate screen: %q", out)
	}
	g.alt.observe([]byte("bye\x1b[?1049l"))
	if g.alt.active() {
		t.Fatal("still in alternate screen after leaving it")
	}
	// The program ended: entering again takes a new line.
	g.alt.observe([]byte("\x1b[?1049h"))
	if g.alt.active() {
		t.Fatal("alternate screen re-entered after the program ended")
	}
}

func TestIsFileTransfer(t *testing.T) {
	for cmd, want := range map[string]bool{
		"scp -t /tmp/x":                             true,
		"scp -f -- 'dir with space/file'":           true,
		"scp -r -d -t .":                            true,
		"rsync --server -vlogDtpre.iLsfxCIvu . dst": true,
		"/usr/lib/openssh/sftp-server":              true,
		"scp -t /tmp/x; echo PWNED":                 false,
		"scp -t $(id)":                              false,
		"scp -t x && id":                            false,
		"scp -t `id`":                               false,
		"scp -t x\nid":                              false,
		"scp -t x | sh":                             false,
		"rsync --server . x > /etc/passwd":          false,
		"scp /tmp/x":                                false,
		"rsync -av a b":                             false,
		"echo scp -t":                               false,
	} {
		if got := isFileTransfer(cmd); got != want {
			t.Errorf("isFileTransfer(%q) = %v, want %v", cmd, got, want)
		}
	}
}
