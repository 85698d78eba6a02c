package inventory

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/resource"
)

const provisionTarget = `
kind: Target
name: web1
address: 10.0.0.5:22
provision_account: admin
`

// TestProvisionAccountRefs checks that a target's provision_account names
// an account on that target, in the store or the same stream, and that
// such an account cannot be deleted while the target names it.
func TestProvisionAccountRefs(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{name: "account in the stream", yaml: provisionTarget + "---\nkind: Account\nname: admin\ntarget: web1\n"},
		{name: "no such account", yaml: provisionTarget, wantErr: "field provision_account: account web1/admin does not exist"},
		{name: "account on another target", yaml: provisionTarget + "---\nkind: Target\nname: web2\naddress: 10.0.0.6:22\n---\nkind: Account\nname: admin\ntarget: web2\n",
			wantErr: "field provision_account: account web1/admin does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t, "", nil)
			_, err := g.inv.Apply(context.Background(), decode(t, tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Apply error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			err = g.inv.Delete(context.Background(), resource.KindAccount, "web1/admin")
			if !errors.Is(err, ErrReferenced) || !strings.Contains(err.Error(), "Target/web1") {
				t.Fatalf("Delete of the provision account: %v, want it refused naming Target/web1", err)
			}
		})
	}
}

// TestReplaceAccountKey checks the compare-and-store a rotation ends with.
func TestReplaceAccountKey(t *testing.T) {
	ctx := context.Background()
	g := newGateway(t, "", nil)
	mustApply(t, g, decode(t, "kind: Target\nname: web1\naddress: 10.0.0.5:22\n---\nkind: Account\nname: svc\ntarget: web1\n"))
	old, aad, ok := g.inv.Snapshot().AccountKey("web1", "svc")
	if !ok {
		t.Fatal("no key")
	}
	sealed, pub, err := g.vault.GenerateAccountKey(aad)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		from    []byte
		wantErr error
	}{
		{name: "stale old key", from: []byte("not the stored key"), wantErr: ErrKeyChanged},
		{name: "current old key", from: old},
		// The same rotation again: the stored key is no longer old.
		{name: "replayed", from: old, wantErr: ErrKeyChanged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := g.inv.ReplaceAccountKey(ctx, "web1", "svc", tc.from, sealed, pub)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ReplaceAccountKey = %v, want %v", err, tc.wantErr)
			}
		})
	}
	now, _, _ := g.inv.Snapshot().AccountKey("web1", "svc")
	if !bytes.Equal(now, sealed) {
		t.Fatal("the snapshot does not hold the new key")
	}
	if a := g.inv.Snapshot().Account("web1", "svc"); a.PublicKey != authorizedKey(pub) || a.KeyCreated == nil {
		t.Fatalf("account after replace: %+v", a)
	}
}
