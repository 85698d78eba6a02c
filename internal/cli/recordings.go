package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/recording"
)

const recordingsUsage = `Usage: portcullis recordings ls [FLAGS]
       portcullis recordings play ID [--speed N] [--idle-limit S] [--at SECONDS]
       portcullis recordings download ID [-o FILE] [--force]
       portcullis recordings rm ID [--yes]
       portcullis recordings search QUERY [--limit N] [--json]
       portcullis recordings check [--json]

Session recordings are asciicast v2 files (asciinema 2 plays them too), one
per recorded session, written as the session runs. KIND is terminal (a
shell or exec: what the user saw) or file-transfer (sftp, scp, rsync: the
file operations, one event each, and never the files' contents).

ls lists recordings, newest first. STATE is active (the session is
running), ended, or interrupted (the gateway stopped without ending the
session; the recording holds everything up to then). Times are printed in
UTC; SIZE and DURATION are known once a recording is no longer active.

play plays a recording in this terminal, downloading it from the gateway as
it plays. An active recording plays up to now (follow it live with
'portcullis sessions watch ID'). A file-transfer recording is not
replayed: its operations are printed at once, one line each (time, operation,
path, bytes, error). Ctrl-C stops. Playing is audited as a
download (recording.download, purpose play).

download saves the asciicast file, by default as ID.cast in the current
directory ('-o -' writes it to standard output). It refuses to overwrite an
existing file without --force. For a recording that is no longer active,
the file's SHA-256 is checked against the one stored when it ended (and
written to the audit trail then): a mismatch means the file changed since,
and download exits 1 (keeping the file, for inspection). Audited
(recording.download).

rm deletes a recording, its file and its search index, even while the
session runs (the session goes on, unrecorded from then on). The deletion
is audited (recording.delete) with the recording's metadata. On a terminal
it asks first; when stdin is not a terminal it refuses unless --yes is
given.

search finds recordings where all the words of QUERY appeared on screen or
were typed, as the user saw them (escape sequences interpreted, not just
stripped); a "quoted phrase" must appear as is. Several arguments are
joined by spaces. Each hit shows where the best match starts, in seconds:
play it from there with 'portcullis recordings play ID --at OFFSET'.

check reads every recording that has ended and lists those whose file is
missing or whose SHA-256 is not the one stored, and written to the audit
trail, when it ended; it exits 1 when it lists any. With recordings_store:
s3://... it checks every gateway's recordings in the bucket; otherwise
this gateway's own. It also lists (STATE unlisted) recordings the audit
trail holds a hash of that the store no longer lists and that no
recording.delete event says were deleted. It reads every byte (an
auditor's job, not a quick one).

TIME is an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02,
midnight UTC), or a duration back from now: 90m, 24h, 7d, 1d12h.

Flags:
  --user NAME        (ls) recordings of one gateway user or service account
  --target NAME      (ls) recordings on one target
  --state STATE      (ls) active, ended, incomplete or interrupted
  --since TIME       (ls) recordings started at or after TIME
  --before ID        (ls) recordings listed after the one with this id: the next page
                     (ls says "more exist: see older ones with --before ID" when there is one)
  --limit N          (ls, search) at most N (ls: default 1000; search: default 100; at most 10000)
  --json             (ls, search, check) a JSON array, each item with the recording's id
  --speed N          (play) play N times faster (default 1; 0.5 is half speed)
  --idle-limit S     (play) shorten every pause longer than S seconds to S
  --at SECONDS       (play) start SECONDS into the recording (what search shows as OFFSET)
  -y, --yes          (rm) do not ask; needed when stdin is not a terminal
  -o, --output FILE  (download) where to save; - for standard output
  --force            (download) overwrite FILE if it exists
` + "\n" + globalFlagsUsage

func runRecordingsLs(e *env, args []string) error {
	fs := e.flags()
	var (
		user, target, state, since string
		before                     string
		limit                      int
		asJSON                     bool
	)
	fs.StringVar(&user, "user", "", "")
	fs.StringVar(&target, "target", "", "")
	fs.StringVar(&state, "state", "", "")
	fs.StringVar(&since, "since", "", "")
	fs.StringVar(&before, "before", "", "")
	fs.IntVar(&limit, "limit", 0, "")
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	switch state {
	case "", "active", "ended", "incomplete", "interrupted":
	default:
		return usageErr("--state: %q is not active, ended, incomplete or interrupted", state)
	}
	q := url.Values{}
	if err := setSince(q, since); err != nil {
		return err
	}
	setIf(q, "user", user)
	setIf(q, "target", target)
	setIf(q, "state", state)
	setIf(q, "before", before)
	if err := setLimit(q, limit); err != nil {
		return err
	}
	recs, more, err := fetchPage[api.Recording](e, "/api/v1/recordings", q)
	if err != nil {
		return err
	}
	defer sayMore(e, more)
	return printList(e, recs, asJSON, "No recordings found.",
		[]string{"ID", "STATE", "KIND", "USER", "TARGET", "ACCOUNT", "ACTION", "STARTED", "DURATION", "SIZE", "INDEX"},
		func(r api.Recording) []string {
			duration, size := "-", "-"
			if r.EndedAt != nil {
				duration = r.EndedAt.Sub(r.StartedAt).Round(time.Second).String()
				size = humanBytes(r.Size)
			}
			state := r.State
			if r.Gap != nil {
				// What an incomplete recording lost, where it is listed.
				state = fmt.Sprintf("%s (lost %s at %.0fs-%.0fs)", r.State, humanBytes(r.Gap.LostBytes), r.Gap.FromS, r.Gap.ToS)
			}
			return []string{r.ID, state, dash(r.Kind), r.User, r.Target, dash(r.Account), r.Action,
				r.StartedAt.UTC().Format(time.RFC3339), duration, size, dash(r.Index)}
		})
}

func runRecordingsPlay(e *env, args []string) error {
	fs := e.flags()
	var speed, idle, at float64
	fs.Float64Var(&speed, "speed", 1, "")
	fs.Float64Var(&idle, "idle-limit", 0, "")
	fs.Float64Var(&at, "at", 0, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos, "recording")
	if err != nil {
		return err
	}
	switch {
	case !(speed > 0) || math.IsInf(speed, 0):
		return usageErr("--speed: want a number above 0 (2 is twice as fast)")
	case !(idle >= 0) || idle > math.MaxInt64/float64(time.Second):
		return usageErr("--idle-limit: want seconds, 0 or more")
	case !(at >= 0) || math.IsInf(at, 0):
		return usageErr("--at: want seconds from the start, 0 or more")
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	// Ctrl-C stops the replay, not the process, so that the terminal can
	// be put back the way it was.
	ctx, stop := signal.NotifyContext(e.ctx, os.Interrupt)
	defer stop()
	body, header, err := c.streamHeader(ctx, castPath(id), url.Values{"purpose": {"play"}})
	if err != nil {
		return err
	}
	defer body.Close()
	err = recording.Play(ctx, body, e.stdout, recording.PlayOptions{
		Speed: speed, IdleLimit: time.Duration(idle * float64(time.Second)), At: at,
	})
	restoreTerminal(e.stdout)
	// Whatever became of the replay, a tampered file is said last, where
	// the viewer looks when it ends.
	tampered := tamperedError(id, header)
	if ctx.Err() != nil && e.ctx.Err() == nil {
		return tampered // stopped with Ctrl-C
	}
	if err != nil {
		err = fmt.Errorf("play recording %s: %w", id, err)
		if tampered != nil {
			fmt.Fprintf(e.stderr, "portcullis recordings play: %v\n", err)
			return tampered
		}
		return err
	}
	return tampered
}

func runRecordingsDownload(e *env, args []string) error {
	flags := e.flags()
	var (
		out   string
		force bool
	)
	flags.StringVar(&out, "o", "", "")
	flags.StringVar(&out, "output", "", "")
	flags.BoolVar(&force, "force", false, "")
	pos, err := e.parse(flags, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos, "recording")
	if err != nil {
		return err
	}
	if out == "" {
		// The id is the gateway's; it must not pick a path for us.
		if strings.ContainsAny(id, `/\`) || id == "." || id == ".." {
			return inputErr("recording id %q cannot name a file: give -o FILE", id)
		}
		out = id + ".cast"
	}
	if out != "-" && !force {
		if _, err := os.Lstat(out); err == nil {
			return inputErr("%s exists: use --force to overwrite it, or -o another file", out)
		}
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	// The metadata first: it names a missing recording clearly, and holds
	// the hash the file must have if the recording has ended.
	var meta api.Recording
	if err := c.do(e.ctx, http.MethodGet, "/api/v1/recordings/"+url.PathEscape(id), nil, "", nil, &meta); err != nil {
		return err
	}
	body, header, err := c.streamHeader(e.ctx, castPath(id), url.Values{"purpose": {"download"}})
	if err != nil {
		return err
	}
	defer body.Close()

	h := sha256.New()
	var n int64
	status := e.stdout
	if out == "-" {
		status = e.stderr
		stdout := &trackedWriter{w: e.stdout}
		if n, err = io.Copy(io.MultiWriter(stdout, h), body); err != nil {
			if stdout.err != nil {
				return fmt.Errorf("write recording %s: %w", id, stdout.err)
			}
			return copyError(id, err)
		}
	} else if n, err = saveFile(id, out, io.TeeReader(body, h), force); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return inputErr("%s exists: use --force to overwrite it, or -o another file", out)
		}
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	where := out
	if out == "-" {
		where = "standard output"
	}
	if err := tamperedError(id, header); err != nil {
		fmt.Fprintf(status, "recording %s saved to %s (%d bytes, sha256 %s)\n", id, where, n, sum)
		return err
	}
	if meta.State != "active" && meta.SHA256 != "" && sum != meta.SHA256 {
		return &exitError{code: exitNo, msg: fmt.Sprintf(
			"saved %s, but its SHA-256 %s is not the %s stored when the recording ended: the file changed since", out, sum, meta.SHA256)}
	}
	fmt.Fprintf(status, "recording %s saved to %s (%d bytes, sha256 %s)\n", id, where, n, sum)
	return nil
}

// saveFile writes recording id, read from r, to path through a temporary file in the same
// directory, so that a failed download leaves nothing half-written behind.
// Without force it links rather than renames, which fails (fs.ErrExist)
// if path appeared in the meantime instead of replacing it.
func saveFile(id, path string, r io.Reader, force bool) (int64, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		// A device or a pipe (-o /dev/null, -o /dev/stdout): write to it.
		// Renaming a temporary file over it would replace /dev/null with a
		// regular file, which breaks every program on the machine.
		if fi.IsDir() {
			return 0, fmt.Errorf("save recording: %s is a directory", path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return 0, fmt.Errorf("save recording: %w", err)
		}
		n, err := io.Copy(f, r)
		if cerr := f.Close(); err == nil && cerr != nil {
			return n, fmt.Errorf("save recording: %w", cerr)
		}
		if err != nil {
			return n, copyError(id, err)
		}
		return n, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.part")
	if err != nil {
		return 0, fmt.Errorf("save recording: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, r)
	if err != nil {
		tmp.Close()
		return n, copyError(id, err)
	}
	if err := tmp.Close(); err != nil {
		return n, fmt.Errorf("save recording: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return n, fmt.Errorf("save recording: %w", err)
	}
	if force {
		if err := os.Rename(tmp.Name(), path); err != nil {
			return n, fmt.Errorf("save recording: %w", err)
		}
		return n, nil
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return n, err
		}
		// A file system without hard links: check, then rename.
		if _, serr := os.Lstat(path); serr == nil {
			return n, fs.ErrExist
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return n, fmt.Errorf("save recording: %w", err)
		}
	}
	return n, nil
}

// copyError explains a download that did not complete.
func copyError(id string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("save recording %s: %w", id, err)
	}
	return &exitError{code: exitFailure, msg: fmt.Sprintf("download of recording %s broke off: %v", id, err)}
}

func runRecordingsRm(e *env, args []string) error {
	fs := e.flags()
	yes := yesFlag(fs)
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos, "recording")
	if err != nil {
		return err
	}
	if err := e.confirm(*yes, fmt.Sprintf("Delete recording %s? It is evidence and cannot be recovered", id)); err != nil {
		return err
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	if err := c.do(e.ctx, http.MethodDelete, "/api/v1/recordings/"+url.PathEscape(id), nil, "", nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "recording %s deleted\n", id)
	return nil
}

func runRecordingsSearch(e *env, args []string) error {
	fs := e.flags()
	var (
		limit  int
		asJSON bool
	)
	fs.IntVar(&limit, "limit", 0, "")
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	query := strings.TrimSpace(strings.Join(pos, " "))
	if query == "" {
		return usageErr("QUERY is required: the words to look for, or a \"quoted phrase\"")
	}
	q := url.Values{"q": {query}}
	if err := setLimit(q, limit); err != nil {
		return err
	}
	hits, err := fetchList[api.SearchHit](e, "/api/v1/recordings/search", q)
	if err != nil {
		return err
	}
	err = printList(e, hits, asJSON, "No recordings match.", []string{"ID", "USER", "TARGET", "OFFSET", "SNIPPET"},
		func(h api.SearchHit) []string { return []string{h.ID, h.User, h.Target, offset(h.Offset), h.Snippet} })
	if err == nil && !asJSON && len(hits) > 0 {
		fmt.Fprintln(e.stderr, "play with: portcullis recordings play ID --at OFFSET")
	}
	return err
}

func runRecordingsCheck(e *env, args []string) error {
	fs := e.flags()
	asJSON := fs.Bool("json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("recordings check takes no arguments, got %q", pos[0])
	}
	found, err := fetchList[api.RecordingFinding](e, "/api/v1/recordings/check", nil)
	if err != nil {
		return err
	}
	err = printList(e, found, *asJSON, "Every recording is what was recorded.", []string{"ID", "STATE", "PROBLEM", "DETAIL"},
		func(f api.RecordingFinding) []string { return []string{f.ID, f.State, f.Problem, f.Detail} })
	if err != nil {
		return err
	}
	if len(found) > 0 {
		return &exitError{code: exitNo, msg: fmt.Sprintf("%d recordings are missing or changed", len(found))}
	}
	return nil
}

// offset prints seconds rounded down to a tenth, so that playing --at it
// starts just before the match rather than just after.
func offset(s float64) string {
	return strconv.FormatFloat(math.Floor(s*10)/10, 'f', 1, 64)
}

// castPath is the API path of a recording's file.
func castPath(id string) string {
	return "/api/v1/recordings/" + url.PathEscape(id) + "/cast"
}

// humanBytes writes a size the way ls -h does, in powers of 1024.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// stream sends a GET and returns the body of a 2xx answer for the caller
// to read as it arrives (and close). Error answers become *exitError with
// the right exit code, as with do.
func (c *client) stream(ctx context.Context, path string, query url.Values) (io.ReadCloser, error) {
	body, _, err := c.streamHeader(ctx, path, query)
	return body, err
}

// streamHeader is stream, with the answer's header.
func (c *client) streamHeader(ctx context.Context, path string, query url.Values) (io.ReadCloser, http.Header, error) {
	u := c.base + path
	if q := query.Encode(); q != "" {
		u += "?" + q
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, &exitError{code: exitFailure, msg: fmt.Sprintf("build request: %v", err)}
	}
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, c.transportError(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		ae := readAPIError(resp)
		return nil, nil, &exitError{code: ae.exitCode(), msg: ae.msg}
	}
	return resp.Body, resp.Header, nil
}

// tamperedError is the one line the CLI prints, after the recording, when
// the gateway found its file is not what was recorded (exit 1).
func tamperedError(id string, h http.Header) error {
	if h.Get(api.HeaderRecordingIntegrity) != recording.IntegrityTampered {
		return nil
	}
	why := h.Get(api.HeaderRecordingWarning)
	if why == "" {
		why = "its file is not what was recorded"
	}
	return &exitError{code: exitNo, msg: fmt.Sprintf("warning: recording %s was tampered with: %s", id, why)}
}
