package directory

import (
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

func TestExpandFilter(t *testing.T) {
	tests := []struct {
		template, login, want string
		wantErr               bool
	}{
		{"(uid={login})", "alice", "(uid=alice)", false},
		{"(uid={login})", "*", `(uid=\2a)`, false},
		{"(uid={login})", "a)(uid=*", `(uid=a\29\28uid=\2a)`, false},
		{"(uid={login})", `back\slash`, `(uid=back\5cslash)`, false},
		{"(&(objectClass=person)(|(uid={login})(mail={login})))", "bob", "(&(objectClass=person)(|(uid=bob)(mail=bob)))", false},
		{"(uid={login}", "x", "", true},
		{"(uid={user})", "x", "", true},
		{"(uid={login)", "x", "", true},
	}
	for _, tt := range tests {
		got, err := ExpandFilter(tt.template, map[string]string{"login": tt.login})
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ExpandFilter(%q, %q) = %q, %v; want %q", tt.template, tt.login, got, err, tt.want)
		}
	}
}

// FuzzExpandFilter checks that no login, whatever its bytes, changes the
// structure of the filter: the result is always the one equality match,
// asserting exactly the login.
func FuzzExpandFilter(f *testing.F) {
	for _, s := range []string{"alice", "*", "a)(uid=*", `\`, "\x00", "é", "(|(a=b))"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, login string) {
		got, err := ExpandFilter("(&(objectClass=person)(uid={login}))", map[string]string{"login": login})
		if err != nil {
			if login == "" {
				return
			}
			t.Fatalf("ExpandFilter(%q): %v", login, err)
		}
		p, err := ldap.CompileFilter(got)
		if err != nil {
			t.Fatalf("compile %q: %v", got, err)
		}
		if p.Tag != ldap.FilterAnd || len(p.Children) != 2 {
			t.Fatalf("%q: not an AND of two", got)
		}
		eq := p.Children[1]
		if eq.Tag != ldap.FilterEqualityMatch || len(eq.Children) != 2 {
			t.Fatalf("%q: second term is not an equality match", got)
		}
		if v := eq.Children[1].Data.String(); v != login {
			t.Fatalf("%q asserts %q, want %q", got, v, login)
		}
	})
}

// FuzzParseReferral feeds referral URLs, which come from the directory:
// a referral is followed only to an ldap:// or ldaps:// server.
func FuzzParseReferral(f *testing.F) {
	for _, s := range []string{"ldap://h:389/dc=x??sub", "ldaps://h/", "http://h/x", "ldap://%zz/", "ldap://h/ou=a%2Cb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		server, _, err := parseReferral(ref)
		if err != nil {
			return
		}
		host, ok := strings.CutPrefix(server, "ldap://")
		if !ok {
			host, ok = strings.CutPrefix(server, "ldaps://")
		}
		if !ok || host == "" || strings.ContainsAny(host, "/?#") {
			t.Fatalf("parseReferral(%q) = server %q", ref, server)
		}
	})
}
