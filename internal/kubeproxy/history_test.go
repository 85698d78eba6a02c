package kubeproxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// waitCommand waits for the command history row of target k1 that match
// accepts, and fails the test if it never comes.
func (s *site) waitCommand(t *testing.T, what string, match func(store.Command) bool) store.Command {
	t.Helper()
	var last []store.Command
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		cmds, err := s.st.ListCommands(context.Background(), store.CommandFilter{Target: "k1"})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			if match(c) {
				return c
			}
		}
		last = cmds
	}
	var b strings.Builder
	for _, c := range last {
		fmt.Fprintf(&b, "  %s %s as %s: %q session %q exit %v\n", c.User, c.Target, c.Account, c.Command, c.SessionID, c.ExitStatus)
	}
	t.Fatalf("no command history row for %s; the history of k1:\n%s", what, b.String())
	return store.Command{}
}

// testHistory: each kubectl request is a command history row naming the
// gateway user, the impersonated cluster user (as the account, --as
// included) and groups, and the object; refusals are rows marked denied
// (with no account when the gateway decided none and kubectl asked none);
// an exec's row has its recorded session and its exit status; discovery
// is not history.
func testHistory(t *testing.T, s *site, alice string) {
	testenv.Require(t, "kubectl")
	s.apply(t, sessionPolicies()...)
	t.Cleanup(func() {
		for _, n := range []string{"alice-streams", "bob-streams", "record-k1", "hist-as"} {
			_ = s.inv.Delete(context.Background(), resource.KindPolicy, n)
		}
	})
	before, err := s.st.ListCommands(context.Background(), store.CommandFilter{Target: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, c := range before {
		seen[c.ID] = true
	}
	fresh := func(match func(store.Command) bool) func(store.Command) bool {
		return func(c store.Command) bool { return !seen[c.ID] && match(c) }
	}

	if out, code := kubectl(t, alice, "get", "pods", "-n", "dev-app", "-l", "app=hist"); code != 0 {
		t.Fatalf("get pods: exit %d\n%s", code, out)
	}
	c := s.waitCommand(t, "get pods", fresh(func(c store.Command) bool {
		return c.Command == "list pods -n dev-app -l app=hist --as-group dev-readers"
	}))
	if c.User != "alice" || c.Account != "alice" || c.Target != "k1" || c.SessionID != "" || c.ExitStatus != nil || c.Source == "" {
		t.Fatalf("get pods row: %+v", c)
	}

	if out, code := kubectl(t, alice, "get", "pods", "-n", "other"); code == 0 {
		t.Fatalf("get pods -n other was allowed:\n%s", out)
	}
	s.waitCommand(t, "the denied get", fresh(func(c store.Command) bool {
		return c.User == "alice" && c.Account == "" && c.Command == "list pods -n other (denied)"
	}))

	// alice may also act as hist-viewer, and picks it with --as.
	s.apply(t, &resource.Policy{Kind: resource.KindPolicy, Name: "hist-as", Type: resource.PolicyKubernetes,
		Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
		ClusterUsers: []string{"hist-viewer"}, ClusterGroups: []string{"dev-readers"},
		KubeRules: []resource.KubeRule{{Verbs: []string{"list"}, Resources: []string{"pods"}, Namespaces: []string{"dev-app"}}}})
	if out, code := kubectl(t, alice, "get", "pods", "-n", "dev-app", "--as", "hist-viewer", "--as-group", "dev-readers", "-l", "app=as"); code != 0 {
		t.Fatalf("get pods --as hist-viewer: exit %d\n%s", code, out)
	}
	s.waitCommand(t, "get pods --as hist-viewer", fresh(func(c store.Command) bool {
		return c.User == "alice" && c.Account == "hist-viewer" && c.Command == "list pods -n dev-app -l app=as --as-group dev-readers"
	}))
	if _, code := kubectl(t, alice, "get", "pods", "-n", "dev-app", "--as", "system:admin", "-l", "app=admin"); code == 0 {
		t.Fatal("get pods --as system:admin was allowed")
	}
	s.waitCommand(t, "the refused --as system:admin", fresh(func(c store.Command) bool {
		return c.User == "alice" && c.Account == "system:admin" && c.Command == "list pods -n dev-app -l app=admin (denied)"
	}))

	out, code := kubectlIn(t, alice, "hist\n", nil, "exec", "-i", "-n", "dev-app", "web-1", "--", "sh", "-c", "read x; echo got $x; exit 3")
	if code != 3 {
		t.Fatalf("kubectl exec: exit %d, want 3:\n%s", code, out)
	}
	c = s.waitCommand(t, "the exec", fresh(func(c store.Command) bool { return strings.Contains(c.Command, "exit 3'") }))
	if c.Command != `create pods/web-1/exec -n dev-app -c main --as-group dev-readers -- sh -c 'read x; echo got $x; exit 3'` ||
		c.ExitStatus == nil || *c.ExitStatus != 3 || c.User != "alice" || c.Account != "alice" || c.SessionID == "" {
		t.Fatalf("exec row: %+v (exit %v)", c, c.ExitStatus)
	}
	// The row's session is the recorded session of this exec.
	s.waitAudit(t, audit.SessionEnd, func(ev store.AuditEvent) bool {
		return ev.SessionID == c.SessionID && ev.User == "alice" && fmt.Sprint(ev.Detail["exit_status"]) == "3" && ev.Detail["recording"] == c.SessionID
	})

	// Discovery (kubectl api-versions reads /api and /apis) is not
	// history; the list that follows it is.
	if out, code := kubectl(t, alice, "api-versions"); code != 0 {
		t.Fatalf("api-versions: exit %d\n%s", code, out)
	}
	if _, code := kubectl(t, alice, "get", "pods", "-n", "dev-app", "-l", "app=after-discovery"); code != 0 {
		t.Fatal("get pods failed")
	}
	s.waitCommand(t, "the list after discovery", fresh(func(c store.Command) bool { return strings.Contains(c.Command, "app=after-discovery") }))
	cmds, err := s.st.ListCommands(context.Background(), store.CommandFilter{Target: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if strings.Contains(c.Command, " /api") || strings.HasPrefix(c.Command, "get /") || strings.Contains(c.Command, "openapi") {
			t.Fatalf("discovery in the history: %+v", c)
		}
	}
	if n := s.srv.CommandsDropped(); n != 0 {
		t.Fatalf("%d rows dropped", n)
	}
}
