package cli

import (
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/portcullis/portcullis/internal/api"
)

const commandsUsage = `Usage: portcullis commands ls [FLAGS]

Lists the commands users ran through the gateway, newest first: exec
requests (ssh host CMD) exactly as asked, with their exit status once they
end, the lines typed in interactive shells as reconstructed from the
keystrokes, and every kubectl request to a kubernetes target but discovery
(ACCOUNT is the cluster user the gateway impersonated; COMMAND a line such
as "list pods -n dev --as-group dev-readers", "(denied)" at the end of a
refused one; a kubectl exec's row has its session and exit status and is
written when it ends). Times are printed in UTC.

TYPE is exec (an SSH exec command or a kubectl request), shell, or shell?
for a line the reconstructor could not be sure of (tab completion, history
recall, editing it could not follow): what ran may differ from what is
shown. EXIT is the exit status of an exec command, "-" for shell lines and
for commands still running.

TIME is an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02,
midnight UTC), or a duration back from now: 90m, 24h, 7d, 1d12h.

Flags:
  --user NAME      commands of one gateway user or service account
  --target NAME    commands on one target
  --session ID     commands of one session
  --since TIME     commands at or after TIME
  --before ID      older commands than the one with this id: the next page
  --after ID       commands after the one with this id, oldest first (to tail)
  --limit N        at most N commands (default 1000, at most 10000)
  --json           a JSON array of commands, each with its id

When more commands exist than one page shows, a last line on stderr says
so and names the --before (or --after) that shows the next page; --json
output stays a plain JSON array.
` + "\n" + globalFlagsUsage

func runCommandsLs(e *env, args []string) error {
	fs := e.flags()
	var (
		user, target, session, since string
		after, before                int64
		limit                        int
		asJSON                       bool
	)
	fs.StringVar(&user, "user", "", "")
	fs.StringVar(&target, "target", "", "")
	fs.StringVar(&session, "session", "", "")
	fs.StringVar(&since, "since", "", "")
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
	q := url.Values{}
	if err := setSince(q, since); err != nil {
		return err
	}
	setIf(q, "user", user)
	setIf(q, "target", target)
	setIf(q, "session", session)
	if err := setCursor(fs, q, after, before, "a command id"); err != nil {
		return err
	}
	if err := setLimit(q, limit); err != nil {
		return err
	}
	cmds, more, err := fetchPage[api.Command](e, "/api/v1/commands", q)
	if err != nil {
		return err
	}
	defer sayMore(e, more)
	return printList(e, cmds, asJSON, "No commands found.",
		[]string{"TIME", "USER", "TARGET", "ACCOUNT", "SESSION", "TYPE", "EXIT", "COMMAND"},
		func(cmd api.Command) []string {
			typ := "exec"
			if cmd.Interactive {
				typ = "shell"
				if !cmd.Certain {
					typ = "shell?"
				}
			}
			exit := "-"
			if cmd.ExitStatus != nil {
				exit = strconv.Itoa(*cmd.ExitStatus)
			}
			return []string{cmd.Time.UTC().Format(time.RFC3339), cmd.User, cmd.Target, dash(cmd.Account),
				cmd.SessionID, typ, exit, cmd.Command}
		})
}

// setIf sets a query parameter that was given.
func setIf(q url.Values, key, value string) {
	if value != "" {
		q.Set(key, value)
	}
}

// setSince turns a --since flag into the API's RFC 3339 since parameter.
func setSince(q url.Values, since string) error {
	if since == "" {
		return nil
	}
	when, err := parseWhen(since, time.Now())
	if err != nil {
		return usageErr("--since: %v", err)
	}
	q.Set("since", when.UTC().Format(time.RFC3339Nano))
	return nil
}

// setCursor checks and sets the --after and --before flags of a paged
// listing. --after given at all (even 0, "from the start") reads oldest
// first; otherwise the gateway answers newest first.
func setCursor(fs *flag.FlagSet, q url.Values, after, before int64, what string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if after < 0 {
		return usageErr("--after: want %s, 0 or more", what)
	}
	if given["after"] {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if before < 0 || (given["before"] && before == 0) {
		return usageErr("--before: want %s, 1 or more", what)
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	return nil
}

// sayMore prints the "more exist" line of a paged listing on stderr, so
// that stdout stays the table or the JSON array.
func sayMore(e *env, more string) {
	if more != "" {
		fmt.Fprintln(e.stderr, more)
	}
}

// setLimit checks and sets a --limit flag.
func setLimit(q url.Values, limit int) error {
	if limit < 0 {
		return usageErr("--limit: want a positive number")
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return nil
}
