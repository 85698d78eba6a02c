package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/portcullis/portcullis/internal/api"
)

const reviewUsage = `Usage: portcullis review start [--name NAME] [--every DURATION]
       portcullis review ls [--json]
       portcullis review show ID [--json]
       portcullis review decide ID ITEM keep|revoke [--comment TEXT]
       portcullis review close ID --sign-off TEXT

Access review campaigns (PCI DSS 7.2.4: access reviewed every 6 months).
start copies every entitlement, as 'report entitlements' lists them, into
a new campaign. Reviewers (auditors and admins) keep or revoke each item;
nobody decides access they hold, own through a service account, or granted
(the last change of its policy). A decision is final. A revoke takes
effect at once: the identity leaves the policy's subjects (the policy is
deleted when it was the last), or leaves the local group it came through,
which ends every access that group gave (the item's effect says so), and
live sessions it no longer allows end. Access through a directory (LDAP)
group is refused: change the directory. close signs the campaign off once
every item is decided; 'report access-review' then exports it.

--every 90d also opens a new campaign that often from now on (a report
schedule of kind review: 'report schedules' lists it, 'report unschedule
ID' stops it); at least 1d.
` + "\n" + globalFlagsUsage

const recordingsReviewUsage = `Usage: portcullis recordings review ID (--ok | --flag) [--comment TEXT]
       portcullis recordings reviews ID [--json]

Marks a recording reviewed (--ok) or flagged for follow-up (--flag, which
needs --comment). Nobody reviews their own session. The latest review of a
recording is what 'report privileged-sessions' shows. Audited
(recording.review).
` + "\n" + globalFlagsUsage

func runReviewStart(e *env, args []string) error {
	fs := e.flags()
	var name, every string
	fs.StringVar(&name, "name", "", "")
	fs.StringVar(&every, "every", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	body, _ := json.Marshal(api.CampaignRequest{Name: name, Every: every})
	c, err := e.api()
	if err != nil {
		return err
	}
	var out api.Campaign
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/reviews", nil, "application/json", body, &out); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "review %d %q opened with %d entitlements: portcullis review show %d\n", out.ID, out.Name, len(out.Items), out.ID)
	if out.ScheduleID != 0 {
		fmt.Fprintf(e.stdout, "a new review opens every %s (schedule %d)\n", every, out.ScheduleID)
	}
	return nil
}

func runReviewLs(e *env, args []string) error {
	fs := e.flags()
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var cs []api.Campaign
	if err := c.do(e.ctx, http.MethodGet, "/api/v1/reviews", nil, "", nil, &cs); err != nil {
		return err
	}
	if asJSON {
		return printJSON(e, cs)
	}
	for _, cp := range cs {
		state := "open"
		if cp.ClosedAt != nil {
			state = "closed " + cp.ClosedAt.UTC().Format(time.RFC3339) + " by " + cp.ClosedBy
		}
		fmt.Fprintf(e.stdout, "%d\t%s\tstarted %s by %s\t%s\n", cp.ID, cp.Name, cp.StartedAt.UTC().Format(time.RFC3339), cp.StartedBy, state)
	}
	return nil
}

func runReviewShow(e *env, args []string) error {
	fs := e.flags()
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want one campaign id")
	}
	if _, err := strconv.ParseInt(pos[0], 10, 64); err != nil {
		return usageErr("campaign id %q is not a number", pos[0])
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var cp api.Campaign
	if err := c.do(e.ctx, http.MethodGet, "/api/v1/reviews/"+pos[0], nil, "", nil, &cp); err != nil {
		return err
	}
	if asJSON {
		return printJSON(e, cp)
	}
	fmt.Fprintf(e.stdout, "review %d %q, started %s by %s\n", cp.ID, cp.Name, cp.StartedAt.UTC().Format(time.RFC3339), cp.StartedBy)
	for _, it := range cp.Items {
		decision := "PENDING"
		if it.Decision != "" {
			decision = it.Decision + " by " + it.Reviewer
		}
		priv := ""
		if it.Privileged != "" {
			priv = " [privileged: " + it.Privileged + "]"
		}
		fmt.Fprintf(e.stdout, "%4d  %s %s via %s: %s as %s (policy %s)%s  %s\n", it.Item, it.IdentityKind, it.Identity, it.Via,
			it.Target, it.TargetUser, it.Policy, priv, decision)
	}
	return nil
}

func runReviewDecide(e *env, args []string) error {
	fs := e.flags()
	var comment string
	fs.StringVar(&comment, "comment", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 3 || (pos[2] != "keep" && pos[2] != "revoke") {
		return usageErr("want: review decide ID ITEM keep|revoke [--comment TEXT]")
	}
	for _, n := range pos[:2] {
		if _, err := strconv.ParseInt(n, 10, 64); err != nil {
			return usageErr("%q is not a number", n)
		}
	}
	body, _ := json.Marshal(api.DecisionRequest{Decision: pos[2], Comment: comment})
	c, err := e.api()
	if err != nil {
		return err
	}
	var it api.ReviewItem
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/reviews/"+pos[0]+"/items/"+pos[1], nil, "application/json", body, &it); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "item %d: %s", it.Item, it.Decision)
	if it.Effect != "" {
		fmt.Fprintf(e.stdout, ": %s", it.Effect)
	}
	fmt.Fprintln(e.stdout)
	return nil
}

func runReviewClose(e *env, args []string) error {
	fs := e.flags()
	var signOff string
	fs.StringVar(&signOff, "sign-off", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || signOff == "" {
		return usageErr("want: review close ID --sign-off TEXT")
	}
	if _, err := strconv.ParseInt(pos[0], 10, 64); err != nil {
		return usageErr("campaign id %q is not a number", pos[0])
	}
	body, _ := json.Marshal(api.SignOffRequest{SignOff: signOff})
	c, err := e.api()
	if err != nil {
		return err
	}
	var cp api.Campaign
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/reviews/"+pos[0]+"/close", nil, "application/json", body, &cp); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "review %d closed: %s\n", cp.ID, cp.SignOff)
	return nil
}

func runRecordingsReview(e *env, args []string) error {
	fs := e.flags()
	var ok, flagged bool
	var comment string
	fs.BoolVar(&ok, "ok", false, "")
	fs.BoolVar(&flagged, "flag", false, "")
	fs.StringVar(&comment, "comment", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || ok == flagged {
		return usageErr("want: recordings review ID (--ok | --flag) [--comment TEXT]")
	}
	decision := "reviewed"
	if flagged {
		decision = "flagged"
	}
	body, _ := json.Marshal(api.SessionReviewRequest{Decision: decision, Comment: comment})
	c, err := e.api()
	if err != nil {
		return err
	}
	var sr api.SessionReview
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/recordings/"+url.PathEscape(pos[0])+"/reviews", nil, "application/json", body, &sr); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "recording %s marked %s by %s\n", sr.RecordingID, sr.Decision, sr.Reviewer)
	return nil
}

func runRecordingsReviews(e *env, args []string) error {
	fs := e.flags()
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want one recording id")
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var rs []api.SessionReview
	if err := c.do(e.ctx, http.MethodGet, "/api/v1/recordings/"+url.PathEscape(pos[0])+"/reviews", nil, "", nil, &rs); err != nil {
		return err
	}
	if asJSON {
		return printJSON(e, rs)
	}
	for _, r := range rs {
		fmt.Fprintf(e.stdout, "%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), r.Reviewer, r.Decision, r.Comment)
	}
	return nil
}
