package sshgate

import (
	"io"
	"sync"
)

// Copy buffers. An idle session has three copy loops blocked in Read (stdin,
// stdout, stderr), and the memory target is 128 KiB per idle session, so
// each loop starts with a small buffer and borrows a large pooled one only
// while data is flowing in bulk, returning it as soon as reads come back
// short. x/crypto delivers at most 32 KiB per packet, so a large buffer
// mostly saves Read/Write calls and lets one Write span several packets.
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
	buf := small[:]
	var large *[]byte
	defer func() {
		if large != nil {
			largePool.Put(large)
		}
	}()
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			act.touch()
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
			if w != n {
				return total, io.ErrShortWrite
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return total, nil
			}
			return total, rerr
		}
		switch {
		case large == nil && n == len(buf):
			large = largePool.Get().(*[]byte)
			buf = *large
		case large != nil && n < len(buf)/4:
			largePool.Put(large)
			large = nil
			buf = small[:]
		}
	}
}
