package agent

import (
	"io"
	"sync"
)

// bufs pools the copy buffers of forwarded sessions: an idle session holds
// none.
var bufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func copyBuffer(dst io.Writer, src io.Reader) (int64, error) {
	b := bufs.Get().(*[]byte)
	defer bufs.Put(b)
	return io.CopyBuffer(dst, src, *b)
}
