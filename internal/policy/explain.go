package policy

import (
	"fmt"
	"sort"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
)

// Step is one policy's part in a decision, for `portcullis policy explain`.
type Step struct {
	Policy string `json:"policy"`
	Type   string `json:"type"` // target-access or session-recording
	// Outcome is "grants", "denies" (a command rule), "no match", or for
	// session-recording "records".
	Outcome string `json:"outcome"`
	Why     string `json:"why"`
}

// Explain decides r and says what every policy naming the subject
// contributed. It is slower than Decide and meant for people.
func (e *Engine) Explain(r Request) (Decision, []Step) {
	d := e.Decide(r)
	var steps []Step
	loginName, cands, ok := e.allCandidates(e.access, &r, nil)
	target := e.targets[r.Target]
	if !ok {
		return d, []Step{{Outcome: "no match", Why: fmt.Sprintf("no user or service account is called %q", r.Subject)}}
	}
	if target == nil {
		return d, []Step{{Outcome: "no match", Why: fmt.Sprintf("no target is called %q", r.Target)}}
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	certAuth := target.AuthMode() == resource.AuthCertificate
	cmd := lazyCommand{cache: e.parsed}
	seen := map[*compiled]bool{}
	for _, list := range cands {
		for _, c := range list {
			if seen[c] {
				continue
			}
			seen[c] = true
			st := Step{Policy: c.name, Type: resource.PolicyTargetAccess, Outcome: "no match"}
			switch e.stage(c, &r, loginName, certAuth, now) {
			case stageTarget:
				st.Why = fmt.Sprintf("does not cover target %s", r.Target)
			case stageWindow:
				st.Why = fmt.Sprintf("is valid %s", window(c))
			case stageSource:
				st.Why = fmt.Sprintf("does not allow source %s (source_cidrs %v)", r.Source, c.cidrs)
			case stageAction:
				st.Why = fmt.Sprintf("does not grant %s", r.Action)
			case stageUser:
				st.Why = fmt.Sprintf("does not grant target user %s (target_users %v%s)", r.TargetUser, c.targetUsers, accountNote(certAuth))
			case stageGranted:
				st.Outcome, st.Why = "grants", fmt.Sprintf("grants %s on %s", r.Action, r.Target)
				if r.TargetUser == "" {
					st.Why += fmt.Sprintf(" as %v", e.appendUsers(nil, c, loginName, r.Target, certAuth))
				}
				if r.AnySource && len(c.cidrs) > 0 {
					st.Why += fmt.Sprintf(", only from source_cidrs %v", c.cidrs)
				}
				if r.Command != "" && c.hasRules() {
					op, denied, allowed, why := c.checkCommand(cmd.parse(r.Command))
					switch {
					case denied:
						st.Outcome, st.Why = "denies", why
					case !allowed:
						st.Outcome, st.Why = "no match", why
					case op != "":
						st.Why += fmt.Sprintf("; command matches operation %s", op)
					default:
						st.Why += "; command allowed by its rules"
					}
				} else if c.hasRules() {
					st.Why += "; lines entered in a shell are checked against its command rules"
				}
			}
			steps = append(steps, st)
		}
	}
	rcands := [][]*compiled(nil)
	_, rcands, _ = e.allCandidates(e.recording, &r, rcands)
	for _, list := range rcands {
		for _, c := range list {
			if seen[c] || !c.targets[r.Target] || !c.activeAt(now) {
				continue
			}
			seen[c] = true
			why := "records output"
			if c.recordInput {
				why = "records output and input"
			}
			steps = append(steps, Step{Policy: c.name, Type: resource.PolicySessionRecording, Outcome: "records", Why: why})
		}
	}
	steps = e.jitSteps(d, r, steps)
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].Policy < steps[j].Policy })
	if len(steps) == 0 {
		steps = append(steps, Step{Outcome: "no match", Why: fmt.Sprintf("no policy names %s or its groups", r.Subject)})
	}
	return d, steps
}

// jitSteps says which steps are just-in-time grants, which of them the
// precedence set aside, and, when the request is denied, under which jit
// policies the subject may ask for it.
func (e *Engine) jitSteps(d Decision, r Request, steps []Step) []Step {
	for i := range steps {
		c := e.grantByName(steps[i].Policy)
		if c == nil || c.jit == nil {
			continue
		}
		g := c.jit
		note := fmt.Sprintf("just-in-time grant of request %s under jit policy %s (%s approval, %s)", g.Request, g.JITPolicy, g.Approval, g.Duration.Std())
		switch {
		case steps[i].Outcome != "grants":
			steps[i].Why += "; " + note
		case d.Allow && d.Policy == steps[i].Policy:
			steps[i].Why = note + ": " + steps[i].Why
		case d.Allow:
			steps[i].Outcome = "superseded"
			steps[i].Why = fmt.Sprintf("%s; not used: %s decides (a JIT grant never overrides other access; manual before automatic, then the shortest)", note, d.Policy)
		}
	}
	if d.Allow {
		return steps
	}
	for _, o := range e.JITOptions(r) {
		how := "approval by an approver"
		if o.AutoApprove {
			how = "automatic approval"
		}
		steps = append(steps, Step{Policy: o.Policy, Type: resource.PolicyJIT, Outcome: "may request",
			Why: fmt.Sprintf("%s may request access to %s through children %v for up to %s (%s): portcullis jit request --target %s --reason \"...\"",
				r.Subject, r.Target, o.Children, o.MaxDuration, how, r.Target)})
	}
	return steps
}

// grantByName finds a compiled target-access or proxy policy by name.
func (e *Engine) grantByName(name string) *compiled { return e.byName[name] }

func window(c *compiled) string {
	switch {
	case !c.from.IsZero() && !c.until.IsZero():
		return fmt.Sprintf("from %s until %s", c.from.Format(time.RFC3339), c.until.Format(time.RFC3339))
	case !c.from.IsZero():
		return "from " + c.from.Format(time.RFC3339)
	default:
		return "until " + c.until.Format(time.RFC3339)
	}
}

func accountNote(certAuth bool) string {
	if certAuth {
		return ""
	}
	return "; with auth: key a target user also needs an Account"
}
