package jit

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
)

const siteYAML = `
kind: User
name: erin
email: erin@example.com
---
kind: User
name: frank
email: frank@example.com
---
kind: User
name: gina
groups: [leads]
---
kind: User
name: hal
email: hal@example.com
---
kind: Target
name: web1
address: 127.0.0.1:22
---
kind: Account
target: web1
name: deploy
---
kind: Account
target: web1
name: root
---
kind: Policy
name: web-child
type: target-access
subjects: {groups: [nobody]}
targets: {names: [web1]}
target_users: [deploy, root]
actions: [shell, exec]
---
kind: Policy
name: web-jit
type: jit
subjects: {users: [erin, gina]}
child_policies: [web-child]
duration: 1h
max_duration: 4h
require_reason: true
approvers: {users: [frank], groups: [leads]}
---
kind: Target
name: k1
protocol: kubernetes
url: https://127.0.0.1:6443
tls_pin_sha256: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
credential: {type: bearer, account: gateway}
---
kind: Policy
name: kube-child
type: kubernetes
subjects: {groups: [nobody]}
targets: {names: [k1]}
cluster_groups: [view]
---
kind: Policy
name: kube-jit
type: jit
subjects: {users: [gina]}
child_policies: [kube-child]
duration: 10m
auto_approve: true
---
kind: Policy
name: auto-jit
type: jit
subjects: {users: [hal]}
child_policies: [web-child]
duration: 30m
auto_approve: true
`

// clock is an injected clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type site struct {
	svc   *Service
	inv   *inventory.Inventory
	store store.Store
	clock *clock
}

func newSite(t *testing.T, notifiers ...Notifier) *site {
	t.Helper()
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	inv, err := inventory.New(ctx, st, v, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := resource.DecodeYAML([]byte(siteYAML))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Now().UTC().Truncate(time.Second)}
	svc := New(Config{Store: st, Inventory: inv, Now: c.Now, Notifiers: notifiers, RetryBase: time.Millisecond,
		Audit: audit.New(st, slog.New(slog.DiscardHandler))})
	return &site{svc: svc, inv: inv, store: st, clock: c}
}

// may asks the engine whether user may open a shell on web1 as account.
func (s *site) may(user, account string) policy.Decision {
	return s.inv.Snapshot().Engine.Decide(policy.Request{Subject: user, Target: "web1", TargetUser: account,
		Action: resource.ActionShell, Source: netip.MustParseAddr("127.0.0.1"), Now: s.clock.Now()})
}

func TestRequestRefusals(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		in   Input
		kind error
		want string
	}{
		{"not covered", Input{Requester: "frank", Target: "web1", Reason: "x"}, ErrForbidden, "no jit policy lets frank"},
		{"unknown target", Input{Requester: "erin", Target: "nope", Reason: "x"}, ErrForbidden, "no jit policy lets erin"},
		{"unknown user", Input{Requester: "mallory", Target: "web1", Reason: "x"}, ErrForbidden, "no jit policy"},
		{"account not in child", Input{Requester: "erin", Target: "web1", Account: "admin", Reason: "x"}, ErrForbidden, "does not let erin request admin"},
		{"bad account", Input{Requester: "erin", Target: "web1", Account: "../root", Reason: "x"}, ErrInvalid, "not a valid target user"},
		{"reason required", Input{Requester: "erin", Target: "web1"}, ErrInvalid, "requires a reason"},
		{"reason blank", Input{Requester: "erin", Target: "web1", Reason: "   "}, ErrInvalid, "requires a reason"},
		{"reason two lines", Input{Requester: "erin", Target: "web1", Reason: "a\nb"}, ErrInvalid, "one line"},
		{"too long", Input{Requester: "erin", Target: "web1", Reason: "x", Duration: 5 * time.Hour}, ErrInvalid, "longer than jit policy web-jit allows (4h0m0s)"},
		{"seconds", Input{Requester: "erin", Target: "web1", Reason: "x", Duration: 90 * time.Second}, ErrInvalid, "whole number of minutes"},
		{"negative", Input{Requester: "erin", Target: "web1", Reason: "x", Duration: -time.Hour}, ErrInvalid, "whole number of minutes"},
		{"other policy", Input{Requester: "erin", Target: "web1", Reason: "x", Policy: "auto-jit"}, ErrForbidden, "no jit policy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.svc.Request(ctx, c.in)
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %v naming %q", err, c.kind, c.want)
			}
		})
	}
	if list, _ := s.svc.List(ctx, store.JITFilter{}); len(list) != 0 {
		t.Fatalf("refused requests were stored: %+v", list)
	}
}

func TestApprovalFlow(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	if d := s.may("erin", "deploy"); d.Allow {
		t.Fatalf("allowed before any request: %+v", d)
	}
	req, err := s.svc.Request(ctx, Input{Requester: "erin", Target: "web1", Account: "deploy", Duration: 2 * time.Hour, Reason: "incident 7", Channel: ChannelCLI})
	if err != nil {
		t.Fatal(err)
	}
	if req.State != store.JITPending || !strings.HasPrefix(req.ID, "req-") {
		t.Fatalf("request %+v", req)
	}
	if d := s.may("erin", "deploy"); d.Allow {
		t.Fatal("allowed while pending")
	}
	for _, c := range []struct {
		name     string
		approver string
		groups   []string
		kind     error
	}{
		{"own request", "erin", nil, ErrForbidden},
		{"not an approver", "hal", nil, ErrForbidden},
		{"unknown user", "mallory", nil, ErrForbidden},
		{"directory group of another user does not help", "hal", []string{"admins"}, ErrForbidden},
	} {
		if _, err := s.svc.Approve(ctx, Decision{ID: req.ID, Approver: c.approver, Groups: c.groups, Channel: ChannelCLI}); !errors.Is(err, c.kind) {
			t.Errorf("%s: %v, want %v", c.name, err, c.kind)
		}
	}
	if _, err := s.svc.Approve(ctx, Decision{ID: "req-nope", Approver: "frank"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown request: %v", err)
	}

	// Two approvers race; one wins, one grant exists.
	var wg sync.WaitGroup
	results := make([]error, 2)
	for i, who := range []string{"frank", "gina"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = s.svc.Approve(ctx, Decision{ID: req.ID, Approver: who, Channel: ChannelConsole})
		}()
	}
	wg.Wait()
	if (results[0] == nil) == (results[1] == nil) {
		t.Fatalf("race results %v", results)
	}
	got, _ := s.svc.Get(ctx, req.ID)
	if got.State != store.JITApproved || !strings.HasPrefix(got.Grant, "JIT-") || len(got.Grant) != 12 || got.Approval != resource.ApprovalManual {
		t.Fatalf("after approval %+v", got)
	}
	grants := 0
	objs, _ := s.inv.List(ctx, resource.KindPolicy)
	for _, o := range objs {
		if p := o.(*resource.Policy); p.JITGrant != nil {
			grants++
			// Exactly what was asked, never more than the child.
			if p.Name != got.Grant || !slices2(p.Subjects.Users, "erin") || !slices2(p.Targets.Names, "web1") ||
				!slices2(p.TargetUsers, "deploy") || !p.ValidUntil.Equal(got.ExpiresAt) || len(p.Subjects.Groups) != 0 {
				t.Fatalf("grant %+v", p)
			}
		}
	}
	if grants != 1 {
		t.Fatalf("%d grants", grants)
	}
	d := s.may("erin", "deploy")
	if !d.Allow || d.Policy != got.Grant || d.JIT == nil || d.JIT.Request != req.ID {
		t.Fatalf("not granted: %+v", d)
	}
	if d := s.may("erin", "root"); d.Allow {
		t.Fatalf("root granted though deploy was asked: %+v", d)
	}
	if d := s.may("gina", "deploy"); d.Allow {
		t.Fatalf("another user granted: %+v", d)
	}
	if _, err := s.svc.Deny(ctx, Decision{ID: req.ID, Approver: "frank", Reason: "late"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("deny after approval: %v", err)
	}

	// Expiry by the injected clock: nothing happens a minute early.
	s.clock.Add(2*time.Hour - time.Minute)
	if err := s.svc.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.svc.Get(ctx, req.ID); got.State != store.JITApproved {
		t.Fatalf("expired early: %+v", got)
	}
	s.clock.Add(time.Minute)
	if err := s.svc.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ = s.svc.Get(ctx, req.ID)
	if got.State != store.JITExpired {
		t.Fatalf("not expired: %+v", got)
	}
	if _, err := s.inv.Get(ctx, resource.KindPolicy, got.Grant); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant left after expiry: %v", err)
	}
	if d := s.may("erin", "deploy"); d.Allow {
		t.Fatalf("allowed after expiry: %+v", d)
	}
	// The history stays, in order, after expiry.
	hist, err := s.svc.History(ctx, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range hist {
		kinds = append(kinds, ev.Kind+"/"+ev.Channel)
	}
	if want := "requested/cli approved/console granted/gateway expired/gateway"; strings.Join(kinds, " ") != want {
		t.Fatalf("history %v, want %s", kinds, want)
	}
	if list, _ := s.svc.List(ctx, store.JITFilter{State: store.JITExpired}); len(list) != 1 {
		t.Fatalf("expired list %+v", list)
	}
	// Each step is in the audit trail too.
	evs, err := s.store.ListAudit(ctx, store.AuditFilter{Type: "jit."})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		if ev.Detail["request"] == req.ID {
			types = append(types, ev.Type)
		}
	}
	if want := "jit.request jit.approve jit.expire"; strings.Join(types, " ") != want {
		t.Fatalf("audit %v, want %s", types, want)
	}
}

func slices2(list []string, only string) bool { return len(list) == 1 && list[0] == only }

func TestAutoApproveDenyRevoke(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	req, err := s.svc.Request(ctx, Input{Requester: "hal", Target: "web1", Channel: ChannelSSH})
	if err != nil {
		t.Fatal(err)
	}
	if req.State != store.JITApproved || req.Approval != resource.ApprovalAuto || req.Duration != 30*time.Minute {
		t.Fatalf("auto request %+v", req)
	}
	if d := s.may("hal", "root"); !d.Allow || d.JIT.Approval != resource.ApprovalAuto {
		t.Fatalf("auto grant: %+v", d)
	}
	if _, err := s.svc.Revoke(ctx, req.ID, "admin", ChannelCLI); err != nil {
		t.Fatal(err)
	}
	if d := s.may("hal", "root"); d.Allow {
		t.Fatalf("allowed after revoke: %+v", d)
	}
	r2, err := s.svc.Request(ctx, Input{Requester: "erin", Target: "web1", Reason: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.Deny(ctx, Decision{ID: r2.ID, Approver: "gina", Reason: "not now", Channel: ChannelSlack}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.Approve(ctx, Decision{ID: r2.ID, Approver: "frank"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("approve after deny: %v", err)
	}
	// A pending request expires after PendingTTL.
	r3, err := s.svc.Request(ctx, Input{Requester: "erin", Target: "web1", Reason: "later"})
	if err != nil {
		t.Fatal(err)
	}
	s.clock.Add(25 * time.Hour)
	if err := s.svc.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.svc.Get(ctx, r3.ID); got.State != store.JITExpired {
		t.Fatalf("pending not expired: %+v", got)
	}
}

func TestGrantsCannotBeApplied(t *testing.T) {
	s := newSite(t)
	until := time.Now().Add(time.Hour)
	forged := &resource.Policy{Kind: resource.KindPolicy, Name: "JIT-forged12", Type: resource.PolicyTargetAccess,
		Subjects: resource.Subjects{Users: []string{"erin"}}, Targets: resource.TargetSelector{Names: []string{"web1"}},
		TargetUsers: []string{"root"}, Actions: []string{"shell"}, ValidUntil: &until,
		JITGrant: &resource.JITGrant{Request: "req-x", JITPolicy: "web-jit", Approval: resource.ApprovalManual, Duration: resource.Duration(time.Hour)}}
	if _, err := s.inv.Apply(context.Background(), []resource.Object{forged}); err == nil || !strings.Contains(err.Error(), "created by the gateway") {
		t.Fatalf("apply of a forged grant: %v", err)
	}
	// A grant with no approved request behind it (put by a crashed
	// gateway, or by hand in the database) is deleted by Expire.
	if err := s.inv.PutGrant(context.Background(), forged); err != nil {
		t.Fatal(err)
	}
	if err := s.svc.Expire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.inv.Get(context.Background(), resource.KindPolicy, forged.Name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("orphan grant kept: %v", err)
	}
}

// TestKubernetesChild: a kubernetes child is granted as a kubernetes
// JIT policy (which the Kubernetes front decides by, like any policy),
// narrowed and ending like any grant.
func TestKubernetesChild(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	req, err := s.svc.Request(ctx, Input{Requester: "gina", Target: "k1", Policy: "kube-jit", Reason: "debug"})
	if err != nil {
		t.Fatal(err)
	}
	if req.State != store.JITApproved {
		t.Fatalf("%+v", req)
	}
	obj, err := s.inv.Get(ctx, resource.KindPolicy, req.Grant)
	if err != nil {
		t.Fatal(err)
	}
	p := obj.(*resource.Policy)
	if p.Type != resource.PolicyKubernetes || !slices2(p.Subjects.Users, "gina") || !slices2(p.ClusterGroups, "view") ||
		!p.ValidUntil.Equal(req.ExpiresAt) || p.JITGrant.Approval != resource.ApprovalAuto {
		t.Fatalf("grant %+v", p)
	}
	// The Kubernetes front decides by the same engine: the grant lets
	// gina in as the child's cluster group, and nobody else.
	kr := policy.KubeRequest{Kind: policy.SubjectUser, Subject: "gina", Target: "k1", Verb: "list", Resource: "pods", Namespace: "dev"}
	if d := s.inv.Snapshot().Engine.DecideKube(kr); !d.Allow || d.Policy != req.Grant || !slices2(d.Groups, "view") {
		t.Fatalf("DecideKube through the grant: %+v", d)
	}
	kr.Subject = "erin"
	if d := s.inv.Snapshot().Engine.DecideKube(kr); d.Allow {
		t.Fatalf("DecideKube for a user without the grant: %+v", d)
	}
}

// TestDirectoryGroups: approvers named by a directory group approve from
// the API and console too (Config.Groups), and a directory that cannot be
// read refuses instead of guessing.
func TestDirectoryGroups(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	down := false
	s.svc.cfg.Groups = func(_ context.Context, user string) ([]string, error) {
		if down {
			return nil, errors.New("ldap: connection refused")
		}
		if user == "hal" {
			return []string{"leads"}, nil
		}
		return nil, nil
	}
	req, err := s.svc.Request(ctx, Input{Requester: "erin", Target: "web1", Reason: "x"})
	if err != nil {
		t.Fatal(err)
	}
	down = true
	if _, err := s.svc.Approve(ctx, Decision{ID: req.ID, Approver: "hal"}); err == nil || !strings.Contains(err.Error(), "directory groups of hal") {
		t.Fatalf("approval with the directory down: %v", err)
	}
	if _, err := s.svc.Request(ctx, Input{Requester: "erin", Target: "web1", Reason: "x"}); err == nil {
		t.Fatal("request with the directory down")
	}
	down = false
	if got, err := s.svc.Approve(ctx, Decision{ID: req.ID, Approver: "hal"}); err != nil || got.State != store.JITApproved {
		t.Fatalf("approval through a directory group: %+v %v", got, err)
	}
}

// TestApproveRechecksEligibility blocks granting a stale request: a
// requester offboarded from the jit policy (or a duration the policy no
// longer allows) between request and approval must not get access; the
// approval is refused and the request denied by the gateway, with why in
// its history, so that it does not linger.
func TestApproveRechecksEligibility(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(p *resource.Policy)
		why    string
	}{
		{"requester no longer a subject", func(p *resource.Policy) { p.Subjects.Users = []string{"gina"} }, "no longer covered"},
		{"max_duration lowered", func(p *resource.Policy) {
			p.Duration, p.MaxDuration = resource.Duration(30*time.Minute), resource.Duration(30*time.Minute)
		}, "longer than jit policy web-jit now allows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t)
			ctx := context.Background()
			req, err := s.svc.Request(ctx, Input{Requester: "erin", Target: "web1", Account: "deploy", Duration: 2 * time.Hour, Reason: "x", Channel: ChannelCLI})
			if err != nil {
				t.Fatal(err)
			}
			o, err := s.inv.Get(ctx, resource.KindPolicy, "web-jit")
			if err != nil {
				t.Fatal(err)
			}
			p := o.(*resource.Policy)
			tc.change(p)
			if _, err := s.inv.Apply(ctx, []resource.Object{p}); err != nil {
				t.Fatal(err)
			}
			_, err = s.svc.Approve(ctx, Decision{ID: req.ID, Approver: "frank", Channel: ChannelCLI})
			if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("approve: %v, want forbidden saying %q", err, tc.why)
			}
			if d := s.may("erin", "deploy"); d.Allow {
				t.Fatalf("erin got access through a stale request (policy %s)", d.Policy)
			}
			got, err := s.svc.Get(ctx, req.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != store.JITDenied || got.Grant != "" {
				t.Fatalf("request %s, grant %q; want denied without grant", got.State, got.Grant)
			}
			hist, err := s.svc.History(ctx, req.ID)
			if err != nil {
				t.Fatal(err)
			}
			last := hist[len(hist)-1]
			if last.Kind != "denied" || last.Actor != "gateway" || !strings.Contains(last.Detail, tc.why) {
				t.Fatalf("last event %+v, want denied by gateway saying %q", last, tc.why)
			}
		})
	}
}
