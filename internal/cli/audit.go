package cli

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/duration"
)

const auditUsage = `Usage: portcullis audit ls [FLAGS]

Lists audit events, newest first: logins, sessions, refusals, changes to
resources. Times are printed in UTC.

TIME is an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02,
midnight UTC), or a duration back from now: 90m, 24h, 7d, 1d12h.

Flags:
  --since TIME     events at or after TIME
  --until TIME     events before TIME
  --type TYPE      one event type (session.start), or a prefix ending in "." (session.)
  --user NAME      events of one gateway user or service account
  --target NAME    events on one target
  --session ID     events of one session
  --before ID      events older than the one with this id: the next page
  --after ID       events after the one with this id, oldest first (to tail)
  --limit N        at most N events (default 1000, at most 10000)
  -o, --output FMT table (default), wide (adds ID, SESSION and POLICY, and
                   cuts no MESSAGE), or json
  --json           a JSON array of events, each with its id (-o json)

SESSION is the session's id: 'portcullis audit ls --session ID' lists its
events, and 'portcullis recordings play ID' plays its recording.

When more events exist than one page shows, a last line on stderr says so
and names the --before (or --after) that shows the next page; --json output
stays a plain JSON array.
` + "\n" + globalFlagsUsage

func runAuditLs(e *env, args []string) error {
	fs := e.flags()
	var (
		since, until, typ, user, target, session string
		after, before                            int64
		limit                                    int
		asJSON                                   bool
		output                                   string
	)
	fs.StringVar(&output, "o", "", "")
	fs.StringVar(&output, "output", "", "")
	fs.StringVar(&since, "since", "", "")
	fs.StringVar(&until, "until", "", "")
	fs.StringVar(&typ, "type", "", "")
	fs.StringVar(&user, "user", "", "")
	fs.StringVar(&target, "target", "", "")
	fs.StringVar(&session, "session", "", "")
	fs.Int64Var(&after, "after", 0, "")
	fs.Int64Var(&before, "before", 0, "")
	fs.IntVar(&limit, "limit", 0, "")
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	wide := false
	switch output {
	case "", "table":
	case "wide":
		wide = true
	case "json":
		asJSON = true
	default:
		return usageErr("-o %s: want table, wide or json", output)
	}
	now := time.Now()
	q := url.Values{}
	for _, t := range []struct{ flag, value string }{{"since", since}, {"until", until}} {
		if t.value == "" {
			continue
		}
		when, err := parseWhen(t.value, now)
		if err != nil {
			return usageErr("--%s: %v", t.flag, err)
		}
		q.Set(t.flag, when.UTC().Format(time.RFC3339Nano))
	}
	for k, v := range map[string]string{"type": typ, "user": user, "target": target, "session": session} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if err := setCursor(fs, q, after, before, "an event id"); err != nil {
		return err
	}
	if err := setLimit(q, limit); err != nil {
		return err
	}
	evs, more, err := fetchPage[api.Event](e, "/api/v1/audit", q)
	if err != nil {
		return err
	}
	defer sayMore(e, more)
	if wide {
		return printListMax(e, evs, asJSON, "No events found.",
			[]string{"ID", "TIME", "TYPE", "OUTCOME", "USER", "TARGET", "ACCOUNT", "SESSION", "POLICY", "SOURCE", "MESSAGE"},
			func(ev api.Event) []string {
				return []string{strconv.FormatInt(ev.ID, 10), ev.Time.UTC().Format(time.RFC3339), ev.Type, ev.Outcome, dash(ev.User),
					dash(ev.Target), dash(ev.Account), dash(ev.SessionID), dash(ev.Policy), dash(ev.Source), ev.Message}
			}, 0)
	}
	return printList(e, evs, asJSON, "No events found.",
		[]string{"TIME", "TYPE", "OUTCOME", "USER", "TARGET", "ACCOUNT", "SOURCE", "MESSAGE"},
		func(ev api.Event) []string {
			return []string{ev.Time.UTC().Format(time.RFC3339), ev.Type, ev.Outcome, dash(ev.User),
				dash(ev.Target), dash(ev.Account), dash(ev.Source), ev.Message}
		})
}

// dash marks an empty audit field; "<none>" would read as a value there.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseWhen reads a time flag: RFC 3339, a date (midnight UTC), or a
// duration back from now with an optional leading days part.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := parseAgo(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02), nor a duration back from now (90m, 24h, 7d)", s)
	}
	return now.Add(-d), nil
}

// parseAgo parses a non-negative duration in the forms every part of
// Portcullis takes (package duration: 90m, 24h, 7d, 1d12h).
func parseAgo(s string) (time.Duration, error) { return duration.Parse(s) }
