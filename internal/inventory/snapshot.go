package inventory

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// Identity is who a verified key belongs to.
type Identity struct {
	Kind policy.SubjectKind
	Name string
}

// Snapshot is one consistent, compiled view of the resources. It is never
// modified after load, so any number of goroutines read it without locks.
type Snapshot struct {
	// Revision is the store revision it was loaded at.
	Revision int64
	// Engine decides access.
	Engine *policy.Engine

	// keys maps an identity name to its authorized keys in wire format.
	keys     map[string][][]byte
	idents   map[string]Identity
	accounts map[string]*resource.Account
	secrets  map[string][]byte // sealed account keys by "target/name"
	// roles holds each user's administrative roles (resource.RoleAdmin,
	// resource.RoleAuditor); a user without roles has an empty entry.
	roles map[string][]string
}

func load(ctx context.Context, st store.Store) (*Snapshot, error) {
	rev, err := st.Revision(ctx)
	if err != nil {
		return nil, fmt.Errorf("read store revision: %w", err)
	}
	recs, err := st.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("load resources: %w", err)
	}
	w, err := decodeRecords(recs)
	if err != nil {
		return nil, err
	}
	eng, err := w.compile()
	if err != nil {
		return nil, err
	}
	s := &Snapshot{
		Revision: rev,
		Engine:   eng,
		keys:     map[string][][]byte{},
		idents:   map[string]Identity{},
		accounts: map[string]*resource.Account{},
		secrets:  map[string][]byte{},
		roles:    map[string][]string{},
	}
	for _, r := range recs {
		if r.Kind == string(resource.KindAccount) {
			s.secrets[r.Name] = r.Secret
		}
	}
	for _, o := range w.byKey {
		switch o := o.(type) {
		case *resource.User:
			s.idents[o.Name] = Identity{Kind: policy.SubjectUser, Name: o.Name}
			s.keys[o.Name] = wireKeys(o.SSHKeys)
			s.roles[o.Name] = append([]string{}, o.Roles...)
		case *resource.ServiceAccount:
			s.idents[o.Name] = Identity{Kind: policy.SubjectServiceAccount, Name: o.Name}
			s.keys[o.Name] = wireKeys(o.SSHKeys)
		case *resource.Account:
			s.accounts[o.GetName()] = o
		}
	}
	return s, nil
}

// wireKeys parses keys already validated on apply; one that no longer
// parses is skipped, which denies it.
func wireKeys(list []string) [][]byte {
	out := make([][]byte, 0, len(list))
	for _, k := range list {
		pk, err := resource.ParseAuthorizedKey(k)
		if err == nil {
			out = append(out, pk.Marshal())
		}
	}
	return out
}

// Authenticate returns the identity called name if key is one of its
// registered keys. The caller must have verified the client's possession of
// the key (x/crypto does, before the connection's permissions are final).
func (s *Snapshot) Authenticate(name string, key ssh.PublicKey) (Identity, bool) {
	id, ok := s.idents[name]
	if !ok {
		return Identity{}, false
	}
	wire := key.Marshal()
	for _, k := range s.keys[name] {
		if bytes.Equal(k, wire) {
			return id, true
		}
	}
	return Identity{}, false
}

// Identity returns the user or service account called name.
func (s *Snapshot) Identity(name string) (Identity, bool) {
	id, ok := s.idents[name]
	return id, ok
}

// UserRoles returns the roles of the user called name, and whether such a
// user exists (a service account is not a user: it has no roles and may
// not administer). The slice is shared: do not modify it.
func (s *Snapshot) UserRoles(name string) ([]string, bool) {
	r, ok := s.roles[name]
	return r, ok
}

// Exists reports whether an identity called name exists.
func (s *Snapshot) Exists(name string) bool {
	_, ok := s.idents[name]
	return ok
}

// AccountKey returns the sealed private key of account target/name and the
// additional data it was sealed with, for vault.Signer.
func (s *Snapshot) AccountKey(target, name string) (sealed []byte, aad string, ok bool) {
	key := target + "/" + name
	sealed, ok = s.secrets[key]
	return sealed, accountAAD(key), ok && len(sealed) > 0
}

// AccountPassword returns the sealed password of a database account and
// the associated data to open it with; ok is false when the account holds
// none (an SSH account's key never opens as a password: see toRecord).
func (s *Snapshot) AccountPassword(target, name string) (sealed []byte, aad string, ok bool) {
	key := target + "/" + name
	sealed, ok = s.secrets[key]
	return sealed, accountPasswordAAD(key), ok && len(sealed) > 0
}

// Account returns account target/name, or nil.
func (s *Snapshot) Account(target, name string) *resource.Account {
	return s.accounts[target+"/"+name]
}

func authorizedKey(pub ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// Accounts returns every account, in no particular order. The accounts are
// shared: do not modify them.
func (s *Snapshot) Accounts() []*resource.Account {
	out := make([]*resource.Account, 0, len(s.accounts))
	for _, a := range s.accounts {
		out = append(out, a)
	}
	return out
}
