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

// TestReview3SudoersReservedNames: the login name is written as the user
// list of a sudoers line ("NAME RULE"). resource.ValidTargetUser accepts
// upper case, so "ALL" (every user on the target) passes validation and
// the drop-in would read "ALL <rule>"; only useradd's own name policy
// (which varies by distribution and --badname settings) stands in the
// way. Names that sudoers reads as keywords or that differ only by '.'
// vs '_' (portcullis-a_b is the drop-in of both a.b and a_b, so one
// overwrites the other's rule) must be refused before any target is
// contacted.
func TestReview3SudoersReservedNames(t *testing.T) {
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
	for _, name := range []string{"ALL", "Defaults"} {
		_, err := p.Ensure(ctx, Request{Target: "web1", Name: name, Sudoers: "ALL=(ALL) NOPASSWD: /usr/bin/true"})
		if err == nil || !strings.Contains(err.Error(), "not a valid unix user name") {
			t.Errorf("Ensure(%q with a sudoers rule) = %v, want the name refused before contacting the target", name, err)
		}
	}
}
