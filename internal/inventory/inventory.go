// Package inventory is the domain service over the declarative resources:
// it applies streams atomically after checking references across the stream
// and the store, seals account keys through the vault, strips secrets from
// everything it returns, and keeps a compiled Snapshot (identities by key,
// the policy engine, account credentials) that the protocol fronts read
// without touching the database on the hot path.
//
// Snapshots are immutable and swapped atomically; Watch polls the store's
// revision so that a change made by another gateway sharing the store is
// picked up too, and subscribers (the SSH front) re-check live sessions
// whenever a new snapshot is installed.
package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/vault"
)

// Inventory manages resources and the current Snapshot.
type Inventory struct {
	store store.Store
	vault *vault.Vault
	log   *slog.Logger

	current atomic.Pointer[Snapshot]

	// mu serializes Apply, Delete and Reload so that a snapshot is never
	// built from a store state older than one already installed.
	mu   sync.Mutex
	subs []func(*Snapshot)
}

// New loads the first snapshot. It fails closed: if the store cannot be read
// or holds resources that no longer compile, the gateway does not start.
func New(ctx context.Context, st store.Store, v *vault.Vault, log *slog.Logger) (*Inventory, error) {
	inv := &Inventory{store: st, vault: v, log: log}
	snap, err := load(ctx, st)
	if err != nil {
		return nil, err
	}
	inv.current.Store(snap)
	return inv, nil
}

// Snapshot returns the current compiled state. Never nil after New.
func (inv *Inventory) Snapshot() *Snapshot { return inv.current.Load() }

// Subscribe registers fn to be called, in its own goroutine-free context
// (synchronously, after the swap), with every new snapshot. fn must not
// block for long: it runs while the inventory's write lock is held.
func (inv *Inventory) Subscribe(fn func(*Snapshot)) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.subs = append(inv.subs, fn)
}

// Reload rebuilds the snapshot from the store if its revision moved.
func (inv *Inventory) Reload(ctx context.Context) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.reloadLocked(ctx, false)
}

func (inv *Inventory) reloadLocked(ctx context.Context, force bool) error {
	if !force {
		rev, err := inv.store.Revision(ctx)
		if err != nil {
			return fmt.Errorf("read store revision: %w", err)
		}
		if rev == inv.current.Load().Revision {
			return nil
		}
	}
	snap, err := load(ctx, inv.store)
	if err != nil {
		return err
	}
	inv.current.Store(snap)
	for _, fn := range inv.subs {
		fn(snap)
	}
	return nil
}

// Watch polls the store every interval until ctx ends, installing a new
// snapshot when another writer changed it. When the store can announce
// changes (store.Notifier: PostgreSQL's LISTEN/NOTIFY), a change made by
// another gateway is loaded as soon as it is announced, and the poll only
// covers announcements lost while the connection was down. A failed reload
// keeps the last good snapshot and logs why: the resources it holds were
// valid when loaded, and denying everyone because the database blinked
// would turn a hiccup into an outage. Identity and policy still come from
// that snapshot.
func (inv *Inventory) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var changes <-chan struct{}
	if n, ok := inv.store.(store.Notifier); ok {
		changes = n.WatchChanges(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				changes = nil // the notifier stopped: polling goes on
				continue
			}
		case <-t.C:
		}
		if err := inv.Reload(ctx); err != nil && ctx.Err() == nil {
			inv.log.Error("reload resources", "err", err)
		}
	}
}

// ApplyResult reports what an Apply did.
type ApplyResult struct {
	Created   []string `json:"created,omitempty"`   // "Kind/name"
	Updated   []string `json:"updated,omitempty"`   // "Kind/name", changed
	Unchanged []string `json:"unchanged,omitempty"` // "Kind/name", applied as stored
	Warnings  []string `json:"warnings,omitempty"`  // e.g. a policy subject that does not exist yet
	// Diffs holds, for each updated resource, the fields that change.
	Diffs []Diff `json:"diffs,omitempty"`
	// DryRun is true when nothing was stored (Plan).
	DryRun bool `json:"dry_run,omitempty"`
	// Changes holds each created or updated resource as it was and as it
	// is now (JSON specs, which never hold secrets), for the audit trail.
	Changes []Change `json:"-"`
}

// Diff is the field-level change of one updated resource.
type Diff struct {
	Key    string      `json:"key"` // "Kind/name"
	Fields []FieldDiff `json:"fields"`
}

// FieldDiff is one top-level field of a resource spec before and after;
// a missing side is a field that is absent (empty) there. Specs hold no
// secrets, so neither do these.
type FieldDiff struct {
	Field  string          `json:"field"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// Change is one resource before and after an apply; Before is nil for a
// created resource.
type Change struct {
	Key    string          `json:"key"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after"`
}

// Apply stores a stream of objects in one transaction after checking every
// reference against the stream and the store. Objects are validated again
// here: the API accepts them from any client.
func (inv *Inventory) Apply(ctx context.Context, objs []resource.Object) (*ApplyResult, error) {
	if err := refuseGrants(objs); err != nil {
		return nil, err
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.applyLocked(ctx, objs, false, false)
}

// refuseGrants keeps JIT grants out of Apply, Plan and Create: only
// PutGrant makes them, for a request package jit approved, so that every
// JIT-xxxxxxxx policy has a request and a history behind it.
func refuseGrants(objs []resource.Object) error {
	for i, o := range objs {
		if p, ok := o.(*resource.Policy); ok && (p.JITGrant != nil || resource.IsJITGrantName(p.Name)) {
			return &resource.DocError{Index: i + 1, Kind: o.GetKind(), Name: o.GetName(),
				Err: fmt.Errorf("JIT grants are created by the gateway for approved requests (portcullis jit request / approve), not applied")}
		}
	}
	return nil
}

// PutGrant stores a JIT grant (a policy with JITGrant set), checked and
// compiled like any policy; live sessions are re-checked by the
// subscribers as for any change.
func (inv *Inventory) PutGrant(ctx context.Context, p *resource.Policy) error {
	if p.JITGrant == nil {
		return fmt.Errorf("policy %q is not a JIT grant", p.Name)
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	_, err := inv.applyLocked(ctx, []resource.Object{p}, true, false)
	return err
}

// Plan is Apply without storing anything: the same checks, warnings and
// result (with DryRun set), so that `apply --dry-run` says exactly what
// Apply would do at this moment. A new Account's key is generated to fill
// the result and then forgotten.
func (inv *Inventory) Plan(ctx context.Context, objs []resource.Object) (*ApplyResult, error) {
	if err := refuseGrants(objs); err != nil {
		return nil, err
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.applyLocked(ctx, objs, false, true)
}

// ErrExists is returned by Create when the resource exists.
var ErrExists = errors.New("already exists")

// Create stores o only if no resource of its kind and name exists, in the
// same critical section as the check, so that two creators racing (target
// registrations) cannot both win, nor overwrite what an apply just wrote;
// across gateways, the store's insert-only put (store.Change.Create)
// makes the loser fail.
// When o exists, Create returns the stored object and an error wrapping
// ErrExists.
func (inv *Inventory) Create(ctx context.Context, o resource.Object) (resource.Object, error) {
	if err := refuseGrants([]resource.Object{o}); err != nil {
		return nil, err
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	rec, err := inv.store.Get(ctx, string(o.GetKind()), o.GetName())
	switch {
	case err == nil:
		old, derr := decodeRecord(rec)
		if derr != nil {
			return nil, derr
		}
		return old, fmt.Errorf("%s %q: %w", o.GetKind(), o.GetName(), ErrExists)
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("read %s %q: %w", o.GetKind(), o.GetName(), err)
	}
	if _, err := inv.applyLocked(ctx, []resource.Object{o}, true, false); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// Another gateway created it after our read.
			if rec, gerr := inv.store.Get(ctx, string(o.GetKind()), o.GetName()); gerr == nil {
				if old, derr := decodeRecord(rec); derr == nil {
					return old, fmt.Errorf("%s %q: %w", o.GetKind(), o.GetName(), ErrExists)
				}
			}
		}
		return nil, err
	}
	return o, nil
}

// applyLocked is Apply with inv.mu held. With createOnly, an object that
// exists by the time the resources are read fails with ErrExists (read
// from the store: another gateway may have created it since Create
// looked) instead of being updated. With dryRun, nothing is stored.
func (inv *Inventory) applyLocked(ctx context.Context, objs []resource.Object, createOnly, dryRun bool) (*ApplyResult, error) {
	existing, err := inv.store.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("read current resources: %w", err)
	}
	world, err := decodeRecords(existing)
	if err != nil {
		return nil, err
	}
	stored := make(map[string]resource.Object, len(world.byKey))
	for key, o := range world.byKey {
		stored[key] = o
	}
	seen := map[string]int{}
	for i, o := range objs {
		if err := o.Validate(); err != nil {
			return nil, &resource.DocError{Index: i + 1, Kind: o.GetKind(), Name: o.GetName(), Err: err}
		}
		key := objKey(o)
		if prev, dup := seen[key]; dup {
			return nil, &resource.DocError{Index: i + 1, Kind: o.GetKind(), Name: o.GetName(), Err: fmt.Errorf("same %s as document %d", o.GetKind(), prev)}
		}
		seen[key] = i + 1
		world.put(o)
	}
	var res ApplyResult
	for i, o := range objs {
		warns, err := world.checkRefs(o)
		if err != nil {
			return nil, &resource.DocError{Index: i + 1, Kind: o.GetKind(), Name: o.GetName(), Err: err}
		}
		for _, w := range warns {
			res.Warnings = append(res.Warnings, fmt.Sprintf("document %d (%s %s): %s", i+1, o.GetKind(), o.GetName(), w))
		}
	}
	changes := make([]store.Change, 0, len(objs))
	for i, o := range objs {
		key := objKey(o)
		rec, err := inv.toRecord(o, stored[key])
		if err != nil {
			return nil, &resource.DocError{Index: i + 1, Kind: o.GetKind(), Name: o.GetName(), Err: err}
		}
		prev := stored[key]
		if createOnly && prev != nil {
			return nil, fmt.Errorf("%s: %w", key, store.ErrConflict)
		}
		if prev == nil {
			// Create: another gateway may create it between our read and
			// our write; that is a conflict, not an overwrite.
			changes = append(changes, store.Change{Record: rec, Create: true})
			res.Created = append(res.Created, key)
			res.Changes = append(res.Changes, Change{Key: key, After: rec.Spec})
			continue
		}
		before, err := json.Marshal(prev)
		if err != nil {
			return nil, fmt.Errorf("encode stored %s: %w", key, err)
		}
		if string(before) == string(rec.Spec) && rec.Secret == nil {
			res.Unchanged = append(res.Unchanged, key)
			continue
		}
		changes = append(changes, store.Change{Record: rec})
		res.Updated = append(res.Updated, key)
		res.Changes = append(res.Changes, Change{Key: key, Before: before, After: rec.Spec})
		fields, err := diffSpecs(before, rec.Spec)
		if err != nil {
			return nil, fmt.Errorf("compare %s: %w", key, err)
		}
		res.Diffs = append(res.Diffs, Diff{Key: key, Fields: fields})
		for _, f := range fields {
			if f.After == nil {
				// A User applied without ssh_keys loses them: say so, since
				// the file may simply have left the field out.
				res.Warnings = append(res.Warnings, fmt.Sprintf("document %d (%s %s): field %s had a value and this apply removes it",
					i+1, o.GetKind(), o.GetName(), f.Field))
			}
		}
	}
	// Compile before storing: a stream that would leave the gateway unable
	// to build its engine is refused whole.
	if _, err := world.compile(); err != nil {
		return nil, err
	}
	if len(changes) == 0 || dryRun {
		// Everything was applied as stored, or this is a plan: nothing to
		// write, no revision to bump, no live session to re-check.
		res.DryRun = dryRun
		return &res, nil
	}
	if err := inv.store.Apply(ctx, changes); err != nil {
		return nil, fmt.Errorf("store resources: %w", err)
	}
	if err := inv.reloadLocked(ctx, true); err != nil {
		return &res, fmt.Errorf("stored, but reload failed: %w", err)
	}
	return &res, nil
}

// toRecord turns an object into a store record, sealing an account's key:
// an imported key replaces the stored one; a new account without one gets a
// generated key; an existing account without one keeps its key.
func (inv *Inventory) toRecord(o resource.Object, prev resource.Object) (store.Record, error) {
	rec := store.Record{Kind: string(o.GetKind()), Name: o.GetName()}
	if t, ok := o.(*resource.Target); ok && (t.LearnedHostKey != "" || t.Agent != nil) {
		// Status shown by get, which a file made from `get -o yaml`
		// carries back: not part of the Target.
		cp := *t
		cp.LearnedHostKey, cp.Agent = "", nil
		o = &cp
	}
	if a, ok := o.(*resource.Account); ok {
		cp := *a
		aad := accountAAD(a.GetName())
		switch {
		case a.Password != "":
			// A database account's password, sealed under its own
			// associated data so that it never opens as an SSH key and a
			// key never opens as a password.
			sealed, err := inv.vault.Seal([]byte(a.Password), accountPasswordAAD(a.GetName()))
			if err != nil {
				return rec, fmt.Errorf("seal password: %w", err)
			}
			rec.Secret, cp.PublicKey, cp.KeyCreated = sealed, "", now()
		case a.PrivateKey != "":
			sealed, pub, err := inv.vault.ImportAccountKey([]byte(a.PrivateKey), aad)
			if err != nil {
				return rec, fmt.Errorf("field private_key_file: %w", err)
			}
			rec.Secret, cp.PublicKey, cp.KeyCreated = sealed, authorizedKey(pub), now()
		case prev == nil:
			sealed, pub, err := inv.vault.GenerateAccountKey(aad)
			if err != nil {
				return rec, fmt.Errorf("generate key: %w", err)
			}
			rec.Secret, cp.PublicKey, cp.KeyCreated = sealed, authorizedKey(pub), now()
		default:
			cp.PublicKey, cp.KeyCreated = "", nil
			if pa, ok := prev.(*resource.Account); ok {
				cp.PublicKey, cp.KeyCreated = pa.PublicKey, pa.KeyCreated
			}
		}
		cp.PrivateKey, cp.PrivateKeyFile, cp.Password, cp.PasswordFile = "", "", "", ""
		o = &cp
	}
	spec, err := json.Marshal(o)
	if err != nil {
		return rec, fmt.Errorf("encode: %w", err)
	}
	rec.Spec = spec
	return rec, nil
}

// ErrReferenced is wrapped by Delete's error when other resources still
// refer to the one to delete, so that fronts can tell a conflict (HTTP 409)
// from a failure.
var ErrReferenced = errors.New("still referred to")

// Delete removes one resource. A resource that others still refer to is
// not deleted: the error, wrapping ErrReferenced, names who refers to it.
func (inv *Inventory) Delete(ctx context.Context, kind resource.Kind, name string) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	existing, err := inv.store.List(ctx, "")
	if err != nil {
		return fmt.Errorf("read current resources: %w", err)
	}
	world, err := decodeRecords(existing)
	if err != nil {
		return err
	}
	key := string(kind) + "/" + name
	if _, ok := world.byKey[key]; !ok {
		return fmt.Errorf("%s %q: %w", kind, name, store.ErrNotFound)
	}
	if by := world.referrers(kind, name); len(by) > 0 {
		return fmt.Errorf("%s %q is %w by %s", kind, name, ErrReferenced, joinMax(by, 5))
	}
	if err := inv.store.Apply(ctx, []store.Change{{Record: store.Record{Kind: string(kind), Name: name}, Delete: true}}); err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, name, err)
	}
	if kind == resource.KindTarget {
		if err := inv.store.ForgetHostKey(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
			inv.log.Warn("forget host key of deleted target", "target", name, "err", err)
		}
	}
	return inv.reloadLocked(ctx, true)
}

// Get returns one resource without secrets.
func (inv *Inventory) Get(ctx context.Context, kind resource.Kind, name string) (resource.Object, error) {
	rec, err := inv.store.Get(ctx, string(kind), name)
	if err != nil {
		return nil, fmt.Errorf("get %s %q: %w", kind, name, err)
	}
	return decodeRecord(rec)
}

// List returns every resource of a kind (all kinds when kind is ""),
// without secrets, sorted.
func (inv *Inventory) List(ctx context.Context, kind resource.Kind) ([]resource.Object, error) {
	recs, err := inv.store.List(ctx, string(kind))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	out := make([]resource.Object, 0, len(recs))
	for _, r := range recs {
		o, err := decodeRecord(r)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	resource.SortObjects(out)
	return out, nil
}

// now is when a key is made, to the second: specs are compared as JSON to
// tell an unchanged apply, and a stored time must read back identical.
func now() *time.Time {
	t := time.Now().UTC().Truncate(time.Second)
	return &t
}

func objKey(o resource.Object) string { return string(o.GetKind()) + "/" + o.GetName() }

func accountAAD(name string) string { return "account:" + name }

// accountPasswordAAD binds a sealed database password to its account.
func accountPasswordAAD(name string) string { return "account-password:" + name }

func decodeRecord(r store.Record) (resource.Object, error) {
	kind, err := resource.ParseKind(r.Kind)
	if err != nil {
		return nil, fmt.Errorf("stored resource %s/%s: %w", r.Kind, r.Name, err)
	}
	o, err := resource.New(kind)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(r.Spec, o); err != nil {
		return nil, fmt.Errorf("stored %s %q is unreadable: %w", r.Kind, r.Name, err)
	}
	return o, nil
}

func joinMax(list []string, n int) string {
	if len(list) <= n {
		return fmt.Sprint(list)
	}
	return fmt.Sprintf("%v and %d more", list[:n], len(list)-n)
}

// Preview compiles the engine the stored resources would give with overlay
// applied on top, without storing anything.
func (inv *Inventory) Preview(ctx context.Context, overlay []resource.Object) (*policy.Engine, []string, error) {
	base, err := inv.List(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	return Preview(base, overlay)
}

// ErrKeyChanged is wrapped by ReplaceAccountKey's error when the account's
// stored key is no longer the one the caller rotated from.
var ErrKeyChanged = errors.New("account key changed meanwhile")

// ReplaceAccountKey stores sealed (made by the vault under the account's
// additional data, see Snapshot.AccountKey) as the key of account
// target/name, in one store transaction, but only if the stored key is
// still old: two rotations racing must not leave the store holding a key
// the target no longer accepts. The account's public key and public_key_created
// are updated with it.
func (inv *Inventory) ReplaceAccountKey(ctx context.Context, target, name string, old, sealed []byte, pub ssh.PublicKey) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	key := target + "/" + name
	rec, err := inv.store.Get(ctx, string(resource.KindAccount), key)
	if err != nil {
		return fmt.Errorf("read account %s: %w", key, err)
	}
	if !bytes.Equal(rec.Secret, old) {
		return fmt.Errorf("account %s: %w", key, ErrKeyChanged)
	}
	o, err := decodeRecord(rec)
	if err != nil {
		return err
	}
	a, ok := o.(*resource.Account)
	if !ok {
		return fmt.Errorf("stored account %s is a %T", key, o)
	}
	a.PublicKey, a.KeyCreated = authorizedKey(pub), now()
	spec, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode account %s: %w", key, err)
	}
	rec.Spec, rec.Secret = spec, sealed
	if err := inv.store.Apply(ctx, []store.Change{{Record: rec}}); err != nil {
		return fmt.Errorf("store new key of account %s: %w", key, err)
	}
	if err := inv.reloadLocked(ctx, true); err != nil {
		return fmt.Errorf("stored, but reload failed: %w", err)
	}
	return nil
}

// diffSpecs compares two JSON specs field by field (top level). A field
// whose value is empty (absent, null, "", [], {}, false, 0) on one side
// has no value on that side, since specs leave empty fields out.
func diffSpecs(before, after []byte) ([]FieldDiff, error) {
	var b, a map[string]json.RawMessage
	if err := json.Unmarshal(before, &b); err != nil {
		return nil, fmt.Errorf("decode stored spec: %w", err)
	}
	if err := json.Unmarshal(after, &a); err != nil {
		return nil, fmt.Errorf("decode new spec: %w", err)
	}
	names := map[string]bool{}
	for k := range b {
		names[k] = true
	}
	for k := range a {
		names[k] = true
	}
	var out []FieldDiff
	for _, k := range slices.Sorted(maps.Keys(names)) {
		bv, av := valueOrNil(b[k]), valueOrNil(a[k])
		if string(compactJSON(bv)) == string(compactJSON(av)) {
			continue
		}
		out = append(out, FieldDiff{Field: k, Before: bv, After: av})
	}
	return out, nil
}

// valueOrNil is v, or nil when v is an empty JSON value.
func valueOrNil(v json.RawMessage) json.RawMessage {
	switch string(compactJSON(v)) {
	case "", "null", `""`, "[]", "{}", "false", "0":
		return nil
	}
	return v
}

// compactJSON removes insignificant space, so that equal values compare
// equal whatever their formatting.
func compactJSON(v json.RawMessage) []byte {
	if v == nil {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return v
	}
	return buf.Bytes()
}
