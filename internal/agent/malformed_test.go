package agent_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/agentproto"
)

// TestMalformedRequests speaks the agent protocol wrong on purpose: each
// mistake gets one refusal naming it, and nothing is registered.
func TestMalformedRequests(t *testing.T) {
	g := startGateway(t, "1.4.0")
	_, key := g.newKey(nil)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	dial := func(user string) (*ssh.Client, error) {
		return ssh.Dial("tcp", g.addr, &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.FixedHostKey(g.hostKey.PublicKey()), Timeout: 10 * time.Second})
	}
	hello, _ := json.Marshal(agentproto.Hello{Version: "1.4.0", Mode: agentproto.ModeBuiltin})
	goodReg, _ := json.Marshal(agentproto.Registration{Key: key, Name: "m1", Mode: "teleport"})
	cases := []struct {
		name  string
		steps [][2]string // request type, payload
		want  string
	}{
		{"request before hello", [][2]string{{agentproto.ReqRegister, "{}"}}, "first request must be " + agentproto.ReqHello},
		{"hello not JSON", [][2]string{{agentproto.ReqHello, "{"}}, "hello: malformed JSON"},
		{"hello without a version", [][2]string{{agentproto.ReqHello, `{"version":"x.y"}`}}, "this agent is \"x.y\""},
		{"registration not JSON", [][2]string{{agentproto.ReqHello, string(hello)}, {agentproto.ReqRegister, "[1,"}}, "registration: malformed JSON"},
		{"unknown mode", [][2]string{{agentproto.ReqHello, string(hello)}, {agentproto.ReqRegister, string(goodReg)}}, `mode "teleport"`},
		{"keepalive on a registration", [][2]string{{agentproto.ReqHello, string(hello)}, {agentproto.ReqKeepalive, ""}}, "takes one " + agentproto.ReqRegister},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl, err := dial("register")
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var ans []byte
			var ok bool
			for i, st := range c.steps {
				ok, ans, err = cl.SendRequest(st[0], true, []byte(st[1]))
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if !ok {
					break
				}
			}
			var r agentproto.Refusal
			if ok || json.Unmarshal(ans, &r) != nil || !strings.Contains(r.Message, c.want) {
				t.Fatalf("answer ok=%v %q, want a refusal with %q", ok, ans, c.want)
			}
		})
	}
	if g.inv.Snapshot().Engine.Target("m1") != nil {
		t.Fatal("a malformed registration created its target")
	}
	// An identity nobody registered does not log in as a target.
	if cl, err := dial("m1"); err == nil {
		cl.Close()
		t.Fatal("an unregistered key logged in as target m1")
	}
}
