package recording

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/termtext"
)

// Search index feed. The numbers are in the package doc: indexing (a
// virtual terminal, then SQLite FTS5 at a few MB/s) costs far more per byte
// than recording, so a recording gets a budget of output it may index, and
// text scrolling faster than that is indexed in part.
const (
	indexBurst  = 256 << 10 // output a recording may index at once
	indexRate   = 64 << 10  // and per second after that
	indexResume = 64 << 10  // budget a flood must leave before indexing resumes
	floodTail   = 16 << 10  // the end of a flood indexed when it is over
	chunkLines  = 20        // lines per index chunk, at most
	chunkBytes  = 2 << 10   // bytes per index chunk, about
	// chunkWait is how long a chunk that is not full waits for more lines
	// before it is indexed anyway (an active session is searchable).
	chunkWait = 5 * time.Second
)

// textIndexer turns a recording's output into index chunks: lines as the
// terminal showed them, from termtext. It belongs to the flusher.
type textIndexer struct {
	id         string
	cols, rows int
	pty        bool             // the session has a terminal (Meta.Term is set)
	screen     *termtext.Screen // nil until the first output
	emitFn     func(string)     // x.emit, bound once

	tokens   float64 // budget left, in bytes
	last     time.Time
	now      time.Time // of the current flush
	flooding bool      // over budget: output is skipped, only its tail kept
	skipped  bool      // some output was skipped: the index misses text
	head     int       // bytes at the start of a flood still to index (plan)
	resumed  bool      // a flood's tail was indexed since the last plan
	// unlimited indexes everything (the catch-up from the file, which
	// has no session to keep up with).
	unlimited bool
	tail      []byte // the last floodTail bytes skipped
	tailT     int64

	evT      int64  // time of the event being fed, µs
	cur      []byte // lines of the chunk being filled, each ending in '\n'
	curLines int
	curT     int64 // time of its first line, µs
	// curTimes: when the chunk's later lines appeared, where not at the
	// time of the line before (store.TextChunk.Times).
	curTimes []store.LineTime
	lastT    int64 // time of the chunk's last line, µs
	curSince time.Time
	chunks   []store.TextChunk
}

func (x *textIndexer) init(id string, cols, rows int, pty bool) {
	x.id, x.cols, x.rows, x.pty = id, cols, rows, pty
	x.tokens = indexBurst
}

// refill adds budget for the time since the last flush, and indexes the end
// of a flood once output has calmed down.
func (x *textIndexer) refill(now time.Time) {
	if !x.last.IsZero() {
		x.tokens = min(indexBurst, x.tokens+now.Sub(x.last).Seconds()*indexRate)
	}
	x.last, x.now = now, now
	if x.flooding && x.tokens >= indexResume+float64(len(x.tail)) {
		x.resume()
	}
}

// plan is told, before a flush feeds anything, how much output the flush
// holds. A flush holding more than the budget left is a flood from its
// first byte: of it only a head of floodTail bytes (whole lines: the
// command and what it printed first) and, when the flood calms down, its
// tail are indexed, where feed alone would index the whole budget's worth
// at its head. That head bought nothing: the catch-up indexes a recording
// whose live index skipped text again from the start of its file once it
// ends. And it was most of what indexing cost beside a flood (`seq`:
// 256 KiB at once and 64 KiB every 1.25 s, at some 350 ns per byte
// through the terminal and FTS5, about a seventh of the gateway's CPU).
// A flood that goes on after its tail was indexed (resume) gets no new
// head: it is the same flood.
func (x *textIndexer) plan(n int) {
	resumed := x.resumed
	x.resumed = false
	if x.unlimited || x.flooding || float64(n) <= x.tokens {
		return
	}
	x.flooding, x.skipped = true, true
	x.head = 0
	if !resumed {
		x.head = int(min(x.tokens, floodTail))
	}
}

// feed indexes output at time t, within the budget.
func (x *textIndexer) feed(t int64, data []byte) {
	n := float64(len(data))
	if x.unlimited {
		x.write(t, data)
		return
	}
	if !x.flooding && n <= x.tokens {
		x.tokens -= n
		x.write(t, data)
		return
	}
	// Over budget: skip, keeping the end. Skipped output uses the budget
	// up too, so that indexing resumes only once the flood has calmed.
	x.flooding, x.skipped = true, true
	x.tokens = max(0, x.tokens-n)
	if x.head > 0 {
		// The head plan allowed, cut after its last whole line.
		k := bytes.LastIndexByte(data[:min(len(data), x.head)], '\n') + 1
		x.head -= k
		if k < len(data) {
			x.head = 0 // what follows a cut is not the head
		}
		if k > 0 {
			x.write(t, data[:k])
			if data = data[k:]; len(data) == 0 {
				return
			}
		}
	}
	x.tailT = t
	if len(data) >= floodTail {
		x.tail = append(x.tail[:0], data[len(data)-floodTail:]...)
		return
	}
	if over := len(x.tail) + len(data) - floodTail; over > 0 {
		x.tail = x.tail[:copy(x.tail, x.tail[over:])]
	}
	x.tail = append(x.tail, data...)
}

// resume ends a flood: its tail goes through the terminal, so that the
// screen it left is indexed.
func (x *textIndexer) resume() {
	x.flooding, x.resumed, x.head = false, true, 0
	x.tokens = max(0, x.tokens-float64(len(x.tail)))
	if len(x.tail) > 0 {
		x.write(x.tailT, x.tail)
	}
	x.tail = nil
}

func (x *textIndexer) write(t int64, data []byte) {
	if x.screen == nil {
		x.screen = termtext.New(x.cols, x.rows)
		x.emitFn = x.emit
		if !x.pty {
			// Without a pty, lines end in a bare "\n" and the user's
			// terminal returned the cursor to column 0.
			x.screen.Write([]byte(termtext.NewlineMode), nil)
		}
	}
	x.evT = t
	x.screen.Write(data, x.emitFn)
}

// resize applies an "r" event's "COLSxROWS".
func (x *textIndexer) resize(data []byte) {
	c, r, ok := bytes.Cut(data, []byte("x"))
	if !ok {
		return
	}
	cols, err1 := strconv.Atoi(string(c))
	rows, err2 := strconv.Atoi(string(r))
	if err1 != nil || err2 != nil || cols <= 0 || rows <= 0 {
		return
	}
	x.cols, x.rows = cols, rows
	if x.screen != nil {
		x.screen.Resize(cols, rows)
	}
}

// emit adds a line the terminal finished to the current chunk.
func (x *textIndexer) emit(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	if len(x.cur) == 0 {
		x.curT, x.curSince = x.evT, x.now
		x.lastT = x.evT
	} else if x.evT != x.lastT {
		// A line appears when the terminal finishes it: for a typed
		// command, at its Enter, within the event's time.
		x.curTimes = append(x.curTimes, store.LineTime{Line: x.curLines, Offset: float64(x.evT) / 1e6})
		x.lastT = x.evT
	}
	x.cur = append(x.cur, line...)
	x.cur = append(x.cur, '\n')
	x.curLines++
	if x.curLines >= chunkLines || len(x.cur) >= chunkBytes {
		x.push()
	}
}

func (x *textIndexer) push() {
	if len(x.cur) == 0 {
		return
	}
	x.chunks = append(x.chunks, store.TextChunk{
		RecordingID: x.id,
		Offset:      float64(x.curT) / 1e6,
		Text:        string(x.cur[:len(x.cur)-1]),
		Times:       store.EncodeLineTimes(float64(x.curT)/1e6, x.curTimes),
	})
	x.cur = x.cur[:0]
	x.curTimes = x.curTimes[:0]
	x.curLines = 0
}

// take returns the chunks ready for the index. A chunk still filling is
// included once it has waited chunkWait, and at the end (final), with the
// flood's tail and what is left on the screen.
func (x *textIndexer) take(now time.Time, final bool) []store.TextChunk {
	switch {
	case final:
		if x.flooding {
			x.resume()
		}
		if x.screen != nil {
			x.screen.Flush(x.emitFn)
		}
		x.push()
		x.screen, x.cur = nil, nil
	case len(x.cur) > 0 && now.Sub(x.curSince) >= chunkWait:
		x.push()
	}
	c := x.chunks
	x.chunks = nil
	return c
}
