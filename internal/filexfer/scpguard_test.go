package filexfer

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func noTilde(p string) (string, error) {
	if strings.HasPrefix(p, "~") {
		return "", errors.New("tilde")
	}
	return p, nil
}

// TestSCPGuard runs a source's record stream through the guard: allowed
// records and their data reach the sink, refused ones are answered to the
// source and their data never comes (a real source skips it).
func TestSCPGuard(t *testing.T) {
	for _, tc := range []struct {
		name    string
		command string
		stream  string // what the source sends, as the real source would after the answers
		sink    string // what must reach the sink
		toSrc   string // refusals
		asked   []string
	}{
		{
			name: "upload into a directory", command: "scp -d -t /up",
			stream: "C0644 3 a\nabc\x00", sink: "C0644 3 a\nabc\x00",
			asked: []string{"upload write /up/a"},
		},
		{
			name: "upload whose target may be the file itself", command: "scp -t /up/nowrite",
			stream: "C0644 3 a\n", toSrc: "\x01scp: denied /up/nowrite/a\n",
		},
		{
			name: "upload refused, next file allowed", command: "scp -d -t /up",
			stream: "T1 0 1 0\nC0644 3 nowrite\nC0644 2 b\nxy\x00",
			sink:   "T1 0 1 0\nC0644 2 b\nxy\x00", toSrc: "\x01scp: denied /up/nowrite\n",
		},
		{
			name: "recursive upload: directory refused with its contents", command: "scp -r -d -t /up",
			stream: "D0755 0 nowrite\nD0755 0 ok\nC0644 1 f\nz\x00E\n",
			sink:   "D0755 0 ok\nC0644 1 f\nz\x00E\n", toSrc: "\x01scp: denied /up/nowrite\n",
			asked: []string{"upload write /up/nowrite", "upload write /up/ok", "upload write /up/ok/f"},
		},
		{
			name: "recursive upload: a file deep inside", command: "scp -r -d -t /up",
			stream: "D0755 0 d\nC0644 1 nowrite\nE\n",
			sink:   "D0755 0 d\nE\n", toSrc: "\x01scp: denied /up/d/nowrite\n",
		},
		{
			name: "names with a slash or dots", command: "scp -d -t /up",
			stream: "C0644 1 ../x\nC0644 1 ..\nD0755 0 a/b\n",
			toSrc:  "\x01scp: unexpected file name\n\x01scp: unexpected file name\n\x01scp: unexpected file name\n",
		},
		{
			name: "source error line passes", command: "scp -d -t /up",
			stream: "C0644 3 a\nab\x01scp: a: read error\n", sink: "C0644 3 a\nab\x01scp: a: read error\n",
		},
		{
			name: "download", command: "scp -f /pub/a",
			stream: "C0644 2 a\nhi\x00", sink: "C0644 2 a\nhi\x00", asked: []string{"download read /pub/a"},
		},
		{
			name: "download refused", command: "scp -f /noread/a",
			stream: "C0644 2 a\n", toSrc: "\x01scp: denied /noread/a\n",
		},
		{
			name: "download of a name not asked for", command: "scp -f /pub/a",
			stream: "C0644 2 b\n", toSrc: "\x01scp: not a file the client asked for\n",
		},
		{
			name: "recursive download, a file refused", command: "scp -r -f /pub",
			stream: "D0755 0 pub\nC0644 1 noread\nC0644 1 ok\nk\x00E\n",
			sink:   "D0755 0 pub\nC0644 1 ok\nk\x00E\n", toSrc: "\x01scp: denied /pub/noread\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := ParseSCPCommand(tc.command, noTilde)
			if err != nil {
				t.Fatal(err)
			}
			for _, chunk := range []int{1, 1 << 20} {
				var target, client bytes.Buffer
				tj := &testJudge{}
				g := cmd.Guard(tj.judge(), &target, &client)
				srcIn, sink, src := g.Requests(), &target, &client
				if !cmd.Upload() {
					srcIn, sink, src = g.Responses(), &client, &target
				}
				for b := []byte(tc.stream); len(b) > 0; {
					n := min(chunk, len(b))
					if _, err := srcIn.Write(b[:n]); err != nil {
						t.Fatal(err)
					}
					b = b[n:]
				}
				if sink.String() != tc.sink || src.String() != tc.toSrc {
					t.Fatalf("chunk %d: sink got %q (want %q), source got %q (want %q)", chunk, sink, tc.sink, src, tc.toSrc)
				}
				if tc.asked != nil && strings.Join(tj.asked, "|") != strings.Join(tc.asked, "|") {
					t.Fatalf("asked %q, want %q", tj.asked, tc.asked)
				}
			}
		})
	}
}

func TestParseSCPCommand(t *testing.T) {
	for _, tc := range []struct {
		cmd string
		ok  bool
	}{
		{"scp -t /x", true},
		{"scp -r -d -t -- /x", true},
		{"scp -v -p -f a b", true},
		{"scp -t a b", false},          // one target
		{"scp -t -f x", false},         // both
		{"scp -S /bin/sh -t x", false}, // not a server option
		{"scp -t ~other/x", false},     // cannot be judged
		{"scp x", false},
		{"rsync -t x", false},
	} {
		if _, err := ParseSCPCommand(tc.cmd, noTilde); (err == nil) != tc.ok {
			t.Errorf("ParseSCPCommand(%q) = %v, want ok %v", tc.cmd, err, tc.ok)
		}
	}
}

func TestParseRsyncCommand(t *testing.T) {
	for _, tc := range []struct {
		cmd           string
		ok            bool
		sender, links bool
		paths         string
	}{
		{"rsync --server -e.LsfxCIvu . dest", true, false, false, "dest"},
		{"rsync --server -logDtpre.iLsfxCIvu . dest", true, false, true, "dest"},
		{"rsync --server -vlogDtpre.iLsfxCIvu --delete . dest", true, false, true, "dest"},
		{"rsync --server --sender -logDtpre.iLsfxCIvu . a b", true, true, true, "a b"},
		{"rsync --server -e.LsfxCIvu .", true, false, false, "."},
		{"rsync --server --log-file=.bashrc -e.x . d", false, false, false, ""},
		{"rsync --server --daemon .", false, false, false, ""},
		{"rsync --server -T /tmp -e.x . d", false, false, false, ""},
		{"rsync --server -rTe.x . d", false, false, false, ""},
		{"rsync --server -re . d", false, false, false, ""},
		{"rsync --server --temp-dir=/tmp -e.x . d", false, false, false, ""},
		{"rsync --server -e.x . a b", false, false, false, ""}, // two destinations
		{"rsync --server -e.x d", false, false, false, ""},     // no "."
		{"rsync --sender . x", false, false, false, ""},
		{"rsync --server -e.x . ~other", false, false, false, ""},
	} {
		c, err := ParseRsyncCommand(tc.cmd, noTilde)
		if (err == nil) != tc.ok {
			t.Errorf("ParseRsyncCommand(%q) = %v, want ok %v", tc.cmd, err, tc.ok)
			continue
		}
		if err == nil && (c.Sender != tc.sender || c.Links != tc.links || strings.Join(c.Paths, " ") != tc.paths) {
			t.Errorf("ParseRsyncCommand(%q) = %+v", tc.cmd, c)
		}
	}
}

// FuzzSCPGuard: any command and stream, never a panic, and nothing
// reaches the sink that the judge was not asked about when the stream
// starts with a record.
func FuzzSCPGuard(f *testing.F) {
	f.Add("scp -r -d -t /up", []byte("D0755 0 d\nC0644 1 nowrite\nE\nC0644 1 a\nz\x00"), 2)
	f.Add("scp -r -f /pub", []byte("D0755 0 pub\nC0644 1 ok\nk\x00E\n"), 1)
	f.Add("scp -t x", []byte("C0644 99999999999999999999 a\n"), 5)
	f.Fuzz(func(t *testing.T, command string, stream []byte, chunk int) {
		chunk = max(1, chunk%32)
		cmd, err := ParseSCPCommand(command, noTilde)
		if err != nil {
			return
		}
		var target, client bytes.Buffer
		g := cmd.Guard((&testJudge{}).judge(), &target, &client)
		w := g.Requests()
		if !cmd.Upload() {
			w = g.Responses()
		}
		for i := 0; i < len(stream); i += chunk {
			if _, err := w.Write(stream[i:min(i+chunk, len(stream))]); err != nil {
				return
			}
		}
	})
}

// FuzzParseRsyncCommand: never a panic; an accepted command names no
// option outside the allowed sets.
func FuzzParseRsyncCommand(f *testing.F) {
	f.Add("rsync --server -logDtpre.iLsfxCIvu --delete . dest")
	f.Add("rsync --server --sender -e.LsfxCIvu . a b")
	f.Add("rsync --server --log-file=x -e. . d")
	f.Fuzz(func(t *testing.T, command string) {
		c, err := ParseRsyncCommand(command, noTilde)
		if err != nil {
			return
		}
		if strings.Contains(command, "--log-file") || strings.Contains(command, "--daemon") {
			for _, p := range c.Paths {
				if strings.Contains(p, "--log-file") || strings.Contains(p, "--daemon") {
					return // a path may be spelled like an option after "."
				}
			}
			if !strings.Contains(command, " . ") {
				t.Fatalf("accepted %q", command)
			}
		}
	})
}
