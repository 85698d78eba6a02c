package config

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestOIDCSection(t *testing.T) {
	const base = "data_dir: /tmp/pcdir\noidc:\n  client_id: gw\n  redirect_url: https://gw.example:8443/ui/oidc/callback\n"
	defaults := OIDC{Issuer: "https://id.example", ClientID: "gw", RedirectURL: "https://gw.example:8443/ui/oidc/callback",
		Scopes: StringList{"openid", "email", "profile"}, GroupsClaim: "groups", UsernameClaim: "preferred_username",
		Timeout: Duration(10 * time.Second)}
	withScopes := defaults
	withScopes.Scopes = StringList{"openid", "groups"}
	withScopes.CreateUsers = true
	withScopes.SSOCache = Duration(time.Hour)
	loopback := defaults
	loopback.Issuer = "http://127.0.0.1:5556"
	tests := []struct {
		name, yaml string
		want       *OIDC
		wantErr    string
	}{
		{name: "absent", yaml: "data_dir: /tmp/pcdir\n"},
		{name: "defaults", yaml: base + "  issuer: https://id.example\n", want: &defaults},
		{name: "scopes without openid", yaml: base + "  issuer: https://id.example\n  scopes: groups\n  create_users: true\n  sso_cache: 1h\n", want: &withScopes},
		{name: "http on loopback", yaml: base + "  issuer: http://127.0.0.1:5556\n", want: &loopback},
		{name: "http elsewhere", yaml: base + "  issuer: http://id.example\n", wantErr: "oidc.issuer:"},
		{name: "no issuer", yaml: base, wantErr: "oidc.issuer:"},
		{name: "no client id", yaml: "data_dir: /tmp/pcdir\noidc:\n  issuer: https://id.example\n  redirect_url: https://gw/ui/oidc/callback\n", wantErr: "oidc.client_id:"},
		{name: "wrong redirect path", yaml: "data_dir: /tmp/pcdir\noidc:\n  issuer: https://id.example\n  client_id: gw\n  redirect_url: https://gw/cb\n", wantErr: "oidc.redirect_url:"},
		{name: "negative cache", yaml: base + "  issuer: https://id.example\n  sso_cache: -1s\n", wantErr: "oidc.sso_cache:"},
		{name: "zero timeout", yaml: base + "  issuer: https://id.example\n  timeout: 0s\n", wantErr: "oidc.timeout:"},
		{name: "unknown key", yaml: base + "  issuer: https://id.example\n  secret: x\n", wantErr: `unknown key "secret"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Parse([]string{"--config", file}, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.OIDC, tt.want) {
				t.Errorf("oidc = %+v, want %+v", c.OIDC, tt.want)
			}
		})
	}
}
