package signin_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/signin"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

func TestCheck(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(testenv.ShortTempDir(t), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v, _ := vault.New(key)
	inv, err := inventory.New(ctx, st, v, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Apply(ctx, []resource.Object{
		&resource.User{Kind: resource.KindUser, Name: "alice"},
		&resource.User{Kind: resource.KindUser, Name: "carol", MFA: "required"},
	}); err != nil {
		t.Fatal(err)
	}
	for user, pw := range map[string]string{"alice": "alice-pw", "carol": "carol-pw"} {
		h, _ := password.Hash(pw)
		if err := st.SetPassword(ctx, user, h, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	dir := func(_ context.Context, user, pw string) (bool, error) {
		switch {
		case user == "down":
			return false, errors.New("ldap unreachable")
		case user == "dave" && pw == "dave-ldap":
			// The directory creates the user on first sign-in.
			_, err := inv.Apply(ctx, []resource.Object{&resource.User{Kind: resource.KindUser, Name: "dave", Source: resource.SourceLDAP}})
			return err == nil, err
		}
		return false, nil
	}
	c := &signin.Checker{Credentials: st, Snapshot: inv.Snapshot, DirectoryPassword: dir,
		Groups: func(_ context.Context, user string) ([]string, error) { return []string{"ldap-" + user}, nil }}
	src := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name, user, pw string
		codeRequired   bool
		ok             bool
		why, tell      string
		method         string
	}{
		{name: "local password", user: "alice", pw: "alice-pw", ok: true, method: "password"},
		{name: "wrong password", user: "alice", pw: "nope", why: "wrong user name or password"},
		{name: "local user never asks the directory", user: "alice", pw: "dave-ldap", why: "wrong user name or password"},
		{name: "unknown user", user: "mallory", pw: "x", why: "wrong user name or password"},
		{name: "directory user", user: "dave", pw: "dave-ldap", ok: true, method: "directory password"},
		{name: "directory down", user: "down", pw: "x", why: "ldap unreachable", tell: "try again later"},
		{name: "empty password", user: "alice", pw: "", why: "empty"},
		{name: "user requires a code, none given", user: "carol", pw: "carol-pw", why: "no verification code", tell: "append the 6-digit code"},
		{name: "code given, no MFA service", user: "carol", pw: "carol-pw123456", why: "no MFA service"},
		{name: "policy requires a code", user: "alice", pw: "alice-pw", codeRequired: true, why: "no verification code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := signin.Attempt{User: tt.user, Password: tt.pw, Addr: src, Source: "127.0.0.1:1", Via: "test"}
			if tt.codeRequired {
				a.CodeRequired = func(*inventory.Snapshot, inventory.Identity, []string) bool { return true }
			}
			res := c.Check(ctx, a)
			if res.OK != tt.ok || !strings.Contains(res.Why, tt.why) || !strings.Contains(res.Tell, tt.tell) || tt.method != "" && res.Method != tt.method {
				t.Fatalf("got %+v", res)
			}
			if res.OK && (res.Ident.Name != tt.user || len(res.Groups) != 1) {
				t.Fatalf("identity %+v groups %v", res.Ident, res.Groups)
			}
		})
	}
}
