package cli

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "1d12h", want: now.Add(-36 * time.Hour)},
		{in: "0s", want: now},
		{in: "2026-01-02T15:04:05Z", want: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)},
		{in: "2026-01-02T15:04:05.5+01:00", want: time.Date(2026, 1, 2, 14, 4, 5, 5e8, time.UTC)},
		{in: "2026-01-02", want: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
		{in: "-1h", bad: true},
		{in: "d", bad: true},
		{in: "7days", bad: true},
		{in: "yesterday", bad: true},
		{in: "", bad: true},
	}
	for _, tc := range tests {
		got, err := parseWhen(tc.in, now)
		if tc.bad {
			if err == nil {
				t.Errorf("parseWhen(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args []string
		pos  string
		out  string
		bad  bool
	}{
		{args: []string{"users", "-o", "yaml"}, pos: "users", out: "yaml"},
		{args: []string{"-o", "yaml", "users", "alice"}, pos: "users alice", out: "yaml"},
		{args: []string{"users", "--output=json", "alice"}, pos: "users alice", out: "json"},
		{args: []string{"users", "--", "-o"}, pos: "users -o"},
		{args: []string{"users", "-x"}, bad: true},
	}
	for _, tc := range tests {
		e := &env{}
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var out string
		fs.StringVar(&out, "o", "", "")
		fs.StringVar(&out, "output", "", "")
		pos, err := e.parse(fs, tc.args)
		if tc.bad {
			if err == nil {
				t.Errorf("%v: want an error", tc.args)
			}
			continue
		}
		if err != nil || strings.Join(pos, " ") != tc.pos || out != tc.out {
			t.Errorf("%v: pos %q out %q err %v; want %q %q", tc.args, pos, out, err, tc.pos, tc.out)
		}
	}
}

func TestWriteRowEscapesControls(t *testing.T) {
	var b strings.Builder
	writeRow(&b, []string{"curl x|sh #\x1b[1G\x1b[2K", "ok\u009b"})
	if got := b.String(); strings.ContainsAny(got, "\x1b\u009b") || !strings.Contains(got, `\x1b[1G`) {
		t.Fatalf("row %q", got)
	}
}
