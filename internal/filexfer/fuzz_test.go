package filexfer

import (
	"testing"
)

// Fuzz inputs are a schedule of chunks: a header byte (bit 0: 1 for the
// client, 0 for the target; the rest: the chunk length less one) and then
// the chunk. Chunks of at most 128 bytes exercise the parsers' resumption
// at every kind of boundary.

func schedule(steps []step) []byte {
	var out []byte
	for _, st := range steps {
		for p := st.b; len(p) > 0; {
			n := min(len(p), 128)
			h := byte(n-1) << 1
			if st.client {
				h |= 1
			}
			out = append(append(out, h), p[:n]...)
			p = p[n:]
		}
	}
	return out
}

func replay(data []byte, fromClient, fromServer func([]byte), check func()) {
	for len(data) > 0 {
		h := data[0]
		n := min(int(h>>1)+1, len(data)-1)
		chunk := data[1 : 1+n]
		data = data[1+n:]
		if h&1 == 1 {
			fromClient(chunk)
		} else {
			fromServer(chunk)
		}
		check()
	}
}

func FuzzSFTP(f *testing.F) {
	for _, tc := range sftpCases {
		f.Add(schedule(tc.steps))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		o := NewSFTP(func(op Op) {
			if len(op.Path) > maxPath+3 || len(op.Path2) > maxPath+3 || len(op.Error) > maxStatusMsg || op.Bytes < 0 {
				t.Fatalf("unbounded op %q", op.Kind)
			}
		})
		replay(data, o.FromClient, o.FromServer, func() {
			if cap(o.client.buf) > maxPacket || cap(o.server.buf) > maxPacket ||
				o.pending.len() > maxTracked || o.handles.len() > maxTracked ||
				len(o.pending.queue) > 2*maxTracked+16 || len(o.handles.queue) > 2*maxTracked+16 {
				t.Fatal("state outgrew its bounds")
			}
		})
		o.Close()
		o.Close()
	})
}

var fuzzSCPCommands = []string{"scp -t /dst", "scp -r -d -t /dst", "scp -f /src", "scp -r -p -f /src/*"}

func FuzzSCP(f *testing.F) {
	for _, tc := range scpCases {
		which := byte(3) // a recursive download
		if NewSCP(tc.cmd, nil).upload {
			which = 1 // a recursive upload
		}
		f.Add(which, schedule(tc.steps))
	}
	f.Add(byte(0), []byte{})
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		o := NewSCP(fuzzSCPCommands[int(which)%len(fuzzSCPCommands)], func(op Op) {
			if len(op.Path) > maxPath+3 || len(op.Error) > maxStatusMsg || op.Bytes < 0 {
				t.Fatalf("unbounded op %q", op.Kind)
			}
		})
		replay(data, o.FromClient, o.FromServer, func() {
			if cap(o.rec.line) > 2*maxSCPLine || cap(o.resp.msg) > 2*maxStatusMsg ||
				len(o.expect) > maxSCPExpect || len(o.dirs) > maxSCPDepth {
				t.Fatal("state outgrew its bounds")
			}
		})
		o.Close()
	})
}
