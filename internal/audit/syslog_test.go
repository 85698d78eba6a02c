package audit

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

func TestParseSyslogURL(t *testing.T) {
	for _, tt := range []struct {
		in      string
		network string
		ok      bool
	}{
		{"udp://127.0.0.1:514", "udp", true},
		{"tcp://[::1]:6514", "tcp", true},
		{"http://x:1", "", false},
		{"udp://host", "", false},
		{"127.0.0.1:514", "", false},
	} {
		n, _, err := ParseSyslogURL(tt.in)
		if (err == nil) != tt.ok || n != tt.network {
			t.Errorf("%q: %q, %v", tt.in, n, err)
		}
	}
}

func testEvent() store.AuditEvent {
	return store.AuditEvent{ID: 7, Time: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC), Type: "request.deny", Outcome: Deny,
		User: "alice", Target: "web1", Message: "access denied", Detail: map[string]any{"action": "exec"}}
}

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, err := NewSyslog("udp://"+pc.LocalAddr().String(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	s.enqueue(testEvent())
	buf := make([]byte, 4096)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(buf[:n])
	// authpriv (10) * 8 + warning (4) = 84; version 1; MSGID the type.
	if !strings.HasPrefix(msg, "<84>1 2026-11-22T08:00:00Z ") || !strings.Contains(msg, " portcullis ") ||
		!strings.Contains(msg, " request.deny - {") || !strings.Contains(msg, `"user":"alice"`) {
		t.Fatalf("message %q", msg)
	}
}

func TestSyslogTCPFraming(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, _ := NewSyslog("tcp://"+ln.Addr().String(), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	s.enqueue(testEvent())
	s.enqueue(testEvent())
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	for i := 0; i < 2; i++ {
		lenStr, err := r.ReadString(' ')
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(lenStr))
		if err != nil {
			t.Fatalf("frame length %q", lenStr)
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(r, msg); err != nil || !strings.HasPrefix(string(msg), "<84>1 ") {
			t.Fatalf("frame %d: %q %v", i, msg, err)
		}
	}
}
