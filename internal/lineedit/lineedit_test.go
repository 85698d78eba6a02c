package lineedit

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// result is one observation of the Editor: an Enter or Cancel with the line
// at that moment, or (with ev None, always last) the line still being edited
// once the input ran out.
type result struct {
	ev      Event
	line    string
	certain bool
}

func (r result) String() string {
	return fmt.Sprintf("%v %q certain=%v", r.ev, r.line, r.certain)
}

func enter(line string, certain bool) result  { return result{Enter, line, certain} }
func cancel(line string, certain bool) result { return result{Cancel, line, certain} }
func open(line string, certain bool) result   { return result{None, line, certain} }

// run feeds in to a fresh Editor and records what it reports, checking the
// cursor invariant after every byte.
func run(t testing.TB, in string) []result {
	var e Editor
	var got []result
	ev := None
	for i := 0; i < len(in); i++ {
		ev = e.Feed(in[i])
		if e.cursor < 0 || e.cursor > len(e.line) {
			t.Fatalf("after byte %d: cursor %d outside [0, %d]", i, e.cursor, len(e.line))
		}
		if ev != None {
			line, certain := e.Line()
			got = append(got, result{ev, line, certain})
		}
	}
	if ev == None {
		line, certain := e.Line()
		got = append(got, open(line, certain))
	}
	return got
}

var tests = []struct {
	name string
	in   string
	want []result
}{
	// Typing and accepting.
	{"plain", "ls -l\r", []result{enter("ls -l", true)}},
	{"LF", "ls\n", []result{enter("ls", true)}},
	{"empty", "\r", []result{enter("", true)}},
	{"two lines", "ls\rpwd\r", []result{enter("ls", true), enter("pwd", true)}},
	{"CRLF is two Enters", "ls\r\n", []result{enter("ls", true), enter("", true)}},
	{"unfinished", "ls -", []result{open("ls -", true)}},

	// Deleting characters.
	{"Backspace DEL", "lx\x7fs\r", []result{enter("ls", true)}},
	{"Backspace BS", "lx\bs\r", []result{enter("ls", true)}},
	{"Backspace at start", "\x7fls\r", []result{enter("ls", true)}},
	{"Backspace middle", "lxs\x02\x7f\r", []result{enter("ls", true)}},
	{"Delete", "lxs\x01\x06\x1b[3~\r", []result{enter("ls", true)}},
	{"Delete at end", "ls\x1b[3~\r", []result{enter("ls", true)}},
	{"Ctrl-D middle", "lxs\x02\x02\x04\r", []result{enter("ls", true)}},
	{"Ctrl-D at end", "ls\x04\r", []result{enter("ls", true)}},
	{"Ctrl-D empty", "\x04", []result{cancel("", true)}},
	{"Ctrl-D empty after Delete", "\x1b[3~\x04", []result{cancel("", true)}},
	{"Ctrl-D after history", "\x1b[A\x04\r", []result{enter("", false)}},

	// Kills.
	{"Ctrl-U at end", "rm -rf /\x15ls\r", []result{enter("ls", true)}},
	{"Ctrl-U middle", "abc\x02\x15\r", []result{enter("c", false)}},
	{"Ctrl-K", "ls foo\x01\x06\x06\x0b\r", []result{enter("ls", true)}},
	{"Ctrl-K at end", "ls\x0b\r", []result{enter("ls", true)}},
	{"Ctrl-W path", "ls /usr/bin\x17\r", []result{enter("ls ", true)}},
	{"Ctrl-W trailing blanks", "echo foo  \x17\r", []result{enter("echo ", true)}},
	{"Ctrl-W twice", "a b c\x17\x17\r", []result{enter("a ", true)}},
	{"Ctrl-W middle", "ls foo bar\x1bb\x17\r", []result{enter("ls bar", true)}},
	{"Ctrl-W at start", "ls\x01\x17\r", []result{enter("ls", true)}},
	{"Ctrl-W punctuation differs in zsh", "echo a,b\x17\r", []result{enter("echo ", false)}},
	{"Ctrl-W quote differs in zsh", "echo 'hi'\x17\r", []result{enter("echo ", false)}},
	{"Alt-d", "rm -rf /tmp\x01\x1bd\r", []result{enter(" -rf /tmp", true)}},
	{"Alt-d from blanks", "ls  foo bar\x01\x06\x06\x1bd\r", []result{enter("ls bar", true)}},
	{"Alt-d differs in zsh", "a-b c\x01\x1bd\r", []result{enter("-b c", false)}},
	{"Alt-Backspace", "ls foo\x1b\x7f\r", []result{enter("ls ", true)}},
	{"Alt-Ctrl-H", "ls foo\x1b\b\r", []result{enter("ls ", true)}},
	{"Alt-Backspace differs in zsh", "ls a-b\x1b\x7f\r", []result{enter("ls a-", false)}},

	// Moving.
	{"Ctrl-A", "s\x01l\r", []result{enter("ls", true)}},
	{"Home CSI H", "s\x1b[Hl\r", []result{enter("ls", true)}},
	{"Home SS3 H", "s\x1bOHl\r", []result{enter("ls", true)}},
	{"Home CSI 1~", "s\x1b[1~l\r", []result{enter("ls", true)}},
	{"Ctrl-E", "ls\x01\x05 -l\r", []result{enter("ls -l", true)}},
	{"End CSI F", "ls\x01\x1b[F -l\r", []result{enter("ls -l", true)}},
	{"End SS3 F", "ls\x01\x1bOF -l\r", []result{enter("ls -l", true)}},
	{"End CSI 4~", "ls\x01\x1b[4~ -l\r", []result{enter("ls -l", true)}},
	{"Ctrl-B", "ls\x02\x02x\r", []result{enter("xls", true)}},
	{"Left CSI", "ls\x1b[D\x1b[Dx\r", []result{enter("xls", true)}},
	{"Left SS3", "ls\x1bOD\x1bODx\r", []result{enter("xls", true)}},
	{"Left at start", "ls\x01\x02x\r", []result{enter("xls", true)}},
	{"Ctrl-F", "ls\x01\x06x\r", []result{enter("lxs", true)}},
	{"Right CSI", "ls\x01\x1b[Cx\r", []result{enter("lxs", true)}},
	{"Right SS3", "ls\x01\x1bOCx\r", []result{enter("lxs", true)}},
	{"Right at end", "ls\x06x\r", []result{enter("lsx", true)}},
	{"Alt-b", "git commit\x1bb\x1bbx\r", []result{enter("xgit commit", true)}},
	{"Ctrl-Left", "git commit\x1b[1;5D\x1b[1;5Dx\r", []result{enter("xgit commit", true)}},
	{"Alt-b differs in zsh", "ls a-b\x1bbx\r", []result{enter("ls a-xb", false)}},
	{"Alt-f differs in zsh", "git commit\x01\x1bfX\r", []result{enter("gitX commit", false)}},
	{"Ctrl-Right differs in zsh", "git commit\x01\x1b[1;5CX\r", []result{enter("gitX commit", false)}},
	{"Alt-f at last word", "git\x01\x1bfX\r", []result{enter("gitX", true)}},
	{"End after unsure cursor", "git commit\x01\x1bf\x05 -m\r", []result{enter("git commit -m", true)}},
	{"Home after unsure cursor", "git commit\x01\x1bf\x01x\r", []result{enter("xgit commit", true)}},
	{"relative move keeps cursor unsure", "git commit\x01\x1bf\x02X\r", []result{enter("giXt commit", false)}},
	{"unsure cursor without edit", "git commit\x01\x1bf\r", []result{enter("git commit", true)}},

	// Other keys.
	{"Ctrl-L", "l\x0cs\r", []result{enter("ls", true)}},
	{"Ctrl-T at end", "sl\x14\r", []result{enter("ls", true)}},
	{"Ctrl-T middle", "sl -l\x01\x06\x14\r", []result{enter("ls -l", true)}},
	{"Ctrl-T at start", "sl\x01\x14\r", []result{enter("sl", false)}},
	{"Ctrl-T short", "l\x14s\r", []result{enter("ls", true)}},
	{"Ctrl-G", "ls\x07\r", []result{enter("ls", false)}},
	{"Ctrl-Z and Ctrl-\\ ignored", "l\x1as\x1c\r", []result{enter("ls", true)}},
	{"Ctrl-Z inside a sequence", "ab\x1b\x1a[Dx\r", []result{enter("axb", true)}},
	{"Ctrl-@", "l\x00s\r", []result{enter("ls", true)}},
	{"Ctrl-Y", "ls \x19\r", []result{enter("ls ", false)}},
	{"Ctrl-_", "ls\x1f\r", []result{enter("ls", false)}},
	{"Ctrl-O", "ls\x0fpwd\r", []result{enter("ls", true), enter("pwd", false)}},

	// Cancel.
	{"Ctrl-C", "rm -rf /\x03ls\r", []result{cancel("rm -rf /", true), enter("ls", true)}},
	{"Ctrl-C clears uncertainty", "ls\t\x03ls\r", []result{cancel("ls", false), enter("ls", true)}},
	{"Ctrl-C after ESC", "x\x1b\x03ls\r", []result{cancel("x", true), enter("ls", true)}},
	{"Ctrl-C in CSI", "x\x1b[1\x03ls\r", []result{cancel("x", true), enter("ls", true)}},
	{"Ctrl-C after Ctrl-V", "x\x16\x03ls\r", []result{cancel("x", true), enter("ls", true)}},

	// Completion and history.
	{"Tab", "ls /us\t\r", []result{enter("ls /us", false)}},
	{"uncertainty ends with the line", "\t\rls\r", []result{enter("", false), enter("ls", true)}},
	{"Up CSI", "\x1b[A\r", []result{enter("", false)}},
	{"Down CSI", "\x1b[B\r", []result{enter("", false)}},
	{"Up SS3", "\x1bOA\r", []result{enter("", false)}},
	{"Down SS3", "\x1bOB\r", []result{enter("", false)}},
	{"Ctrl-P", "\x10\r", []result{enter("", false)}},
	{"Ctrl-N", "\x0e\r", []result{enter("", false)}},
	{"Ctrl-R", "\x12rm\r", []result{enter("rm", false)}},
	{"Ctrl-S", "\x13rm\r", []result{enter("rm", false)}},
	{"PageUp", "\x1b[5~\r", []result{enter("", false)}},
	{"PageDown", "\x1b[6~\r", []result{enter("", false)}},
	{"Alt-p search prompt", "\x1bprm\rls\r", []result{enter("rm", false), enter("ls", false)}},

	// Quoted insert.
	{"Ctrl-V control", "echo \x16\x01\r", []result{enter("echo \x01", true)}},
	{"Ctrl-V CR", "a\x16\rb\r", []result{enter("a\rb", true)}},
	{"Ctrl-V ESC", "\x16\x1b[A\r", []result{enter("\x1b[A", true)}},
	{"Ctrl-V Tab", "a\x16\tb\r", []result{enter("a\tb", true)}},
	{"Ctrl-V UTF-8", "\x16é\r", []result{enter("é", true)}},

	// Bracketed paste.
	{"paste", "\x1b[200~echo hi\x1b[201~\r", []result{enter("echo hi", true)}},
	{"paste is literal", "\x1b[200~a\tb\x7f\x01\x1b[201~\r", []result{enter("a\tb\x7f\x01", true)}},
	{"paste at cursor", "ab\x02\x1b[200~X\x1b[201~\r", []result{enter("aXb", true)}},
	{"paste with newline", "\x1b[200~ls\rrm -rf /\x1b[201~\r",
		[]result{enter("ls", true), enter("rm -rf /", false)}},
	{"paste with LF", "\x1b[200~ls\nrm\x1b[201~\r", []result{enter("ls", true), enter("rm", false)}},
	{"paste ending in newline", "\x1b[200~ls\r\x1b[201~\r", []result{enter("ls", true), enter("", false)}},
	{"paste with escape sequence", "\x1b[200~a\x1b[2b\x1b[201~\r", []result{enter("a\x1b[2b", true)}},
	{"paste with marker prefix then ESC", "\x1b[200~\x1b[20\x1b[201~\r", []result{enter("\x1b[20", true)}},
	{"paste unfinished", "\x1b[200~ls", []result{open("ls", true)}},
	{"paste UTF-8", "\x1b[200~日本\x1b[201~\r", []result{enter("日本", true)}},
	{"paste truncated UTF-8", "\x1b[200~a\xe6\x1b[201~\r", []result{enter("a\uFFFD", false)}},
	{"paste truncated UTF-8 then text", "\x1b[200~\xe6a\x1b[201~\r", []result{enter("\uFFFDa", false)}},
	{"paste truncated UTF-8 at newline", "\x1b[200~\xe6\rb\x1b[201~\r",
		[]result{enter("\uFFFD", false), enter("b", false)}},
	{"Ctrl-C in paste", "\x1b[200~abc\x03def\x1b[201~\r", []result{cancel("abc", true), enter("def", false)}},
	{"stray paste end", "a\x1b[201~\r", []result{enter("a", false)}},

	// Unknown and broken sequences.
	{"unknown CSI", "a\x1b[1;2;3Xb\r", []result{enter("ab", false)}},
	{"CSI with intermediate", "a\x1b[1 qb\r", []result{enter("ab", false)}},
	{"unknown CSI ~", "a\x1b[15~b\r", []result{enter("ab", false)}},
	{"Shift-Right", "ab\x1b[1;2Cx\r", []result{enter("abx", false)}},
	{"Ctrl-Home", "ab\x1b[1;5Hx\r", []result{enter("abx", false)}},
	{"Ctrl-End", "ab\x1b[1;5Fx\r", []result{enter("abx", false)}},
	{"Alt-Left", "ab\x1b[1;3Dx\r", []result{enter("abx", false)}},
	{"Insert key is sticky", "a\x1b[2~b\rc\r", []result{enter("ab", false), enter("c", false)}},
	{"long CSI", "\x1b[" + strings.Repeat("1", 100) + "~x\r", []result{enter("x", false)}},
	{"CR breaks CSI", "ls\x1b[1\r", []result{enter("ls", false)}},
	{"ESC breaks CSI", "ls\x1b[1\x1b[D\x1b[Dx\r", []result{enter("xls", false)}},
	{"unknown SS3", "\x1bOPx\r", []result{enter("x", false)}},
	{"CR breaks SS3", "ls\x1bO\r", []result{enter("ls", false)}},
	{"keypad Enter", "ls\x1bOMpwd\r", []result{enter("ls", false), enter("pwd", false)}},
	{"unknown Alt key", "ls\x1bu\r", []result{enter("ls", false)}},
	{"Alt-digit", "abc\x1b2\x7f\r", []result{enter("ab", false)}},
	{"ESC ESC", "ls\x1b\x1b\r", []result{enter("ls", false)}},
	{"Alt-#", "ls\x1b#", []result{enter("ls", false)}},
	{"Alt-Enter is sticky", "ls\x1b\r\rpwd\r", []result{enter("ls", false), enter("pwd", false)}},
	{"Ctrl-X Ctrl-E", "ls\x18\x05", []result{enter("ls", false)}},
	{"Ctrl-X e", "ls\x18e", []result{enter("ls", false)}},
	{"Ctrl-X Ctrl-U", "ls\x18\x15\r", []result{enter("ls", false)}},
	{"Ctrl-X CR", "ls\x18\r\r", []result{enter("ls", false)}},
	{"Ctrl-X then sequence", "ls\x18\x1b[Dx\r", []result{enter("lxs", false)}},
	{"Ctrl-X Ctrl-V is sticky", "ls\x18\x16\rpwd\r", []result{enter("ls", false), enter("pwd", false)}},
	{"Ctrl-]", "ls\x1dx\r", []result{enter("ls", false)}},

	// UTF-8.
	{"UTF-8 2-byte", "héllo\r", []result{enter("héllo", true)}},
	{"UTF-8 3-byte", "日本\r", []result{enter("日本", true)}},
	{"UTF-8 4-byte", "😀!\r", []result{enter("😀!", true)}},
	{"UTF-8 insert middle", "日本\x02語\r", []result{enter("日語本", true)}},
	{"UTF-8 delete middle", "日語本\x02\x7f\r", []result{enter("日本", true)}},
	{"UTF-8 Delete key", "日語本\x01\x06\x1b[3~\r", []result{enter("日本", true)}},
	{"UTF-8 backspace 4-byte", "a😀\x7f\r", []result{enter("a", true)}},
	{"UTF-8 word kill", "ls 日本\x17\r", []result{enter("ls ", true)}},
	{"UTF-8 Alt-b", "ls éé\x1bbx\r", []result{enter("ls xéé", true)}},
	{"invalid byte", "a\xffb\r", []result{enter("a\uFFFDb", false)}},
	{"stray continuation", "\x80\r", []result{enter("\uFFFD", false)}},
	{"truncated then ASCII", "a\xe6\x97b\r", []result{enter("a\uFFFDb", false)}},
	{"truncated at Enter", "a\xe6\r", []result{enter("a\uFFFD", false)}},
	{"truncated then control", "ab\xe6\x02x\r", []result{enter("abx\uFFFD", false)}},
	{"overlong encoding", "\xe0\x80\x80\r", []result{enter("\uFFFD", false)}},
	{"surrogate", "\xed\xa0\x80\r", []result{enter("\uFFFD", false)}},
	{"C0/C1 lead", "\xc0\xaf\r", []result{enter("\uFFFD\uFFFD", false)}},

	// Bounds.
	{"overlong line", strings.Repeat("a", maxLine+10) + "\r", []result{enter(strings.Repeat("a", maxLine), false)}},
	{"overlong line middle insert", strings.Repeat("a", maxLine) + "\x01b\r", []result{enter(strings.Repeat("a", maxLine), false)}},
	{"line after overlong", strings.Repeat("a", maxLine+1) + "\rls\r",
		[]result{enter(strings.Repeat("a", maxLine), false), enter("ls", true)}},
}

func TestFeed(t *testing.T) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("input %q:\n got %v\nwant %v", trunc(tt.in), got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("input %q, result %d:\n got %v\nwant %v", trunc(tt.in), i, got[i], tt.want[i])
				}
			}
		})
	}
}

// trunc keeps failure messages for the very long inputs readable.
func trunc(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

func TestReset(t *testing.T) {
	var e Editor
	for _, b := range []byte("rm -rf /\t") {
		e.Feed(b)
	}
	// The gateway erased the line (sending Clear) and starts over.
	e.Reset()
	if line, certain := e.Line(); line != "" || !certain {
		t.Fatalf("after Reset: Line() = %q, %v; want \"\", true", line, certain)
	}
	var got []string
	e.Write([]byte("ls\r"), func(line string, certain bool) { got = append(got, fmt.Sprintf("%s %v", line, certain)) })
	if want := []string{"ls true"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}

	// Reset keeps the stream state: a paste in progress goes on.
	e = Editor{}
	e.Write([]byte("\x1b[200~ab"), nil)
	e.Reset()
	e.Write([]byte("c\x1b[201~"), nil)
	if line, certain := e.Line(); line != "c" || certain {
		t.Fatalf("Reset inside paste: Line() = %q, %v; want \"c\", false", line, certain)
	}

	// A huge line's buffer is not kept.
	e = Editor{}
	e.Write(bytes.Repeat([]byte("x"), 2*keepCap), nil)
	e.Reset()
	if cap(e.line) > keepCap {
		t.Fatalf("Reset kept a buffer of %d runes", cap(e.line))
	}
}

func TestWrite(t *testing.T) {
	var e Editor
	var got []result
	onLine := func(line string, certain bool) { got = append(got, enter(line, certain)) }
	// Split mid-sequence and mid-rune: Write calls share the stream state.
	e.Write([]byte("ls\rrm -rf /\x03git st\t\r\x1b["), onLine)
	e.Write([]byte("Dé\xc3"), onLine)
	e.Write([]byte("\xa9\r"), onLine)
	e.Write(nil, onLine)
	e.Write([]byte("x\r"), nil)
	want := []result{enter("ls", true), enter("git st", false), enter("éé", true)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if line, certain := e.Line(); line != "x" || !certain {
		t.Fatalf("Line() = %q, %v after Write with nil onLine", line, certain)
	}
}

func TestInPaste(t *testing.T) {
	var e Editor
	var got []bool
	for _, b := range []byte("a\x1b[200~b\rc\x1b[201~\r") {
		if e.Feed(b) == Enter {
			got = append(got, e.InPaste())
		}
	}
	if want := []bool{true, false}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("InPaste at each Enter = %v, want %v", got, want)
	}
	e.Write([]byte("\x1b[200~x\x03"), nil)
	if e.InPaste() {
		t.Fatal("InPaste after Ctrl-C")
	}
}

func TestClear(t *testing.T) {
	if got := Clear(); !bytes.Equal(got, []byte{0x05, 0x15}) {
		t.Fatalf("Clear() = %q", got)
	}
	Clear()[0] = 'x'
	if Clear()[0] != 0x05 {
		t.Fatal("Clear returns shared memory")
	}
	// The model agrees that Clear empties the line wherever the cursor is.
	var e Editor
	e.Write([]byte("rm -rf /\x1bb\x02"), nil)
	e.Write(Clear(), nil)
	if line, certain := e.Line(); line != "" || !certain {
		t.Fatalf("after Clear: Line() = %q, %v", line, certain)
	}
}

func TestEventString(t *testing.T) {
	for ev, want := range map[Event]string{None: "None", Enter: "Enter", Cancel: "Cancel", 7: "Event(?)"} {
		if got := ev.String(); got != want {
			t.Errorf("Event(%d).String() = %q, want %q", int(ev), got, want)
		}
	}
}

// TestNoAllocs checks that editing keys, including the escape sequences
// matched by string, do not allocate once the line buffer has grown.
func TestNoAllocs(t *testing.T) {
	in := []byte("ls -l /tmp\x1b[D\x1b[1;5D\x1b[1;5C\x1b[3~\x1bOH\x1b[4~\x1bbx\x17日本\x7f\x1b[200~pasted\x1b[201~\x1b[A\r")
	var e Editor
	e.Write(in, nil)
	allocs := testing.AllocsPerRun(100, func() {
		for _, b := range in {
			e.Feed(b)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per line", allocs)
	}
}

func FuzzEditor(f *testing.F) {
	for _, tt := range tests {
		if len(tt.in) < 1000 {
			f.Add([]byte(tt.in))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var e Editor
		check := func(when string) {
			if e.cursor < 0 || e.cursor > len(e.line) {
				t.Fatalf("%s: cursor %d outside [0, %d]", when, e.cursor, len(e.line))
			}
			if len(e.line) > maxLine {
				t.Fatalf("%s: line of %d runes", when, len(e.line))
			}
			if line, _ := e.Line(); !utf8.ValidString(line) {
				t.Fatalf("%s: Line() = %q is not valid UTF-8", when, line)
			}
		}
		for i, b := range data {
			ev := e.Feed(b)
			if ev != None && ev != Enter && ev != Cancel {
				t.Fatalf("byte %d: event %v", i, ev)
			}
			if e.cursor < 0 || e.cursor > len(e.line) {
				t.Fatalf("byte %d: cursor %d outside [0, %d]", i, e.cursor, len(e.line))
			}
			if ev != None {
				check(fmt.Sprintf("byte %d", i))
			}
		}
		check("end")
		e.Reset()
		if line, _ := e.Line(); line != "" {
			t.Fatalf("Line() = %q after Reset", line)
		}

		// Printable ASCII typed and accepted comes back exactly, and
		// certain.
		var p []byte
		for _, b := range data {
			if b >= 0x20 && b < 0x7f {
				p = append(p, b)
			}
		}
		var e2 Editor
		for _, b := range p {
			if ev := e2.Feed(b); ev != None {
				t.Fatalf("printable byte %q: event %v", b, ev)
			}
		}
		if ev := e2.Feed('\r'); ev != Enter {
			t.Fatalf("CR: event %v", ev)
		}
		if line, certain := e2.Line(); line != string(p) || !certain {
			t.Fatalf("typed %q, Line() = %q, %v", p, line, certain)
		}
	})
}

func BenchmarkFeed(b *testing.B) {
	// 1 MiB of printable text in 79-character lines, each ended by Enter.
	const size = 1 << 20
	in := make([]byte, 0, size)
	for i := 0; len(in) < size; i++ {
		if i%80 == 79 {
			in = append(in, '\r')
		} else {
			in = append(in, byte(' '+i%95))
		}
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	var e Editor
	var enters int
	for b.Loop() {
		for _, c := range in {
			if e.Feed(c) == Enter {
				enters++
			}
		}
	}
	if enters == 0 {
		b.Fatal("no Enter")
	}
}
