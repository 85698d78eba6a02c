package recording

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// sanitize is what a recording must hold for s: invalid bytes replaced,
// one U+FFFD each, as utf8.DecodeRune reads them.
func sanitize(s []byte) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		b.WriteRune(r)
		s = s[n:]
	}
	return b.String()
}

// decodeJSONString decodes the inside of a JSON string with encoding/json.
func decodeJSONString(t testing.TB, inner []byte) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, inner...), '"'), &s); err != nil {
		t.Fatalf("escaped %q is not a JSON string: %v", inner, err)
	}
	return s
}

func TestEscapeEveryByte(t *testing.T) {
	for b := 0; b < 256; b++ {
		in := []byte{'a', byte(b), 'z'}
		out, _ := appendEscaped(nil, in)
		if got, want := decodeJSONString(t, out), sanitize(in); got != want {
			t.Errorf("byte %#02x: decoded %q, want %q", b, got, want)
		}
		if !utf8.Valid(out) {
			t.Errorf("byte %#02x: escaped form %q is not UTF-8", b, out)
		}
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		name string
		in   string
		out  string // exact escaped form, if set
		bad  int
		nul  int
	}{
		{name: "plain", in: "hello world", out: "hello world"},
		{name: "long plain", in: strings.Repeat("abcdefgh", 5) + "x", out: strings.Repeat("abcdefgh", 5) + "x"},
		{name: "quote and backslash", in: `say "hi" \ bye`, out: `say \"hi\" \\ bye`},
		{name: "short escapes", in: "a\nb\rc\td\be\ff", out: `a\nb\rc\td\be\ff`},
		{name: "esc", in: "\x1b[1mbold\x1b[0m", out: `\u001b[1mbold\u001b[0m`},
		{name: "nul", in: "a\x00b", out: `a\u0000b`, bad: 1, nul: 1},
		{name: "other C0", in: "\x01\x02\x1f", out: `\u0001\u0002\u001f`, bad: 3},
		{name: "DEL raw", in: "a\x7fb", out: "a\x7fb"},
		{name: "utf8", in: "héllo — ✓ 😀", out: "héllo — ✓ 😀"},
		{name: "line separators raw", in: "a\u2028b\u2029c", out: "a\u2028b\u2029c"},
		{name: "invalid byte", in: "a\xffb", out: "a\ufffdb", bad: 1},
		{name: "truncated rune inside", in: "a\xe2\x82b", out: "a\ufffd\ufffdb", bad: 2},
		{name: "surrogate", in: "\xed\xa0\x80", out: "\ufffd\ufffd\ufffd", bad: 3},
		{name: "overlong", in: "\xc0\xaf", out: "\ufffd\ufffd", bad: 2},
		{name: "special in 8-byte block", in: "abcdefg\"hijklmnop\\qrstuvw\x00", out: `abcdefg\"hijklmnop\\qrstuvw\u0000`, bad: 1, nul: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, st := appendEscaped([]byte("prefix"), []byte(tt.in))
			out = bytes.TrimPrefix(out, []byte("prefix"))
			if tt.out != "" && string(out) != tt.out {
				t.Errorf("escaped %q, want %q", out, tt.out)
			}
			if got, want := decodeJSONString(t, out), sanitize([]byte(tt.in)); got != want {
				t.Errorf("decoded %q, want %q", got, want)
			}
			if st.bad != tt.bad || st.nul != tt.nul {
				t.Errorf("stats %+v, want bad %d nul %d", st, tt.bad, tt.nul)
			}
			if cs := classify([]byte(tt.in)); cs != st {
				t.Errorf("classify %+v, escaper counted %+v", cs, st)
			}
		})
	}
}

func TestAppendTime(t *testing.T) {
	for us, want := range map[int64]string{0: "0.000000", 1: "0.000001", 1234567: "1.234567", 3600_000_000: "3600.000000", -5: "0.000000"} {
		if got := string(appendTime(nil, us)); got != want {
			t.Errorf("appendTime(%d) = %s, want %s", us, got, want)
		}
	}
}

// TestEventCarry checks that a character split between events is joined
// into the later one, whatever the split.
func TestEventCarry(t *testing.T) {
	const text = "a€b😀c\xffd\xe2\x82"
	for _, sizes := range [][]int{{1}, {2}, {3}, {4}, {1, 2}, {2, 1, 3}, {100}} {
		var c carry
		var out []byte
		data := []byte(text)
		for i := 0; len(data) > 0; i++ {
			n := min(sizes[i%len(sizes)], len(data))
			out, _ = appendEvent(out, int64(i), 'o', &c, data[:n])
			data = data[n:]
		}
		out = flushCarry(out, 99, 'o', &c)
		rd, err := NewReader(io.MultiReader(strings.NewReader(`{"version":2,"width":80,"height":24}`+"\n"), bytes.NewReader(out)))
		if err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for {
			ev, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("sizes %v: %v\n%s", sizes, err, out)
			}
			got.WriteString(ev.Data)
		}
		// The final incomplete "\xe2\x82" is one U+FFFD at the end.
		if want := "a€b😀c\ufffdd\ufffd"; got.String() != want {
			t.Errorf("sizes %v: got %q, want %q", sizes, got.String(), want)
		}
	}
}

func TestReaderRoundTrip(t *testing.T) {
	meta := testMeta("s1")
	meta.Action, meta.Command = "exec", `echo "hi"`
	hdr, err := encodeHeader(meta, 1_700_000_000)
	if err != nil {
		t.Fatal(err)
	}
	events := []struct {
		us   int64
		typ  byte
		data string
	}{
		{0, 'o', "$ "},
		{1500, 'i', "ls\r"},
		{250000, 'o', "a\r\nb\x1b[0m \"q\" \\ ✓\r\n"},
		{1_000_000, 'r', "100x40"},
		{61_234_567, 'o', "bye"},
	}
	buf := append([]byte(nil), hdr...)
	for _, e := range events {
		buf, _ = appendEvent(buf, e.us, e.typ, nil, []byte(e.data))
	}
	rd, err := NewReader(bytes.NewReader(buf))
	if err != nil {
		t.Fatal(err)
	}
	h := rd.Header()
	if h.Version != 2 || h.Width != 80 || h.Height != 24 || h.Timestamp != 1_700_000_000 ||
		h.Env["TERM"] != "xterm-256color" || h.Title != `alice~root~web1 $ echo "hi"` {
		t.Errorf("header %+v", h)
	}
	wantMeta := map[string]string{"session": "s1", "user": "alice", "target": "web1", "account": "root",
		"source": "192.0.2.1:5555", "action": "exec", "command": `echo "hi"`}
	for k, v := range wantMeta {
		if h.Portcullis[k] != v {
			t.Errorf("portcullis[%s] = %q, want %q", k, h.Portcullis[k], v)
		}
	}
	for i, e := range events {
		ev, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type != string(e.typ) || ev.Data != e.data || int64(ev.Time*1e6+0.5) != e.us {
			t.Errorf("event %d: %+v, want %+v", i, ev, e)
		}
	}
	if _, err := rd.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last event: %v, want EOF", err)
	}
}

func TestReaderErrors(t *testing.T) {
	const hdr = `{"version":2,"width":80,"height":24}` + "\n"
	tests := []struct {
		name, in, want string
		header         bool // the error is from NewReader
	}{
		{name: "empty", in: "", want: "no header", header: true},
		{name: "not json", in: "hello\n", want: "line 1", header: true},
		{name: "version 1", in: `{"version":1,"width":80,"height":24}`, want: "version 1", header: true},
		{name: "version 3", in: `{"version":3,"term":{"cols":80,"rows":24}}`, want: "version 3", header: true},
		{name: "no version", in: `{"width":80,"height":24}`, want: "no version", header: true},
		{name: "no size", in: `{"version":2}`, want: "terminal size", header: true},
		{name: "long header", in: `{"version":2,"width":80,"height":24,"title":"` + strings.Repeat("x", MaxLineSize) + `"}`, want: "longer than", header: true},
		{name: "not array", in: hdr + `{"a":1}` + "\n", want: "line 2: event is not a JSON array"},
		{name: "two elements", in: hdr + `[1, "o"]` + "\n", want: "line 2: event has 2 elements"},
		{name: "bad time", in: hdr + "\n" + `["1", "o", "x"]`, want: "line 3: event time is not a number"},
		{name: "negative time", in: hdr + `[-1, "o", "x"]`, want: "line 2: event time -1"},
		{name: "bad type", in: hdr + `[1, 2, "x"]`, want: "line 2: event type"},
		{name: "empty type", in: hdr + `[1, "", "x"]`, want: "line 2: bad event type"},
		{name: "bad data", in: hdr + `[1, "o", 3]`, want: "line 2: event data"},
		{name: "torn line", in: hdr + `[1, "o", "x"]` + "\n" + `[2, "o", "ab`, want: "line 3"},
		{name: "long line", in: hdr + `[1, "o", "` + strings.Repeat("x", MaxLineSize) + `"]`, want: "line 2: longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, err := NewReader(strings.NewReader(tt.in))
			if tt.header {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("NewReader: %v, want an error with %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for {
				_, err = rd.Next()
				if err != nil {
					break
				}
			}
			if errors.Is(err, io.EOF) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Next: %v, want an error with %q", err, tt.want)
			}
			if _, again := rd.Next(); again == nil || again.Error() != err.Error() {
				t.Errorf("error not sticky: %v then %v", err, again)
			}
		})
	}
}

// FuzzReader: the reader never panics, always ends, and keeps its memory to
// MaxLineSize per line.
func FuzzReader(f *testing.F) {
	hdr := `{"version":2,"width":80,"height":24,"timestamp":1700000000,"env":{"TERM":"xterm"},"portcullis":{"session":"x","n":1}}`
	for _, s := range []string{
		hdr + "\n" + `[0.5, "o", "hello\r\n"]` + "\n" + `[1.0, "r", "100x30"]` + "\n",
		hdr + "\n" + `[0.5, "o", "\u001b[1m\ud83d\ude00"]` + "\n" + `[0.6, "i", "ls"]`,
		hdr + "\n\n\n" + `[1e308, "o", ""]`,
		hdr + "\r\n" + `[0.1, "o", "x"]` + "\r\n",
		`{"version":2,"width":1,"height":1}` + "\n" + `[0, "o", "\x00"]`,
		`{"version":2,"width":-1,"height":1}`,
		`{"version":1,"width":80,"height":24,"stdout":[]}`,
		hdr + "\n" + `[1, "o", "x", 4]`,
		"\xff\xfe",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rd, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		_ = rd.Header()
		for i := 0; ; i++ {
			ev, err := rd.Next()
			if err != nil {
				return
			}
			if i > len(data) {
				t.Fatal("more events than bytes")
			}
			if ev.Time < 0 || ev.Type == "" {
				t.Fatalf("bad event accepted: %+v", ev)
			}
		}
	})
}

// FuzzEscape: whatever the bytes and however they are split into events,
// the file decodes to them with invalid bytes replaced.
func FuzzEscape(f *testing.F) {
	f.Add([]byte("hello\r\n\x1b[0m\"\\"), uint8(3))
	f.Add([]byte("a€b😀c\xffd\xe2\x82"), uint8(1))
	f.Add([]byte{0, 1, 2, 0xc3, 0xa9, 0xf0, 0x9f}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		n := int(split)%7 + 1
		var c carry
		var out []byte
		rest := data
		for i := 0; len(rest) > 0; i++ {
			k := min(n, len(rest))
			out, _ = appendEvent(out, int64(i), 'o', &c, rest[:k])
			rest = rest[k:]
		}
		out = flushCarry(out, 1<<40, 'o', &c)
		if !utf8.Valid(out) {
			t.Fatalf("not UTF-8: %q", out)
		}
		var got strings.Builder
		for _, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var ev []any
			if err := json.Unmarshal(line, &ev); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			got.WriteString(ev[2].(string))
		}
		// Invalid bytes are one U+FFFD each, except that an incomplete
		// character at the very end is one U+FFFD in all.
		want := sanitize(data)
		if k := splitIncomplete(data); k > 0 {
			want = sanitize(data[:len(data)-k]) + "\ufffd"
		}
		if got.String() != want {
			t.Fatalf("got %q, want %q", got.String(), want)
		}
	})
}

// seqText is output like `seq`: short numeric lines, the worst case for the
// escaper (a newline every few bytes).
func seqText(n int) []byte { return seqFrom(1, n) }

// seqFrom is n bytes of `seq` output from first on.
func seqFrom(first, n int) []byte {
	var b bytes.Buffer
	for i := first; b.Len() < n; i++ {
		b.WriteString(itoa(i))
		b.WriteString("\r\n")
	}
	return b.Bytes()[:n]
}

func itoa(i int) string {
	var d [20]byte
	p := len(d)
	for {
		p--
		d[p] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(d[p:])
		}
	}
}

// proseText is output like `cat` of a source file or a log: long lines with
// some colour.
func proseText(n int) []byte {
	line := "2024-05-01T12:00:00Z \x1b[32mINFO\x1b[0m server: accepted connection from 192.0.2.7:51234 (user \"alice\")\r\n"
	return []byte(strings.Repeat(line, n/len(line)+1)[:n])
}

func BenchmarkEscape(b *testing.B) {
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"seq", seqText(32 << 10)},
		{"seq-8-digit", seqFrom(10_000_000, 32<<10)}, // most of `seq 1 20000000`
		{"prose", proseText(32 << 10)},
		{"utf8", []byte(strings.Repeat("Grüße, 世界! ✓ ", 32<<10/20))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dst := make([]byte, 0, 3*len(bc.data))
			b.SetBytes(int64(len(bc.data)))
			cpu0 := cpuTime()
			for b.Loop() {
				dst, _ = appendEscaped(dst[:0], bc.data)
			}
			// CPU per GB: ns/op is wall time, which other work on a
			// shared machine moves.
			b.ReportMetric((cpuTime()-cpu0).Seconds()/(float64(b.N)*float64(len(bc.data))/1e9), "cpu-s/GB")
		})
	}
	// For comparison: what encoding/json costs for the same event.
	b.Run("seq-encoding-json", func(b *testing.B) {
		data := seqText(32 << 10)
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			_, _ = json.Marshal([]any{1.234567, "o", string(data)})
		}
	})
}
