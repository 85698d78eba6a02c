package sshgate_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/testenv"
)

// targetOpens are the channels a hostile target opens back once a session
// runs: each would reach the client's agent, display, or listeners, or
// give the target a session on the gateway.
var targetOpens = []string{"auth-agent@openssh.com", "x11", "forwarded-tcpip",
	"forwarded-streamlocal@openssh.com", "session", "direct-tcpip"}

// hostileTarget is an SSH server that accepts any key, runs any command by
// first trying every channel in targetOpens and a global request back
// towards the client, and records what it was answered.
type hostileTarget struct {
	addr    string
	hostKey ssh.PublicKey
	mu      sync.Mutex
	answers map[string]string
}

func startHostileTarget(t *testing.T) *hostileTarget {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
		return nil, nil
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileTarget{addr: ln.Addr().String(), hostKey: signer.PublicKey(), answers: map[string]string{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
				sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
				if err != nil {
					return
				}
				defer sc.Close()
				go ssh.DiscardRequests(reqs)
				for nch := range chans {
					if nch.ChannelType() != "session" {
						_ = nch.Reject(ssh.Prohibited, "no")
						continue
					}
					ch, creqs, err := nch.Accept()
					if err != nil {
						return
					}
					h.serveSession(sc, ch, creqs)
				}
			}()
		}
	}()
	return h
}

func (h *hostileTarget) serveSession(sc *ssh.ServerConn, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" && req.Type != "shell" {
			_ = req.Reply(req.Type == "pty-req" || req.Type == "env", nil)
			continue
		}
		_ = req.Reply(true, nil)
		for _, typ := range targetOpens {
			answer := "accepted"
			if c, in, err := sc.OpenChannel(typ, nil); err != nil {
				answer = err.Error()
			} else {
				go ssh.DiscardRequests(in)
				c.Close()
			}
			h.record(typ, answer)
		}
		ok, _, err := sc.SendRequest("tcpip-forward", true, ssh.Marshal(struct {
			Addr string
			Port uint32
		}{"127.0.0.1", 0}))
		h.record("global tcpip-forward", fmt.Sprintf("reply %v %v", ok, err))
		_, _ = ch.Write([]byte("done\n"))
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
		return
	}
}

func (h *hostileTarget) record(what, answer string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answers[what] = answer
}

// The other direction of the matrix: a target that opens channels back
// (agent, X11, forwarded ports, a session on the gateway) or asks for a
// listener is refused, and the client is never asked to open anything.
func TestTargetCannotOpenChannelsBack(t *testing.T) {
	gw := startGateway(t)
	h := startHostileTarget(t)
	clientDir := testenv.ShortTempDir(t)
	key := testenv.NewClientKey(t, clientDir)
	gw.apply(fmt.Sprintf(`
kind: User
name: ok
ssh_keys: [%q]
---
kind: Target
name: evil
address: %s
host_key: %q
---
kind: Account
name: svc
target: evil
---
kind: Policy
name: ok-evil
type: target-access
subjects: {users: [ok]}
targets: {names: [evil]}
target_users: [svc]
actions: [exec]
`, key.AuthorizedKey, h.addr, authorizedLine(h.hostKey)))

	client, err := ssh.Dial("tcp", gw.addr, &ssh.ClientConfig{
		User: "ok~evil", Auth: []ssh.AuthMethod{ssh.PublicKeys(key.Signer)},
		HostKeyCallback: ssh.FixedHostKey(gw.hostKey), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var asked []<-chan ssh.NewChannel
	for _, typ := range targetOpens {
		asked = append(asked, client.HandleChannelOpen(typ))
	}
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Output("anything")
	if err != nil || strings.TrimSpace(string(out)) != "done" {
		t.Fatalf("session: %q %v", out, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, typ := range targetOpens {
		if got := h.answers[typ]; !strings.Contains(got, "the gateway accepts no channels from targets") {
			t.Errorf("target opening %s was answered %q, want a refusal", typ, got)
		}
	}
	if got := h.answers["global tcpip-forward"]; got != "reply false <nil>" {
		t.Errorf("target asking tcpip-forward was answered %q, want reply false", got)
	}
	for _, ch := range asked {
		select {
		case nch := <-ch:
			t.Errorf("the client was asked to open %s", nch.ChannelType())
		default:
		}
	}
}
