package kubeproxy

import (
	"strings"
	"testing"
)

// FuzzTargetHost feeds Host headers and TLS server names to the host
// routing: a name it takes is one lowercase ASCII label without a port,
// and only a host under the gateway's own name yields one.
func FuzzTargetHost(f *testing.F) {
	for _, seed := range []string{"k1.gw.test", "K1.GW.TEST.:8443", "[::1]:8443", "k1.gw.test:", "\u212a1.gw.test",
		"xn--k1-8ma.gw.test", "a.k1.gw.test", ".gw.test", "gw.test", "k1.gw.test..", "k1.gw.testx", "k1.gw.test:8443:1", ""} {
		f.Add(seed)
	}
	s := &Server{cfg: Config{Host: hostOnly("GW.test.")}}
	f.Fuzz(func(t *testing.T, h string) {
		host := hostOnly(h)
		for i := 0; i < len(host); i++ {
			if c := host[i]; c >= 0x80 || 'A' <= c && c <= 'Z' {
				t.Fatalf("hostOnly(%q) = %q", h, host)
			}
		}
		name, ok := s.targetHost(host)
		if !ok {
			return
		}
		if name == "" || strings.ContainsAny(name, ".:") || name+".gw.test" != host {
			t.Fatalf("targetHost(%q) = %q", host, name)
		}
	})
}
