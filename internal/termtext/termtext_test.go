package termtext

import (
	"fmt"
	"math/rand"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// collect returns an emit function that appends to *lines.
func collect(lines *[]string) func(string) {
	return func(l string) { *lines = append(*lines, l) }
}

// extract writes each chunk in turn to a new cols x rows Screen, flushes,
// and returns every emitted line.
func extract(cols, rows int, chunks ...string) []string {
	s := New(cols, rows)
	var got []string
	for _, c := range chunks {
		s.Write([]byte(c), collect(&got))
	}
	s.Flush(collect(&got))
	return got
}

// seqOutput is what `seq from to` prints through a pty.
func seqOutput(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		b.WriteString(strconv.Itoa(i))
		b.WriteString("\r\n")
	}
	return b.String()
}

func seqLines(from, to int) []string {
	var l []string
	for i := from; i <= to; i++ {
		l = append(l, strconv.Itoa(i))
	}
	return l
}

func TestExtract(t *testing.T) {
	const (
		prompt    = "\x1b]0;alice@web1: ~\x07\x1b[01;32malice@web1\x1b[00m:\x1b[01;34m~\x1b[00m$ "
		enterAlt  = "\x1b[?1049h\x1b[22;0;0t\x1b[1;24r\x1b[?12h\x1b[?12l\x1b[27m\x1b[23m\x1b[29m\x1b[m\x1b[H\x1b[2J\x1b[?25l"
		leaveAlt  = "\x1b[?25h\x1b[?1049l\x1b[23;0;0t"
		eraseLine = "\x1b[K"
	)
	tests := []struct {
		name       string
		cols, rows int
		in         []string
		want       []string
	}{
		{
			name: "plain lines",
			in:   []string{"hello\r\nworld\r\n"},
			want: []string{"hello", "world"},
		},
		{
			name: "unfinished last line comes with Flush",
			in:   []string{"one\r\ntwo"},
			want: []string{"one", "two"},
		},
		{
			name: "empty lines and trailing spaces are dropped",
			in:   []string{"a   \r\n\r\n   \r\n\tb\r\n"},
			want: []string{"a", "        b"},
		},
		{
			name: "bare LF keeps the column, like a real terminal",
			in:   []string{"ab\ncd\n"},
			want: []string{"ab", "  cd"},
		},
		{
			name: "CRLF and LF agree in newline mode",
			in:   []string{NewlineMode, "ab\ncd\r\nef\n"},
			want: []string{"ab", "cd", "ef"},
		},
		{
			name: "backspace edit",
			in:   []string{"ab\bc\r\n"},
			want: []string{"ac"},
		},
		{
			name: "backspace erase as shells echo it",
			in:   []string{"$ lss\b \b -l\r\n"},
			want: []string{"$ ls -l"},
		},
		{
			name: "prompt redrawn with CR is emitted once",
			in:   []string{"$ ", "\r$ ", "\r$ ls", "\r$ ls\r\n"},
			want: []string{"$ ls"},
		},
		{
			name: "readline redraw: CR, EL, reprint",
			in: []string{
				prompt, "git sta",
				"\r" + eraseLine + prompt + "git status",
				"\r" + eraseLine + prompt + "git stash",
				"\r\n",
			},
			want: []string{"alice@web1:~$ git stash"},
		},
		{
			name: "history recall of a shorter line",
			in:   []string{"$ make test-integration", "\r\x1b[2C\x1b[Kls", "\r\n"},
			want: []string{"$ ls"},
		},
		{
			name: "cursor movement overwrites",
			in:   []string{"hello world\x1b[5DWORLD\x1b[1;1HH\r\n"},
			want: []string{"Hello WORLD"},
		},
		{
			name: "line left by LF and redrawn identically is not emitted again",
			in:   []string{"$ long prompt\r\n", "\x1b[A\r$ long prompt\r\n"},
			want: []string{"$ long prompt"},
		},
		{
			name: "line left by LF and changed is emitted again",
			in:   []string{"pulling layer 0%\r\n", "\x1b[A\x1b[2Kpulling layer done\r\n"},
			want: []string{"pulling layer 0%", "pulling layer done"},
		},
		{
			name: "clear screen emits what was not emitted yet",
			in:   []string{"out1\r\n$ cle", "\x1b[H\x1b[2J", "$ \r\n"},
			want: []string{"out1", "$ cle", "$"},
		},
		{
			name: "clear screen and identical repaint",
			cols: 20, rows: 5,
			in:   []string{"\x1b[H\x1b[2J\x1b[2;1Hstatus: ok", "\x1b[H\x1b[2J\x1b[2;1Hstatus: ok", "\x1b[H\x1b[2J\x1b[2;1Hstatus: bad"},
			want: []string{"status: ok", "status: bad"},
		},
		{
			name: "erased and not replaced: the erased text is kept",
			in:   []string{"Connecting...", "\r\x1b[K", "\r\n", "done\r\n"},
			want: []string{"Connecting...", "done"},
		},
		{
			name: "progress bar with CR emits only the final state",
			in: []string{
				"Downloading [          ]   0%",
				"\rDownloading [===       ]  30%",
				"\rDownloading [========= ]  90%",
				"\rDownloading [==========] 100%",
				"\r\n$ ",
			},
			want: []string{"Downloading [==========] 100%", "$"},
		},
		{
			name: "progress bar with CR and EL emits only the final state",
			in:   []string{"\r\x1b[K 10% eta 9s", "\r\x1b[K 50% eta 5s", "\r\x1b[K100% done\r\n"},
			want: []string{"100% done"},
		},
		{
			name: "long line wraps at the width",
			cols: 10, rows: 5,
			in:   []string{"0123456789abcdefghijKLM\r\n"},
			want: []string{"0123456789", "abcdefghij", "KLM"},
		},
		{
			name: "exactly the width then CRLF gives no empty line",
			cols: 5, rows: 3,
			in:   []string{"abcde\r\nfghij\r\n"},
			want: []string{"abcde", "fghij"},
		},
		{
			name: "no autowrap overwrites the last column",
			cols: 5, rows: 3,
			in:   []string{"\x1b[?7labcdefgh\r\n"},
			want: []string{"abcdh"},
		},
		{
			name: "scroll of more lines than rows",
			cols: 20, rows: 4,
			in:   []string{seqOutput(1, 30)},
			want: seqLines(1, 30),
		},
		{
			name: "tabs go to the next multiple of 8",
			in:   []string{"a\tb\tc\r\n12345678\tx\r\n"},
			want: []string{"a       b       c", "12345678        x"},
		},
		{
			name: "insert and delete characters",
			in:   []string{"helo", "\x1b[2D\x1b[1@l", "\r\n", "abcdef\x1b[4D\x1b[2P\r\n", "abcdef\x1b[3D\x1b[2X\r\n"},
			want: []string{"hello", "abef", "abc  f"},
		},
		{
			name: "insert mode",
			in:   []string{"hllo\x1b[3D\x1b[4he\x1b[4l\r\n"},
			want: []string{"hello"},
		},
		{
			name: "erase to start of line",
			in:   []string{"abcdef\x1b[3D\x1b[1K\r\n"},
			want: []string{"    ef"},
		},
		{
			name: "OSC, DCS, APC and charset designations are consumed",
			in: []string{
				"\x1b]0;title\x07a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\",
				"\x1bPq#0;2;0;0;0\x1b\\\x1b_Gf=100;AAAA\x1b\\\x1b(B\x1b)0b\x1b=\x1b>\r\n",
			},
			want: []string{"alinkb"},
		},
		{
			name: "colors are ignored",
			in:   []string{"\x1b[0m\x1b[01;34mdir\x1b[0m  \x1b[38;2;255;0;0mred\x1b[m  \x1b[38:5:208mx\x1b[0m\r\n"},
			want: []string{"dir  red  x"},
		},
		{
			name: "line drawing charset",
			in:   []string{"\x1b(0lqqk\x1b(B ok\r\n", "\x1b)0\x0elqk\x0f lqk\r\n"},
			want: []string{"┌──┐ ok", "┌─┐ lqk"},
		},
		{
			name: "UTF-8",
			in:   []string{"héllo wörld — ✓ 日本\r\n"},
			want: []string{"héllo wörld — ✓ 日本"},
		},
		{
			name: "UTF-8 split across writes",
			in:   []string{"h\xc3", "\xa9llo \xe2", "\x9c", "\x93 \xf0\x9f", "\x98", "\x80\r\n"},
			want: []string{"héllo ✓ 😀"},
		},
		{
			name: "escape sequence split across writes",
			in:   []string{"abc\x1b", "[", "2", "D", "X\x1b]0;ti", "tle\x1b", "\\", "\r\n"},
			want: []string{"aXc"},
		},
		{
			name: "malformed UTF-8 becomes U+FFFD",
			in:   []string{"a\xffb\xe2\x82c\xc0\xafd\xed\xa0\x80\r\n"},
			want: []string{"a\uFFFDb\uFFFDc\uFFFD\uFFFDd\uFFFD\uFFFD\uFFFD"},
		},
		{
			name: "vim-like: alternate screen emitted once, main screen not again",
			in: []string{
				prompt + "vim notes.txt\r\n",
				enterAlt,
				"\x1b[24;1H\"notes.txt\" 2L, 30B\x1b[1;1Hdeploy on friday\r\nrollback plan\r\n\x1b[94m~                   \x1b[m\r\n",
				"\x1b[24;1H\x1b[K:wq",
				"\r\x1b[24;1H\x1b[K\x1b[24;1H\"notes.txt\" 2L, 30B written",
				leaveAlt,
				prompt,
			},
			want: []string{
				"alice@web1:~$ vim notes.txt",
				// The message vim showed was erased by a jump to
				// the last row, not by redrawing the line just
				// written, so it counts as seen.
				"\"notes.txt\" 2L, 30B",
				"deploy on friday", "rollback plan", "~", "\"notes.txt\" 2L, 30B written",
				"alice@web1:~$",
			},
		},
		{
			name: "top-like redraws emit the last state when leaving",
			cols: 40, rows: 6,
			in: []string{
				"\x1b[?1049h\x1b[H\x1b[2J",
				"\x1b[Htop - 10:00:01 up 3 days\x1b[K\r\n\x1b[KPID USER CMD\x1b[K\r\n1 root init\x1b[K\r\n",
				"\x1b[Htop - 10:00:04 up 3 days\x1b[K\r\n\x1b[3;1H2 root sshd\x1b[K\r\n",
				"\x1b[Htop - 10:00:07 up 3 days\x1b[K",
				"\x1b[6;1H\x1b[?1049l",
			},
			want: []string{"top - 10:00:07 up 3 days", "PID USER CMD", "2 root sshd"},
		},
		{
			name: "top without the alternate screen: first and last frame only",
			cols: 40, rows: 6,
			in: []string{
				"$ top\r\n\x1b[H\x1b[2Jtop - 10:00:01\x1b[K\r\nTasks: 90\x1b[K\r\n1 init\x1b[K\r\n",
				"\x1b[Htop - 10:00:04\x1b[K\r\nTasks: 91\x1b[K\r\n2 sshd\x1b[K\r\n",
				"\x1b[Htop - 10:00:07\x1b[K\r\nTasks: 90\x1b[K\r\n2 sshd\x1b[K\r\n",
				"\x1b[6;1H\r\n$ ",
			},
			want: []string{
				"$ top", "top - 10:00:01", "Tasks: 90", "1 init",
				"top - 10:00:07", "2 sshd", // "Tasks: 90" is what that row last emitted
				"$",
			},
		},
		{
			name: "multi-line progress redrawn with cursor up: final state",
			cols: 40, rows: 4,
			in: []string{
				"a: pulling\r\nb: pulling\r\n",
				"\x1b[2A\x1b[2Ka: 50%\r\n\x1b[2Kb: 10%\r\n",
				"\x1b[2A\x1b[2Ka: done\r\n\x1b[2Kb: done\r\n",
				"next\r\nline\r\n",
			},
			want: []string{"a: pulling", "b: pulling", "next", "a: done", "b: done", "line"},
		},
		{
			name: "a row erased after the cursor moved to it is emitted",
			cols: 20, rows: 3,
			in:   []string{"\x1b[?1049h\x1b[Hone\r\ntwo\x1b[3;1Hstatus\x1b[1;1Hx\x1b[3;1H\x1b[K\x1b[?1049l"},
			want: []string{"status", "xne", "two"},
		},
		{
			name: "alternate screen cleared: emitted on ED 2",
			cols: 20, rows: 4,
			in:   []string{"\x1b[?1049h\x1b[Hpage one\x1b[H\x1b[2Jpage two\x1b[?1049l"},
			want: []string{"page one", "page two"},
		},
		{
			name: "less-like scrolling in the alternate screen",
			cols: 20, rows: 3,
			in:   []string{"\x1b[?1049h\x1b[Hl1\r\nl2\r\n\x1b[3;1H\x1b[K\r\nl3\r\n\x1b[K\r\nl4\x1b[?1049l"},
			want: []string{"l1", "l2", "l3", "l4"},
		},
		{
			name: "scroll region with reverse index",
			cols: 20, rows: 5,
			in:   []string{"\x1b[2;4r\x1b[2;1Ha\r\nb\r\nc\r\nd\r\n", "\x1b[2;1H\x1bMz", "\x1b[r"},
			want: []string{"a", "b", "c", "d", "z"},
		},
		{
			name: "delete and insert lines",
			cols: 20, rows: 5,
			in:   []string{"\x1b[1;1Hone\x1b[2;1Htwo\x1b[3;1Hthree", "\x1b[1;1H\x1b[M", "\x1b[1;1H\x1b[Lnew"},
			want: []string{"one", "new", "two", "three"},
		},
		{
			name: "save and restore cursor",
			in:   []string{"abc\x1b7\x1b[5;1Hstatus\x1b8def\r\n"},
			want: []string{"abcdef", "status"},
		},
		{
			name: "full reset emits and clears",
			in:   []string{"before\x1bcafter\r\n"},
			want: []string{"before", "after"},
		},
		{
			name: "unknown and malformed sequences are consumed",
			in:   []string{"a\x1b[?5;6$pb\x1b[>c\x1b[1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20mc\x1b#8e\x1b%Gf\x1b[99999999999999999Cd\r\n"},
			want: []string{"abcef" + strings.Repeat(" ", 74) + "d"},
		},
		{
			name: "wide runes take one column",
			cols: 4, rows: 3,
			in:   []string{"日本語テスト\r\n"},
			want: []string{"日本語テ", "スト"},
		},
		{
			name: "CHA, HPA, VPA, CNL and CPL",
			cols: 20, rows: 5,
			in:   []string{"abcdef\x1b[3GX\x1b[6`Y\x1b[3dthird\x1b[2Fup\x1b[2Edown"},
			want: []string{"upXdeY", "down  third"},
		},
		{
			name: "IND, NEL and RI",
			in:   []string{"a\x1bDb\x1bEc\x1bM\x1bMd\r\n"},
			// "ad" rewrites a row that was emitted: it waits for Flush.
			want: []string{"a", " b", "ad", "c"},
		},
		{
			name: "origin mode addresses the scroll region",
			cols: 20, rows: 6,
			in:   []string{"\x1b[3;5r\x1b[?6h\x1b[1;1Htop of region\x1b[9;1Hbottom\x1b[?6l\x1b[r"},
			want: []string{"top of region", "bottom"},
		},
		{
			name: "BEL and NUL are ignored",
			in:   []string{"a\x07b\x00c\r\n"},
			want: []string{"abc"},
		},
		{
			name: "REP repeats the last character",
			in:   []string{"-\x1b[9b|\r\n"},
			want: []string{"----------|"},
		},
		{
			name: "CAN aborts a sequence",
			in:   []string{"a\x1b[3\x18Db\r\n"},
			want: []string{"aDb"},
		},
		{
			name: "long OSC is consumed",
			in:   []string{"a\x1b]52;c;" + strings.Repeat("QUJD", 5000) + "\x07b\r\n"},
			want: []string{"ab"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := extract(tt.cols, tt.rows, tt.in...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			// However the input is split, the result is the same.
			all := []byte(strings.Join(tt.in, ""))
			for size := 1; size <= 7; size++ {
				var chunks []string
				for i := 0; i < len(all); i += size {
					chunks = append(chunks, string(all[i:min(i+size, len(all))]))
				}
				if got := extract(tt.cols, tt.rows, chunks...); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("in chunks of %d: got %q\nwant %q", size, got, tt.want)
				}
			}
		})
	}
}

// TestCapturedSessions runs output captured from bash and vim (see
// capture_test.go) through an 80x24 Screen.
func TestCapturedSessions(t *testing.T) {
	const prompt = "u@h:~# "
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{
			name: "bash",
			in:   capturedBash,
			want: append([]string{
				prompt + "echo hello world", "hello world",
				prompt + "ls -la /etc/host", "ls: cannot access '/etc/host': No such file or directory",
				prompt + "echo first", "first",
				prompt + "echo second", "second",
				prompt + "echo second", "second", // recalled with the arrow keys
				prompt + "# echo abc",
				// The command wrapped at 80 columns.
				prompt + `for i in 1 2 3; do printf "progress %d%%\r" $((i*33)); sleep 0.1; done; e`, "cho",
				"progress 99%",
				prompt + "seq 1 30"},
				append(seqLines(1, 30),
					prompt+"clear",
					prompt+"echo after clear", "after clear",
					prompt+"exit", "exit")...),
		},
		{
			name: "vim",
			in:   capturedVim,
			want: append([]string{
				prompt + "vim -u NONE /tmp/ttcap/notes.txt",
				"~", // erased by vim to open the new line
				`"~/notes.txt" 2 lines, 43 bytes`,
				"deploy on friday", "rollback plan: revert tag", "call oncall: bob"},
				append(slicesRepeat("~", 20),
					`"notes.txt" 3 lines, 60 bytes written`,
					prompt+"echo done", "done",
					prompt+"exit", "exit")...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := extract(80, 24, tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestSeq1000(t *testing.T) {
	in := seqOutput(1, 1000)
	rng := rand.New(rand.NewSource(1))
	for _, size := range []int{0, 1, 3, 4096} {
		s := New(80, 24)
		var got []string
		for p := in; len(p) > 0; {
			n := size
			if n == 0 {
				n = 1 + rng.Intn(64) // random splits
			}
			n = min(n, len(p))
			s.Write([]byte(p[:n]), collect(&got))
			p = p[n:]
		}
		s.Flush(collect(&got))
		if want := seqLines(1, 1000); !reflect.DeepEqual(got, want) {
			t.Fatalf("chunk size %d: got %d lines, first %q, last %q", size, len(got), got[:min(3, len(got))], got[max(len(got)-3, 0):])
		}
	}
}

func TestScrollEmitsEachLineOnce(t *testing.T) {
	// Identical lines (yes) are different lines: each one is emitted.
	in := strings.Repeat("y\r\n", 100) + strings.Repeat("x\n", 50)
	got := extract(10, 5, NewlineMode, in)
	want := append(slicesRepeat("y", 100), slicesRepeat("x", 50)...)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d lines %q", len(got), got)
	}
}

func slicesRepeat(s string, n int) []string {
	l := make([]string, n)
	for i := range l {
		l[i] = s
	}
	return l
}

func TestAltScreenKeepsMain(t *testing.T) {
	s := New(40, 10)
	var got []string
	s.Write([]byte("$ echo hi\r\nhi\r\n$ less file\r\n"), collect(&got))
	s.Write([]byte("\x1b[?1049h\x1b[H\x1b[2Jfile content\x1b[10;1H(END)"), collect(&got))
	s.Write([]byte("\x1b[?1049l"), collect(&got))
	if s.x != 0 || s.y != 3 {
		t.Fatalf("cursor at %d,%d after leaving the alternate screen, want 0,3", s.x, s.y)
	}
	s.Write([]byte("$ "), collect(&got))
	s.Flush(collect(&got))
	want := []string{"$ echo hi", "hi", "$ less file", "file content", "(END)", "$"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	// The main screen is back as it was, cursor included.
	got = got[:0]
	s.Write([]byte("\x1b[H\x1b[2J"), collect(&got))
	if len(got) != 0 {
		t.Fatalf("main screen rows emitted again: %q", got)
	}
}

func TestResize(t *testing.T) {
	t.Run("narrower cuts text: emitted before it is lost", func(t *testing.T) {
		s := New(10, 3)
		var got []string
		s.Write([]byte("abcdefghij"), collect(&got))
		s.Resize(5, 3)
		s.Write([]byte("\r\n12345678\r\n"), collect(&got))
		s.Flush(collect(&got))
		want := []string{"abcdefghij", "12345", "678"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q want %q", got, want)
		}
	})
	t.Run("shorter keeps the cursor row", func(t *testing.T) {
		s := New(20, 5)
		var got []string
		s.Write([]byte("a\r\nb\r\nc\r\nd\r\n$ typing"), collect(&got))
		s.Resize(20, 2)
		s.Write([]byte(" more\r\n"), collect(&got))
		want := []string{"a", "b", "c", "d", "$ typing more"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q want %q", got, want)
		}
	})
	t.Run("wider and taller", func(t *testing.T) {
		s := New(5, 2)
		var got []string
		s.Write([]byte("abc"), collect(&got))
		s.Resize(30, 10)
		s.Write([]byte("defghijklmnop\r\n"), collect(&got))
		if want := []string{"abcdefghijklmnop"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q want %q", got, want)
		}
	})
	t.Run("clamped", func(t *testing.T) {
		for _, c := range []struct{ cols, rows, wc, wr int }{
			{0, 0, 80, 24}, {-5, -1, 1, 1}, {5000, 5000, MaxCols, MaxRows}, {1, 1, 1, 1},
		} {
			s := New(c.cols, c.rows)
			if s.cols != c.wc || s.rows != c.wr {
				t.Errorf("New(%d, %d): %dx%d", c.cols, c.rows, s.cols, s.rows)
			}
			s.Resize(c.cols, c.rows)
			if s.cols != c.wc || s.rows != c.wr {
				t.Errorf("Resize(%d, %d): %dx%d", c.cols, c.rows, s.cols, s.rows)
			}
		}
	})
	t.Run("in the alternate screen", func(t *testing.T) {
		s := New(20, 5)
		var got []string
		s.Write([]byte("$ top\r\n\x1b[?1049h\x1b[Hload 1.0\x1b[5;1Hfooter"), collect(&got))
		s.Resize(10, 3)
		s.Write([]byte("\x1b[Hload 2.0\x1b[?1049l$ "), collect(&got))
		s.Flush(collect(&got))
		// Shrinking pushed the first rows of the alternate screen off the
		// top, so the text they held is emitted then.
		want := []string{"$ top", "load 1.0", "load 2.0", "footer", "$"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q want %q", got, want)
		}
	})
}

func TestFlushIsIdempotent(t *testing.T) {
	s := New(80, 24)
	var got []string
	s.Write([]byte("a\r\nb"), collect(&got))
	s.Flush(collect(&got))
	s.Flush(collect(&got))
	s.Write([]byte("c\r\n"), collect(&got))
	if want := []string{"a", "b", "bc"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
	s.Write([]byte("x"), nil) // nil emit discards
}

// checkLine is what every emitted line must satisfy.
func checkLine(line string, cols int) error {
	switch {
	case line == "":
		return fmt.Errorf("empty line")
	case !utf8.ValidString(line):
		return fmt.Errorf("invalid UTF-8 %q", line)
	case utf8.RuneCountInString(line) > cols:
		return fmt.Errorf("%d runes, wider than %d columns: %q", utf8.RuneCountInString(line), cols, line)
	case strings.HasSuffix(line, " "):
		return fmt.Errorf("trailing space: %q", line)
	case strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }):
		return fmt.Errorf("control character in %q", line)
	}
	return nil
}

// fuzzSeeds is realistic terminal output for the fuzz corpus.
var fuzzSeeds = []string{
	// A bash session with a coloured prompt, a typo fixed with
	// backspace, an ls --color listing and history recall.
	"\x1b]0;alice@web1: ~\x07\x1b[?2004h\x1b[01;32malice@web1\x1b[00m:\x1b[01;34m~\x1b[00m$ ls -la\b\b\b\x1b[K--color\r\n\x1b[?2004l\r" +
		"total 24\r\ndrwxr-xr-x 3 alice alice 4096 Mar  1 10:00 \x1b[0m\x1b[01;34m.\x1b[0m\r\n" +
		"-rw-r--r-- 1 alice alice  220 Mar  1 10:00 .bash_logout\r\n-rwxr-xr-x 1 alice alice 8192 Mar  1 10:00 \x1b[01;32mdeploy.sh\x1b[0m\r\n" +
		"\x1b]0;alice@web1: ~\x07\x1b[?2004h\x1b[01;32malice@web1\x1b[00m:\x1b[01;34m~\x1b[00m$ \x1b[A\r\x1b[Ksudo systemctl restart nginx\r\n",
	// vim: enter the alternate screen, draw, edit, write and quit.
	"\x1b[?1049h\x1b[22;0;0t\x1b[>4;2m\x1b[?1h\x1b=\x1b[H\x1b[2J\x1b[?25l\x1b[1;24r\x1b[24;1H\"deploy.yaml\" 3L, 41B\x1b[1;1H" +
		"\x1b[38;5;130mimage\x1b[m: nginx:1.25\r\nreplicas: 3\r\n\x1b[94m~                                                                               \x1b[m\r\n" +
		"\x1b[2;11H\x1b[?25h\x1b[?25l\x1b[24;1H\x1b[1m-- INSERT --\x1b[m\x1b[2;11H\x1b[K5\x1b[24;1H\x1b[K:wq\r\x1b[?25h\x1b[?1l\x1b>\x1b[?1049l\x1b[23;0;0t",
	// top: redraws in place with cursor addressing and line drawing.
	"\x1b[?1049h\x1b[?1h\x1b=\x1b[?25l\x1b[H\x1b[2J\x1b(B\x1b[mtop - 10:00:01 up 3 days,  1 user,  load average: 0.00, 0.01, 0.05\x1b(B\x1b[m\x1b[39;49m\x1b[K\r\n" +
		"Tasks:\x1b(B\x1b[m\x1b[39;49m\x1b[1m  92 \x1b(B\x1b[m\x1b[39;49mtotal\x1b[K\r\n\x1b[7m    PID USER      %CPU COMMAND\x1b(B\x1b[m\x1b[K\r\n" +
		"      1 root       0.0 systemd\x1b[K\r\n\x1b[J\x1b[H\x1b(B\x1b[mtop - 10:00:04\x1b[4;8Hx\x1b(0lqqk\x1b(B\x1b[?12l\x1b[?25h\x1b[24;1H\x1b[?1049l",
	// A progress bar, a docker-style multi-line progress and a spinner.
	"\r 12% |###       | 12/100\r 50% |#####     | 50/100\r100% |##########| 100/100\r\n" +
		"layer1: Pulling\r\nlayer2: Pulling\r\n\x1b[2A\x1b[2Klayer1: Done\r\n\x1b[2Klayer2: Done\r\n" +
		"⠋ working\r⠙ working\r⠹ working\r\x1b[K✓ done\r\n",
	// Scroll regions, reverse index, insert/delete lines and characters,
	// origin mode, tabs, REP and save/restore.
	"\x1b[5;10r\x1b[?6h\x1b[1;1Hin region\r\n\x1bM\x1bM\x1b[3L\x1b[2M\x1b[?6l\x1b[r\tA\tB\x1b[3@\x1b[2P\x1b[5X=\x1b[20b\x1b7\x1b[99;99H!\x1b8\x1b[s\x1b[u\x1bD\x1bE\x1b[3S\x1b[2T",
	// Strings: titles, hyperlinks, sixel, kitty graphics, an unterminated
	// OSC cut by CAN, and a reset.
	"\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\\x1bPq#0;2;0;0;0#0!10~\x1b\\\x1b_Ga=T,f=100;iVBORw0KGgo=\x1b\\\x1b^pm\x1b\\\x1b]2;never\x18ok\x1bc",
	// Binary noise and broken UTF-8.
	"\x00\x01\xff\xfe\x80\xbf\xc3\x28\xe2\x82\x28\xf0\x28\x8c\xbc\x1b[\x80\x1b]\x9c\xed\xa0\x80\xf4\x90\x80\x80",
}

func FuzzScreen(f *testing.F) {
	for i, seed := range fuzzSeeds {
		f.Add([]byte(seed), uint16(80), uint16(24), []byte{byte(i * 37), 0x85, 3, 0xc1, 200})
	}
	f.Add([]byte(seqOutput(1, 200)), uint16(5), uint16(3), []byte{})
	f.Add([]byte(capturedBash), uint16(80), uint16(24), []byte{0x3f, 0x90, 0x3f, 0xc5, 0x3f})
	f.Add([]byte(capturedVim), uint16(80), uint16(24), []byte{0x20, 0xd0, 0x3f, 0x3f, 0x81, 0x3f})
	f.Fuzz(func(t *testing.T, data []byte, cols, rows uint16, ops []byte) {
		c, r := int(cols%(MaxCols+20)), int(rows%(MaxRows+20))

		// 1. Split invariance: one Write or many gives the same lines.
		whole := New(c, r)
		var want []string
		whole.Write(data, collect(&want))
		whole.Flush(collect(&want))
		split := New(c, r)
		var got []string
		rest := data
		for _, op := range ops {
			n := min(int(op&0x3f), len(rest))
			split.Write(rest[:n], collect(&got))
			rest = rest[n:]
		}
		split.Write(rest, collect(&got))
		split.Flush(collect(&got))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("split writes differ:\n got  %q\n want %q", got, want)
		}

		// 2. With resizes interleaved: no panic, every line well formed
		// and no wider than the screen was when the line was finished.
		s := New(c, r)
		limit := s.cols
		emit := func(line string) {
			if err := checkLine(line, limit); err != nil {
				t.Fatal(err)
			}
		}
		rest = data
		for i, op := range ops {
			if op&0x80 != 0 {
				nc, nr := int(op&0x7f), 1+i%40
				if op&0x40 != 0 {
					nc, nr = 1+int(op&0x3f)*16, int(op&0x3f)*8
				}
				s.Resize(nc, nr)
				limit = max(limit, s.cols)
				continue
			}
			n := min(int(op&0x3f), len(rest))
			s.Write(rest[:n], emit)
			rest = rest[n:]
			limit = s.cols
		}
		s.Write(rest, emit)
		limit = s.cols
		s.Flush(emit)
		if s.x < 0 || s.x >= s.cols || s.y < 0 || s.y >= s.rows || s.top < 0 || s.bottom >= s.rows || s.top >= s.bottom && s.rows > 1 {
			t.Fatalf("cursor %d,%d region %d-%d on %dx%d", s.x, s.y, s.top, s.bottom, s.cols, s.rows)
		}
	})
}

// seqData is about 1 MiB of `seq` output through a pty, the text-heavy
// throughput case the recording overhead target is about.
var seqData = []byte(seqOutput(10_000_000, 10_000_000+1<<20/10))

func BenchmarkPlainText(b *testing.B) {
	s := New(80, 24)
	lines := 0
	emit := func(string) { lines++ }
	b.SetBytes(int64(len(seqData)))
	b.ReportAllocs()
	for b.Loop() {
		s.Write(seqData, emit)
	}
	_ = lines
}

// lsColorData is `ls -l --color` style output: short runs of text between
// SGR sequences.
var lsColorData = func() []byte {
	var b strings.Builder
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, "-rw-r--r-- 1 alice staff %8d Mar %2d 10:%02d \x1b[0m\x1b[01;34mdir%d\x1b[0m  \x1b[01;32mrun%d.sh\x1b[0m  file%d.txt\r\n",
			i*37%100000, i%28+1, i%60, i, i, i)
	}
	return []byte(b.String())
}()

func BenchmarkColoredOutput(b *testing.B) {
	s := New(120, 40)
	emit := func(string) {}
	b.SetBytes(int64(len(lsColorData)))
	b.ReportAllocs()
	for b.Loop() {
		s.Write(lsColorData, emit)
	}
}

// BenchmarkLongLines is printable ASCII with few line ends (wrapped at the
// width): the raw speed of the fast path.
func BenchmarkLongLines(b *testing.B) {
	data := []byte(strings.Repeat(strings.Repeat("lorem ipsum dolor sit amet ", 40)+"\r\n", 1<<20/1082))
	s := New(200, 50)
	emit := func(string) {}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s.Write(data, emit)
	}
}
