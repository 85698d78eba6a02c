package filexfer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// pkt builds one SFTP packet: the type, then each field (uint32, uint64,
// string or []byte as an SFTP string), with the length prefix.
func pkt(typ byte, fields ...any) []byte {
	body := []byte{typ}
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			body = binary.BigEndian.AppendUint32(body, v)
		case int:
			body = binary.BigEndian.AppendUint32(body, uint32(v))
		case uint64:
			body = binary.BigEndian.AppendUint64(body, v)
		case string:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		case []byte:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		default:
			panic(fmt.Sprintf("pkt: field %T", f))
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// Requests and responses, named after the protocol's packets. Attributes
// are sent empty (flags 0).
func fxInit() []byte                         { return pkt(fxpInit, 3) }
func fxVersion(v int) []byte                 { return pkt(fxpVersion, v, "posix-rename@openssh.com", "1") }
func fxOpen(id int, p string, fl int) []byte { return pkt(fxpOpen, id, p, fl, 0) }
func fxClose(id int, h string) []byte        { return pkt(fxpClose, id, h) }
func fxRead(id int, h string, off uint64, n int) []byte {
	return pkt(fxpRead, id, h, off, n)
}
func fxWrite(id int, h string, off uint64, data []byte) []byte {
	return pkt(fxpWrite, id, h, off, data)
}
func fxPath(typ byte, id int, paths ...string) []byte {
	f := []any{id}
	for _, p := range paths {
		f = append(f, p)
	}
	if typ == fxpMkdir || typ == fxpSetstat {
		f = append(f, 0) // attrs
	}
	return pkt(typ, f...)
}
func fxExt(id int, name string, args ...string) []byte {
	f := []any{id, name}
	for _, a := range args {
		f = append(f, a)
	}
	return pkt(fxpExtended, f...)
}
func fxStatus(id, code int, msg string) []byte { return pkt(fxpStatus, id, code, msg, "") }
func fxHandle(id int, h string) []byte         { return pkt(fxpHandle, id, h) }
func fxData(id int, data []byte) []byte        { return pkt(fxpData, id, data) }
func fxName(id int, names ...string) []byte {
	f := []any{id, len(names)}
	for _, n := range names {
		f = append(f, n, n, 0)
	}
	return pkt(fxpName, f...)
}

// step is bytes one side sent: c from the client, s from the target.
type step struct {
	client bool
	b      []byte
}

func c(parts ...[]byte) step { return step{true, bytes.Join(parts, nil)} }
func s(parts ...[]byte) step { return step{false, bytes.Join(parts, nil)} }

// observer is what the tests feed: SFTP and SCP both fit.
type observer interface {
	FromClient([]byte)
	FromServer([]byte)
	Close()
}

// run feeds the steps, each split into chunks of at most chunk bytes (0:
// whole), and returns the ops reported.
func run(newObs func(report func(Op)) observer, steps []step, chunk int) []Op {
	var ops []Op
	o := newObs(func(op Op) { ops = append(ops, op) })
	for _, st := range steps {
		b := st.b
		for len(b) > 0 {
			n := len(b)
			if chunk > 0 {
				n = min(n, chunk)
			}
			if st.client {
				o.FromClient(b[:n])
			} else {
				o.FromServer(b[:n])
			}
			b = b[n:]
		}
	}
	o.Close()
	return ops
}

func newSFTP(report func(Op)) observer { return NewSFTP(report) }

var (
	wflags = fxfWrite | fxfCreat | fxfTrunc
	data1  = bytes.Repeat([]byte("0123456789"), 100) // 1000 bytes
	data2  = []byte("tail")
)

var sftpCases = []struct {
	name  string
	steps []step
	want  []Op
}{
	{
		name: "upload: open, two pipelined writes, close",
		steps: []step{
			c(fxInit()), s(fxVersion(3)),
			c(fxOpen(1, "/home/u/up.bin", wflags)), s(fxHandle(1, "\x00\x00\x00\x01")),
			c(fxWrite(2, "\x00\x00\x00\x01", 0, data1), fxWrite(3, "\x00\x00\x00\x01", 1000, data2)),
			s(fxStatus(2, fxOK, "Success"), fxStatus(3, fxOK, "Success")),
			c(fxClose(4, "\x00\x00\x00\x01")), s(fxStatus(4, fxOK, "Success")),
		},
		want: []Op{{Kind: "upload", Path: "/home/u/up.bin", Bytes: 1004}},
	},
	{
		name: "download: open, reads past the end, close",
		steps: []step{
			c(fxInit()), s(fxVersion(3)),
			c(pkt(17, 1, "/etc/hosts")), s(pkt(fxpAttrs, 1, 0)), // STAT: not a file operation
			c(fxOpen(2, "/etc/hosts", fxfRead)), s(fxHandle(2, "h")),
			c(fxRead(3, "h", 0, 32768), fxRead(4, "h", 32768, 32768)),
			s(fxData(3, data1), fxStatus(4, fxEOF, "EOF")),
			c(fxRead(5, "h", 1000, 32768)), s(fxStatus(5, fxEOF, "")),
			c(fxClose(6, "h")), s(fxStatus(6, fxOK, "")),
		},
		want: []Op{{Kind: "download", Path: "/etc/hosts", Bytes: 1000}},
	},
	{
		name: "remove: OK and refused",
		steps: []step{
			c(fxInit()), s(fxVersion(3)),
			c(fxPath(fxpRemove, 1, "/tmp/a")), s(fxStatus(1, fxOK, "Success")),
			c(fxPath(fxpRemove, 2, "/etc/passwd")), s(fxStatus(2, 3, "Permission denied")),
			c(fxPath(fxpRemove, 3, "/nope")), s(fxStatus(3, 2, "")),
		},
		want: []Op{
			{Kind: "remove", Path: "/tmp/a"},
			{Kind: "remove", Path: "/etc/passwd", Error: "Permission denied"},
			{Kind: "remove", Path: "/nope", Error: "no such file"},
		},
	},
	{
		name: "rename and posix-rename",
		steps: []step{
			c(fxInit()), s(fxVersion(3)),
			c(fxPath(fxpRename, 1, "/a", "/b")), s(fxStatus(1, fxOK, "")),
			c(fxExt(2, "posix-rename@openssh.com", "/b", "/c")), s(fxStatus(2, fxOK, "")),
			c(fxExt(3, "statvfs@openssh.com", "/")), s(pkt(fxpExtendedReply, 3, uint64(1))),
		},
		want: []Op{
			{Kind: "rename", Path: "/a", Path2: "/b"},
			{Kind: "rename", Path: "/b", Path2: "/c"},
		},
	},
	{
		name: "mkdir, rmdir, setstat, symlink, hardlink; metadata reads ignored",
		steps: []step{
			c(fxInit()), s(fxVersion(3)),
			c(pkt(16, 1, ".")), s(fxName(1, "/home/u")), // REALPATH
			c(fxPath(fxpMkdir, 2, "/home/u/d")), s(fxStatus(2, fxOK, "")),
			c(pkt(11, 3, "/home/u/d")), s(fxHandle(3, "dh")), // OPENDIR
			c(pkt(12, 4, "dh")), s(fxStatus(4, fxEOF, "")), // READDIR
			c(fxClose(5, "dh")), s(fxStatus(5, fxOK, "")),
			c(fxPath(fxpSetstat, 6, "/home/u/d")), s(fxStatus(6, fxOK, "")),
			c(fxPath(fxpSymlink, 7, "/etc/hosts", "/home/u/d/l")), s(fxStatus(7, fxOK, "")),
			c(fxExt(8, "hardlink@openssh.com", "/home/u/f", "/home/u/g")), s(fxStatus(8, 4, "Failure")),
			c(fxExt(9, "lsetstat@openssh.com", "/home/u/d/l")), s(fxStatus(9, fxOK, "")),
			c(fxPath(fxpRmdir, 10, "/home/u/d")), s(fxStatus(10, fxOK, "")),
		},
		want: []Op{
			{Kind: "mkdir", Path: "/home/u/d"},
			{Kind: "setstat", Path: "/home/u/d"},
			{Kind: "symlink", Path: "/home/u/d/l", Path2: "/etc/hosts"},
			{Kind: "hardlink", Path: "/home/u/g", Path2: "/home/u/f", Error: "Failure"},
			{Kind: "setstat", Path: "/home/u/d/l"},
			{Kind: "rmdir", Path: "/home/u/d"},
		},
	},
	{
		name: "refused open, failed write, fsetstat",
		steps: []step{
			c(fxInit()), s(fxVersion(3)),
			c(fxOpen(1, "/etc/shadow", fxfRead)), s(fxStatus(1, 3, "Permission denied")),
			c(fxOpen(2, "/root/x", wflags)), s(fxStatus(2, 3, "Permission denied")),
			c(fxOpen(3, "/full/x", wflags)), s(fxHandle(3, "h")),
			c(fxWrite(4, "h", 0, data1)), s(fxStatus(4, fxOK, "")),
			c(fxWrite(5, "h", 1000, data1)), s(fxStatus(5, 4, "Failure")),
			c(pkt(fxpFsetstat, 6, "h", 0)), s(fxStatus(6, fxOK, "")),
			c(fxClose(7, "h")), s(fxStatus(7, fxOK, "")),
		},
		want: []Op{
			{Kind: "download", Path: "/etc/shadow", Error: "Permission denied"},
			{Kind: "upload", Path: "/root/x", Error: "Permission denied"},
			{Kind: "setstat", Path: "/full/x"},
			{Kind: "upload", Path: "/full/x", Bytes: 1000, Error: "Failure"},
		},
	},
	{
		name: "read-write handle with writes counts as upload; empty new file",
		steps: []step{
			c(fxInit()), s(fxVersion(3)),
			c(fxOpen(1, "/rw", fxfRead|fxfWrite)), s(fxHandle(1, "h")),
			c(fxRead(2, "h", 0, 10)), s(fxData(2, []byte("0123456789"))),
			c(fxWrite(3, "h", 10, data2)), s(fxStatus(3, fxOK, "")),
			c(fxClose(4, "h")), s(fxStatus(4, fxOK, "")),
			c(fxOpen(5, "/empty", wflags)), s(fxHandle(5, "h")), // handle string reused
			c(fxClose(6, "h")), s(fxStatus(6, fxOK, "")),
		},
		want: []Op{
			{Kind: "upload", Path: "/rw", Bytes: 4},
			{Kind: "upload", Path: "/empty"},
		},
	},
	{
		name: "out-of-order responses",
		steps: []step{
			c(fxInit()), s(fxVersion(3)),
			c(fxOpen(1, "/a", fxfRead), fxOpen(2, "/b", wflags), fxPath(fxpRemove, 3, "/c")),
			s(fxStatus(3, fxOK, ""), fxHandle(2, "hb"), fxHandle(1, "ha")),
			c(fxWrite(4, "hb", 0, data2), fxRead(5, "ha", 0, 100)),
			s(fxData(5, data2), fxStatus(4, fxOK, "")),
			c(fxClose(6, "ha"), fxClose(7, "hb")),
			s(fxStatus(7, fxOK, ""), fxStatus(6, fxOK, "")),
		},
		want: []Op{
			{Kind: "remove", Path: "/c"},
			{Kind: "upload", Path: "/b", Bytes: 4},
			{Kind: "download", Path: "/a", Bytes: 4},
		},
	},
	{
		name: "channel closes with a handle open and a request unanswered",
		steps: []step{
			c(fxInit()), s(fxVersion(3)),
			c(fxOpen(1, "/big", wflags)), s(fxHandle(1, "h")),
			c(fxWrite(2, "h", 0, data1)), s(fxStatus(2, fxOK, "")),
			c(fxWrite(3, "h", 1000, data1)), // never acknowledged
			c(fxPath(fxpRemove, 4, "/x")),
		},
		want: []Op{
			{Kind: "upload", Path: "/big", Bytes: 1000},
			{Kind: "remove", Path: "/x", Error: "no response"},
		},
	},
	{
		name: "other SFTP version: not followed",
		steps: []step{
			c(pkt(fxpInit, 6)), s(fxVersion(6)),
			c(fxPath(fxpRemove, 1, "/x")), s(fxStatus(1, fxOK, "")),
		},
		want: nil,
	},
	{
		name: "malformed input after a write: the open file is reported, then nothing",
		steps: []step{
			c(fxInit()), s(fxVersion(3)),
			c(fxOpen(1, "/f", wflags)), s(fxHandle(1, "h")),
			c(fxWrite(2, "h", 0, data2)), s(fxStatus(2, fxOK, "")),
			c(pkt(fxpRemove, 3)), // no path
			c(fxPath(fxpRemove, 4, "/x")), s(fxStatus(4, fxOK, "")),
		},
		want: []Op{{Kind: "upload", Path: "/f", Bytes: 4}},
	},
}

func TestSFTP(t *testing.T) {
	for _, tc := range sftpCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{0, 1, 3, 7} {
				got := run(newSFTP, tc.steps, chunk)
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("chunks of %d:\n got %+v\nwant %+v", chunk, got, tc.want)
				}
			}
		})
	}
}

// splits returns the steps with same-side steps merged, then, for every
// run of bytes and every position in it, the steps with that run cut in
// two there: every chunk boundary a peer's writes could produce.
func splits(steps []step) [][]step {
	var merged []step
	for _, st := range steps {
		if n := len(merged); n > 0 && merged[n-1].client == st.client {
			merged[n-1].b = append(append([]byte(nil), merged[n-1].b...), st.b...)
			continue
		}
		merged = append(merged, st)
	}
	out := [][]step{merged}
	for i, st := range merged {
		for cut := 1; cut < len(st.b); cut++ {
			v := append([]step(nil), merged[:i]...)
			v = append(v, step{st.client, st.b[:cut]}, step{st.client, st.b[cut:]})
			out = append(out, append(v, merged[i+1:]...))
		}
	}
	return out
}

func TestSFTPEverySplit(t *testing.T) {
	var steps []step
	var want []Op
	for _, i := range []int{0, 1, 2, 6} { // upload, download, removes, refusals
		if i == 0 {
			steps = append(steps, sftpCases[i].steps...)
		} else {
			steps = append(steps, sftpCases[i].steps[2:]...) // without a second INIT
		}
		want = append(want, sftpCases[i].want...)
	}
	variants := splits(steps)
	for _, v := range variants {
		if got := run(newSFTP, v, 0); !reflect.DeepEqual(got, want) {
			t.Fatalf("split %v:\n got %+v\nwant %+v", lens(v), got, want)
		}
	}
	t.Logf("%d splits", len(variants))
}

func lens(steps []step) []int {
	var n []int
	for _, st := range steps {
		n = append(n, len(st.b))
	}
	return n
}

// A large WRITE or DATA is counted without being buffered, and a large
// packet of another kind is skipped by its length.
func TestSFTPLargePackets(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, 1<<20)
	var ops []Op
	o := NewSFTP(func(op Op) { ops = append(ops, op) })
	o.FromClient(fxInit())
	o.FromServer(fxVersion(3))
	o.FromClient(fxOpen(1, "/big", wflags))
	o.FromServer(fxHandle(1, "h"))
	w := fxWrite(2, "h", 0, big)
	for i := 0; i < len(w); i += 4096 {
		o.FromClient(w[i:min(i+4096, len(w))])
		if cap(o.client.buf) > 1024 {
			t.Fatalf("write data buffered: cap %d", cap(o.client.buf))
		}
	}
	o.FromServer(fxStatus(2, fxOK, ""))
	o.FromClient(fxPath(fxpRemove, 3, strings.Repeat("p", maxPacket))) // too large to parse
	o.FromServer(fxStatus(3, fxOK, ""))
	o.FromClient(fxClose(4, "h"))
	o.FromServer(fxStatus(4, fxOK, ""))
	o.Close()
	want := []Op{{Kind: "upload", Path: "/big", Bytes: 1 << 20}}
	if !reflect.DeepEqual(ops, want) || o.Err() != nil {
		t.Fatalf("got %+v (err %v), want %+v", ops, o.Err(), want)
	}
}

// Handles and requests are bounded: the oldest go first, open files being
// reported as they are.
func TestSFTPBounds(t *testing.T) {
	n := 0
	o := NewSFTP(func(Op) { n++ })
	o.FromClient(fxInit())
	o.FromServer(fxVersion(3))
	for i := 0; i < 3*maxTracked; i++ {
		o.FromClient(fxOpen(i, fmt.Sprintf("/f%d", i), fxfRead))
		o.FromServer(fxHandle(i, fmt.Sprintf("h%d", i)))
		o.FromClient(fxPath(fxpRemove, 1<<20+i, "/x")) // never answered
	}
	if o.handles.len() > maxTracked || o.pending.len() > maxTracked || len(o.pending.queue) > 2*maxTracked+16 {
		t.Fatalf("handles %d, pending %d (queue %d)", o.handles.len(), o.pending.len(), len(o.pending.queue))
	}
	if n != 2*maxTracked {
		t.Fatalf("%d files reported while open, want %d", n, 2*maxTracked)
	}
	o.Close()
	if n != 3*maxTracked+maxTracked {
		t.Fatalf("%d ops after Close, want %d", n, 4*maxTracked)
	}
}

func TestSFTPGarbage(t *testing.T) {
	inputs := [][]byte{
		nil,
		{0, 0, 0, 0},
		{0xff, 0xff, 0xff, 0xff, 3},
		bytes.Repeat([]byte{0}, 100),
		[]byte("SSH-2.0-OpenSSH\r\n"),
		pkt(fxpWrite, 1, "h"),
		pkt(fxpData, 1, 5),
		pkt(fxpStatus, 1),
		pkt(fxpHandle, 1, 100),
		pkt(fxpVersion),
		append(fxInit(), 0, 0, 0, 1, fxpOpen),
	}
	for _, in := range inputs {
		for _, client := range []bool{true, false} {
			o := NewSFTP(func(op Op) { t.Errorf("reported %+v from garbage", op) })
			if client {
				o.FromClient(in)
			} else {
				o.FromServer(in)
			}
			o.Close()
		}
	}
	var nilSFTP *SFTP
	nilSFTP.FromClient([]byte{1})
	nilSFTP.Close()
}
