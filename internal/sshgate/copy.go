package sshgate

import (
	"io"
	"sync"
)

// Copy buffers. An idle session has copy loops blocked in Read for its
// whole life (stdin, stdout, and stderr without a pty), and the memory
// target is 64 KiB per idle session, so a loop always blocks on a small
// buffer. When a small read comes back full, data is flowing: the loop
// borrows a large pooled buffer, reads what else is buffered behind it
// (x/crypto's channel Read returns everything buffered, up to the size
// asked), writes it all at once and gives the buffer back. x/crypto
// delivers at most 32 KiB per packet; a large buffer mostly saves Write
// calls and lets one Write span several packets.
//
// The one Read that can block on the large buffer is the one behind a
// small read that took exactly what was buffered; it returns with the next
// data and the buffer goes back.
const (
	smallBuf = 512
	largeBuf = 128 << 10
)

var largePool = sync.Pool{New: func() any {
	b := make([]byte, largeBuf)
	return &b
}}

// copyAdaptive is io.Copy with the buffer policy above, stamping act (if
// not nil) per chunk. It returns the bytes written and the first error
// other than io.EOF.
func copyAdaptive(dst io.Writer, src io.Reader, act *activity) (int64, error) {
	var small [smallBuf]byte
	var total int64
	for {
		buf := small[:]
		n, rerr := src.Read(buf)
		var large *[]byte
		if n == len(small) && rerr == nil {
			large = largePool.Get().(*[]byte)
			buf = *large
			copy(buf, small[:n])
			var m int
			m, rerr = src.Read(buf[n:])
			n += m
		}
		var werr error
		if n > 0 {
			act.touch()
			var w int
			w, werr = dst.Write(buf[:n])
			total += int64(w)
			if werr == nil && w != n {
				werr = io.ErrShortWrite
			}
		}
		if large != nil {
			largePool.Put(large)
		}
		switch {
		case werr != nil:
			return total, werr
		case rerr == io.EOF:
			return total, nil
		case rerr != nil:
			return total, rerr
		}
	}
}
