package api

import (
	"errors"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
)

// httpRequest turns an explain question about an http target (an
// operation on an object) into an engine request. Source and time are
// read as for an action.
func (q *ExplainRequest) httpRequest(kindOf func(string) (policy.SubjectKind, bool), now time.Time) (policy.Request, error) {
	switch {
	case q.Operation == "":
		return policy.Request{}, errors.New("field object: is asked with an operation")
	case q.Action != "" || q.Account != "" || q.Command != "":
		return policy.Request{}, errors.New("field operation: asks about an http target: action, account and command are not used with it")
	case !resource.ValidOperationName(q.Operation):
		return policy.Request{}, fmt.Errorf("field operation: %q is not an operation name (vm.power_on)", q.Operation)
	case len(q.Object) > 1024:
		return policy.Request{}, errors.New("field object: too long")
	}
	cp := *q
	cp.Operation, cp.Object, cp.Action = "", "", resource.ActionShell
	r, err := cp.request(kindOf, now)
	if err != nil {
		return r, err
	}
	r.Action, r.Operation, r.Object = "", q.Operation, q.Object
	return r, nil
}

// explainHTTP answers an explain question about an http target.
func explainHTTP(eng *policy.Engine, r policy.Request) ExplainResponse {
	d, steps := eng.ExplainHTTP(r)
	res := ExplainResponse{Allow: d.Allow, Reason: d.Reason, Policy: d.Policy, Operation: d.Operation,
		TargetUsers: []string{}, Steps: steps, AnySource: r.AnySource}
	if res.Steps == nil {
		res.Steps = []policy.Step{}
	}
	if d.Allow {
		res.Obligations = &Obligations{MaxSession: shortDuration(d.MaxSession), IdleTimeout: shortDuration(d.IdleTimeout)}
	}
	return res
}
