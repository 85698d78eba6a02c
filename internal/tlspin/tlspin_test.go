package tlspin

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClientConfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(srv.Close)
	cert := srv.Certificate()
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	other := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, host, pin, ca string
		wantBuildErr        bool
		wantDialErr         string
	}{
		{name: "pin matches", host: "anything.invalid", pin: Fingerprint(cert)},
		{name: "pin differs", host: "127.0.0.1", pin: other, wantDialErr: "is not the pinned one"},
		{name: "pin not hex", host: "127.0.0.1", pin: "zz", wantBuildErr: true},
		{name: "pin too short", host: "127.0.0.1", pin: "abcd", wantBuildErr: true},
		{name: "ca and name", host: "127.0.0.1", ca: caPEM},
		{name: "ca, wrong name", host: "other.example", ca: caPEM, wantDialErr: "certificate"},
		{name: "ca not PEM", host: "127.0.0.1", ca: "nothing", wantBuildErr: true},
		{name: "system roots refuse a self-signed upstream", host: "127.0.0.1", wantDialErr: "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ClientConfig(tc.host, tc.pin, tc.ca)
			if tc.wantBuildErr {
				if err == nil {
					t.Fatal("ClientConfig accepted a bad pin or CA")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
			if tc.wantDialErr == "" {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				conn.Close()
				return
			}
			if err == nil {
				conn.Close()
				t.Fatal("handshake succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantDialErr) {
				t.Fatalf("error %q, want it to mention %q", err, tc.wantDialErr)
			}
		})
	}
}
