package policy

import (
	"testing"

	"github.com/portcullis/portcullis/internal/pathrule"
	"github.com/portcullis/portcullis/internal/resource"
)

// TestDecidePaths checks that a file-transfer decision carries the union
// of the granting policies' path rules, and other actions none.
func TestDecidePaths(t *testing.T) {
	ft := func(name string, paths *resource.PathRules, users ...string) *resource.Policy {
		return &resource.Policy{Name: name, Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Users: users},
			Targets: resource.TargetSelector{Names: []string{"web1"}}, TargetUsers: []string{"root"},
			Actions: []string{resource.ActionFileTransfer, resource.ActionExec}, Paths: paths}
	}
	in := testInput()
	in.Policies = []*resource.Policy{
		ft("bob-upload", &resource.PathRules{Write: []string{"/srv/upload/**"}}, "bob"),
		ft("bob-dotfile", &resource.PathRules{Write: []string{"~/.bashrc"}}, "bob"),
		ft("carol-open", nil, "carol"),
		ft("dave-read", &resource.PathRules{Read: []string{"/srv/pub/**"}}, "dave"),
	}
	e := mustCompile(t, in)
	const home = "/root"
	for _, tc := range []struct {
		user string
		a    pathrule.Access
		p    string
		want bool
	}{
		{"bob", pathrule.Write, "/srv/upload/a", true},
		{"bob", pathrule.Write, "/root/.bashrc", true}, // named exactly by the second policy
		{"bob", pathrule.Write, "/root/.profile", false},
		{"bob", pathrule.Read, "/etc/passwd", false},
		{"carol", pathrule.Read, "/etc/passwd", true},
		{"carol", pathrule.Write, "/root/.ssh/authorized_keys", false},
		{"dave", pathrule.Read, "/srv/pub/x", true},
		{"dave", pathrule.Write, "/srv/pub/x", false},
	} {
		d := e.Decide(userReq(tc.user, resource.ActionFileTransfer, "web1", "root"))
		if !d.Allow || d.Paths == nil {
			t.Fatalf("%s: file-transfer denied or without paths: %+v", tc.user, d)
		}
		if got, why := d.Paths.Allow(tc.a, tc.p, home); got != tc.want {
			t.Errorf("%s %v %s = %v (%s), want %v", tc.user, tc.a, tc.p, got, why, tc.want)
		}
	}
	if d := e.Decide(userReq("bob", resource.ActionExec, "web1", "root")); !d.Allow || d.Paths != nil {
		t.Errorf("exec decision: %+v, want allowed without paths", d)
	}
}
