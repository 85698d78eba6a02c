package sshgate_test

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/sshgate"
	"github.com/portcullis/portcullis/internal/testenv"
)

// TestDropFloodLogsBounded: a source over its failure budget reconnecting
// hundreds of times writes one log line (and one summary), not one per
// connection, while the metrics count every drop. It used to write a WARN
// line per connection: 244,909 lines in 70 s under a real flood.
func TestDropFloodLogsBounded(t *testing.T) {
	m := metrics.New()
	logs := &lockedBuffer{}
	w := newWorld(t, "exec", func(c *sshgate.Config) {
		c.Metrics = m
		c.Log = slog.New(slog.NewTextHandler(logs, nil))
		c.FailureBurst = 1
		c.FailuresPerMinute = 0.001
	})
	// One failed login from 127.0.0.1 spends the source's budget.
	other := testenv.NewClientKey(t, w.clientDir)
	args := testenv.SSHArgs(w.clientDir, other, w.gw.addr, w.gw.hostKey)
	if _, _, code := testenv.Run(t, 30*time.Second, "ssh", append(args, "-l", "alice~web1", "127.0.0.1", "true")...); code == 0 {
		t.Fatal("an unknown key logged in")
	}
	const flood = 300
	for range flood {
		c, err := net.Dial("tcp", w.gw.addr)
		if err != nil {
			t.Fatal(err)
		}
		// The gateway closes it at accept: reading sees EOF, never a version.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64)
		if n, _ := c.Read(buf); n > 0 {
			t.Fatalf("a dropped connection got %q", buf[:n])
		}
		c.Close()
	}
	want := `portcullis_connections_dropped_total{reason="failures"} 300`
	if out := scrapeMetrics(t, m); !strings.Contains(out, "\n"+want) {
		t.Errorf("metrics lack %q; have:\n%s", want, portcullisLinesOf(out))
	}
	// Shutdown writes the pending summary.
	if err := w.gw.srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	var dropLines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "dropped") {
			dropLines = append(dropLines, l)
		}
	}
	if len(dropLines) != 2 || !strings.Contains(dropLines[1], "count=299") {
		t.Errorf("%d drops wrote %d log lines, want the first and a summary with count=299:\n%s",
			flood, len(dropLines), strings.Join(dropLines, "\n"))
	}
}
