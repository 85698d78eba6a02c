package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/cli"
	"github.com/portcullis/portcullis/internal/store/sqlite"
)

// TestBackupRestoreCommands: backup works beside a running gateway;
// restore refuses while it runs and works once it is gone.
func TestBackupRestoreCommands(t *testing.T) {
	g := startGateway(t)
	if r := g.run(t, "kind: User\nname: alice\n", "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("apply: %s", r.stderr)
	}
	out := filepath.Join(t.TempDir(), "backup.db")
	g.run(t, "", "backup", "--out", out).want(t, 0, []string{"master key"}, nil)
	g.run(t, "", "restore", "--in", out).want(t, 1, nil, []string{"running"})
	g.run(t, "", "backup").want(t, 2, nil, []string{"--out"})
	// A fresh data directory, no gateway: restore there and read it.
	dir, _ := os.MkdirTemp("", "pcr")
	t.Cleanup(func() { os.RemoveAll(dir) })
	var so, se bytes.Buffer
	code := cli.Run(context.Background(), []string{"--data-dir", dir, "restore", "--in", out}, strings.NewReader(""), &so, &se)
	if code != 0 {
		t.Fatalf("restore: exit %d %s %s", code, so.String(), se.String())
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Get(context.Background(), "User", "alice"); err != nil {
		t.Errorf("restored database lacks alice: %v", err)
	}
}
