// Package report builds compliance reports from the gateway's store: each
// report kind turns the resources, the audit trail, recordings, commands and
// reviews of a period into one Table, which is then written as CSV, JSON and
// PDF from the same rows, and a Manifest signed with the gateway's key states
// what each file holds (see manifest.go), so that an auditor can check a
// report offline.
//
// Report kinds are an extension point: a package that owns a kind of
// evidence (just-in-time requests, say) calls Register from an init
// function, and the CLI, API, console and schedules offer it with the rest.
package report

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// Column is one column of a Table.
type Column struct {
	// Key names the column in CSV headers and JSON objects (snake_case).
	Key string
	// Title is the heading in the PDF.
	Title string
	// Width is the column's share of the PDF page width, relative to the
	// other columns' (0 counts as 1).
	Width float64
}

// Table is what a report kind builds: rows of text, one value per column.
// Values are already formatted (times in RFC 3339 UTC), so that the CSV,
// JSON and PDF of one report say exactly the same.
type Table struct {
	Columns []Column
	Rows    [][]string
	// Attention marks rows that must stand out (an unreviewed privileged
	// session older than a day); nil or shorter than Rows: none do.
	Attention []bool
	// Notes are short lines printed above the table in the PDF and kept
	// in the manifest (what "dormant" means here, what was left out).
	Notes []string
}

// add appends a row; attention marks it.
func (t *Table) add(attention bool, values ...string) {
	t.Rows = append(t.Rows, values)
	t.Attention = append(t.Attention, attention)
}

// Params are the filters of one report.
type Params struct {
	// Since and Until bound the period (Since inclusive, Until
	// exclusive). Reports of state (entitlements, hygiene) are as of
	// Until, with activity counted within the period.
	Since, Until time.Time
}

// Source is what report kinds read. Every function is required unless
// said otherwise.
type Source struct {
	// Store holds the audit trail, recordings, commands and reviews.
	Store store.Store
	// Resources returns every resource (users, groups, targets, accounts,
	// policies, ...), secrets stripped.
	Resources func(ctx context.Context) ([]resource.Object, error)
	// DirectoryGroups returns the groups the directory (LDAP) gives a
	// user; nil when the gateway has no directory. An error fails the
	// report: entitlements without the directory's groups would look
	// smaller than they are.
	DirectoryGroups func(ctx context.Context, user string) ([]string, error)
	// RecordingURL turns a recording id into the link the access log
	// shows; nil leaves only the id.
	RecordingURL func(id string) string
}

// Kind is one kind of report.
type Kind struct {
	// Name is what `portcullis report NAME` takes: lower case, dashes.
	Name string
	// Title heads the PDF.
	Title string
	// Description says in one sentence what it shows and which control
	// it is evidence for.
	Description string
	// Build reads src and returns the table for p.
	Build func(ctx context.Context, src *Source, p Params) (*Table, error)
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]Kind{}
)

// Register adds a report kind. It panics on a kind without a name or
// builder, or a name registered twice: both are programming errors found at
// start-up.
func Register(k Kind) {
	if k.Name == "" || k.Build == nil {
		panic("report: Register of a kind without a name or Build")
	}
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[k.Name]; dup {
		panic(fmt.Sprintf("report: kind %q registered twice", k.Name))
	}
	kinds[k.Name] = k
}

// Lookup returns a registered kind.
func Lookup(name string) (Kind, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// Kinds returns every registered kind, by name.
func Kinds() []Kind {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	out := make([]Kind, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ts formats a time for a report cell: RFC 3339 in UTC, empty when zero.
func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
