package inventory

import (
	"context"
	"errors"
	"fmt"

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
func (inv *Inventory) OIDCUser(ctx context.Context, issuer, subject, username, email string, create bool) (string, error) {
	if issuer == "" || subject == "" {
		return "", fmt.Errorf("oidc user: issuer and subject are required: %w", ErrNoLinkedUser)
	}
	name, err := inv.linkedUser(ctx, issuer, subject)
	if err != nil || name != "" {
		return name, err
	}
	if !create {
		return "", fmt.Errorf("oidc user %s at %s: %w", subject, issuer, ErrNoLinkedUser)
	}
	u := &resource.User{Kind: resource.KindUser, Name: username, Email: email, Source: resource.SourceOIDC,
		OIDCIssuer: issuer, OIDCSubject: subject}
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
