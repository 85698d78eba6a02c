package sshgate

import (
	"io"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
)

// notifyReader is an x/crypto channel of the patched copy (internal/sshx,
// SSHX.md): it announces arriving data instead of making a reader wait
// for it. Released x/crypto has neither method; the bridge then falls back
// to a goroutine per stream (copyAdaptive).
type notifyReader interface {
	SetReadNotify(extended uint32, f func()) error
	TryReadExtended(data []byte, extended uint32) (int, error)
}

// A pump copies one stream of a channel (data or stderr) to a writer, with
// a goroutine only while there is something to copy. An idle session is
// most sessions most of the time, and a goroutine blocked in Read per
// stream cost two stacks and two read buffers each (issue 13: 10
// goroutines per idle session, 4 of them the gateway's own).
//
// The channel's read loop calls wake when data or EOF arrives; wake starts
// run unless one is running, in which case it marks that run to look
// again before it stops. run reads what is buffered into a pooled buffer,
// writes it on, and returns when the stream is empty: its buffer goes
// back to the pool, so an idle stream holds none. Only one run exists at
// a time, so dst and filter are never used concurrently; state orders
// one run's writes before the next one's.
type pump struct {
	src  notifyReader
	code uint32 // 0: data, 1: stderr
	dst  io.Writer
	act  *activity
	// filter, if set, maps what was read to what is written (the line
	// gate); out is its output buffer, reused by successive runs.
	filter func(out, in []byte) []byte
	out    []byte
	// then, if set, runs once the pump finished, before done is closed.
	then func()

	state atomic.Int32
	total atomic.Int64
	// done is closed once the stream ended (EOF, or a read error) or a
	// write failed; the pump reads no more then.
	done chan struct{}
}

const (
	pumpIdle    = iota // no run; wake starts one
	pumpRunning        // a run is copying
	pumpAgain          // a run is copying and data arrived since it last looked
	pumpDone           // finished: wake does nothing
)

// startPump starts copying src's stream code to dst, or returns nil if src
// cannot announce data (released x/crypto).
func startPump(src io.Reader, code uint32, dst io.Writer, act *activity, filter func(out, in []byte) []byte, then func()) *pump {
	nr, ok := src.(notifyReader)
	if !ok {
		return nil
	}
	p := &pump{src: nr, code: code, dst: dst, act: act, filter: filter, then: then, done: make(chan struct{})}
	if err := nr.SetReadNotify(code, p.wake); err != nil {
		return nil
	}
	// Data or EOF that arrived before the notification was set is not
	// announced: look once now.
	p.wake()
	return p
}

// wake is called by the channel's read loop: it must not block.
func (p *pump) wake() {
	for {
		switch p.state.Load() {
		case pumpIdle:
			if p.state.CompareAndSwap(pumpIdle, pumpRunning) {
				go p.run()
				return
			}
		case pumpRunning:
			if p.state.CompareAndSwap(pumpRunning, pumpAgain) {
				return
			}
		default: // pumpAgain, pumpDone
			return
		}
	}
}

// run copies until the stream is empty or ended.
func (p *pump) run() {
	large := largePool.Get().(*[]byte)
	defer largePool.Put(large)
	buf := *large
	for {
		n, rerr := p.src.TryReadExtended(buf, p.code)
		if n > 0 {
			p.act.touch()
			data := buf[:n]
			if p.filter != nil {
				p.out = p.filter(p.out[:0], data)
				data = p.out
			}
			if len(data) > 0 {
				w, werr := p.dst.Write(data)
				p.total.Add(int64(w))
				if werr == nil && w != len(data) {
					werr = io.ErrShortWrite
				}
				if werr != nil {
					p.finish()
					return
				}
			}
			if cap(p.out) > smallBuf {
				// A paste grew it; an idle session keeps a small one.
				p.out = nil
			}
		}
		if rerr != nil {
			p.finish()
			return
		}
		if n == 0 {
			if p.state.CompareAndSwap(pumpRunning, pumpIdle) {
				return
			}
			// pumpAgain: data arrived after the read above found none.
			p.state.Store(pumpRunning)
		}
	}
}

func (p *pump) finish() {
	p.state.Store(pumpDone)
	if p.then != nil {
		p.then()
	}
	close(p.done)
}

// written returns the bytes written so far.
func (p *pump) written() int64 { return p.total.Load() }

// stream is one direction of a bridge in flight.
type stream struct {
	done <-chan struct{} // closed when the copy ended
	n    func() int64    // bytes written so far
}

// copyStream copies ch's stream code (0 data, 1 stderr) to dst, through
// gate's line check if gate is set, and runs then (if set) when the copy
// ends. It uses a pump; on a channel that cannot announce data (released
// x/crypto) it falls back to a goroutine blocked in Read.
func copyStream(dst io.Writer, ch ssh.Channel, code uint32, act *activity, gate *lineGate, then func()) stream {
	var filter func(out, in []byte) []byte
	if gate != nil {
		filter = gate.filter
	}
	if p := startPump(ch, code, dst, act, filter, then); p != nil {
		return stream{done: p.done, n: p.written}
	}
	var src io.Reader = ch
	if code == 1 {
		src = ch.Stderr()
	}
	done := make(chan struct{})
	var n atomic.Int64
	go func() {
		defer close(done)
		var k int64
		if gate != nil {
			k, _ = copyChecked(dst, src, gate, act)
		} else {
			k, _ = copyAdaptive(dst, src, act)
		}
		n.Store(k)
		if then != nil {
			then()
		}
	}()
	return stream{done: done, n: n.Load}
}
