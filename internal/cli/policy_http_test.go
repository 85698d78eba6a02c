package cli_test

import (
	"path/filepath"
	"testing"
)

// TestCLIPolicyExplainHTTP asks policy explain about one request to an
// http target: an operation on an object.
func TestCLIPolicyExplainHTTP(t *testing.T) {
	g := startGateway(t)
	file := filepath.Join(t.TempDir(), "vc.yaml")
	writeFile(t, file, []byte(`kind: User
name: alice
groups: [vm-ops]
---
kind: Target
name: vc1
protocol: http
url: https://vc1.example
catalog: vsphere
---
kind: Policy
name: vm-ops
type: proxy
subjects: {groups: [vm-ops]}
targets: {names: [vc1]}
operations: [vm.power_on, vm.power_off]
objects: ["VirtualMachine:vm-4*"]
`))
	g.run(t, "", "apply", "-f", file).want(t, 0, []string{"Policy/vm-ops created"}, nil)
	g.run(t, "", "policy", "explain", "--user", "alice", "--target", "vc1", "--operation", "vm.power_on", "--object", "VirtualMachine:vm-449").
		want(t, 0, []string{"ALLOW vm.power_on VirtualMachine:vm-449 on vc1 from any source by policy vm-ops", "vm-ops  grants"}, nil)
	g.run(t, "", "policy", "explain", "--user", "alice", "--target", "vc1", "--operation", "vm.destroy", "--object", "VirtualMachine:vm-449").
		want(t, 1, []string{"DENY vm.destroy VirtualMachine:vm-449 on vc1", "does not grant vm.destroy"}, []string{"denied"})
	g.run(t, "", "policy", "explain", "--user", "alice", "--target", "vc1", "--operation", "vm.power_on", "--object", "VirtualMachine:vm-549").
		want(t, 1, []string{"DENY vm.power_on VirtualMachine:vm-549 on vc1"}, nil)
	g.run(t, "", "policy", "explain", "--user", "alice", "--target", "vc1", "--operation", "vm.power_on", "--action", "shell").
		want(t, 2, nil, []string{"--operation"})
}
