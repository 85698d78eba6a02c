package kubeproxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/rest"
	clientremote "k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/kubeproxy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// waitAudit polls for an audit event of type typ that match accepts.
func (s *site) waitAudit(t *testing.T, typ string, match func(store.AuditEvent) bool) store.AuditEvent {
	t.Helper()
	return s.waitAuditWithin(t, 15*time.Second, typ, match)
}

// waitAuditWithin is waitAudit for an event that may take longer.
func (s *site) waitAuditWithin(t *testing.T, within time.Duration, typ string, match func(store.AuditEvent) bool) store.AuditEvent {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		evs, err := s.st.ListAudit(context.Background(), store.AuditFilter{Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if match(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			var all []string
			for _, ev := range evs {
				all = append(all, fmt.Sprintf("%s %s %q %v", ev.SessionID, ev.Outcome, ev.Message, ev.Detail))
			}
			t.Fatalf("no matching %s event; have:\n%s", typ, strings.Join(all, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kubectlIn runs kubectl with stdin and extra environment.
func kubectlIn(t *testing.T, kubeconfig, stdin string, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(append(os.Environ(), "HOME="+t.TempDir()), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		return string(out) + err.Error(), -1
	}
}

// kubectlErr runs kubectl with extra environment and no stdin, and
// returns its stdout, its stderr and its exit code.
func kubectlErr(t *testing.T, kubeconfig string, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(append(os.Environ(), "HOME="+t.TempDir()), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	default:
		return stdout.String(), stderr.String() + err.Error(), -1
	}
}

var transports = []struct{ name, websockets string }{{"websocket", "true"}, {"spdy", "false"}}

func sessionPolicies() []resource.Object {
	return []resource.Object{
		&resource.Policy{Kind: resource.KindPolicy, Name: "alice-streams", Type: resource.PolicyKubernetes,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
			ClusterGroups: []string{"dev-readers"},
			KubeRules: []resource.KubeRule{
				{Verbs: []string{"create", "get"}, Resources: []string{"pods/exec", "pods/attach", "pods/portforward"}, Namespaces: []string{"dev-app"}, Names: []string{"web-1"}},
				{Verbs: []string{"get"}, Resources: []string{"pods"}, Namespaces: []string{"dev-app"}},
			}},
		// bob is mapped to a cluster user RBAC grants nothing.
		&resource.Policy{Kind: resource.KindPolicy, Name: "bob-streams", Type: resource.PolicyKubernetes,
			Subjects: resource.Subjects{Users: []string{"bob"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
			ClusterUsers: []string{"nobody-in-rbac"},
			KubeRules: []resource.KubeRule{{Verbs: []string{"create", "get"}, Resources: []string{"pods/exec", "pods/attach", "pods/portforward", "pods"},
				Namespaces: []string{"dev-app"}}}},
		&resource.Policy{Kind: resource.KindPolicy, Name: "record-k1", Type: resource.PolicySessionRecording,
			Subjects: resource.Subjects{Groups: []string{"dev"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
			RecordInput: true},
	}
}

// testSessions runs exec and attach as recorded sessions, port-forward,
// and the ways around them.
func testSessions(t *testing.T, s *site, alice string) {
	testenv.Require(t, "kubectl")
	// kubectl attaches and forwards ports to running pods only (there is
	// no scheduler or kubelet to say so).
	for _, pod := range []string{"web-1", "web-2"} {
		s.kube.Kubectl(t, "patch", "pod", pod, "-n", "dev-app", "--subresource=status", "--type=merge", "-p", `{"status":{"phase":"Running"}}`)
	}
	s.apply(t, sessionPolicies()...)
	t.Cleanup(func() {
		for _, n := range []string{"alice-streams", "bob-streams", "record-k1"} {
			_ = s.inv.Delete(context.Background(), resource.KindPolicy, n)
		}
	})
	bob := s.kubeconfig("pck_test_bob")

	seen := map[string]bool{}
	t.Run("exec is recorded", func(t *testing.T) {
		for _, tr := range transports {
			t.Run(tr.name, func(t *testing.T) {
				word := "quokka" + tr.name
				out, code := kubectlIn(t, alice, word+"\n", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + tr.websockets},
					"exec", "-i", "-n", "dev-app", "web-1", "--", "sh", "-c", "read x; echo got $x; exit 3")
				if code != 3 || !strings.Contains(out, "got "+word) {
					t.Fatalf("kubectl exec: exit %d, want 3:\n%s", code, out)
				}
				end := s.waitAudit(t, audit.SessionEnd, func(ev store.AuditEvent) bool {
					return ev.User == "alice" && fmt.Sprint(ev.Detail["exit_status"]) == "3" && ev.Detail["recording"] != nil &&
						!seen[ev.SessionID]
				})
				seen[end.SessionID] = true
				id := end.SessionID
				// Terminated on both sides: the client's protocol, and
				// WebSocket to the API server (its pinned certificate
				// given to client-go as its own CA).
				if end.Detail["client_protocol"] != tr.name || end.Detail["upstream_protocol"] != "websocket" {
					t.Fatalf("session.end protocols %v / %v", end.Detail["client_protocol"], end.Detail["upstream_protocol"])
				}
				start := s.waitAudit(t, audit.SessionStart, func(ev store.AuditEvent) bool { return ev.SessionID == id })
				if start.Account != "alice" || start.Detail["protocol"] != "kubernetes" || start.Detail["namespace"] != "dev-app" ||
					start.Detail["pod"] != "web-1" || start.Detail["command"] != "sh -c read x; echo got $x; exit 3" ||
					fmt.Sprint(start.Detail["cluster_groups"]) != "[dev-readers]" {
					t.Fatalf("session.start %+v", start)
				}
				b, err := os.ReadFile(filepath.Join(s.recDir, id+".cast"))
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(b)
				if end.Detail["recording_sha256"] != hex.EncodeToString(sum[:]) {
					t.Fatalf("session.end sha256 %v, file %x", end.Detail["recording_sha256"], sum)
				}
				cast := string(b)
				for _, want := range []string{`"o", "got ` + word, `"i", "` + word + `\n"`, `"protocol":"kubernetes"`,
					`"kubernetes":{"namespace":"dev-app","pod":"web-1"`, `"account":"alice"`, `"command":"sh -c read x; echo got $x; exit 3"`} {
					if !strings.Contains(cast, want) {
						t.Fatalf("recording lacks %q:\n%s", want, cast)
					}
				}
				// asciinema reads it.
				testenv.Require(t, "asciinema")
				if cat, code := testenv.AsciinemaCat(t, filepath.Join(s.recDir, id+".cast")); code != 0 || !strings.Contains(cat, "got "+word) {
					t.Fatalf("asciinema cat: exit %d\n%s", code, cat)
				}
				// Searchable by a word the pod printed.
				for deadline := time.Now().Add(15 * time.Second); ; {
					hits, err := s.st.SearchText(context.Background(), word, 10)
					if err != nil {
						t.Fatal(err)
					}
					if len(hits) == 1 && hits[0].RecordingID == id {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("search %q: %+v", word, hits)
					}
					time.Sleep(50 * time.Millisecond)
				}
				rec, err := s.st.GetRecording(context.Background(), id)
				if err != nil || rec.State != store.RecordingEnded || rec.Action != "kubernetes exec" || rec.Account != "alice" {
					t.Fatalf("recording row %+v %v", rec, err)
				}
				// The command is in the request history too.
				s.waitEvent(t, func(ev store.AuditEvent) bool {
					return ev.Detail["subresource"] == "exec" && ev.Detail["command"] == "sh -c read x; echo got $x; exit 3" && ev.User == "alice"
				})
			})
		}
	})

	t.Run("exec with a terminal records its size", func(t *testing.T) {
		master, slave := testenv.OpenPTY(t)
		if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 111}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", alice, "exec", "-it", "-n", "dev-app", "web-1", "--",
			"sh", "-c", "echo tty-run; exit 4")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		var shown lockedBuilder
		go func() { _, _ = io.Copy(&shown, master) }()
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 4 {
			t.Fatalf("kubectl exec -it: %v\n%s", err, shown.String())
		}
		end := s.waitAudit(t, audit.SessionEnd, func(ev store.AuditEvent) bool {
			return fmt.Sprint(ev.Detail["command"]) == "sh -c echo tty-run; exit 4"
		})
		b, err := os.ReadFile(filepath.Join(s.recDir, end.SessionID+".cast"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"r", "111x33"`, `"o", "tty-run`, `"TERM":`} {
			if !bytes.Contains(b, []byte(want)) {
				t.Fatalf("tty recording lacks %q:\n%s", want, b)
			}
		}
	})

	t.Run("attach", func(t *testing.T) {
		for _, tr := range transports {
			out, code := kubectlIn(t, alice, "hi there\n", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + tr.websockets},
				"attach", "-i", "-n", "dev-app", "web-1", "-c", "main")
			if code != 0 || !strings.Contains(out, "main: hi there") {
				t.Fatalf("kubectl attach (%s): exit %d\n%s", tr.name, code, out)
			}
		}
		end := s.waitAudit(t, audit.SessionEnd, func(ev store.AuditEvent) bool {
			return ev.Detail["action"] == "kubernetes attach" && ev.Detail["recording_sha256"] != nil
		})
		b, err := os.ReadFile(filepath.Join(s.recDir, end.SessionID+".cast"))
		if err != nil || !bytes.Contains(b, []byte("main: hi there")) {
			t.Fatalf("attach recording: %v\n%s", err, b)
		}
	})

	t.Run("live, watched and killed", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		long := exec.CommandContext(ctx, "kubectl", "--kubeconfig", alice, "exec", "-n", "dev-app", "web-1", "--",
			"sh", "-c", "echo wombat-live; sleep 30")
		long.Env = append(os.Environ(), "HOME="+t.TempDir())
		var longOut strings.Builder
		long.Stdout, long.Stderr = &longOut, &longOut
		if err := long.Start(); err != nil {
			t.Fatal(err)
		}
		id := s.waitLive(t, "sh -c echo wombat-live; sleep 30")
		// Watched live the way the API does: following the recording.
		fctx, fcancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		go func() { _ = s.rec.Follow(fctx, id, true, pw); _ = pw.Close() }()
		br := bufio.NewReader(pr)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("live view ended before the output: %v", err)
			}
			if strings.Contains(line, `"o", "wombat-live`) {
				// The output, not the header (which names the command).
				break
			}
		}
		fcancel()
		_ = pr.Close()
		if err := s.srv.Kill(id, "admin", "maintenance"); err != nil {
			t.Fatal(err)
		}
		err := long.Wait()
		if ctx.Err() != nil || err == nil {
			t.Fatalf("the killed exec: %v, ran on: %s", err, longOut.String())
		}
		end := s.waitAudit(t, audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.SessionID == id })
		if end.Outcome != audit.Deny || end.Detail["end_reason"] != "killed by admin: maintenance" || end.Detail["recording_sha256"] == nil {
			t.Fatalf("session.end %+v", end)
		}
		t.Logf("kubectl after the kill: %s", longOut.String())
	})

	t.Run("a client that hangs up ends both legs", func(t *testing.T) {
		// An exec without stdin or output: nothing is read from or
		// written to the client, so only its hang-up can end the relay.
		for _, tr := range transports {
			t.Run(tr.name, func(t *testing.T) {
				cmdline := "echo up; sleep 41" + map[string]string{"websocket": "1", "spdy": "2"}[tr.name]
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				long := exec.CommandContext(ctx, "kubectl", "--kubeconfig", alice, "exec", "-n", "dev-app", "web-1", "--", "sh", "-c", cmdline)
				long.Env = append(os.Environ(), "HOME="+t.TempDir(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS="+tr.websockets)
				stdout, err := long.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := long.Start(); err != nil {
					t.Fatal(err)
				}
				id := s.waitLive(t, "sh -c "+cmdline)
				// The stream is up on both legs once the first line
				// came through; then the relay has nothing to carry.
				if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "up\n" {
					t.Fatalf("kubectl exec: %q %v", line, err)
				}
				_ = long.Process.Kill()
				_ = long.Wait()
				end := s.waitAudit(t, audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.SessionID == id })
				if end.Outcome == audit.Success {
					t.Fatalf("session.end of a hung-up client %+v", end)
				}
			})
		}
	})

	t.Run("an API server that never answers the upgrade", func(t *testing.T) {
		// It accepts the connection and the TLS handshake, then says
		// nothing: the stream ends after the dial timeout instead of
		// holding the session until someone kills it.
		hold := make(chan struct{})
		hang := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hold }))
		t.Cleanup(hang.Close)
		t.Cleanup(func() { close(hold) })
		pin := sha256.Sum256(hang.Certificate().Raw)
		s.apply(t,
			&resource.Target{Kind: resource.KindTarget, Name: "k-hang", Protocol: resource.ProtocolKubernetes,
				HTTP: resource.HTTP{URL: hang.URL, TLSPinSHA256: hex.EncodeToString(pin[:]),
					Credential: &resource.HTTPCredential{Type: resource.CredentialBearer, Account: "gateway"}}},
			&resource.Account{Kind: resource.KindAccount, Target: "k-hang", Name: "gateway", Password: "token"},
			&resource.Policy{Kind: resource.KindPolicy, Name: "alice-hang", Type: resource.PolicyKubernetes,
				Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"k-hang"}},
				ClusterGroups: []string{"dev-readers"}})
		t.Cleanup(func() {
			_ = s.inv.Delete(context.Background(), resource.KindPolicy, "alice-hang")
			_ = s.inv.Delete(context.Background(), resource.KindTarget, "k-hang")
		})
		for _, tr := range transports {
			cfg := &rest.Config{Host: s.url + "/k8s/k-hang", BearerToken: "pck_test_alice", TLSClientConfig: rest.TLSClientConfig{CAData: s.ca}}
			u, _ := url.Parse(s.url + "/k8s/k-hang/api/v1/namespaces/dev-app/pods/web-1/exec?command=id&stdout=true")
			var ex clientremote.Executor
			var err error
			if tr.name == "websocket" {
				ex, err = clientremote.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
			} else {
				ex, err = clientremote.NewSPDYExecutor(cfg, http.MethodPost, u)
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			err = ex.StreamWithContext(ctx, clientremote.StreamOptions{Stdout: io.Discard})
			late := ctx.Err()
			cancel()
			if late != nil || err == nil || !strings.Contains(err.Error(), "did not answer") {
				t.Fatalf("%s: the stream to a silent API server: %v (deadline: %v)", tr.name, err, late)
			}
			checkNotRetried(t, tr.name, err)
		}
		// Killed while the gateway waits for the API server's upgrade:
		// the client hears why, and a WebSocket client is not told its
		// upgrade failed (kubectl would run the command again over
		// SPDY).
		for _, tr := range transports {
			cmd := "hang-kill-" + tr.name
			cfg := &rest.Config{Host: s.url + "/k8s/k-hang", BearerToken: "pck_test_alice", TLSClientConfig: rest.TLSClientConfig{CAData: s.ca}}
			u, _ := url.Parse(s.url + "/k8s/k-hang/api/v1/namespaces/dev-app/pods/web-1/exec?command=" + cmd + "&stdout=true")
			var ex clientremote.Executor
			var err error
			if tr.name == "websocket" {
				ex, err = clientremote.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
			} else {
				ex, err = clientremote.NewSPDYExecutor(cfg, http.MethodPost, u)
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			errc := make(chan error, 1)
			go func() { errc <- ex.StreamWithContext(ctx, clientremote.StreamOptions{Stdout: io.Discard}) }()
			var id string
			for deadline := time.Now().Add(20 * time.Second); id == ""; {
				for _, ls := range s.srv.List() {
					if ls.Command == cmd {
						id = ls.ID
					}
				}
				if id == "" && time.Now().After(deadline) {
					t.Fatalf("the exec never showed in the session list: %+v", s.srv.List())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := s.srv.Kill(id, "admin", "hang-kill"); err != nil {
				t.Fatal(err)
			}
			err = <-errc
			cancel()
			if err == nil || !strings.Contains(err.Error(), "session ended: killed by admin: hang-kill") {
				t.Fatalf("%s: killed during the upgrade: %v", tr.name, err)
			}
			checkNotRetried(t, tr.name, err)
			s.waitAudit(t, audit.SessionEnd, func(ev store.AuditEvent) bool {
				return ev.SessionID == id && ev.Outcome == audit.Deny && ev.Detail["end_reason"] == "killed by admin: hang-kill"
			})
		}
	})

	t.Run("revocation ends a live exec", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		long := exec.CommandContext(ctx, "kubectl", "--kubeconfig", alice, "exec", "-n", "dev-app", "web-1", "--", "sleep", "31")
		long.Env = append(os.Environ(), "HOME="+t.TempDir())
		if err := long.Start(); err != nil {
			t.Fatal(err)
		}
		id := s.waitLive(t, "sleep 31")
		if err := s.inv.Delete(context.Background(), resource.KindPolicy, "alice-streams"); err != nil {
			t.Fatal(err)
		}
		_ = long.Wait()
		if ctx.Err() != nil {
			t.Fatal("the exec outlived the revocation")
		}
		end := s.waitAudit(t, audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.SessionID == id })
		if end.Outcome != audit.Deny || !strings.HasPrefix(fmt.Sprint(end.Detail["end_reason"]), "access revoked") {
			t.Fatalf("session.end %+v", end)
		}
		s.apply(t, sessionPolicies()[0])
	})

	t.Run("the policy's validity window closing ends a live exec, said as such", func(t *testing.T) {
		// Only a policy valid for a few more seconds lets alice exec
		// into web-2: the exec ends when it closes, denied with that
		// reason (as an SSH session says it), not as a failure of a
		// context deadline or an API server out of reach.
		// Both at once, each with its own policy: the window leaves
		// kubectl ample time to start the exec under load.
		for _, tr := range transports {
			t.Run(tr.name, func(t *testing.T) {
				t.Parallel()
				until := time.Now().Add(10 * time.Second)
				name := "alice-window-" + tr.name
				s.apply(t, &resource.Policy{Kind: resource.KindPolicy, Name: name, Type: resource.PolicyKubernetes,
					Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
					ClusterGroups: []string{"dev-readers"}, ValidUntil: &until,
					KubeRules: []resource.KubeRule{{Verbs: []string{"create", "get"}, Resources: []string{"pods/exec"}, Namespaces: []string{"dev-app"}, Names: []string{"web-2"}}}})
				t.Cleanup(func() { _ = s.inv.Delete(context.Background(), resource.KindPolicy, name) })
				cmdline := "echo up; sleep 31" + map[string]string{"websocket": "1", "spdy": "2"}[tr.name]
				out, _ := kubectlIn(t, alice, "", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + tr.websockets},
					"exec", "-n", "dev-app", "web-2", "--", "sh", "-c", cmdline)
				end := s.waitAudit(t, audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.Detail["command"] == "sh -c "+cmdline })
				const why = "the policy's validity window ended (valid_until)"
				if end.Outcome != audit.Deny || end.Detail["end_reason"] != why {
					t.Fatalf("session.end %+v\nkubectl: %s", end, out)
				}
				if !strings.HasPrefix(out, "up\n") || !strings.Contains(out, "session ended: "+why) {
					t.Fatalf("kubectl: %s", out)
				}
				req := s.waitAudit(t, kubeproxy.EventRequest, func(ev store.AuditEvent) bool { return ev.Detail["command"] == "sh -c "+cmdline })
				if req.Outcome != audit.Deny || req.Message != "ended: "+why {
					t.Fatalf("kube.request %s %q", req.Outcome, req.Message)
				}
			})
		}
	})

	t.Run("RBAC sees the impersonated user on the second leg", func(t *testing.T) {
		for _, tr := range transports {
			out, code := kubectlIn(t, bob, "", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + tr.websockets},
				"exec", "-n", "dev-app", "web-1", "--", "echo", "should-not-run")
			// RBAC's own answer: a GET (WebSocket) is verb get, a POST
			// (SPDY) create.
			if code == 0 || strings.Contains(out, "should-not-run\n") || !strings.Contains(out, `pods "web-1" is forbidden: User "nobody-in-rbac" cannot `) ||
				!strings.Contains(out, `resource "pods/exec"`) {
				t.Fatalf("exec as bob (%s): exit %d\n%s", tr.name, code, out)
			}
		}
	})

	t.Run("client identity headers on the upgrade", func(t *testing.T) {
		// bob's own client sends front-proxy and credential headers on
		// the exec upgrade, over both transports: the API server still
		// sees the cluster user the policy chose (and refuses it).
		for _, tr := range transports {
			cfg := &rest.Config{Host: s.url + "/k8s/k1", BearerToken: "pck_test_bob",
				TLSClientConfig: rest.TLSClientConfig{CAData: s.ca},
				WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
					return roundTripFunc(func(r *http.Request) (*http.Response, error) {
						r.Header.Set("X-Remote-User", "admin")
						r.Header.Set("X-Remote-Group", "system:masters")
						return rt.RoundTrip(r)
					})
				}}
			u, _ := url.Parse(s.url + "/k8s/k1/api/v1/namespaces/dev-app/pods/web-1/exec?command=id&stdout=true")
			var ex clientremote.Executor
			var err error
			if tr.name == "websocket" {
				ex, err = clientremote.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
			} else {
				ex, err = clientremote.NewSPDYExecutor(cfg, http.MethodPost, u)
			}
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err = ex.StreamWithContext(context.Background(), clientremote.StreamOptions{Stdout: &out})
			if err == nil || !strings.Contains(err.Error(), "nobody-in-rbac") || out.Len() > 0 {
				t.Fatalf("%s: %v; output %q", tr.name, err, out.String())
			}
		}
	})

	t.Run("stream refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"--as outside the set", []string{"exec", "--as", "system:admin", "-n", "dev-app", "web-1", "--", "true"}, `may not act as cluster user "system:admin"`},
			{"--as-group outside the set", []string{"exec", "--as", "alice", "--as-group", "system:masters", "-n", "dev-app", "web-1", "--", "true"}, `may not act as cluster group "system:masters"`},
			{"exec in another namespace", []string{"exec", "-n", "other", "db-0", "--", "true"}, "may not get pods db-0 in namespace other"},
			{"port-forward to a pod not granted", []string{"port-forward", "-n", "dev-app", "pod/web-2", ":80"}, "may not create pods/portforward web-2"},
		} {
			out, code := kubectlIn(t, alice, "", nil, tc.args...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("%s: exit %d\n%s", tc.name, code, out)
			}
		}
		for _, path := range []string{
			"/k8s/k1/api/v1/namespaces/dev-app%2F..%2Fother/pods/db-0/exec?command=id&stdout=true",
			"/k8s/k1/api/v1/namespaces/dev-app/../other/pods/db-0/exec?command=id&stdout=true",
			"/k8s/k1/api/v1/namespaces/%64ev-app/pods/web-1/exec?command=id&stdout=true",
		} {
			req, _ := http.NewRequest(http.MethodPost, s.url+path, nil)
			req.Header.Set("Authorization", "Bearer pck_test_alice")
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "SPDY/3.1")
			req.Header.Set("X-Stream-Protocol-Version", "v4.channel.k8s.io")
			resp, err := s.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
			}
		}
	})

	t.Run("refusals reach kubectl as the Status", func(t *testing.T) { testStreamRefusals(t, s, alice, bob) })

	t.Run("whoami and can-i --list never go as an identity not granted", func(t *testing.T) {
		// bob may act as nobody-in-rbac only: asked with another --as,
		// the API server must not answer for "bob" (the gateway user's
		// own name, which no policy lists).
		for _, path := range []string{
			"/k8s/k1/apis/authentication.k8s.io/v1/selfsubjectreviews",
			"/k8s/k1/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
		} {
			body := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
			if strings.Contains(path, "rules") {
				body = `{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectRulesReview","spec":{"namespace":"dev-app"}}`
			}
			req, _ := http.NewRequest(http.MethodPost, s.url+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer pck_test_bob")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Impersonate-User", "someone-else")
			resp, err := s.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "may not act as the cluster identity") {
				t.Fatalf("%s as someone-else: %d %s", path, resp.StatusCode, b)
			}
		}
		// can-i about a discovery path: answered by the policy, not by
		// the API server for "bob".
		body := `{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"nonResourceAttributes":{"path":"/api","verb":"get"}}}`
		req, _ := http.NewRequest(http.MethodPost, s.url+"/k8s/k1/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer pck_test_bob")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Impersonate-User", "someone-else")
		resp, err := s.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || !strings.Contains(string(b), "may not act as the cluster identity") || strings.Contains(string(b), `"allowed":true`) {
			t.Fatalf("can-i get /api as someone-else: %d %s", resp.StatusCode, b)
		}
	})

	t.Run("exec through nodes/proxy is not an unrecorded way in", func(t *testing.T) {
		// The kubelet's own /exec, /attach and /run are reachable through
		// the node proxy subresource: granted it (a policy without rules
		// grants every request), and RBAC granting it, alice would run a
		// command in web-1 that no session records while record-k1
		// covers her. The gateway refuses nodes/proxy under a recording.
		s.kube.Kubectl(t, "create", "clusterrole", "review-node-proxy", "--verb=get,create", "--resource=nodes/proxy")
		s.kube.Kubectl(t, "create", "clusterrolebinding", "review-node-proxy", "--clusterrole=review-node-proxy", "--group=dev-readers")
		s.apply(t, &resource.Policy{Kind: resource.KindPolicy, Name: "alice-nodes", Type: resource.PolicyKubernetes,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
			ClusterGroups: []string{"dev-readers"},
			KubeRules:     []resource.KubeRule{{Verbs: []string{"get", "create"}, Resources: []string{"nodes/proxy"}}}})
		t.Cleanup(func() {
			_ = s.inv.Delete(context.Background(), resource.KindPolicy, "alice-nodes")
			s.kube.Kubectl(t, "delete", "clusterrolebinding", "review-node-proxy")
			s.kube.Kubectl(t, "delete", "clusterrole", "review-node-proxy")
		})
		cfg := &rest.Config{Host: s.url + "/k8s/k1", BearerToken: "pck_test_alice", TLSClientConfig: rest.TLSClientConfig{CAData: s.ca}}
		u, _ := url.Parse(s.url + "/k8s/k1/api/v1/nodes/node-1/proxy/exec/dev-app/web-1/c?command=echo&command=unrecorded&output=1")
		ex, err := clientremote.NewSPDYExecutor(cfg, http.MethodPost, u)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = ex.StreamWithContext(context.Background(), clientremote.StreamOptions{Stdout: &out})
		if err == nil || !strings.Contains(err.Error(), "nodes/proxy") || out.Len() > 0 {
			t.Fatalf("exec through nodes/proxy: %v; output %q", err, out.String())
		}
		// Any nodes/proxy request: the kubelet's /run runs a command
		// without an upgrade.
		code, body := s.get(t, http.MethodGet, "/k8s/k1/api/v1/nodes/node-1/proxy/exec/dev-app/web-1/c?command=id", nil)
		if code != http.StatusForbidden || !strings.Contains(body, "session-recording") {
			t.Fatalf("GET nodes/proxy under recording: %d %s", code, body)
		}
	})

	t.Run("relay CPU per GB", func(t *testing.T) {
		// A measurement, not a check: PORTCULLIS_MEASURE=1 to run. The
		// test process holds the gateway and the test node; kubectl and
		// the API server are other processes. The same exec direct to
		// the API server costs the node alone, so the difference is the
		// gateway's (relay both legs, recording the output as text).
		if os.Getenv("PORTCULLIS_MEASURE") == "" {
			t.Skip("PORTCULLIS_MEASURE not set")
		}
		const n = 64 << 20
		script := fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x", n)
		cpu := func() time.Duration {
			var ru unix.Rusage
			_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
			return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		run := func(kubeconfig, transport string) time.Duration {
			before := cpu()
			out, code := kubectlIn(t, kubeconfig, "", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + transport},
				"exec", "-n", "dev-app", "web-1", "--", "sh", "-c", script)
			if code != 0 || len(out) != n {
				t.Fatalf("exec: exit %d, %d bytes", code, len(out))
			}
			return cpu() - before
		}
		for _, tr := range transports {
			direct := run(s.kube.Kubeconfig, tr.websockets)
			via := run(alice, tr.websockets)
			gb := float64(n) / (1 << 30)
			t.Logf("%s: test process CPU %.2f s/GB direct (node only), %.2f s/GB through the gateway (recorded): gateway %.2f CPU-s per GB",
				tr.name, direct.Seconds()/gb, via.Seconds()/gb, (via-direct).Seconds()/gb)
		}
	})

	t.Run("exec without an upgrade", func(t *testing.T) {
		code, body := s.get(t, http.MethodPost, "/k8s/k1/api/v1/namespaces/dev-app/pods/web-1/exec?command=echo&command=no-upgrade&stdout=true", nil)
		if code < 400 || strings.Contains(body, "no-upgrade") {
			t.Fatalf("a plain POST to exec: %d %s", code, body)
		}
		end := s.waitAudit(t, audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.Detail["command"] == "echo no-upgrade" })
		if end.Outcome != audit.Failure || end.Detail["end_reason"] != "the client's stream did not open" || end.Detail["exit_status"] != nil {
			t.Fatalf("session.end %+v", end)
		}
	})

	t.Run("an upgrade the client leg refuses opens nothing to the API server", func(t *testing.T) {
		// The API server leg is opened before the client's upgrade is
		// answered: a request the client leg's libraries refuse after
		// that would have run the command in the pod without a stream
		// to the client. Each is refused with nothing reaching the node.
		const exec = "/k8s/k1/api/v1/namespaces/dev-app/pods/web-1/exec?command=echo&command=%s&stdout=true"
		ws := "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
		for _, tc := range []struct{ name, method, host, headers string }{
			{"websocket, no subprotocol in common", "GET", "", ws + "Sec-WebSocket-Protocol: bogus.k8s.io\r\n"},
			{"websocket v5, no key", "GET", "", "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n"},
			{"websocket v5, version 8", "GET", "", strings.Replace(ws, "13", "8", 1) + "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n"},
			{"websocket v5, POST", "POST", "", ws + "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n"},
			{"websocket v4, a host the library cannot parse", "GET", "a%zz", ws + "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n"},
			{"spdy, no protocol in common", "POST", "", "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v9.channel.k8s.io\r\n"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				base := runtime.NumGoroutine()
				defer checkGoroutines(t, base)
				word := "refused-" + strconv.Itoa(int(time.Now().UnixNano()%1e9))
				nodeBefore := s.node.Streams()
				status, c := s.rawUpgrade(t, tc.method, fmt.Sprintf(exec, word), tc.host, tc.headers)
				_ = c.Close()
				if strings.Contains(status, " 101 ") {
					t.Fatalf("upgraded: %q", status)
				}
				end := s.waitAudit(t, audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.Detail["command"] == "echo "+word })
				if n := s.node.Streams() - nodeBefore; n != 0 {
					t.Fatalf("%q: %d requests reached the node", status, n)
				}
				// No API server leg was tried (one is gone too soon
				// after to reach the node reliably).
				if end.Outcome != audit.Failure || end.Detail["end_reason"] != "the client's stream did not open" || end.Detail["upstream_protocol"] != "" {
					t.Fatalf("session.end %+v", end)
				}
			})
		}
	})

	t.Run("a SPDY client that upgrades and never opens its streams", func(t *testing.T) {
		// The command ran in the pod (its API server leg opened
		// first), and the client leg waited its stream creation
		// timeout (30 s) for streams that never came: session.end says
		// the command ran, and how it ended.
		base := runtime.NumGoroutine()
		nodeBefore := s.node.Streams()
		status, c := s.rawUpgrade(t, "POST", "/k8s/k1/api/v1/namespaces/dev-app/pods/web-1/exec?command=sh&command=-c&command=exit+3&stdout=true", "",
			"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n")
		// Held open, silent, until the gateway gives up on it.
		defer c.Close()
		if !strings.Contains(status, " 101 ") {
			t.Fatalf("not upgraded: %q", status)
		}
		end := s.waitAuditWithin(t, 90*time.Second, audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.Detail["command"] == "sh -c exit 3" })
		if n := s.node.Streams() - nodeBefore; n < 1 {
			t.Fatalf("%d requests reached the node, want the exec's", n)
		}
		if end.Outcome != audit.Failure || end.Detail["end_reason"] != "the client's stream did not open; the command ran in the pod without it" ||
			fmt.Sprint(end.Detail["exit_status"]) != "3" {
			t.Fatalf("session.end %+v", end)
		}
		_ = c.Close()
		checkGoroutines(t, base)
	})

	t.Run("port-forward is terminated, each connection audited", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					line, _ := bufio.NewReader(c).ReadString('\n')
					_, _ = io.WriteString(c, "echo: "+line)
				}()
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		for _, tr := range transports {
			t.Run(tr.name, func(t *testing.T) {
				local := freePort(t)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				// A client's own Impersonate-* on the upgrade is not
				// what the API server sees: --as-group is outside the
				// policy's set, so it is refused, and without it the
				// gateway sets its own.
				pf := exec.CommandContext(ctx, "kubectl", "--kubeconfig", alice, "port-forward", "-n", "dev-app", "pod/web-1",
					fmt.Sprintf("%d:%d", local, port), "--address", "127.0.0.1")
				pf.Env = append(os.Environ(), "HOME="+t.TempDir(), "KUBECTL_PORT_FORWARD_WEBSOCKETS="+tr.websockets)
				var pfOut lockedBuilder
				pf.Stdout, pf.Stderr = &pfOut, &pfOut
				if err := pf.Start(); err != nil {
					t.Fatal(err)
				}
				exited := make(chan error, 1)
				go func() { exited <- pf.Wait() }()
				defer func() {
					cancel()
					<-exited
				}()
				// Two connections through the one tunnel, each with a
				// line of its own.
				var lines []string
				for n := range 2 {
					word := fmt.Sprintf("ping-%s-%d", tr.name, n)
					var reply string
					for deadline := time.Now().Add(20 * time.Second); ; {
						c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", local), time.Second)
						if err == nil {
							_ = c.SetDeadline(time.Now().Add(10 * time.Second))
							_, _ = io.WriteString(c, word+"\n")
							reply, _ = bufio.NewReader(c).ReadString('\n')
							c.Close()
							if reply == "echo: "+word+"\n" {
								break
							}
						}
						if time.Now().After(deadline) {
							t.Fatalf("no reply through port-forward (%q, %v); kubectl: %s", reply, err, pfOut.String())
						}
						time.Sleep(100 * time.Millisecond)
					}
					lines = append(lines, word)
				}
				s.waitAudit(t, kubeproxy.EventStart, func(ev store.AuditEvent) bool {
					return ev.Detail["subresource"] == "portforward" && ev.Detail["cluster_groups"] != nil && ev.User == "alice"
				})
				for _, word := range lines {
					ev := s.waitAudit(t, kubeproxy.EventPortForward, func(ev store.AuditEvent) bool {
						return ev.Detail["client_protocol"] == tr.name && fmt.Sprint(ev.Detail["bytes_in"]) == strconv.Itoa(len(word)+1) &&
							fmt.Sprint(ev.Detail["bytes_out"]) == strconv.Itoa(len("echo: "+word)+1) && ev.Outcome == audit.Success
					})
					if ev.User != "alice" || fmt.Sprint(ev.Detail["port"]) != strconv.Itoa(port) || ev.Detail["pod"] != "web-1" ||
						ev.Detail["namespace"] != "dev-app" || ev.Detail["upstream_protocol"] != "websocket" || ev.Account != "alice" {
						t.Fatalf("kube.portforward %+v", ev)
					}
				}
				// The tunnel is live: kill ends it, and kubectl exits.
				var id string
				for deadline := time.Now().Add(10 * time.Second); id == ""; {
					for _, ls := range s.srv.List() {
						if ls.User == "alice" && ls.Action == "kubernetes portforward" {
							id = ls.ID
						}
					}
					if id == "" && time.Now().After(deadline) {
						t.Fatalf("the port-forward is not in the session list: %+v", s.srv.List())
					}
					time.Sleep(20 * time.Millisecond)
				}
				if err := s.srv.Kill(id, "admin", "pf-over"); err != nil {
					t.Fatal(err)
				}
				select {
				case <-exited:
					exited <- nil
				case <-time.After(30 * time.Second):
					t.Fatalf("kubectl port-forward still runs after the kill: %s", pfOut.String())
				}
				s.waitAudit(t, kubeproxy.EventRequest, func(ev store.AuditEvent) bool {
					return ev.Detail["subresource"] == "portforward" && strings.Contains(ev.Message, "killed by admin: pf-over")
				})
			})
		}

		t.Run("revocation ends it", func(t *testing.T) {
			local := freePort(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			pf := exec.CommandContext(ctx, "kubectl", "--kubeconfig", alice, "port-forward", "-n", "dev-app", "pod/web-1",
				fmt.Sprintf("%d:%d", local, port), "--address", "127.0.0.1")
			pf.Env = append(os.Environ(), "HOME="+t.TempDir())
			var pfOut lockedBuilder
			pf.Stdout, pf.Stderr = &pfOut, &pfOut
			if err := pf.Start(); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(20 * time.Second); ; {
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", local), time.Second)
				if err == nil {
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					_, _ = io.WriteString(c, "before-revoke\n")
					reply, _ := bufio.NewReader(c).ReadString('\n')
					c.Close()
					if reply == "echo: before-revoke\n" {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("no reply through port-forward; kubectl: %s", pfOut.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := s.inv.Delete(context.Background(), resource.KindPolicy, "alice-streams"); err != nil {
				t.Fatal(err)
			}
			defer s.apply(t, sessionPolicies()[0])
			_ = pf.Wait()
			if ctx.Err() != nil {
				t.Fatalf("the port-forward outlived the revocation: %s", pfOut.String())
			}
			s.waitAudit(t, kubeproxy.EventRequest, func(ev store.AuditEvent) bool {
				return ev.Detail["subresource"] == "portforward" && strings.Contains(ev.Message, "ended: access revoked")
			})
		})

		t.Run("a client's impersonation is refused, not passed", func(t *testing.T) {
			for _, as := range [][]string{{"--as", "system:admin"}, {"--as", "alice", "--as-group", "system:masters"}} {
				for _, tr := range transports {
					args := append(append([]string{}, as...), "port-forward", "-n", "dev-app", "pod/web-1", fmt.Sprintf("%d:%d", freePort(t), port),
						"--address", "127.0.0.1")
					out, code := kubectlIn(t, alice, "", []string{"KUBECTL_PORT_FORWARD_WEBSOCKETS=" + tr.websockets}, args...)
					if code == 0 || !strings.Contains(out, "portcullis:") {
						t.Fatalf("port-forward %v over %s: exit %d\n%s", as, tr.name, code, out)
					}
				}
			}
			// The same on the upgrade request itself, as a client that
			// skips kubectl's first GET would send it.
			path := "/k8s/k1/api/v1/namespaces/dev-app/pods/web-1/portforward"
			for _, hdr := range []map[string][]string{
				{"Impersonate-User": {"admin"}},
				{"Impersonate-User": {"alice"}, "Impersonate-Group": {"system:masters"}},
			} {
				hdr["Connection"], hdr["Upgrade"] = []string{"Upgrade"}, []string{"SPDY/3.1"}
				hdr["X-Stream-Protocol-Version"] = []string{"portforward.k8s.io"}
				code, body := s.get(t, http.MethodPost, path, hdr)
				if code != http.StatusForbidden || !strings.Contains(body, "may not act as") {
					t.Fatalf("upgrade with %v: %d %s", hdr, code, body)
				}
			}
		})
	})

	t.Run("recording failure under terminate refuses the exec", func(t *testing.T) {
		// The recordings directory becomes a file: nothing can be
		// created in it, even by root.
		moved := s.recDir + ".away"
		if err := os.Rename(s.recDir, moved); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.recDir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = os.Remove(s.recDir)
			_ = os.Rename(moved, s.recDir)
		}()
		for _, tr := range transports {
			out, code := kubectlIn(t, alice, "", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + tr.websockets},
				"exec", "-n", "dev-app", "web-1", "--", "echo", "unrecorded-run")
			if code == 0 || strings.Contains(out, "unrecorded-run\n") || !strings.Contains(out, "the session recording cannot be written") {
				t.Fatalf("exec with recordings unwritable (%s): exit %d\n%s", tr.name, code, out)
			}
		}
		s.waitAudit(t, audit.RecordingFailure, func(ev store.AuditEvent) bool {
			return strings.Contains(ev.Message, "session ended") && ev.Policy == "record-k1"
		})
		// on_failure: continue runs it unrecorded, audited.
		p := sessionPolicies()[2].(*resource.Policy)
		p.OnFailure = resource.OnFailureContinue
		s.apply(t, p)
		defer s.apply(t, sessionPolicies()[2])
		out, code := kubectlIn(t, alice, "", nil, "exec", "-n", "dev-app", "web-1", "--", "echo", "unrecorded-run")
		if code != 0 || !strings.Contains(out, "unrecorded-run") {
			t.Fatalf("exec under on_failure: continue: exit %d\n%s", code, out)
		}
		s.waitAudit(t, audit.RecordingFailure, func(ev store.AuditEvent) bool {
			return strings.Contains(ev.Message, "continues unrecorded")
		})
	})

	t.Run("recording failure under terminate ends a running exec", func(t *testing.T) {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", s.recDir).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a small tmpfs: %v %s", err, out)
		}
		// Lazy: the recorder may still hold a file open.
		defer func() { _ = exec.Command("umount", "-l", s.recDir).Run() }()
		// 1 MB of text into a 256 KiB file system, then a long sleep.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", alice, "exec", "-n", "dev-app", "web-1", "--",
			"sh", "-c", "echo started; head -c 1000000 /dev/zero | tr '\\0' x; echo; sleep 45")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		var out lockedBuilder
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ctx.Err() != nil || err == nil {
			t.Fatalf("the exec ran on with its recording failing: %v", err)
		}
		end := s.waitAudit(t, audit.SessionEnd, func(ev store.AuditEvent) bool {
			return strings.HasPrefix(fmt.Sprint(ev.Detail["command"]), "sh -c echo started;")
		})
		if end.Outcome != audit.Deny || end.Detail["end_reason"] != "the session recording cannot be written" {
			t.Fatalf("session.end %+v", end)
		}
		s.waitAudit(t, audit.RecordingFailure, func(ev store.AuditEvent) bool {
			return ev.SessionID == end.SessionID && strings.Contains(ev.Message, "session ended")
		})
	})
}

// checkNotRetried checks that a WebSocket client whose stream the
// gateway could not open (an API server out of reach, a kill) got its
// stream opened and the error on it, not an upgrade failure, which
// kubectl would retry over SPDY, running the command again. (A SPDY
// client is answered before its upgrade: kubectl 1.32 prints the Status,
// client-go 0.37's executor its message.)
func checkNotRetried(t *testing.T, transport string, err error) {
	t.Helper()
	if transport == "websocket" && httpstream.IsUpgradeFailure(err) {
		t.Fatalf("websocket: an upgrade failure, which kubectl retries over SPDY: %v", err)
	}
}

// lockedBuilder is a strings.Builder safe for a writer and a reader.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitLive waits for a running exec of command by alice and returns its
// session id.
func (s *site) waitLive(t *testing.T, command string) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		for _, ls := range s.srv.List() {
			if ls.Command == command && ls.User == "alice" && ls.Recorded {
				return ls.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the exec never showed, recorded, in the session list: %+v", s.srv.List())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testStreamRefusals runs exec, attach and port-forward that the gateway's
// policy refuses (alice on web-2) and that the API server's RBAC refuses
// (bob, as a cluster user RBAC grants nothing), over both of kubectl's
// protocols: kubectl prints the refusal as the Forbidden Status it is
// ("Error from server (Forbidden): ..."), never as an internal error of
// a stream that opened, nothing reaches the node, and each refused request
// has exactly one kube.request event.
func testStreamRefusals(t *testing.T, s *site, alice, bob string) {
	// kubectl prints a Status as "Error from server (REASON): MESSAGE";
	// port-forward says "error upgrading connection: MESSAGE" of any
	// error, the API server's own refusal too. The gateway's leg to the
	// API server is a WebSocket GET: RBAC says the verb is get.
	const policyMsg = "Error from server (Forbidden): portcullis: access denied: alice may not "
	const policyPF = "error: error upgrading connection: portcullis: access denied: alice may not create pods/portforward web-2 in namespace dev-app"
	const rbacMsg = `Error from server (Forbidden): pods "web-1" is forbidden: User "nobody-in-rbac" cannot `
	const rbacPF = `error: error upgrading connection: pods "web-1" is forbidden: User "nobody-in-rbac" cannot `
	const inNS = `" in API group "" in the namespace "dev-app"`
	for _, tc := range []struct {
		name, user, kubeconfig, sub, pod string
		args                             []string
		want                             []string
	}{
		{"exec refused by policy", "alice", alice, "exec", "web-2", []string{"exec", "-n", "dev-app", "web-2", "--", "touch", "refused-exec"},
			[]string{policyMsg, "pods/exec web-2 in namespace dev-app"}},
		{"attach refused by policy", "alice", alice, "attach", "web-2", []string{"attach", "-n", "dev-app", "web-2", "-c", "main"},
			[]string{policyMsg, "pods/attach web-2 in namespace dev-app"}},
		{"port-forward refused by policy", "alice", alice, "portforward", "web-2", []string{"port-forward", "-n", "dev-app", "pod/web-2", ":80"},
			[]string{policyPF}},
		{"exec refused by RBAC", "bob", bob, "exec", "web-1", []string{"exec", "-n", "dev-app", "web-1", "--", "touch", "refused-exec"},
			[]string{rbacMsg, `resource "pods/exec` + inNS}},
		{"attach refused by RBAC", "bob", bob, "attach", "web-1", []string{"attach", "-n", "dev-app", "web-1", "-c", "main"},
			[]string{rbacMsg, `resource "pods/attach` + inNS}},
		{"port-forward refused by RBAC", "bob", bob, "portforward", "web-1", []string{"port-forward", "-n", "dev-app", "pod/web-1", ":80"},
			[]string{rbacPF, `resource "pods/portforward` + inNS}},
	} {
		for _, tr := range transports {
			t.Run(tc.name+" over "+tr.name, func(t *testing.T) {
				path := "/k8s/k1/api/v1/namespaces/dev-app/pods/" + tc.pod + "/" + tc.sub
				match := func(ev store.AuditEvent) bool {
					return ev.User == tc.user && ev.Detail["path"] == "/api/v1/namespaces/dev-app/pods/"+tc.pod+"/"+tc.sub
				}
				// Events newer than the last one before the run.
				var lastID int64
				newer := func(typ string, match func(store.AuditEvent) bool) []store.AuditEvent {
					evs, err := s.st.ListAudit(context.Background(), store.AuditFilter{Type: typ, AfterID: lastID, Limit: 10000})
					if err != nil {
						t.Fatal(err)
					}
					var out []store.AuditEvent
					for _, ev := range evs {
						if match(ev) {
							out = append(out, ev)
						}
					}
					return out
				}
				session := func(ev store.AuditEvent) bool {
					return ev.User == tc.user && ev.Detail["pod"] == tc.pod && ev.Detail["action"] == "kubernetes "+tc.sub
				}
				reqsBefore := s.requests(t, path)
				if last, err := s.st.ListAudit(context.Background(), store.AuditFilter{Newest: true, Limit: 1}); err != nil {
					t.Fatal(err)
				} else if len(last) == 1 {
					lastID = last[0].ID
				}
				nodeBefore := s.node.Streams()

				env := []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + tr.websockets, "KUBECTL_PORT_FORWARD_WEBSOCKETS=" + tr.websockets}
				stdout, stderr, code := kubectlErr(t, tc.kubeconfig, env, tc.args...)
				if code != 1 || stdout != "" || strings.Contains(stderr, "Internal error") {
					t.Fatalf("kubectl %v: exit %d, want 1; stdout %q; stderr:\n%s", tc.args, code, stdout, stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Fatalf("kubectl %v: stderr lacks %q:\n%s", tc.args, w, stderr)
					}
				}
				if n := s.node.Streams() - nodeBefore; n != 0 {
					t.Fatalf("%d requests reached the node", n)
				}
				// One kube.request event for each request kubectl made
				// (over WebSocket it falls back to SPDY on the refused
				// upgrade, as it does with the API server itself).
				reqs := s.requests(t, path) - reqsBefore
				if reqs < 1 {
					t.Fatalf("kubectl made no %s request", tc.sub)
				}
				var evs []store.AuditEvent
				for deadline := time.Now().Add(10 * time.Second); ; {
					if evs = newer(kubeproxy.EventRequest, match); len(evs) >= reqs || time.Now().After(deadline) {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				if len(evs) != reqs {
					t.Fatalf("%d kube.request events for %d refused requests", len(evs), reqs)
				}
				for _, ev := range evs {
					if fmt.Sprint(ev.Detail["status"]) != "403" {
						t.Fatalf("kube.request of a refusal: %s %q %v", ev.Outcome, ev.Message, ev.Detail)
					}
				}
				// A session the policy allowed runs to the API server's
				// refusal: one start and one end each; one it refused
				// never starts.
				starts, ends := len(newer(audit.SessionStart, session)), len(newer(audit.SessionEnd, session))
				wantSessions := 0
				if tc.user == "bob" && tc.sub != "portforward" {
					wantSessions = reqs
				}
				if starts != wantSessions || ends != wantSessions {
					t.Fatalf("%d session.start and %d session.end events for %d requests, want %d each", starts, ends, reqs, wantSessions)
				}
			})
		}
	}
}

// rawUpgrade sends one upgrade request with alice's key over its own TLS
// connection, headers given as raw lines (repeated ones too), host
// instead of the gateway's address when set, and returns the answer's
// status line and the connection, for the caller to close.
func (s *site) rawUpgrade(t *testing.T, method, path, host, headers string) (string, net.Conn) {
	t.Helper()
	u, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if host == "" {
		host = u.Host
	}
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer pck_test_alice\r\nContent-Length: 0\r\n%s\r\n", method, path, host, headers)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return strings.TrimSpace(line), c
}

// checkGoroutines waits for the test process to be back to base
// goroutines (a stream's legs and their library goroutines end a moment
// after its audit event), and fails with the ones left over.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); runtime.NumGoroutine() > base; {
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
