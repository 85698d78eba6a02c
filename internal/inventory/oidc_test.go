package inventory

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/portcullis/portcullis/internal/resource"
)

func TestOIDCUsers(t *testing.T) {
	ctx := context.Background()
	const iss = "https://id.example"
	g := newGateway(t, "", nil)
	mustApply(t, g, decode(t, `
kind: User
name: admin
ssh_keys: [`+newKey(t).line+`]
---
kind: User
name: linked
oidc_issuer: https://id.example
oidc_subject: sub-linked
---
kind: ServiceAccount
name: stats
owner: admin
`))
	other := newGateway(t, g.path, g.vault)

	tests := []struct {
		name                         string
		issuer, sub, username, email string
		create                       bool
		want                         string
		wantErr                      error
	}{
		{name: "linked local user", issuer: iss, sub: "sub-linked", username: "whatever", want: "linked"},
		{name: "unlinked, no creation", issuer: iss, sub: "sub-dora", username: "dora", wantErr: ErrNoLinkedUser},
		{name: "first sign-in creates", issuer: iss, sub: "sub-dora", username: "dora", email: "dora@example.test", create: true, want: "dora"},
		{name: "second sign-in finds", issuer: iss, sub: "sub-dora", username: "renamed", create: true, want: "dora"},
		{name: "same name, other subject", issuer: iss, sub: "sub-mallory", username: "dora", email: "dora@example.test", create: true, wantErr: ErrNoLinkedUser},
		{name: "same subject, other issuer", issuer: "https://other.example", sub: "sub-dora", username: "dora", create: true, wantErr: ErrNoLinkedUser},
		{name: "local user's name", issuer: iss, sub: "sub-x", username: "admin", create: true, wantErr: ErrNoLinkedUser},
		{name: "service account's name", issuer: iss, sub: "sub-y", username: "stats", create: true, wantErr: ErrNoLinkedUser},
		{name: "invalid name", issuer: iss, sub: "sub-z", username: "a/b", create: true, wantErr: ErrNoLinkedUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := g.inv.OIDCUser(ctx, tt.issuer, tt.sub, tt.username, tt.email, nil, tt.create)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("OIDCUser = %q, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("OIDCUser = %q, %v; want %q", got, err, tt.want)
			}
			if _, ok := g.inv.Snapshot().Identity(got); !ok {
				t.Fatalf("snapshot lacks %q", got)
			}
			// The other gateway finds the same user, without creating.
			if o, err := other.inv.OIDCUser(ctx, tt.issuer, tt.sub, tt.username, tt.email, nil, false); err != nil || o != got {
				t.Errorf("other gateway: %q, %v", o, err)
			}
		})
	}
	o, err := g.inv.Get(ctx, resource.KindUser, "dora")
	if err != nil {
		t.Fatal(err)
	}
	if u := o.(*resource.User); u.Source != resource.SourceOIDC || u.OIDCIssuer != iss || u.OIDCSubject != "sub-dora" || u.Email != "dora@example.test" {
		t.Errorf("created %+v", u)
	}
}

// TestOIDCGroups: a provider-owned user takes the groups claim at every
// sign-in (usable by policies); a local user linked to the provider keeps
// its own.
func TestOIDCGroups(t *testing.T) {
	ctx := context.Background()
	const iss = "https://id.example"
	g := newGateway(t, "", nil)
	mustApply(t, g, decode(t, `
kind: User
name: linked
groups: [local-team]
oidc_issuer: https://id.example
oidc_subject: sub-linked
`))
	groupsOf := func(name string) []string {
		t.Helper()
		o, err := g.inv.Get(ctx, resource.KindUser, name)
		if err != nil {
			t.Fatal(err)
		}
		return o.(*resource.User).Groups
	}
	for _, tc := range []struct {
		claim []string
		want  string
	}{
		{[]string{"ops", "dba", "ops", "not a name!"}, "[dba ops]"},
		{[]string{"dba"}, "[dba]"}, // removed at the provider: gone here
		{nil, "[]"},
	} {
		if _, err := g.inv.OIDCUser(ctx, iss, "sub-dora", "dora", "", tc.claim, true); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(groupsOf("dora")); got != tc.want {
			t.Errorf("claim %v: groups %s, want %s", tc.claim, got, tc.want)
		}
	}
	if _, err := g.inv.OIDCUser(ctx, iss, "sub-linked", "x", "", []string{"ops"}, false); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(groupsOf("linked")); got != "[local-team]" {
		t.Errorf("a local linked user's groups became %s", got)
	}
}
