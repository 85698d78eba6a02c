package inventory

import (
	"context"
	"errors"
	"testing"

	"github.com/portcullis/portcullis/internal/resource"
)

func TestDirectoryUsers(t *testing.T) {
	ctx := context.Background()
	g := newGateway(t, "", nil)
	mustApply(t, g, decode(t, `
kind: User
name: admin
ssh_keys: [`+newKey(t).line+`]
---
kind: ServiceAccount
name: stats
owner: admin
`))
	// A second gateway on the same store: the user one creates, the other
	// knows at once.
	other := newGateway(t, g.path, g.vault)

	tests := []struct {
		name, user, email string
		wantErr           error
		wantLocal         bool
		wantEmail         string
	}{
		{name: "first sign-in creates", user: "dora", email: "dora@example.test", wantEmail: "dora@example.test"},
		{name: "second sign-in keeps", user: "dora", email: "dora@example.test", wantEmail: "dora@example.test"},
		{name: "bad email left out", user: "eve", email: "not an email", wantEmail: ""},
		{name: "local user refused", user: "admin", wantErr: ErrLocalUser, wantLocal: true},
		{name: "service account refused", user: "stats", wantErr: ErrLocalUser, wantLocal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local, err := g.inv.IsLocalIdentity(ctx, tt.user)
			if err != nil || local != tt.wantLocal {
				t.Fatalf("IsLocalIdentity(%q) = %v, %v; want %v", tt.user, local, err, tt.wantLocal)
			}
			err = g.inv.EnsureDirectoryUser(ctx, tt.user, tt.email)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("EnsureDirectoryUser(%q) = %v, want %v", tt.user, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("EnsureDirectoryUser(%q): %v", tt.user, err)
			}
			if _, ok := g.inv.Snapshot().Identity(tt.user); !ok {
				t.Fatalf("snapshot lacks %q after EnsureDirectoryUser", tt.user)
			}
			o, err := g.inv.Get(ctx, resource.KindUser, tt.user)
			if err != nil {
				t.Fatal(err)
			}
			if u := o.(*resource.User); u.Source != resource.SourceLDAP || u.Email != tt.wantEmail {
				t.Errorf("stored %+v, want source ldap, email %q", u, tt.wantEmail)
			}
			if err := other.inv.EnsureDirectoryUser(ctx, tt.user, tt.email); err != nil {
				t.Fatalf("other gateway: %v", err)
			}
			if _, ok := other.inv.Snapshot().Identity(tt.user); !ok {
				t.Errorf("other gateway's snapshot lacks %q", tt.user)
			}
		})
	}
}
