package cli

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/portcullis/portcullis/internal/api"
)

const commandsUsage = `Usage: portcullis commands ls [FLAGS]

Lists the commands users ran through the gateway, oldest first: exec
requests (ssh host CMD) exactly as asked, with their exit status once they
end, and the lines typed in interactive shells as reconstructed from the
keystrokes. Times are printed in UTC.

TYPE is exec, shell, or shell? for a line the reconstructor could not be
sure of (tab completion, history recall, editing it could not follow): what
ran may differ from what is shown. EXIT is the exit status of an exec
command, "-" for shell lines and for commands still running.

TIME is an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02,
midnight UTC), or a duration back from now: 90m, 24h, 7d, 1d12h.

Flags:
  --user NAME      commands of one gateway user or service account
  --target NAME    commands on one target
  --session ID     commands of one session
  --since TIME     commands at or after TIME
  --after ID       commands after the one with this id (to page on)
  --limit N        at most N commands (default 1000, at most 10000)
  --json           a JSON array of commands, each with its id
` + "\n" + globalFlagsUsage

// defaultListLimit is the page size the gateway uses for recordings and
// commands when none is given.
const defaultListLimit = 1000

func runCommandsLs(e *env, args []string) error {
	fs := e.flags()
	var (
		user, target, session, since string
		after                        int64
		limit                        int
		asJSON                       bool
	)
	fs.StringVar(&user, "user", "", "")
	fs.StringVar(&target, "target", "", "")
	fs.StringVar(&session, "session", "", "")
	fs.StringVar(&since, "since", "", "")
	fs.Int64Var(&after, "after", 0, "")
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
	if after < 0 {
		return usageErr("--after: want a command id, 0 or more")
	}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if err := setLimit(q, limit); err != nil {
		return err
	}
	cmds, err := fetchList[api.Command](e, "/api/v1/commands", q)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = defaultListLimit
	}
	if len(cmds) == limit {
		fmt.Fprintf(e.stderr, "warning: showing the first %d commands; see more with --after %d, or narrow with --since\n",
			limit, cmds[len(cmds)-1].ID)
	}
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
