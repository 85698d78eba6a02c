package recording

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// TestIndexLineTimes: the index keeps when each line of a chunk appeared,
// so that a word typed at 11 s in a chunk that began at 6.3 s maps back to
// 11 s (the event that finished its line), and lines that arrive together
// cost nothing in the chunk's times.
func TestIndexLineTimes(t *testing.T) {
	sec := func(s float64) int64 { return int64(s * 1e6) }
	type ev struct {
		at   float64
		data string
	}
	cases := []struct {
		name string
		evs  []ev
		word string
		want float64
	}{
		{"typed word", []ev{
			{6.3, "$ ls\r\n"}, {6.4, "bin  etc\r\n$ "},
			{10.2, "e"}, {10.3, "cho zebra"}, {10.9, "corn"}, {11, "\r\n"},
			{11.01, "zebracorn\r\n$ "},
		}, "zebracorn", 11},
		{"output in one event", []ev{
			{6.3, "$ seq\r\n1\r\n2\r\nneedle\r\n3\r\n$ "},
		}, "needle", 6.3},
		{"first of two", []ev{
			{1, "$ a\r\n"}, {2, "green\r\n"}, {3, "b\r\n"}, {4, "green\r\n"},
		}, "green", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var x textIndexer
			x.init("s", 80, 24, true)
			x.unlimited = true
			now := time.Unix(1000, 0)
			x.refill(now)
			for _, e := range c.evs {
				x.feed(sec(e.at), []byte(e.data))
			}
			chunks := x.take(now, true)
			if len(chunks) != 1 {
				t.Fatalf("chunks %+v", chunks)
			}
			ch := chunks[0]
			if c.name == "output in one event" && ch.Times != "" {
				t.Errorf("times %q for lines that came at once", ch.Times)
			}
			line := -1
			for i, l := range strings.Split(ch.Text, "\n") {
				if strings.Contains(l, c.word) {
					line = i
					break
				}
			}
			got := store.HitOffset(ch.Offset, ch.Times, line)
			if math.Abs(got-c.want) > 0.001 {
				t.Errorf("%q on line %d of %q (from %v, times %q): at %v, want %v", c.word, line, ch.Text, ch.Offset, ch.Times, got, c.want)
			}
		})
	}
}
