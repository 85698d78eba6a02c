package kubeproxy

// An exec or attach is a session, as an SSH session is: a session.start
// event before it runs, an asciicast recording through recording.Manager
// when a session-recording policy covers it (output always, stdin when the
// policy says record_input, resizes), live watch through that recording,
// and a session.end event with the recording's SHA-256 and the exit
// status. Recording is fail-closed unless every covering policy says
// on_failure: continue.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientexec "k8s.io/client-go/util/exec"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
)

// ProtocolKubernetes marks recordings and session events of this front.
const ProtocolKubernetes = "kubernetes"

// endedWhy is why the gateway ended lr ("" if it did not).
func (s *Server) endedWhy(lr *liveRequest) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return lr.revoked
}

// endLive ends lr for why (the first reason stays).
func (s *Server) endLive(lr *liveRequest, why string) {
	s.mu.Lock()
	if lr.revoked == "" {
		lr.revoked = why
	}
	s.mu.Unlock()
	lr.cancel()
}

// sessionDetail is what session.start and session.end say about the
// stream.
func (q *request) sessionDetail() map[string]any {
	d := map[string]any{"action": "kubernetes " + q.attrs.subresource, "protocol": ProtocolKubernetes,
		"namespace": q.attrs.namespace, "pod": q.attrs.name, "cluster_user": q.d.User}
	if c := q.container(); c != "" {
		d["container"] = c
	}
	if len(q.d.Groups) > 0 {
		d["cluster_groups"] = q.d.Groups
	}
	if q.command != "" {
		d["command"] = q.command
	}
	if q.keyID != "" {
		d["key_id"] = q.keyID
	}
	return d
}

func (q *request) container() string {
	return q.query.Get("container")
}

// serveSession runs an exec or attach: audited start, recording, the
// relay (stream.go), then the recording's end and session.end. lr is
// already live (listed, killable, rechecked).
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request, q *request, up *upstream, tok []byte, lr *liveRequest) {
	opts, err := streamOptions(q.query)
	if err != nil {
		q.status = http.StatusBadRequest
		writeStatus(w, http.StatusBadRequest, err.Error())
		return
	}
	id := lr.session.ID
	start := time.Now()
	startEv := store.AuditEvent{Type: audit.SessionStart, Outcome: audit.Success, User: q.user, Source: q.src, Target: q.target,
		Account: q.d.User, Policy: q.d.Policy, SessionID: id, Detail: q.sessionDetail(),
		Message: fmt.Sprintf("kubernetes %s session on %s in %s/%s as %s", q.attrs.subresource, q.target, q.attrs.namespace, q.attrs.name, q.d.User)}
	if err := s.cfg.Audit.Write(context.Background(), startEv); err != nil {
		// Fail closed: a session whose start cannot be stored does not
		// run.
		s.cfg.Log.Error("audit", "type", startEv.Type, "user", q.user, "err", err)
		q.status = http.StatusServiceUnavailable
		writeStatus(w, http.StatusServiceUnavailable, "the audit trail cannot be written; session refused")
		return
	}
	target := *up.base
	target.Path, target.RawPath = q.attrs.path, ""
	target.RawQuery = q.query.Encode()
	ss := &streamSession{s: s, q: q, lr: lr, up: up, tok: tok, target: &target, input: q.d.RecordInput}
	endDetail := q.sessionDetail()
	end := func(outcome string) {
		endDetail["duration_ms"] = time.Since(start).Milliseconds()
		endDetail["bytes_in"], endDetail["bytes_out"] = ss.bytesIn.Load(), ss.bytesOut.Load()
		ev := store.AuditEvent{Type: audit.SessionEnd, Outcome: outcome, User: q.user, Source: q.src, Target: q.target,
			Account: q.d.User, Policy: q.d.Policy, SessionID: id, Detail: endDetail,
			Message: fmt.Sprintf("kubernetes %s session on %s ended", q.attrs.subresource, q.target)}
		if err := s.cfg.Audit.Write(context.Background(), ev); err != nil {
			s.cfg.Log.Error("audit", "type", ev.Type, "user", q.user, "err", err)
		}
	}
	if q.d.Record {
		rec, err := s.startRecording(q, lr, id, opts)
		if err != nil {
			endDetail["refused"] = err.Error()
			end(audit.Failure)
			q.status = http.StatusServiceUnavailable
			writeStatus(w, http.StatusServiceUnavailable, "the session recording cannot be written; session refused")
			return
		}
		ss.rec = rec
		if rec != nil {
			s.mu.Lock()
			lr.session.Recorded = true
			s.mu.Unlock()
		}
	}
	ss.serve(w, r, opts)
	q.status = http.StatusSwitchingProtocols
	ss.mu.Lock()
	relayErr, ran, answered := ss.err, ss.ran, ss.answered
	endDetail["client_protocol"], endDetail["upstream_protocol"] = ss.client, ss.upstream
	ss.mu.Unlock()
	if answered != 0 {
		// The API server leg did not open: the client's upgrade was
		// answered with this code.
		q.status = answered
	}
	outcome := audit.Success
	var exit clientexec.CodeExitError
	var se *apierrors.StatusError
	switch {
	case !ran && relayErr == nil:
		// The client's upgrade failed (the library answered it).
		q.status = http.StatusBadRequest
		outcome = audit.Failure
		endDetail["end_reason"] = "the client's stream did not open"
		if ss.leg != nil {
			// But the API server's had (a SPDY client that never
			// opened its streams, a client gone during its
			// upgrade): the command ran, or may have started, in
			// the pod all the same (the API server upgrades before
			// it reaches the node). serve waited for the leg's end.
			what := "the command"
			if q.attrs.subresource == "attach" {
				what = "the attach"
			}
			ranWithout := "the client's stream did not open; " + what + " ran in the pod without it"
			switch err := upstreamStatus(ss.leg.err); {
			case err == nil:
				endDetail["end_reason"] = ranWithout
				if q.attrs.subresource == "exec" {
					endDetail["exit_status"] = 0
				}
			case errors.As(err, &exit) && exit.Exited():
				endDetail["end_reason"] = ranWithout
				endDetail["exit_status"] = exit.ExitStatus()
			default:
				endDetail["end_reason"] = "the client's stream did not open after the API server's had: " + what + " may have started in the pod (" + err.Error() + ")"
			}
		}
	case relayErr == nil:
		if q.attrs.subresource == "exec" {
			endDetail["exit_status"] = 0
			q.exitStatus = new(int)
		}
	case errors.As(relayErr, &exit) && exit.Exited():
		status := exit.ExitStatus()
		endDetail["exit_status"] = status
		q.exitStatus = &status
	case errors.As(relayErr, &se):
		q.status = int(se.Status().Code)
		outcome = audit.Failure
		endDetail["end_reason"] = se.Status().Message
	default:
		outcome = audit.Failure
		endDetail["end_reason"] = relayErr.Error()
	}
	if why := s.endedWhy(lr); why != "" {
		outcome = audit.Deny
		endDetail["end_reason"] = why
	}
	if ss.rec != nil {
		size, sum, err := ss.rec.Close(context.Background())
		if err != nil {
			_ = s.cfg.Audit.Write(context.Background(), store.AuditEvent{Type: audit.RecordingFailure, Outcome: audit.Failure,
				User: q.user, Target: q.target, SessionID: id, Message: "close recording: " + err.Error()})
		}
		endDetail["recording"] = id
		endDetail["recording_sha256"] = sum
		endDetail["recording_bytes"] = size
		if gap := ss.rec.Gap(); gap.Bytes > 0 {
			endDetail["recording_state"] = store.RecordingIncomplete
			endDetail["recording_lost_bytes"] = gap.Bytes
		}
	}
	end(outcome)
}

// startRecording starts the session's recording. A recording that cannot
// start refuses the session (an error) unless the policy says
// on_failure: continue (nil, nil: unrecorded, audited). A recording that
// fails later ends the stream on both sides under terminate.
func (s *Server) startRecording(q *request, lr *liveRequest, id string, opts *remotecommand.Options) (*recording.Recorder, error) {
	if s.cfg.Recordings == nil {
		return nil, s.recordingFailed(q, id, errors.New("the gateway has no recordings directory"), nil)
	}
	term := ""
	if opts.TTY {
		term = "xterm"
	}
	var once sync.Once
	meta := recording.Meta{ID: id, User: q.user, Target: q.target, Account: q.d.User, Source: q.src,
		Action: "kubernetes " + q.attrs.subresource, Command: q.command, Term: term, RecordInput: q.d.RecordInput,
		Protocol: ProtocolKubernetes,
		Kube:     &recording.KubeMeta{Namespace: q.attrs.namespace, Pod: q.attrs.name, Container: q.container(), ClusterGroups: q.d.Groups},
		OnFailure: func(err error) {
			once.Do(func() { _ = s.recordingFailed(q, id, err, lr) })
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := s.cfg.Recordings.Start(ctx, meta)
	if err != nil {
		return nil, s.recordingFailed(q, id, err, nil)
	}
	return rec, nil
}

// recordingFailed audits a recording failure and returns the error when
// the session must not go on (on_failure: terminate), ending it if it
// runs (lr set).
func (s *Server) recordingFailed(q *request, id string, err error, lr *liveRequest) error {
	outcome := "session ended"
	if q.d.RecordFailOpen {
		outcome = "session continues unrecorded (on_failure: continue)"
	}
	_ = s.cfg.Audit.Write(context.Background(), store.AuditEvent{Type: audit.RecordingFailure, Outcome: audit.Failure,
		User: q.user, Target: q.target, SessionID: id, Policy: q.d.RecordingPolicy,
		Message: fmt.Sprintf("recording failed: %v; %s", err, outcome)})
	if q.d.RecordFailOpen {
		return nil
	}
	if lr != nil {
		// Not on the caller's goroutine: it is the recorder's flusher,
		// which every recording shares.
		go s.endLive(lr, "the session recording cannot be written")
	}
	return fmt.Errorf("recording failed: %w", err)
}

// streamOptions reads the streams an exec or attach asks for, as the API
// server does (PodExecOptions: stdin=true or 1, ...). The kubelet library's
// own reader expects the API server's rewritten form (=1) only.
func streamOptions(q url.Values) (*remotecommand.Options, error) {
	var o remotecommand.Options
	for _, f := range []struct {
		name string
		v    *bool
	}{{"stdin", &o.Stdin}, {"stdout", &o.Stdout}, {"stderr", &o.Stderr}, {"tty", &o.TTY}} {
		vs := q[f.name]
		if len(vs) == 0 {
			continue
		}
		if len(vs) > 1 {
			return nil, fmt.Errorf("%s is given %d times", f.name, len(vs))
		}
		b, err := strconv.ParseBool(vs[0])
		var api bool
		_ = runtime.Convert_Slice_string_To_bool(&vs, &api, nil)
		if err != nil || b != api {
			// The API server reads every value but 0 and false as
			// true ("f" too): a value the two read differently would
			// open streams upstream the gateway does not relay.
			return nil, fmt.Errorf("%s=%q is not true or false", f.name, vs[0])
		}
		*f.v = b
	}
	if o.TTY && o.Stderr {
		// One stream with a terminal, as the kubelet does.
		o.Stderr = false
	}
	if !o.Stdin && !o.Stdout && !o.Stderr {
		return nil, errors.New("you must specify at least 1 of stdin, stdout, stderr")
	}
	return &o, nil
}

// commandOf is an exec request's command line as the history shows it.
func commandOf(q url.Values) string {
	return strings.Join(q["command"], " ")
}
