package resource

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// testKey returns an ed25519 public key in authorized_keys format derived
// from seed, so that seed corpora and expected values are the same on every
// run.
func testKey(t testing.TB, seed byte, comment string) string {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(append(make([]byte, ed25519.SeedSize-1), seed))
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" {
		s += " " + comment
	}
	return s
}

// ecdsaKey returns a fresh P-256 public key in authorized_keys format.
func ecdsaKey(t testing.TB) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// rsaKey returns a fresh RSA public key of the given size in authorized_keys
// format.
func rsaKey(t testing.TB, bits int) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

func TestParseKind(t *testing.T) {
	// DESIGN section 2: KIND is case-insensitive, singular or plural, and
	// "-" or "_" between words is accepted as people type it.
	tests := []struct {
		in      string
		want    Kind
		wantErr bool
	}{
		{in: "users", want: KindUser},
		{in: "Users", want: KindUser},
		{in: "user", want: KindUser},
		{in: "USER", want: KindUser},
		{in: "User", want: KindUser},
		{in: "service-accounts", want: KindServiceAccount},
		{in: "service_accounts", want: KindServiceAccount},
		{in: "serviceaccount", want: KindServiceAccount},
		{in: "ServiceAccount", want: KindServiceAccount},
		{in: "groups", want: KindGroup},
		{in: "target", want: KindTarget},
		{in: "Environments", want: KindEnvironment},
		{in: "accounts", want: KindAccount},
		{in: "operation", want: KindOperation},
		{in: "policy", want: KindPolicy},
		{in: "Policy", want: KindPolicy},
		{in: "policies", want: KindPolicy},
		{in: "nope", wantErr: true},
		{in: "", wantErr: true},
		{in: "userss", wantErr: true},
		{in: "policys2", wantErr: true},
		{in: "user s", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseKind(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseKind(%q) = %q, want an error", tt.in, got)
				}
				// The error must help: name what was typed and what is valid.
				for _, want := range []string{"unknown kind", "User", "Policy"} {
					if !strings.Contains(err.Error(), want) {
						t.Fatalf("ParseKind(%q) error %q does not contain %q", tt.in, err, want)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseKind(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNewEveryKind(t *testing.T) {
	// Every kind in Kinds must have a constructor whose object reports that
	// kind: decode, the store and listings all depend on it.
	for _, k := range Kinds {
		o, err := New(k)
		if err != nil {
			t.Fatalf("New(%s): %v", k, err)
		}
		if o.GetKind() != k {
			t.Fatalf("New(%s).GetKind() = %s", k, o.GetKind())
		}
	}
	if _, err := New("Widget"); err == nil {
		t.Fatal("New(Widget) succeeded")
	}
	// New takes canonical kinds only; ParseKind is the lenient entry point.
	if _, err := New("user"); err == nil {
		t.Fatal("New(user) succeeded")
	}
}

func TestLoginName(t *testing.T) {
	// {username} in a policy expands to this (DESIGN section 1).
	tests := []struct {
		user User
		want string
	}{
		{User{Name: "alice", Email: "alice.smith@example.com"}, "alice.smith"},
		{User{Name: "alice"}, "alice"},
		{User{Name: "bob", Email: "@example.com"}, "bob"}, // no local part: fall back to the name
		{User{Name: "carol", Email: "c@d@e"}, "c"},
	}
	for _, tt := range tests {
		if got := tt.user.LoginName(); got != tt.want {
			t.Errorf("%+v.LoginName() = %q, want %q", tt.user, got, tt.want)
		}
	}
}

func TestAuthMode(t *testing.T) {
	for auth, want := range map[string]string{"": AuthKey, AuthKey: AuthKey, AuthCertificate: AuthCertificate} {
		if got := (&Target{Auth: auth}).AuthMode(); got != want {
			t.Errorf("AuthMode(%q) = %q, want %q", auth, got, want)
		}
	}
}

func TestAccountName(t *testing.T) {
	// Accounts are addressed as TARGET/NAME everywhere (delete, get, errors).
	a := &Account{Target: "web1", Name: "svc-stats"}
	if a.GetName() != "web1/svc-stats" {
		t.Fatalf("GetName() = %q", a.GetName())
	}
}

func TestSortObjects(t *testing.T) {
	// Listings and exports print things referred to before things that
	// refer to them, so that `get -o yaml | apply -f` reads in order.
	objs := []Object{
		&Policy{Name: "p"},
		&Target{Name: "web2"},
		&User{Name: "bob"},
		&Account{Target: "web1", Name: "root"},
		&Target{Name: "web1"},
		&User{Name: "alice"},
		&Group{Name: "ops"},
	}
	SortObjects(objs)
	var got []string
	for _, o := range objs {
		got = append(got, string(o.GetKind())+"/"+o.GetName())
	}
	want := "User/alice User/bob Group/ops Target/web1 Target/web2 Account/web1/root Policy/p"
	if strings.Join(got, " ") != want {
		t.Fatalf("order = %v, want %s", got, want)
	}
}
