package cli

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
)

// auditGroupUsage is the help of `portcullis audit` as a whole; `audit ls`
// keeps its own (auditUsage).
const auditGroupUsage = `Usage: portcullis audit ls [FLAGS]
       portcullis audit verify [--checkpoint FILE] [--json]
       portcullis audit export [--since TIME] [--until TIME]
       portcullis audit pubkey

The audit trail is one append-only log of every login, refusal, session,
command, file transfer, recording view, download and deletion, and resource
change. Each event carries the hash of the one before it, so that editing,
removing or reordering a stored event breaks the chain.

ls        list events (portcullis audit ls --help)
verify    check the whole chain and its signed checkpoints: exit 0 if it is
          intact, 1 naming what is wrong (an event edited, removed or
          reordered, the end cut off, a checkpoint forged)
export    every event as JSON lines, oldest first, with prev_hash and hash,
          for archiving or checking elsewhere
pubkey    the key that signs checkpoints, for checking them elsewhere

Run 'portcullis audit verify --help' or 'portcullis audit export --help'.
` + "\n" + globalFlagsUsage

const auditVerifyUsage = `Usage: portcullis audit verify [--checkpoint FILE] [--json]

Recomputes the hash chain of the whole audit trail and holds it to the
checkpoints the gateway signed with its audit key (every 1000 events, every
minute while events come, and at shutdown; kept in the database, in
DATA/audit.checkpoints and in syslog when configured). Exit 0 if it is
intact; 1 if not, naming what is wrong:
  - an event edited, removed or reordered, or a gap in the event ids;
  - the trail ends before the newest checkpoint, or no longer holds the
    event it signed (the end was cut off, perhaps with events since);
  - the trail is empty after checkpoints were signed;
  - the oldest events are missing and no signed retention checkpoint
    (audit_retention) says they were removed there;
  - a checkpoint whose signature does not verify with the audit key.

The database and DATA/audit.checkpoints are on the gateway's machine: keep
a copy of the checkpoints elsewhere (the syslog copy, or copies of the
file) and give it with --checkpoint, so that someone who can write both
cannot cut the trail unseen.

Flags:
  --checkpoint FILE   also check against the checkpoints in FILE: a copy of
                      DATA/audit.checkpoints, or one line of it
  --json              the result as a JSON object: {"ok", "events",
                      "first_id", "last_id", "first_bad": {"id", "problem",
                      "detail"} or null, "anchor", "starts_after_retention",
                      "checkpoints", "head"} (the exit code is the same)
` + "\n" + globalFlagsUsage

const auditPubkeyUsage = `Usage: portcullis audit pubkey

Prints the Ed25519 public key that signs audit checkpoints, as one OpenSSH
authorized_keys line (ssh-ed25519 AAAA... portcullis-audit). Each
checkpoint's signature is over its fields as audit.CheckpointMessage
encodes them (README: "Audit trail").
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
	var (
		asJSON     bool
		checkpoint string
	)
	fs.BoolVar(&asJSON, "json", false, "")
	fs.StringVar(&checkpoint, "checkpoint", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	var body []byte
	if checkpoint != "" {
		if body, err = os.ReadFile(checkpoint); err != nil {
			return usageErr("--checkpoint: %v", err)
		}
		// Read here first, so that a wrong file is a usage error naming
		// its line; the gateway reads it again and checks the signatures.
		cps, err := audit.ParseCheckpoints(bytes.NewReader(body))
		if err != nil {
			return usageErr("--checkpoint %s: %v", checkpoint, err)
		}
		if len(cps) == 0 {
			return usageErr("--checkpoint %s: no checkpoint in the file", checkpoint)
		}
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var v api.Verification
	if body == nil {
		err = c.do(e.ctx, http.MethodGet, "/api/v1/audit/verify", nil, "", nil, &v)
	} else {
		err = c.do(e.ctx, http.MethodPost, "/api/v1/audit/verify", nil, "application/x-ndjson", body, &v)
	}
	if err != nil {
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
		if v.StartsAfterRetention {
			fmt.Fprintf(e.stdout, "checked from event %d, continuing from %s, where signed retention removed the older events\n",
				v.FirstID, v.Anchor)
		}
		if v.Head != nil {
			fmt.Fprintf(e.stdout, "%d signed checkpoints checked; the newest, signed %s by gateway %q, names event %d, which the trail holds\n",
				v.Checkpoints, v.Head.Time.UTC().Format(time.RFC3339), v.Head.Gateway, v.Head.EventID)
		} else {
			fmt.Fprintln(e.stdout, "no signed head checkpoint yet: the end of the trail is not covered")
		}
	}
	return nil
}

func runAuditPubkey(e *env, args []string) error {
	return printPublicKey(e, args, "/api/v1/audit/pubkey", func(r api.AuditKeyResponse) string { return r.PublicKey })
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
