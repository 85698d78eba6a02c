package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/recording"
)

const sessionsUsage = `Usage: portcullis sessions ls [--json]
       portcullis sessions watch ID [--from-start]
       portcullis sessions kill ID [--message TEXT]

ls lists the sessions and tunnels running through the gateway now, oldest
first. RECORDED says whether a session-recording policy covers it: only
recorded sessions can be watched. Times are printed in UTC.

watch shows a recorded session in this terminal as it happens, read only:
nothing typed here reaches the session. By default it starts from now; with
--from-start it first prints everything the session has shown so far, at
once, then follows it live. It ends when the session ends (exit 0), or on
Ctrl-C. Watching is audited (recording.view). Output is shown as the
session's terminal wrote it, so a terminal smaller than the session's
(whose size watch prints when it starts) wraps lines differently.

kill ends a running session or tunnel. Its user sees "ended by local-admin",
followed by the message if one is given; the kill is audited
(session.kill).

Flags:
  --json            (ls) a JSON array of sessions, each with its id
  --from-start      (watch) replay the session so far before following it
  --message TEXT    (kill) one line shown to the session's user
` + "\n" + globalFlagsUsage

func runSessionsLs(e *env, args []string) error {
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
	list, err := fetchList[livesession.Session](e, "/api/v1/sessions", nil)
	if err != nil {
		return err
	}
	return printList(e, list, asJSON, "No sessions running.",
		[]string{"ID", "USER", "TARGET", "ACCOUNT", "ACTION", "SOURCE", "STARTED", "RECORDED"},
		func(s livesession.Session) []string {
			recorded := "no"
			switch {
			case s.RecordingIncomplete:
				recorded = "incomplete" // output is being lost
			case s.Recorded:
				recorded = "yes"
			}
			return []string{s.ID, s.User, s.Target, dash(s.Account), s.Action, dash(s.Source),
				s.Started.UTC().Format(time.RFC3339), recorded}
		})
}

func runSessionsKill(e *env, args []string) error {
	fs := e.flags()
	var message string
	fs.StringVar(&message, "message", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos, "session")
	if err != nil {
		return err
	}
	body, err := json.Marshal(api.KillRequest{Message: message})
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var res api.KillResponse
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/sessions/"+url.PathEscape(id)+"/kill", nil, "application/json", body, &res); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "session %s killed\n", res.Killed)
	return nil
}

// runSessionsWatch writes the output events of the live asciicast to the
// terminal as they arrive, rather than handing the stream to
// recording.Play at speed 1: the events arrive when they happen, so their
// arrival already is the session's timing, and with --from-start Play
// would replay the backlog in real time, falling behind the live session
// by as long as it has run. Writing on arrival shows the backlog at once
// and then stays live.
func runSessionsWatch(e *env, args []string) error {
	fs := e.flags()
	var fromStart bool
	fs.BoolVar(&fromStart, "from-start", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos, "session")
	if err != nil {
		return err
	}
	q := url.Values{"from": {"now"}}
	if fromStart {
		q.Set("from", "start")
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	// Ctrl-C ends the watch, not the process, so that the terminal can be
	// put back the way it was.
	ctx, stop := signal.NotifyContext(e.ctx, os.Interrupt)
	defer stop()
	body, err := c.stream(ctx, "/api/v1/sessions/"+url.PathEscape(id)+"/watch", q)
	if err != nil {
		return err
	}
	defer body.Close()
	err = relayOutput(body, e.stdout, func(h recording.Header) {
		fmt.Fprintf(e.stderr, "Watching session %s (its terminal is %dx%d), read only; Ctrl-C to stop.\n", id, h.Width, h.Height)
	})
	restoreTerminal(e.stdout)
	switch {
	case ctx.Err() != nil && e.ctx.Err() == nil:
		fmt.Fprintf(e.stderr, "\nStopped watching session %s.\n", id)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(e.stderr, "\nSession %s ended.\n", id)
	return nil
}

// relayOutput copies the output ("o") events of an asciicast stream to w
// as they arrive, calling header with the stream's header first. Input and
// resize events are not shown: input echoes in the output anyway, and the
// local terminal cannot be resized.
func relayOutput(r io.Reader, w io.Writer, header func(recording.Header)) error {
	rd, err := recording.NewReader(r)
	if err != nil {
		return streamError(err)
	}
	header(rd.Header())
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return streamError(err)
		}
		if ev.Type != "o" {
			continue
		}
		if _, err := io.WriteString(w, ev.Data); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
}

// streamError explains why reading a live stream stopped. A cancelled
// context is returned as is, for the caller to tell Ctrl-C from a failure.
func streamError(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &exitError{code: exitFailure, msg: fmt.Sprintf("the stream from the gateway broke off: %v", err)}
}

// oneID checks that the positional arguments are exactly one id.
func oneID(pos []string, what string) (string, error) {
	switch {
	case len(pos) == 0:
		return "", usageErr("%s ID is required", what)
	case len(pos) > 1:
		return "", usageErr("unexpected argument %q: want one %s ID", pos[1], what)
	case pos[0] == "":
		return "", usageErr("%s ID is empty", what)
	}
	return pos[0], nil
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// restoreTerminal undoes what a replayed session may have left set on a
// terminal it was cut off in: colours and attributes, a hidden cursor, the
// alternate screen of a full-screen program.
func restoreTerminal(w io.Writer) {
	if isTerminal(w) {
		_, _ = io.WriteString(w, "\x1b[0m\x1b[?25h\x1b[?1049l")
	}
}
