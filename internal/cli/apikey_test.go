package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// noGateway is a data directory with no gateway behind it: a command that
// sent a request would fail to reach it (exit 3), so exit 2 proves that
// the input was refused before anything was sent.
func noGateway(t *testing.T) *gateway {
	t.Helper()
	dir, err := os.MkdirTemp("", "pc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return &gateway{dataDir: dir}
}

// applyUsers stores users alice (admin) and bob (no role) in g.
func applyUsers(t *testing.T, g *gateway) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.yaml")
	writeFile(t, path, []byte("kind: User\nname: alice\nroles: [admin]\n---\nkind: User\nname: bob\n"))
	g.run(t, "", "apply", "-f", path).want(t, 0, []string{"User/alice created", "User/bob created"}, nil)
}

func TestAPIKeyCreateFlags(t *testing.T) {
	g := noGateway(t)
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no name", []string{"--kind", "access"}, "--name is required"},
		{"spaces in name", []string{"--name", " ci", "--kind", "access"}, "--name"},
		{"no kind", []string{"--name", "ci"}, "--kind is required"},
		{"bad kind", []string{"--name", "ci", "--kind", "admin"}, `--kind "admin": want access or registration`},
		{"bad duration", []string{"--name", "ci", "--kind", "access", "--expires", "a month"}, `--expires "a month"`},
		{"zero duration", []string{"--name", "ci", "--kind", "access", "--expires", "0s"}, `--expires "0s": want a positive duration`},
		{"negative duration", []string{"--name", "ci", "--kind", "access", "--expires", "-1h"}, `--expires "-1h"`},
		{"bad cidr", []string{"--name", "ci", "--kind", "access", "--source-cidrs", "10.0.0.0/8,10.0.0.300/32"}, `--source-cidrs: "10.0.0.300/32" is not a CIDR`},
		{"bare address", []string{"--name", "ci", "--kind", "access", "--source-cidrs", "10.1.2.3"}, `--source-cidrs: "10.1.2.3" is not a CIDR`},
		{"host bits", []string{"--name", "ci", "--kind", "access", "--source-cidrs", "10.1.2.3/8"}, `--source-cidrs: "10.1.2.3/8" has host bits set: write 10.0.0.0/8 for the network, or 10.1.2.3/32 for the host`},
		{"bad cidr in second flag", []string{"--name", "ci", "--kind", "access", "--source-cidrs", "10.0.0.0/8", "--source-cidrs", "fe80::/129"}, `--source-cidrs: "fe80::/129" is not a CIDR`},
		{"positional", []string{"ci", "--kind", "access"}, `unexpected argument "ci"`},
		{"unknown flag", []string{"--name", "ci", "--kind", "access", "--ttl", "1h"}, "flag provided but not defined: -ttl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g.run(t, "", append([]string{"apikey", "create"}, tc.args...)...).
				want(t, 2, nil, []string{"portcullis apikey create: " + tc.stderr, "--help"})
		})
	}
}

func TestAPIKeyOtherFlags(t *testing.T) {
	g := noGateway(t)
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"apikey", "ls", "extra"}, `unexpected argument "extra"`},
		{[]string{"apikey", "revoke"}, "API key ID is required"},
		{[]string{"apikey", "revoke", "a", "b"}, `unexpected argument "b"`},
		{[]string{"apikey", "rotate"}, `unknown command "rotate"`},
	}
	for _, tc := range tests {
		g.run(t, "", tc.args...).want(t, 2, nil, []string{tc.stderr})
	}
	g.run(t, "", "apikey", "--help").want(t, 0, []string{"portcullis apikey create", "keeps only a hash", "X-API-KEY"}, nil)
	g.run(t, "", "help", "apikey", "ls").want(t, 0, []string{"never their secrets"}, nil)
}

func TestAPIKeys(t *testing.T) {
	g := startGateway(t)
	applyUsers(t, g)

	// create --json: the answer parses, holds the id and the key, and the
	// fields the key was asked with.
	r := g.run(t, "", "apikey", "create", "--name", "ci", "--kind", "access", "--owner", "alice",
		"--expires", "30d", "--source-cidrs", "10.0.0.0/8,2001:db8::/32", "--json")
	r.want(t, 0, nil, nil)
	var created map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil {
		t.Fatalf("apikey create --json: not a JSON object: %v\n%s", err, r.stdout)
	}
	id, _ := created["id"].(string)
	key, _ := created["key"].(string)
	if id == "" || key == "" {
		t.Fatalf("apikey create --json: no id or key: %s", r.stdout)
	}
	if created["name"] != "ci" || created["kind"] != "access" || created["owner"] != "alice" {
		t.Errorf("apikey create --json: name, kind, owner = %v, %v, %v", created["name"], created["kind"], created["owner"])
	}
	if exp, _ := created["expires_at"].(string); exp == "" {
		t.Errorf("apikey create --json: no expires_at: %s", r.stdout)
	} else if at, err := time.Parse(time.RFC3339Nano, exp); err != nil || at.Before(time.Now().Add(29*24*time.Hour)) {
		t.Errorf("apikey create --json: expires_at %s, want about 30 days from now (%v)", exp, err)
	}
	// From here on g.run fails any command that prints the key.
	g.secrets = append(g.secrets, key)

	// Without --json: the id, the key once, and the warning.
	r = g.run(t, "", "apikey", "create", "--name", "register", "--kind", "registration")
	r.want(t, 0, []string{"Created registration key register", "id:  ", "key: ", "will not be shown again", "X-API-KEY"}, nil)
	for line := range strings.SplitSeq(r.stdout, "\n") {
		if k, ok := strings.CutPrefix(line, "key: "); ok {
			g.secrets = append(g.secrets, k)
		}
	}

	t.Run("ls", func(t *testing.T) {
		g.run(t, "", "apikey", "ls").want(t, 0,
			[]string{"ID", "NAME", "KIND", "OWNER", "STATE", "EXPIRES", "SOURCES", "CREATED",
				id, "ci", "access", "alice", "active", "10.0.0.0/8,2001:db8::/32", "register", "registration", "never", "any"}, nil)
		r := g.run(t, "", "apikey", "ls", "--json")
		r.want(t, 0, nil, nil)
		var keys []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &keys); err != nil {
			t.Fatalf("apikey ls --json: not a JSON array: %v\n%s", err, r.stdout)
		}
		if len(keys) != 2 {
			t.Fatalf("apikey ls --json: %d keys, want 2", len(keys))
		}
		for _, k := range keys {
			if _, ok := k["key"]; ok {
				t.Errorf("apikey ls --json has a key field: %v", k)
			}
			if k["id"] == "" || k["state"] != "active" {
				t.Errorf("apikey ls --json: id %v state %v", k["id"], k["state"])
			}
		}
	})

	t.Run("revoke", func(t *testing.T) {
		g.run(t, "", "apikey", "revoke", id).want(t, 0, []string{"API key " + id + " (ci) revoked"}, nil)
		g.run(t, "", "apikey", "ls").want(t, 0, []string{"revoked"}, nil)
		g.run(t, "", "apikey", "revoke", "0123456789abcdef").want(t, 1, nil, []string{"no API key"})
		g.run(t, "", "apikey", "revoke", "no-such-key").want(t, 1, nil, []string{"no API key"})
	})

	t.Run("refused by the gateway", func(t *testing.T) {
		g.run(t, "", "apikey", "create", "--name", "x", "--kind", "access", "--owner", "nobody").want(t, 2, nil, []string{`no user "nobody"`})
		g.run(t, "", "apikey", "create", "--name", "x", "--kind", "access").want(t, 2, nil, []string{"field owner: required"})
	})
}
