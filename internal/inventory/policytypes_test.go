package inventory

import (
	"context"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/resource"
)

// Every policy type applies; a jit policy's children must exist, must not
// be jit policies themselves, and cannot be deleted while referred to.
func TestPolicyTypesAndJITReferences(t *testing.T) {
	g := newGateway(t, "", nil)
	ctx := context.Background()
	base := `
kind: Target
name: db1
address: 127.0.0.1:5432
---
kind: Policy
name: db-access
type: proxy
subjects: {groups: [dba]}
targets: {names: [db1]}
target_users: [postgres]
---
kind: Policy
name: rec
type: session-recording
subjects: {groups: [dba]}
targets: {names: [db1]}
record_input: true
---
kind: Policy
name: k8s
type: kubernetes
subjects: {groups: [dba]}
targets: {names: [db1]}
cluster_groups: [view]
---
kind: Policy
name: dba-jit
type: jit
subjects: {groups: [oncall]}
child_policies: [db-access]
duration: 1h
`
	mustApply(t, g, decode(t, base))

	for _, tt := range []struct{ name, doc, want string }{
		{"missing child", "kind: Policy\nname: j2\ntype: jit\nsubjects: {users: [a]}\nchild_policies: [nope]\nduration: 1h\n", `policy "nope" does not exist`},
		{"jit child", "kind: Policy\nname: j2\ntype: jit\nsubjects: {users: [a]}\nchild_policies: [dba-jit]\nduration: 1h\n", "is itself a jit policy"},
		{"recording child", "kind: Policy\nname: j2\ntype: jit\nsubjects: {users: [a]}\nchild_policies: [rec]\nduration: 1h\n", "is a session-recording policy"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := g.inv.Apply(ctx, decode(t, tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "field child_policies[0]") {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	err := g.inv.Delete(ctx, resource.KindPolicy, "db-access")
	if err == nil || !strings.Contains(err.Error(), "Policy/dba-jit") {
		t.Fatalf("delete referenced child: %v", err)
	}
}
