package pgproxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/jit"
)

// TestJITGrant: the PostgreSQL front honours a just-in-time grant of a
// proxy child, with the child's statement rules, through the same policy
// engine; revoking the grant takes it away.
func TestJITGrant(t *testing.T) {
	s := newSite(t)
	g := s.gw
	g.apply(s.resources(g) + `---
kind: Policy
name: db-jit
type: jit
subjects: {users: [bob]}
child_policies: [alice-db]
duration: 30m
auto_approve: true
`)
	g.setPassword("bob", alicePassword)
	conn := g.conninfo("bob~app~db1", "app", alicePassword)
	if _, stderr, code := g.psql(conn, "-c", "SELECT count(*) FROM t"); code == 0 || !strings.Contains(stderr, "access denied") {
		t.Fatalf("before the grant: %d %q", code, stderr)
	}
	svc := jit.New(jit.Config{Store: g.store, Inventory: g.inv})
	ctx := context.Background()
	req, err := svc.Request(ctx, jit.Input{Requester: "bob", Target: "db1", Account: "app", Reason: "report", Channel: jit.ChannelCLI})
	if err != nil {
		t.Fatal(err)
	}
	if out, stderr, code := g.psql(conn, "-c", "SELECT count(*) FROM t"); code != 0 || strings.TrimSpace(out) != "3" {
		t.Fatalf("with the grant: %d %q %q", code, out, stderr)
	}
	// The child's statement rules come with the grant.
	if _, stderr, code := g.psql(conn, "-c", "DROP TABLE t"); code == 0 || !strings.Contains(stderr, "denied by policy "+req.Grant) {
		t.Fatalf("DROP under the grant: %d %q", code, stderr)
	}
	// Another database than the child allows is not granted.
	if _, stderr, code := g.psql(g.conninfo("bob~app~db1", "other", alicePassword), "-c", "SELECT 1"); code == 0 || !strings.Contains(stderr, "may not open database") {
		t.Fatalf("other database: %d %q", code, stderr)
	}

	// Revoking the grant refuses the next connection. (Ending a live
	// connection on revocation is the front's Recheck, which
	// TestRevocationEndsSession covers for any policy change.)
	if _, err := svc.Revoke(ctx, req.ID, "admin", jit.ChannelCLI); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := g.psql(conn, "-c", "SELECT 1"); code == 0 || !strings.Contains(stderr, "access denied") {
		t.Fatalf("after revoke: %d %q", code, stderr)
	}
}
