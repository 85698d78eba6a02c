package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// Errors of access reviews; each names what the reviewer must do instead.
var (
	// ErrSelfReview: nobody reviews access they hold or granted.
	ErrSelfReview = errors.New("you may not review this entitlement")
	// ErrNotEnforceable: the gateway cannot take this access away itself
	// (it comes from the directory).
	ErrNotEnforceable = errors.New("the gateway cannot revoke this entitlement itself")
	// ErrPending: a campaign with undecided items cannot be signed off.
	ErrPending = errors.New("items are still undecided")
)

// Reviews runs access review campaigns (PCI DSS 7.2.4, SOC 2 CC6.2): a
// campaign copies every entitlement as it starts; reviewers keep or revoke
// each, a revoke changes the resources at once (and so ends the sessions it
// no longer allows), and the campaign closes with a sign-off.
type Reviews struct {
	Source *Source
	// Inventory applies revocations.
	Inventory *inventory.Inventory
	// Audit records every step; a step whose event cannot be written
	// fails (the revocation itself is then already applied and audited as
	// a resource change).
	Audit func(ctx context.Context, ev store.AuditEvent) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (r *Reviews) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// Start opens a campaign over the entitlements as they are now.
func (r *Reviews) Start(ctx context.Context, by, name string) (store.ReviewCampaign, []store.ReviewItem, error) {
	at := r.now()
	if name == "" {
		name = "access review " + at.Format("2006-01-02")
	}
	w, err := loadWorld(ctx, r.Source)
	if err != nil {
		return store.ReviewCampaign{}, nil, fmt.Errorf("start review: %w", err)
	}
	by2, err := grantedBy(ctx, r.Source.Store, at.Add(time.Nanosecond))
	if err != nil {
		return store.ReviewCampaign{}, nil, fmt.Errorf("start review: %w", err)
	}
	var items []store.ReviewItem
	for _, g := range w.grants() {
		items = append(items, store.ReviewItem{Identity: g.identity, IdentityKind: g.identityKind, Via: g.via,
			Policy: g.policy.Name, JITPolicy: g.jit, Target: g.target, TargetUser: g.targetUser,
			Privileged: w.privileged(g), GrantedBy: grantEvent(by2, g).User})
	}
	c := store.ReviewCampaign{Name: name, StartedBy: by, StartedAt: at}
	if c.ID, err = r.Source.Store.CreateReviewCampaign(ctx, c, items); err != nil {
		return c, nil, fmt.Errorf("start review: %w", err)
	}
	if err := r.Audit(ctx, store.AuditEvent{Type: audit.ReviewStart, Outcome: audit.Success, User: by,
		Message: fmt.Sprintf("access review %d %q opened with %d entitlements", c.ID, name, len(items)),
		Detail:  map[string]any{"campaign": c.ID, "items": len(items)}}); err != nil {
		return c, nil, fmt.Errorf("start review: audit: %w", err)
	}
	items, err = r.Source.Store.ListReviewItems(ctx, c.ID)
	return c, items, err
}

// Decide records a reviewer's keep or revoke of one item. A revoke is
// applied to the resources first: the decision is stored only once the
// access is gone.
func (r *Reviews) Decide(ctx context.Context, campaign, item int64, reviewer, decision, comment string) (store.ReviewItem, error) {
	if decision != store.ReviewKeep && decision != store.ReviewRevoke {
		return store.ReviewItem{}, fmt.Errorf("%w: decision must be keep or revoke, got %q", ErrBadRequest, decision)
	}
	c, err := r.Source.Store.GetReviewCampaign(ctx, campaign)
	if err != nil {
		return store.ReviewItem{}, err
	}
	if !c.ClosedAt.IsZero() {
		return store.ReviewItem{}, fmt.Errorf("review campaign %d is closed: %w", campaign, store.ErrConflict)
	}
	items, err := r.Source.Store.ListReviewItems(ctx, campaign)
	if err != nil {
		return store.ReviewItem{}, err
	}
	i := slices.IndexFunc(items, func(it store.ReviewItem) bool { return it.Item == item })
	if i < 0 {
		return store.ReviewItem{}, fmt.Errorf("review item %d/%d: %w", campaign, item, store.ErrNotFound)
	}
	it := items[i]
	if it.Decision != "" {
		return it, fmt.Errorf("review item %d/%d is already decided (%s by %s): %w", campaign, item, it.Decision, it.Reviewer, store.ErrConflict)
	}
	if err := r.mayReview(ctx, reviewer, it); err != nil {
		return it, err
	}
	it.Decision, it.Reviewer, it.Comment, it.DecidedAt = decision, reviewer, comment, r.now()
	if decision == store.ReviewRevoke {
		if it.Effect, err = r.revoke(ctx, reviewer, campaign, it); err != nil {
			return it, err
		}
	}
	if err := r.Source.Store.DecideReviewItem(ctx, it); err != nil {
		return it, err
	}
	msg := fmt.Sprintf("access review %d item %d: %s %s %s on %s as %s", campaign, item, decision, it.IdentityKind, it.Identity, it.Target, it.TargetUser)
	if err := r.Audit(ctx, store.AuditEvent{Type: audit.ReviewDecide, Outcome: audit.Success, User: reviewer,
		Target: it.Target, Account: it.TargetUser, Policy: it.Policy, Message: msg,
		Detail: map[string]any{"campaign": campaign, "item": item, "decision": decision, "identity": it.Identity,
			"via": it.Via, "comment": comment, "effect": it.Effect}}); err != nil {
		return it, fmt.Errorf("decide review item: audit: %w", err)
	}
	return it, nil
}

// mayReview refuses a reviewer who holds the entitlement (or owns the
// service account that does) or made the last change of the policy that
// grants it.
func (r *Reviews) mayReview(ctx context.Context, reviewer string, it store.ReviewItem) error {
	if reviewer == it.Identity {
		return fmt.Errorf("%w: it is your own access", ErrSelfReview)
	}
	if it.GrantedBy != "" && reviewer == it.GrantedBy {
		return fmt.Errorf("%w: you granted it (the last change of its policy, or of the group it comes through)", ErrSelfReview)
	}
	if it.IdentityKind == "service_account" {
		o, err := r.Inventory.Get(ctx, resource.KindServiceAccount, it.Identity)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("read service account %s: %w", it.Identity, err)
		}
		if sa, ok := o.(*resource.ServiceAccount); ok && sa.Owner == reviewer {
			return fmt.Errorf("%w: you own service account %s", ErrSelfReview, it.Identity)
		}
	}
	return nil
}

// revoke takes the item's access away by changing what grants it, and
// says what it changed:
//   - granted by name: the identity leaves the policy's subjects (the
//     policy is deleted when no subject is left);
//   - through a local group: the user leaves the group (its own groups
//     list and the Group's members), which also ends the other access that
//     group gives, as the effect says;
//   - through a directory group: refused, because the directory owns that
//     membership; the reviewer removes it there.
func (r *Reviews) revoke(ctx context.Context, reviewer string, campaign int64, it store.ReviewItem) (string, error) {
	policyName := it.Policy
	if it.JITPolicy != "" {
		policyName = it.JITPolicy
	}
	var (
		objs   []resource.Object
		effect string
	)
	switch {
	case it.Via == "direct":
		o, err := r.Inventory.Get(ctx, resource.KindPolicy, policyName)
		if errors.Is(err, store.ErrNotFound) {
			return "policy " + policyName + " no longer exists", nil
		}
		if err != nil {
			return "", fmt.Errorf("revoke: read policy %s: %w", policyName, err)
		}
		p := o.(*resource.Policy)
		list := &p.Subjects.Users
		if it.IdentityKind == "service_account" {
			list = &p.Subjects.ServiceAccounts
		}
		if !slices.Contains(*list, it.Identity) {
			return it.Identity + " was already removed from policy " + policyName, nil
		}
		*list = slices.DeleteFunc(*list, func(s string) bool { return s == it.Identity })
		if len(p.Subjects.Users)+len(p.Subjects.Groups)+len(p.Subjects.ServiceAccounts) == 0 {
			if err := r.Inventory.Delete(ctx, resource.KindPolicy, policyName); errors.Is(err, inventory.ErrReferenced) {
				return "", fmt.Errorf("%w: %s is the last subject of policy %s, which cannot be deleted: %v; change those policies first",
					ErrNotEnforceable, it.Identity, policyName, err)
			} else if err != nil {
				return "", fmt.Errorf("revoke: delete policy %s (its last subject): %w", policyName, err)
			}
			effect = "deleted policy " + policyName + " (" + it.Identity + " was its last subject)"
			return effect, r.auditChange(ctx, reviewer, campaign, effect, map[string]any{"kind": string(resource.KindPolicy), "name": policyName}, audit.ResourceDelete)
		}
		objs = append(objs, p)
		effect = "removed " + it.Identity + " from the subjects of policy " + policyName
	case strings.HasPrefix(it.Via, "group:"):
		g := strings.TrimPrefix(it.Via, "group:")
		if o, err := r.Inventory.Get(ctx, resource.KindUser, it.Identity); err == nil {
			u := o.(*resource.User)
			if slices.Contains(u.Groups, g) {
				u.Groups = slices.DeleteFunc(u.Groups, func(s string) bool { return s == g })
				objs = append(objs, u)
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("revoke: read user %s: %w", it.Identity, err)
		}
		if o, err := r.Inventory.Get(ctx, resource.KindGroup, g); err == nil {
			gr := o.(*resource.Group)
			if slices.Contains(gr.Members, it.Identity) {
				gr.Members = slices.DeleteFunc(gr.Members, func(s string) bool { return s == it.Identity })
				objs = append(objs, gr)
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("revoke: read group %s: %w", g, err)
		}
		effect = "removed " + it.Identity + " from group " + g + " (and so from every policy that names it)"
		if len(objs) == 0 {
			return it.Identity + " was already out of group " + g, nil
		}
	default:
		return "", fmt.Errorf("%w: %s has it through %s; remove the membership in the directory, then decide keep with a comment saying so", ErrNotEnforceable, it.Identity, it.Via)
	}
	res, err := r.Inventory.Apply(ctx, objs)
	if err != nil {
		return "", fmt.Errorf("revoke: %w", err)
	}
	changes := make([]map[string]any, 0, len(res.Changes))
	for _, c := range res.Changes {
		ch := map[string]any{"resource": c.Key, "after": rawJSON(c.After)}
		if c.Before != nil {
			ch["before"] = rawJSON(c.Before)
		}
		changes = append(changes, ch)
	}
	return effect, r.auditChange(ctx, reviewer, campaign, effect, map[string]any{"changes": changes, "updated": res.Updated}, audit.ResourceApply)
}

// auditChange records a revocation's resource change as resource changes
// made through the API are recorded, so that the change history lists it.
func (r *Reviews) auditChange(ctx context.Context, reviewer string, campaign int64, effect string, detail map[string]any, typ string) error {
	detail["review_campaign"] = campaign
	if err := r.Audit(ctx, store.AuditEvent{Type: typ, Outcome: audit.Success, User: reviewer,
		Message: "access review " + strconv.FormatInt(campaign, 10) + ": " + effect, Detail: detail}); err != nil {
		return fmt.Errorf("revoke: audit the change: %w", err)
	}
	return nil
}

// Close signs a campaign off once every item is decided.
func (r *Reviews) Close(ctx context.Context, campaign int64, by, signOff string) error {
	if strings.TrimSpace(signOff) == "" {
		return fmt.Errorf("%w: a sign-off statement is required", ErrBadRequest)
	}
	items, err := r.Source.Store.ListReviewItems(ctx, campaign)
	if err != nil {
		return err
	}
	pending := 0
	for _, it := range items {
		if it.Decision == "" {
			pending++
		}
	}
	if pending > 0 {
		return fmt.Errorf("close review campaign %d: %w: %d of %d", campaign, ErrPending, pending, len(items))
	}
	if err := r.Source.Store.CloseReviewCampaign(ctx, campaign, by, signOff, r.now()); err != nil {
		return err
	}
	return r.Audit(ctx, store.AuditEvent{Type: audit.ReviewClose, Outcome: audit.Success, User: by,
		Message: fmt.Sprintf("access review %d signed off: %s", campaign, signOff),
		Detail:  map[string]any{"campaign": campaign, "items": len(items), "sign_off": signOff}})
}

func rawJSON(b []byte) any { return json.RawMessage(b) }

// ReviewSession records an auditor's verdict on a recording (reviewed or
// flagged, with a comment), which the privileged-sessions report reads.
// A flag needs a comment: the finding must say what to follow up.
func (r *Reviews) ReviewSession(ctx context.Context, reviewer, recording, decision, comment string) (store.SessionReview, error) {
	if decision != store.ReviewOK && decision != store.ReviewFlagged {
		return store.SessionReview{}, fmt.Errorf("%w: decision must be %s or %s, got %q", ErrBadRequest, store.ReviewOK, store.ReviewFlagged, decision)
	}
	if decision == store.ReviewFlagged && strings.TrimSpace(comment) == "" {
		return store.SessionReview{}, fmt.Errorf("%w: a flag needs a comment saying what to follow up", ErrBadRequest)
	}
	rec, err := r.Source.Store.GetRecording(ctx, recording)
	if err != nil {
		return store.SessionReview{}, fmt.Errorf("recording %s: %w", recording, err)
	}
	if rec.User == reviewer {
		return store.SessionReview{}, fmt.Errorf("%w: it is your own session", ErrSelfReview)
	}
	sr := store.SessionReview{RecordingID: recording, Reviewer: reviewer, Decision: decision, Comment: comment, Time: r.now()}
	if sr.ID, err = r.Source.Store.AddSessionReview(ctx, sr); err != nil {
		return sr, err
	}
	return sr, r.Audit(ctx, store.AuditEvent{Type: audit.RecordingReview, Outcome: audit.Success, User: reviewer,
		SessionID: recording, Target: rec.Target, Account: rec.Account,
		Message: fmt.Sprintf("recording %s of %s marked %s", recording, rec.User, decision),
		Detail:  map[string]any{"decision": decision, "comment": comment, "session_user": rec.User}})
}
