package httpproxy_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/httpproxy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

const soapEnv = `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>%s</soapenv:Body></soapenv:Envelope>`

func envelope(body string) string { return strings.Replace(soapEnv, "%s", body, 1) }

// soapPost sends a SOAP body to the gateway's /t/vc1/sdk (or path) with a
// session cookie, and returns the status and body.
func (g *gateway) soapPost(path, cookie, body string) (int, string, *http.Response) {
	g.t.Helper()
	req, _ := http.NewRequest("POST", g.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", "urn:vim25/8.0")
	if cookie != "" {
		req.Header.Set("Cookie", "vmware_soap_session="+cookie)
	}
	resp, err := g.client("").Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), resp
}

// login logs user in with a SOAP Login through the gateway and returns
// the gateway session token from the cookie.
func (g *gateway) login(path, user, pw string) string {
	g.t.Helper()
	code, body, resp := g.soapPost(path, "", envelope(`<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>`+
		user+`</userName><password>`+pw+`</password></Login>`))
	if code != 200 {
		g.t.Fatalf("login %s: %d %s", user, code, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "vmware_soap_session" {
			if !c.Secure || !c.HttpOnly {
				g.t.Fatalf("session cookie without Secure/HttpOnly: %+v", c)
			}
			return c.Value
		}
	}
	g.t.Fatalf("login %s: no session cookie", user)
	return ""
}

func call(method, typ, id string) string {
	return envelope(`<` + method + ` xmlns="urn:vim25"><_this type="` + typ + `">` + id + `</_this></` + method + `>`)
}

// vmID returns the managed object id of a VM by inventory path, asked
// directly of the simulator.
func (s *vsphereSite) vmID(path string) string {
	s.t.Helper()
	ctx := context.Background()
	u, _ := url.Parse("https://" + s.sim.Addr + "/sdk")
	u.User = url.UserPassword("svc", svcPassword)
	c, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		s.t.Fatal(err)
	}
	defer func() { _ = c.Logout(ctx) }()
	vm, err := find.NewFinder(c.Client).VirtualMachine(ctx, path)
	if err != nil {
		s.t.Fatal(err)
	}
	return vm.Reference().Value
}

// TestSOAPAttacks tries to get past the front's SOAP controls with raw
// requests: each must be refused, and nothing refused may change the
// simulator's inventory.
func TestSOAPAttacks(t *testing.T) {
	testenv.RequireRoot(t)
	s := newVSphereSite(t)
	g := s.gw
	vm1 := s.vmID("/DC0/vm/DC0_H0_VM1")
	tok := g.login("/t/vc1/sdk", "alice", alicePassword)

	// A granted call works with the token: the baseline.
	if code, body, _ := g.soapPost("/t/vc1/sdk", tok, call("PowerOffVM_Task", "VirtualMachine", vm1)); code != 200 {
		t.Fatalf("power off: %d %s", code, body)
	}
	destroy := `<Destroy_Task xmlns="urn:vim25"><_this type="VirtualMachine">` + vm1 + `</_this></Destroy_Task>`
	power := `<PowerOnVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">` + vm1 + `</_this></PowerOnVM_Task>`
	tests := []struct {
		name, path, cookie, body string
		status                   int
		want                     string
	}{
		{"destroy not granted", "/t/vc1/sdk", tok, envelope(destroy), 500, "vm.destroy on VirtualMachine:" + vm1},
		{"two Body children", "/t/vc1/sdk", tok, envelope(power + destroy), 500, "more than one"},
		{"second Body", "/t/vc1/sdk", tok, strings.Replace(envelope(power), "</soapenv:Body>", "</soapenv:Body><soapenv:Body>"+destroy+"</soapenv:Body>", 1), 500, "two Body"},
		{"_this type spoofed by a namespaced attribute", "/t/vc1/sdk", tok,
			envelope(`<Destroy_Task xmlns="urn:vim25" xmlns:x="urn:x"><_this type="Folder" x:type="VirtualMachine">` + vm1 + `</_this></Destroy_Task>`), 500, "exactly one type"},
		{"two _this", "/t/vc1/sdk", tok,
			envelope(`<PowerOnVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">` + vm1 + `</_this><_this type="VirtualMachine">vm-1</_this></PowerOnVM_Task>`), 500, "two _this"},
		{"method on the wrong type", "/t/vc1/sdk", tok, call("PowerOnVM_Task", "HostSystem", vm1), 500, "maps to no operation"},
		{"method in another namespace", "/t/vc1/sdk", tok,
			envelope(`<Destroy_Task xmlns="urn:other"><_this type="VirtualMachine">` + vm1 + `</_this></Destroy_Task>`), 500, "maps to no operation"},
		{"clone ticket for the service session", "/t/vc1/sdk", tok, call("AcquireCloneTicket", "SessionManager", "SessionManager"), 500, "maps to no operation"},
		{"DTD with external entity", "/t/vc1/sdk", tok,
			`<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>` + envelope(destroy)[len(`<?xml version="1.0" encoding="UTF-8"?>`):], 500, "DTD"},
		{"no session", "/t/vc1/sdk", "", envelope(power), 500, "NotAuthenticated"},
		{"forged session", "/t/vc1/sdk", strings.Repeat("a", 64), envelope(power), 500, "NotAuthenticated"},
		{"dot segments", "/t/vc1/x/../sdk", tok, envelope(destroy), 400, "dot segment"},
		{"encoded dot segments", "/t/vc1/x/%2e%2e/sdk", tok, envelope(destroy), 400, "encoded"},
		{"encoded slash", "/t/vc1%2Fsdk", tok, envelope(destroy), 400, "bad target path"},
		{"double encoding", "/t/vc1/%2573dk", tok, envelope(destroy), 400, "encoded"},
		{"empty segment", "/t/vc1//sdk", tok, envelope(destroy), 400, "empty segment"},
		{"path parameter", "/t/vc1/sdk;x=1", tok, envelope(destroy), 400, "character"},
		{"escape to the gateway", "/t/../api/v1/me", tok, "", 400, "bad target path"},
		{"SOAP at another path", "/t/vc1/sdk/", tok, envelope(destroy), 404, "served at /sdk"},
		{"SOAP at another case", "/t/vc1/SDK", tok, envelope(destroy), 404, "served at /sdk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := g.soapPost(tt.path, tt.cookie, tt.body)
			if code != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("got %d %s; want %d with %q", code, body, tt.status, tt.want)
			}
		})
	}
	select {
	case h := <-g.nextHits:
		t.Fatalf("a request reached the gateway's own handler: %s", h)
	default:
	}
	if got := s.vmID("/DC0/vm/DC0_H0_VM1"); got != vm1 {
		t.Fatalf("VM changed: %s", got)
	}
	ev := g.waitEvent(httpproxy.EventRequest, func(ev store.AuditEvent) bool { return ev.Detail["operation"] == "unmapped" })
	if ev.Outcome != audit.Deny || ev.User != "alice" {
		t.Fatalf("unmapped event %+v", ev)
	}

	// An oversize body is refused before it is read whole.
	big := envelope(`<RetrievePropertiesEx xmlns="urn:vim25"><_this type="PropertyCollector">propertyCollector</_this>` +
		strings.Repeat("<x>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</x>", 5<<20/36) + `</RetrievePropertiesEx>`)
	if code, _, _ := g.soapPost("/t/vc1/sdk", tok, big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize body: %d", code)
	}

	// A session is valid on its own target only.
	g.apply(&resource.Target{Kind: resource.KindTarget, Name: "vc2", Protocol: resource.ProtocolHTTP, TLSCA: string(s.sim.CAPEM),
		HTTP: resource.HTTP{URL: s.sim.URL, Catalog: resource.CatalogVSphere,
			Credential: &resource.HTTPCredential{Type: resource.CredentialVSphereSOAP, Account: "svc", Username: "svc"}}},
		&resource.Account{Kind: resource.KindAccount, Target: "vc2", Name: "svc", Password: svcPassword},
		&resource.Policy{Kind: resource.KindPolicy, Name: "alice-vc2", Type: resource.PolicyProxy,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"vc2"}},
			HTTPGrant: resource.HTTPGrant{Operations: []string{"*"}}})
	if code, body, _ := g.soapPost("/t/vc2/sdk", tok, envelope(destroy)); code != 500 || !strings.Contains(body, "NotAuthenticated") {
		t.Fatalf("vc1 session on vc2: %d %s", code, body)
	}

	// Logout ends the session.
	if code, body, _ := g.soapPost("/t/vc1/sdk", tok, call("Logout", "SessionManager", "SessionManager")); code != 200 {
		t.Fatalf("logout: %d %s", code, body)
	}
	if code, body, _ := g.soapPost("/t/vc1/sdk", tok, call("PowerOffVM_Task", "VirtualMachine", vm1)); code != 500 || !strings.Contains(body, "NotAuthenticated") {
		t.Fatalf("after logout: %d %s", code, body)
	}
}

// TestRevocationEndsSession takes alice's policy away while she holds a
// gateway session: the session ends (audited), and its token stops
// working.
func TestRevocationEndsSession(t *testing.T) {
	testenv.RequireRoot(t)
	s := newVSphereSite(t)
	g := s.gw
	tok := g.login("/t/vc1/sdk", "alice", alicePassword)
	read := call("RetrievePropertiesEx", "PropertyCollector", "propertyCollector")
	if code, body, _ := g.soapPost("/t/vc1/sdk", tok, read); code == 500 && strings.Contains(body, "NotAuthenticated") {
		t.Fatalf("before: %s", body)
	}
	if err := g.inv.Delete(context.Background(), resource.KindPolicy, "alice-vm"); err != nil {
		t.Fatal(err)
	}
	g.waitEvent(audit.SessionRevoke, func(ev store.AuditEvent) bool { return ev.User == "alice" })
	if code, body, _ := g.soapPost("/t/vc1/sdk", tok, read); code != 500 || !strings.Contains(body, "NotAuthenticated") {
		t.Fatalf("after revocation: %d %s", code, body)
	}
}

// TestGovmomiThroughGateway uses the govmomi library as a client: login
// with the gateway password, find and power a VM, and a destroy refused
// with a NoPermission fault naming the operation and the object.
func TestGovmomiThroughGateway(t *testing.T) {
	testenv.RequireRoot(t)
	s := newVSphereSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, _ := url.Parse(s.gw.url + "/t/vc1/sdk")
	u.User = url.UserPassword("alice", "wrong")
	if _, err := govmomi.NewClient(ctx, u, true); err == nil || !strings.Contains(err.Error(), "incorrect user name or password") {
		t.Fatalf("wrong password: %v", err)
	}
	u.User = url.UserPassword("alice", alicePassword)
	c, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := find.NewFinder(c.Client).VirtualMachine(ctx, "/DC0/vm/DC0_H0_VM0")
	if err != nil {
		t.Fatal(err)
	}
	task, err := vm.PowerOff(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = vm.Destroy(ctx)
	if !soap.IsSoapFault(err) {
		t.Fatalf("destroy: %v", err)
	}
	var np *types.NoPermission
	f, ok := soap.ToSoapFault(err).VimFault().(types.NoPermission)
	if ok {
		np = &f
	}
	if np == nil || np.PrivilegeId != "vm.destroy" || np.Object == nil || np.Object.Value != vm.Reference().Value {
		t.Fatalf("destroy fault: %v (%#v)", err, soap.ToSoapFault(err).VimFault())
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.PowerOn(ctx); err == nil || !strings.Contains(err.Error(), "sign in first") {
		t.Fatalf("after logout: %v", err)
	}
}

// TestVSphereRESTSession intercepts the vSphere REST session call: the
// user's gateway password opens a gateway session whose id the client
// sends as vmware-api-session-id; the gateway calls vcsim's REST API with
// a session of the service account; JSON body objects are authorized by
// pattern; deleting the session ends it.
func TestVSphereRESTSession(t *testing.T) {
	testenv.RequireRoot(t)
	sim := testenv.StartVCSim(t, "svc", svcPassword)
	g := startGateway(t)
	g.apply(&resource.User{Kind: resource.KindUser, Name: "alice"},
		&resource.Target{Kind: resource.KindTarget, Name: "vcr", Protocol: resource.ProtocolHTTP, TLSCA: string(sim.CAPEM),
			HTTP: resource.HTTP{URL: sim.URL, Catalog: resource.CatalogVSphere,
				Credential: &resource.HTTPCredential{Type: resource.CredentialVSphereREST, Account: "svc", Username: "svc"},
				Rules: []resource.HTTPRule{
					{Method: "GET", Path: "/rest/com/vmware/cis/tagging/category", Operation: "tag.read"},
					{Method: "POST", Path: "/rest/com/vmware/cis/tagging/category", Operation: "tag.create",
						Object: &resource.HTTPObject{Type: "Category", From: "json", Name: "/create_spec/name"}},
				}}},
		&resource.Account{Kind: resource.KindAccount, Target: "vcr", Name: "svc", Password: svcPassword},
		&resource.Policy{Kind: resource.KindPolicy, Name: "alice-tags", Type: resource.PolicyProxy,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"vcr"}},
			HTTPGrant: resource.HTTPGrant{Operations: []string{"tag.create"}, Objects: []string{"Category:team-*"}}},
		// A request with no object (the listing) is granted only by a
		// policy without object patterns.
		&resource.Policy{Kind: resource.KindPolicy, Name: "alice-tags-read", Type: resource.PolicyProxy,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"vcr"}},
			HTTPGrant: resource.HTTPGrant{Operations: []string{"tag.read"}}})
	g.setPassword("alice", alicePassword)
	do := func(method, path, session, body string, basic bool) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, g.url+"/t/vcr"+path, strings.NewReader(body))
		if basic {
			req.SetBasicAuth("alice", alicePassword)
		}
		if session != "" {
			req.Header.Set("vmware-api-session-id", session)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := g.client("").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), resp.Header
	}
	code, body, _ := do("POST", "/rest/com/vmware/cis/session", "", "", true)
	if code != 200 || !strings.Contains(body, `"value"`) {
		t.Fatalf("session: %d %s", code, body)
	}
	tok := strings.Trim(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(body), `{"value":`), "}")), `"`)
	code, body, hdr := do("GET", "/rest/com/vmware/cis/tagging/category", tok, "", false)
	if code != 200 || hdr.Get("Vmware-Api-Session-Id") != "" || hdr.Get("Set-Cookie") != "" {
		t.Fatalf("list categories: %d %s %v", code, body, hdr)
	}
	create := func(name string) string {
		return `{"create_spec":{"name":"` + name + `","cardinality":"SINGLE","associable_types":[],"description":""}}`
	}
	if code, body, _ := do("POST", "/rest/com/vmware/cis/tagging/category", tok, create("team-a"), false); code != 200 {
		t.Fatalf("create team-a: %d %s", code, body)
	}
	if code, body, _ := do("POST", "/rest/com/vmware/cis/tagging/category", tok, create("other"), false); code != 403 || !strings.Contains(body, "Category:other") {
		t.Fatalf("create other: %d %s", code, body)
	}
	// Duplicate keys in the body could be read either way upstream.
	dup := `{"create_spec":{"name":"team-b","name":"other","cardinality":"SINGLE","associable_types":[],"description":""}}`
	if code, body, _ := do("POST", "/rest/com/vmware/cis/tagging/category", tok, dup, false); code != 403 || !strings.Contains(body, "no operation") {
		t.Fatalf("duplicate key: %d %s", code, body)
	}
	// The user's basic credentials alone are no session.
	if code, _, _ := do("GET", "/rest/com/vmware/cis/tagging/category", "", "", true); code != 401 {
		t.Fatalf("basic without session: %d", code)
	}
	if code, _, _ := do("DELETE", "/rest/com/vmware/cis/session", tok, "", false); code != 204 {
		t.Fatalf("delete session: %d", code)
	}
	if code, _, _ := do("GET", "/rest/com/vmware/cis/tagging/category", tok, "", false); code != 401 {
		t.Fatalf("after delete: %d", code)
	}
	ev := g.waitEvent(httpproxy.EventRequest, func(ev store.AuditEvent) bool {
		return ev.Detail["operation"] == "tag.create" && ev.Outcome == audit.Success
	})
	if ev.Detail["object"] != "Category:team-a" || ev.Policy != "alice-tags" {
		t.Fatalf("create event %+v", ev)
	}
}

// TestServiceSessionRefreshed ends the service account's upstream session
// behind the gateway's back: the next request logs in again and succeeds,
// and the client never sees the upstream's NotAuthenticated fault.
func TestServiceSessionRefreshed(t *testing.T) {
	testenv.RequireRoot(t)
	s := newVSphereSite(t)
	g := s.gw
	tok := g.login("/t/vc1/sdk", "alice", alicePassword)
	find := envelope(`<FindByInventoryPath xmlns="urn:vim25"><_this type="SearchIndex">SearchIndex</_this><inventoryPath>/DC0/vm/DC0_H0_VM0</inventoryPath></FindByInventoryPath>`)
	if code, body, _ := g.soapPost("/t/vc1/sdk", tok, find); code != 200 || !strings.Contains(body, "vm-") {
		t.Fatalf("before: %d %s", code, body)
	}
	ctx := context.Background()
	u, _ := url.Parse("https://" + s.sim.Addr + "/sdk")
	u.User = url.UserPassword("svc", svcPassword)
	c, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Logout(ctx) }()
	var sm mo.SessionManager
	if err := property.DefaultCollector(c.Client).RetrieveOne(ctx, *c.ServiceContent.SessionManager, []string{"sessionList", "currentSession"}, &sm); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, us := range sm.SessionList {
		if us.Key != sm.CurrentSession.Key {
			keys = append(keys, us.Key)
		}
	}
	if len(keys) == 0 {
		t.Fatal("the gateway's service session is not in the simulator's list")
	}
	if err := session.NewManager(c.Client).TerminateSession(ctx, keys); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := g.soapPost("/t/vc1/sdk", tok, find); code != 200 || !strings.Contains(body, "vm-") {
		t.Fatalf("after the upstream session ended: %d %s", code, body)
	}
}
