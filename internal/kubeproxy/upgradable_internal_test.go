package kubeproxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// TestWebSocketUpgradableAsTheLibraries: upgradable says yes to a
// WebSocket request exactly when the client leg's libraries upgrade it
// (x/net/websocket's handshake checks, then a subprotocol in common), so
// that the API server leg, opened first, is never opened for a request
// they then refuse (a command run in the pod with no client stream).
func TestWebSocketUpgradableAsTheLibraries(t *testing.T) {
	s := &Server{cfg: Config{Log: slog.New(slog.DiscardHandler)}, live: map[*liveRequest]struct{}{}}
	predicted := make(chan bool, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		predicted <- upgradable(r)
		ss := &streamSession{s: s, q: &request{attrs: kubeAttrs{subresource: "exec", name: "p"}}, lr: &liveRequest{}}
		ss.client = "websocket (v4 or older)"
		if wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) {
			ss.client = "websocket"
		}
		// No API server leg: a stream that opens ends at once, saying
		// so.
		ss.serveClient(w, r, &remotecommand.Options{Stdout: true})
	}))
	defer srv.Close()
	host := srv.Listener.Addr().String()
	n := 0
	for _, method := range []string{"GET", "POST"} {
		for _, key := range []string{"", "dGhlIHNhbXBsZSBub25jZQ=="} {
			for _, version := range []string{"", "8", "13"} {
				for _, protocol := range []string{"-", "", " , ", "v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io",
					"channel.k8s.io", "base64.channel.k8s.io", "bogus", "bogus, channel.k8s.io", "v5.channel.k8s.io, bogus", "bogus, v5.channel.k8s.io",
					"V5.channel.k8s.io", "v1.channel.k8s.io"} {
					for _, h := range []string{host, "a%zz"} {
						hdr := "Connection: Upgrade\r\nUpgrade: websocket\r\n"
						if key != "" {
							hdr += "Sec-WebSocket-Key: " + key + "\r\n"
						}
						if version != "" {
							hdr += "Sec-WebSocket-Version: " + version + "\r\n"
						}
						if protocol != "-" {
							hdr += "Sec-WebSocket-Protocol: " + protocol + "\r\n"
						}
						req := fmt.Sprintf("%s /exec?command=x HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n%s\r\n", method, h, hdr)
						status := rawStatus(t, host, req)
						opened := strings.HasPrefix(status, "HTTP/1.1 101 ")
						if p := <-predicted; p != opened {
							t.Errorf("upgradable %v, the library answered %q, to:\n%s", p, status, req)
						}
						n++
					}
				}
			}
		}
	}
	t.Logf("%d requests", n)
}

// rawStatus sends req on its own connection and returns the answer's
// status line.
func rawStatus(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return strings.TrimSpace(line)
}
