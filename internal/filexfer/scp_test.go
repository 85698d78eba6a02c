package filexfer

import (
	"bytes"
	"reflect"
	"testing"
)

func bs(s string) []byte { return []byte(s) }

var (
	ack = bs("\x00") // the sink's OK
	end = bs("\x00") // the end of a file's data
)

func newSCP(cmd string) func(func(Op)) observer {
	return func(report func(Op)) observer { return NewSCP(cmd, report) }
}

// up and down build the steps of an upload (the client is the source) and
// a download (the target is the source).
func up(parts ...[]byte) step   { return c(parts...) }
func down(parts ...[]byte) step { return s(parts...) }

var scpCases = []struct {
	name  string
	cmd   string
	steps []step
	want  []Op
}{
	{
		name: "upload of two files and a directory",
		cmd:  "scp -r -d -t /dst",
		steps: []step{
			s(ack),
			up(bs("C0644 5 a.txt\n")), s(ack), up(bs("hello"), end), s(ack),
			up(bs("C0600 3 b.bin\n")), s(ack), up(bs("abc"), end), s(ack),
			up(bs("D0755 0 sub\n")), s(ack),
			up(bs("C0644 4 c.txt\n")), s(ack), up(bs("data"), end), s(ack),
			up(bs("D0700 0 deeper\n")), s(ack),
			up(bs("C0644 0 empty\n")), s(ack), up(end), s(ack),
			up(bs("E\n")), s(ack),
			up(bs("E\n")), s(ack),
			up(bs("C0644 2 last\n")), s(ack), up(bs("zz"), end), s(ack),
		},
		want: []Op{
			{Kind: "upload", Path: "/dst/a.txt", Bytes: 5},
			{Kind: "upload", Path: "/dst/b.bin", Bytes: 3},
			{Kind: "upload", Path: "/dst/sub/c.txt", Bytes: 4},
			{Kind: "upload", Path: "/dst/sub/deeper/empty"},
			{Kind: "upload", Path: "/dst/last", Bytes: 2},
		},
	},
	{
		name: "upload with times to a file name",
		cmd:  "scp -p -t /tmp/x.conf",
		steps: []step{
			s(ack),
			up(bs("T1700000000 0 1700000000 0\n")), s(ack),
			up(bs("C0644 6 nginx.conf\n")), s(ack), up(bs("server"), end), s(ack),
		},
		want: []Op{{Kind: "upload", Path: "/tmp/x.conf", Bytes: 6}},
	},
	{
		name: "upload to the home directory, quoted command",
		cmd:  `scp -t -- '.'`,
		steps: []step{
			s(ack), up(bs("C0644 1 -f\n")), s(ack), up(bs("!"), end), s(ack),
		},
		want: []Op{{Kind: "upload", Path: "-f", Bytes: 1}},
	},
	{
		name: "upload refusals: a file, a directory, a write error",
		cmd:  "scp -r -t /ro",
		steps: []step{
			s(ack),
			up(bs("C0644 5 a\n")), s(bs("\x01scp: /ro/a: Permission denied\n")),
			up(bs("D0755 0 d\n")), s(bs("\x01scp: /ro/d: Permission denied\n")),
			up(bs("C0644 5 b\n")), s(ack), up(bs("hello"), end), s(bs("\x01scp: /ro/b: No space left on device\n")),
			up(bs("C0644 1 c\n")), s(ack), up(bs("!"), end), s(ack),
		},
		want: []Op{
			{Kind: "upload", Path: "/ro/a", Error: "scp: /ro/a: Permission denied"},
			{Kind: "upload", Path: "/ro/d", Error: "scp: /ro/d: Permission denied"},
			{Kind: "upload", Path: "/ro/b", Bytes: 5, Error: "scp: /ro/b: No space left on device"},
			{Kind: "upload", Path: "/ro/c", Bytes: 1},
		},
	},
	{
		name: "upload: target refused at the start",
		cmd:  "scp -d -t /nodir",
		steps: []step{
			s(bs("\x01scp: /nodir: Not a directory\n")),
		},
		want: []Op{{Kind: "upload", Path: "/nodir", Error: "scp: /nodir: Not a directory"}},
	},
	{
		name: "upload cut off in the middle",
		cmd:  "scp -t /tmp/f",
		steps: []step{
			s(ack), up(bs("C0644 100 f\n")), s(ack), up(bs("0123456789")),
		},
		want: []Op{{Kind: "upload", Path: "/tmp/f", Bytes: 10, Error: "incomplete: 10 of 100 bytes"}},
	},
	{
		name: "download of one file",
		cmd:  "scp -f /srv/report.pdf",
		steps: []step{
			c(ack),
			down(bs("C0640 7 report.pdf\n")), c(ack), down(bs("%PDF-1."), end), c(ack),
		},
		want: []Op{{Kind: "download", Path: "/srv/report.pdf", Bytes: 7}},
	},
	{
		name: "recursive download with times, a source read error and a missing file",
		cmd:  "/usr/bin/scp -r -p -f /srv/dir",
		steps: []step{
			c(ack),
			down(bs("T1 0 1 0\n")), c(ack),
			down(bs("D0755 0 dir\n")), c(ack),
			down(bs("T1 0 1 0\n")), c(ack),
			down(bs("C0644 3 one\n")), c(ack), down(bs("111"), end), c(ack),
			down(bs("C0644 3 bad\n")), c(ack), down(bs("\x00\x00\x00"), bs("\x01scp: /srv/dir/bad: Input/output error\n")), c(ack),
			down(bs("\x01scp: /srv/dir/secret: Permission denied\n")),
			down(bs("E\n")), c(ack),
		},
		want: []Op{
			{Kind: "download", Path: "/srv/dir/one", Bytes: 3},
			{Kind: "download", Path: "/srv/dir/bad", Bytes: 3, Error: "scp: /srv/dir/bad: Input/output error"},
			{Kind: "download", Path: "/srv/dir", Error: "scp: /srv/dir/secret: Permission denied"},
		},
	},
	{
		name: "download of a glob; the client refuses one file",
		cmd:  `scp -f "/var/log/*.log"`,
		steps: []step{
			c(ack),
			down(bs("C0644 2 a.log\n")), c(bs("\x01scp: a.log: Permission denied\n")),
			down(bs("C0644 2 b.log\n")), c(ack), down(bs("bb"), end), c(ack),
		},
		want: []Op{
			{Kind: "download", Path: "/var/log/a.log", Error: "scp: a.log: Permission denied"},
			{Kind: "download", Path: "/var/log/b.log", Bytes: 2},
		},
	},
	{
		name: "download of a missing file",
		cmd:  "scp -f /nope",
		steps: []step{
			c(ack), down(bs("\x01scp: /nope: No such file or directory\n")),
		},
		want: []Op{{Kind: "download", Path: "/nope", Error: "scp: /nope: No such file or directory"}},
	},
	{
		name: "not the scp protocol: nothing more is reported",
		cmd:  "scp -f /x",
		steps: []step{
			c(ack), down(bs("Welcome to host!\n")),
			down(bs("C0644 2 x\n")), c(ack), down(bs("xx"), end), c(ack),
		},
		want: nil,
	},
}

func TestSCP(t *testing.T) {
	for _, tc := range scpCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{0, 1, 2, 5} {
				got := run(newSCP(tc.cmd), tc.steps, chunk)
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("chunks of %d:\n got %+v\nwant %+v", chunk, got, tc.want)
				}
			}
		})
	}
}

func TestSCPEverySplit(t *testing.T) {
	tc := scpCases[0]
	for _, v := range splits(tc.steps) {
		if got := run(newSCP(tc.cmd), v, 0); !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("split %v:\n got %+v\nwant %+v", lens(v), got, tc.want)
		}
	}
}

func TestNewSCPCommands(t *testing.T) {
	for _, tc := range []struct {
		cmd     string
		nilWant bool
		upload  bool
		target  string
		dir     bool
		sources []string
	}{
		{cmd: "scp -t /tmp", upload: true, target: "/tmp"},
		{cmd: "scp -t /tmp/", upload: true, target: "/tmp/", dir: true},
		{cmd: "scp -v -d -t /tmp", upload: true, target: "/tmp", dir: true},
		{cmd: "scp -rpt ~", upload: true, target: "~", dir: true},
		{cmd: `scp -t /tmp/my\ file`, upload: true, target: "/tmp/my file"},
		{cmd: `scp -t "/tmp/a \"b\""; echo done`, upload: true, target: `/tmp/a "b"`},
		{cmd: "scp -l 100 -t -- -odd", upload: true, target: "-odd"},
		{cmd: "scp -f a b", sources: []string{"a", "b"}},
		{cmd: "scp -r -f 'x y'", sources: []string{"x y"}},
		{cmd: "rsync --server -vlogDtpre.iLsfxCIvu . /tmp", nilWant: true},
		{cmd: "scp host:a b", nilWant: true},
		{cmd: "scp -t", nilWant: true},
		{cmd: "sftp-server", nilWant: true},
		{cmd: "", nilWant: true},
		{cmd: "ls -t /tmp", nilWant: true},
	} {
		s := NewSCP(tc.cmd, nil)
		if (s == nil) != tc.nilWant {
			t.Errorf("%q: tracker %v, want nil %v", tc.cmd, s, tc.nilWant)
			continue
		}
		if s == nil {
			continue
		}
		if s.upload != tc.upload || s.target != tc.target || s.targetDir != tc.dir || !reflect.DeepEqual(s.sources, tc.sources) {
			t.Errorf("%q: upload %v target %q dir %v sources %q", tc.cmd, s.upload, s.target, s.targetDir, s.sources)
		}
	}
	var nilSCP *SCP
	nilSCP.FromServer([]byte{0})
	nilSCP.Close()
}

func TestSCPGarbage(t *testing.T) {
	for _, in := range [][]byte{
		nil, {0}, {1}, {2, '\n'}, bs("\n\n\n"), bs("C"), bs("C0644\n"), bs("C0644 -1 x\n"), bs("C9999 1 x\n"),
		bs("C0644 1 ../x\n"), bs("C0644 99999999999999999999 x\n"), bs("D0755 0 /\n"), bs("E\n"), bs("Ex\n"), bs("T\n"),
		bytes.Repeat([]byte("D0755 0 d\n"), 1000), bytes.Repeat([]byte{'x'}, 100000),
		bytes.Repeat([]byte("T1 0 1 0\n"), 1000),
	} {
		for _, cmd := range []string{"scp -t /x", "scp -f /x"} {
			for _, client := range []bool{true, false} {
				o := NewSCP(cmd, func(Op) {})
				o.FromServer([]byte{0})
				if client {
					o.FromClient(in)
				} else {
					o.FromServer(in)
				}
				if len(o.rec.line) > maxSCPLine || len(o.expect) > maxSCPExpect || len(o.dirs) > maxSCPDepth {
					t.Fatalf("%q %q: unbounded state", cmd, in[:min(len(in), 20)])
				}
				o.Close()
			}
		}
	}
}
