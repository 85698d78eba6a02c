package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// KubeNode is a stand-in for a kubelet on loopback: a Node registered
// with the API server whose kubelet endpoint serves exec, attach and
// port-forward for the pods bound to it with the streaming library the
// kubelet itself uses (k8s.io/cri-streaming). Exec runs each command on
// this machine in a temporary directory. There is no container: the
// command sees this machine, as the test's own user. Attach connects to a
// stand-in for the container's main process, started for each attach: it
// prints "attached to POD/CONTAINER", then "main: LINE" for each line of
// its stdin, until stdin ends. Port-forward connects to 127.0.0.1:PORT on
// this machine.
type KubeNode struct {
	Name string
	// Addr is 127.0.0.1:PORT, its kubelet endpoint.
	Addr string
	// streams counts the exec, attach and port-forward requests that
	// reached the endpoint, served or not.
	streams atomic.Int64
}

// Streams is how many exec, attach and port-forward requests reached the
// node: a test that a refused request got nowhere near the pod compares it
// before and after.
func (n *KubeNode) Streams() int64 { return n.streams.Load() }

// StartNode serves a kubelet endpoint for node name and registers the
// Node (address 127.0.0.1, kubelet port) with the API server. Bind a pod
// with spec.nodeName: NAME and exec into it.
func (k *Kube) StartNode(t testing.TB, name string) *KubeNode {
	t.Helper()
	_, certPEM, keyPEM := testServerCert(t, "127.0.0.1")
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	node := &KubeNode{Name: name, Addr: ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/{namespace}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		node.streams.Add(1)
		opts, err := remotecommand.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cmd := r.URL.Query()["command"]
		if len(cmd) == 0 {
			http.Error(w, "no command", http.StatusBadRequest)
			return
		}
		remotecommand.ServeExec(w, r, shellExecutor{dir: dir}, r.PathValue("pod"), "", r.PathValue("container"), cmd, opts,
			0, 30*time.Second, remotecommandconsts.SupportedStreamingProtocols)
	})
	mux.HandleFunc("/attach/{namespace}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		node.streams.Add(1)
		opts, err := remotecommand.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		remotecommand.ServeAttach(w, r, shellExecutor{dir: dir}, r.PathValue("pod"), "", r.PathValue("container"), opts,
			0, 30*time.Second, remotecommandconsts.SupportedStreamingProtocols)
	})
	mux.HandleFunc("/portForward/{namespace}/{pod}", func(w http.ResponseWriter, r *http.Request) {
		node.streams.Add(1)
		opts, err := portforward.NewV4Options(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		portforward.ServePortForward(w, r, localForwarder{}, r.PathValue("pod"), "", opts, 0, 30*time.Second,
			portforward.SupportedProtocols)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	nodeFile := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(nodeFile, fmt.Appendf(nil, "apiVersion: v1\nkind: Node\nmetadata: {name: %s}\n", name), 0o600); err != nil {
		t.Fatal(err)
	}
	k.Kubectl(t, "apply", "-f", nodeFile)
	k.Kubectl(t, "patch", "node", name, "--subresource=status", "--type=merge", "-p",
		fmt.Sprintf(`{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"}],"daemonEndpoints":{"kubeletEndpoint":{"Port":%d}},"conditions":[{"type":"Ready","status":"True","reason":"Test","message":"test node"}]}}`, port))
	return node
}

// shellExecutor runs exec requests as local processes.
type shellExecutor struct{ dir string }

// ExecInContainer implements remotecommand.Executor.
func (e shellExecutor) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, in io.Reader, out, errOut io.WriteCloser,
	_ bool, _ <-chan remotecommand.TerminalSize, _ time.Duration) error {
	c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	c.Dir = e.dir
	c.Stdout, c.Stderr = out, errOut
	if in != nil {
		// Not c.Stdin: Wait would wait for the client's next keystroke
		// after the process ended (a terminal's stdin never closes). The
		// copy ends when the stream does.
		w, err := c.StdinPipe()
		if err != nil {
			return err
		}
		go func() {
			_, _ = io.Copy(w, in)
			_ = w.Close()
		}()
	}
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return utilexec.CodeExitError{Err: err, Code: ee.ExitCode()}
	}
	return err
}

// AttachContainer implements remotecommand.Attacher: a stand-in for the
// container's main process (see KubeNode).
func (e shellExecutor) AttachContainer(ctx context.Context, pod, _, container string, in io.Reader, out, errOut io.WriteCloser,
	tty bool, resize <-chan remotecommand.TerminalSize) error {
	script := fmt.Sprintf(`echo "attached to %s/%s"; while IFS= read -r l; do echo "main: $l"; done`, pod, container)
	return e.ExecInContainer(ctx, pod, "", container, []string{"sh", "-c", script}, in, out, errOut, tty, resize, 0)
}

// localForwarder forwards a pod's port to the same port on 127.0.0.1.
type localForwarder struct{}

// PortForward implements portforward.PortForwarder.
func (localForwarder) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		_, _ = io.Copy(c, stream)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	// Until the local end closes; the deferred closes end the copy the
	// other way.
	_, err = io.Copy(stream, c)
	return err
}
