package resource

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestHTTPTargetDecodeAndValidate(t *testing.T) {
	const doc = `
kind: Target
name: vc1
protocol: http
url: https://vc1.example:443
tls_pin_sha256: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
credential: {type: vsphere-soap, account: svc, username: svc@vsphere.local}
catalog: vsphere
rules:
  - {method: POST, path: "/api/vcenter/vm/{vm}/power", query: {action: start}, operation: vm.power_on, object: {type: VirtualMachine, from: path, name: vm}}
---
kind: Policy
name: ops
type: proxy
subjects: {groups: [vm-ops]}
targets: {names: [vc1]}
operations: [vm.power_on, vm.power_off]
objects: ["VirtualMachine:vm-4*"]
`
	objs, err := DecodeYAML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	tg := objs[0].(*Target)
	if tg.URL != "https://vc1.example:443" || tg.Credential.Username != "svc@vsphere.local" || len(tg.Rules) != 1 || tg.Rules[0].Object.Name != "vm" {
		t.Fatalf("decoded %+v", tg)
	}
	p := objs[1].(*Policy)
	if len(p.Operations) != 2 || p.Objects[0] != "VirtualMachine:vm-4*" {
		t.Fatalf("decoded %+v", p)
	}
	// JSON (the API) carries the same fields flat.
	b, _ := json.Marshal(tg)
	if !strings.Contains(string(b), `"url":"https://vc1.example:443"`) || !strings.Contains(string(b), `"rules":[`) {
		t.Fatalf("json %s", b)
	}
}

func TestHTTPTargetValidate(t *testing.T) {
	ok := func() *Target {
		return &Target{Kind: KindTarget, Name: "vc1", Protocol: ProtocolHTTP, HTTP: HTTP{URL: "https://vc1.example",
			Credential: &HTTPCredential{Type: CredentialBasic, Account: "svc", Username: "svc"}}}
	}
	tests := []struct {
		name    string
		mod     func(*Target)
		wantErr string
	}{
		{"ok", func(*Target) {}, ""},
		{"no url", func(t *Target) { t.URL = "" }, "url: is required"},
		{"plain http upstream", func(t *Target) { t.URL = "http://vc1.example" }, "only https"},
		{"user in url", func(t *Target) { t.URL = "https://a:b@vc1.example" }, "no user"},
		{"bad pin", func(t *Target) { t.TLSPinSHA256 = "abcd" }, "tls_pin_sha256"},
		{"unknown credential", func(t *Target) { t.Credential.Type = "ntlm" }, "credential.type"},
		{"basic without user", func(t *Target) { t.Credential.Username = "" }, "credential.username"},
		{"basic user with colon", func(t *Target) { t.Credential.Username = "a:b" }, "credential.username"},
		{"bearer with user", func(t *Target) { t.Credential.Type = CredentialBearer }, "not used with a bearer"},
		{"ssh field", func(t *Target) { t.HostKey = "x" }, "host_key"},
		{"tls_mode", func(t *Target) { t.TLSMode = TLSDisable }, "tls_mode"},
		{"unknown catalog", func(t *Target) { t.Catalog = "esx" }, "catalog"},
		{"rule variable not whole segment", func(t *Target) {
			t.Rules = []HTTPRule{{Path: "/vm/x{vm}", Operation: "vm.get"}}
		}, "whole segment"},
		{"rule dot segment", func(t *Target) { t.Rules = []HTTPRule{{Path: "/a/../b", Operation: "vm.get"}} }, "plain segment"},
		{"rule object from unknown var", func(t *Target) {
			t.Rules = []HTTPRule{{Path: "/vm/{vm}", Operation: "vm.get", Object: &HTTPObject{Type: "VirtualMachine", From: "path", Name: "id"}}}
		}, "no variable"},
		{"rule json pointer", func(t *Target) {
			t.Rules = []HTTPRule{{Path: "/vm", Operation: "vm.get", Object: &HTTPObject{Type: "VirtualMachine", From: "json", Name: "spec"}}}
		}, "JSON pointer"},
		{"rule bad operation", func(t *Target) { t.Rules = []HTTPRule{{Path: "/vm", Operation: "VM Power"}} }, "operation"},
		{"http fields on ssh target", func(t *Target) { t.Protocol, t.Address = "", "10.0.0.1:22" }, "protocol: http and kubernetes targets only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := ok()
			tt.mod(tg)
			err := tg.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestProxyPolicyHTTPGrantValidate(t *testing.T) {
	base := func() *Policy {
		return &Policy{Kind: KindPolicy, Name: "p", Type: PolicyProxy, Subjects: Subjects{Users: []string{"a"}},
			Targets: TargetSelector{Names: []string{"vc1"}}}
	}
	tests := []struct {
		name    string
		grant   HTTPGrant
		wantErr string
	}{
		{"ok", HTTPGrant{Operations: []string{"vm.power_on"}, Objects: []string{"VirtualMachine:vm-4*"}}, ""},
		{"any", HTTPGrant{Operations: []string{"*"}, Objects: []string{"*"}}, ""},
		{"bad op", HTTPGrant{Operations: []string{"PowerOnVM_Task"}}, "operations[0]"},
		{"object without type", HTTPGrant{Operations: []string{"vm.power_on"}, Objects: []string{"vm-4*"}}, "objects[0]"},
		{"objects without operations", HTTPGrant{Objects: []string{"VirtualMachine:*"}}, "list the operations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			p.HTTPGrant = tt.grant
			err := p.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
	// operations are for proxy policies only.
	p := base()
	p.Type, p.Actions, p.TargetUsers = PolicyTargetAccess, []string{"shell"}, []string{"root"}
	p.Operations = []string{"vm.power_on"}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "operations") {
		t.Fatalf("target-access with operations: %v", err)
	}
}
