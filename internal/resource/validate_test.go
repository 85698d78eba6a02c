package resource

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestParseAuthorizedKey(t *testing.T) {
	ed := testKey(t, 1, "")
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" means the key is accepted
	}{
		{name: "ed25519", in: ed},
		{name: "ed25519 with comment", in: testKey(t, 1, "alice@laptop")},
		{name: "surrounding space", in: "  " + ed + " \n"},
		{name: "ecdsa", in: ecdsaKey(t)},
		{name: "rsa 2048", in: rsaKey(t, 2048)},
		// OpenSSH 9.x refuses RSA under 2048 bits; storing one would only
		// fail later, at login.
		{name: "rsa 1024", in: rsaKey(t, 1024), wantErr: "RSA key of 1024 bits is too short"},
		{name: "empty", in: "", wantErr: "empty key"},
		{name: "blank", in: " \t ", wantErr: "empty key"},
		{name: "garbage", in: "not a key", wantErr: "not an SSH public key"},
		{name: "truncated base64", in: ed[:len(ed)-10], wantErr: "not an SSH public key"},
		{name: "two keys", in: ed + "\n" + testKey(t, 2, ""), wantErr: "more than one line"},
		{name: "carriage return", in: ed + "\rx", wantErr: "more than one line"},
		// Options such as command= or from= would silently change what the
		// key may do; the gateway's policies do that instead.
		{name: "options", in: `command="/bin/true" ` + ed, wantErr: "options"},
		{name: "no-pty option", in: "no-pty,from=\"10.0.0.0/8\" " + ed, wantErr: "options (no-pty,from"},
		{name: "private key", in: "-----BEGIN OPENSSH PRIVATE KEY-----", wantErr: "not an SSH public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ParseAuthorizedKey(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseAuthorizedKey: %v", err)
				}
				if key == nil {
					t.Fatal("nil key without an error")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseAuthorizedKeyRejectsCertificates(t *testing.T) {
	// A user certificate is not a key type the gateway stores: accepting it
	// would tie an identity to one certificate's validity.
	_, signerKey, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: mustPub(t, 3), CertType: ssh.UserCert, ValidPrincipals: []string{"alice"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))
	if _, err := ParseAuthorizedKey(line); err == nil || !strings.Contains(err.Error(), "is not accepted") {
		t.Fatalf("certificate accepted or wrong error: %v", err)
	}
}

func mustPub(t testing.TB, seed byte) ssh.PublicKey {
	t.Helper()
	k, err := ParseAuthorizedKey(testKey(t, seed, ""))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func FuzzParseAuthorizedKey(f *testing.F) {
	for _, s := range []string{
		testKey(f, 1, ""),
		testKey(f, 2, "bob@host"),
		ecdsaKey(f),
		`command="ls" ` + testKey(f, 1, ""),
		"ssh-ed25519 AAAA",
		"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ",
		"",
		"\n",
		"ssh-dss AAAAB3NzaC1kc3MAAACBAP",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseAuthorizedKey(s)
		if err != nil {
			if key != nil {
				t.Fatal("key returned with an error")
			}
			return
		}
		// A key accepted once must be accepted again in the form the
		// gateway prints it (get -o yaml, then apply -f).
		again, err := ParseAuthorizedKey(string(ssh.MarshalAuthorizedKey(key)))
		if err != nil {
			t.Fatalf("re-parse of accepted key %q: %v", s, err)
		}
		if !bytes.Equal(again.Marshal(), key.Marshal()) {
			t.Fatalf("re-parse changed the key")
		}
		if !keyTypeAllowed(key.Type()) {
			t.Fatalf("accepted key type %s", key.Type())
		}
	})
}

// validPolicy returns a policy using every field; the Validate tests change
// one field at a time.
func validPolicy() *Policy {
	return &Policy{
		Kind: KindPolicy, Name: "ops-web", Type: PolicyTargetAccess,
		Subjects:    Subjects{Users: []string{"alice"}, Groups: []string{"ops"}, ServiceAccounts: []string{"stats"}},
		Targets:     TargetSelector{Names: []string{"web1"}, Environments: []string{"prod"}, Labels: map[string]string{"role": "web"}},
		TargetUsers: []string{"root", "{username}"},
		Actions:     []string{ActionShell, ActionExec},
		SourceCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"},
		Autologin:   true,
		Commands:    &CommandRules{Allow: []string{"^uptime$", "@iscsi.configure"}, Deny: []string{"rm -rf"}},
	}
}

func TestValidate(t *testing.T) {
	key := testKey(t, 1, "")
	pemKey := func() string {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		b, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(b))
	}()
	tests := []struct {
		name    string
		obj     Object
		wantErr string // substring naming the field; "" means valid
	}{
		{name: "user ok", obj: &User{Name: "alice", Email: "a@example.com", Groups: []string{"ops"}, SSHKeys: []string{key}, Roles: []string{"admin", "auditor"}, MFA: "required"}},
		{name: "user email name ok", obj: &User{Name: "alice@example.com"}},
		{name: "user oidc ok", obj: &User{Name: "dora", Source: SourceOIDC, OIDCIssuer: "https://id.example", OIDCSubject: "sub-1"}},
		{name: "user local linked ok", obj: &User{Name: "dora", OIDCIssuer: "https://id.example", OIDCSubject: "sub-1"}},
		{name: "user oidc without link", obj: &User{Name: "dora", Source: SourceOIDC}, wantErr: "field oidc_subject: is required"},
		{name: "user issuer without subject", obj: &User{Name: "dora", OIDCIssuer: "https://id.example"}, wantErr: "field oidc_subject: oidc_issuer and oidc_subject go together"},
		{name: "user no name", obj: &User{}, wantErr: "field name: is required"},
		{name: "user tilde", obj: &User{Name: "al~ice"}, wantErr: "field name: \"al~ice\" is not a valid name"},
		{name: "user slash", obj: &User{Name: "al/ice"}, wantErr: "field name"},
		{name: "user space", obj: &User{Name: "al ice"}, wantErr: "field name"},
		{name: "user leading dot", obj: &User{Name: ".alice"}, wantErr: "field name"},
		{name: "user long name", obj: &User{Name: strings.Repeat("a", 129)}, wantErr: "field name"},
		{name: "user 128 name", obj: &User{Name: strings.Repeat("a", 128)}},
		{name: "user bad email", obj: &User{Name: "a", Email: "nope"}, wantErr: "field email"},
		{name: "user email trailing at", obj: &User{Name: "a", Email: "a@"}, wantErr: "field email"},
		{name: "user email tilde", obj: &User{Name: "a", Email: "a~b@c"}, wantErr: "field email"},
		{name: "user bad group", obj: &User{Name: "a", Groups: []string{"ok", "b/c"}}, wantErr: "field groups[1]"},
		{name: "user dup group", obj: &User{Name: "a", Groups: []string{"ops", "ops"}}, wantErr: "field groups[1]: \"ops\" is listed twice"},
		{name: "user bad key", obj: &User{Name: "a", SSHKeys: []string{key, "x"}}, wantErr: "field ssh_keys[1]"},
		{name: "user dup key", obj: &User{Name: "a", SSHKeys: []string{key, testKey(t, 1, "other comment")}}, wantErr: "field ssh_keys[1]: key SHA256:"},
		{name: "user bad role", obj: &User{Name: "a", Roles: []string{"root"}}, wantErr: "field roles[0]: unknown role \"root\""},
		{name: "user bad mfa", obj: &User{Name: "a", MFA: "yes"}, wantErr: "field mfa"},

		{name: "service account ok", obj: &ServiceAccount{Name: "stats", Owner: "group:ops", SSHKeys: []string{key}}},
		{name: "service account user owner", obj: &ServiceAccount{Name: "stats", Owner: "alice"}},
		{name: "service account bad owner", obj: &ServiceAccount{Name: "stats", Owner: "group:a b"}, wantErr: "field owner"},
		{name: "service account bad key", obj: &ServiceAccount{Name: "stats", SSHKeys: []string{`from="x" ` + key}}, wantErr: "field ssh_keys[0]: options"},

		{name: "group ok", obj: &Group{Name: "ops", Members: []string{"alice", "bob"}}},
		{name: "group bad member", obj: &Group{Name: "ops", Members: []string{"~"}}, wantErr: "field members[0]"},

		{name: "target ok", obj: &Target{Name: "web1", Address: "10.0.0.5:22", HostKey: key, Labels: map[string]string{"env": "prod", "k8s.io/role": "web"}, Auth: AuthCertificate}},
		{name: "target ipv6", obj: &Target{Name: "web1", Address: "[2001:db8::1]:2222"}},
		{name: "target provision_account", obj: &Target{Name: "web1", Address: "10.0.0.5:22", ProvisionAccount: "admin"}},
		{name: "target bad provision_account", obj: &Target{Name: "web1", Address: "10.0.0.5:22", ProvisionAccount: "x;rm -rf"}, wantErr: "field provision_account:"},
		{name: "target no address", obj: &Target{Name: "web1"}, wantErr: "field address: is required"},
		{name: "agent target no address", obj: &Target{Name: "web1", Via: ViaAgent, HostKey: key}},
		{name: "agent target bad address", obj: &Target{Name: "web1", Via: ViaAgent, Address: "web1"}, wantErr: "field address"},
		{name: "agent target postgres", obj: &Target{Name: "db1", Via: ViaAgent, Protocol: ProtocolPostgres}, wantErr: "field via: agent is for ssh targets"},
		{name: "target bad via", obj: &Target{Name: "web1", Address: "10.0.0.5:22", Via: "carrier-pigeon"}, wantErr: "field via:"},
		{name: "target no port", obj: &Target{Name: "web1", Address: "web1"}, wantErr: "field address: \"web1\" is not host:port"},
		{name: "target port 0", obj: &Target{Name: "web1", Address: "web1:0"}, wantErr: "no valid port"},
		{name: "target port big", obj: &Target{Name: "web1", Address: "web1:70000"}, wantErr: "no valid port"},
		{name: "target port name", obj: &Target{Name: "web1", Address: "web1:ssh"}, wantErr: "no valid port"},
		{name: "target no host", obj: &Target{Name: "web1", Address: ":22"}, wantErr: "no valid host"},
		{name: "target host space", obj: &Target{Name: "web1", Address: "we b:22"}, wantErr: "no valid host"},
		{name: "target bad host key", obj: &Target{Name: "web1", Address: "h:22", HostKey: "x"}, wantErr: "field host_key"},
		{name: "target bad label key", obj: &Target{Name: "web1", Address: "h:22", Labels: map[string]string{"a b": "c"}}, wantErr: "field labels: label key"},
		{name: "target bad label value", obj: &Target{Name: "web1", Address: "h:22", Labels: map[string]string{"env": "a b"}}, wantErr: "field labels.env"},
		{name: "target bad auth", obj: &Target{Name: "web1", Address: "h:22", Auth: "password"}, wantErr: "field auth"},

		{name: "environment ok", obj: &Environment{Name: "prod", Targets: []string{"web1"}, Selector: map[string]string{"env": "prod"}}},
		{name: "environment empty", obj: &Environment{Name: "prod"}, wantErr: "field targets: an environment needs"},
		{name: "environment bad target", obj: &Environment{Name: "prod", Targets: []string{"a/b"}}, wantErr: "field targets[0]"},
		{name: "environment bad selector", obj: &Environment{Name: "prod", Selector: map[string]string{"env": ""}}, wantErr: "field selector.env"},

		{name: "account ok", obj: &Account{Name: "svc-stats", Target: "web1"}},
		{name: "account rotate_every", obj: &Account{Name: "svc", Target: "web1", RotateEvery: Duration(720 * time.Hour), LockPassword: true}},
		{name: "account rotate_every too short", obj: &Account{Name: "svc", Target: "web1", RotateEvery: Duration(time.Minute)}, wantErr: "field rotate_every: 1m0s is too short"},
		{name: "account imported ok", obj: &Account{Name: "root", Target: "web1", PrivateKey: pemKey}},
		{name: "account no name", obj: &Account{Target: "web1"}, wantErr: "field name: is required"},
		{name: "account bad login", obj: &Account{Name: "1root", Target: "web1"}, wantErr: "field name"},
		{name: "account no target", obj: &Account{Name: "root"}, wantErr: "field target: is required"},
		{name: "account bad private key", obj: &Account{Name: "root", Target: "web1", PrivateKey: "nope"}, wantErr: "field private_key_file"},

		{name: "operation ok", obj: &Operation{Name: "iscsi.configure", Patterns: []string{"^esxcli iscsi"}}},
		{name: "operation no patterns", obj: &Operation{Name: "x"}, wantErr: "field patterns"},
		{name: "operation bad pattern", obj: &Operation{Name: "x", Patterns: []string{"ok", "("}}, wantErr: "field patterns[1]: bad regular expression"},

		{name: "policy ok", obj: validPolicy()},
		{name: "policy no type", obj: func() Object { p := validPolicy(); p.Type = ""; return p }(), wantErr: "field type: is required"},
		{name: "policy unknown type", obj: func() Object { p := validPolicy(); p.Type = "vpn"; return p }(), wantErr: "field type: unknown policy type \"vpn\""},
		{name: "policy no subjects", obj: func() Object { p := validPolicy(); p.Subjects = Subjects{}; return p }(), wantErr: "field subjects"},
		{name: "policy bad subject", obj: func() Object { p := validPolicy(); p.Subjects.ServiceAccounts = []string{"a~b"}; return p }(), wantErr: "field subjects.service_accounts[0]"},
		{name: "policy no targets", obj: func() Object { p := validPolicy(); p.Targets = TargetSelector{}; return p }(), wantErr: "field targets"},
		{name: "policy bad environment", obj: func() Object { p := validPolicy(); p.Targets.Environments = []string{""}; return p }(), wantErr: "field targets.environments[0]: is required"},
		{name: "policy bad target label", obj: func() Object { p := validPolicy(); p.Targets.Labels = map[string]string{"x": "$"}; return p }(), wantErr: "field targets.labels.x"},
		{name: "policy no target users", obj: func() Object { p := validPolicy(); p.TargetUsers = nil; return p }(), wantErr: "field target_users"},
		{name: "policy bad target user", obj: func() Object { p := validPolicy(); p.TargetUsers = []string{"root", "{user}"}; return p }(), wantErr: "field target_users[1]"},
		{name: "policy no actions", obj: func() Object { p := validPolicy(); p.Actions = nil; return p }(), wantErr: "field actions: at least one"},
		{name: "policy unknown action", obj: func() Object { p := validPolicy(); p.Actions = []string{"shell", "sudo"}; return p }(), wantErr: "field actions[1]: unknown action \"sudo\""},
		{name: "policy bad cidr", obj: func() Object { p := validPolicy(); p.SourceCIDRs = []string{"10.0.0.0/33"}; return p }(), wantErr: "field source_cidrs[0]"},
		{name: "policy bare address", obj: func() Object { p := validPolicy(); p.SourceCIDRs = []string{"10.0.0.1"}; return p }(), wantErr: "field source_cidrs[0]"},
		// autologin skips a second factor for a script; without source
		// networks it would do so from anywhere.
		{name: "policy autologin without cidrs", obj: func() Object { p := validPolicy(); p.SourceCIDRs = nil; return p }(), wantErr: "field autologin: autologin needs source_cidrs"},
		{name: "policy provision", obj: func() Object { p := validPolicy(); p.Provision, p.Sudoers = true, "ALL=(ALL) NOPASSWD: ALL"; return p }()},
		{name: "policy provision without {username}", obj: func() Object { p := validPolicy(); p.TargetUsers, p.Provision = []string{"root"}, true; return p }(), wantErr: "field provision: only the subject's own login"},
		{name: "policy sudoers without provision", obj: func() Object { p := validPolicy(); p.Sudoers = "ALL=(ALL) ALL"; return p }(), wantErr: "field sudoers: is used only with provision"},
		{name: "policy sudoers two lines", obj: func() Object {
			p := validPolicy()
			p.Provision, p.Sudoers = true, "ALL=(ALL) ALL\nroot ALL=(ALL) ALL"
			return p
		}(), wantErr: "field sudoers:"},
		{name: "policy sudoers quote", obj: func() Object { p := validPolicy(); p.Provision, p.Sudoers = true, "ALL=(ALL) ALL'; rm -rf /"; return p }(), wantErr: "field sudoers:"},
		{name: "policy sudoers no rule", obj: func() Object { p := validPolicy(); p.Provision, p.Sudoers = true, "ALL"; return p }(), wantErr: "field sudoers:"},
		{name: "recording with provision", obj: &Policy{Name: "rec", Type: PolicySessionRecording, Subjects: Subjects{Users: []string{"a"}}, Targets: TargetSelector{Names: []string{"t"}}, Provision: true}, wantErr: "field provision: is not used by policy type session-recording"},
		{name: "policy require_mfa", obj: func() Object { p := validPolicy(); p.Autologin = false; p.RequireMFA = true; return p }()},
		{name: "policy require_mfa with autologin", obj: func() Object { p := validPolicy(); p.RequireMFA = true; return p }(), wantErr: "field require_mfa: cannot be set with autologin"},
		{name: "recording with require_mfa", obj: &Policy{Name: "rec", Type: PolicySessionRecording, Subjects: Subjects{Users: []string{"a"}}, Targets: TargetSelector{Names: []string{"t"}}, RequireMFA: true}, wantErr: "field require_mfa: is not used by policy type session-recording"},
		{name: "policy bad allow regexp", obj: func() Object { p := validPolicy(); p.Commands.Allow = []string{"(?P<"}; return p }(), wantErr: "field commands.allow[0]: bad regular expression"},
		{name: "policy bad deny regexp", obj: func() Object { p := validPolicy(); p.Commands.Deny = []string{"ok", "[z-a]"}; return p }(), wantErr: "field commands.deny[1]"},
		{name: "policy bad operation name", obj: func() Object { p := validPolicy(); p.Commands.Deny = []string{"@"}; return p }(), wantErr: "field commands.deny[0]: is required"},
		{name: "policy uncertain value", obj: func() Object { p := validPolicy(); p.Commands.Uncertain = "maybe"; return p }(), wantErr: "field commands.uncertain: must be deny or allow"},
		{name: "policy fullscreen path", obj: func() Object { p := validPolicy(); p.Commands.Fullscreen = []string{"vim", "/usr/bin/less"}; return p }(), wantErr: "field commands.fullscreen[1]: must be a program name"},
		{name: "policy empty commands", obj: func() Object { p := validPolicy(); p.Commands = &CommandRules{}; return p }(), wantErr: "field commands: has neither allow nor deny"},
		{name: "proxy policy", obj: &Policy{Name: "db", Type: PolicyProxy, Subjects: Subjects{Users: []string{"a"}}, Targets: TargetSelector{Names: []string{"pg"}}, TargetUsers: []string{"postgres"}}},
		{name: "proxy policy with databases and deny", obj: &Policy{Name: "db", Type: PolicyProxy, Subjects: Subjects{Users: []string{"a"}}, Targets: TargetSelector{Names: []string{"pg"}}, TargetUsers: []string{"postgres"}, Databases: []string{"app", "*"}, Commands: &CommandRules{Deny: []string{"^DROP "}}}},
		{name: "proxy policy bad database", obj: &Policy{Name: "db", Type: PolicyProxy, Subjects: Subjects{Users: []string{"a"}}, Targets: TargetSelector{Names: []string{"pg"}}, TargetUsers: []string{"postgres"}, Databases: []string{"app;drop"}}, wantErr: "field databases[0]"},
		{name: "proxy policy bad deny", obj: &Policy{Name: "db", Type: PolicyProxy, Subjects: Subjects{Users: []string{"a"}}, Targets: TargetSelector{Names: []string{"pg"}}, TargetUsers: []string{"postgres"}, Commands: &CommandRules{Deny: []string{"(("}}}, wantErr: "field commands.deny[0]"},
		{name: "proxy policy fullscreen", obj: &Policy{Name: "db", Type: PolicyProxy, Subjects: Subjects{Users: []string{"a"}}, Targets: TargetSelector{Names: []string{"pg"}}, TargetUsers: []string{"postgres"}, Commands: &CommandRules{Deny: []string{"x"}, Fullscreen: []string{"vim"}}}, wantErr: "field commands"},
		{name: "proxy policy actions", obj: &Policy{Name: "db", Type: PolicyProxy, Subjects: Subjects{Users: []string{"a"}}, Targets: TargetSelector{Names: []string{"pg"}}, TargetUsers: []string{"postgres"}, Actions: []string{"shell"}}, wantErr: "field actions: is not used by policy type proxy"},
		{name: "postgres target", obj: &Target{Name: "pg", Address: "db:5432", Protocol: ProtocolPostgres, TLSMode: TLSRequire}},
		{name: "postgres target bad mode", obj: &Target{Name: "pg", Address: "db:5432", Protocol: ProtocolPostgres, TLSMode: "prefer"}, wantErr: "field tls_mode"},
		{name: "postgres target host key", obj: &Target{Name: "pg", Address: "db:5432", Protocol: ProtocolPostgres, HostKey: "x"}, wantErr: "field host_key"},
		{name: "postgres target bad ca", obj: &Target{Name: "pg", Address: "db:5432", Protocol: ProtocolPostgres, TLSCA: "not pem"}, wantErr: "field tls_ca"},
		{name: "ssh target with tls mode", obj: &Target{Name: "web", Address: "web:22", TLSMode: TLSRequire}, wantErr: "field tls_mode"},
		{name: "unknown protocol", obj: &Target{Name: "web", Address: "web:22", Protocol: "mysql"}, wantErr: "field protocol"},
		{name: "account password", obj: &Account{Name: "postgres", Target: "pg", Password: "s3cret"}},
		{name: "account password two lines", obj: &Account{Name: "postgres", Target: "pg", Password: "a\nb"}, wantErr: "field password_file"},
		{name: "account password and rotation", obj: &Account{Name: "postgres", Target: "pg", Password: "a", RotateEvery: Duration(48 * time.Hour)}, wantErr: "field password_file"},
		{name: "session-recording policy", obj: &Policy{Name: "rec", Type: PolicySessionRecording, Subjects: Subjects{Groups: []string{"ops"}}, Targets: TargetSelector{Labels: map[string]string{"env": "prod"}}, RecordInput: true}},
		{name: "kubernetes policy", obj: &Policy{Name: "k", Type: PolicyKubernetes, Subjects: Subjects{Users: []string{"a"}}, Targets: TargetSelector{Names: []string{"c1"}}, ClusterGroups: []string{"system:masters"}}},
		{name: "jit policy", obj: &Policy{Name: "j", Type: PolicyJIT, Subjects: Subjects{Users: []string{"a"}}, ChildPolicies: []string{"ops-web"}, Duration: Duration(time.Hour)}},
		{name: "jit granting itself", obj: &Policy{Name: "j", Type: PolicyJIT, Subjects: Subjects{Users: []string{"a"}}, ChildPolicies: []string{"j"}, Duration: Duration(time.Hour)}, wantErr: "cannot grant itself"},
		{name: "recording with actions", obj: &Policy{Name: "rec", Type: PolicySessionRecording, Subjects: Subjects{Users: []string{"a"}}, Targets: TargetSelector{Names: []string{"t"}}, Actions: []string{"shell"}}, wantErr: "field actions: is not used by policy type session-recording"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.obj.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate error = %v, want one containing %q", err, tt.wantErr)
			}
			// Fronts print field errors as they are; the type lets them
			// tell a bad field from a failure.
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
		})
	}
}
