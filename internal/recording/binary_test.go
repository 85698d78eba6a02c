package recording

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzIsBinary: the NUL shortcut never changes the verdict of the full
// classifier, so bursts (and so recording files) stay what they were.
func FuzzIsBinary(f *testing.F) {
	for _, s := range []string{
		"", "\x00", "text\r\n", "a\x00b", strings.Repeat("x", 100) + "\x00",
		"\x01\x02\x03\x04\x05\x06\x07\x08\x09", "12345678\x01", "1234567\x01",
		"\xff\xfe\xfd", "é\xffabcdefgh", string(bytes.Repeat([]byte{0x80}, 9)),
		"\x1b[0m\x07\b\t\n\v\f\r\x0e\x0f",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		if got, want := isBinary(s), classify(s).binary(len(s)); got != want {
			t.Fatalf("isBinary(%q) = %v, classify says %v", s, got, want)
		}
	})
}

// TestIsBinaryLarge checks the verdict on chunks of the size a recording
// classifies, with the NUL at either end, in the middle, or missing.
func TestIsBinaryLarge(t *testing.T) {
	text := seqText(maxEventData)
	for _, c := range []struct {
		name string
		data []byte
		want bool
	}{
		{"zeros", make([]byte, maxEventData), true},
		{"text", text, false},
		{"nul first", append([]byte{0}, text[1:]...), true},
		{"nul last", append(append([]byte(nil), text[:len(text)-1]...), 0), true},
		{"one bad byte in eight", bytes.Repeat([]byte("\x01abcdefg"), maxEventData/8), false},
		{"more than one in eight", bytes.Repeat([]byte("\x01\x01abcdefg"), maxEventData/9), true},
	} {
		if got := isBinary(c.data); got != c.want || got != classify(c.data).binary(len(c.data)) {
			t.Errorf("%s: isBinary = %v, want %v (classify: %v)", c.name, got, c.want, classify(c.data).binary(len(c.data)))
		}
	}
}
