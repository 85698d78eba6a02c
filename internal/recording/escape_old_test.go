package recording

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strings"
	"testing"
	"unicode/utf8"
)

// The encoder as it was before issue 13 (commit f5fdb20), kept verbatim
// as the reference the current one must match byte for byte: a
// recording's bytes and SHA-256 never change with an optimization.

func oldAppendEscaped(dst, s []byte) ([]byte, textStats) {
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

func oldAppendEvent(dst []byte, us int64, typ byte, c *carry, data []byte) ([]byte, textStats) {
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
			dst, s2 = oldAppendEscaped(dst, j[pos:pos+size])
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
	dst, s2 = oldAppendEscaped(dst, data)
	st.nul += s2.nul
	st.bad += s2.bad
	if len(dst) == body {
		return dst[:mark], st
	}
	dst = append(dst, "\"]\n"...)
	return dst, st
}

// FuzzEscapeMatchesOld: whatever the bytes and however they are split into
// events, the encoder writes exactly what the old one wrote, with the same
// statistics for the binary classifier.
func FuzzEscapeMatchesOld(f *testing.F) {
	f.Add([]byte("hello\r\n\x1b[0m\"\\"), uint16(3))
	f.Add([]byte("a€b😀c\xffd\xe2\x82"), uint16(1))
	f.Add([]byte{0, 1, 2, 0xc3, 0xa9, 0xf0, 0x9f}, uint16(2))
	f.Add(seqText(4096), uint16(1000))
	f.Add(proseText(4096), uint16(77))
	f.Add([]byte(strings.Repeat("\r\n", 64)+"\x7f\x00\x1f\"\\/"), uint16(9))
	f.Add([]byte(strings.Repeat("Grüße, 世界! ✓ \xed\xa0\x80\xc0\xaf", 40)), uint16(13))
	all := make([]byte, 512)
	for i := range all {
		all[i] = byte(i)
	}
	f.Add(all, uint16(8))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		n := int(split)%4096 + 1
		var c, oc carry
		var got, want []byte
		var gs, ws textStats
		rest := data
		for i := 0; len(rest) > 0; i++ {
			k := min(n+i%3, len(rest))
			var s1, s2 textStats
			got, s1 = appendEvent(got, int64(i), 'o', &c, rest[:k])
			want, s2 = oldAppendEvent(want, int64(i), 'o', &oc, rest[:k])
			gs.bad, gs.nul = gs.bad+s1.bad, gs.nul+s1.nul
			ws.bad, ws.nul = ws.bad+s2.bad, ws.nul+s2.nul
			rest = rest[k:]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("events differ from the old encoder's:\n got %q\nwant %q", got, want)
		}
		if gs != ws {
			t.Fatalf("stats %+v, old encoder %+v", gs, ws)
		}
		// And in one piece, at every offset into a reused buffer.
		for off := range 9 {
			pre := bytes.Repeat([]byte{'x'}, off)
			g, s1 := appendEscaped(append([]byte(nil), pre...), data)
			w, s2 := oldAppendEscaped(append([]byte(nil), pre...), data)
			if !bytes.Equal(g, w) || s1 != s2 {
				t.Fatalf("appendEscaped at offset %d differs from the old one", off)
			}
		}
	})
}

// TestEscapeMatchesOldLarge compares the encoders on large inputs the
// fuzz seeds do not reach: whole events of maxEventData of seq, prose,
// random bytes and random text.
func TestEscapeMatchesOldLarge(t *testing.T) {
	rnd := make([]byte, maxEventData)
	txt := make([]byte, maxEventData)
	x := uint64(1)
	for i := range rnd {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		rnd[i] = byte(x)
		alpha := " ~\r\na\"\\\x1b\tz09\xc3\xa9\x00"
		txt[i] = alpha[x%uint64(len(alpha))]
	}
	for name, data := range map[string][]byte{
		"seq": seqText(maxEventData), "prose": proseText(maxEventData), "random": rnd, "text": txt,
	} {
		g, s1 := appendEscaped(nil, data)
		w, s2 := oldAppendEscaped(nil, data)
		if !bytes.Equal(g, w) || s1 != s2 {
			t.Errorf("%s: appendEscaped differs from the old encoder (%d vs %d bytes, stats %+v vs %+v)", name, len(g), len(w), s1, s2)
		}
		if !utf8.Valid(g) {
			t.Errorf("%s: not UTF-8", name)
		}
	}
}
