package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("data_dir: /tmp/pcdata\nssh_addr: 127.0.0.1:2200\nauth_timeout: 5s\nlog_level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ppFile := filepath.Join(dir, "pp.yaml")
	if err := os.WriteFile(ppFile, []byte("ssh_proxy_protocol: true\napi_proxy_protocol: true\nproxy_protocol_from: [10.1.0.0/16]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{name: "defaults", check: func(t *testing.T, c Config) {
			if c.DataDir != "data" || c.SSHAddr != ":2222" || c.AdminSocket != filepath.Join("data", "admin.sock") ||
				c.Store != "sqlite:"+filepath.Join("data", "portcullis.db") || time.Duration(c.AuthTimeout) != 30*time.Second {
				t.Fatalf("defaults: %+v", c)
			}
		}},
		{name: "env data dir", env: "/tmp/pcenv", check: func(t *testing.T, c Config) {
			if c.DataDir != "/tmp/pcenv" || c.MasterKeyFile != "/tmp/pcenv/master.key" {
				t.Fatalf("env: %+v", c)
			}
		}},
		{name: "flags", args: []string{"--data-dir", "/tmp/pcx", "--ssh-addr", "127.0.0.1:0", "--auth-timeout", "2s"}, check: func(t *testing.T, c Config) {
			if c.DataDir != "/tmp/pcx" || c.SSHAddr != "127.0.0.1:0" || time.Duration(c.AuthTimeout) != 2*time.Second {
				t.Fatalf("flags: %+v", c)
			}
		}},
		{name: "file then flags override", args: []string{"--config", file, "--ssh-addr", "127.0.0.1:9"}, check: func(t *testing.T, c Config) {
			if c.DataDir != "/tmp/pcdata" || c.SSHAddr != "127.0.0.1:9" || time.Duration(c.AuthTimeout) != 5*time.Second || c.LogLevel != "debug" {
				t.Fatalf("file+flags: %+v", c)
			}
		}},
		{name: "bad duration flag", args: []string{"--auth-timeout", "soon"}, wantErr: "auth-timeout"},
		{name: "bad level", args: []string{"--log-level", "loud"}, wantErr: "log_level"},
		{name: "bad addr", args: []string{"--ssh-addr", "nope"}, wantErr: "ssh_addr"},
		{name: "postgres", args: []string{"--store", "postgres://u:p@127.0.0.1:5432/db"}},
		{name: "postgres bad url", args: []string{"--store", "postgres://u:p@[::1/db"}, wantErr: "does not parse"},
		{name: "gateway id", args: []string{"--gateway-id", "gw-1.site_a"}},
		// Retention under a year would take evidence reports need.
		{name: "audit retention a year", args: []string{"--audit-retention", "365d", "--recordings-retention", "400d"}},
		{name: "audit retention under a year", args: []string{"--audit-retention", "364d"}, wantErr: "audit_retention: 8736h0m0s is under 12 months"},
		{name: "recordings retention under a year", args: []string{"--recordings-retention", "90d"}, wantErr: "recordings_retention"},
		{name: "retention under a year forced", args: []string{"--audit-retention", "90d", "--recordings-retention", "1h", "--retention-force"},
			check: func(t *testing.T, c Config) {
				if !c.RetentionForce || time.Duration(c.AuditRetention) != 90*24*time.Hour {
					t.Fatalf("forced: %+v", c)
				}
			}},
		{name: "gateway id bad", args: []string{"--gateway-id", "gw 1"}, wantErr: "gateway_id"},
		{name: "unknown store", args: []string{"--store", "mysql:x"}, wantErr: "unknown scheme"},
		{name: "negative timeout", args: []string{"--dial-timeout", "-1s"}, wantErr: "dial_timeout"},
		{name: "long socket path", args: []string{"--data-dir", "/tmp/" + strings.Repeat("d", 120)}, wantErr: "107"},
		{name: "diag not loopback", args: []string{"--diag-addr", "0.0.0.0:6060"}, wantErr: "diag_addr"},
		{name: "bad syslog", args: []string{"--audit-syslog", "syslog.example:514"}, wantErr: "audit_syslog"},
		{name: "bad retention", args: []string{"--recordings-retention", "forever"}, wantErr: "recordings-retention"},
		{name: "recordings store local", args: []string{"--recordings-store", "local"}, check: func(t *testing.T, c Config) {
			if oc, err := c.ObjectStore(); err != nil || oc.Bucket != "" {
				t.Fatalf("local: %+v %v", oc, err)
			}
		}},
		{name: "recordings store s3", args: []string{"--recordings-store", "s3://rec/gw1?endpoint=http://127.0.0.1:9000&region=eu-west-1",
			"--recordings-store-credentials", "/etc/portcullis/aws"}, check: func(t *testing.T, c Config) {
			oc, err := c.ObjectStore()
			if err != nil || oc.Bucket != "rec" || oc.Prefix != "gw1" || oc.Endpoint != "127.0.0.1:9000" || oc.Secure || oc.CredentialsFile != "/etc/portcullis/aws" {
				t.Fatalf("s3: %+v %v", oc, err)
			}
		}},
		{name: "recordings store bad", args: []string{"--recordings-store", "gs://rec"}, wantErr: "recordings_store"},
		{name: "recordings store secret in url", args: []string{"--recordings-store", "s3://AKIA:hunter2@rec"}, wantErr: "credentials do not go in the URL"},
		{name: "recordings store credentials without s3", args: []string{"--recordings-store-credentials", "/x"}, wantErr: "only for an s3://"},
		{name: "proxy protocol off by default", check: func(t *testing.T, c Config) {
			if c.SSHProxyProtocol || c.APIProxyProtocol || len(c.TrustedProxies()) != 0 {
				t.Fatalf("proxy protocol: %+v", c)
			}
		}},
		{name: "proxy protocol flags", args: []string{"--ssh-proxy-protocol", "--api-proxy-protocol=true", "--proxy-protocol-from", "10.0.0.0/24, 192.0.2.7,2001:db8::/32,::ffff:198.51.100.1"},
			check: func(t *testing.T, c Config) {
				got := fmt.Sprint(c.TrustedProxies())
				if !c.SSHProxyProtocol || !c.APIProxyProtocol || got != "[10.0.0.0/24 192.0.2.7/32 2001:db8::/32 198.51.100.1/32]" {
					t.Fatalf("proxy protocol: %v %v %s", c.SSHProxyProtocol, c.APIProxyProtocol, got)
				}
			}},
		{name: "proxy protocol file, flag turns one off", args: []string{"--config", ppFile, "--api-proxy-protocol=false"}, check: func(t *testing.T, c Config) {
			if !c.SSHProxyProtocol || c.APIProxyProtocol || fmt.Sprint(c.TrustedProxies()) != "[10.1.0.0/16]" {
				t.Fatalf("proxy protocol: %+v", c)
			}
		}},
		{name: "CIDR host bits masked", args: []string{"--ssh-proxy-protocol", "--proxy-protocol-from", "10.0.0.9/24"}, check: func(t *testing.T, c Config) {
			if got := fmt.Sprint(c.TrustedProxies()); got != "[10.0.0.0/24]" {
				t.Fatalf("prefixes %s", got)
			}
		}},
		{name: "proxy protocol needs balancers", args: []string{"--api-proxy-protocol"}, wantErr: "proxy_protocol_from: required"},
		{name: "proxy protocol empty list", args: []string{"--ssh-proxy-protocol", "--proxy-protocol-from", " , "}, wantErr: "proxy_protocol_from: required"},
		{name: "bad balancer CIDR", args: []string{"--ssh-proxy-protocol", "--proxy-protocol-from", "10.0.0.0/33"}, wantErr: `proxy_protocol_from: "10.0.0.0/33"`},
		{name: "bad balancer address", args: []string{"--proxy-protocol-from", "lb.example"}, wantErr: `proxy_protocol_from: "lb.example"`},
		{name: "mapped balancer CIDR", args: []string{"--proxy-protocol-from", "::ffff:10.0.0.0/104"}, wantErr: "IPv4-mapped"},
		{name: "bad bool flag", args: []string{"--ssh-proxy-protocol=maybe"}, wantErr: "ssh-proxy-protocol"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected argument"},
		{name: "missing file", args: []string{"--config", filepath.Join(dir, "none.yaml")}, wantErr: "read config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvDataDir, tt.env)
			c, err := Parse(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestParseFileErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown key": "data_dir: x\nssh_adr: y\n",
		"bad type":    "auth_timeout: [1]\n",
		"bad yaml":    "data_dir: [\n",
	} {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			os.WriteFile(f, []byte(body), 0o600)
			_, err := Parse([]string{"--config", f}, io.Discard)
			if err == nil || !strings.Contains(err.Error(), f) {
				t.Fatalf("err = %v, want one naming %s", err, f)
			}
		})
	}
}

// TestServeHelp checks serve --help: flags written with two dashes as the
// README and the CLI write them, each with its config key and default, and
// the truth about where HTTPS listens by default.
func TestServeHelp(t *testing.T) {
	var out bytes.Buffer
	if _, err := Parse([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(--help) = %v, want flag.ErrHelp", err)
	}
	help := out.String()
	for _, d := range flagDefs {
		if !strings.Contains(help, "\n  --"+d.name) {
			t.Errorf("help lacks --%s", d.name)
		}
		if !strings.Contains(help, "(config key "+d.key) {
			t.Errorf("help lacks the config key %s", d.key)
		}
	}
	for _, line := range strings.Split(help, "\n") {
		if strings.HasPrefix(line, "  -") && !strings.HasPrefix(line, "  --") {
			t.Errorf("single-dash flag in help: %q", line)
		}
	}
	for _, want := range []string{
		"(config key ssh_addr; default :2222)",
		"(config key api_addr; default :8443)",
		"the default listens on every interface",
		`or "" to turn HTTPS off`,
		"(config key shutdown_timeout; default 30s)",
		"(config key log_level; default info)",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
}
