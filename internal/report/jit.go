package report

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/portcullis/portcullis/internal/store"
)

func init() {
	Register(Kind{Name: "jit-requests", Title: "Just-in-time access requests",
		Description: "Every just-in-time request made in the period: who asked for what and why, who decided, how (by a person or automatically) and through which channel, the grant, its use and its end (SOC 2 CC6.2/CC6.3, PCI DSS 7.2.4)",
		Build:       buildJITRequests})
}

// maxJITRows bounds the requests one report reads; a period with more is
// said so in the report's notes rather than cut silently.
const maxJITRows = 100000

// buildJITRequests lists the requests created within the period with
// their history. The rows come from the requests' own store rows, which
// outlive the grants (a grant is deleted when it ends; its request is not).
func buildJITRequests(ctx context.Context, src *Source, p Params) (*Table, error) {
	reqs, err := src.Store.ListJITRequests(ctx, store.JITFilter{Limit: maxJITRows + 1})
	if err != nil {
		return nil, fmt.Errorf("jit requests: %w", err)
	}
	t := &Table{Columns: []Column{
		{"id", "Request", 0.8}, {"requester", "User", 0.8}, {"jit_policy", "JIT policy", 1},
		{"target", "Target", 0.8}, {"account", "Account", 0.8}, {"duration", "For", 0.7},
		{"reason", "Reason", 1.4}, {"state", "State", 0.8}, {"approval", "Approval", 0.8},
		{"decided_by", "Decided by", 1}, {"channel", "Via", 0.6}, {"created", "Requested", 1.3},
		{"decided", "Decided", 1.3}, {"ends", "Access ends", 1.3}, {"grant", "Grant", 1.1},
		{"sessions", "Uses", 0.6}, {"history", "History", 2.2},
	}}
	if len(reqs) > maxJITRows {
		reqs = reqs[:maxJITRows]
		t.Notes = append(t.Notes, fmt.Sprintf("Only the newest %d requests were read; narrow the period.", maxJITRows))
	}
	// The store lists newest first; the report reads oldest first, like
	// the other activity reports.
	for i := len(reqs) - 1; i >= 0; i-- {
		r := reqs[i]
		if r.CreatedAt.Before(p.Since) || !r.CreatedAt.Before(p.Until) {
			continue
		}
		evs, err := src.Store.ListJITEvents(ctx, r.ID)
		if err != nil {
			return nil, fmt.Errorf("jit request %s history: %w", r.ID, err)
		}
		var steps []string
		channel, used := "", 0
		for _, ev := range evs {
			step := ts(ev.Time) + " " + ev.Kind
			if ev.Actor != "" {
				step += " by " + ev.Actor
			}
			if ev.Channel != "" {
				step += " (" + ev.Channel + ")"
			}
			steps = append(steps, step)
			switch ev.Kind {
			case "approved", "denied":
				channel = ev.Channel
			case "used":
				used++
			}
		}
		// An automatic approval stands out: no person saw the request.
		t.add(r.Approval == "auto", r.ID, r.Requester, r.Policy, r.Target, r.Account, r.Duration.String(),
			r.Reason, r.State, r.Approval, r.DecidedBy, channel, ts(r.CreatedAt), ts(r.DecidedAt), ts(r.ExpiresAt),
			r.Grant, strconv.Itoa(used), strings.Join(steps, "; "))
	}
	t.Notes = append(t.Notes,
		"Requests made within the period, with every step of their history. Automatic approvals are marked: no person decided them.",
		"A grant policy (JIT-...) is deleted when access ends; the request and its history are kept.")
	return t, nil
}
