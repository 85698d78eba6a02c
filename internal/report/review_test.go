package report_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/report"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// allowed asks the gateway's current policy engine, as the SSH front does.
func (w *world) allowed(user, target, account string) bool {
	e := w.inv.Snapshot().Engine
	return e.Decide(policy.Request{Kind: policy.SubjectUser, Subject: user, Action: resource.ActionShell, Target: target,
		TargetUser: account, AnySource: true, Now: now, Groups: e.Groups(user)}).Allow
}

// TestAccessReviewCampaign opens a campaign over the seeded entitlements,
// tries to get around its rules (reviewing one's own access, access one
// granted, a decision twice, closing early), revokes a direct grant and a
// local group membership and sees the policy engine deny them at once,
// then signs off and reads the campaign back as a report.
func TestAccessReviewCampaign(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	al := audit.New(w.st, slog.New(slog.DiscardHandler))
	rv := &report.Reviews{Source: w.src, Inventory: w.inv, Audit: al.Write, Now: func() time.Time { return now }}
	c, items, err := rv.Start(ctx, "ivy", "")
	if err != nil {
		t.Fatal(err)
	}
	find := func(identity, via, target, account string) store.ReviewItem {
		i := slices.IndexFunc(items, func(it store.ReviewItem) bool {
			return it.Identity == identity && it.Via == via && it.Target == target && it.TargetUser == account
		})
		if i < 0 {
			t.Fatalf("no item %s %s %s %s in %+v", identity, via, target, account, items)
		}
		return items[i]
	}
	frankRoot := find("frank", "direct", "db1", "root")
	if frankRoot.GrantedBy != "frank" || frankRoot.Privileged == "" {
		t.Fatalf("frank's root item: %+v", frankRoot)
	}
	erinWeb := find("erin", "group:web-team", "web1", "svc")
	aliceDB := find("alice", "directory-group:eng", "db1", "svc")
	backup := find("backup", "direct", "web2", "svc")

	for _, tc := range []struct {
		name     string
		item     store.ReviewItem
		reviewer string
		want     error
	}{
		{"own access", erinWeb, "erin", report.ErrSelfReview},
		{"access one granted", frankRoot, "frank", report.ErrSelfReview},
		{"own service account", backup, "erin", report.ErrSelfReview},
		{"directory group", aliceDB, "ivy", report.ErrNotEnforceable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rv.Decide(ctx, c.ID, tc.item.Item, tc.reviewer, store.ReviewRevoke, "")
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decide = %v, want %v", err, tc.want)
			}
		})
	}
	if !w.allowed("frank", "db1", "root") || !w.allowed("erin", "web1", "svc") {
		t.Fatal("refused decisions changed access")
	}
	if err := rv.Close(ctx, c.ID, "ivy", "all reviewed"); !errors.Is(err, report.ErrPending) {
		t.Fatalf("close with pending items = %v", err)
	}
	// Revoke a direct grant and a group membership: both end at once.
	it, err := rv.Decide(ctx, c.ID, frankRoot.Item, "ivy", store.ReviewRevoke, "no standing root")
	if err != nil {
		t.Fatal(err)
	}
	if it.Effect != "removed frank from the subjects of policy db-root" || w.allowed("frank", "db1", "root") {
		t.Fatalf("revoke frank's root: %+v, still allowed %v", it, w.allowed("frank", "db1", "root"))
	}
	if _, err := rv.Decide(ctx, c.ID, frankRoot.Item, "joe", store.ReviewKeep, ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second decision = %v", err)
	}
	if _, err := rv.Decide(ctx, c.ID, erinWeb.Item, "ivy", store.ReviewRevoke, "left the team"); err != nil {
		t.Fatal(err)
	}
	if w.allowed("erin", "web1", "svc") || w.allowed("erin", "web2", "erin") {
		t.Fatal("erin still reaches the web-team targets")
	}
	// Keep the rest; the directory item is kept with a note after the
	// membership was changed in the directory.
	items, err = w.st.ListReviewItems(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Decision != "" {
			continue
		}
		reviewer := "ivy"
		if it.GrantedBy == "ivy" {
			reviewer = "joe"
		}
		if _, err := rv.Decide(ctx, c.ID, it.Item, reviewer, store.ReviewKeep, "needed"); err != nil {
			t.Fatalf("keep item %d: %v", it.Item, err)
		}
	}
	if err := rv.Close(ctx, c.ID, "ivy", "Q4 review: two revoked"); err != nil {
		t.Fatal(err)
	}
	if _, err := rv.Decide(ctx, c.ID, 1, "ivy", store.ReviewKeep, ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("decide after close = %v", err)
	}
	// The change history lists the revocations with their before and
	// after; the campaign is a report.
	ex, err := w.gen.Generate(ctx, report.Request{Kind: "access-review", By: "ivy", Formats: []string{"json"},
		Params: report.Params{Since: now.Add(-time.Hour), Until: now.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Manifest.Rows != len(items) {
		t.Fatalf("access-review report has %d rows, campaign %d items", ex.Manifest.Rows, len(items))
	}
	evs, err := w.st.ListAudit(ctx, store.AuditFilter{Type: audit.ResourceApply})
	if err != nil {
		t.Fatal(err)
	}
	var revoked []string
	for _, ev := range evs {
		if ev.User == "ivy" {
			revoked = append(revoked, ev.Message)
		}
	}
	if len(revoked) != 2 {
		t.Fatalf("resource changes by the reviewer: %q", revoked)
	}
}

// TestKubernetesAccessReviewed blocks standing cluster access hiding from
// access reviews: a kubernetes policy has cluster users and groups, not
// target users, and must still give one item per impersonated identity
// (system:masters marked privileged), which a reviewer can revoke like
// any other.
func TestKubernetesAccessReviewed(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	objs, err := resource.DecodeYAML([]byte(`kind: User
name: mallory
---
kind: User
name: oscar
---
kind: Target
name: k1
protocol: kubernetes
url: https://127.0.0.1:6443
tls_pin_sha256: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
credential: {type: bearer, account: gateway}
---
kind: Policy
name: kube-admin
type: kubernetes
subjects: {users: [mallory, oscar]}
targets: {names: [k1]}
cluster_groups: [system:masters]
---
kind: Policy
name: kube-view
type: kubernetes
subjects: {users: [oscar]}
targets: {names: [k1]}
cluster_users: [viewer]
cluster_groups: [view]
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.inv.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	al := audit.New(w.st, slog.New(slog.DiscardHandler))
	rv := &report.Reviews{Source: w.src, Inventory: w.inv, Audit: al.Write, Now: func() time.Time { return now }}
	c, items, err := rv.Start(ctx, "ivy", "")
	if err != nil {
		t.Fatal(err)
	}
	var masters store.ReviewItem
	for _, tc := range []struct {
		identity, policy, account string
		privileged                bool
	}{
		{"mallory", "kube-admin", "user:mallory", false},
		{"mallory", "kube-admin", "group:system:masters", true},
		{"oscar", "kube-admin", "group:system:masters", true},
		{"oscar", "kube-view", "user:viewer", false},
		{"oscar", "kube-view", "group:view", false},
	} {
		i := slices.IndexFunc(items, func(it store.ReviewItem) bool {
			return it.Identity == tc.identity && it.Policy == tc.policy && it.Target == "k1" && it.TargetUser == tc.account
		})
		if i < 0 {
			t.Fatalf("no review item for %s on k1 as %s (%s)", tc.identity, tc.account, tc.policy)
		}
		if got := items[i].Privileged != ""; got != tc.privileged {
			t.Errorf("%s as %s: privileged %q, want %v", tc.identity, tc.account, items[i].Privileged, tc.privileged)
		}
		if tc.identity == "mallory" && tc.privileged {
			masters = items[i]
		}
	}
	kube := func(user string) bool {
		e := w.inv.Snapshot().Engine
		return e.DecideKube(policy.KubeRequest{Kind: policy.SubjectUser, Subject: user, Target: "k1", Discovery: true,
			Source: netip.MustParseAddr("127.0.0.1"), Now: now}).Allow
	}
	if !kube("mallory") {
		t.Fatal("mallory has no cluster access before the revoke: the test proves nothing")
	}
	it, err := rv.Decide(ctx, c.ID, masters.Item, "ivy", store.ReviewRevoke, "no standing cluster admin")
	if err != nil {
		t.Fatal(err)
	}
	if it.Effect != "removed mallory from the subjects of policy kube-admin" || kube("mallory") || !kube("oscar") {
		t.Fatalf("revoke: effect %q; mallory allowed %v, oscar allowed %v", it.Effect, kube("mallory"), kube("oscar"))
	}
}
