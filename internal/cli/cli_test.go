package cli_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/cli"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/report"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/rotate"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
)

// gateway is a real API on a unix socket in a short temporary directory
// (a socket path must stay under 108 bytes; t.TempDir is too long).
type gateway struct {
	dataDir string
	st      *sqlite.Store
	ca      *vault.CA
	// secrets collects what must never appear in any output.
	secrets []string
}

func startGateway(t *testing.T) *gateway {
	t.Helper()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	st, err := sqlite.Open(ctx, filepath.Join(dir, "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := v.LoadOrCreateCA(filepath.Join(dir, "user_ca"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	auditLog := audit.New(st, log)
	mfaSvc, err := mfa.New(mfa.Config{Store: st, Vault: v, Audit: auditLog, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	rot, err := rotate.New(rotate.Config{Inventory: inv, Vault: v, HostKeys: st, Audit: auditLog, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	_, auditPriv, _ := ed25519.GenerateKey(rand.Reader)
	auditKey, err := audit.NewKey(auditPriv)
	if err != nil {
		t.Fatal(err)
	}
	src := &report.Source{Store: st, Resources: func(ctx context.Context) ([]resource.Object, error) { return inv.List(ctx, "") }}
	gen := &report.Generator{Source: src, Signer: auditKey, Version: "test", Audit: auditLog.Write}
	reviews := &report.Reviews{Source: src, Inventory: inv, Audit: auditLog.Write}
	h := api.WithLocalAdmin(api.New(api.Config{Inventory: inv, Store: st, CA: ca, Audit: auditLog, Log: log, MFA: mfaSvc, Rotator: rot,
		Checkpoints: audit.NewCheckpointer(audit.CheckpointConfig{Store: st, Key: auditKey, Audit: auditLog, Log: log}),
		Reports:     gen, Reviews: reviews,
		Schedules: &report.Scheduler{Generator: gen, Reviews: reviews, Store: st, Audit: auditLog.Write, Log: log}}))
	ln, err := net.Listen("unix", filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
		st.Close()
	})
	return &gateway{dataDir: dir, st: st, ca: ca}
}

// result is one CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the CLI against g with stdin and args, checking that no secret
// leaks into its output.
func (g *gateway) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return g.runIn(t, strings.NewReader(stdin), args...)
}

// runIn is run with any stdin: a terminal, a pipe, /dev/null.
func (g *gateway) runIn(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), append([]string{"--data-dir", g.dataDir}, args...), stdin, &out, &errOut)
	r := result{code: code, stdout: out.String(), stderr: errOut.String()}
	for _, s := range append(g.secrets, "PRIVATE KEY") {
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			t.Errorf("portcullis %s printed a secret", strings.Join(args, " "))
		}
	}
	return r
}

func (r result) want(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func userKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

// writeStream writes a quickstart stream into a fresh directory, with an
// imported account key beside it, and returns the YAML path and the
// imported key's public line.
func (g *gateway) writeStream(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(block)
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "deploy"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// The base64 body of the key must never be printed.
	g.secrets = append(g.secrets, strings.Split(string(keyPEM), "\n")[2])
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`kind: User
name: alice
email: alice@example.com
roles: [admin]
ssh_keys: [%q]
---
kind: Target
name: web1
address: 127.0.0.1:22
labels: {env: prod, role: web}
---
kind: Account
target: web1
name: svc-stats
---
kind: Account
target: web1
name: deploy
private_key_file: keys/deploy
---
kind: Policy
name: web-access
type: target-access
subjects: {users: [alice, bob], groups: [ops]}
targets: {names: [web1]}
target_users: [svc-stats, deploy]
actions: [shell, exec]
`, userKey(t))
	path := filepath.Join(dir, "stream.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

func TestCLI(t *testing.T) {
	g := startGateway(t)
	file, deployPub := g.writeStream(t)

	g.run(t, "", "apply", "-f", file).want(t, 0,
		[]string{"User/alice created\nTarget/web1 created\nAccount/web1/svc-stats created\nAccount/web1/deploy created\nPolicy/web-access created\n"},
		[]string{`warning: ` + file + `: document 5 (Policy web-access): field subjects.users[1]: user "bob" does not exist (yet)`})

	t.Run("get", func(t *testing.T) {
		tests := []struct {
			name   string
			args   []string
			code   int
			stdout []string
			stderr []string
		}{
			{"table", []string{"get", "users"}, 0, []string{"NAME", "EMAIL", "alice", "alice@example.com", "admin"}, nil},
			{"target table", []string{"get", "Target"}, 0, []string{"ADDRESS", "AUTH", "LABELS", "127.0.0.1:22", "key", "env=prod,role=web"}, nil},
			{"account table", []string{"get", "accounts"}, 0, []string{"PUBLIC-KEY-FINGERPRINT", "web1/deploy", "web1/svc-stats", "SHA256:"}, nil},
			{"policy table", []string{"get", "policy", "web-access"}, 0, []string{"SUBJECTS", "alice,bob,group:ops", "shell,exec"}, nil},
			{"flags after args", []string{"get", "targets", "-o", "yaml"}, 0, []string{"kind: Target", "address: 127.0.0.1:22"}, nil},
			{"flags before args", []string{"get", "-o", "json", "targets"}, 0, []string{`"address": "127.0.0.1:22"`}, nil},
			{"all kinds", []string{"get", "all"}, 0, []string{"# User", "# Policy", "web-access"}, nil},
			{"empty kind", []string{"get", "groups"}, 0, nil, []string{"No groups found."}},
			{"missing name", []string{"get", "user", "nobody"}, 1, nil, []string{`User "nobody" not found`}},
			{"unknown kind", []string{"get", "widgets"}, 2, nil, []string{`unknown kind "widgets"`, "--help"}},
			{"bad output", []string{"get", "users", "-o", "xml"}, 2, nil, []string{`unknown output format "xml"`}},
			{"bad flag", []string{"get", "users", "--colour"}, 2, nil, []string{"flag provided but not defined: -colour"}},
			{"no kind", []string{"get"}, 2, nil, []string{"KIND is required"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				g.run(t, "", tc.args...).want(t, tc.code, tc.stdout, tc.stderr)
			})
		}
	})

	t.Run("json is always an array", func(t *testing.T) {
		for _, args := range [][]string{{"get", "account", "web1/deploy", "--json"}, {"get", "accounts", "-o", "json"}} {
			r := g.run(t, "", args...)
			r.want(t, 0, nil, nil)
			var objs []map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &objs); err != nil {
				t.Fatalf("%v: not a JSON array: %v\n%s", args, err, r.stdout)
			}
			found := false
			for _, o := range objs {
				if o["name"] == "deploy" {
					found = true
					if o["public_key"] != deployPub {
						t.Errorf("deploy public_key %v, want the imported key's %s", o["public_key"], deployPub)
					}
				}
				if _, ok := o["private_key"]; ok {
					t.Errorf("private_key in output: %v", o)
				}
			}
			if !found {
				t.Errorf("%v: no deploy account in %s", args, r.stdout)
			}
		}
	})

	t.Run("yaml round trip", func(t *testing.T) {
		before := g.run(t, "", "get", "all", "-o", "yaml")
		before.want(t, 0, []string{"kind: Account", "public_key: ssh-ed25519 "}, nil)
		if strings.Contains(before.stdout, "private_key") {
			t.Errorf("YAML export holds private_key:\n%s", before.stdout)
		}
		re := g.run(t, before.stdout, "apply", "-f", "-")
		re.want(t, 0, []string{"User/alice unchanged", "Account/web1/deploy unchanged"}, nil)
		if strings.Contains(re.stdout, "created") {
			t.Errorf("re-applying the export created something:\n%s", re.stdout)
		}
		after := g.run(t, "", "get", "all", "-o", "yaml")
		if after.stdout != before.stdout {
			t.Errorf("store changed by re-applying its export:\nbefore:\n%s\nafter:\n%s", before.stdout, after.stdout)
		}
	})

	t.Run("account pubkey", func(t *testing.T) {
		g.run(t, "", "account", "pubkey", "web1/deploy").want(t, 0, []string{deployPub + "\n"}, nil)
		r := g.run(t, "", "account", "pubkey", "web1/svc-stats")
		r.want(t, 0, []string{"ssh-ed25519 "}, nil)
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.stdout)); err != nil {
			t.Errorf("not an authorized_keys line: %q: %v", r.stdout, err)
		}
		g.run(t, "", "account", "pubkey", "web1/nobody").want(t, 1, nil, []string{"not found"})
		g.run(t, "", "account", "pubkey", "web1").want(t, 2, nil, []string{"not TARGET/NAME"})
		// Rotation against a real target is tested in package rotate.
		g.run(t, "", "account", "rotate", "--yes", "web1/nobody").want(t, 1, nil, []string{"does not exist"})
		g.run(t, "", "account", "rotate", "web1").want(t, 2, nil, []string{"not TARGET/NAME"})
	})

	t.Run("ca pubkey", func(t *testing.T) {
		want := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(g.ca.PublicKey())))
		g.run(t, "", "ca", "pubkey").want(t, 0, []string{want + "\n"}, nil)
	})

	t.Run("apply errors", func(t *testing.T) {
		dir := t.TempDir()
		bad := filepath.Join(dir, "bad.yaml")
		writeFile(t, bad, []byte("kind: User\nname: bob\n---\nkind: User\nname: carol\nemial: c@example.com\n"))
		missingKey := filepath.Join(dir, "key.yaml")
		writeFile(t, missingKey, []byte("kind: Account\ntarget: web1\nname: ops\nprivate_key_file: nowhere\n"))
		notKey := filepath.Join(dir, "notkey.yaml")
		writeFile(t, filepath.Join(dir, "pub"), []byte(deployPub))
		writeFile(t, notKey, []byte("kind: Account\ntarget: web1\nname: ops\nprivate_key_file: pub\n"))
		dangling := filepath.Join(dir, "dangling.yaml")
		writeFile(t, dangling, []byte("kind: Account\ntarget: nowhere\nname: ops\n"))
		empty := filepath.Join(dir, "empty.yaml")
		writeFile(t, empty, []byte("---\n"))

		tests := []struct {
			name   string
			args   []string
			stderr []string
		}{
			{"bad YAML", []string{"apply", "-f", bad}, []string{bad + ": document 2 (User carol)", "emial"}},
			{"missing key file", []string{"apply", "-f", missingKey}, []string{"document 1 (Account web1/ops): field private_key_file", filepath.Join(dir, "nowhere")}},
			{"not a private key", []string{"apply", "-f", notKey}, []string{"document 1 (Account web1/ops): field private_key_file"}},
			{"server-side error names file", []string{"apply", "-f", dangling}, []string{dangling + ": document 1 (Account nowhere/ops)", "does not exist"}},
			{"empty stream", []string{"apply", "-f", empty}, []string{"no resources found"}},
			{"missing file", []string{"apply", "-f", filepath.Join(dir, "none.yaml")}, []string{"no such file"}},
			{"no -f", []string{"apply"}, []string{"-f FILE is required"}},
			{"stray argument", []string{"apply", bad}, []string{"unexpected argument"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				g.run(t, "", tc.args...).want(t, 2, nil, tc.stderr)
			})
		}
		g.run(t, "", "get", "users", "bob").want(t, 1, nil, nil) // nothing stored
	})

	t.Run("delete", func(t *testing.T) {
		g.run(t, "", "delete", "-y", "target", "web1").want(t, 1, nil, []string{"still referred to by", "Account/web1/deploy"})
		g.run(t, "", "delete", "user", "nobody", "--yes").want(t, 1, nil, []string{`User "nobody" not found`})
		g.run(t, "", "delete", "widget", "x").want(t, 2, nil, []string{"unknown kind"})
		g.run(t, "", "delete", "user").want(t, 2, nil, []string{"want KIND NAME"})
		g.run(t, "", "delete", "account", "web1").want(t, 2, nil, []string{"an Account is named TARGET/NAME (for example web1/web1)"})
		g.run(t, "", "delete", "account", "deploy", "--yes").want(t, 2, nil, []string{"TARGET/NAME", `not "deploy"`})
		g.run(t, "", "delete", "account", "web1/deploy", "--yes").want(t, 0, []string{"Account/web1/deploy deleted\n"}, nil)
		g.run(t, "", "get", "account", "web1/deploy").want(t, 1, nil, []string{"not found"})
	})

	t.Run("audit ls", func(t *testing.T) {
		r := g.run(t, "", "audit", "ls", "--json")
		r.want(t, 0, nil, nil)
		var evs []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &evs); err != nil {
			t.Fatalf("not a JSON array: %v\n%s", err, r.stdout)
		}
		if len(evs) < 3 {
			t.Fatalf("want at least 2 applies and a delete, got %s", r.stdout)
		}
		// Newest first: the delete comes before the first apply.
		if first := evs[len(evs)-1]; first["id"] != float64(1) || first["type"] != "resource.apply" || first["user"] != api.LocalAdmin {
			t.Errorf("oldest event: %v", first)
		}
		if evs[0]["type"] != "resource.delete" {
			t.Errorf("newest event: %v", evs[0])
		}
		g.run(t, "", "audit", "ls", "--since", "1h", "--type", "resource.").want(t, 0,
			[]string{"TIME", "OUTCOME", "MESSAGE", "resource.apply", "local-admin", "5 created", "resource.delete", "deleted Account/web1/deploy"}, nil)
		g.run(t, "", "audit", "ls", "--type", "resource.delete", "--json").want(t, 0, []string{`"type": "resource.delete"`}, nil)
		g.run(t, "", "audit", "ls", "--since", "2200-01-01").want(t, 0, nil, []string{"No events found."})
		g.run(t, "", "audit", "ls", "--since", "2999-01-01").want(t, 2, nil, []string{"out of range"})
		n := len(evs)
		g.run(t, "", "audit", "ls", "--limit", "1").want(t, 0, []string{"resource.delete"}, []string{fmt.Sprintf("more exist: see older ones with --before %d", n)})
		g.run(t, "", "audit", "ls", "--limit", "1", "--before", "2").want(t, 0, []string{"5 created"}, nil)
		if r := g.run(t, "", "audit", "ls", "--limit", "1", "--before", "2"); strings.Contains(r.stderr, "more exist") {
			t.Errorf("the oldest page says more exist: %s", r.stderr)
		}
		g.run(t, "", "audit", "ls", "--limit", "1", "--after", "0").want(t, 0, []string{"5 created"}, []string{"more exist: see newer ones with --after 1"})
		if r := g.run(t, "", "audit", "ls", "--limit", "1", "--json"); !strings.HasPrefix(r.stdout, "[") || !strings.Contains(r.stderr, "--before") {
			t.Errorf("--json page: stdout %q, stderr %q", r.stdout, r.stderr)
		}
		g.run(t, "", "audit", "ls", "--before", "0").want(t, 2, nil, []string{"--before"})
		g.run(t, "", "audit", "ls", "--since", "yesterday").want(t, 2, nil, []string{"--since", "duration back from now"})
		g.run(t, "", "audit", "ls", "--limit", "100000").want(t, 2, nil, []string{"limit"})
	})
}

func TestCLIUnreachable(t *testing.T) {
	dir, err := os.MkdirTemp("", "pc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), []string{"get", "users", "--data-dir", dir}, nil, &out, &errOut)
	want := fmt.Sprintf("cannot reach the gateway at %s: is `portcullis serve` running? (--data-dir / PORTCULLIS_DATA_DIR)", filepath.Join(dir, "admin.sock"))
	if code != 3 || !strings.Contains(errOut.String(), want) {
		t.Errorf("exit %d, stderr %q; want 3 and %q", code, errOut.String(), want)
	}

	long := "/tmp/" + strings.Repeat("d", 120)
	code = cli.Run(context.Background(), []string{"--data-dir", long, "get", "users"}, nil, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "at most 107") {
		t.Errorf("long socket path: exit %d, stderr %q", code, errOut.String())
	}
}

// TestCLIEnvDataDir checks that $PORTCULLIS_DATA_DIR finds the socket and
// that --socket overrides it.
func TestCLIEnvDataDir(t *testing.T) {
	g := startGateway(t)
	t.Setenv("PORTCULLIS_DATA_DIR", g.dataDir)
	var out, errOut bytes.Buffer
	if code := cli.Run(context.Background(), []string{"ca", "pubkey"}, nil, &out, &errOut); code != 0 {
		t.Errorf("with $PORTCULLIS_DATA_DIR: exit %d: %s", code, errOut.String())
	}
	errOut.Reset()
	code := cli.Run(context.Background(), []string{"ca", "pubkey", "--socket", filepath.Join(g.dataDir, "other.sock")}, nil, &out, &errOut)
	if code != 3 || !strings.Contains(errOut.String(), "other.sock") {
		t.Errorf("--socket not used: exit %d: %s", code, errOut.String())
	}
}

// TestCLIServerFailure checks that a 5xx is a failure (3), not an answer.
func TestCLIServerFailure(t *testing.T) {
	dir, err := os.MkdirTemp("", "pc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(500)
		w.Write([]byte(`{"error":{"code":"internal","message":"internal error (request id 42)"}}`))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), []string{"--data-dir", dir, "get", "users"}, nil, &out, &errOut)
	if code != 3 || !strings.Contains(errOut.String(), "request id 42") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestCLIHelp(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"help"}, 0, "Usage: portcullis COMMAND", ""},
		{[]string{"--help"}, 0, "serve ", ""},
		{[]string{"-h"}, 0, "Exit codes", ""},
		{[]string{}, 2, "", "Usage: portcullis COMMAND"},
		{[]string{"help", "get"}, 0, "Usage: portcullis get KIND", ""},
		{[]string{"help", "--help"}, 0, "Usage: portcullis COMMAND", ""},
		{[]string{"help", "nothing"}, 2, "", `unknown command "nothing"`},
		{[]string{"help", "audit", "ls"}, 0, "--since TIME", ""},
		{[]string{"help", "serve"}, 0, "portcullis serve --help", ""},
		{[]string{"get", "--help"}, 0, "-o, --output FORMAT", ""},
		{[]string{"apply", "-h"}, 0, "private_key_file", ""},
		{[]string{"delete", "--help"}, 0, "Usage: portcullis delete KIND NAME", ""},
		{[]string{"account", "pubkey", "--help"}, 0, "authorized_keys", ""},
		{[]string{"account", "--help"}, 0, "Usage: portcullis account pubkey", ""},
		{[]string{"ca", "pubkey", "-h"}, 0, "TrustedUserCAKeys", ""},
		{[]string{"audit", "ls", "-h"}, 0, "7d", ""},
		{[]string{"audit"}, 2, "", "Usage: portcullis audit ls"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"--data-dir", "x", "serve"}, 2, "", "portcullis serve --data-dir DIR"},
		{[]string{"--nope"}, 2, "", "flag provided but not defined"},
		{[]string{"version"}, 0, "portcullis devel (commit ", ""},
		{[]string{"--version"}, 0, "portcullis devel (commit ", ""},
		{[]string{"version", "--json"}, 0, `"commit":`, ""},
		{[]string{"help"}, 0, "version ", ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := cli.Run(context.Background(), tc.args, nil, &out, &errOut)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tc.code, errOut.String())
			}
			if !strings.Contains(out.String(), tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, out.String())
			}
			if !strings.Contains(errOut.String(), tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, errOut.String())
			}
		})
	}
}
