package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/resource"
)

const getUsage = `Usage: portcullis get KIND [NAME] [-o table|yaml|json] [--json]

Lists the resources of a kind, or shows the one named. KIND is
case-insensitive, singular or plural (user, Users, service-accounts); "all"
lists every kind. An Account's NAME is TARGET/NAME (web1/svc-stats).

Output:
  table (default)  one line per resource with the most useful fields
  yaml             a stream that 'portcullis apply -f' takes back unchanged
                   (for example: portcullis get all -o yaml > backup.yaml)
  json             a JSON array of objects, even for one NAME

Secrets (private keys) are never printed. A NAME that does not exist exits 1.

Flags:
  -o, --output FORMAT   table, yaml or json
  --json                the same as -o json
` + "\n" + globalFlagsUsage

const deleteUsage = `Usage: portcullis delete KIND NAME [--yes]

Deletes one resource; an Account's NAME is TARGET/NAME
(portcullis delete account web1/svc-stats). A resource that others still
refer to (a Target with Accounts, an Operation a Policy uses) is not deleted:
the message names them, and the exit code is 1, as it is for a NAME that
does not exist.

On a terminal it asks first. When stdin is not a terminal (a script, a
pipe) it refuses unless --yes is given, rather than delete unasked.

Flags:
` + yesUsage + "\n" + globalFlagsUsage

const accountUsage = `Usage: portcullis account pubkey TARGET/NAME

Prints the public key of an Account in authorized_keys format: install it in
~NAME/.ssh/authorized_keys on TARGET so that the gateway can log in there.
The private key stays in the gateway.
` + "\n" + globalFlagsUsage

const caUsage = `Usage: portcullis ca pubkey

Prints the public key of the gateway's user certificate authority. Targets
with auth: certificate trust it: put the line in the file named by sshd's
TrustedUserCAKeys.
` + "\n" + globalFlagsUsage

// kindAll lists every kind in `get all`.
const kindAll = "all"

func runGet(e *env, args []string) error {
	fs := e.flags()
	var output string
	var asJSON bool
	fs.StringVar(&output, "o", "", "")
	fs.StringVar(&output, "output", "", "")
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case asJSON && output != "" && output != "json":
		return usageErr("--json and -o %s disagree", output)
	case asJSON:
		output = "json"
	case output == "":
		output = "table"
	}
	if output != "table" && output != "yaml" && output != "json" {
		return usageErr("unknown output format %q (want table, yaml or json)", output)
	}
	if len(pos) == 0 {
		return usageErr("KIND is required")
	}
	if len(pos) > 2 {
		return usageErr("unexpected argument %q", pos[2])
	}
	var kind resource.Kind
	if !strings.EqualFold(pos[0], kindAll) {
		if kind, err = resource.ParseKind(pos[0]); err != nil {
			return usageErr("%v", err)
		}
	} else if len(pos) == 2 {
		return usageErr("get all takes no NAME")
	}
	objs, err := fetch(e, kind, pos[1:])
	if err != nil {
		return err
	}
	switch output {
	case "json":
		return printJSON(e, objs)
	case "yaml":
		if err := resource.EncodeYAML(e.stdout, objs); err != nil {
			return fmt.Errorf("write YAML: %w", err)
		}
		return nil
	}
	if len(objs) == 0 {
		fmt.Fprintf(e.stderr, "No %s found.\n", plural(kind))
		return nil
	}
	if objs, err = withUserMembers(e, objs); err != nil {
		return err
	}
	return printTables(e.stdout, objs)
}

// withUserMembers returns objs with each Group's members completed by the
// users whose own groups list names it: a user joins a group either way,
// and a table that showed only the Group's list would hide half of them.
// -o yaml and -o json show the resources as stored.
func withUserMembers(e *env, objs []resource.Object) ([]resource.Object, error) {
	var users []resource.Object
	hasGroups, hasUsers := false, false
	for _, o := range objs {
		switch o.GetKind() {
		case resource.KindGroup:
			hasGroups = true
		case resource.KindUser:
			hasUsers = true
			users = append(users, o)
		}
	}
	if !hasGroups {
		return objs, nil
	}
	if !hasUsers {
		var err error
		if users, err = fetch(e, resource.KindUser, nil); err != nil {
			return nil, err
		}
	}
	byGroup := map[string][]string{}
	for _, o := range users {
		if u, ok := o.(*resource.User); ok {
			for _, g := range u.Groups {
				byGroup[g] = append(byGroup[g], u.Name)
			}
		}
	}
	out := make([]resource.Object, len(objs))
	for i, o := range objs {
		out[i] = o
		g, ok := o.(*resource.Group)
		if !ok || len(byGroup[g.Name]) == 0 {
			continue
		}
		cp := *g
		cp.Members = slices.Clone(g.Members)
		for _, name := range byGroup[g.Name] {
			if !slices.Contains(cp.Members, name) {
				cp.Members = append(cp.Members, name)
			}
		}
		slices.Sort(cp.Members)
		out[i] = &cp
	}
	return out, nil
}

// fetch returns the named resource, or every resource of kind ("" for all
// kinds), decoded.
func fetch(e *env, kind resource.Kind, name []string) ([]resource.Object, error) {
	c, err := e.api()
	if err != nil {
		return nil, err
	}
	if len(name) == 1 {
		var raw json.RawMessage
		if err := c.do(e.ctx, http.MethodGet, resourcePath(string(kind), name[0]), nil, "", nil, &raw); err != nil {
			return nil, err
		}
		o, err := decodeObject(raw)
		if err != nil {
			return nil, err
		}
		return []resource.Object{o}, nil
	}
	path := "/api/v1/resources"
	if kind != "" {
		path = resourcePath(string(kind), "")
	}
	var raws []json.RawMessage
	if err := c.do(e.ctx, http.MethodGet, path, nil, "", nil, &raws); err != nil {
		return nil, err
	}
	objs := make([]resource.Object, 0, len(raws))
	for _, raw := range raws {
		o, err := decodeObject(raw)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// decodeObject decodes one resource from the gateway by its kind field.
// It is lenient with fields it does not know: a newer gateway may send
// more than this CLI prints.
func decodeObject(raw json.RawMessage) (resource.Object, error) {
	var head struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, &exitError{code: exitFailure, msg: fmt.Sprintf("unreadable resource from the gateway: %v", err)}
	}
	kind, err := resource.ParseKind(head.Kind)
	if err != nil {
		return nil, &exitError{code: exitFailure, msg: fmt.Sprintf("resource from the gateway: %v", err)}
	}
	o, err := resource.New(kind)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, o); err != nil {
		return nil, &exitError{code: exitFailure, msg: fmt.Sprintf("unreadable %s from the gateway: %v", kind, err)}
	}
	return o, nil
}

// printJSON prints v as an indented JSON array (or value).
func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

func plural(kind resource.Kind) string {
	if kind == "" {
		return "resources"
	}
	return strings.ToLower(string(kind)) + "s"
}

func runDelete(e *env, args []string) error {
	fs := e.flags()
	yes := yesFlag(fs)
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageErr("want KIND NAME, got %d arguments", len(pos))
	}
	kind, err := resource.ParseKind(pos[0])
	if err != nil {
		return usageErr("%v", err)
	}
	if kind == resource.KindAccount {
		if t, n, ok := strings.Cut(pos[1], "/"); !ok || t == "" || n == "" || strings.Contains(n, "/") {
			return usageErr("an Account is named TARGET/NAME (for example web1/%s), not %q", strings.Trim(pos[1], "/"), pos[1])
		}
	}
	if err := e.confirm(*yes, fmt.Sprintf("Delete %s/%s? It cannot be undone", kind, pos[1])); err != nil {
		return err
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var res api.DeleteResponse
	if err := c.do(e.ctx, http.MethodDelete, resourcePath(string(kind), pos[1]), nil, "", nil, &res); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s deleted\n", res.Deleted)
	return nil
}

func runAccountPubkey(e *env, args []string) error {
	pos, err := e.parse(e.flags(), args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want one TARGET/NAME, got %d arguments", len(pos))
	}
	target, name, ok := strings.Cut(pos[0], "/")
	if !ok || target == "" || name == "" || strings.Contains(name, "/") {
		return usageErr("%q is not TARGET/NAME (for example web1/svc-stats)", pos[0])
	}
	objs, err := fetch(e, resource.KindAccount, pos)
	if err != nil {
		return err
	}
	acc, ok := objs[0].(*resource.Account)
	if !ok || acc.PublicKey == "" {
		return fmt.Errorf("the gateway returned no public key for account %s", pos[0])
	}
	fmt.Fprintln(e.stdout, acc.PublicKey)
	return nil
}

func runCAPubkey(e *env, args []string) error {
	return printPublicKey(e, args, "/api/v1/ca", func(r api.CAResponse) string { return r.PublicKey })
}

// printPublicKey serves the commands that take no argument and print one
// public key the API returns at path (ca pubkey, audit pubkey).
func printPublicKey[T any](e *env, args []string, path string, key func(T) string) error {
	pos, err := e.parse(e.flags(), args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var res T
	if err := c.do(e.ctx, http.MethodGet, path, nil, "", nil, &res); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, key(res))
	return nil
}
