package sshgate_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/sshgate"
	"github.com/portcullis/portcullis/internal/store"
)

// heldHistory is a command history that takes no line until released, as
// a store busy with thousands of other writes does. It ignores the
// context on purpose: the gateway must not depend on its own deadline to
// get the session moving again.
type heldHistory struct {
	sshgate.CommandLog
	release chan struct{}
}

func (h *heldHistory) AppendCommand(ctx context.Context, c store.Command) (int64, error) {
	<-h.release
	return h.CommandLog.AppendCommand(ctx, c)
}

// TestTypingNotStalledBySlowHistory: an interactive line is written to the
// command history off the session's data path. Before, each line was
// stored where the client's input was read, so a slow history store held
// every later keystroke of that session (and, at 5,000 sessions typing
// exit at once, lines waited past their deadline and were lost). The
// lines typed while the store is held must reach the target, and the
// history must still hold all of them, in order, once the session ended.
func TestTypingNotStalledBySlowHistory(t *testing.T) {
	hist := &heldHistory{release: make(chan struct{})}
	w := newWorld(t, "shell", func(c *sshgate.Config) {
		hist.CommandLog = c.Commands
		c.Commands = hist
	})
	marker := filepath.Join(w.sshd.Dir, "home", w.unixUser, "typed-through")

	// The store is released once the second line has run on the target,
	// or after a bound, so that the old code ends (and fails) too.
	reached := make(chan bool, 1)
	go func() {
		defer close(hist.release)
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(marker); err == nil {
				reached <- true
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		reached <- false
	}()

	script := "echo one-$((0+1))\ntouch typed-through\nexit\n"
	out, errOut, code := w.ssh(script, "alice~web1", []string{"-tt"})
	if !<-reached {
		t.Fatalf("the line after the first never reached the target while the history store was busy: input waited on the store (ssh exit %d, out %q, err %q)", code, out, errOut)
	}
	if code != 0 || !strings.Contains(out, "one-1") {
		t.Fatalf("shell: exit %d, out %q, err %q", code, out, errOut)
	}

	end := w.gw.waitEvent(audit.SessionEnd, nil)
	cmds, err := w.gw.store.ListCommands(context.Background(), store.CommandFilter{SessionID: end.SessionID})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range cmds {
		lines = append(lines, c.Command)
	}
	if want := []string{"echo one-$((0+1))", "touch typed-through", "exit"}; strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("history when the session's end event was written: %q, want %q", lines, want)
	}
}
