package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/resource"
)

// TestHTTPSFront runs the whole gateway and talks to its HTTPS listener:
// the generated certificate matches the printed fingerprint and is kept
// across restarts; /healthz, /metrics and the OpenAPI document need no
// key; the API needs one and audits its use.
func TestHTTPSFront(t *testing.T) {
	cfg := testConfig(t)
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
	if fi, err := os.Stat(cfg.DataDir + "/api_tls.key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated TLS key: %v %v", fi, err)
	}
	var seen []byte
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // pinned below by fingerprint, as an operator would
		VerifyConnection: func(cs tls.ConnectionState) error {
			seen = cs.PeerCertificates[0].Raw
			return nil
		},
	}}}
	base := "https://" + srv.APIAddr().String()
	get := func(path, key string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if key != "" {
			req.Header.Set(api.APIKeyHeader, key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if s, b := get("/healthz", ""); s != 200 || !strings.Contains(b, `"ok"`) {
		t.Errorf("/healthz: %d %s", s, b)
	}
	sum := sha256.Sum256(seen)
	if fp := srv.TLSFingerprint(); !strings.HasPrefix(fp, fmt.Sprintf("%02X:%02X", sum[0], sum[1])) || len(fp) != 95 {
		t.Errorf("fingerprint %q does not match the served certificate", fp)
	}
	if s, b := get("/metrics", ""); s != 200 || !strings.Contains(b, "portcullis_") {
		t.Errorf("/metrics: %d %.200s", s, b)
	}
	if s, b := get("/api/v1/openapi.json", ""); s != 200 || !strings.Contains(b, `"openapi"`) {
		t.Errorf("openapi: %d %.100s", s, b)
	}
	if s, b := get("/api/v1/me", ""); s != 401 || !strings.Contains(b, `"unauthorized"`) {
		t.Errorf("/me without a key: %d %s", s, b)
	}
	if s, _ := get("/", ""); s != 200 && s != 503 {
		t.Errorf("console root: %d", s)
	}

	objs, _ := resource.DecodeYAML([]byte("kind: User\nname: ada\nroles: [admin]\n"))
	if _, err := srv.inv.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	// A key made over the admin socket works over HTTPS.
	sock := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", cfg.AdminSocket)
	}}}
	resp, err := sock.Post("http://gw/api/v1/apikeys", "application/json",
		strings.NewReader(`{"name":"t","kind":"access","owner":"ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	var created api.CreatedAPIKey
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != 201 || created.Key == "" {
		t.Fatalf("create key: %d %+v", resp.StatusCode, created)
	}
	s, b := get("/api/v1/me", created.Key)
	var me api.MeResponse
	_ = json.Unmarshal([]byte(b), &me)
	if s != 200 || me.Name != "ada" || me.Via != api.ViaAPIKey || me.KeyID != created.ID {
		t.Errorf("/me with the key: %d %s", s, b)
	}
	if s, _ := get("/api/v1/me", created.Key[:len(created.Key)-2]+"AA"); s != 401 {
		t.Errorf("/me with a wrong secret: %d", s)
	}
}
