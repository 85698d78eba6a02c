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

func TestDirectorySection(t *testing.T) {
	const base = "data_dir: /tmp/pcdir\ndirectory:\n  user_base: ou=people,dc=x\n  user_filter: (uid={login})\n"
	tests := []struct {
		name, yaml string
		want       *Directory
		wantErr    string
	}{
		{name: "absent", yaml: "data_dir: /tmp/pcdir\n"},
		{name: "defaults", yaml: base + "  url: ldaps://dc1:636\n", want: &Directory{URL: StringList{"ldaps://dc1:636"},
			UserBase: "ou=people,dc=x", UserFilter: "(uid={login})", EmailAttribute: "mail",
			Timeout: Duration(5 * time.Second), CacheTTL: Duration(time.Minute), PoolSize: 4}},
		{name: "list and explicit zero ttl", yaml: base + "  url: [ldap://a:389, ldap://b:389]\n  start_tls: true\n  cache_ttl: 0s\n  pool_size: 2\n",
			want: &Directory{URL: StringList{"ldap://a:389", "ldap://b:389"}, StartTLS: true,
				UserBase: "ou=people,dc=x", UserFilter: "(uid={login})", EmailAttribute: "mail",
				Timeout: Duration(5 * time.Second), PoolSize: 2}},
		{name: "no url", yaml: base, wantErr: "directory.url:"},
		{name: "bad url", yaml: base + "  url: http://x\n", wantErr: "directory.url:"},
		{name: "starttls on ldaps", yaml: base + "  url: ldaps://x\n  start_tls: true\n", wantErr: "directory.start_tls:"},
		{name: "filter without login", yaml: "data_dir: /tmp/pcdir\ndirectory:\n  url: ldap://x\n  user_base: dc=x\n  user_filter: (uid=alice)\n", wantErr: "directory.user_filter:"},
		{name: "no user base", yaml: "data_dir: /tmp/pcdir\ndirectory:\n  url: ldap://x\n  user_filter: (uid={login})\n", wantErr: "directory.user_base:"},
		{name: "bind dn without password", yaml: base + "  url: ldap://x\n  bind_dn: cn=gw\n", wantErr: "directory.bind_password_file:"},
		{name: "zero timeout", yaml: base + "  url: ldap://x\n  timeout: 0s\n", wantErr: "directory.timeout:"},
		{name: "negative ttl", yaml: base + "  url: ldap://x\n  cache_ttl: -1s\n", wantErr: "directory.cache_ttl:"},
		{name: "zero pool", yaml: base + "  url: ldap://x\n  pool_size: 0\n", wantErr: "directory.pool_size:"},
		{name: "unknown key", yaml: base + "  url: ldap://x\n  urls: ldap://y\n", wantErr: `unknown key "urls"`},
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
			if !reflect.DeepEqual(c.Directory, tt.want) {
				t.Errorf("directory = %+v, want %+v", c.Directory, tt.want)
			}
		})
	}
}
