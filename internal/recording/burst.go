package recording

import (
	"fmt"
	"sync"
	"time"
)

// Binary burst bounding (the rule is in the package doc).
const (
	burstKeep    = 1 << 20                               // output kept at each end of a burst
	burstPause   = int64(time.Second / time.Microsecond) // a pause this long (µs) ends a burst
	burstTextEnd = 64 << 10                              // this much text in a row ends a burst
	burstMeta    = 64 << 10                              // input and resizes held behind the tail; more ends the burst
)

// burst is the state of a binary burst: the first burstKeep bytes of its
// output are written as they come; after that the last burstKeep bytes are
// held in a ring (with the input and resize events among them, to keep the
// file in time order) until the burst ends.
type burst struct {
	on       bool
	head     int     // output of the burst written so far, up to burstKeep
	textRun  int     // text output in a row at the end of the burst
	dropped  int64   // output left out of the middle
	ring     *[]byte // burstKeep bytes used as a circle; nil until needed
	wpos     int64   // bytes ever pushed into the ring
	events   []ringEvent
	metaSize int
}

// ringEvent is an event held in the ring.
type ringEvent struct {
	t    int64
	typ  byte
	text bool   // "o" that is text: fed to the index when written
	pos  int64  // "o": position of the data in the stream pushed into the ring
	n    int    // "o": length
	meta []byte // "i" and "r": the data
}

// ringPool recycles rings: a megabyte per burst would otherwise be garbage
// for every `cat` of a binary.
var ringPool = sync.Pool{New: func() any {
	b := make([]byte, burstKeep)
	return &b
}}

// holding reports whether events are held: then every new event must be
// held too, behind them.
func (b *burst) holding() bool { return len(b.events) > 0 }

// pushOut holds output data (at most maxEventData), dropping the oldest held
// output beyond burstKeep.
func (b *burst) pushOut(t int64, text bool, data []byte) {
	if b.ring == nil {
		b.ring = ringPool.Get().(*[]byte)
	}
	ring := *b.ring
	size := int64(len(ring))
	pos := b.wpos
	i := int(pos % size)
	k := copy(ring[i:], data)
	copy(ring, data[k:])
	b.wpos += int64(len(data))
	// Merge with the previous event when contiguous: a burst of small
	// writes must not grow the event list without bound. Their times
	// collapse to the first one's, which is fine for binary noise.
	if last := len(b.events) - 1; last >= 0 {
		e := &b.events[last]
		if e.typ == 'o' && e.text == text && e.n+len(data) <= maxEventData && e.pos+int64(e.n) == pos {
			e.n += len(data)
			b.trim()
			return
		}
	}
	b.events = append(b.events, ringEvent{t: t, typ: 'o', text: text, pos: pos, n: len(data)})
	b.trim()
}

// trim drops held output that the ring has overwritten, counting it.
func (b *burst) trim() {
	oldest := b.wpos - int64(len(*b.ring))
	if oldest <= 0 {
		return
	}
	keep := b.events[:0]
	reached := false
	for _, e := range b.events {
		if reached || e.typ != 'o' {
			keep = append(keep, e)
			continue
		}
		if e.pos+int64(e.n) <= oldest {
			b.dropped += int64(e.n)
			continue
		}
		if e.pos < oldest {
			b.dropped += oldest - e.pos
			e.n -= int(oldest - e.pos)
			e.pos = oldest
		}
		keep = append(keep, e)
		reached = true
	}
	clear(b.events[len(keep):])
	b.events = keep
}

// pushMeta holds an input or resize event.
func (b *burst) pushMeta(t int64, typ byte, data []byte) {
	b.events = append(b.events, ringEvent{t: t, typ: typ, meta: append([]byte(nil), data...)})
	b.metaSize += len(data)
}

// bytes returns the held data of an "o" event, copied into scratch only if
// it wraps around the ring.
func (b *burst) bytes(e ringEvent, scratch *[]byte) []byte {
	ring := *b.ring
	i := int(e.pos % int64(len(ring)))
	if i+e.n <= len(ring) {
		return ring[i : i+e.n]
	}
	s := append((*scratch)[:0], ring[i:]...)
	s = append(s, ring[:e.n-(len(ring)-i)]...)
	*scratch = s
	return s
}

// release ends the burst and returns its memory.
func (b *burst) release() {
	if b.ring != nil {
		ringPool.Put(b.ring)
	}
	*b = burst{}
}

// writeOutput encodes one "o" event (at most maxEventData), bounding binary
// bursts and feeding text to the index.
func (r *Recorder) writeOutput(out []byte, t int64, data []byte) []byte {
	w := &r.w
	b := &w.burst
	if b.on && t-w.lastOut >= burstPause {
		out = r.endBurst(out)
	}
	w.lastOut = t
	if !b.on {
		// The common case: escaping also classifies, in the same pass.
		var st textStats
		out, st = appendEvent(out, t, 'o', &w.out, data)
		if st.binary(len(data)) {
			b.on, b.head, b.textRun = true, len(data), 0
		} else {
			w.text.feed(t, data)
		}
		return out
	}
	text := !isBinary(data)
	if text {
		b.textRun += len(data)
	} else {
		b.textRun = 0
	}
	if !b.holding() && b.head < burstKeep {
		k := min(len(data), burstKeep-b.head)
		out, _ = appendEvent(out, t, 'o', &w.out, data[:k])
		if text {
			w.text.feed(t, data[:k])
		}
		b.head += k
		data = data[k:]
	}
	if len(data) > 0 {
		b.pushOut(t, text, data)
	}
	if b.textRun >= burstTextEnd {
		out = r.endBurst(out)
	}
	return out
}

// endBurst writes the held tail of a burst, behind a marker saying how much
// was left out, and ends the burst.
func (r *Recorder) endBurst(out []byte) []byte {
	w := &r.w
	b := &w.burst
	if !b.on {
		return out
	}
	if len(b.events) > 0 {
		first := b.events[0].t
		if b.dropped > 0 {
			// A character split at the cut will never be completed.
			out = flushCarry(out, first, 'o', &w.out)
			msg := fmt.Appendf(nil, "\r\n[portcullis: %d bytes of binary output not recorded]\r\n", b.dropped)
			out, _ = appendEvent(out, first, 'o', nil, msg)
		}
		var scratch []byte
		for _, e := range b.events {
			switch e.typ {
			case 'o':
				data := b.bytes(e, &scratch)
				out, _ = appendEvent(out, e.t, 'o', &w.out, data)
				if e.text {
					w.text.feed(e.t, data)
				}
			case 'r':
				w.text.resize(e.meta)
				out, _ = appendEvent(out, e.t, 'r', nil, e.meta)
			case 'i':
				out, _ = appendEvent(out, e.t, 'i', &w.in, e.meta)
			}
		}
	}
	b.release()
	return out
}
