package provision

import (
	"context"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
)

// TestEnsureRefusesBadInput checks that names and sudoers rules are
// refused before any target is contacted: there is no target here, so an
// attempt to reach one would fail differently.
func TestEnsureRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	mk := make([]byte, 32)
	_, _ = rand.Read(mk)
	v, err := vault.New(mk)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Inventory: inv, Vault: v, HostKeys: st, Audit: audit.New(st, log)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		req     Request
		wantErr string
	}{
		{name: "shell metacharacters", req: Request{Target: "web1", Name: "x;rm -rf /"}, wantErr: "not a valid unix user name"},
		{name: "option", req: Request{Target: "web1", Name: "-oops"}, wantErr: "not a valid unix user name"},
		{name: "quote", req: Request{Target: "web1", Name: "a'b"}, wantErr: "not a valid unix user name"},
		{name: "too long", req: Request{Target: "web1", Name: strings.Repeat("a", 33)}, wantErr: "not a valid unix user name"},
		{name: "empty", req: Request{Target: "web1"}, wantErr: "not a valid unix user name"},
		{name: "sudoers newline", req: Request{Target: "web1", Name: "alice", Sudoers: "ALL=(ALL) ALL\nroot ALL=(ALL) ALL"}, wantErr: "sudoers rule"},
		{name: "valid, unknown target", req: Request{Target: "web1", Name: "alice"}, wantErr: "target no longer exists"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			created, err := p.Ensure(ctx, tc.req)
			if created || err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Ensure = %v, %v; want error %q", created, err, tc.wantErr)
			}
		})
	}
}

// TestShellQuote checks the quoting used (after validation) around names.
func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"alice": "'alice'", "a'b": `'a'\''b'`, "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
