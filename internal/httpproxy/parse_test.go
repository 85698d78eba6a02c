package httpproxy

import (
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "/sdk", want: "/sdk"},
		{in: "/api/vcenter/vm/vm-1/power", want: "/api/vcenter/vm/vm-1/power"},
		{in: "/a/", want: "/a/"},
		{in: "/a%20b", want: "/a b"},
		{in: "/%61pi", want: "/api"},
		{in: "/a/../b", bad: true},
		{in: "/a/./b", bad: true},
		{in: "/..", bad: true},
		{in: "/a//b", bad: true},
		{in: "//a", bad: true},
		{in: "/a%2Fb", bad: true},
		{in: "/a%2fb", bad: true},
		{in: "/a%5Cb", bad: true},
		{in: "/a\\b", bad: true},
		{in: "/a%2e%2e/b", bad: true},
		{in: "/%2E%2E/b", bad: true},
		{in: "/a%252Fb", bad: true},
		{in: "/a;jsessionid=1", bad: true},
		{in: "/a%3Bb", bad: true},
		{in: "/a%00b", bad: true},
		{in: "/a%0ab", bad: true},
		{in: "/a%zz", bad: true},
		{in: "/a%2", bad: true},
		{in: "a", bad: true},
		{in: "", bad: true},
		{in: "https://evil/a", bad: true},
	}
	for _, tt := range tests {
		got, err := cleanPath(tt.in)
		if tt.bad != (err != nil) || !tt.bad && got != tt.want {
			t.Errorf("cleanPath(%q) = %q, %v; want %q bad=%v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

// FuzzCleanPath checks that whatever cleanPath accepts is one plain path:
// no dot or empty segment, no backslash or ';', and escaping it again and
// cleaning gives the same path (the upstream reads what was judged).
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/sdk", "/a/../b", "/a%2Fb", "/a%252e", "/a;b", "/%61/b/", "//x", "/a%20b/%7e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := cleanPath(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\;\x00") {
			t.Fatalf("cleanPath(%q) = %q", in, p)
		}
		segs := strings.Split(p[1:], "/")
		for i, s := range segs {
			if s == "." || s == ".." || s == "" && i != len(segs)-1 {
				t.Fatalf("cleanPath(%q) = %q has segment %q", in, p, s)
			}
		}
		again, err := cleanPath(escapePath(p))
		if err != nil || again != p {
			t.Fatalf("cleanPath(escape(%q)) = %q, %v", p, again, err)
		}
	})
}

const envelope = `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>%s</soapenv:Body></soapenv:Envelope>`

func env(body string) string { return strings.Replace(envelope, "%s", body, 1) }

func TestParseSOAP(t *testing.T) {
	power := `<PowerOnVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-449</_this></PowerOnVM_Task>`
	tests := []struct {
		name    string
		in      string
		method  string
		object  string
		wantErr string
	}{
		{name: "power on", in: env(power), method: "PowerOnVM_Task", object: "VirtualMachine:vm-449"},
		{name: "with header", in: strings.Replace(env(power), "<soapenv:Body>", "<soapenv:Header><x>1</x></soapenv:Header><soapenv:Body>", 1),
			method: "PowerOnVM_Task", object: "VirtualMachine:vm-449"},
		{name: "session-scoped id", in: env(`<WaitForUpdatesEx xmlns="urn:vim25"><_this type="PropertyCollector">session[a-b]c-d</_this></WaitForUpdatesEx>`),
			method: "WaitForUpdatesEx", object: "PropertyCollector:session[a-b]c-d"},
		{name: "login", in: env(`<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>alice</userName><password>p&amp;w</password></Login>`),
			method: "Login", object: "SessionManager:SessionManager"},
		{name: "DTD", in: `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>` + env(power)[len(`<?xml version="1.0" encoding="UTF-8"?>`):], wantErr: "DTD"},
		{name: "entity without DTD", in: env(`<PowerOnVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">&xxe;</_this></PowerOnVM_Task>`), wantErr: "entity"},
		{name: "two Body children", in: env(power + `<Destroy_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-1</_this></Destroy_Task>`), wantErr: "more than one"},
		{name: "two Bodies", in: strings.Replace(env(power), "</soapenv:Body>", "</soapenv:Body><soapenv:Body>"+power+"</soapenv:Body>", 1), wantErr: "two Body"},
		{name: "two _this", in: env(`<PowerOnVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-449</_this><_this type="VirtualMachine">vm-1</_this></PowerOnVM_Task>`), wantErr: "two _this"},
		{name: "two type attributes", in: env(`<PowerOnVM_Task xmlns="urn:vim25" xmlns:a="urn:a"><_this type="VirtualMachine" a:type="HostSystem">vm-449</_this></PowerOnVM_Task>`), wantErr: "exactly one type"},
		{name: "space in _this", in: env(`<PowerOnVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-449 </_this></PowerOnVM_Task>`), wantErr: "not a managed object"},
		{name: "_this split by comment", in: env(`<PowerOnVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-4<!-- -->49</_this></PowerOnVM_Task>`),
			method: "PowerOnVM_Task", object: "VirtualMachine:vm-449"},
		{name: "processing instruction", in: env(`<?php x?>` + power), wantErr: "processing instruction"},
		{name: "text beside method", in: env("junk" + power), wantErr: "text outside"},
		{name: "wrong envelope namespace", in: strings.ReplaceAll(env(power), "http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope"), wantErr: "Envelope"},
		{name: "empty body", in: env(""), wantErr: "empty Body"},
		{name: "trailing element", in: env(power) + "<x/>", wantErr: "Envelope"},
		{name: "not xml", in: "{}", wantErr: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseSOAP([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, %v; want error %q", c, err, tt.wantErr)
				}
				return
			}
			if err != nil || c.Method != tt.method || c.Object() != tt.object {
				t.Fatalf("got %+v %q, %v", c, c.Object(), err)
			}
		})
	}
	c, _ := parseSOAP([]byte(env(`<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>alice</userName><password>p&amp;w</password></Login>`)))
	if c.UserName != "alice" || c.Password != "p&w" {
		t.Fatalf("login args %+v", c)
	}
}

// FuzzParseSOAP checks that the parser never panics and that what it
// accepts has one method and, with a _this, a plain object reference.
func FuzzParseSOAP(f *testing.F) {
	f.Add(env(`<PowerOnVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-449</_this></PowerOnVM_Task>`))
	f.Add(env(`<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>a</userName><password>b</password></Login>`))
	f.Add(`<!DOCTYPE x [<!ENTITY e "x">]><x>&e;</x>`)
	f.Add(env(`<a/><b/>`))
	f.Fuzz(func(t *testing.T, in string) {
		c, err := parseSOAP([]byte(in))
		if err != nil {
			return
		}
		if c.Method == "" {
			t.Fatalf("accepted %q with no method", in)
		}
		if c.ThisType != "" && (!validMoRef(c.ThisType) || !validMoRef(c.This)) {
			t.Fatalf("accepted %q with _this %q %q", in, c.ThisType, c.This)
		}
		if strings.Contains(strings.ToUpper(in), "<!DOCTYPE") && strings.Index(in, "<!") < strings.Index(in, "Envelope") {
			t.Fatalf("accepted a DTD: %q", in)
		}
	})
}

func TestVSphereCatalog(t *testing.T) {
	tests := []struct {
		method, typ, ns, want string
	}{
		{"PowerOnVM_Task", "VirtualMachine", nsVim25, "vm.power_on"},
		{"PowerOnVM_Task", "HostSystem", nsVim25, ""}, // the type must fit the method
		{"PowerOnVM_Task", "VirtualMachine", "urn:other", ""},
		{"Destroy_Task", "VirtualMachine", nsVim25, "vm.destroy"},
		{"Destroy_Task", "Folder", nsVim25, "folder.destroy"},
		{"Destroy_Task", "SessionManager", nsVim25, ""},
		{"RetrievePropertiesEx", "PropertyCollector", nsVim25, OpReadOnly},
		{"WaitForUpdatesEx", "PropertyCollector", nsVim25, OpReadOnly},
		{"AcquireCloneTicket", "SessionManager", nsVim25, ""},
		{"CloneSession", "SessionManager", nsVim25, ""},
		{"ImpersonateUser", "SessionManager", nsVim25, ""},
		{"SetEntityPermissions", "AuthorizationManager", nsVim25, ""},
		{"AddInternetScsiSendTargets", "HostStorageSystem", nsVim25, "host.iscsi.configure"},
		{"SearchDatastore_Task", "HostDatastoreBrowser", nsVim25, "datastore.browse"},
		{"AcquireTicket", "VirtualMachine", nsVim25, "vm.console"},
		{"CreateSnapshot_Task", "VirtualMachine", nsVim25, "vm.snapshot.create"},
		{"ReconfigVM_Task", "VirtualMachine", nsVim25, "vm.reconfigure"},
	}
	for _, tt := range tests {
		if got := vsphereOperation(soapCall{Method: tt.method, NS: tt.ns, ThisType: tt.typ, This: "x-1"}); got != tt.want {
			t.Errorf("%s on %s (%s) = %q, want %q", tt.method, tt.typ, tt.ns, got, tt.want)
		}
	}
	for m, e := range vsphereCatalog {
		if !resource.ValidOperationName(e.op) {
			t.Errorf("%s maps to %q, not an operation name a policy can hold", m, e.op)
		}
	}
}

func TestMatchRules(t *testing.T) {
	rules := []resource.HTTPRule{
		{Method: "POST", Path: "/api/vcenter/vm/{vm}/power", Query: map[string]string{"action": "start"}, Operation: "vm.power_on",
			Object: &resource.HTTPObject{Type: "VirtualMachine", From: "path", Name: "vm"}},
		{Method: "POST", Path: "/vms", Operation: "vm.create", Object: &resource.HTTPObject{Type: "Folder", From: "json", Name: "/spec/folder"}},
		{Method: "GET", Path: "/files/{rest...}", Operation: "file.read", Object: &resource.HTTPObject{Type: "File", From: "path", Name: "rest"}},
		{Path: "/q", Operation: "q.get", Object: &resource.HTTPObject{Type: "Q", From: "query", Name: "id"}},
	}
	tests := []struct {
		name, method, path, query, body string
		op, object                      string
	}{
		{"path var", "POST", "/api/vcenter/vm/vm-449/power", "action=start", "", "vm.power_on", "VirtualMachine:vm-449"},
		{"query must match", "POST", "/api/vcenter/vm/vm-449/power", "action=stop", "", "", ""},
		{"repeated query param", "POST", "/api/vcenter/vm/vm-449/power", "action=start&action=stop", "", "", ""},
		{"method must match", "GET", "/api/vcenter/vm/vm-449/power", "action=start", "", "", ""},
		{"longer path", "POST", "/api/vcenter/vm/vm-449/power/x", "action=start", "", "", ""},
		{"json pointer", "POST", "/vms", "", `{"spec":{"folder":"group-v3"}}`, "vm.create", "Folder:group-v3"},
		{"json duplicate key", "POST", "/vms", "", `{"spec":{"folder":"group-v3","folder":"group-v4"}}`, "", ""},
		{"json case duplicate", "POST", "/vms", "", `{"spec":{"folder":"group-v3","Folder":"group-v4"}}`, "", ""},
		{"json missing", "POST", "/vms", "", `{"spec":{}}`, "", ""},
		{"not json", "POST", "/vms", "", `folder=group-v3`, "", ""},
		{"rest var", "GET", "/files/a/b.txt", "", "", "file.read", "File:a/b.txt"},
		{"query object", "GET", "/q", "id=7", "", "q.get", "Q:7"},
		{"query object twice", "GET", "/q", "id=7&id=8", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			m, ok := matchRules(rules, tt.method, tt.path, q, []byte(tt.body))
			if ok != (tt.op != "") || m.op != tt.op || m.object != tt.object {
				t.Fatalf("got %+v %v; want %q %q", m, ok, tt.op, tt.object)
			}
		})
	}
}

func TestMergeReads(t *testing.T) {
	read := func(sid, obj string, lat float64) store.AuditEvent {
		return store.AuditEvent{Type: EventRequest, Outcome: audit.Success, User: "alice", Target: "vc1", SessionID: sid,
			Detail: map[string]any{"operation": OpReadOnly, "object": obj, "latency_ms": lat}}
	}
	power := store.AuditEvent{Type: EventRequest, Outcome: audit.Success, User: "alice", Target: "vc1", SessionID: "s1",
		Detail: map[string]any{"operation": "vm.power_on", "object": "VirtualMachine:vm-1"}}
	denied := read("s1", "PropertyCollector:pc", 1)
	denied.Outcome = audit.Deny
	out := mergeReads([]store.AuditEvent{read("s1", "PropertyCollector:pc", 1), power, read("s1", "PropertyCollector:pc", 3),
		denied, read("s2", "SearchIndex:SearchIndex", 2), read("s1", "SearchIndex:SearchIndex", 2)})
	if len(out) != 4 {
		t.Fatalf("got %d events: %+v", len(out), out)
	}
	m := out[0]
	if m.Detail["requests"] != 3 || m.Detail["latency_ms"] != 3.0 || len(m.Detail["objects"].([]string)) != 2 || m.SessionID != "s1" {
		t.Fatalf("merged %+v", m)
	}
	if out[1].Detail["operation"] != "vm.power_on" || out[2].Outcome != audit.Deny || out[3].SessionID != "s2" {
		t.Fatalf("order or pass-through: %+v", out)
	}
}
