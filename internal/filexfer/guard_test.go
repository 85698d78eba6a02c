package filexfer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/pathrule"
)

// testJudge refuses a read of any path containing "noread" and a write
// of any path containing "nowrite", and records what it was asked.
type testJudge struct {
	asked   []string
	refused []string
}

func (tj *testJudge) judge() Judge {
	return Judge{
		Allow: func(op string, a pathrule.Access, p string) error {
			tj.asked = append(tj.asked, op+" "+a.String()+" "+p)
			if (a == pathrule.Read && strings.Contains(p, "noread")) || (a == pathrule.Write && strings.Contains(p, "nowrite")) {
				return errors.New("denied " + p)
			}
			return nil
		},
		Refused: func(op, p, reason string) { tj.refused = append(tj.refused, op+" "+p) },
	}
}

// packets splits a well-framed stream into packets.
func packets(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("stream ends inside a length: %x", b)
		}
		n := int(binary.BigEndian.Uint32(b))
		if len(b) < 4+n {
			t.Fatalf("stream ends inside a packet")
		}
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

const (
	openRead  = uint32(fxfRead)
	openWrite = uint32(fxfWrite | fxfCreat | fxfTrunc)
)

// TestSFTPGuard is the request table: each request is either forwarded
// whole or answered PERMISSION_DENIED for its id and never forwarded.
func TestSFTPGuard(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   [][2][]byte // request, response pairs sent first (handles)
		req     []byte
		allowed bool
		refused string // an entry of Refused, when refused
	}{
		{"open read", nil, pkt(fxpOpen, uint32(1), "/a", openRead, uint32(0)), true, ""},
		{"open read refused", nil, pkt(fxpOpen, uint32(1), "/noread", openRead, uint32(0)), false, "open /noread"},
		{"open write refused", nil, pkt(fxpOpen, uint32(1), "/nowrite", openWrite, uint32(0)), false, "open /nowrite"},
		{"open creat alone is a write", nil, pkt(fxpOpen, uint32(1), "/nowrite", uint32(fxfCreat), uint32(0)), false, "open /nowrite"},
		{"open no flags is a read", nil, pkt(fxpOpen, uint32(1), "/noread", uint32(0), uint32(0)), false, "open /noread"},
		{"open append is a write", nil, pkt(fxpOpen, uint32(1), "/nowrite", uint32(fxfAppend), uint32(0)), false, "open /nowrite"},
		{"remove", nil, pkt(fxpRemove, uint32(1), "/nowrite"), false, "remove /nowrite"},
		{"mkdir", nil, pkt(fxpMkdir, uint32(1), "/nowrite", uint32(0)), false, "mkdir /nowrite"},
		{"rmdir", nil, pkt(fxpRmdir, uint32(1), "/nowrite"), false, "rmdir /nowrite"},
		{"setstat", nil, pkt(fxpSetstat, uint32(1), "/nowrite", uint32(0)), false, "setstat /nowrite"},
		{"rename from", nil, pkt(fxpRename, uint32(1), "/nowrite", "/b"), false, "rename /nowrite"},
		{"rename to", nil, pkt(fxpRename, uint32(1), "/a", "/nowrite"), false, "rename /nowrite"},
		{"posix-rename to", nil, pkt(fxpExtended, uint32(1), "posix-rename@openssh.com", "/a", "/nowrite"), false, "rename /nowrite"},
		{"hardlink new name", nil, pkt(fxpExtended, uint32(1), "hardlink@openssh.com", "/a", "/nowrite"), false, "hardlink /nowrite"},
		{"hardlink old name", nil, pkt(fxpExtended, uint32(1), "hardlink@openssh.com", "/nowrite", "/a"), false, "hardlink /nowrite"},
		{"lsetstat", nil, pkt(fxpExtended, uint32(1), "lsetstat@openssh.com", "/nowrite", uint32(0)), false, "setstat /nowrite"},
		{"symlink link (second)", nil, pkt(fxpSymlink, uint32(1), "/a", "/nowrite"), false, "symlink /nowrite"},
		{"symlink target (first)", nil, pkt(fxpSymlink, uint32(1), "/nowrite", "/a"), false, "symlink /nowrite"},
		{"symlink relative target", nil, pkt(fxpSymlink, uint32(1), "nowrite", "/d/l"), false, "symlink /d/nowrite"},
		{"stat of a write-only path", nil, pkt(fxpStat, uint32(1), "/noread"), true, ""},
		{"stat of neither", nil, pkt(fxpStat, uint32(1), "/noread/nowrite"), false, "stat /noread/nowrite"},
		{"opendir", nil, pkt(fxpOpendir, uint32(1), "/noread/nowrite"), false, "opendir /noread/nowrite"},
		{"realpath", nil, pkt(fxpRealpath, uint32(1), "/noread/nowrite"), true, ""},
		{"unknown extension", nil, pkt(fxpExtended, uint32(1), "copy-file", "/a", "/b"), false, "copy-file "},
		{"unknown type", nil, pkt(99, uint32(1), "/a"), false, "type 99 "},
		{"write unknown handle", nil, pkt(fxpWrite, uint32(2), "h9", uint64(0), "data"), false, "write "},
		{"read unknown handle", nil, pkt(fxpRead, uint32(2), "h9", uint64(0), uint32(10)), false, "read "},
		{"write to a read handle",
			[][2][]byte{{pkt(fxpOpen, uint32(1), "/r", openRead, uint32(0)), pkt(fxpHandle, uint32(1), "h1")}},
			pkt(fxpWrite, uint32(2), "h1", uint64(0), "data"), false, "write /r"},
		{"write to a write handle",
			[][2][]byte{{pkt(fxpOpen, uint32(1), "/w", openWrite, uint32(0)), pkt(fxpHandle, uint32(1), "h1")}},
			pkt(fxpWrite, uint32(2), "h1", uint64(0), "data"), true, ""},
		{"read a write handle",
			[][2][]byte{{pkt(fxpOpen, uint32(1), "/w", uint32(fxfWrite), uint32(0)), pkt(fxpHandle, uint32(1), "h1")}},
			pkt(fxpRead, uint32(2), "h1", uint64(0), uint32(10)), false, "read /w"},
		{"fsetstat judged as a write of the handle's path",
			[][2][]byte{{pkt(fxpOpen, uint32(1), "/x/nowrite", openRead, uint32(0)), pkt(fxpHandle, uint32(1), "h1")}},
			pkt(fxpFsetstat, uint32(2), "h1", uint32(0)), false, "setstat /x/nowrite"},
		{"handle closed",
			[][2][]byte{{pkt(fxpOpen, uint32(1), "/w", openWrite, uint32(0)), pkt(fxpHandle, uint32(1), "h1")},
				{pkt(fxpClose, uint32(2), "h1"), pkt(fxpStatus, uint32(2), uint32(0), "", "")}},
			pkt(fxpWrite, uint32(3), "h1", uint64(0), "data"), false, "write "},
		{"second open with a pending id",
			[][2][]byte{{pkt(fxpOpen, uint32(1), "/r", openRead, uint32(0)), nil}},
			pkt(fxpOpen, uint32(1), "/w", openWrite, uint32(0)), false, "open "},
		{"copy-data into a read handle",
			[][2][]byte{{pkt(fxpOpen, uint32(1), "/a", openRead, uint32(0)), pkt(fxpHandle, uint32(1), "h1")},
				{pkt(fxpOpen, uint32(2), "/b", openRead, uint32(0)), pkt(fxpHandle, uint32(2), "h2")}},
			pkt(fxpExtended, uint32(3), "copy-data", "h1", uint64(0), uint64(0), "h2", uint64(0)), false, "copy-data /b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{1, 3, 1 << 20} { // framing must not depend on chunking
				var toTarget, toClient bytes.Buffer
				tj := &testJudge{}
				g := NewSFTPGuard(tj.judge(), &toTarget, &toClient)
				feed := func(w interface{ Write([]byte) (int, error) }, b []byte) {
					for len(b) > 0 {
						n := min(chunk, len(b))
						if _, err := w.Write(b[:n]); err != nil {
							t.Fatalf("write: %v", err)
						}
						b = b[n:]
					}
				}
				feed(g.Requests(), pkt(fxpInit, uint32(3)))
				feed(g.Responses(), pkt(fxpVersion, uint32(3)))
				for _, s := range tc.setup {
					feed(g.Requests(), s[0])
					feed(g.Responses(), s[1])
				}
				toTarget.Reset()
				toClient.Reset()
				feed(g.Requests(), tc.req)
				if tc.allowed {
					if !bytes.Equal(toTarget.Bytes(), tc.req) || toClient.Len() != 0 {
						t.Fatalf("chunk %d: allowed request: target got %x, client %x; refused %v", chunk, toTarget.Bytes(), toClient.Bytes(), tj.refused)
					}
					return
				}
				if toTarget.Len() != 0 {
					t.Fatalf("chunk %d: refused request reached the target: %x", chunk, toTarget.Bytes())
				}
				ps := packets(t, toClient.Bytes())
				if len(ps) != 1 || ps[0][0] != fxpStatus {
					t.Fatalf("chunk %d: client got %x, want one STATUS", chunk, toClient.Bytes())
				}
				r := reader{b: ps[0][1:]}
				id, code := r.u32(), r.u32()
				wantID := binary.BigEndian.Uint32(tc.req[5:])
				if id != wantID || code != fxPermissionDenied {
					t.Fatalf("chunk %d: STATUS id %d code %d, want id %d PERMISSION_DENIED", chunk, id, code, wantID)
				}
				if len(tj.refused) != 1 || !strings.HasPrefix(tj.refused[0], tc.refused) {
					t.Fatalf("chunk %d: refused %q, want %q", chunk, tj.refused, tc.refused)
				}
			}
		})
	}
}

// TestSFTPGuardRefusalBetweenPackets: a refusal is written to the client
// only between two of the target's packets, never inside one.
func TestSFTPGuardRefusalBetweenPackets(t *testing.T) {
	var toTarget, toClient bytes.Buffer
	tj := &testJudge{}
	g := NewSFTPGuard(tj.judge(), &toTarget, &toClient)
	g.Requests().Write(pkt(fxpInit, uint32(3)))
	g.Responses().Write(pkt(fxpVersion, uint32(3)))
	data := pkt(fxpData, uint32(7), strings.Repeat("x", 1000))
	g.Responses().Write(data[:10]) // the target is in the middle of a packet
	g.Requests().Write(pkt(fxpRemove, uint32(8), "/nowrite"))
	mid := toClient.Len()
	g.Responses().Write(data[10:])
	ps := packets(t, toClient.Bytes())
	if len(ps) != 3 || ps[1][0] != fxpData || ps[2][0] != fxpStatus {
		t.Fatalf("client stream %d packets (written %d before the rest of DATA): %x", len(ps), mid, toClient.Bytes())
	}
	// The refusal is written at once when the target is between packets.
	g.Requests().Write(pkt(fxpRemove, uint32(9), "/nowrite"))
	if ps := packets(t, toClient.Bytes()); len(ps) != 4 {
		t.Fatalf("refusal at a boundary was held back: %d packets", len(ps))
	}
}

// TestSFTPGuardFailsClosed: input that cannot be framed or judged stops
// the session rather than passing unjudged.
func TestSFTPGuardFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client []byte
		server []byte
	}{
		{"oversized request", binary.BigEndian.AppendUint32(nil, 1<<30), nil},
		{"zero-length request", []byte{0, 0, 0, 0}, nil},
		{"truncated open", []byte{0, 0, 0, 10, fxpOpen, 0, 0, 0, 1, 0, 0, 0, 9, 'a'}, nil},
		{"version 6", nil, pkt(fxpVersion, uint32(6))},
	} {
		var toTarget, toClient bytes.Buffer
		g := NewSFTPGuard((&testJudge{}).judge(), &toTarget, &toClient)
		_, err1 := g.Requests().Write(tc.client)
		_, err2 := g.Responses().Write(tc.server)
		if err1 == nil && err2 == nil || g.Err() == nil {
			t.Errorf("%s: accepted", tc.name)
		}
		if _, err := g.Requests().Write(pkt(fxpRemove, uint32(1), "/a")); err == nil {
			t.Errorf("%s: a request passed after the guard stopped", tc.name)
		}
	}
}

// FuzzSFTPGuard: arbitrary client and target bytes never panic, and what
// reaches the client from a well-framed target stream stays well framed.
func FuzzSFTPGuard(f *testing.F) {
	f.Add(pkt(fxpOpen, uint32(1), "/nowrite", openWrite, uint32(0)), pkt(fxpHandle, uint32(1), "h"), 3)
	f.Add(append(pkt(fxpRemove, uint32(1), "/nowrite"), pkt(fxpWrite, uint32(2), "h", uint64(0), "zz")...), pkt(fxpData, uint32(5), "abc"), 1)
	f.Add(pkt(fxpExtended, uint32(1), "hardlink@openssh.com", "/a", "/nowrite"), pkt(fxpStatus, uint32(1), uint32(0), "", ""), 7)
	f.Fuzz(func(t *testing.T, client, serverBody []byte, chunk int) {
		chunk = max(1, chunk%64)
		var toTarget, toClient bytes.Buffer
		g := NewSFTPGuard((&testJudge{}).judge(), &toTarget, &toClient)
		g.Responses().Write(pkt(fxpVersion, uint32(3)))
		server := pkt(fxpData, uint32(1), string(serverBody))
		for i := 0; i < len(client) || i < len(server); i += chunk {
			if i < len(client) {
				g.Requests().Write(client[i:min(i+chunk, len(client))])
			}
			if i < len(server) {
				g.Responses().Write(server[i:min(i+chunk, len(server))])
			}
		}
		if g.Err() == nil {
			packets(t, toClient.Bytes())
		}
	})
}
