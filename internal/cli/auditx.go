package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/portcullis/portcullis/internal/api"
)

// auditGroupUsage is the help of `portcullis audit` as a whole; `audit ls`
// keeps its own (auditUsage).
const auditGroupUsage = `Usage: portcullis audit ls [FLAGS]
       portcullis audit verify [--json]
       portcullis audit export [--since TIME] [--until TIME]

The audit trail is one append-only log of every login, refusal, session,
command, file transfer, recording view, download and deletion, and resource
change. Each event carries the hash of the one before it, so that editing,
removing or reordering a stored event breaks the chain.

ls        list events (portcullis audit ls --help)
verify    check the whole chain: exit 0 if it is intact, 1 naming the first
          event that was edited, removed or reordered, and what is wrong
export    every event as JSON lines, oldest first, with prev_hash and hash,
          for archiving or checking elsewhere

Run 'portcullis audit verify --help' or 'portcullis audit export --help'.
` + "\n" + globalFlagsUsage

const auditVerifyUsage = `Usage: portcullis audit verify [--json]

Recomputes the hash chain of the whole audit trail. Exit 0 if it is intact;
1 if not, naming the first event that was edited, removed or reordered and
what was found there. After retention has removed old events, the chain is
checked from the oldest kept event, whose prev_hash is taken as the anchor.

A chain alone cannot show the removal of the newest events, nor tell
retention from the removal of the oldest ones, nor catch someone who
recomputed every hash after the one they edited: keep a copy of the hashes
elsewhere too (audit export, or the syslog sink).

Flags:
  --json   the result as a JSON object: {"ok", "events", "first_id",
           "last_id", "first_bad": {"id", "problem", "detail"} or null,
           "anchor"} (the exit code is the same)
` + "\n" + globalFlagsUsage

const auditExportUsage = `Usage: portcullis audit export [--since TIME] [--until TIME]

Writes audit events to standard output as JSON lines (one event object per
line, as 'audit ls --json' shows them, plus prev_hash and hash), oldest
first, streamed as the gateway reads them. Without --until the export ends
at the moment it was asked for.

TIME is an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02,
midnight UTC), or a duration back from now: 90m, 24h, 7d, 1d12h.

Flags:
  --since TIME   events at or after TIME
  --until TIME   events before TIME
` + "\n" + globalFlagsUsage

func runAuditVerify(e *env, args []string) error {
	fs := e.flags()
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var v api.Verification
	if err := c.do(e.ctx, http.MethodGet, "/api/v1/audit/verify", nil, "", nil, &v); err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(e, v); err != nil {
			return err
		}
	}
	if !v.OK {
		if v.FirstBad == nil {
			return &exitError{code: exitNo, msg: fmt.Sprintf("the audit chain is broken (%d events checked)", v.Events)}
		}
		msg := fmt.Sprintf("the audit chain is broken at event %d (%s)", v.FirstBad.ID, v.FirstBad.Problem)
		if v.FirstBad.Detail != "" {
			msg += ": " + v.FirstBad.Detail
		}
		return &exitError{code: exitNo, msg: fmt.Sprintf("%s; %d events checked", msg, v.Events)}
	}
	if !asJSON {
		if v.Events == 0 {
			fmt.Fprintln(e.stdout, "audit chain intact: the trail is empty")
			return nil
		}
		fmt.Fprintf(e.stdout, "audit chain intact: %d events checked (ids %d to %d)\n", v.Events, v.FirstID, v.LastID)
		if v.Anchor != "" {
			fmt.Fprintf(e.stdout, "checked from event %d, whose prev_hash %s is taken as the anchor (older events were removed by retention)\n",
				v.FirstID, v.Anchor)
		}
	}
	return nil
}

func runAuditExport(e *env, args []string) error {
	fs := e.flags()
	var since, until string
	fs.StringVar(&since, "since", "", "")
	fs.StringVar(&until, "until", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	q := url.Values{}
	now := time.Now()
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
	c, err := e.api()
	if err != nil {
		return err
	}
	body, err := c.stream(e.ctx, "/api/v1/audit/export", q)
	if err != nil {
		return err
	}
	defer body.Close()
	out := &trackedWriter{w: e.stdout}
	if _, err := io.Copy(out, body); err != nil {
		if out.err != nil {
			return fmt.Errorf("write export: %w", out.err)
		}
		// The gateway cuts a failed export off rather than end it
		// cleanly; say so, so that nobody archives half a trail.
		return &exitError{code: exitFailure, msg: fmt.Sprintf("the export broke off; what was written is incomplete: %v", err)}
	}
	return nil
}

// trackedWriter remembers its writer's error, so that a copy's failure
// can be blamed on the right side.
type trackedWriter struct {
	w   io.Writer
	err error
}

func (t *trackedWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil {
		t.err = err
	}
	return n, err
}
