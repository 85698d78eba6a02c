package inventory

import (
	"context"
	"errors"
	"fmt"

	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// ErrLocalUser is returned by EnsureDirectoryUser when a local user
// (applied by an admin, no source) has the name: the directory never
// speaks for a local user.
var ErrLocalUser = errors.New("a local user has this name")

// EnsureDirectoryUser makes sure a User with source ldap exists for a
// directory user who just signed in, creating it on the first sign-in, and
// returns once the current Snapshot has it. Only the name and email are
// stored: groups and directory keys stay in the directory and are read
// from it. An email the resource would refuse is left out.
func (inv *Inventory) EnsureDirectoryUser(ctx context.Context, name, email string) error {
	u := &resource.User{Kind: resource.KindUser, Name: name, Email: email, Source: resource.SourceLDAP}
	if u.Validate() != nil {
		u.Email = ""
	}
	if err := u.Validate(); err != nil {
		return fmt.Errorf("directory user %q: %w", name, err)
	}
	if id, ok := inv.Snapshot().Identity(name); ok && id.Kind != policy.SubjectUser {
		return fmt.Errorf("directory user %q: a service account: %w", name, ErrLocalUser)
	}
	old, err := inv.Create(ctx, u)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrExists) {
		return fmt.Errorf("create directory user %q: %w", name, err)
	}
	if prev, ok := old.(*resource.User); !ok || prev.Source != resource.SourceLDAP {
		return fmt.Errorf("directory user %q: %w", name, ErrLocalUser)
	}
	// It exists but the snapshot may predate it (another gateway created
	// it): reload so that the caller's next Snapshot knows the user.
	if _, ok := inv.Snapshot().Identity(name); !ok {
		if err := inv.Reload(ctx); err != nil {
			return fmt.Errorf("reload after directory user %q: %w", name, err)
		}
	}
	return nil
}

// IsLocalIdentity reports whether name is an identity the directory must
// not speak for: a service account, or a User without source ldap. An
// unknown name is not local (it may be a directory user's first sign-in).
func (inv *Inventory) IsLocalIdentity(ctx context.Context, name string) (bool, error) {
	id, ok := inv.Snapshot().Identity(name)
	if !ok {
		return false, nil
	}
	if id.Kind != policy.SubjectUser {
		return true, nil
	}
	o, err := inv.Get(ctx, resource.KindUser, name)
	if errors.Is(err, store.ErrNotFound) {
		// Deleted since the snapshot: as unknown.
		return false, nil
	}
	if err != nil {
		return false, err
	}
	u, ok := o.(*resource.User)
	return !ok || u.Source != resource.SourceLDAP, nil
}
