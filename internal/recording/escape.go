package recording

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// This file is the hot half of the writer: JSON string escaping and event
// lines. encoding/json would allocate and reflect per event and validate
// UTF-8 twice; a recording of `seq 1 20000000` is 170 MB of output, so the
// loop below copies runs of plain ASCII eight bytes at a time and stops only
// at bytes that JSON or UTF-8 care about.

// Byte classes for the escaper and the binary classifier.
const (
	clsPlain   = iota // printable ASCII, copied as is
	clsEscape         // '"' or '\\': a backslash before it
	clsControl        // allowed terminal control byte: escaped, counts as text
	clsBad            // NUL or other C0 control: escaped, counts as not text
	clsHigh           // >= 0x80: part of a UTF-8 sequence or invalid
)

var byteClass = func() (t [256]uint8) {
	for i := range t {
		switch {
		case i >= 0x80:
			t[i] = clsHigh
		case i == '"' || i == '\\':
			t[i] = clsEscape
		case i >= 0x20: // 0x7f (DEL) is allowed raw in JSON strings
			t[i] = clsPlain
		case i == 0x07, i == '\b', i == '\t', i == '\n', i == '\v', i == '\f', i == '\r', i == 0x0e, i == 0x0f, i == 0x1b:
			t[i] = clsControl
		default:
			t[i] = clsBad
		}
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// Masks for the eight-bytes-at-a-time test in appendEscaped.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special8 flags the bytes of x (little-endian) that are not printable
// ASCII or are '"' or '\\', by setting their top bit ("Bit Twiddling Hacks":
// haszero and hasless). Borrows may flag a byte above a flagged one
// spuriously, but the lowest flagged byte is always a real one.
func special8(x uint64) uint64 {
	hasLess20 := (x - lsb*0x20) & ^x & msb
	q := x ^ (lsb * '"')
	hasQuote := (q - lsb) & ^q & msb
	s := x ^ (lsb * '\\')
	hasSlash := (s - lsb) & ^s & msb
	return (x & msb) | hasLess20 | hasQuote | hasSlash
}

// textStats counts what the binary classifier needs to know about a chunk.
type textStats struct {
	nul int // NUL bytes
	bad int // bytes that are not text: NUL, other C0 controls, invalid UTF-8
}

// binary reports whether a chunk of n bytes with these stats is binary
// output (see the package doc).
func (s textStats) binary(n int) bool {
	return s.nul > 0 || s.bad*8 > n
}

// asciiEscape holds the JSON form of each ASCII byte as up to six bytes,
// little-endian, with its length in the top byte: one load and one
// eight-byte store per byte (the length byte is overwritten by the next
// store or lies past the end). asciiStats holds whether the byte counts as
// not text (bit 0) and whether it is NUL (bit 32), so that counting is one
// add. Looking bytes up needs no branch per byte, which matters on output
// with a control byte every few characters (`seq`: "\r\n" every 8 bytes).
var asciiEscape, asciiStats = func() (esc, stats [0x80]uint64) {
	for b := range esc {
		var e []byte
		switch {
		case byteClass[b] == clsPlain:
			e = []byte{byte(b)}
		case b == '"' || b == '\\':
			e = []byte{'\\', byte(b)}
		case b == '\n':
			e = []byte(`\n`)
		case b == '\r':
			e = []byte(`\r`)
		case b == '\t':
			e = []byte(`\t`)
		case b == '\b':
			e = []byte(`\b`)
		case b == '\f':
			e = []byte(`\f`)
		default:
			e = []byte{'\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf]}
		}
		var w [8]byte
		copy(w[:], e)
		w[7] = byte(len(e))
		esc[b] = binary.LittleEndian.Uint64(w[:])
		if byteClass[b] == clsBad {
			stats[b] |= 1
		}
		if b == 0 {
			stats[b] |= 1 << 32
		}
	}
	return esc, stats
}()

// maxEscape is the most one input byte grows to: a control byte as \u00XX.
const maxEscape = 6

// appendEscaped appends s to dst as the inside of a JSON string: '"', '\\'
// and control bytes escaped, invalid UTF-8 replaced by U+FFFD. s must not
// end in an incomplete UTF-8 sequence the caller wants to keep (see
// splitIncomplete): such bytes become U+FFFD here. It also counts, for free,
// what classify would.
//
// It writes into room reserved up front (the worst case, plus eight bytes
// of slack for whole-word stores) by index rather than by append, eight
// input bytes at a time: a word of plain bytes is copied as is, a word of
// ASCII with something to escape is rewritten only at its escapes, and only
// non-ASCII takes the byte-by-byte path.
func appendEscaped(dst, s []byte) ([]byte, textStats) {
	var st textStats
	dst = growBytes(dst, maxEscape*len(s)+8)
	out := dst[len(dst):cap(dst)]
	i, j := 0, 0
	for i < len(s) {
		if i+8 <= len(s) {
			x := binary.LittleEndian.Uint64(s[i:])
			if x&msb == 0 {
				// All ASCII: the exact mask of bytes to escape (below 0x20,
				// '"' or '\\'; no carry crosses a byte below 0x80). Store
				// the word, then rewrite from the first escape on: plain
				// runs as shifted words, escapes from asciiEscape, and the
				// commonest pair, "\r\n", at once.
				lt20 := ^(x + lsb*(0x80-0x20)) & msb
				q := x ^ (lsb * '"')
				sl := x ^ (lsb * '\\')
				m := lt20 | ^(q+lsb*0x7f)&msb | ^(sl+lsb*0x7f)&msb
				binary.LittleEndian.PutUint64(out[j:], x)
				if m == 0 {
					i += 8
					j += 8
					continue
				}
				// One "\r\n" and nothing else to escape, or a single
				// escape: what almost every word of `seq` or of short
				// lines holds. Write the word around it with shifted
				// stores, no loop.
				// (o is a fixed-size view so that the stores below need
				// no bounds checks of their own.)
				k := bits.TrailingZeros64(m) >> 3
				o := (*[24]byte)(out[j : j+24])
				if m>>(8*k) == 0x8080 && (x>>(8*k))&0xffff == 0x0a0d {
					binary.LittleEndian.PutUint32(o[k&7:], 0x6e5c725c) // `\r\n`, little-endian
					binary.LittleEndian.PutUint64(o[k&7+4:], x>>(8*k+16))
					i += 8
					j += 10
					continue
				}
				if m&(m-1) == 0 {
					c := (x >> (8 * k)) & 0x7f
					e := asciiEscape[c]
					n := int(e >> 56)
					binary.LittleEndian.PutUint64(o[k&7:], e)
					binary.LittleEndian.PutUint64(o[k&7+n&7:], x>>(8*k+8))
					if s := asciiStats[c]; s != 0 {
						st.bad += int(uint32(s))
						st.nul += int(s >> 32)
					}
					i += 8
					j += 7 + n
					continue
				}
				pos := 0
				for m != 0 {
					k := bits.TrailingZeros64(m) >> 3
					if k != pos {
						binary.LittleEndian.PutUint64(out[j:], x>>(8*pos))
						j += k - pos
					}
					c := (x >> (8 * k)) & 0x7f
					if c == '\r' && (x>>(8*k+8))&0xff == '\n' && k < 7 {
						binary.LittleEndian.PutUint32(out[j:], 0x6e5c725c) // `\r\n`, little-endian
						j += 4
						pos = k + 2
						m &= m - 1
						m &= m - 1
						continue
					}
					e := asciiEscape[c]
					binary.LittleEndian.PutUint64(out[j:], e)
					j += int(e >> 56)
					if s := asciiStats[c]; s != 0 {
						st.bad += int(uint32(s))
						st.nul += int(s >> 32)
					}
					pos = k + 1
					m &= m - 1
				}
				if pos < 8 {
					binary.LittleEndian.PutUint64(out[j:], x>>(8*pos))
					j += 8 - pos
				}
				i += 8
				continue
			}
			// Non-ASCII ahead: copy the plain bytes before it and go on
			// byte by byte.
			m := special8(x)
			k := bits.TrailingZeros64(m) >> 3
			binary.LittleEndian.PutUint64(out[j:], x)
			i += k
			j += k
		}
		b := s[i]
		if b < utf8.RuneSelf {
			e := asciiEscape[b]
			binary.LittleEndian.PutUint64(out[j:], e)
			j += int(e >> 56)
			st.bad += int(uint32(asciiStats[b]))
			st.nul += int(asciiStats[b] >> 32)
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			j += copy(out[j:], "\ufffd")
			st.bad++
			i++
			continue
		}
		j += copy(out[j:], s[i:i+size])
		i += size
	}
	return dst[:len(dst)+j], st
}

// classify computes the stats of a chunk without escaping it: for output
// that is not written (the middle of a binary burst).
func classify(s []byte) textStats {
	var st textStats
	for i := 0; i < len(s); {
		b := s[i]
		switch byteClass[b] {
		case clsPlain, clsEscape, clsControl:
			i++
		case clsBad:
			st.bad++
			if b == 0 {
				st.nul++
			}
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				st.bad++
			}
			i += size
		}
	}
	return st
}

// isBinary reports whether a chunk is binary output, as
// classify(s).binary(len(s)) does, but finds a NUL byte (which alone makes
// a chunk binary) first, at memchr speed: the middle of a binary burst
// (`cat` of an executable, `head -c N /dev/zero`) is only classified, and
// a byte-by-byte classify was most of what recording it cost.
func isBinary(s []byte) bool {
	if bytes.IndexByte(s, 0) >= 0 {
		return true
	}
	return classify(s).binary(len(s))
}

// growBytes returns dst with room for at least n more bytes.
func growBytes(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	c := 2*cap(dst) + n
	nd := make([]byte, len(dst), c)
	copy(nd, dst)
	return nd
}

// splitIncomplete returns how many bytes at the end of s are the start of a
// UTF-8 sequence that the next chunk may complete (0 to 3).
func splitIncomplete(s []byte) int {
	for i := len(s) - 1; i >= 0 && i >= len(s)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(s[i]) {
			// FullRune is false only for a valid prefix of a longer sequence;
			// an invalid byte counts as a (one-byte) full rune.
			if !utf8.FullRune(s[i:]) {
				return len(s) - i
			}
			return 0
		}
	}
	return 0
}

// carry holds the incomplete UTF-8 sequence at the end of one event, to be
// joined with the start of the next event of the same stream.
type carry struct {
	b [utf8.UTFMax]byte
	n int
}

// appendTime appends microseconds as seconds with six decimals, the
// precision asciinema itself writes.
func appendTime(dst []byte, us int64) []byte {
	if us < 0 {
		us = 0
	}
	dst = strconv.AppendInt(dst, us/1e6, 10)
	frac := us % 1e6
	var d [7]byte
	d[0] = '.'
	for i := 6; i >= 1; i-- {
		d[i] = byte('0' + frac%10)
		frac /= 10
	}
	return append(dst, d[:]...)
}

// appendEvent appends the line for one event of type typ at time us, with
// data as its text. For "o" and "i" events c carries a character split
// between two events: an incomplete sequence at the end of data is kept in c
// for the next call, and one kept from the previous call is completed from
// the start of data. Nothing is appended if no text is left. It returns the
// stats of the bytes escaped.
func appendEvent(dst []byte, us int64, typ byte, c *carry, data []byte) ([]byte, textStats) {
	mark := len(dst)
	dst = append(dst, '[')
	dst = appendTime(dst, us)
	dst = append(dst, ", \""...)
	dst = append(dst, typ)
	dst = append(dst, "\", \""...)
	body := len(dst)
	var st textStats
	if c != nil && c.n > 0 {
		// Join the kept bytes with as many of data's as one character
		// needs, decode what that gives, and go on from where the carry
		// ends. utf8.UTFMax-1 more bytes always suffice.
		var j [2 * utf8.UTFMax]byte
		n := copy(j[:], c.b[:c.n])
		n += copy(j[n:], data[:min(len(data), utf8.UTFMax-1)])
		if !utf8.FullRune(j[:n]) && n-c.n == len(data) {
			// Still incomplete, and data is used up: keep waiting.
			copy(c.b[:], j[:n])
			c.n = n
			dst = dst[:mark]
			return dst, st
		}
		pos := 0
		for pos < c.n {
			_, size := utf8.DecodeRune(j[pos:n])
			var s2 textStats
			dst, s2 = appendEscaped(dst, j[pos:pos+size])
			st.nul += s2.nul
			st.bad += s2.bad
			pos += size
		}
		data = data[pos-c.n:]
		c.n = 0
	}
	if c != nil {
		if k := splitIncomplete(data); k > 0 {
			c.n = copy(c.b[:], data[len(data)-k:])
			data = data[:len(data)-k]
		}
	}
	var s2 textStats
	dst, s2 = appendEscaped(dst, data)
	st.nul += s2.nul
	st.bad += s2.bad
	if len(dst) == body {
		return dst[:mark], st
	}
	dst = append(dst, "\"]\n"...)
	return dst, st
}

// flushCarry appends an event holding U+FFFD if c holds an incomplete
// character that will never be completed (the stream ended or was cut).
func flushCarry(dst []byte, us int64, typ byte, c *carry) []byte {
	if c.n == 0 {
		return dst
	}
	c.n = 0
	dst, _ = appendEvent(dst, us, typ, nil, []byte("\ufffd"))
	return dst
}
