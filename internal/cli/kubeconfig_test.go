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
