package httpproxy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/httpproxy"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// TestGovcThroughGateway drives the real govc through the gateway with
// alice's own gateway password: browsing and power are granted, destroy is
// refused with a fault naming the operation and the object, a wrong
// password is refused at Login, and every upstream call was made by the
// service account.
func TestGovcThroughGateway(t *testing.T) {
	testenv.RequireRoot(t)
	s := newVSphereSite(t)
	alice := s.gwURL("alice", alicePassword)

	out, code := govc(t, alice, "ls", "/DC0/vm")
	if code != 0 || !strings.Contains(out, "/DC0/vm/DC0_H0_VM0") {
		t.Fatalf("govc ls: code %d, out %s", code, out)
	}
	out, code = govc(t, alice, "vm.power", "-off", "/DC0/vm/DC0_H0_VM0")
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("govc vm.power -off: code %d, out %s", code, out)
	}
	out, code = govc(t, alice, "vm.power", "-on", "/DC0/vm/DC0_H0_VM0")
	if code != 0 || !strings.Contains(out, "Powering on VirtualMachine:vm-") || !strings.Contains(out, "OK") {
		t.Fatalf("govc vm.power -on: code %d, out %s", code, out)
	}
	ev := s.gw.waitEvent(httpproxy.EventRequest, func(ev store.AuditEvent) bool {
		return ev.Detail["operation"] == "vm.power_on" && ev.Outcome == audit.Success
	})
	if ev.User != "alice" || ev.Target != "vc1" || ev.Policy != "alice-vm" || !strings.HasPrefix(ev.Detail["object"].(string), "VirtualMachine:vm-") ||
		ev.Detail["upstream_status"] != float64(200) || ev.SessionID == "" || fmt.Sprint(ev.Detail["groups"]) != "[vm-ops]" {
		t.Fatalf("power on event: %+v", ev)
	}

	out, code = govc(t, alice, "vm.destroy", "/DC0/vm/DC0_H0_VM1")
	if code == 0 || !strings.Contains(out, "vm.destroy") || !strings.Contains(out, "VirtualMachine:vm-") {
		t.Fatalf("govc vm.destroy: code %d, out %s", code, out)
	}
	s.gw.waitEvent(httpproxy.EventRequest, func(ev store.AuditEvent) bool {
		return ev.Detail["operation"] == "vm.destroy" && ev.Outcome == audit.Deny && ev.User == "alice"
	})
	// The VM is still there.
	out, code = govc(t, alice, "ls", "/DC0/vm")
	if code != 0 || !strings.Contains(out, "DC0_H0_VM1") {
		t.Fatalf("VM destroyed after a refusal: %d %s", code, out)
	}

	// bob may browse, not power.
	bob := s.gwURL("bob", "bob-gw-password")
	if out, code := govc(t, bob, "ls", "/DC0/vm"); code != 0 {
		t.Fatalf("bob ls: %d %s", code, out)
	}
	if out, code := govc(t, bob, "vm.power", "-off", "/DC0/vm/DC0_H0_VM0"); code == 0 || !strings.Contains(out, "vm.power_off") {
		t.Fatalf("bob power off: %d %s", code, out)
	}

	// A wrong password, and the service account's own password, are
	// refused at Login.
	for _, u := range []string{s.gwURL("alice", "wrong"), s.gwURL("svc", svcPassword)} {
		out, code := govc(t, u, "ls", "/DC0/vm")
		if code == 0 || !strings.Contains(out, "incorrect user name or password") {
			t.Fatalf("bad login: code %d, out %s", code, out)
		}
	}
	s.gw.waitEvent(audit.LoginFailure, func(ev store.AuditEvent) bool { return ev.User == "alice" })

	// The simulator saw only the service account.
	direct := "https://svc:" + svcPassword + "@" + s.sim.Addr + "/sdk"
	out, code = govc(t, direct, "session.ls")
	if code != 0 {
		t.Fatalf("session.ls: %d %s", code, out)
	}
	if strings.Contains(out, "alice") || strings.Contains(out, "bob") {
		t.Fatalf("a user's name reached the simulator:\n%s", out)
	}
	if !strings.Contains(out, "svc") {
		t.Fatalf("no service account session:\n%s", out)
	}
}
