package duration

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "90s", want: 90 * time.Second},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "2.5h", want: 150 * time.Minute},
		{in: "300ms", want: 300 * time.Millisecond},
		{in: "30d", want: 30 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "12h1d", want: 36 * time.Hour},
		{in: "720h", want: 720 * time.Hour},
		{in: "", bad: true},
		{in: "d", bad: true},
		{in: "7", bad: true},
		{in: "-1h", bad: true},
		{in: "+1h", bad: true},
		{in: "1w", bad: true},
		{in: "1 h", bad: true},
		{in: "1h ", bad: true},
		{in: "1e3s", bad: true},
		{in: "99999999999999999999d", bad: true},
		{in: "1dd", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{
		720 * time.Hour: "30d", 36 * time.Hour: "1d12h0m0s", time.Hour: "1h0m0s", 0: "0s",
	} {
		if got := Format(d); got != want {
			t.Errorf("Format(%v) = %q, want %q", d, got, want)
		}
		if back, err := Parse(Format(d)); err != nil || back != d {
			t.Errorf("Parse(Format(%v)) = %v, %v", d, back, err)
		}
	}
}

// FuzzParse checks that Parse never panics and that whatever it accepts
// is non-negative and reads back through Format.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "90s", "1h30m", "30d", "1.5d", "1d12h", "-1h", "", "9223372036854775807ns", "1e3s", "..5d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("Parse(%q) = %v, negative", s, d)
		}
		if back, err := Parse(Format(d)); err != nil || back != d {
			t.Fatalf("Parse(Format(%v)) = %v, %v (from %q)", d, back, err, s)
		}
	})
}
