package recording

import (
	"strings"
	"testing"
)

func TestSegOffset(t *testing.T) {
	tests := []struct {
		name string
		want int64
		ok   bool
	}{
		{"r1.seg/0000000000000000", 0, true},
		{"r1.seg/0000000000004096", 4096, true},
		{segName("r1", 123456789), 123456789, true},
		{"r1.seg/+000000000004096", 0, false},
		{"r1.seg/-000000000004096", 0, false},
		{"r1.seg/4096", 0, false},
		{"r1.seg/00000000000040960", 0, false},
		{"r1.seg/000000000000409a", 0, false},
		{"r2.seg/0000000000004096", 0, false},
		{"r1.seg/9999999999999999", 9999999999999999, true},
		{"r1.cast", 0, false},
	}
	for _, tt := range tests {
		got, err := segOffset("r1", tt.name)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("segOffset(%q) = %d, %v; want %d, ok %v", tt.name, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzSegOffset(f *testing.F) {
	for _, s := range []string{"r1.seg/0000000000000000", "r1.seg/+000000000000001", "r1.seg/", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		off, err := segOffset("r1", name)
		if err != nil {
			return
		}
		// Accepted names are exactly the ones segName writes.
		if off < 0 || segName("r1", off) != name || !strings.HasPrefix(name, "r1.seg/") {
			t.Fatalf("segOffset(%q) = %d", name, off)
		}
	})
}
