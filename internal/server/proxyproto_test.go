package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"

	pp "github.com/pires/go-proxyproto"
	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// TestProxyProtocol runs the whole gateway behind a pretend load balancer
// on 127.0.0.1 and checks that the client address from its PROXY header is
// the one the HTTPS and SSH fronts audit.
func TestProxyProtocol(t *testing.T) {
	cfg := testConfig(t)
	cfg.APIProxyProtocol = true
	cfg.SSHProxyProtocol = true
	cfg.ProxyProtocolFrom = []string{"127.0.0.1/32"}
	if err := cfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// dialVia connects as the balancer would: the header first, carrying
	// the client's address, then the client's bytes.
	dialVia := func(t *testing.T, to net.Addr, header *pp.Header) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", to.String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := header.WriteTo(c); err != nil {
			c.Close()
			t.Fatal(err)
		}
		return c
	}
	client := func(to net.Addr, header *pp.Header) *http.Client {
		return &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // a self-signed test certificate
			DialContext: func(context.Context, string, string) (net.Conn, error) {
				return dialVia(t, to, header), nil
			},
		}}
	}
	clientAddr := &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 40000}

	t.Run("https", func(t *testing.T) {
		hc := client(srv.APIAddr(), pp.HeaderProxyFromAddrs(2, clientAddr, srv.APIAddr()))
		req, _ := http.NewRequest("GET", "https://"+srv.APIAddr().String()+"/api/v1/me", nil)
		// A key that exists, with the wrong secret: refusals of real
		// keys are audited (garbage is only counted).
		id, value, err := apikey.New()
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.store.CreateAPIKey(context.Background(), store.APIKey{ID: id, Name: "t", Kind: store.APIKeyAccess,
			Owner: "nobody", SecretHash: apikey.Hash(id, "another secret")}); err != nil {
			t.Fatal(err)
		}
		req.Header.Set(api.APIKeyHeader, value)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("/api/v1/me with a bad key: %d, want 401", resp.StatusCode)
		}
		wantSource(t, srv, audit.APIKeyDeny, "203.0.113.9:40000")
	})

	t.Run("https health check with LOCAL", func(t *testing.T) {
		hc := client(srv.APIAddr(), &pp.Header{Version: 2, Command: pp.LOCAL, TransportProtocol: pp.UNSPEC})
		resp, err := hc.Get("https://" + srv.APIAddr().String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz: %d", resp.StatusCode)
		}
	})

	t.Run("https without a header from the balancer", func(t *testing.T) {
		c, err := tls.Dial("tcp", srv.APIAddr().String(), &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			t.Fatal("TLS handshake succeeded without a PROXY header from a trusted address")
		}
	})

	t.Run("ssh", func(t *testing.T) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signer, err := ssh.NewSignerFromKey(key)
		if err != nil {
			t.Fatal(err)
		}
		v1 := pp.HeaderProxyFromAddrs(1, &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40001}, srv.SSHAddr())
		c := dialVia(t, srv.SSHAddr(), v1)
		defer c.Close()
		// A login string without a target is refused and audited with
		// the connection's source before any user lookup.
		_, _, _, err = ssh.NewClientConn(c, srv.SSHAddr().String(), &ssh.ClientConfig{
			User:            "alice",
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.FixedHostKey(srv.HostKey()),
		})
		if err == nil {
			t.Fatal("login without a target accepted")
		}
		wantSource(t, srv, audit.LoginMalformed, "203.0.113.7:40001")
	})
}

// wantSource checks that the last audit event of a type has this source.
func wantSource(t *testing.T, srv *Server, typ, source string) {
	t.Helper()
	evs, err := srv.store.ListAudit(context.Background(), store.AuditFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 {
		t.Fatalf("no %s event", typ)
	}
	if got := evs[len(evs)-1].Source; got != source {
		var all []string
		for _, ev := range evs {
			all = append(all, ev.Source)
		}
		t.Errorf("%s source = %q, want %q (all: %s)", typ, got, source, strings.Join(all, ", "))
	}
}
