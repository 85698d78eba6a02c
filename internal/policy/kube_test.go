package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
)

// kubeInput is a site with one cluster (k1), one http target and one SSH
// target: developers read pods in dev-* namespaces as the group
// dev-readers; alice may also exec in dev-app as one of two cluster users;
// an ops policy for everything expired yesterday.
func kubeInput(now time.Time) Input {
	yesterday := now.Add(-24 * time.Hour)
	return Input{
		Users: []*resource.User{{Name: "alice", Groups: []string{"dev"}}, {Name: "bob", Groups: []string{"dev"}}, {Name: "carol"}},
		Targets: []*resource.Target{
			{Name: "k1", Protocol: resource.ProtocolKubernetes, HTTP: resource.HTTP{URL: "https://10.0.0.9:6443"}},
			{Name: "vc1", Protocol: resource.ProtocolHTTP, HTTP: resource.HTTP{URL: "https://10.0.0.8"}},
			{Name: "web", Address: "10.0.0.6:22"},
		},
		Accounts: []*resource.Account{{Target: "web", Name: "root"}, {Target: "k1", Name: "root"}},
		Policies: []*resource.Policy{
			{Name: "dev-read", Type: resource.PolicyKubernetes, Subjects: resource.Subjects{Groups: []string{"dev"}},
				Targets: resource.TargetSelector{Names: []string{"k1"}}, ClusterGroups: []string{"dev-readers"},
				KubeRules: []resource.KubeRule{{Verbs: []string{"get", "list", "watch"}, Resources: []string{"pods", "pods/log"}, Namespaces: []string{"dev-*"}}}},
			{Name: "alice-exec", Type: resource.PolicyKubernetes, Subjects: resource.Subjects{Users: []string{"alice"}},
				Targets: resource.TargetSelector{Names: []string{"k1"}}, ClusterUsers: []string{"alice-k8s", "deployer"}, ClusterGroups: []string{"devs"},
				SourceCIDRs: []string{"10.1.0.0/16"},
				KubeRules:   []resource.KubeRule{{Verbs: []string{"create", "get"}, Resources: []string{"pods/exec"}, Namespaces: []string{"dev-app"}, Names: []string{"web-*"}}}},
			{Name: "ops-all", Type: resource.PolicyKubernetes, Subjects: resource.Subjects{Users: []string{"carol"}},
				Targets: resource.TargetSelector{Names: []string{"k1"}}, ClusterGroups: []string{"system:masters"}, ValidUntil: &yesterday},
			// A kubernetes policy naming a non-kubernetes target grants nothing there.
			{Name: "wrong-target", Type: resource.PolicyKubernetes, Subjects: resource.Subjects{Users: []string{"bob"}},
				Targets: resource.TargetSelector{Names: []string{"vc1", "web"}}, ClusterUsers: []string{"bob"}},
			// Nor does a target-access policy naming k1 grant kubernetes requests.
			{Name: "ssh-k1", Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Users: []string{"carol"}},
				Targets: resource.TargetSelector{Names: []string{"k1", "web"}}, TargetUsers: []string{"root"}, Actions: []string{"shell"}},
		},
	}
}

func TestDecideKube(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	e, err := Compile(kubeInput(now))
	if err != nil {
		t.Fatal(err)
	}
	in := netip.MustParseAddr("10.1.2.3")
	out := netip.MustParseAddr("192.0.2.1")
	pods := func(user, verb, ns string) KubeRequest {
		return KubeRequest{Subject: user, Target: "k1", Source: in, Now: now, Verb: verb, Resource: "pods", Namespace: ns}
	}
	tests := []struct {
		name       string
		req        KubeRequest
		wantPolicy string // "" denied
		wantUser   string
		wantGroups []string
		wantReason string
	}{
		{name: "list pods in dev-app", req: pods("bob", "list", "dev-app"), wantPolicy: "dev-read", wantUser: "bob", wantGroups: []string{"dev-readers"}},
		{name: "list pods in other", req: pods("bob", "list", "other"), wantReason: "bob may not list pods in namespace other (target k1)"},
		{name: "list pods in all namespaces", req: pods("bob", "list", ""), wantReason: "may not list pods (target k1)"},
		{name: "delete a pod", req: pods("bob", "delete", "dev-app"), wantReason: "may not delete pods"},
		{name: "pods does not cover pods/exec", req: func() KubeRequest {
			r := pods("bob", "create", "dev-app")
			r.Subresource, r.Name = "exec", "web-1"
			return r
		}(), wantReason: "may not create pods/exec web-1 in namespace dev-app"},
		{name: "pods in another group", req: func() KubeRequest { r := pods("bob", "list", "dev-app"); r.APIGroup = "evil.example"; return r }(), wantPolicy: "dev-read", wantUser: "bob"},
		{name: "discovery", req: KubeRequest{Subject: "bob", Target: "k1", Discovery: true}, wantPolicy: "dev-read", wantUser: "bob", wantGroups: []string{"dev-readers"}},
		{name: "discovery as an identity not granted goes as the subject", req: KubeRequest{Subject: "bob", Target: "k1", Discovery: true,
			AsUser: "system:admin", AsGroups: []string{"system:masters"}}, wantPolicy: "dev-read", wantUser: "bob", wantGroups: []string{}},
		{name: "discovery without access", req: KubeRequest{Subject: "dave", Target: "k1", Discovery: true}, wantReason: "dave may not reach k1"},
		{name: "several users, none chosen", req: func() KubeRequest {
			r := pods("alice", "create", "dev-app")
			r.Subresource, r.Name = "exec", "web-1"
			return r
		}(), wantReason: "several cluster users on k1 (alice-k8s, deployer): choose one with kubectl --as"},
		{name: "as a listed user", req: func() KubeRequest {
			r := pods("alice", "create", "dev-app")
			r.Subresource, r.Name, r.AsUser = "exec", "web-1", "deployer"
			return r
		}(), wantPolicy: "alice-exec", wantUser: "deployer", wantGroups: []string{"devs"}},
		{name: "as an unlisted user", req: func() KubeRequest { r := pods("alice", "list", "dev-app"); r.AsUser = "system:admin"; return r }(),
			wantReason: `may not act as cluster user "system:admin" on k1 (allowed: alice)`},
		{name: "as a group of another policy", req: func() KubeRequest {
			r := pods("alice", "list", "dev-app")
			r.AsUser, r.AsGroups = "alice", []string{"devs"}
			return r
		}(), wantReason: `may not act as cluster group "devs" on k1 (allowed: dev-readers)`},
		{name: "as system:masters", req: func() KubeRequest {
			r := pods("bob", "list", "dev-app")
			r.AsGroups = []string{"system:masters"}
			return r
		}(),
			wantReason: `may not act as cluster group "system:masters"`},
		{name: "exec from outside the source network", req: func() KubeRequest {
			r := pods("alice", "create", "dev-app")
			r.Subresource, r.Name, r.AsUser, r.Source = "exec", "web-1", "deployer", out
			return r
		}(), wantReason: "may not create pods/exec"},
		{name: "exec on another pod", req: func() KubeRequest {
			r := pods("alice", "create", "dev-app")
			r.Subresource, r.Name, r.AsUser = "exec", "db-0", "deployer"
			return r
		}(), wantReason: "may not create pods/exec db-0"},
		{name: "expired policy", req: pods("carol", "list", "kube-system"), wantReason: "outside its validity window"},
		{name: "kubernetes policy on an http target", req: KubeRequest{Subject: "bob", Target: "vc1", Discovery: true}, wantReason: "bob may not reach vc1"},
		{name: "unknown target", req: KubeRequest{Subject: "bob", Target: "nope", Discovery: true}, wantReason: "bob may not reach nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.DecideKube(tc.req)
			if tc.wantPolicy == "" {
				if d.Allow {
					t.Fatalf("allowed by %s as %s %v", d.Policy, d.User, d.Groups)
				}
				if !strings.Contains(d.Reason, tc.wantReason) {
					t.Fatalf("reason %q, want it to contain %q", d.Reason, tc.wantReason)
				}
				return
			}
			if !d.Allow || d.Policy != tc.wantPolicy || d.User != tc.wantUser {
				t.Fatalf("got %+v, want allow by %s as %s", d, tc.wantPolicy, tc.wantUser)
			}
			if tc.wantGroups != nil && !slices.Equal(d.Groups, tc.wantGroups) && (len(tc.wantGroups) > 0 || len(d.Groups) > 0) {
				t.Fatalf("groups %v, want %v", d.Groups, tc.wantGroups)
			}
		})
	}
}

// An SSH request to a kubernetes target is no grant of a target-access
// policy naming it: the cluster is reached through its own front only.
func TestDecideSSHToKubernetesTarget(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	e, err := Compile(kubeInput(now))
	if err != nil {
		t.Fatal(err)
	}
	if d := e.Decide(Request{Subject: "carol", Target: "k1", TargetUser: "root", Action: resource.ActionShell, Now: now}); d.Allow {
		t.Fatalf("ssh to a kubernetes target allowed by %s", d.Policy)
	}
	if d := e.Decide(Request{Subject: "carol", Target: "web", TargetUser: "root", Action: resource.ActionShell, Now: now}); !d.Allow {
		t.Fatalf("ssh to web denied: %s", d.Reason)
	}
}
