package web_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/portcullis/portcullis/internal/directory"
)

// TestDirectoryLogin signs in with a directory password when no console
// password matches, and answers 503 when the directory is down.
func TestDirectoryLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	e.setDirectory(func(_ context.Context, user, pw string) (bool, error) {
		switch {
		case user == "dora" && pw == "dora-pw":
			// As the gateway's callback does: the user appears on first
			// sign-in.
			e.mu.Lock()
			e.users["dora"] = true
			e.mu.Unlock()
			return true, nil
		case user == "down":
			return false, fmt.Errorf("%w: dial: connection refused", directory.ErrUnavailable)
		}
		return false, nil
	})
	tests := []struct {
		name, user, pw string
		status         int
	}{
		{"directory password", "dora", "dora-pw", http.StatusOK},
		{"wrong directory password", "dora", "nope", http.StatusUnauthorized},
		{"local password still works", "alice", alicePassword, http.StatusOK},
		{"directory down", "down", "x", http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.newBrowser(t, "")
			resp, body := b.login(tt.user, tt.pw)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %s, want %d; body %s", resp.Status, tt.status, body)
			}
		})
	}
}
