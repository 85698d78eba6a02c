package cli

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/resource"
)

// none fills an empty cell, so that columns stay aligned and a reader can
// tell "nothing" from a rendering glitch.
const none = "<none>"

// maxCell keeps one long field (a pattern list) from pushing every other
// column off the screen; -o yaml shows it whole.
const maxCell = 60

// columns returns the header and row function of a kind's table.
func columns(kind resource.Kind) ([]string, func(resource.Object) []string) {
	switch kind {
	case resource.KindUser:
		return []string{"NAME", "EMAIL", "ROLES", "GROUPS", "SSH-KEYS"}, func(o resource.Object) []string {
			u := o.(*resource.User)
			return []string{u.Name, u.Email, list(u.Roles), list(u.Groups), strconv.Itoa(len(u.SSHKeys))}
		}
	case resource.KindServiceAccount:
		return []string{"NAME", "OWNER", "SSH-KEYS"}, func(o resource.Object) []string {
			s := o.(*resource.ServiceAccount)
			return []string{s.Name, s.Owner, strconv.Itoa(len(s.SSHKeys))}
		}
	case resource.KindGroup:
		return []string{"NAME", "MEMBERS"}, func(o resource.Object) []string {
			g := o.(*resource.Group)
			return []string{g.Name, list(g.Members)}
		}
	case resource.KindTarget:
		return []string{"NAME", "ADDRESS", "AUTH", "LABELS"}, func(o resource.Object) []string {
			t := o.(*resource.Target)
			addr := t.Address
			if t.ThroughAgent() {
				addr = agentColumn(t)
			}
			return []string{t.Name, addr, t.AuthMode(), labels(t.Labels)}
		}
	case resource.KindEnvironment:
		return []string{"NAME", "TARGETS", "SELECTOR"}, func(o resource.Object) []string {
			en := o.(*resource.Environment)
			return []string{en.Name, list(en.Targets), labels(en.Selector)}
		}
	case resource.KindAccount:
		// NAME is TARGET/NAME: what get, delete and account pubkey take.
		return []string{"NAME", "TARGET", "KEY-TYPE", "PUBLIC-KEY-FINGERPRINT"}, func(o resource.Object) []string {
			a := o.(*resource.Account)
			typ, fp := keyFingerprint(a.PublicKey)
			return []string{a.GetName(), a.Target, typ, fp}
		}
	case resource.KindOperation:
		return []string{"NAME", "PATTERNS"}, func(o resource.Object) []string {
			op := o.(*resource.Operation)
			return []string{op.Name, strings.Join(op.Patterns, " ")}
		}
	case resource.KindPolicy:
		return []string{"NAME", "TYPE", "SUBJECTS", "TARGETS", "ACTIONS"}, func(o resource.Object) []string {
			p := o.(*resource.Policy)
			return []string{p.Name, p.Type, subjects(p.Subjects), targets(p.Targets), list(p.Actions)}
		}
	}
	return []string{"NAME"}, func(o resource.Object) []string { return []string{o.GetName()} }
}

// printTables prints objects (sorted by kind by the gateway) as one table
// per kind, separated by a blank line and titled when there are several.
func printTables(w io.Writer, objs []resource.Object) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	var kinds []resource.Kind
	byKind := map[resource.Kind][]resource.Object{}
	for _, o := range objs {
		k := o.GetKind()
		if _, ok := byKind[k]; !ok {
			kinds = append(kinds, k)
		}
		byKind[k] = append(byKind[k], o)
	}
	for i, k := range kinds {
		if len(kinds) > 1 {
			if i > 0 {
				fmt.Fprintln(tw)
			}
			fmt.Fprintf(tw, "# %s\n", k)
		}
		header, row := columns(k)
		writeRow(tw, header)
		for _, o := range byKind[k] {
			writeRow(tw, row(o))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// writeRow writes one tab-separated row, making each cell safe: no tab or
// newline from a field may break the layout, and no control character (a
// command a user typed, a forwarding address a client sent) reaches the
// admin's terminal, where an escape sequence could rewrite what is shown.
func writeRow(w io.Writer, cells []string) { writeRowMax(w, cells, maxCell) }

// writeRowMax is writeRow with cells cut at limit runes; 0 cuts nothing
// (-o wide).
func writeRowMax(w io.Writer, cells []string, limit int) {
	out := make([]string, len(cells))
	for i, c := range cells {
		c = strings.Join(strings.Fields(c), " ")
		c = escapeControls(c)
		if c == "" {
			c = none
		}
		if r := []rune(c); limit > 0 && len(r) > limit {
			c = string(r[:limit-3]) + "..."
		}
		out[i] = c
	}
	fmt.Fprintln(w, strings.Join(out, "\t"))
}

func list(items []string) string { return strings.Join(items, ",") }

func labels(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// subjects writes users plain and marks groups and service accounts, the
// way a reader scanning for a name expects.
func subjects(s resource.Subjects) string {
	var parts []string
	parts = append(parts, s.Users...)
	for _, g := range s.Groups {
		parts = append(parts, "group:"+g)
	}
	for _, sa := range s.ServiceAccounts {
		parts = append(parts, "sa:"+sa)
	}
	return strings.Join(parts, ",")
}

func targets(t resource.TargetSelector) string {
	parts := slices.Clone(t.Names)
	for _, e := range t.Environments {
		parts = append(parts, "env:"+e)
	}
	if l := labels(t.Labels); l != "" {
		parts = append(parts, l)
	}
	return strings.Join(parts, ",")
}

// keyFingerprint returns the key type and SHA256 fingerprint of an
// authorized_keys line, as ssh-keygen -l shows them.
func keyFingerprint(line string) (string, string) {
	if line == "" {
		return "", ""
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "", "unparsable key"
	}
	return pub.Type(), ssh.FingerprintSHA256(pub)
}

// escapeControls shows C0 and C1 control characters and DEL as \xNN.
func escapeControls(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }

// fetchList GETs a JSON array from the gateway; never nil.
func fetchList[T any](e *env, path string, q url.Values) ([]T, error) {
	c, err := e.api()
	if err != nil {
		return nil, err
	}
	var items []T
	if err := c.do(e.ctx, http.MethodGet, path, q, "", nil, &items); err != nil {
		return nil, err
	}
	if items == nil {
		items = []T{}
	}
	return items, nil
}

// fetchPage is fetchList for a paged listing (audit events, commands): it
// also returns a line saying how to see the next page, or "" when the
// gateway said no more exist.
func fetchPage[T any](e *env, path string, q url.Values) ([]T, string, error) {
	c, err := e.api()
	if err != nil {
		return nil, "", err
	}
	var items []T
	h, err := c.send(e.ctx, http.MethodGet, path, q, "", nil, &items)
	if err != nil {
		return nil, "", err
	}
	if items == nil {
		items = []T{}
	}
	more := ""
	if id := h.Get(api.HeaderNextBefore); id != "" {
		more = "more exist: see older ones with --before " + id
	} else if id := h.Get(api.HeaderNextAfter); id != "" {
		more = "more exist: see newer ones with --after " + id
	}
	return items, more, nil
}

// printList prints a listing: a JSON array with --json; otherwise a table
// with header and one row per item, or the empty message on stderr.
func printList[T any](e *env, items []T, asJSON bool, empty string, header []string, row func(T) []string) error {
	return printListMax(e, items, asJSON, empty, header, row, maxCell)
}

// printListMax is printList with cells cut at limit runes (0: not cut).
func printListMax[T any](e *env, items []T, asJSON bool, empty string, header []string, row func(T) []string, limit int) error {
	if asJSON {
		return printJSON(e, items)
	}
	if len(items) == 0 {
		fmt.Fprintln(e.stderr, empty)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	writeRowMax(tw, header, limit)
	for _, it := range items {
		writeRowMax(tw, row(it), limit)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// agentColumn is how the ADDRESS column shows an agent target: its
// agent's connection.
func agentColumn(t *resource.Target) string {
	st := t.Agent
	switch {
	case st == nil:
		return "agent"
	case st.Connected:
		return fmt.Sprintf("agent: connected to %s (%s %s)", st.Gateway, st.Mode, st.Version)
	case st.LastSeen != nil:
		return "agent: disconnected, last seen " + st.LastSeen.UTC().Format(time.RFC3339)
	}
	return "agent: never connected"
}
