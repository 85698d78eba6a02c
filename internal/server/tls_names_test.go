package server

import (
	"path/filepath"
	"testing"
	"time"
)

// TestGeneratedCertificateNames checks that a generated certificate covers
// http_host and every target host under it, that it is kept while it does,
// and made again when http_host changes to a name it does not cover.
func TestGeneratedCertificateNames(t *testing.T) {
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	now := time.Now()
	names := targetHostNames("GW.Example.")
	if len(names) != 2 || names[0] != "gw.example" || names[1] != "*.gw.example" {
		t.Fatalf("targetHostNames: %q", names)
	}
	for _, bad := range []string{"", "10.0.0.1", "::1", "gw example", "-gw.example", "gw..example", "gw.\u212aexample"} {
		if n := targetHostNames(bad); n != nil {
			t.Errorf("targetHostNames(%q) = %q", bad, n)
		}
	}
	cert, created, err := loadOrCreateTLS(crt, key, true, now, names...)
	if err != nil || !created {
		t.Fatalf("first start: %v %v", created, err)
	}
	for _, h := range []string{"gw.example", "k1.gw.example", "web1.gw.example", "localhost", "127.0.0.1"} {
		if err := cert.Leaf.VerifyHostname(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	for _, h := range []string{"a.k1.gw.example", "gw.example.evil", "example"} {
		if err := cert.Leaf.VerifyHostname(h); err == nil {
			t.Errorf("%s is covered", h)
		}
	}
	if _, created, err := loadOrCreateTLS(crt, key, true, now, names...); err != nil || created {
		t.Fatalf("same names: made again %v, %v", created, err)
	}
	if _, created, err := loadOrCreateTLS(crt, key, true, now); err != nil || created {
		t.Fatalf("http_host unset: made again %v, %v", created, err)
	}
	cert2, created, err := loadOrCreateTLS(crt, key, true, now, targetHostNames("gw2.example")...)
	if err != nil || !created {
		t.Fatalf("new http_host: made again %v, %v", created, err)
	}
	if err := cert2.Leaf.VerifyHostname("k1.gw2.example"); err != nil {
		t.Fatal(err)
	}
}
