package sshgate_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
)

func TestSessionLimits(t *testing.T) {
	w := newWorld(t, "exec")
	for _, tt := range []struct {
		name, field, command, want string
	}{
		// Output every 100ms keeps the session busy: only max_session ends it.
		{"max_session", "max_session: 1s", "echo started; while :; do echo x; sleep 0.1; done", "max_session of 1s reached"},
		{"idle_timeout", "idle_timeout: 1s", "echo started; sleep 30", "idle for 1s (idle_timeout)"},
		{"valid_until", "valid_until: NOW+3s",
			"echo started; while :; do echo x; sleep 0.1; done", "the policy's validity window ended (valid_until)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.field = strings.Replace(tt.field, "NOW+3s", time.Now().Add(3*time.Second).UTC().Format(time.RFC3339), 1)
			w.gw.apply(fmt.Sprintf(`
kind: Policy
name: alice-web1
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [%s]
actions: [exec]
%s
`, w.unixUser, tt.field))
			start := time.Now()
			_, stderr, done := w.startLongSession(t, "alice~web1", tt.command)
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("ssh exited 0 after its session was ended by the gateway")
				}
			case <-time.After(15 * time.Second):
				t.Fatal("session still running after 15s")
			}
			if el := time.Since(start); el < time.Second {
				t.Fatalf("session ended after %v, before its limit", el)
			}
			if !strings.Contains(stderr.String(), "portcullis: session ended: "+tt.want) {
				t.Fatalf("client saw %q", stderr.String())
			}
			w.gw.waitEvent(audit.SessionLimit, nil)
		})
	}
}
