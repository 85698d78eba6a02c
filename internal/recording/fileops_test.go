package recording

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestFileTransferRecording: a file-transfer recording holds the
// operations only: what Output, Input and Resize are given (the channel's
// bytes) is dropped, and paths that try to drive the viewer's terminal
// (ESC, a C1 CSI, a newline, a forged JSON end) come out escaped, in the
// file and in Play's lines.
func TestFileTransferRecording(t *testing.T) {
	m, _, clk := newTestManager(t)
	meta := testMeta("x")
	meta.Action, meta.Command, meta.RecordInput = "file-transfer", "sftp", true
	ops := []FileOp{
		{Op: "upload", Path: "/tmp/plain.txt", Bytes: 12},
		{Op: "download", Path: "/tmp/\x1b]0;pwned\x07\u009b2J\nx", Bytes: 7},
		{Op: "rename", Path: `/a"},{"op":"remove`, Path2: "/b c"},
		{Op: "remove", Path: "/gone", Error: "Permission denied"},
	}
	h, evs := record(t, m, clk, meta, func(r *Recorder) {
		r.Output([]byte("FILEBYTES-out"))
		r.Input([]byte("FILEBYTES-in"))
		r.Resize(100, 40)
		for _, op := range ops {
			clk.Advance(time.Second)
			r.FileOp(op)
		}
	})
	if !h.IsFileTransfer() {
		t.Fatalf("header %+v", h)
	}
	if len(evs) != len(ops) {
		t.Fatalf("events %+v", evs)
	}
	for i, ev := range evs {
		if strings.Contains(ev.Data, "FILEBYTES") || strings.ContainsAny(strings.TrimSuffix(ev.Data, "\r\n"), "\x1b\x07\n\r\u009b") {
			t.Fatalf("event %d %q holds channel bytes or raw controls", i, ev.Data)
		}
		got, err := ParseFileOp(ev.Data)
		if err != nil || got != ops[i] {
			t.Fatalf("event %d %q: %+v, %v; want %+v", i, ev.Data, got, err, ops[i])
		}
		if ev.Time != float64(i+1) {
			t.Errorf("event %d at %v s, want %d", i, ev.Time, i+1)
		}
	}
	// A terminal recording ignores FileOp.
	_, tevs := record(t, m, clk, testMeta("t"), func(r *Recorder) { r.FileOp(ops[0]) })
	if len(tevs) != 0 {
		t.Fatalf("terminal recording took a file op: %+v", tevs)
	}

	f, _, err := m.Open(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	if err := Play(context.Background(), f, &out, PlayOptions{Speed: 0.001}); err != nil {
		t.Fatal(err)
	}
	want := "1.000s  upload  /tmp/plain.txt  12 bytes\n" +
		`2.000s  download  "/tmp/\x1b]0;pwned\a\u009b2J\nx"  7 bytes` + "\n" +
		`3.000s  rename  "/a\"},{\"op\":\"remove" -> "/b c"` + "\n" +
		`4.000s  remove  /gone  error: "Permission denied"` + "\n"
	if out.String() != want {
		t.Fatalf("play:\n%s\nwant:\n%s", out.String(), want)
	}
}

// FuzzParseFileOp: events of a file-transfer recording come from a file
// an attacker may have edited; the parser and the formatter never panic,
// and the formatter's line holds no control character but its newline.
func FuzzParseFileOp(f *testing.F) {
	f.Add(`{"op":"upload","path":"/x","bytes":3}` + "\r\n")
	f.Add(`{"op":"rename","path":"/a","path2":"/b"}`)
	f.Add("\x1b[2J raw output")
	f.Add(`{"op":"x\u001b","path":"\u009b"}`)
	f.Fuzz(func(t *testing.T, data string) {
		_, _ = ParseFileOp(data)
		line := FormatFileOp(1.5, data)
		if strings.ContainsFunc(strings.TrimSuffix(line, "\n"), func(c rune) bool { return c < 0x20 || (c >= 0x7f && c < 0xa0) }) {
			t.Fatalf("line %q holds a control character", line)
		}
	})
}
