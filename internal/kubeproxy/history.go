package kubeproxy

// Every kubectl request (not discovery) is a row of the command history,
// as a typed line of an SSH shell is: the gateway user, the target, the
// cluster user the gateway impersonated as the account, and a kubectl-like
// line naming the verb, the object and the impersonated groups. Rows go
// through the shared queue (package cmdqueue) and are dropped, counted and
// logged rather than ever holding a request: the kube.request audit event
// is the authoritative record.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// shutdownCommandWait bounds how long Close waits for queued history rows.
const shutdownCommandWait = 5 * time.Second

// history queues q's row once q has been answered. outcome is its audit
// outcome; refusedCode is the status of a refusal by the gateway (0 when
// the request was forwarded); lr is the live request (nil when refused
// before it was tracked).
func (s *Server) history(q *request, outcome string, refusedCode int, lr *liveRequest) {
	if s.cmds == nil || q.user == "" || q.attrs.discovery || q.attrs.path == "" {
		// Unauthenticated requests have no user to list them under, and
		// discovery is what kubectl asks before every command.
		return
	}
	c := store.Command{Time: q.start.UTC(), User: q.user, Target: q.target, Account: q.account(), Source: q.src,
		Command: commandLine(q, outcome, refusedCode), Certain: true, ExitStatus: q.exitStatus}
	if lr != nil && lr.session != nil {
		c.SessionID = lr.session.ID
	}
	s.cmds.TryAdd(c)
}

// account is the cluster user of q's row: the one the gateway
// impersonated, or for a refusal before a decision picked one, the one
// kubectl asked for (--as).
func (q *request) account() string {
	if q.d.User != "" {
		return q.d.User
	}
	return q.asUser
}

// commandLine is q as a kubectl-like line: "list pods -n dev",
// "delete deployments.apps/web -n dev", "create pods/web-1/exec -n dev --
// sh -c 'read x'". The verb is the API verb the policy rules name (kubectl
// get pods is list). The impersonated groups follow as --as-group flags,
// and the end says how a request that did not succeed ended.
func commandLine(q *request, outcome string, refusedCode int) string {
	a := &q.attrs
	var b strings.Builder
	switch {
	case a.verb == "":
		// Refused before it could be parsed.
		b.WriteString(strings.ToLower(q.method) + " " + shellQuote(a.path))
	default:
		// The object is one word, quoted when it needs it: a name in
		// the URL cannot pass for flags or a marker of the line.
		obj := a.resource
		if a.group != "" {
			obj += "." + a.group
		}
		if a.name != "" {
			obj += "/" + a.name
		}
		if a.subresource != "" {
			obj += "/" + a.subresource
		}
		b.WriteString(a.verb + " " + shellQuote(obj))
	}
	if a.namespace != "" {
		b.WriteString(" -n " + shellQuote(a.namespace))
	}
	if c := q.query.Get("container"); c != "" && a.stream() {
		b.WriteString(" -c " + shellQuote(c))
	}
	if l := q.query.Get("labelSelector"); l != "" {
		b.WriteString(" -l " + shellQuote(l))
	}
	if f := q.query.Get("fieldSelector"); f != "" {
		b.WriteString(" --field-selector " + shellQuote(f))
	}
	groups := q.d.Groups
	if q.d.User == "" {
		groups = q.asGroups
	}
	for _, g := range groups {
		b.WriteString(" --as-group " + shellQuote(g))
	}
	if cmd := q.query["command"]; len(cmd) > 0 && a.subresource == "exec" {
		b.WriteString(" --")
		for _, w := range cmd {
			b.WriteString(" " + shellQuote(w))
		}
	}
	switch {
	case refusedCode == http.StatusForbidden:
		b.WriteString(" (denied)")
	case refusedCode != 0:
		fmt.Fprintf(&b, " (refused: status %d)", refusedCode)
	case outcome == audit.Deny:
		b.WriteString(" (ended by the gateway)")
	case outcome == audit.Failure:
		b.WriteString(" (failed)")
	case q.status >= 400:
		fmt.Fprintf(&b, " (status %d)", q.status)
	}
	return b.String()
}

// shellQuote quotes w as a shell would need it, so that the words of an
// exec's command stay apart in the line and no word can pass for another
// or for the line's end marker. Control characters (a newline that would
// start a forged line in a listing) are escaped in $'...' form.
func shellQuote(w string) string {
	if w == "" {
		return "''"
	}
	if strings.IndexFunc(w, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+%", r))
	}) < 0 {
		return w
	}
	if !utf8.ValidString(w) || strings.IndexFunc(w, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		q := strconv.Quote(w)
		return "$'" + strings.ReplaceAll(q[1:len(q)-1], "'", `\'`) + "'"
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}
