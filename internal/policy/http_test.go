package policy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/resource"
)

// httpInput is a site with one vCenter (vc1), one database (pg) and one
// SSH target (web), with proxy policies granting vSphere operations by
// group, object pattern and source network.
func httpInput() Input {
	return Input{
		Users: []*resource.User{{Name: "alice", Groups: []string{"vm-ops"}}, {Name: "bob"}, {Name: "carol", Groups: []string{"readers"}}},
		Targets: []*resource.Target{
			{Name: "vc1", Protocol: resource.ProtocolHTTP, HTTP: resource.HTTP{URL: "https://10.0.0.9", Catalog: resource.CatalogVSphere}},
			{Name: "pg", Address: "10.0.0.5:5432", Protocol: resource.ProtocolPostgres},
			{Name: "web", Address: "10.0.0.6:22"},
		},
		Accounts: []*resource.Account{{Target: "pg", Name: "app", Password: "x"}},
		Policies: []*resource.Policy{
			{Name: "vm-ops", Type: resource.PolicyProxy, Subjects: resource.Subjects{Groups: []string{"vm-ops"}},
				Targets: resource.TargetSelector{Names: []string{"vc1"}},
				HTTPGrant: resource.HTTPGrant{Operations: []string{"vm.power_on", "vm.power_off", "inventory.read"},
					Objects: []string{"VirtualMachine:vm-4*", "PropertyCollector:*"}}},
			{Name: "readers", Type: resource.PolicyProxy, Subjects: resource.Subjects{Groups: []string{"readers", "ldap-readers"}},
				Targets: resource.TargetSelector{Names: []string{"vc1"}}, SourceCIDRs: []string{"10.1.0.0/16"},
				HTTPGrant: resource.HTTPGrant{Operations: []string{"inventory.read"}}},
			// A proxy policy for the database grants nothing on vc1.
			{Name: "pg-app", Type: resource.PolicyProxy, Subjects: resource.Subjects{Users: []string{"bob"}},
				Targets: resource.TargetSelector{Names: []string{"pg"}}, TargetUsers: []string{"app"}},
			// Nor does a target-access policy naming vc1.
			{Name: "ssh-all", Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Users: []string{"bob"}},
				Targets: resource.TargetSelector{Names: []string{"vc1", "web"}}, TargetUsers: []string{"root"}, Actions: []string{"shell"}},
		},
	}
}

func TestDecideHTTP(t *testing.T) {
	e, err := Compile(httpInput())
	if err != nil {
		t.Fatal(err)
	}
	in := netip.MustParseAddr("10.1.2.3")
	out := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name   string
		req    Request
		allow  bool
		policy string
		reason string
	}{
		{"power on granted by group and pattern", Request{Subject: "alice", Target: "vc1", Source: out, Operation: "vm.power_on", Object: "VirtualMachine:vm-449"}, true, "vm-ops", ""},
		{"object outside the pattern", Request{Subject: "alice", Target: "vc1", Source: out, Operation: "vm.power_on", Object: "VirtualMachine:vm-549"}, false, "", "may not vm.power_on on VirtualMachine:vm-549"},
		{"pattern is anchored at both ends", Request{Subject: "alice", Target: "vc1", Source: out, Operation: "vm.power_on", Object: "XVirtualMachine:vm-4"}, false, "", "may not"},
		{"type is part of the object", Request{Subject: "alice", Target: "vc1", Source: out, Operation: "vm.power_on", Object: "HostSystem:vm-4"}, false, "", "may not"},
		{"operation not granted", Request{Subject: "alice", Target: "vc1", Source: out, Operation: "vm.destroy", Object: "VirtualMachine:vm-449"}, false, "", "may not vm.destroy"},
		{"no object where patterns exist", Request{Subject: "alice", Target: "vc1", Source: out, Operation: "vm.power_on"}, false, "", "no object"},
		{"sign-in: no operation", Request{Subject: "alice", Target: "vc1", Source: out}, true, "vm-ops", ""},
		{"reader from inside", Request{Subject: "carol", Target: "vc1", Source: in, Operation: "inventory.read", Object: "Folder:group-d1"}, true, "readers", ""},
		{"reader from outside", Request{Subject: "carol", Target: "vc1", Source: out, Operation: "inventory.read"}, false, "", "from 192.0.2.1"},
		{"directory group", Request{Subject: "bob", Groups: []string{"ldap-readers"}, Target: "vc1", Source: in, Operation: "inventory.read"}, true, "readers", ""},
		{"ssh and database policies grant nothing", Request{Subject: "bob", Target: "vc1", Source: in, Operation: "inventory.read"}, false, "", "may not reach vc1"},
		{"unknown target", Request{Subject: "alice", Target: "nope", Operation: "vm.power_on"}, false, "", "may not reach nope"},
		{"database target is no http target", Request{Subject: "bob", Target: "pg", Operation: "vm.power_on"}, false, "", "may not reach pg"},
		{"unknown user", Request{Subject: "mallory", Target: "vc1", Operation: "vm.power_on"}, false, "", "may not reach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.DecideHTTP(tt.req)
			if d.Allow != tt.allow || d.Policy != tt.policy || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("got allow=%v policy=%q reason=%q; want %v %q %q", d.Allow, d.Policy, d.Reason, tt.allow, tt.policy, tt.reason)
			}
		})
	}
	// SSH to an http target is no grant, even with a target-access policy.
	if d := e.Decide(Request{Subject: "bob", Target: "vc1", Action: resource.ActionShell, TargetUser: "root"}); d.Allow {
		t.Fatal("Decide allowed a shell on an http target")
	}
}

func TestExplainHTTP(t *testing.T) {
	e, err := Compile(httpInput())
	if err != nil {
		t.Fatal(err)
	}
	d, steps := e.ExplainHTTP(Request{Subject: "alice", Target: "vc1", AnySource: true, Operation: "vm.destroy", Object: "VirtualMachine:vm-449"})
	if d.Allow || len(steps) != 1 || steps[0].Policy != "vm-ops" || !strings.Contains(steps[0].Why, "does not grant vm.destroy") {
		t.Fatalf("got %+v %+v", d, steps)
	}
	d, steps = e.ExplainHTTP(Request{Subject: "alice", Target: "vc1", AnySource: true, Operation: "vm.power_on", Object: "VirtualMachine:vm-449"})
	if !d.Allow || steps[0].Outcome != "grants" {
		t.Fatalf("got %+v %+v", d, steps)
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"VirtualMachine:vm-4*", "VirtualMachine:vm-449", true},
		{"VirtualMachine:vm-4*", "VirtualMachine:vm-4", true},
		{"VirtualMachine:vm-4*", "VirtualMachine:vm-5", false},
		{"*:vm-1", "VirtualMachine:vm-1", true},
		{"*:vm-1", "VirtualMachine:vm-12", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"*", "", true},
		{"x", "", false},
		{"Datastore:[ds1] vm/*", "Datastore:[ds1] vm/a/b.vmx", true},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}
