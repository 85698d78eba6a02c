package sshgate

import (
	"bytes"
	"io"
	"testing"
)

// burstReader is an x/crypto channel as copyAdaptive sees it: each Read
// returns what is buffered, up to len(p), and a Read with nothing buffered
// would block. Here that Read records the size of the buffer it would
// block on and ends the stream.
type burstReader struct {
	buffered  []byte
	blockedOn int // len(p) of the Read that found nothing buffered
	reads     int
}

func (r *burstReader) Read(p []byte) (int, error) {
	r.reads++
	if len(r.buffered) == 0 {
		r.blockedOn = len(p)
		return 0, io.EOF
	}
	n := copy(p, r.buffered)
	r.buffered = r.buffered[n:]
	return n, nil
}

// countingWriter counts Write calls.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// TestCopyAdaptiveIdlesOnSmallBuffer: whatever burst came before, the Read
// an idle session blocks in uses the small buffer, so thousands of idle
// sessions do not each pin a 128 KiB buffer; bulk data still moves in
// large writes. The old policy kept the large buffer after any burst whose
// last read was at least a quarter full.
func TestCopyAdaptiveIdlesOnSmallBuffer(t *testing.T) {
	for _, size := range []int{1, 100, smallBuf - 1, smallBuf + 1, 40 << 10, 200 << 10, 300 << 10, 1 << 20} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		r := &burstReader{buffered: data}
		var w countingWriter
		n, err := copyAdaptive(&w, r, &activity{})
		if err != nil || n != int64(size) || !bytes.Equal(w.Bytes(), data) {
			t.Fatalf("burst of %d: copied %d (%v), content equal %v", size, n, err, bytes.Equal(w.Bytes(), data))
		}
		if r.blockedOn != smallBuf {
			t.Errorf("burst of %d: the idle Read was given %d bytes, want the %d-byte small buffer", size, r.blockedOn, smallBuf)
		}
		if maxWrites := size/largeBuf + 2; w.writes > maxWrites {
			t.Errorf("burst of %d: %d writes, want at most %d", size, w.writes, maxWrites)
		}
	}
}
