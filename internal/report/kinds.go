package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// The built-in kinds. Each says which control it is evidence for.
func init() {
	Register(Kind{Name: "entitlements", Title: "Entitlements",
		Description: "Who can reach which target as which account, through which policy (or jit policy), granted by whom and when, last used (SOC 2 CC6.2/CC6.3, PCI DSS 7.2.4)",
		Build:       buildEntitlements})
	Register(Kind{Name: "access-log", Title: "Access log",
		Description: "One row per session or refused request: user, type, time, outcome, origin, target and account, duration, commands and recording (PCI DSS 10.2)",
		Build:       buildAccessLog})
	Register(Kind{Name: "privileged-sessions", Title: "Privileged session review",
		Description: "Sessions with privileged access (superuser accounts, sudo ALL, every target, gateway admins) and their review; unreviewed ones older than 24 h stand out (ISO 27001 A.8.2, PCI DSS 10.4)",
		Build:       buildPrivilegedSessions})
	Register(Kind{Name: "failed-logins", Title: "Failed logins and anomalies",
		Description: "Failed logins, second factors and lockouts per user and source, and sources seen for the first time (PCI DSS 10.2.1.4, 8.3.4)",
		Build:       buildFailedLogins})
	Register(Kind{Name: "changes", Title: "Policy and resource change history",
		Description: "Every change of resources, settings, API keys, passwords and second factors: actor, time, before and after (PCI DSS 10.2.1.5, SOC 2 CC8.1)",
		Build:       buildChanges})
	Register(Kind{Name: "hygiene", Title: "Dormant identities, missing MFA, unrotated keys",
		Description: "Users and service accounts with no login in 90 days, users without an active second factor, account keys never rotated or older than a year, API keys unused or without expiry (PCI DSS 8.2.6, 8.3.9, 8.4)",
		Build:       buildHygiene})
	Register(Kind{Name: "access-review", Title: "Access review campaign",
		Description: "The items of the latest access review campaign closed in the period: reviewer, decision, comment, sign-off (PCI DSS 7.2.4, SOC 2 CC6.2)",
		Build:       buildAccessReview})
}

// lastUses returns, per "identity\x00target\x00account", the time of the
// latest session start before until (the whole kept trail: last use is not
// bounded by the period).
func lastUses(ctx context.Context, st store.Store, until time.Time) (map[string]time.Time, error) {
	evs, err := readAudit(ctx, st, time.Time{}, until, audit.SessionStart)
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for _, ev := range evs {
		out[ev.User+"\x00"+ev.Target+"\x00"+ev.Account] = ev.Time
	}
	return out, nil
}

// grantedBy returns, per resource key (Policy/NAME), the actor and time of
// the latest change before until.
func grantedBy(ctx context.Context, st store.Store, until time.Time) (map[string]store.AuditEvent, error) {
	evs, err := readAudit(ctx, st, time.Time{}, until, audit.ResourceApply)
	if err != nil {
		return nil, err
	}
	out := map[string]store.AuditEvent{}
	for _, ev := range evs {
		for _, c := range changesOf(ev) {
			out[c.key] = ev
		}
	}
	return out, nil
}

// grantEvent is the change that last granted g: of the policy that names
// its subject (the jit policy for a jit grant), and, for a grant through a
// local group, of the Group and the User too (adding someone to a group
// grants them what the group has). The latest of them wins.
func grantEvent(by map[string]store.AuditEvent, g grant) store.AuditEvent {
	naming := g.policy.Name
	if g.jit != "" {
		naming = g.jit
	}
	keys := []string{"Policy/" + naming}
	if grp, ok := strings.CutPrefix(g.via, "group:"); ok {
		keys = append(keys, "Group/"+grp, "User/"+g.identity)
	}
	var out store.AuditEvent
	for _, k := range keys {
		if ev, ok := by[k]; ok && ev.ID > out.ID {
			out = ev
		}
	}
	return out
}

func buildEntitlements(ctx context.Context, src *Source, p Params) (*Table, error) {
	w, err := loadWorld(ctx, src)
	if err != nil {
		return nil, err
	}
	used, err := lastUses(ctx, src.Store, p.Until)
	if err != nil {
		return nil, err
	}
	by, err := grantedBy(ctx, src.Store, p.Until)
	if err != nil {
		return nil, err
	}
	t := &Table{Columns: []Column{
		{"identity", "Identity", 1.1}, {"identity_kind", "Kind", 0.9}, {"via", "Via", 1.3}, {"policy", "Policy", 1.2},
		{"jit_policy", "JIT policy", 1}, {"target", "Target", 1}, {"target_user", "As", 0.8},
		{"actions", "Actions", 1.4}, {"privileged", "Privileged", 1.4}, {"granted_by", "Granted by", 0.9},
		{"granted_at", "Granted at", 1.3}, {"last_used", "Last used", 1.3},
	}}
	for _, g := range w.grants() {
		ev := grantEvent(by, g)
		actions := strings.Join(g.policy.Actions, " ")
		switch g.policy.Type {
		case resource.PolicyProxy:
			actions = "proxy"
		case resource.PolicyKubernetes:
			actions = "kubernetes"
		}
		t.add(false, g.identity, g.identityKind, g.via, g.policy.Name, g.jit, g.target, g.targetUser, actions,
			w.privileged(g), ev.User, ts(ev.Time), ts(used[g.identity+"\x00"+g.target+"\x00"+g.targetUser]))
	}
	t.Notes = append(t.Notes, fmt.Sprintf("State as of %s. Granted by/at: the last change of the policy (or jit policy) before then.", ts(p.Until)))
	if src.DirectoryGroups != nil {
		t.Notes = append(t.Notes, "Directory (LDAP) groups are read from the directory for every user it created.")
	}
	return t, nil
}

// session is one access log row in the making.
type session struct {
	start, end store.AuditEvent
	hasEnd     bool
}

func buildAccessLog(ctx context.Context, src *Source, p Params) (*Table, error) {
	evs, err := readAudit(ctx, src.Store, p.Since, p.Until, audit.SessionStart, audit.SessionEnd, audit.RequestDeny)
	if err != nil {
		return nil, err
	}
	t := &Table{Columns: []Column{
		{"time", "Start", 1.35}, {"user", "User", 0.9}, {"event", "Event", 0.8}, {"outcome", "Outcome", 0.7},
		{"source", "Origin", 1.1}, {"target", "Target", 0.9}, {"account", "As", 0.7}, {"policy", "Policy", 0.9},
		{"end", "End", 1.35}, {"duration_s", "Secs", 0.5}, {"commands", "Cmds", 0.5}, {"session_id", "Session", 1.6},
		{"recording", "Recording", 1.6},
	}}
	byID := map[string]*session{}
	var order []*session
	for _, ev := range evs {
		switch ev.Type {
		case audit.SessionStart:
			s := &session{start: ev}
			byID[ev.SessionID] = s
			order = append(order, s)
		case audit.SessionEnd:
			if s, ok := byID[ev.SessionID]; ok {
				s.end, s.hasEnd = ev, true
			}
		case audit.RequestDeny:
			order = append(order, &session{start: ev})
		}
	}
	for _, s := range order {
		ev := s.start
		if ev.Type == audit.RequestDeny {
			action, _ := ev.Detail["action"].(string)
			t.add(false, ts(ev.Time), ev.User, "deny "+action, audit.Deny, ev.Source, ev.Target, ev.Account, ev.Policy,
				"", "", "", ev.SessionID, "")
			continue
		}
		if !s.hasEnd {
			// Ended after the period, or still running.
			ends, err := src.Store.ListAudit(ctx, store.AuditFilter{SessionID: ev.SessionID, Type: audit.SessionEnd, Limit: 1})
			if err != nil {
				return nil, fmt.Errorf("read the end of session %s: %w", ev.SessionID, err)
			}
			if len(ends) > 0 {
				s.end, s.hasEnd = ends[0], true
			}
		}
		end, dur, outcome := "", "", ev.Outcome
		if s.hasEnd {
			end = ts(s.end.Time)
			dur = strconv.FormatInt(int64(s.end.Time.Sub(ev.Time).Round(time.Second)/time.Second), 10)
			outcome = s.end.Outcome
		}
		n, err := countCommands(ctx, src.Store, ev.SessionID)
		if err != nil {
			return nil, err
		}
		rec := ""
		if _, err := src.Store.GetRecording(ctx, ev.SessionID); err == nil {
			rec = ev.SessionID
			if src.RecordingURL != nil {
				rec = src.RecordingURL(ev.SessionID)
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("read recording %s: %w", ev.SessionID, err)
		}
		action, _ := ev.Detail["action"].(string)
		if action == "" {
			action = "session"
		}
		t.add(false, ts(ev.Time), ev.User, action, outcome, ev.Source, ev.Target, ev.Account, ev.Policy,
			end, dur, strconv.Itoa(n), ev.SessionID, rec)
	}
	t.Notes = append(t.Notes, "Outcome is the session's end (success, failure) or deny for a refused request; Secs and Cmds are empty for a session that has not ended.")
	return t, nil
}

// countCommands counts a session's commands.
func countCommands(ctx context.Context, st store.Store, session string) (int, error) {
	n := 0
	var after int64
	for {
		cs, err := st.ListCommands(ctx, store.CommandFilter{SessionID: session, AfterID: after, Limit: 1000})
		if err != nil {
			return 0, fmt.Errorf("read the commands of session %s: %w", session, err)
		}
		n += len(cs)
		if len(cs) < 1000 {
			return n, nil
		}
		after = cs[len(cs)-1].ID
	}
}

// unreviewedAfter is how long a privileged session may wait for its review
// before the report makes it stand out (PCI DSS 10.4.1: daily review).
const unreviewedAfter = 24 * time.Hour

func buildPrivilegedSessions(ctx context.Context, src *Source, p Params) (*Table, error) {
	w, err := loadWorld(ctx, src)
	if err != nil {
		return nil, err
	}
	evs, err := readAudit(ctx, src.Store, p.Since, p.Until, audit.SessionStart)
	if err != nil {
		return nil, err
	}
	reviews, err := src.Store.ListSessionReviews(ctx, store.SessionReviewFilter{})
	if err != nil {
		return nil, fmt.Errorf("read session reviews: %w", err)
	}
	latest := map[string]store.SessionReview{}
	for _, r := range reviews {
		latest[r.RecordingID] = r
	}
	t := &Table{Columns: []Column{
		{"time", "Start", 1.3}, {"user", "User", 0.8}, {"target", "Target", 0.8}, {"account", "As", 0.7},
		{"policy", "Policy", 0.9}, {"privileged", "Why privileged", 1.5}, {"session_id", "Session", 1.5},
		{"reviewer", "Reviewer", 0.8}, {"decision", "Decision", 0.7}, {"comment", "Comment", 1.5},
		{"reviewed_at", "Reviewed", 1.3}, {"attention", "Attention", 1.1},
	}}
	waiting := 0
	for _, ev := range evs {
		why := w.sessionPrivileged(ev.User, ev.Target, ev.Account, ev.Policy)
		if why == "" {
			continue
		}
		r, ok := latest[ev.SessionID]
		attention := ""
		switch {
		case !ok && p.Until.Sub(ev.Time) > unreviewedAfter:
			attention = "UNREVIEWED > 24 h"
			waiting++
		case ok && r.Decision == store.ReviewFlagged:
			attention = "FLAGGED"
		}
		t.add(attention != "", ts(ev.Time), ev.User, ev.Target, ev.Account, ev.Policy, why, ev.SessionID,
			r.Reviewer, r.Decision, r.Comment, ts(r.Time), attention)
	}
	t.Notes = append(t.Notes, fmt.Sprintf("%d privileged sessions; %d unreviewed for more than 24 h at %s.", len(t.Rows), waiting, ts(p.Until)))
	return t, nil
}

// failureTypes are the audit events that count as failed logins.
var failureTypes = map[string]bool{audit.LoginFailure: true, audit.LoginMalformed: true, audit.ConsoleLoginFail: true,
	audit.MFAFailure: true, audit.APIKeyDeny: true}

// lockoutTypes are the audit events that count as lockouts.
var lockoutTypes = map[string]bool{audit.ConsoleLockout: true, audit.MFALockout: true}

func buildFailedLogins(ctx context.Context, src *Source, p Params) (*Table, error) {
	type key struct{ user, source string }
	type agg struct {
		failures, lockouts, successes int
		first, last                   time.Time
		newSource                     time.Time
	}
	// Sources are judged new against the whole kept trail before the
	// period, so the read starts at the beginning.
	evs, err := readAudit(ctx, src.Store, time.Time{}, p.Until,
		append(append(typesOf(failureTypes), typesOf(lockoutTypes)...), audit.LoginSuccess, audit.ConsoleLogin)...)
	if err != nil {
		return nil, err
	}
	seen := map[key]bool{}
	rows := map[key]*agg{}
	get := func(k key) *agg {
		a, ok := rows[k]
		if !ok {
			a = &agg{}
			rows[k] = a
		}
		return a
	}
	for _, ev := range evs {
		k := key{ev.User, host(ev.Source)}
		in := !ev.Time.Before(p.Since)
		switch {
		case ev.Type == audit.LoginSuccess || ev.Type == audit.ConsoleLogin:
			if !seen[k] && in {
				a := get(k)
				a.newSource = ev.Time
			}
			seen[k] = true
			if in {
				get(k).successes++
			}
		case !in:
		case lockoutTypes[ev.Type]:
			get(k).lockouts++
		default:
			a := get(k)
			a.failures++
			if a.first.IsZero() {
				a.first = ev.Time
			}
			a.last = ev.Time
		}
	}
	keys := make([]key, 0, len(rows))
	for k, a := range rows {
		if a.failures > 0 || a.lockouts > 0 || !a.newSource.IsZero() {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].user != keys[j].user {
			return keys[i].user < keys[j].user
		}
		return keys[i].source < keys[j].source
	})
	t := &Table{Columns: []Column{
		{"user", "User (as given)", 1.2}, {"source", "Source", 1.2}, {"failures", "Failures", 0.7},
		{"lockouts", "Lockouts", 0.7}, {"first_failure", "First failure", 1.3}, {"last_failure", "Last failure", 1.3},
		{"successes", "Successes", 0.7}, {"first_seen_source", "New source since", 1.3},
	}}
	for _, k := range keys {
		a := rows[k]
		t.add(a.lockouts > 0, k.user, k.source, strconv.Itoa(a.failures), strconv.Itoa(a.lockouts), ts(a.first),
			ts(a.last), strconv.Itoa(a.successes), ts(a.newSource))
	}
	t.Notes = append(t.Notes, "Failures: SSH logins refused or malformed, console sign-ins, second factors and API keys refused. A source is new when no earlier successful login of that user came from it in the kept trail.")
	return t, nil
}

// changeTypes are the audit events the change history lists.
var changeTypes = map[string]bool{audit.ResourceApply: true, audit.ResourceDelete: true, audit.SettingChange: true,
	audit.APIKeyCreate: true, audit.APIKeyRevoke: true, audit.PasswordChange: true, audit.MFAEnroll: true,
	audit.AccountRotate: true, audit.HostKeyLearned: true, audit.SessionKill: true, audit.RecordingDelete: true,
	audit.ReportSchedule: true, audit.ReviewStart: true, audit.ReviewDecide: true, audit.ReviewClose: true}

// change is one resource of a resource.apply event.
type change struct {
	key           string
	before, after string
}

// changesOf reads the changes of a resource.apply event.
func changesOf(ev store.AuditEvent) []change {
	list, _ := ev.Detail["changes"].([]any)
	var out []change
	for _, c := range list {
		m, _ := c.(map[string]any)
		k, _ := m["resource"].(string)
		if k == "" {
			continue
		}
		out = append(out, change{key: k, before: compact(m["before"]), after: compact(m["after"])})
	}
	return out
}

// compact writes a detail value as one line of JSON, empty when absent.
func compact(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func buildChanges(ctx context.Context, src *Source, p Params) (*Table, error) {
	evs, err := readAudit(ctx, src.Store, p.Since, p.Until, typesOf(changeTypes)...)
	if err != nil {
		return nil, err
	}
	t := &Table{Columns: []Column{
		{"time", "Time", 1.2}, {"actor", "Actor", 0.8}, {"source", "Origin", 1}, {"event", "Event", 1},
		{"resource", "Resource", 1.2}, {"outcome", "Outcome", 0.6}, {"before", "Before", 2.6}, {"after", "After", 2.6},
	}}
	for _, ev := range evs {
		switch ev.Type {
		case audit.ResourceApply:
			cs := changesOf(ev)
			for _, c := range cs {
				t.add(false, ts(ev.Time), ev.User, ev.Source, ev.Type, c.key, ev.Outcome, c.before, c.after)
			}
			if len(cs) == 0 {
				t.add(false, ts(ev.Time), ev.User, ev.Source, ev.Type, "", ev.Outcome, "", ev.Message)
			}
		case audit.ResourceDelete:
			kind, _ := ev.Detail["kind"].(string)
			name, _ := ev.Detail["name"].(string)
			t.add(false, ts(ev.Time), ev.User, ev.Source, ev.Type, kind+"/"+name, ev.Outcome, compact(ev.Detail["before"]), "")
		default:
			what := ev.Target
			if ev.Account != "" {
				what += "/" + ev.Account
			}
			if what == "" {
				what = ev.SessionID
			}
			t.add(false, ts(ev.Time), ev.User, ev.Source, ev.Type, what, ev.Outcome, "", ev.Message)
		}
	}
	return t, nil
}

// Thresholds of the hygiene report.
const (
	dormantAfter = 90 * 24 * time.Hour
	keyMaxAge    = 365 * 24 * time.Hour
)

func buildHygiene(ctx context.Context, src *Source, p Params) (*Table, error) {
	w, err := loadWorld(ctx, src)
	if err != nil {
		return nil, err
	}
	logins, err := readAudit(ctx, src.Store, time.Time{}, p.Until, audit.LoginSuccess, audit.ConsoleLogin, audit.APIKeyUse)
	if err != nil {
		return nil, err
	}
	last := map[string]time.Time{}
	keyUsed := map[string]time.Time{}
	for _, ev := range logins {
		if ev.Type == audit.APIKeyUse {
			id, _ := ev.Detail["key_id"].(string)
			keyUsed[id] = ev.Time
		}
		last[ev.User] = ev.Time
	}
	t := &Table{Columns: []Column{
		{"kind", "Kind", 1}, {"name", "Name", 1.3}, {"finding", "Finding", 2.2}, {"last_used", "Last used", 1.3},
		{"detail", "Detail", 2.5},
	}}
	for _, u := range w.userNames {
		if l := last[u]; p.Until.Sub(l) > dormantAfter {
			t.add(false, "user", u, "dormant: no login in 90 days", ts(l), "")
		}
		e, err := src.Store.GetMFAEnrollment(ctx, u)
		switch {
		case errors.Is(err, store.ErrNotFound):
			detail := "not enrolled; the user's mfa is not required"
			if w.users[u].MFA == "required" {
				detail = "not enrolled; mfa: required, so SSH and console sign-in are refused until enrolled"
			}
			t.add(false, "user", u, "no second factor", ts(last[u]), detail)
		case err != nil:
			return nil, fmt.Errorf("read the second factor of %s: %w", u, err)
		case e.State != store.MFAActive:
			t.add(false, "user", u, "no second factor", ts(last[u]), "enrollment pending since "+ts(e.CreatedAt))
		}
	}
	for _, s := range w.serviceNames {
		if l := last[s]; p.Until.Sub(l) > dormantAfter {
			t.add(false, "service_account", s, "dormant: no login in 90 days", ts(l), "owner "+w.services[s].Owner)
		}
	}
	names := make([]string, 0, len(w.accounts))
	for n := range w.accounts {
		names = append(names, n)
	}
	sort.Strings(names)
	used, err := lastUses(ctx, src.Store, p.Until)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		a := w.accounts[n]
		var lastUse time.Time
		for k, at := range used {
			if strings.HasSuffix(k, "\x00"+a.Target+"\x00"+a.Name) && at.After(lastUse) {
				lastUse = at
			}
		}
		switch {
		case a.KeyCreated == nil:
			if t := w.targets[a.Target]; t != nil && t.AuthMode() == "certificate" {
				continue
			}
			t.add(false, "account", n, "key never rotated", ts(lastUse), "no key creation time recorded")
		case p.Until.Sub(*a.KeyCreated) > keyMaxAge:
			t.add(false, "account", n, "key older than a year", ts(lastUse), "key created "+ts(*a.KeyCreated))
		case a.RotateEvery == 0:
			t.add(false, "account", n, "key never rotated (no rotate_every)", ts(lastUse), "key created "+ts(*a.KeyCreated))
		}
		if p.Until.Sub(lastUse) > dormantAfter {
			t.add(false, "account", n, "dormant: no session in 90 days", ts(lastUse), "")
		}
	}
	keys, err := src.Store.ListAPIKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("read API keys: %w", err)
	}
	for _, k := range keys {
		if !k.RevokedAt.IsZero() || (!k.ExpiresAt.IsZero() && k.ExpiresAt.Before(p.Until)) {
			continue
		}
		if k.ExpiresAt.IsZero() {
			t.add(false, "api_key", k.ID, "no expiry", ts(keyUsed[k.ID]), "owner "+k.Owner+", created "+ts(k.CreatedAt))
		}
		if p.Until.Sub(keyUsed[k.ID]) > dormantAfter && p.Until.Sub(k.CreatedAt) > dormantAfter {
			t.add(false, "api_key", k.ID, "dormant: unused in 90 days", ts(keyUsed[k.ID]), "owner "+k.Owner)
		}
	}
	t.Notes = append(t.Notes, fmt.Sprintf("As of %s. Dormant: no login (users, service accounts) or session (accounts) in the 90 days before; the kept audit trail is the evidence.", ts(p.Until)))
	return t, nil
}

func buildAccessReview(ctx context.Context, src *Source, p Params) (*Table, error) {
	cs, err := src.Store.ListReviewCampaigns(ctx)
	if err != nil {
		return nil, fmt.Errorf("read review campaigns: %w", err)
	}
	t := &Table{Columns: []Column{
		{"campaign", "Campaign", 0.6}, {"identity", "Identity", 0.9}, {"via", "Via", 1.1}, {"policy", "Policy", 1},
		{"target", "Target", 0.9}, {"target_user", "As", 0.7}, {"privileged", "Privileged", 1.2},
		{"decision", "Decision", 0.7}, {"reviewer", "Reviewer", 0.8}, {"decided_at", "Decided", 1.3},
		{"comment", "Comment", 1.5}, {"effect", "Effect", 1.5},
	}}
	for _, c := range cs {
		if c.StartedAt.Before(p.Since) || !c.StartedAt.Before(p.Until) {
			continue
		}
		items, err := src.Store.ListReviewItems(ctx, c.ID)
		if err != nil {
			return nil, fmt.Errorf("read the items of campaign %d: %w", c.ID, err)
		}
		for _, it := range items {
			t.add(it.Decision == "" || it.Decision == store.ReviewRevoke, strconv.FormatInt(c.ID, 10), it.Identity, it.Via,
				it.Policy, it.Target, it.TargetUser, it.Privileged, it.Decision, it.Reviewer, ts(it.DecidedAt), it.Comment, it.Effect)
		}
		state := "open"
		if !c.ClosedAt.IsZero() {
			state = fmt.Sprintf("closed %s by %s: %q", ts(c.ClosedAt), c.ClosedBy, c.SignOff)
		}
		t.Notes = append(t.Notes, fmt.Sprintf("Campaign %d %q, started %s by %s, %s.", c.ID, c.Name, ts(c.StartedAt), c.StartedBy, state))
	}
	if len(t.Notes) == 0 {
		t.Notes = append(t.Notes, "No campaign started in the period.")
	}
	return t, nil
}

// typesOf lists a set of event types, sorted.
func typesOf(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
