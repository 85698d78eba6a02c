package inventory

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
)

// gateway is one Inventory over a real SQLite store, as the server builds
// it.
type gateway struct {
	inv   *Inventory
	store *sqlite.Store
	vault *vault.Vault
	path  string
}

func newVault(t *testing.T) *vault.Vault {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newGateway opens (or, with a path from another gateway, shares) a store
// and loads an Inventory from it.
func newGateway(t *testing.T, path string, v *vault.Vault) *gateway {
	t.Helper()
	ctx := context.Background()
	if path == "" {
		path = filepath.Join(t.TempDir(), "db")
	}
	if v == nil {
		v = newVault(t)
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	inv, err := New(ctx, st, v, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("inventory.New: %v", err)
	}
	return &gateway{inv: inv, store: st, vault: v, path: path}
}

type sshKey struct {
	signer ssh.Signer
	line   string // authorized_keys format
	pem    string // OpenSSH private key
}

func newKey(t *testing.T) sshKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return sshKey{
		signer: signer,
		line:   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))),
		pem:    string(pem.EncodeToMemory(block)),
	}
}

func decode(t *testing.T, yaml string) []resource.Object {
	t.Helper()
	objs, err := resource.DecodeYAML([]byte(yaml))
	if err != nil {
		t.Fatalf("DecodeYAML: %v\n%s", err, yaml)
	}
	return objs
}

// siteYAML is a site with every kind: alice (a user in group ops) and stats
// (a service account) may reach web1 (key auth, one account) and db1
// (certificate auth, through environment prod).
func siteYAML(alice, stats sshKey) string {
	return `kind: User
name: alice
email: alice@example.com
ssh_keys: ['` + alice.line + `']
---
kind: ServiceAccount
name: stats
owner: alice
ssh_keys: ['` + stats.line + `']
---
kind: Group
name: ops
members: [alice]
---
kind: Target
name: web1
address: 127.0.0.1:2201
labels: {env: prod}
---
kind: Target
name: db1
address: 127.0.0.1:2202
labels: {env: prod}
auth: certificate
---
kind: Environment
name: prod
selector: {env: prod}
---
kind: Account
target: web1
name: svc-stats
---
kind: Operation
name: danger
patterns: ['rm -rf']
---
kind: Policy
name: ops-prod
type: target-access
subjects: {groups: [ops], service_accounts: [stats]}
targets: {environments: [prod]}
target_users: [svc-stats, postgres]
actions: [shell, exec]
commands: {deny: ['@danger']}
`
}

func mustApply(t *testing.T, g *gateway, objs []resource.Object) *ApplyResult {
	t.Helper()
	res, err := g.inv.Apply(context.Background(), objs)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

// storeState is everything Apply may change, to show that a refused apply
// changed nothing.
type storeState struct {
	revision int64
	records  []store.Record
}

func stateOf(t *testing.T, g *gateway) storeState {
	t.Helper()
	ctx := context.Background()
	rev, err := g.store.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := g.store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	return storeState{revision: rev, records: recs}
}

func TestApplyCreatesThenUpdates(t *testing.T) {
	ctx := context.Background()
	g := newGateway(t, "", nil)
	alice, stats := newKey(t), newKey(t)
	site := siteYAML(alice, stats)

	res := mustApply(t, g, decode(t, site))
	wantKeys := []string{"User/alice", "ServiceAccount/stats", "Group/ops", "Target/web1", "Target/db1",
		"Environment/prod", "Account/web1/svc-stats", "Operation/danger", "Policy/ops-prod"}
	if !reflect.DeepEqual(res.Created, wantKeys) || len(res.Updated) != 0 || len(res.Warnings) != 0 {
		t.Fatalf("first apply = %+v, want created %v", res, wantKeys)
	}
	acc, err := g.inv.Get(ctx, resource.KindAccount, "web1/svc-stats")
	if err != nil {
		t.Fatal(err)
	}
	firstPub := acc.(*resource.Account).PublicKey
	if _, err := resource.ParseAuthorizedKey(firstPub); err != nil {
		t.Fatalf("generated account public key %q: %v", firstPub, err)
	}
	sealed1, _, ok := g.inv.Snapshot().AccountKey("web1", "svc-stats")
	if !ok {
		t.Fatal("no sealed key after apply")
	}
	rev1 := g.inv.Snapshot().Revision

	// apply -f is idempotent: the same stream again changes nothing and
	// keeps the generated key, which the admin has installed on web1.
	res = mustApply(t, g, decode(t, site))
	if !reflect.DeepEqual(res.Unchanged, wantKeys) || len(res.Created)+len(res.Updated)+len(res.Changes) != 0 {
		t.Fatalf("second apply = %+v, want unchanged %v", res, wantKeys)
	}
	acc, err = g.inv.Get(ctx, resource.KindAccount, "web1/svc-stats")
	if err != nil {
		t.Fatal(err)
	}
	if got := acc.(*resource.Account).PublicKey; got != firstPub {
		t.Fatalf("re-apply changed the account key: %q, was %q", got, firstPub)
	}
	sealed2, _, _ := g.inv.Snapshot().AccountKey("web1", "svc-stats")
	if !bytes.Equal(sealed1, sealed2) {
		t.Fatal("re-apply changed the sealed account key")
	}
	if g.inv.Snapshot().Revision != rev1 {
		t.Fatalf("an apply that changed nothing moved the revision from %d to %d", rev1, g.inv.Snapshot().Revision)
	}

	// A public_key written on input is ignored: the gateway's key stands.
	other := newKey(t)
	mustApply(t, g, decode(t, "kind: Account\ntarget: web1\nname: svc-stats\npublic_key: '"+other.line+"'\n"))
	if got := g.inv.Snapshot().Account("web1", "svc-stats").PublicKey; got != firstPub {
		t.Fatalf("public_key on input replaced the key: %q", got)
	}

	// The snapshot compiled the policy: group ops reaches web1 through the
	// environment's selector, and the certificate target without accounts.
	eng := g.inv.Snapshot().Engine
	for _, r := range []policy.Request{
		{Kind: policy.SubjectUser, Subject: "alice", Action: "shell", Target: "web1", TargetUser: "svc-stats"},
		{Kind: policy.SubjectUser, Subject: "alice", Action: "shell", Target: "db1", TargetUser: "postgres"},
		{Kind: policy.SubjectServiceAccount, Subject: "stats", Action: "exec", Target: "web1", TargetUser: "svc-stats", Command: "uptime"},
	} {
		if d := eng.Decide(r); !d.Allow {
			t.Errorf("%+v denied: %s", r, d.Reason)
		}
	}
}

func TestApplyUpdateChangesFields(t *testing.T) {
	// An update replaces the spec: a field removed from the document is
	// removed from the store.
	ctx := context.Background()
	g := newGateway(t, "", nil)
	mustApply(t, g, decode(t, "kind: User\nname: bob\nemail: bob@example.com\nroles: [admin]\n"))
	mustApply(t, g, decode(t, "kind: User\nname: bob\n"))
	got, err := g.inv.Get(ctx, resource.KindUser, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if want := (&resource.User{Kind: resource.KindUser, Name: "bob"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("Get = %+v, want %+v", got, want)
	}
}

func TestImportedAccountKey(t *testing.T) {
	ctx := context.Background()
	g := newGateway(t, "", nil)
	imported := newKey(t)
	mustApply(t, g, decode(t, "kind: Target\nname: web1\naddress: h:22\n"))
	acc := &resource.Account{Kind: resource.KindAccount, Target: "web1", Name: "deploy", PrivateKey: imported.pem}
	res := mustApply(t, g, []resource.Object{acc})
	if !reflect.DeepEqual(res.Created, []string{"Account/web1/deploy"}) {
		t.Fatalf("apply = %+v", res)
	}
	if acc.PrivateKey != imported.pem {
		t.Fatal("Apply modified the caller's object")
	}

	// The public key shown is the imported key's.
	got, err := g.inv.Get(ctx, resource.KindAccount, "web1/deploy")
	if err != nil {
		t.Fatal(err)
	}
	if pub := got.(*resource.Account).PublicKey; pub != imported.line {
		t.Fatalf("PublicKey = %q, want %q", pub, imported.line)
	}

	// The private key appears nowhere a client or a database reader can
	// see it: not in Get, not in List, not in the stored spec, not in the
	// stored secret (which is sealed).
	list, err := g.inv.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := g.store.Get(ctx, string(resource.KindAccount), "web1/deploy")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(imported.pem))
	for what, b := range map[string][]byte{
		"Get":    mustJSON(t, got),
		"List":   mustJSON(t, list),
		"spec":   rec.Spec,
		"secret": rec.Secret,
	} {
		if bytes.Contains(b, []byte("PRIVATE KEY")) || bytes.Contains(b, block.Bytes[:40]) || bytes.Contains(b, []byte("private_key")) {
			t.Errorf("%s holds the private key: %s", what, b)
		}
	}
	if a := got.(*resource.Account); a.PrivateKey != "" || a.PrivateKeyFile != "" {
		t.Fatalf("Get returned secrets: %+v", a)
	}

	// The sealed key opens to the imported key.
	checkSigner(t, g, "web1", "deploy", imported.signer.PublicKey())

	// Applying the account again without a key keeps the imported one;
	// importing another replaces it.
	mustApply(t, g, []resource.Object{&resource.Account{Kind: resource.KindAccount, Target: "web1", Name: "deploy"}})
	checkSigner(t, g, "web1", "deploy", imported.signer.PublicKey())
	rotated := newKey(t)
	mustApply(t, g, []resource.Object{&resource.Account{Kind: resource.KindAccount, Target: "web1", Name: "deploy", PrivateKey: rotated.pem}})
	checkSigner(t, g, "web1", "deploy", rotated.signer.PublicKey())
	if pub := g.inv.Snapshot().Account("web1", "deploy").PublicKey; pub != rotated.line {
		t.Fatalf("PublicKey after rotation = %q", pub)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSigner opens the account's sealed key the way the SSH front does and
// compares its public half.
func checkSigner(t *testing.T, g *gateway, target, name string, want ssh.PublicKey) {
	t.Helper()
	sealed, aad, ok := g.inv.Snapshot().AccountKey(target, name)
	if !ok {
		t.Fatalf("AccountKey(%s, %s): none", target, name)
	}
	signer, err := g.vault.Signer(sealed, aad)
	if err != nil {
		t.Fatalf("vault.Signer: %v", err)
	}
	if !bytes.Equal(signer.PublicKey().Marshal(), want.Marshal()) {
		t.Fatalf("signer for %s/%s has key %s, want %s", target, name,
			ssh.FingerprintSHA256(signer.PublicKey()), ssh.FingerprintSHA256(want))
	}
}

func TestAccountKey(t *testing.T) {
	ctx := context.Background()
	g := newGateway(t, "", nil)
	mustApply(t, g, decode(t, siteYAML(newKey(t), newKey(t))))
	got, err := g.inv.Get(ctx, resource.KindAccount, "web1/svc-stats")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := resource.ParseAuthorizedKey(got.(*resource.Account).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	// The generated key opens, and it is the one shown to the admin.
	checkSigner(t, g, "web1", "svc-stats", pub)

	snap := g.inv.Snapshot()
	sealed, aad, ok := snap.AccountKey("web1", "svc-stats")
	if !ok || aad != "account:web1/svc-stats" {
		t.Fatalf("AccountKey = ok %v, aad %q", ok, aad)
	}
	// The key is bound to its account: under another account's name it
	// does not open, so a copied blob grants nothing.
	if _, err := g.vault.Signer(sealed, "account:web1/root"); !errors.Is(err, vault.ErrAuthentication) {
		t.Fatalf("sealed key opened under another account: %v", err)
	}
	if _, _, ok := snap.AccountKey("web1", "root"); ok {
		t.Fatal("AccountKey for a missing account")
	}
	if _, _, ok := snap.AccountKey("db1", "svc-stats"); ok {
		t.Fatal("AccountKey for another target")
	}
	if a := snap.Account("web1", "svc-stats"); a == nil || a.PublicKey != got.(*resource.Account).PublicKey {
		t.Fatalf("Snapshot.Account = %+v", a)
	}
	if a := snap.Account("web1", "nobody"); a != nil {
		t.Fatalf("Snapshot.Account(nobody) = %+v", a)
	}
}

func TestApplyRefused(t *testing.T) {
	alice, stats := newKey(t), newKey(t)
	rsa1024 := func() string {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	}()
	policyDoc := func(extra string) string {
		return "kind: Policy\nname: late\ntype: target-access\nsubjects: {users: [alice]}\ntarget_users: [root]\nactions: [exec]\n" + extra
	}
	tests := []struct {
		name string
		// objs is applied to a gateway already holding the site.
		objs func(t *testing.T) []resource.Object
		want []string // substrings of the error
	}{
		{name: "account on missing target", objs: func(t *testing.T) []resource.Object {
			return decode(t, "kind: User\nname: bob\n---\nkind: Account\ntarget: web9\nname: root\n")
		}, want: []string{"document 2 (Account web9/root)", `field target: target "web9" does not exist`}},
		{name: "policy on missing target", objs: func(t *testing.T) []resource.Object {
			return decode(t, policyDoc("targets: {names: [web1, web9]}\n"))
		}, want: []string{"document 1 (Policy late)", `field targets.names[1]: target "web9" does not exist`}},
		{name: "policy on missing environment", objs: func(t *testing.T) []resource.Object {
			return decode(t, "kind: User\nname: bob\n---\n"+policyDoc("targets: {environments: [staging]}\n"))
		}, want: []string{"document 2 (Policy late)", `field targets.environments[0]: environment "staging" does not exist`}},
		{name: "policy allow missing operation", objs: func(t *testing.T) []resource.Object {
			return decode(t, policyDoc("targets: {names: [web1]}\ncommands: {allow: ['^ls', '@reboot']}\n"))
		}, want: []string{"document 1 (Policy late)", `field commands.allow[1]: operation "reboot" does not exist`}},
		// With both lists wrong, allow is named every time.
		{name: "policy deny missing operation", objs: func(t *testing.T) []resource.Object {
			return decode(t, policyDoc("targets: {names: [web1]}\ncommands: {deny: ['@reboot'], allow: ['@shutdown']}\n"))
		}, want: []string{"document 1 (Policy late)", `field commands.allow[0]: operation "shutdown" does not exist`}},
		{name: "environment on missing target", objs: func(t *testing.T) []resource.Object {
			return decode(t, "kind: Environment\nname: staging\ntargets: [web9]\n")
		}, want: []string{"document 1 (Environment staging)", `field targets[0]: target "web9" does not exist`}},
		// One login string names one identity.
		{name: "service account named like a stored user", objs: func(t *testing.T) []resource.Object {
			return decode(t, "kind: ServiceAccount\nname: alice\n")
		}, want: []string{"document 1 (ServiceAccount alice)", "field name: a User is already called"}},
		{name: "user named like a stored service account", objs: func(t *testing.T) []resource.Object {
			return decode(t, "kind: User\nname: stats\n")
		}, want: []string{"document 1 (User stats)", "field name: a ServiceAccount is already called"}},
		{name: "user and service account in one stream", objs: func(t *testing.T) []resource.Object {
			return decode(t, "kind: User\nname: cron\n---\nkind: ServiceAccount\nname: cron\n")
		}, want: []string{"(User cron)", "login strings must name one identity"}},
		// Objects from the API are validated again: not every caller went
		// through DecodeYAML.
		{name: "invalid object", objs: func(t *testing.T) []resource.Object {
			return []resource.Object{&resource.User{Kind: resource.KindUser, Name: "ok"}, &resource.User{Kind: resource.KindUser, Name: "a~b"}}
		}, want: []string{"document 2 (User a~b)", "field name"}},
		{name: "duplicate object", objs: func(t *testing.T) []resource.Object {
			return []resource.Object{&resource.User{Kind: resource.KindUser, Name: "x"}, &resource.User{Kind: resource.KindUser, Name: "x"}}
		}, want: []string{"document 2 (User x)", "same User as document 1"}},
		{name: "imported key refused by the vault", objs: func(t *testing.T) []resource.Object {
			return []resource.Object{
				&resource.User{Kind: resource.KindUser, Name: "bob"},
				&resource.Account{Kind: resource.KindAccount, Target: "web1", Name: "legacy", PrivateKey: rsa1024},
			}
		}, want: []string{"document 2 (Account web1/legacy)", "field private_key_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, "", nil)
			mustApply(t, g, decode(t, siteYAML(alice, stats)))
			before := stateOf(t, g)
			snapBefore := g.inv.Snapshot()

			res, err := g.inv.Apply(context.Background(), tt.objs(t))
			if err == nil {
				t.Fatalf("Apply succeeded: %+v", res)
			}
			if res != nil {
				t.Fatalf("Apply returned a result with a refusal: %+v", res)
			}
			var de *resource.DocError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a DocError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not contain %q", err, w)
				}
			}
			// All or nothing: the documents before the bad one were not
			// stored either, and the snapshot did not move.
			if after := stateOf(t, g); !reflect.DeepEqual(after, before) {
				t.Fatalf("refused apply changed the store: revision %d -> %d, %d -> %d records",
					before.revision, after.revision, len(before.records), len(after.records))
			}
			if g.inv.Snapshot() != snapBefore {
				t.Fatal("refused apply installed a new snapshot")
			}
		})
	}
}

func TestApplyReferencesWithinStream(t *testing.T) {
	// A stream may refer to what it creates itself, in any order: the
	// policy comes before the target, environment and operation it names.
	g := newGateway(t, "", nil)
	res := mustApply(t, g, decode(t, `kind: Policy
name: p
type: target-access
subjects: {users: [alice]}
targets: {names: [web1], environments: [prod]}
target_users: [root]
actions: [exec]
commands: {allow: ['@ops']}
---
kind: Account
target: web1
name: root
---
kind: Environment
name: prod
targets: [web1]
---
kind: Operation
name: ops
patterns: [^uptime$]
---
kind: Target
name: web1
address: h:22
---
kind: User
name: alice
`))
	if len(res.Created) != 6 || len(res.Warnings) != 0 {
		t.Fatalf("apply = %+v", res)
	}
	d := g.inv.Snapshot().Engine.Decide(policy.Request{Kind: policy.SubjectUser, Subject: "alice", Action: "exec", Target: "web1", TargetUser: "root", Command: "uptime"})
	if !d.Allow || d.Operation != "ops" {
		t.Fatalf("Decide = %+v", d)
	}
}

func TestApplyWarnings(t *testing.T) {
	// DESIGN section 2: a subject that does not exist yet is a warning, not
	// an error (it may be created next, or come from a directory), and
	// group names are free.
	g := newGateway(t, "", nil)
	res := mustApply(t, g, decode(t, `kind: Target
name: web1
address: h:22
---
kind: Group
name: dev
members: [alice, ghost]
---
kind: ServiceAccount
name: cron
owner: nobody
---
kind: ServiceAccount
name: backup
owner: group:not-yet
---
kind: Policy
name: p
type: target-access
subjects: {users: [alice, ghost], groups: [from-ldap], service_accounts: [later]}
targets: {names: [web1]}
target_users: [root]
actions: [shell]
`))
	want := []string{
		`document 2 (Group dev): field members[0]: user "alice" does not exist (yet)`,
		`document 2 (Group dev): field members[1]: user "ghost" does not exist (yet)`,
		`document 3 (ServiceAccount cron): field owner: user "nobody" does not exist (yet)`,
		`document 5 (Policy p): field subjects.users[0]: user "alice" does not exist (yet)`,
		`document 5 (Policy p): field subjects.users[1]: user "ghost" does not exist (yet)`,
		`document 5 (Policy p): field subjects.service_accounts[0]: service account "later" does not exist (yet)`,
	}
	if !reflect.DeepEqual(res.Warnings, want) {
		t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(res.Warnings, "\n"), strings.Join(want, "\n"))
	}
	if len(res.Created) != 5 {
		t.Fatalf("created %v", res.Created)
	}
	// Once alice exists, her policy applies without another apply of it.
	mustApply(t, g, decode(t, "kind: User\nname: alice\n"))
	mustApply(t, g, decode(t, "kind: Account\ntarget: web1\nname: root\n"))
	d := g.inv.Snapshot().Engine.Decide(policy.Request{Kind: policy.SubjectUser, Subject: "alice", Action: "shell", Target: "web1", TargetUser: "root"})
	if !d.Allow {
		t.Fatalf("alice denied after creation: %s", d.Reason)
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	alice, stats := newKey(t), newKey(t)
	tests := []struct {
		name       string
		kind       resource.Kind
		target     string
		wantErr    []string
		referenced bool
		notFound   bool
	}{
		// The error names who still refers, so the admin knows what to
		// delete first.
		{name: "target with account", kind: resource.KindTarget, target: "web1",
			wantErr: []string{`Target "web1" is still referred to by`, "Account/web1/svc-stats"}, referenced: true},
		{name: "environment in policy", kind: resource.KindEnvironment, target: "prod",
			wantErr: []string{"Policy/ops-prod"}, referenced: true},
		{name: "operation in policy", kind: resource.KindOperation, target: "danger",
			wantErr: []string{"Policy/ops-prod"}, referenced: true},
		{name: "missing", kind: resource.KindUser, target: "nobody", wantErr: []string{`User "nobody"`}, notFound: true},
		{name: "missing kind mismatch", kind: resource.KindServiceAccount, target: "alice", notFound: true},
		{name: "account", kind: resource.KindAccount, target: "web1/svc-stats"},
		// Subjects are free: deleting a user named by a policy is fine.
		{name: "user", kind: resource.KindUser, target: "alice"},
		// db1 is reached through a label selector only: nothing names it.
		{name: "target matched by labels only", kind: resource.KindTarget, target: "db1"},
		{name: "policy", kind: resource.KindPolicy, target: "ops-prod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, "", nil)
			mustApply(t, g, decode(t, siteYAML(alice, stats)))
			before := stateOf(t, g)
			err := g.inv.Delete(ctx, tt.kind, tt.target)
			if len(tt.wantErr) > 0 || tt.notFound {
				if err == nil {
					t.Fatal("Delete succeeded")
				}
				if errors.Is(err, ErrReferenced) != tt.referenced || errors.Is(err, store.ErrNotFound) != tt.notFound {
					t.Fatalf("error %v: referenced %v, not found %v", err, errors.Is(err, ErrReferenced), errors.Is(err, store.ErrNotFound))
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Fatalf("error %q does not contain %q", err, w)
					}
				}
				if after := stateOf(t, g); !reflect.DeepEqual(after, before) {
					t.Fatal("refused delete changed the store")
				}
				return
			}
			if err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := g.inv.Get(ctx, tt.kind, tt.target); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get after delete: %v", err)
			}
			if g.inv.Snapshot().Revision == before.revision {
				t.Fatal("snapshot not reloaded after delete")
			}
		})
	}
}

func TestDeleteEffects(t *testing.T) {
	// Deleting an account takes its key out of the snapshot at once, and a
	// deleted user no longer authenticates.
	ctx := context.Background()
	g := newGateway(t, "", nil)
	alice, stats := newKey(t), newKey(t)
	mustApply(t, g, decode(t, siteYAML(alice, stats)))
	if err := g.inv.Delete(ctx, resource.KindAccount, "web1/svc-stats"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := g.inv.Snapshot().AccountKey("web1", "svc-stats"); ok {
		t.Fatal("deleted account still has a key")
	}
	// With the account gone, web1 is referred to by nothing.
	if err := g.inv.Delete(ctx, resource.KindTarget, "web1"); err != nil {
		t.Fatalf("delete unreferenced target: %v", err)
	}
	if err := g.inv.Delete(ctx, resource.KindUser, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.inv.Snapshot().Authenticate("alice", alice.signer.PublicKey()); ok {
		t.Fatal("deleted user authenticates")
	}
}

func TestAuthenticate(t *testing.T) {
	g := newGateway(t, "", nil)
	alice, stats, stranger := newKey(t), newKey(t), newKey(t)
	mustApply(t, g, decode(t, siteYAML(alice, stats)))
	snap := g.inv.Snapshot()
	tests := []struct {
		name   string
		user   string
		key    ssh.PublicKey
		want   Identity
		wantOK bool
	}{
		{name: "user key", user: "alice", key: alice.signer.PublicKey(), want: Identity{Kind: policy.SubjectUser, Name: "alice"}, wantOK: true},
		{name: "service account key", user: "stats", key: stats.signer.PublicKey(), want: Identity{Kind: policy.SubjectServiceAccount, Name: "stats"}, wantOK: true},
		{name: "another identity's key", user: "alice", key: stats.signer.PublicKey()},
		{name: "unregistered key", user: "alice", key: stranger.signer.PublicKey()},
		{name: "unknown name", user: "mallory", key: alice.signer.PublicKey()},
		{name: "empty name", user: "", key: alice.signer.PublicKey()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := snap.Authenticate(tt.user, tt.key)
			if ok != tt.wantOK || id != tt.want {
				t.Fatalf("Authenticate(%s) = %+v, %v; want %+v, %v", tt.user, id, ok, tt.want, tt.wantOK)
			}
		})
	}
	if !snap.Exists("alice") || !snap.Exists("stats") || snap.Exists("mallory") {
		t.Fatal("Exists is wrong")
	}
	// A key added by a later apply works from the next snapshot; the old
	// snapshot is immutable and still says no.
	mustApply(t, g, decode(t, "kind: User\nname: alice\nssh_keys: ['"+alice.line+"', '"+stranger.line+"']\n"))
	if _, ok := g.inv.Snapshot().Authenticate("alice", stranger.signer.PublicKey()); !ok {
		t.Fatal("added key refused")
	}
	if _, ok := snap.Authenticate("alice", stranger.signer.PublicKey()); ok {
		t.Fatal("old snapshot changed")
	}
}

func TestSubscribe(t *testing.T) {
	ctx := context.Background()
	g := newGateway(t, "", nil)
	var got []*Snapshot
	g.inv.Subscribe(func(s *Snapshot) { got = append(got, s) })

	alice := newKey(t)
	mustApply(t, g, decode(t, siteYAML(alice, newKey(t))))
	if len(got) != 1 || got[0] != g.inv.Snapshot() {
		t.Fatalf("after apply: %d callbacks", len(got))
	}
	// The callback sees the new state: the SSH front re-checks live
	// sessions against it.
	if _, ok := got[0].Authenticate("alice", alice.signer.PublicKey()); !ok {
		t.Fatal("subscriber got a snapshot without the applied user")
	}
	if err := g.inv.Delete(ctx, resource.KindPolicy, "ops-prod"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Engine.PolicyCount() != 0 {
		t.Fatalf("after delete: %d callbacks", len(got))
	}
	// Nothing changed: a reload installs nothing and calls nobody.
	if err := g.inv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("reload without change called subscribers (%d)", len(got))
	}
	// A refused apply calls nobody either.
	if _, err := g.inv.Apply(ctx, decode(t, "kind: Account\ntarget: nowhere\nname: x\n")); err == nil {
		t.Fatal("apply succeeded")
	}
	if len(got) != 2 {
		t.Fatal("refused apply called subscribers")
	}
}

func TestReloadSeesOtherGateway(t *testing.T) {
	// DESIGN section 4: several gateways share one store, and a change made
	// through one is enforced by all. Two Inventories on one SQLite file
	// stand in for two gateways (sharing the master key, as they must).
	ctx := context.Background()
	a := newGateway(t, "", nil)
	b := newGateway(t, a.path, a.vault)
	var seen []*Snapshot
	a.inv.Subscribe(func(s *Snapshot) { seen = append(seen, s) })

	alice := newKey(t)
	mustApply(t, b, decode(t, siteYAML(alice, newKey(t))))
	if _, ok := a.inv.Snapshot().Authenticate("alice", alice.signer.PublicKey()); ok {
		t.Fatal("gateway a knew alice before reloading")
	}
	if err := a.inv.Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	snap := a.inv.Snapshot()
	if snap.Revision != b.inv.Snapshot().Revision {
		t.Fatalf("revision %d, other gateway at %d", snap.Revision, b.inv.Snapshot().Revision)
	}
	if _, ok := snap.Authenticate("alice", alice.signer.PublicKey()); !ok {
		t.Fatal("reload did not pick up alice")
	}
	if len(seen) != 1 || seen[0] != snap {
		t.Fatalf("subscriber calls = %d", len(seen))
	}
	// The account key generated by b opens on a: same master key, same
	// sealed blob.
	acc, err := b.inv.Get(ctx, resource.KindAccount, "web1/svc-stats")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := resource.ParseAuthorizedKey(acc.(*resource.Account).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	checkSigner(t, a, "web1", "svc-stats", pub)

	// A revocation through b reaches a the same way.
	if err := b.inv.Delete(ctx, resource.KindPolicy, "ops-prod"); err != nil {
		t.Fatal(err)
	}
	if err := a.inv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	d := a.inv.Snapshot().Engine.Decide(policy.Request{Kind: policy.SubjectUser, Subject: "alice", Action: "shell", Target: "web1", TargetUser: "svc-stats"})
	if d.Allow {
		t.Fatal("revoked policy still allows on the other gateway")
	}
}

func TestWatch(t *testing.T) {
	// Watch is what makes Reload happen in a running gateway. It is checked
	// for its effect, with a generous deadline, never for its timing.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newGateway(t, "", nil)
	b := newGateway(t, a.path, a.vault)
	got := make(chan *Snapshot, 10)
	a.inv.Subscribe(func(s *Snapshot) { got <- s })
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.inv.Watch(ctx, 10*time.Millisecond)
	}()
	mustApply(t, b, decode(t, "kind: User\nname: bob\n"))
	select {
	case s := <-got:
		if !s.Exists("bob") {
			t.Fatal("watched snapshot lacks bob")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Watch did not pick up the change")
	}
	cancel()
	<-done
}

func TestNewFailsClosed(t *testing.T) {
	// A store whose resources no longer compile (written by a buggy or
	// newer gateway, or by hand) must stop the gateway from starting rather
	// than run with an engine that grants something else.
	ctx := context.Background()
	g := newGateway(t, "", nil)
	spec := `{"kind":"Policy","name":"p","type":"target-access","subjects":{"users":["a"]},"targets":{"environments":["gone"]},"target_users":["root"],"actions":["shell"]}`
	if err := g.store.Apply(ctx, []store.Change{{Record: store.Record{Kind: "Policy", Name: "p", Spec: []byte(spec)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, g.store, g.vault, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), `environment "gone" does not exist`) {
		t.Fatalf("New = %v, want a compile error", err)
	}
	// The running inventory keeps its last good snapshot.
	old := g.inv.Snapshot()
	if err := g.inv.Reload(ctx); err == nil {
		t.Fatal("Reload of a broken store succeeded")
	}
	if g.inv.Snapshot() != old {
		t.Fatal("failed reload replaced the snapshot")
	}
}

func TestGetAndList(t *testing.T) {
	ctx := context.Background()
	g := newGateway(t, "", nil)
	alice, stats := newKey(t), newKey(t)
	objs := decode(t, siteYAML(alice, stats))
	mustApply(t, g, objs)

	// Get returns what was applied; only the account gains its public key
	// and when it was made.
	for _, o := range objs {
		got, err := g.inv.Get(ctx, o.GetKind(), o.GetName())
		if err != nil {
			t.Fatalf("Get %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		if a, ok := got.(*resource.Account); ok {
			if a.KeyCreated == nil {
				t.Errorf("account %s has no public_key_created", a.GetName())
			}
			cp := *a
			cp.PublicKey, cp.KeyCreated = "", nil
			got = &cp
		}
		if !reflect.DeepEqual(got, o) {
			t.Errorf("Get %s %s = %+v, want %+v", o.GetKind(), o.GetName(), got, o)
		}
	}
	if _, err := g.inv.Get(ctx, resource.KindTarget, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}

	// List orders by kind (referred-to first), then name, so that an export
	// applies back in order.
	all, err := g.inv.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range all {
		names = append(names, string(o.GetKind())+"/"+o.GetName())
	}
	want := []string{"User/alice", "ServiceAccount/stats", "Group/ops", "Target/db1", "Target/web1",
		"Environment/prod", "Account/web1/svc-stats", "Operation/danger", "Policy/ops-prod"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("List = %v, want %v", names, want)
	}
	targets, err := g.inv.List(ctx, resource.KindTarget)
	if err != nil || len(targets) != 2 {
		t.Fatalf("List(Target) = %v, %v", targets, err)
	}
	groups, err := g.inv.List(ctx, resource.KindGroup)
	if err != nil || len(groups) != 1 {
		t.Fatalf("List(Group) = %v, %v", groups, err)
	}

	// An export applies back unchanged (get -o yaml | apply -f).
	var buf bytes.Buffer
	if err := resource.EncodeYAML(&buf, all); err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, g)
	res := mustApply(t, g, decode(t, buf.String()))
	if len(res.Unchanged) != len(all) || len(res.Created)+len(res.Updated) != 0 {
		t.Fatalf("re-applying the export: %+v", res)
	}
	after := stateOf(t, g)
	for i := range before.records {
		if string(before.records[i].Spec) != string(after.records[i].Spec) || !bytes.Equal(before.records[i].Secret, after.records[i].Secret) {
			t.Errorf("%s/%s changed by re-applying its export", before.records[i].Kind, before.records[i].Name)
		}
	}
}

func TestConcurrentApplyAndRead(t *testing.T) {
	// Fronts read snapshots while the API applies: run both under -race.
	ctx := context.Background()
	g := newGateway(t, "", nil)
	mustApply(t, g, decode(t, siteYAML(newKey(t), newKey(t))))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				name := fmt.Sprintf("user-%d-%d", w, i)
				if _, err := g.inv.Apply(ctx, []resource.Object{&resource.User{Kind: resource.KindUser, Name: name}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := g.inv.Snapshot()
			s.Engine.Decide(policy.Request{Kind: policy.SubjectUser, Subject: "alice", Action: "shell", Target: "web1", TargetUser: "svc-stats"})
			s.Exists("user-0-0")
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	users, err := g.inv.List(ctx, resource.KindUser)
	if err != nil || len(users) != 21 {
		t.Fatalf("List(User) = %d, %v", len(users), err)
	}
	for w := range 4 {
		if !g.inv.Snapshot().Exists(fmt.Sprintf("user-%d-4", w)) {
			t.Fatalf("snapshot lacks user-%d-4", w)
		}
	}
}
