package sshgate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/metrics"
)

// TestDropLogSummaries drives dropLog on a fake clock and checks what it
// writes: the first drop of a source at once, the rest as one line with a
// count once its interval is over, sources past the table in one line.
func TestDropLogSummaries(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	b2 := netip.MustParseAddr("2001:db8::2") // same /64 as b
	type step struct {
		at    time.Duration // since the start
		src   netip.Addr
		flush bool // run the timer's flush instead of a drop
	}
	cases := []struct {
		name  string
		steps []step
		want  []string // log lines, in order, as "msg source count"
	}{
		{"one drop", []step{{0, a, false}}, []string{"connection dropped 192.0.2.1/32 -"}},
		{"a flood is one line and a summary",
			[]step{{0, a, false}, {time.Second, a, false}, {2 * time.Second, a, false}, {time.Minute, netip.Addr{}, true}},
			[]string{"connection dropped 192.0.2.1/32 -", "connections dropped 192.0.2.1/32 2"}},
		{"no summary before the interval ends",
			[]step{{0, a, false}, {time.Second, a, false}, {30 * time.Second, netip.Addr{}, true}},
			[]string{"connection dropped 192.0.2.1/32 -"}},
		{"an IPv6 /64 is one source",
			[]step{{0, b, false}, {time.Second, b2, false}, {time.Minute, netip.Addr{}, true}},
			[]string{"connection dropped 2001:db8::/64 -", "connections dropped 2001:db8::/64 1"}},
		{"after a summary the next drop is logged at once",
			[]step{{0, a, false}, {time.Second, a, false}, {time.Minute, netip.Addr{}, true}, {2 * time.Minute, a, false}},
			[]string{"connection dropped 192.0.2.1/32 -", "connections dropped 192.0.2.1/32 1", "connection dropped 192.0.2.1/32 -"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			m := metrics.New()
			d := newDropLog(slog.New(slog.NewJSONHandler(&buf, nil)), m, time.Minute)
			d.stopped = true // no real timer: the steps flush
			start := time.Now()
			for _, s := range tc.steps {
				d.now = func() time.Time { return start.Add(s.at) }
				if s.flush {
					d.flush(false)
				} else {
					d.drop(s.src, metrics.DropFailures, "too many failed authentications")
				}
			}
			if got := logLines(t, &buf); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestDropLogTableBounded: a flood from more sources than the table holds
// keeps the table at its bound and writes one line for the rest.
func TestDropLogTableBounded(t *testing.T) {
	var buf bytes.Buffer
	d := newDropLog(slog.New(slog.NewJSONHandler(&buf, nil)), nil, time.Minute)
	d.stopped = true
	start := time.Now()
	d.now = func() time.Time { return start }
	extra := 100
	for i := range maxDropSources + extra {
		d.drop(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), metrics.DropFull, "full")
	}
	if len(d.sources) != maxDropSources {
		t.Fatalf("table holds %d sources, want %d", len(d.sources), maxDropSources)
	}
	d.now = func() time.Time { return start.Add(time.Minute) }
	d.flush(false)
	lines := logLines(t, &buf)
	if len(lines) != maxDropSources+1 {
		t.Fatalf("%d lines, want %d", len(lines), maxDropSources+1)
	}
	if want := fmt.Sprintf("connections dropped from sources not tracked (too many sources) - %d", extra); lines[len(lines)-1] != want {
		t.Errorf("last line %q, want %q", lines[len(lines)-1], want)
	}
	if len(d.sources) != 0 {
		t.Errorf("table holds %d sources after the interval, want 0", len(d.sources))
	}
}

// logLines returns each JSON log line as "msg source count" ("-" for a
// missing attribute).
func logLines(t *testing.T, buf *bytes.Buffer) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		src, cnt := "-", "-"
		if v, ok := rec["source"]; ok {
			src = fmt.Sprint(v)
		}
		if v, ok := rec["count"]; ok {
			cnt = fmt.Sprint(v)
		}
		out = append(out, strings.Join(strings.Fields(fmt.Sprint(rec["msg"], " ", src, " ", cnt)), " "))
	}
	return out
}
