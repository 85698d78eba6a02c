package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/resource"
)

const policyUsage = `Usage: portcullis policy explain|test [ARGUMENTS] [FLAGS]

  policy explain --user NAME --target NAME --action ACTION [--source IP]
                 decide one access question; show the policies that matched and why
  policy test CASES.yaml [--policies FILE.yaml] [--offline]
                 run policy test cases; exit 1 on any mismatch

Run 'portcullis policy explain --help' or 'portcullis policy test --help'.
` + "\n" + globalFlagsUsage

const policyExplainUsage = `Usage: portcullis policy explain --user NAME --target NAME --action ACTION [--source IP] [FLAGS]
       portcullis policy explain --user NAME --target NAME --operation OP [--object TYPE:ID] [FLAGS]

Asks the gateway's policy engine one question: may NAME (a user or service
account) do ACTION on the target, as the account, from IP, at TIME (running
COMMAND)? Prints the decision, the obligations that come with an allow
(session limits, recording, command checks) and what each policy naming the
subject or its groups contributed. Nothing changes and nothing reaches the
target.

Without --account the gateway's rule for a login without one applies: the
only target user the subject may use is chosen; when several are allowed the
answer is a denial that lists them.

A user or target that does not exist is denied with the same reason as one
that may not be reached; the policies list says that it does not exist.

Output:
  ALLOW exec on web1 as svc-stats by policy ops-web (operation iscsi.configure)
    obligations: max_session 1h, idle_timeout 10m, record output and input, commands checked
  policies:
    ops-web        grants   grants exec on web1; command matches operation iscsi.configure
    web-no-reboot  grants   grants exec on web1; command allowed by its rules
or
  DENY exec on web1 as svc-stats: command denied by policy web-no-reboot
  ...

Flags:
  --user NAME       the user or service account asking (required)
  --target NAME     the target (required)
  --account NAME    the login on the target: svc-stats (or web1/svc-stats)
  --action ACTION   shell, exec, file-transfer or tunnel (required)
  --command CMD     an exec command, a line typed in a shell, or a file
                    transfer's command, checked against the command rules
  --source IP       the client's IP address, for source_cidrs; without it (or
                    with any) the answer is for any source: source_cidrs are
                    not checked, and each policy that grants says which
                    sources it limits to
  --time TIME       decide at this RFC 3339 time (2026-01-02T15:04:05Z)
                    instead of now, for validity windows
  --operation OP    for an http target: the operation (vm.power_on) instead
                    of --action; with --object TYPE:ID (VirtualMachine:vm-449)
                    the object it acts on
  --json            print the answer as a JSON object (the same exit codes)
` + "\n" + globalFlagsUsage + `
Exit codes: 0 allowed; 1 denied; 2 usage or input error; 3 the gateway could
not be reached or failed.
`

const policyTestUsage = `Usage: portcullis policy test CASES.yaml [--policies FILE.yaml] [--offline] [--json]

Runs policy test cases and reports each one whose answer is not the one
expected, so that admins keep tests of their policies in their own CI.
CASES.yaml (- for stdin) is a YAML list of cases:

  - name: ops may check uptime   # optional
    user: alice                  # a user or service account (required)
    target: web1                 # (required)
    account: svc-stats           # the login on the target, as for policy explain
    action: exec                 # shell, exec, file-transfer or tunnel (required)
    command: uptime              # optional
    source: 10.1.2.3             # the client's IP address (required)
    time: 2026-01-02T15:04:05Z   # optional, RFC 3339; default now
    expect: allow                # allow or deny (required)

Each case is decided as 'portcullis policy explain' decides it. Cases are
numbered from 1; an unknown or misspelt field is an error naming the case
and the field, and no case runs.

Where the cases run:
  (default)          against the gateway's current resources and policies
  --policies FILE    against the gateway's stored resources with FILE's laid
                     over them (a stream as 'apply -f' takes; a document
                     replaces the stored one of the same kind and name), for
                     this run only: nothing is stored
  --offline          (with --policies) with no gateway at all, against FILE's
                     resources alone: FILE must then hold every user, group,
                     target, account, environment and operation that its
                     policies and the cases refer to. Nothing is read from
                     the admin socket.

An Account's private_key_file in FILE is ignored (neither read nor sent):
keys play no part in decisions. FILE is checked as apply checks it; an error
exits 2, and warnings (a subject that does not exist) go to stderr.

Prints each failing case (number, name, expected and actual answer, and the
reason or the policy that allowed it), then "N passed, M failed".

Flags:
  --policies FILE   resources to test with (see above)
  --offline         run locally, against FILE only; needs --policies
  --json            print {"passed", "failed", "results": [...], "warnings"}
                    as JSON (the same exit codes)
` + "\n" + globalFlagsUsage + `
Exit codes: 0 every case passed; 1 a case failed; 2 usage or input error (a
bad case, a bad FILE); 3 the gateway could not be reached or failed.
`

// policyCommand is the "policy" group of the command tree.
func policyCommand() *command {
	return &command{name: "policy", usage: policyUsage, subs: []*command{
		{name: "policy explain", usage: policyExplainUsage, run: runPolicyExplain},
		{name: "policy test", usage: policyTestUsage, run: runPolicyTest},
	}}
}

func runPolicyExplain(e *env, args []string) error {
	fs := e.flags()
	var (
		req    api.ExplainRequest
		asJSON bool
	)
	fs.StringVar(&req.User, "user", "", "")
	fs.StringVar(&req.Target, "target", "", "")
	fs.StringVar(&req.Account, "account", "", "")
	fs.StringVar(&req.Action, "action", "", "")
	fs.StringVar(&req.Command, "command", "", "")
	fs.StringVar(&req.Source, "source", "", "")
	fs.StringVar(&req.Time, "time", "", "")
	fs.StringVar(&req.Operation, "operation", "", "")
	fs.StringVar(&req.Object, "object", "", "")
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q (everything is given with flags)", pos[0])
	}
	need := []struct{ flag, value string }{{"user", req.User}, {"target", req.Target}, {"action", req.Action}}
	if req.Operation != "" {
		// A request to an http target: the operation replaces the action.
		need = need[:2]
	}
	for _, f := range need {
		if f.value == "" {
			return usageErr("--%s is required", f.flag)
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var res api.ExplainResponse
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/policy/explain", nil, "application/json", body, &res); err != nil {
		var ee *exitError
		if errors.As(err, &ee) && ee.code == exitUsage {
			// The gateway names the JSON field; here it was a flag.
			if rest, ok := strings.CutPrefix(ee.msg, "field "); ok {
				ee.msg, ee.usage = "--"+rest, true
			}
		}
		return err
	}
	if asJSON {
		if err := printJSON(e, res); err != nil {
			return err
		}
	} else if err := printExplain(e.stdout, &req, &res); err != nil {
		return err
	}
	if !res.Allow {
		return &exitError{code: exitNo, msg: "denied"}
	}
	return nil
}

// printExplain writes an explanation for people.
func printExplain(w io.Writer, req *api.ExplainRequest, res *api.ExplainResponse) error {
	var b strings.Builder
	verdict := "DENY"
	if res.Allow {
		verdict = "ALLOW"
	}
	what := req.Action
	if req.Operation != "" {
		what = req.Operation
		if req.Object != "" {
			what += " " + req.Object
		}
	}
	fmt.Fprintf(&b, "%s %s on %s", verdict, what, req.Target)
	if res.Account != "" {
		fmt.Fprintf(&b, " as %s", res.Account)
	}
	if res.AnySource {
		b.WriteString(" from any source")
	}
	if res.Allow {
		if res.Policy != "" {
			fmt.Fprintf(&b, " by policy %s", res.Policy)
		}
		if res.Operation != "" {
			fmt.Fprintf(&b, " (operation %s)", res.Operation)
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "  obligations: %s\n", obligationsText(res.Obligations))
	} else {
		// Every reason starts so; the verdict already says it.
		fmt.Fprintf(&b, ": %s\n", strings.TrimPrefix(res.Reason, "access denied: "))
		if len(res.TargetUsers) > 0 {
			fmt.Fprintf(&b, "  target users allowed: %s\n", strings.Join(res.TargetUsers, ", "))
		}
	}
	b.WriteString("policies:\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range res.Steps {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", dash(s.Policy), s.Outcome, oneLine(s.Why))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// obligationsText lists the obligations of an allow in a few words.
func obligationsText(o *api.Obligations) string {
	if o == nil {
		return "none"
	}
	var parts []string
	if o.MaxSession != "" {
		parts = append(parts, "max_session "+o.MaxSession)
	}
	if o.IdleTimeout != "" {
		parts = append(parts, "idle_timeout "+o.IdleTimeout)
	}
	switch {
	case o.RecordInput:
		parts = append(parts, "record output and input")
	case o.Record:
		parts = append(parts, "record output")
	}
	if o.CheckCommands {
		parts = append(parts, "commands checked")
	}
	if o.Autologin {
		parts = append(parts, "autologin")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// oneLine keeps a table row on one line whatever a name or command held.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func runPolicyTest(e *env, args []string) error {
	fs := e.flags()
	var (
		policiesFile    string
		offline, asJSON bool
	)
	fs.StringVar(&policiesFile, "policies", "", "")
	fs.BoolVar(&offline, "offline", false, "")
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usageErr("CASES.yaml is required")
	case len(pos) > 1:
		return usageErr("unexpected argument %q (one CASES file; resources are given with --policies FILE)", pos[1])
	case offline && policiesFile == "":
		return usageErr("--offline needs --policies FILE: without a gateway, the resources to test come from FILE")
	case pos[0] == "-" && policiesFile == "-":
		return usageErr("CASES and --policies cannot both be stdin")
	}
	data, casesName, _, err := readStream(e, pos[0])
	if err != nil {
		return err
	}
	cases, err := decodeCases(data)
	if err != nil {
		return inputErr("%s: %v", casesName, err)
	}
	var (
		objs        []resource.Object
		policiesSrc string
	)
	if policiesFile != "" {
		if objs, policiesSrc, err = readPolicies(e, policiesFile); err != nil {
			return err
		}
	}
	var res *api.PolicyTestResponse
	if offline {
		res, err = testOffline(cases, casesName, objs, policiesSrc)
	} else {
		res, err = testOnline(e, cases, casesName, objs, policiesSrc)
	}
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s: %s\n", policiesSrc, w)
	}
	return printTestResults(e, res, asJSON)
}

// readPolicies reads --policies FILE as apply reads a stream.
// private_key_file is dropped rather than read: a policy test decides
// nothing with keys, and CI need not hold them.
func readPolicies(e *env, file string) ([]resource.Object, string, error) {
	data, name, _, err := readStream(e, file)
	if err != nil {
		return nil, "", err
	}
	objs, err := resource.DecodeYAML(data)
	if err != nil {
		return nil, "", inputErr("%s: %v", name, err)
	}
	if len(objs) == 0 {
		return nil, "", inputErr("%s: no resources found", name)
	}
	for _, o := range objs {
		if acc, ok := o.(*resource.Account); ok {
			acc.PrivateKeyFile, acc.PrivateKey = "", ""
		}
	}
	return objs, name, nil
}

// testOffline runs the cases against objs alone, with the same code the
// gateway runs them with.
func testOffline(cases []api.PolicyCase, casesName string, objs []resource.Object, policiesName string) (*api.PolicyTestResponse, error) {
	eng, warns, err := inventory.Preview(nil, objs)
	if err != nil {
		return nil, inputErr("%s: %v", policiesName, err)
	}
	res, err := api.RunPolicyTests(eng, api.SubjectKinds(objs), cases)
	if err != nil {
		return nil, inputErr("%s: %v", casesName, err)
	}
	if warns != nil {
		res.Warnings = warns
	}
	return res, nil
}

// testOnline sends the cases, and the resources if any, to the gateway.
func testOnline(e *env, cases []api.PolicyCase, casesName string, objs []resource.Object, policiesName string) (*api.PolicyTestResponse, error) {
	req := api.PolicyTestRequest{Cases: cases}
	if objs != nil {
		req.Policies = make([]json.RawMessage, len(objs))
		for i, o := range objs {
			raw, err := json.Marshal(o)
			if err != nil {
				return nil, fmt.Errorf("encode %s %s: %w", o.GetKind(), o.GetName(), err)
			}
			req.Policies[i] = raw
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	c, err := e.api()
	if err != nil {
		return nil, err
	}
	var res api.PolicyTestResponse
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/policy/test", nil, "application/json", body, &res); err != nil {
		var ee *exitError
		if errors.As(err, &ee) && ee.code == exitUsage {
			// Name the file the gateway's message is about, as offline
			// runs do.
			if rest, ok := strings.CutPrefix(ee.msg, "policies: "); ok {
				ee.msg = policiesName + ": " + rest
			} else if strings.HasPrefix(ee.msg, "case ") {
				ee.msg = casesName + ": " + ee.msg
			}
		}
		return nil, err
	}
	return &res, nil
}

// printTestResults prints a run, online or offline alike, and turns any
// failed case into exit 1.
func printTestResults(e *env, res *api.PolicyTestResponse, asJSON bool) error {
	if asJSON {
		if err := printJSON(e, res); err != nil {
			return err
		}
	} else {
		var b strings.Builder
		for _, r := range res.Results {
			if r.OK {
				continue
			}
			fmt.Fprintf(&b, "FAIL case %d", r.Index)
			if r.Name != "" {
				fmt.Fprintf(&b, " (%s)", oneLine(r.Name))
			}
			fmt.Fprintf(&b, ": expected %s, got %s", r.Expect, r.Got)
			switch {
			case r.Reason != "":
				fmt.Fprintf(&b, ": %s", r.Reason)
			case r.Policy != "":
				fmt.Fprintf(&b, " by policy %s", r.Policy)
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%d passed, %d failed\n", res.Passed, res.Failed)
		if _, err := io.WriteString(e.stdout, b.String()); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	if res.Failed > 0 {
		return &exitError{code: exitNo, msg: fmt.Sprintf("%d of %d cases failed", res.Failed, res.Passed+res.Failed)}
	}
	return nil
}

// caseFields are the fields of a case in CASES.yaml, in the order of the
// help text.
var caseFields = []string{"name", "user", "target", "account", "action", "command", "source", "time", "expect"}

// decodeCases reads CASES.yaml: one YAML list of cases, each a mapping of
// the caseFields to scalars. It walks the nodes itself rather than using
// yaml.v3's KnownFields, whose errors give a line but not the case, and so
// that a timestamp or a number is taken as written.
func decodeCases(data []byte) ([]api.PolicyCase, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no cases found")
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document: write the cases as one list")
	}
	if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
		return nil, errors.New("no cases found")
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("want a YAML list of cases (- user: ...), not a %s (line %d)", nodeKind(list), list.Line)
	}
	if len(list.Content) == 0 {
		return nil, errors.New("no cases found")
	}
	cases := make([]api.PolicyCase, len(list.Content))
	for i, n := range list.Content {
		if err := decodeCase(n, &cases[i]); err != nil {
			return nil, fmt.Errorf("case %d: %w", i+1, err)
		}
	}
	return cases, nil
}

func decodeCase(n *yaml.Node, c *api.PolicyCase) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("want a mapping of %s, not a %s (line %d)", strings.Join(caseFields, ", "), nodeKind(n), n.Line)
	}
	fields := map[string]*string{
		"name": &c.Name, "user": &c.User, "target": &c.Target, "account": &c.Account, "action": &c.Action,
		"command": &c.Command, "source": &c.Source, "time": &c.Time, "expect": &c.Expect,
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		dst, ok := fields[k.Value]
		switch {
		case !ok:
			return fmt.Errorf("field %s: unknown field (line %d; a case has %s)", k.Value, k.Line, strings.Join(caseFields, ", "))
		case seen[k.Value]:
			return fmt.Errorf("field %s: given more than once (line %d)", k.Value, k.Line)
		case v.Kind != yaml.ScalarNode:
			return fmt.Errorf("field %s: want a single value, not a %s (line %d)", k.Value, nodeKind(v), v.Line)
		}
		seen[k.Value] = true
		if v.Tag != "!!null" {
			*dst = v.Value
		}
	}
	return nil
}

// nodeKind names a YAML node's kind for messages.
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.AliasNode:
		return "alias"
	}
	return "single value"
}
