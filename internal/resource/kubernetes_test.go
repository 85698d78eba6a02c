package resource

import (
	"strings"
	"testing"
)

func TestKubernetesTargetAndPolicyDecode(t *testing.T) {
	const doc = `
kind: Target
name: k1
protocol: kubernetes
url: https://127.0.0.1:6443
tls_pin_sha256: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
credential: {type: bearer, account: gateway}
---
kind: Policy
name: dev-read
type: kubernetes
subjects: {groups: [dev]}
targets: {names: [k1]}
cluster_groups: [dev-readers]
rules:
  - {verbs: [get, list, watch], resources: [pods, pods/log], namespaces: [dev-*]}
  - {verbs: ["*"], api_groups: [stable.example.com], resources: [crontabs], names: [nightly-*]}
`
	objs, err := DecodeYAML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	tg := objs[0].(*Target)
	if !tg.IsKubernetes() || tg.Credential.Account != "gateway" {
		t.Fatalf("decoded %+v", tg)
	}
	p := objs[1].(*Policy)
	if len(p.KubeRules) != 2 || p.KubeRules[0].Namespaces[0] != "dev-*" || p.KubeRules[1].APIGroups[0] != "stable.example.com" {
		t.Fatalf("decoded %+v", p.KubeRules)
	}
}

func TestKubernetesTargetValidate(t *testing.T) {
	ok := func() *Target {
		return &Target{Kind: KindTarget, Name: "k1", Protocol: ProtocolKubernetes, HTTP: HTTP{URL: "https://k1.example:6443",
			Credential: &HTTPCredential{Type: CredentialBearer, Account: "gateway"}}}
	}
	tests := []struct {
		name    string
		mod     func(*Target)
		wantErr string
	}{
		{"ok", func(*Target) {}, ""},
		{"no url", func(t *Target) { t.URL = "" }, "url: is required"},
		{"plain http", func(t *Target) { t.URL = "http://k1.example" }, "only https"},
		{"path in url", func(t *Target) { t.URL = "https://k1.example/api" }, "no user, path"},
		{"user in url", func(t *Target) { t.URL = "https://a:b@k1.example" }, "no user, path"},
		{"no credential", func(t *Target) { t.Credential = nil }, "credential: is required"},
		{"basic credential", func(t *Target) { t.Credential.Type = CredentialBasic; t.Credential.Username = "u" }, "want bearer"},
		{"bad account", func(t *Target) { t.Credential.Account = "../x" }, "credential.account"},
		{"bad pin", func(t *Target) { t.TLSPinSHA256 = "abc" }, "tls_pin_sha256"},
		{"bad ca", func(t *Target) { t.TLSCA = "nope" }, "tls_ca"},
		{"host key", func(t *Target) { t.HostKey = "ssh-ed25519 AAAA" }, "host_key"},
		{"rules", func(t *Target) { t.Rules = []HTTPRule{{Path: "/", Operation: "a"}} }, "catalog and rules are for http"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := ok()
			tc.mod(tg)
			err := tg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestKubernetesPolicyValidate(t *testing.T) {
	ok := func() *Policy {
		return &Policy{Kind: KindPolicy, Name: "p", Type: PolicyKubernetes, Subjects: Subjects{Users: []string{"alice"}},
			Targets: TargetSelector{Names: []string{"k1"}}, ClusterUsers: []string{"alice-k8s"},
			KubeRules: []KubeRule{{Verbs: []string{"get"}, Resources: []string{"pods"}}}}
	}
	tests := []struct {
		name    string
		mod     func(*Policy)
		wantErr string
	}{
		{"ok", func(*Policy) {}, ""},
		{"no identity", func(p *Policy) { p.ClusterUsers = nil }, "needs cluster_users or cluster_groups"},
		{"space in user", func(p *Policy) { p.ClusterUsers = []string{"a b"} }, "cluster_users[0]"},
		{"wildcard user", func(p *Policy) { p.ClusterUsers = []string{"*"} }, "cluster_users[0]"},
		{"wildcard group", func(p *Policy) { p.ClusterGroups = []string{"system:*"} }, "cluster_groups[0]"},
		{"rule without verbs", func(p *Policy) { p.KubeRules[0].Verbs = nil }, "rules[0]: verbs is required"},
		{"rule without resources", func(p *Policy) { p.KubeRules[0].Resources = nil }, "resources is required"},
		{"upper-case verb", func(p *Policy) { p.KubeRules[0].Verbs = []string{"GET"} }, "not a Kubernetes verb"},
		{"resource with two slashes", func(p *Policy) { p.KubeRules[0].Resources = []string{"pods/exec/x"} }, "not a resource"},
		{"subresource", func(p *Policy) { p.KubeRules[0].Resources = []string{"pods/exec", "pods/*"} }, ""},
		{"core group", func(p *Policy) { p.KubeRules[0].APIGroups = []string{""} }, ""},
		{"bad group", func(p *Policy) { p.KubeRules[0].APIGroups = []string{"A/B"} }, "api group"},
		{"bad namespace", func(p *Policy) { p.KubeRules[0].Namespaces = []string{"Dev"} }, "namespace"},
		{"bad cidr", func(p *Policy) { p.SourceCIDRs = []string{"x"} }, "source_cidrs[0]"},
		{"target users not used", func(p *Policy) { p.TargetUsers = []string{"root"} }, "target_users: is not used"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ok()
			tc.mod(p)
			err := p.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}
