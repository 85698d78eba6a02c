package store

import (
	"math"
	"testing"
)

func TestLineTimes(t *testing.T) {
	times := EncodeLineTimes(6.3, []LineTime{
		{Line: 1, Offset: 6.3},    // same time as line 0: left out
		{Line: 2, Offset: 9.25},   // 3 s later
		{Line: 5, Offset: 11.004}, // the typed word's line
		{Line: 4, Offset: 12},     // out of order: left out
	})
	if times != "2:2950,3:1754" {
		t.Fatalf("encoded %q", times)
	}
	for _, c := range []struct {
		name  string
		times string
		line  int
		want  float64
	}{
		{"first line", times, 0, 6.3},
		{"before the first entry", times, 1, 6.3},
		{"an entry's line", times, 2, 9.25},
		{"between entries", times, 4, 9.25},
		{"last entry", times, 5, 11.004},
		{"past the last", times, 19, 11.004},
		{"no times", "", 7, 6.3},
		{"negative line", times, -1, 6.3},
		{"garbage", "2:x", 3, 6.3},
		{"zero line step", "0:5", 3, 6.3},
		{"huge step", "1:99999999999999999999", 3, 6.3},
		{"overflow by sum", "1:2251799813685248,1:2251799813685248", 3, 6.3},
		{"no colon", "25", 3, 6.3},
	} {
		if got := HitOffset(6.3, c.times, c.line); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: HitOffset(%q, %d) = %v, want %v", c.name, c.times, c.line, got, c.want)
		}
	}
	for _, c := range []struct {
		marked string
		want   int
	}{
		{"a\nb\n\x02needle\nc", 2},
		{"\x02needle", 0},
		{"no match\nhere", 0},
		{"a\n\x02x\n\x02y", 1},
	} {
		if got := MatchLine(c.marked, "\x02"); got != c.want {
			t.Errorf("MatchLine(%q) = %d, want %d", c.marked, got, c.want)
		}
	}
}

// FuzzHitOffset: times come from the database, which another gateway
// (or someone with write access to it) wrote; reading them never panics
// and never gives a time before the chunk's start by more than its
// entries say, nor NaN.
func FuzzHitOffset(f *testing.F) {
	f.Add("2:2950,3:1754", 4)
	f.Add("", 0)
	f.Add("1:-5,1:9223372036854775807", 2)
	f.Add(",,,:", 1)
	f.Fuzz(func(t *testing.T, times string, line int) {
		got := HitOffset(6.3, times, line)
		if math.IsNaN(got) || math.IsInf(got, 0) {
			t.Fatalf("HitOffset(%q, %d) = %v", times, line, got)
		}
	})
}
