package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// maxAuditLimit bounds one audit page so that a single request cannot make
// the gateway hold the whole trail in memory; clients page with after=ID.
const maxAuditLimit = 10000

// minTime and maxTime bound the times an int64 of nanoseconds holds.
var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

// apply stores a stream of resources atomically. JSON (an array) is what
// the CLI sends, because only JSON carries an imported account key; YAML
// is accepted for curl and scripts.
func (a *api) apply(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, []string{"dry_run"}); err != nil {
		return err
	}
	var dryRun bool
	switch v := q.Get("dry_run"); v {
	case "", "false":
	case "true":
		dryRun = true
	default:
		return clientError(http.StatusBadRequest, "dry_run: %q is neither true nor false", v)
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && ct != "" {
		return clientError(http.StatusUnsupportedMediaType, "bad Content-Type %q: %v", ct, err)
	}
	var isYAML bool
	switch mt {
	case "application/json":
	case "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml":
		isYAML = true
	default:
		return clientError(http.StatusUnsupportedMediaType,
			"Content-Type %q is not accepted: send application/json (an array of resources) or application/yaml (a stream)", ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, resource.MaxStreamBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return clientError(http.StatusBadRequest, "read request body: %v", err)
	}
	var objs []resource.Object
	if isYAML {
		objs, err = decodeYAMLBody(body)
	} else {
		objs, err = decodeJSONBody(body)
	}
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return clientError(http.StatusBadRequest, "no resources in the request")
	}
	if dryRun {
		// Nothing changes, so nothing is audited.
		res, err := a.inv.Plan(r.Context(), objs)
		if err != nil {
			return fmt.Errorf("apply (dry run): %w", err)
		}
		writeJSON(w, http.StatusOK, res)
		return nil
	}
	res, err := a.inv.Apply(r.Context(), objs)
	if err != nil {
		if res != nil {
			// Stored, but the gateway could not rebuild its state: the
			// change happened, so it is audited, and the failure is ours.
			_ = a.auditApply(r, len(objs), res)
		}
		return fmt.Errorf("apply: %w", err)
	}
	if err := a.auditApply(r, len(objs), res); err != nil {
		// The change is committed; refusing now would make the client
		// believe it was not. Say what went wrong instead.
		res.Warnings = append(res.Warnings, "the change was stored but its audit event was not; see the gateway log")
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// auditApply writes one event per apply, with every created or updated
// resource as it was and as it is now (specs hold no secrets).
func (a *api) auditApply(r *http.Request, n int, res *inventory.ApplyResult) error {
	changes := make([]map[string]any, 0, len(res.Changes))
	for _, c := range res.Changes {
		ch := map[string]any{"resource": c.Key, "after": json.RawMessage(c.After)}
		if c.Before != nil {
			ch["before"] = json.RawMessage(c.Before)
		}
		changes = append(changes, ch)
	}
	return a.audit.Write(r.Context(), store.AuditEvent{
		Type:    audit.ResourceApply,
		Outcome: audit.Success,
		User:    caller(r).actor(),
		Source:  source(r),
		Message: fmt.Sprintf("applied %d resources: %d created, %d updated, %d unchanged", n, len(res.Created), len(res.Updated), len(res.Unchanged)),
		Detail: map[string]any{
			"created":    orEmpty(res.Created),
			"updated":    orEmpty(res.Updated),
			"changes":    changes,
			"request_id": requestID(r.Context()),
		},
	})
}

// decodeYAMLBody decodes a YAML stream. private_key_file is refused: the
// path names a file on the client's machine, which the gateway cannot and
// must not read.
func decodeYAMLBody(body []byte) ([]resource.Object, error) {
	objs, err := resource.DecodeYAML(body)
	if err != nil {
		var de *resource.DocError
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, clientError(http.StatusBadRequest, "%v", err)
	}
	for i, o := range objs {
		if acc, ok := o.(*resource.Account); ok && (acc.PrivateKeyFile != "" || acc.PasswordFile != "") {
			return nil, &resource.DocError{Index: i + 1, Kind: o.GetKind(), Name: o.GetName(),
				Err: errors.New("fields private_key_file and password_file: the gateway does not read files on the client; send the secret itself in a JSON request (portcullis apply -f does this)")}
		}
	}
	return objs, nil
}

// decodeJSONBody decodes a JSON array of resources, each strictly by its
// kind, with the same rules and error shape as a YAML stream: the index
// counts from 1 and kinds are written canonically, so that what a client
// stores reads back the same.
func decodeJSONBody(body []byte) ([]resource.Object, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var raws []json.RawMessage
	if err := dec.Decode(&raws); err != nil {
		return nil, clientError(http.StatusBadRequest, "request body is not a JSON array of resources: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, clientError(http.StatusBadRequest, "request body has data after the JSON array")
	}
	objs := make([]resource.Object, 0, len(raws))
	seen := map[string]int{}
	for i, raw := range raws {
		o, err := decodeJSONDoc(raw)
		if err != nil {
			return nil, docErr(i+1, raw, o, err)
		}
		if acc, ok := o.(*resource.Account); ok && acc.PrivateKeyFile != "" {
			return nil, docErr(i+1, raw, o, errors.New("field private_key_file: the gateway does not read files on the client; send the key itself as private_key"))
		}
		if acc, ok := o.(*resource.Account); ok && acc.PasswordFile != "" {
			return nil, docErr(i+1, raw, o, errors.New("field password_file: the gateway does not read files on the client; send the password itself as password"))
		}
		key := string(o.GetKind()) + "/" + o.GetName()
		if prev, dup := seen[key]; dup {
			return nil, docErr(i+1, raw, o, fmt.Errorf("same %s as document %d", o.GetKind(), prev))
		}
		seen[key] = i + 1
		objs = append(objs, o)
	}
	return objs, nil
}

// docHead is what names a JSON document in an error before it decodes.
type docHead struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Target string `json:"target"`
}

func decodeJSONDoc(raw json.RawMessage) (resource.Object, error) {
	var head docHead
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, errors.New("a document must be an object with kind and name")
	}
	if head.Kind == "" {
		return nil, errors.New("field kind: is required")
	}
	kind, err := resource.ParseKind(head.Kind)
	if err != nil {
		return nil, fmt.Errorf("field kind: %w", err)
	}
	if !strings.EqualFold(string(kind), head.Kind) {
		// ParseKind also takes plurals, for listings; a document is one
		// resource.
		return nil, fmt.Errorf("field kind: write %q, not %q", kind, head.Kind)
	}
	if string(kind) != head.Kind {
		// Kinds are case-insensitive, as in a YAML stream and in get:
		// store the canonical name.
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, errors.New("a document must be an object with kind and name")
		}
		fields["kind"], _ = json.Marshal(string(kind))
		if raw, err = json.Marshal(fields); err != nil {
			return nil, fmt.Errorf("re-encode document: %w", err)
		}
	}
	o, err := resource.DecodeJSON(kind, raw)
	if err != nil {
		return o, cleanJSONError(err)
	}
	return o, nil
}

// docErr names the document: by the decoded object when there is one, else
// by whatever kind and name its JSON holds.
func docErr(index int, raw json.RawMessage, o resource.Object, err error) error {
	de := &resource.DocError{Index: index, Err: err}
	if o != nil {
		de.Kind, de.Name = o.GetKind(), o.GetName()
		return de
	}
	var head docHead
	if json.Unmarshal(raw, &head) == nil {
		de.Kind, de.Name = resource.Kind(head.Kind), head.Name
		if head.Target != "" && head.Name != "" && strings.EqualFold(head.Kind, string(resource.KindAccount)) {
			de.Name = head.Target + "/" + head.Name
		}
	}
	return de
}

// cleanJSONError rewrites encoding/json's messages into the "field X: ..."
// shape the YAML decoder uses, so both kinds of client read alike.
func cleanJSONError(err error) error {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		if ute.Field != "" {
			return fmt.Errorf("field %s: cannot use a JSON %s as %s", ute.Field, ute.Value, ute.Type)
		}
		return fmt.Errorf("cannot use a JSON %s as %s", ute.Value, ute.Type)
	}
	msg := err.Error()
	if i := strings.Index(msg, "json: unknown field "); i >= 0 {
		field := msg[i+len("json: unknown field "):]
		if uq, err := strconv.Unquote(field); err == nil {
			field = uq
		}
		return fmt.Errorf("field %s: unknown field", field)
	}
	return err
}

// kindParam parses the {kind} path value.
func kindParam(r *http.Request) (resource.Kind, error) {
	kind, err := resource.ParseKind(r.PathValue("kind"))
	if err != nil {
		return "", clientError(http.StatusBadRequest, "%v", err)
	}
	return kind, nil
}

// listAll answers every resource of every kind, in apply order, which is
// what an export (get all -o yaml) needs.
func (a *api) listAll(w http.ResponseWriter, r *http.Request) error {
	return a.writeList(w, r, "")
}

func (a *api) list(w http.ResponseWriter, r *http.Request) error {
	kind, err := kindParam(r)
	if err != nil {
		return err
	}
	return a.writeList(w, r, kind)
}

func (a *api) writeList(w http.ResponseWriter, r *http.Request, kind resource.Kind) error {
	if err := a.mayListKind(r, kind); err != nil {
		return err
	}
	objs, err := a.inv.List(r.Context(), kind)
	if err != nil {
		return err
	}
	if p := caller(r); !p.admin() {
		objs = a.reachable(r, p, objs)
	}
	for _, o := range objs {
		scrub(o)
	}
	if err := a.fillLearnedHostKeys(r.Context(), objs); err != nil {
		return err
	}
	if objs == nil {
		objs = []resource.Object{}
	}
	writeJSON(w, http.StatusOK, objs)
	return nil
}

func (a *api) get(w http.ResponseWriter, r *http.Request) error {
	kind, err := kindParam(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if name == "" {
		// ".../users/" is the listing.
		return a.writeList(w, r, kind)
	}
	if err := a.mayListKind(r, kind); err != nil {
		return err
	}
	o, err := a.inv.Get(r.Context(), kind, name)
	// A target the caller may not reach answers like a missing one: the
	// API, like the SSH front, does not reveal what exists.
	if p := caller(r); err == nil && !p.admin() && len(a.reachable(r, p, []resource.Object{o})) == 0 {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return clientError(http.StatusNotFound, "%s %q not found", kind, name)
	}
	if err != nil {
		return err
	}
	scrub(o)
	if err := a.fillLearnedHostKeys(r.Context(), []resource.Object{o}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, o)
	return nil
}

func (a *api) delete(w http.ResponseWriter, r *http.Request) error {
	kind, err := kindParam(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if name == "" {
		return clientError(http.StatusBadRequest, "delete needs a name: DELETE /api/v1/resources/%s/NAME", kind)
	}
	// What is deleted goes into the audit event.
	before, _ := a.inv.Get(r.Context(), kind, name)
	err = a.inv.Delete(r.Context(), kind, name)
	if errors.Is(err, store.ErrNotFound) {
		return clientError(http.StatusNotFound, "%s %q not found", kind, name)
	}
	if err != nil {
		return err
	}
	key := string(kind) + "/" + name
	detail := map[string]any{"kind": string(kind), "name": name, "before": before, "request_id": requestID(r.Context())}
	if kind == resource.KindUser {
		// A deleted user's credentials go with it: a user later created
		// with the same name (a new person reusing a login) must not
		// inherit its API keys, password or console sessions.
		revoked, err := a.forgetUser(r.Context(), name)
		detail["revoked_api_keys"] = revoked
		if err != nil {
			a.log.Error("user deleted but not all its credentials removed", "user", name, "err", err)
			return fmt.Errorf("delete user %s: remove its credentials: %w", name, err)
		}
	}
	werr := a.audit.Write(r.Context(), store.AuditEvent{
		Type:    audit.ResourceDelete,
		Outcome: audit.Success,
		User:    caller(r).actor(),
		Source:  source(r),
		Message: "deleted " + key,
		Detail:  detail,
	})
	if werr != nil {
		// As for apply: the deletion is done; the audit failure is logged
		// by the audit package and must not make the client retry.
		a.log.Warn("delete stored without its audit event", "resource", key, "err", werr)
	}
	writeJSON(w, http.StatusOK, DeleteResponse{Deleted: key})
	return nil
}

func (a *api) caPublicKey(w http.ResponseWriter, r *http.Request) error {
	if a.ca == nil {
		return clientError(http.StatusNotFound, "this gateway has no user CA")
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(a.ca.PublicKey())))
	writeJSON(w, http.StatusOK, CAResponse{PublicKey: line})
	return nil
}

// auditParams are the query parameters GET /api/v1/audit understands.
// Anything else is refused: a misspelt filter silently ignored would show
// an auditor events they did not ask for.
var auditParams = []string{"since", "until", "type", "user", "target", "session", "after", "before", "limit"}

func (a *api) listAudit(w http.ResponseWriter, r *http.Request) error {
	f, err := parseAuditFilter(r)
	if err != nil {
		return err
	}
	if f.User, err = scopeUser(caller(r), f.User); err != nil {
		return err
	}
	pg := newPage(f.Limit, r.URL.Query().Has("after"))
	f.Limit, f.Newest = pg.ask, pg.newest
	evs, err := a.store.ListAudit(r.Context(), f)
	if err != nil {
		return fmt.Errorf("list audit events: %w", err)
	}
	evs = cutPage(pg, w, evs, func(ev store.AuditEvent) int64 { return ev.ID })
	out := make([]Event, len(evs))
	for i, ev := range evs {
		out[i] = eventFromStore(ev)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func parseAuditFilter(r *http.Request) (store.AuditFilter, error) {
	var f store.AuditFilter
	q := r.URL.Query()
	for k, vs := range q {
		known := false
		for _, p := range auditParams {
			known = known || k == p
		}
		if !known {
			return f, clientError(http.StatusBadRequest, "unknown query parameter %q (known: %s)", k, strings.Join(auditParams, ", "))
		}
		if len(vs) > 1 {
			return f, clientError(http.StatusBadRequest, "query parameter %q is given %d times", k, len(vs))
		}
	}
	parseTime := func(name string) (time.Time, error) {
		v := q.Get(name)
		if v == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return t, clientError(http.StatusBadRequest, "%s: %q is not an RFC 3339 time (2006-01-02T15:04:05Z)", name, v)
		}
		// Stores keep nanoseconds since 1970 in an int64; a time beyond
		// that range would wrap around and filter the wrong way.
		if t.Before(minTime) || t.After(maxTime) {
			return t, clientError(http.StatusBadRequest, "%s: %q is out of range (%d to %d)", name, v, minTime.Year()+1, maxTime.Year()-1)
		}
		return t, nil
	}
	var err error
	if f.Since, err = parseTime("since"); err != nil {
		return f, err
	}
	if f.Until, err = parseTime("until"); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return f, clientError(http.StatusBadRequest, "until (%s) must be after since (%s)", q.Get("until"), q.Get("since"))
	}
	f.Type, f.User, f.Target, f.SessionID = q.Get("type"), q.Get("user"), q.Get("target"), q.Get("session")
	if v := q.Get("after"); v != "" {
		if f.AfterID, err = strconv.ParseInt(v, 10, 64); err != nil || f.AfterID < 0 {
			return f, clientError(http.StatusBadRequest, "after: %q is not an event id (a number of 0 or more)", v)
		}
	}
	if f.BeforeID, err = queryID(q, "before", "an event id"); err != nil {
		return f, err
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > maxAuditLimit {
			return f, clientError(http.StatusBadRequest, "limit: %q is not a number from 1 to %d", v, maxAuditLimit)
		}
	}
	return f, nil
}

// scrub clears secrets from an object about to be sent. The inventory
// already returns none; this keeps that true if it ever changes.
func scrub(o resource.Object) {
	if acc, ok := o.(*resource.Account); ok {
		acc.PrivateKey, acc.PrivateKeyFile, acc.Password, acc.PasswordFile = "", "", "", ""
	}
}

// source is the client address for the audit trail; on the unix socket
// there is none worth recording.
func source(r *http.Request) string {
	if r.RemoteAddr == "" || r.RemoteAddr == "@" {
		return ""
	}
	return r.RemoteAddr
}

func orEmpty(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// forgetUser revokes every API key a deleted user owns and removes its
// password and console sessions; it returns the revoked key ids.
func (a *api) forgetUser(ctx context.Context, name string) ([]string, error) {
	keys, err := a.store.ListAPIKeys(ctx)
	if err != nil {
		return nil, err
	}
	revoked := []string{}
	now := a.now()
	for _, k := range keys {
		if k.Owner == name && k.RevokedAt.IsZero() {
			if err := a.store.RevokeAPIKey(ctx, k.ID, now); err != nil {
				return revoked, err
			}
			revoked = append(revoked, k.ID)
		}
	}
	if err := a.store.DeletePassword(ctx, name); err != nil {
		return revoked, err
	}
	return revoked, a.store.DeleteUserWebSessions(ctx, name)
}
