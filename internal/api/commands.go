package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// maxListLimit bounds one page of recordings, commands or search hits, for
// the same reason as maxAuditLimit: no single request may make the gateway
// hold a whole table in memory.
const maxListLimit = 10000

// Command is one command a subject ran, as GET /api/v1/commands returns
// it. Every field is always present; exit_status is null for interactive
// commands and for exec commands still running.
type Command struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"` // RFC 3339 with nanoseconds, UTC
	User      string    `json:"user"`
	Target    string    `json:"target"`
	Account   string    `json:"account"`
	SessionID string    `json:"session"`
	Source    string    `json:"source"`
	Command   string    `json:"command"`
	// Interactive is true for a line typed in a shell (reconstructed from
	// keystrokes), false for an exec request (exactly what was asked).
	Interactive bool `json:"interactive"`
	// Certain is false when the line reconstructor could not be sure of an
	// interactive line (tab completion, history recall, ...).
	Certain    bool `json:"certain"`
	ExitStatus *int `json:"exit_status"`
}

// commandParams are the query parameters GET /api/v1/commands understands.
var commandParams = []string{"user", "target", "session", "since", "after", "before", "limit"}

func (a *api) listCommands(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, commandParams); err != nil {
		return err
	}
	f := store.CommandFilter{User: q.Get("user"), Target: q.Get("target"), SessionID: q.Get("session")}
	var err error
	if f.Since, err = queryTime(q, "since"); err != nil {
		return err
	}
	if v := q.Get("after"); v != "" {
		if f.AfterID, err = strconv.ParseInt(v, 10, 64); err != nil || f.AfterID < 0 {
			return clientError(http.StatusBadRequest, "after: %q is not a command id (a number of 0 or more)", v)
		}
	}
	if f.BeforeID, err = queryID(q, "before", "a command id"); err != nil {
		return err
	}
	if f.Limit, err = queryLimit(q); err != nil {
		return err
	}
	if f.User, err = scopeUser(caller(r), f.User); err != nil {
		return err
	}
	pg := newPage(f.Limit, r.URL.Query().Has("after"))
	f.Limit, f.Newest = pg.ask, pg.newest
	cmds, err := a.store.ListCommands(r.Context(), f)
	if err != nil {
		return fmt.Errorf("list commands: %w", err)
	}
	cmds = cutPage(pg, w, cmds, func(c store.Command) int64 { return c.ID })
	out := make([]Command, len(cmds))
	for i, c := range cmds {
		out[i] = Command{
			ID: c.ID, Time: c.Time.UTC(), User: c.User, Target: c.Target, Account: c.Account,
			SessionID: c.SessionID, Source: c.Source, Command: c.Command,
			Interactive: c.Interactive, Certain: c.Certain, ExitStatus: c.ExitStatus,
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// The query helpers below serve the listings of recordings, commands and
// the audit export alike, so that they refuse and explain bad input the
// same way GET /api/v1/audit does.

// checkQuery refuses parameters not in known and parameters given twice:
// a misspelt filter silently ignored would show an auditor records they
// did not ask for.
func checkQuery(q url.Values, known []string) error {
	for k, vs := range q {
		if !slices.Contains(known, k) {
			return clientError(http.StatusBadRequest, "unknown query parameter %q (known: %s)", k, strings.Join(known, ", "))
		}
		if len(vs) > 1 {
			return clientError(http.StatusBadRequest, "query parameter %q is given %d times", k, len(vs))
		}
	}
	return nil
}

// queryTime parses an RFC 3339 time parameter; absent is the zero time.
func queryTime(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, clientError(http.StatusBadRequest, "%s: %q is not an RFC 3339 time (2006-01-02T15:04:05Z)", name, v)
	}
	// Stores keep nanoseconds since 1970 in an int64; a time beyond that
	// range would wrap around and filter the wrong way.
	if t.Before(minTime) || t.After(maxTime) {
		return t, clientError(http.StatusBadRequest, "%s: %q is out of range (%d to %d)", name, v, minTime.Year()+1, maxTime.Year()-1)
	}
	return t, nil
}

// queryID parses an optional id parameter (a cursor); absent is 0.
func queryID(q url.Values, name, what string) (int64, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return 0, clientError(http.StatusBadRequest, "%s: %q is not %s (a number of 1 or more)", name, v, what)
	}
	return id, nil
}

// defaultPage is how many rows a listing answers without a limit.
const defaultPage = 1000

// Headers that say more rows exist beyond a page, and where the next one
// starts. The body stays a plain JSON array, as every listing is.
const (
	// HeaderNextBefore holds the id to pass as before= for the next,
	// older page of a newest-first listing.
	HeaderNextBefore = "X-Next-Before"
	// HeaderNextAfter holds the id to pass as after= for the next, newer
	// page of a listing read oldest first (one given after=).
	HeaderNextAfter = "X-Next-After"
)

// page is one page of an id-ordered listing. Listings are newest first,
// so that a page without since= shows what happened last; a request with
// after= reads oldest first from there, which is how a reader tails.
type page struct {
	limit  int  // rows to answer
	ask    int  // rows to ask the store for: one more, to know if more exist
	newest bool // descending ids
}

// newPage is a page of at most limit rows (defaultPage when 0), read
// oldest first when the request gave after= (even after=0: "from the
// start"), newest first otherwise.
func newPage(limit int, hasAfter bool) page {
	if limit <= 0 {
		limit = defaultPage
	}
	return page{limit: limit, ask: limit + 1, newest: !hasAfter}
}

// cutPage trims rows to the page and, when the store had more, sets the
// header naming the cursor of the next page.
func cutPage[T any](p page, w http.ResponseWriter, rows []T, id func(T) int64) []T {
	if len(rows) <= p.limit {
		return rows
	}
	rows = rows[:p.limit]
	h := HeaderNextAfter
	if p.newest {
		h = HeaderNextBefore
	}
	w.Header().Set(h, strconv.FormatInt(id(rows[len(rows)-1]), 10))
	return rows
}

// queryLimit parses the limit parameter; absent is 0, the store's default.
func queryLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxListLimit {
		return 0, clientError(http.StatusBadRequest, "limit: %q is not a number from 1 to %d", v, maxListLimit)
	}
	return n, nil
}
