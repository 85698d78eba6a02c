package inventory

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
)

// ErrNoLinkedUser is returned by OIDCUser when no User is linked to the
// provider account and none may be created for it.
var ErrNoLinkedUser = errors.New("no user is linked to this provider account")

// OIDCUser returns the name of the User a single sign-on signs in as: the
// one whose oidc_issuer and oidc_subject are issuer and subject. When
// there is none and create is true, it creates a User with source oidc,
// linked to the account, named username (the configured claim), and
// returns once the current Snapshot has it.
//
// The email never finds a user, and a name is never reused: if username
// is taken by any other user or service account, linked or not, the
// sign-in is refused, so that a second provider account with the same
// name or email cannot become the first.
//
// groups are the provider's groups claim: a User the provider owns
// (source oidc) takes them as its groups at every sign-in, so that
// policies on those groups apply and a group removed at the provider is
// gone at the next sign-in. A local User linked to the provider keeps
// the groups its admin gave it.
func (inv *Inventory) OIDCUser(ctx context.Context, issuer, subject, username, email string, groups []string, create bool) (string, error) {
	if issuer == "" || subject == "" {
		return "", fmt.Errorf("oidc user: issuer and subject are required: %w", ErrNoLinkedUser)
	}
	name, err := inv.linkedUser(ctx, issuer, subject)
	if err != nil {
		return "", err
	}
	if name != "" {
		return name, inv.syncOIDCGroups(ctx, name, groups)
	}
	if !create {
		return "", fmt.Errorf("oidc user %s at %s: %w", subject, issuer, ErrNoLinkedUser)
	}
	u := &resource.User{Kind: resource.KindUser, Name: username, Email: email, Source: resource.SourceOIDC,
		OIDCIssuer: issuer, OIDCSubject: subject, Groups: oidcGroups(groups)}
	if u.Validate() != nil {
		u.Email = ""
	}
	if err := u.Validate(); err != nil {
		return "", fmt.Errorf("oidc user %s at %s: cannot create a user named %q: %v: %w", subject, issuer, username, err, ErrNoLinkedUser)
	}
	if id, ok := inv.Snapshot().Identity(username); ok && id.Kind != policy.SubjectUser {
		return "", fmt.Errorf("oidc user %s at %s: %q is a service account: %w", subject, issuer, username, ErrNoLinkedUser)
	}
	_, err = inv.Create(ctx, u)
	if errors.Is(err, ErrExists) {
		// Another sign-in of the same account may have created it just
		// now (on this gateway or another); any other owner of the name
		// keeps it.
		name, lerr := inv.linkedUser(ctx, issuer, subject)
		if lerr != nil || name != "" {
			return name, lerr
		}
		return "", fmt.Errorf("oidc user %s at %s: the name %q belongs to another user: %w", subject, issuer, username, ErrNoLinkedUser)
	}
	if err != nil {
		return "", fmt.Errorf("create oidc user %q: %w", username, err)
	}
	return username, nil
}

// linkedUser returns the name of the User linked to (issuer, subject), ""
// if none, reloading the snapshot when it does not know the user yet.
// Console sign-ins are rare enough for a scan of the users.
func (inv *Inventory) linkedUser(ctx context.Context, issuer, subject string) (string, error) {
	objs, err := inv.List(ctx, resource.KindUser)
	if err != nil {
		return "", fmt.Errorf("oidc user: list users: %w", err)
	}
	for _, o := range objs {
		u, ok := o.(*resource.User)
		if !ok || u.OIDCIssuer != issuer || u.OIDCSubject != subject {
			continue
		}
		if _, ok := inv.Snapshot().Identity(u.Name); !ok {
			if err := inv.Reload(ctx); err != nil {
				return "", fmt.Errorf("reload after oidc user %q: %w", u.Name, err)
			}
		}
		return u.Name, nil
	}
	return "", nil
}

// oidcGroups keeps the claim's groups that are valid group names, sorted
// and without repeats (a provider's odd names are not worth refusing a
// sign-in over; they just match no policy).
func oidcGroups(groups []string) []string {
	var out []string
	for _, g := range groups {
		if resource.ValidName(g) && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out
}

// syncOIDCGroups sets the groups of the provider-owned User name to the
// claim's, when they differ.
func (inv *Inventory) syncOIDCGroups(ctx context.Context, name string, groups []string) error {
	o, err := inv.Get(ctx, resource.KindUser, name)
	if err != nil {
		return fmt.Errorf("oidc user %q: %w", name, err)
	}
	u, ok := o.(*resource.User)
	if !ok || u.Source != resource.SourceOIDC {
		return nil
	}
	want := oidcGroups(groups)
	if slices.Equal(u.Groups, want) {
		return nil
	}
	u.Groups = want
	if _, err := inv.Apply(ctx, []resource.Object{u}); err != nil {
		return fmt.Errorf("oidc user %q: update groups: %w", name, err)
	}
	return nil
}
