package config

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSSHPreAuthAndEnvKeys: the pre-authentication and env keys have
// documented defaults, take flags and file keys, and refuse bad values
// naming the key.
func TestSSHPreAuthAndEnvKeys(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--data-dir", dir}
	cfg, err := Parse(base, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if start, rate, full, _ := cfg.MaxStartups(); start != 10 || rate != 30 || full != 100 ||
		cfg.SSHMaxStartupsPerSource != 10 || time.Duration(cfg.AuthStartTimeout) != 10*time.Second ||
		!slices.Equal(cfg.SSHAcceptEnv, []string{"LANG", "LC_*", "TERM", "TZ", "COLORTERM"}) {
		t.Fatalf("defaults: %+v", cfg)
	}
	cfg, err = Parse(append(base, "--ssh-max-startups", "5:50:20", "--ssh-max-startups-per-source", "3",
		"--auth-start-timeout", "3s", "--ssh-accept-env", "LANG, GIT_*"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if start, rate, full, _ := cfg.MaxStartups(); start != 5 || rate != 50 || full != 20 || cfg.SSHMaxStartupsPerSource != 3 ||
		time.Duration(cfg.AuthStartTimeout) != 3*time.Second || !slices.Equal(cfg.SSHAcceptEnv, []string{"LANG", "GIT_*"}) {
		t.Fatalf("flags: %+v", cfg)
	}
	if cfg, err = Parse(append(base, "--ssh-accept-env", ""), io.Discard); err != nil || cfg.SSHAcceptEnv == nil || len(cfg.SSHAcceptEnv) != 0 {
		t.Fatalf("empty --ssh-accept-env: %v %#v, want none passed", err, cfg.SSHAcceptEnv)
	}
	f := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(f, []byte("ssh_max_startups: \"50\"\nssh_accept_env: [TERM]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = Parse(append(base, "--config", f), io.Discard); err != nil {
		t.Fatal(err)
	}
	if start, rate, full, _ := cfg.MaxStartups(); start != 50 || rate != 100 || full != 50 || !slices.Equal(cfg.SSHAcceptEnv, []string{"TERM"}) {
		t.Fatalf("file: %+v", cfg)
	}
	for _, tt := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--ssh-max-startups", "10:30"}, "ssh_max_startups"},
		{[]string{"--ssh-max-startups", "30:30:10"}, "ssh_max_startups"},
		{[]string{"--ssh-max-startups", "10:0:100"}, "ssh_max_startups"},
		{[]string{"--ssh-max-startups", "10:101:100"}, "ssh_max_startups"},
		{[]string{"--ssh-max-startups", "0"}, "ssh_max_startups"},
		{[]string{"--ssh-max-startups-per-source", "0"}, "ssh_max_startups_per_source"},
		{[]string{"--ssh-max-startups-per-source", "x"}, "--ssh-max-startups-per-source"},
		{[]string{"--auth-start-timeout", "0s"}, "auth_start_timeout"},
		{[]string{"--ssh-accept-env", "LD PRELOAD"}, "ssh_accept_env"},
		{[]string{"--ssh-accept-env", "LC_[A-Z]*"}, "ssh_accept_env"},
	} {
		if _, err := Parse(append(base, tt.flags...), io.Discard); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want an error naming %s", tt.flags, err, tt.want)
		}
	}
}
