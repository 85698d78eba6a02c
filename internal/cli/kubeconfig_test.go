package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestKubeconfig(t *testing.T) {
	gw := httptest.NewTLSServer(nil)
	defer gw.Close()
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		e := &env{ctx: context.Background(), stdout: &out, stderr: &errOut, cmd: "kubeconfig"}
		err := runKubeconfig(e, args)
		return out.String(), errOut.String(), err
	}
	out, stderr, err := run("--target", "k1", "--server", gw.URL, "--key", "pck_abc")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
				CA     string `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Token string `json:"token"`
			} `json:"user"`
		} `json:"users"`
		Current string `json:"current-context"`
	}
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, out)
	}
	ca, _ := base64.StdEncoding.DecodeString(cfg.Clusters[0].Cluster.CA)
	if cfg.Clusters[0].Cluster.Server != gw.URL+"/k8s/k1" || cfg.Users[0].User.Token != "pck_abc" || cfg.Current != "portcullis-k1" ||
		!strings.Contains(string(ca), "BEGIN CERTIFICATE") {
		t.Fatalf("kubeconfig %+v", cfg)
	}
	if !strings.Contains(stderr, "SHA-256") {
		t.Fatalf("stderr %q", stderr)
	}
	// -o writes a private file.
	p := filepath.Join(t.TempDir(), "kc")
	if _, _, err := run("--target", "k1", "--server", gw.URL, "--key", "pck_abc", "-o", p); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("output file %v %v", st, err)
	}
	t.Setenv("PORTCULLIS_API_KEY", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--server", gw.URL, "--key", "k"}, "--target is required"},
		{[]string{"--target", "../x", "--server", gw.URL, "--key", "k"}, "is not a resource name"},
		{[]string{"--target", "k1", "--key", "k"}, "--server is required"},
		{[]string{"--target", "k1", "--server", "http://gw", "--key", "k"}, "TLS only"},
		{[]string{"--target", "k1", "--server", "https://gw/x", "--key", "k"}, "want https://HOST[:PORT]"},
		{[]string{"--target", "k1", "--server", gw.URL}, "--key (or $PORTCULLIS_API_KEY) is required"},
		{[]string{"--target", "k1", "--server", gw.URL, "--key", "a\nb"}, "characters no API key has"},
		{[]string{"--target", "k1", "--server", gw.URL, "--key", "k", "--ca-file", "/nonexistent"}, "--ca-file"},
		{[]string{"--target", "k1", "--server", gw.URL, "--key", "k", "extra"}, `unexpected argument "extra"`},
	} {
		_, _, err := run(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestKubeconfigExecAndHostRouting checks the kubeconfig of --exec (no
// secret in it: the plugin, its arguments, interactive mode and the
// cluster info it needs for the CA) and of --host-routing (the server is
// TARGET.HOST:PORT, and a certificate that does not cover it is refused
// before kubectl meets it).
func TestKubeconfigExecAndHostRouting(t *testing.T) {
	gw := httptest.NewTLSServer(nil)
	defer gw.Close()
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		e := &env{ctx: context.Background(), stdout: &out, stderr: &errOut, cmd: "kubeconfig"}
		err := runKubeconfig(e, args)
		return out.String(), err
	}
	t.Setenv("PORTCULLIS_API_KEY", "pck_from_env")
	out, err := run("--target", "k1", "--server", gw.URL, "--exec", "--user", "alice", "--exec-command", "/opt/bin/portcullis")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Token string `json:"token"`
				Exec  struct {
					APIVersion         string   `json:"apiVersion"`
					Command            string   `json:"command"`
					Args               []string `json:"args"`
					InteractiveMode    string   `json:"interactiveMode"`
					ProvideClusterInfo bool     `json:"provideClusterInfo"`
				} `json:"exec"`
			} `json:"user"`
		} `json:"users"`
	}
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, out)
	}
	x := cfg.Users[0].User.Exec
	want := []string{"kube-credential", "--gateway", gw.URL, "--target", "k1", "--user", "alice"}
	if cfg.Users[0].User.Token != "" || strings.Contains(out, "pck_") || x.APIVersion != "client.authentication.k8s.io/v1" ||
		x.Command != "/opt/bin/portcullis" || strings.Join(x.Args, " ") != strings.Join(want, " ") ||
		x.InteractiveMode != "IfAvailable" || !x.ProvideClusterInfo || cfg.Clusters[0].Cluster.Server != gw.URL+"/k8s/k1" {
		t.Fatalf("exec kubeconfig:\n%s", out)
	}

	// httptest's certificate covers example.com and *.example.com.
	port := gw.URL[strings.LastIndex(gw.URL, ":")+1:]
	_, err = run("--target", "k1", "--server", "https://127.0.0.1:"+port, "--host-routing", "--key", "k")
	if err == nil || !strings.Contains(err.Error(), "must name the gateway's http_host") {
		t.Fatalf("--host-routing with an address: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--target", "k1", "--server", gw.URL, "--exec", "--key", "k"}, "exclude each other"},
		{[]string{"--target", "k1", "--server", gw.URL, "--key", "k", "--user", "alice"}, "go with --exec"},
		{[]string{"--target", "k1", "--server", gw.URL, "--exec", "--user", "a\nb"}, "not a user name"},
	} {
		if _, err := run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestKubeCredentialFlags checks what kube-credential refuses before it
// asks for anything or sends anything.
func TestKubeCredentialFlags(t *testing.T) {
	t.Setenv("PORTCULLIS_GATEWAY", "")
	t.Setenv("PORTCULLIS_PASSWORD_FILE", "")
	run := func(args ...string) error {
		var out, errOut bytes.Buffer
		e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, cmd: "kube-credential"}
		return runKubeCredential(e, args)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--target", "k1"}, "--gateway is required"},
		{[]string{"--gateway", "http://gw:8443", "--target", "k1"}, "TLS only"},
		{[]string{"--gateway", "https://gw:8443/x", "--target", "k1"}, "want https://HOST[:PORT]"},
		{[]string{"--gateway", "https://gw:8443"}, "a kubernetes target name is required"},
		{[]string{"--gateway", "https://gw:8443", "--target", "k1", "--ttl", "13h"}, "between 5m and 12h"},
		{[]string{"--gateway", "https://gw:8443", "--target", "k1", "--ttl", "1m"}, "between 5m and 12h"},
		// No terminal, no password file: nothing is sent.
		{[]string{"--gateway", "https://gw.invalid:8443", "--target", "k1", "--user", "alice"}, "stdin is not a terminal"},
		{[]string{"--gateway", "https://gw.invalid:8443", "--target", "k1"}, "give --user"},
	} {
		if err := run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
