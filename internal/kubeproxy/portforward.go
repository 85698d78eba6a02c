package kubeproxy

// Port-forward is terminated on both sides, as exec and attach are
// (stream.go): the gateway serves the client's tunnel itself and opens
// one tunnel of its own to the API server, so that each connection
// forwarded through it (a port and a request ID) is seen, audited on its
// own (kube.portforward: port, bytes each way, duration, outcome) and can
// be ended on both sides (kill, revocation).
//
//   - Client leg: SPDY portforward.k8s.io and the WebSocket v4 channel
//     protocol are served by k8s.io/cri-streaming's portforward (the
//     kubelet's library), through the PortForwarder interface pfTunnel
//     implements. kubectl 1.32's default, SPDY tunneled in WebSocket
//     (SPDY/3.1+portforward.k8s.io), is unwrapped as the API server does
//     (serveTunneled) in front of the same SPDY server.
//   - API server leg: client-go's SPDY-over-WebSocket tunneling dialer
//     first, its SPDY dialer when the WebSocket upgrade fails without an
//     answer from the API server, with the gateway's token and the decided
//     impersonation on the upgrade request.
//
// Bytes are counted, not recorded.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport"
	clientspdy "k8s.io/client-go/transport/spdy"
	criportforward "k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// EventPortForward is the audit event of one connection forwarded through
// a port-forward tunnel.
const EventPortForward = "kube.portforward"

// pfTunnel is one port-forward request being served: the client's tunnel
// and the gateway's own to the API server.
type pfTunnel struct {
	s  *Server
	q  *request
	lr *liveRequest
	// conn is the API server leg.
	conn httpstream.Connection
	// client and upstream are the protocols of each leg.
	client, upstream string
	nextID           atomic.Int64
	// wg counts connections being forwarded (their audit events).
	wg sync.WaitGroup
}

// servePortForward runs a port-forward through the gateway. It returns
// when both legs have ended.
func (s *Server) servePortForward(ctx context.Context, w http.ResponseWriter, r *http.Request, q *request, up *upstream, tok []byte, lr *liveRequest) {
	target := *up.base
	target.Path, target.RawPath = q.attrs.path, ""
	target.RawQuery = q.query.Encode()
	var opts *criportforward.V4Options
	if wsstream.IsWebSocketRequest(r) && !wsstream.IsWebSocketRequestWithTunnelingProtocol(r) {
		// The v4 channel protocol names its ports in the query.
		var err error
		if opts, err = criportforward.NewV4Options(r); err != nil {
			q.status = http.StatusBadRequest
			writeStatus(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	conn, upProto, err := s.dialPortForward(q, up, tok, &target)
	if err != nil {
		var se *apierrors.StatusError
		if errors.As(err, &se) {
			// The API server's own answer (RBAC's 403, no such pod), as
			// is, before the client's upgrade.
			q.status = writeAPIStatus(w, se.Status())
			return
		}
		s.cfg.Log.Info("kubernetes port-forward: API server leg", "target", q.target, "err", err)
		q.upstreamErr = err
		q.status = http.StatusBadGateway
		writeStatus(w, http.StatusBadGateway, "the gateway cannot open the port-forward to the API server")
		return
	}
	defer conn.Close()
	conn.SetIdleTimeout(streamIdle)
	t := &pfTunnel{s: s, q: q, lr: lr, conn: conn, upstream: upProto}
	hw := &hijackWatch{ResponseWriter: w}
	// Either leg ending, a kill or a revocation (ctx) ends both.
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-conn.CloseChan():
		case <-stop:
		}
		_ = conn.Close()
		hw.close()
	}()
	defer close(stop)
	q.status = http.StatusSwitchingProtocols
	switch {
	case wsstream.IsWebSocketRequestWithTunnelingProtocol(r):
		t.client = "websocket"
		t.serveTunneled(hw, r)
	case wsstream.IsWebSocketRequest(r):
		t.client = "websocket (v4)"
		criportforward.ServePortForward(hw, r, t, q.attrs.name, "", opts, streamIdle, streamCreation, criportforward.SupportedProtocols)
	default:
		t.client = "spdy"
		criportforward.ServePortForward(hw, r, t, q.attrs.name, "", nil, streamIdle, streamCreation, criportforward.SupportedProtocols)
	}
	_ = conn.Close()
	hw.close()
	t.wg.Wait()
}

// dialPortForward opens the API server leg: SPDY tunneled in WebSocket
// first, SPDY when the WebSocket upgrade failed without a Status from the
// API server, as kubectl does.
func (s *Server) dialPortForward(q *request, up *upstream, tok []byte, target *url.URL) (httpstream.Connection, string, error) {
	imp := transport.ImpersonationConfig{UserName: q.d.User, Groups: q.d.Groups}
	if ca, serverName, ok := up.webSocketTLS(); ok {
		cfg := &rest.Config{Host: up.base.Scheme + "://" + up.base.Host, BearerToken: string(tok),
			Impersonate:     rest.ImpersonationConfig{UserName: imp.UserName, Groups: imp.Groups},
			TLSClientConfig: rest.TLSClientConfig{CAData: ca, ServerName: serverName}, Proxy: noProxy}
		d, err := portforward.NewSPDYOverWebsocketDialerForStreaming(target, cfg)
		if err == nil {
			conn, _, err := d.Dial(criportforward.ProtocolV1Name)
			if err == nil {
				return conn, "websocket", nil
			}
			if err := upstreamStatus(err); errors.As(err, new(*apierrors.StatusError)) || !httpstream.IsUpgradeFailure(err) {
				return nil, "", err
			}
			s.cfg.Log.Info("kubernetes port-forward: the API server refused WebSocket; trying SPDY", "target", q.target, "err", err)
		}
	}
	spdyRT, err := spdy.NewRoundTripperWithConfig(spdy.RoundTripperConfig{TLS: up.tlsConfig, Proxier: noProxy, PingPeriod: 5 * time.Second})
	if err != nil {
		return nil, "", fmt.Errorf("spdy transport: %w", err)
	}
	wrapped, err := transport.HTTPWrappersForConfig(&transport.Config{BearerToken: string(tok), Impersonate: imp}, spdyRT)
	if err != nil {
		return nil, "", fmt.Errorf("spdy transport: %w", err)
	}
	client := &http.Client{Transport: wrapped, CheckRedirect: func(*http.Request, []*http.Request) error {
		return errors.New("the API server redirected the port-forward")
	}}
	conn, _, err := clientspdy.NewDialerForStreaming(clientspdy.NewUpgraderForStreaming(spdyRT), client, http.MethodPost, target).
		Dial(criportforward.ProtocolV1Name)
	if err != nil {
		return nil, "", upstreamStatus(err)
	}
	return conn, "spdy", nil
}

// PortForward implements criportforward.PortForwarder: one connection of
// the client's, forwarded as a stream pair of the gateway's own tunnel
// under a request ID of the gateway's.
func (t *pfTunnel) PortForward(_ context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	t.wg.Add(1)
	defer t.wg.Done()
	start := time.Now()
	id := strconv.FormatInt(t.nextID.Add(1)-1, 10)
	var in, out atomic.Int64
	err := t.forward(port, id, stream, &in, &out)
	outcome, msg := audit.Success, fmt.Sprintf("port-forward to %s/%s port %d", t.q.attrs.namespace, t.q.attrs.name, port)
	if why := t.s.endedWhy(t.lr); why != "" {
		outcome, msg = audit.Deny, msg+" ended: "+why
	} else if err != nil {
		outcome, msg = audit.Failure, msg+": "+err.Error()
	}
	d := map[string]any{"action": "kubernetes portforward", "protocol": ProtocolKubernetes, "namespace": t.q.attrs.namespace,
		"pod": t.q.attrs.name, "port": int(port), "request_id": id, "cluster_user": t.q.d.User,
		"bytes_in": in.Load(), "bytes_out": out.Load(), "duration_ms": time.Since(start).Milliseconds(),
		"client_protocol": t.client, "upstream_protocol": t.upstream}
	if len(t.q.d.Groups) > 0 {
		d["cluster_groups"] = t.q.d.Groups
	}
	if t.q.keyID != "" {
		d["key_id"] = t.q.keyID
	}
	if t.lr.session != nil {
		d["session_id"] = t.lr.session.ID
	}
	t.s.audit(store.AuditEvent{Type: EventPortForward, Outcome: outcome, User: t.q.user, Source: t.q.src, Target: t.q.target,
		Account: t.q.d.User, Policy: t.q.d.Policy, Message: msg, Detail: d})
	return err
}

// forward relays one connection: the client's data stream against a data
// stream of the API server leg, and the API server's error stream read
// for what it says. It returns when either side is done.
func (t *pfTunnel) forward(port int32, id string, stream io.ReadWriteCloser, in, out *atomic.Int64) error {
	h := http.Header{}
	h.Set(criportforward.StreamType, criportforward.StreamTypeError)
	h.Set(criportforward.PortHeader, strconv.Itoa(int(port)))
	h.Set(criportforward.PortForwardRequestIDHeader, id)
	errStream, err := t.conn.CreateStream(h)
	if err != nil {
		return fmt.Errorf("error stream to the API server: %w", err)
	}
	// The gateway sends nothing on it.
	_ = errStream.Close()
	errc := make(chan error, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(errStream, 4096))
		switch {
		case err != nil:
			errc <- fmt.Errorf("reading the error stream: %w", err)
		case len(b) > 0:
			errc <- errors.New(string(b))
		default:
			errc <- nil
		}
	}()
	h.Set(criportforward.StreamType, criportforward.StreamTypeData)
	data, err := t.conn.CreateStream(h)
	if err != nil {
		_ = errStream.Reset()
		return fmt.Errorf("data stream to the API server: %w", err)
	}
	defer t.conn.RemoveStreams(data, errStream)
	remoteDone := make(chan struct{})
	go func() {
		// The pod's bytes to the client, until the pod's side closes.
		n, _ := io.Copy(stream, data)
		out.Add(n)
		close(remoteDone)
	}()
	localDone := make(chan struct{})
	go func() {
		// The client's bytes to the pod; its end closes our write side.
		n, _ := io.Copy(data, stream)
		in.Add(n)
		_ = data.Close()
		close(localDone)
	}()
	var ferr error
	select {
	case <-remoteDone:
	case ferr = <-errc:
		errc <- ferr
	}
	// The pod's side is done (or failed): end the client's stream and
	// ours, then wait for both copies.
	_ = stream.Close()
	_ = data.Reset()
	<-remoteDone
	<-localDone
	select {
	case ferr = <-errc:
	case <-time.After(time.Second):
		// The API server said nothing more on the error stream.
		_ = errStream.Reset()
	}
	return ferr
}

// hijackWatch keeps the client's connection once a library hijacked it,
// so that a kill or a revocation can close it whatever runs on it.
type hijackWatch struct {
	http.ResponseWriter
	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

// Hijack implements http.Hijacker.
func (h *hijackWatch) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		_ = c.Close()
		return nil, nil, errors.New("the port-forward was ended")
	}
	h.conn = c
	return c, rw, nil
}

func (h *hijackWatch) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.conn != nil {
		_ = h.conn.Close()
	}
}

// serveTunneled serves kubectl's default: SPDY tunneled in WebSocket
// messages. The WebSocket upgrade is gorilla/websocket's and the tunnel
// client-go's TunnelingConnection (a net.Conn over binary messages), as
// in the API server's own TunnelingHandler (k8s.io/apiserver, not used
// here: it pulls in the API server's metrics and adds some 23 MB to the
// binary). The SPDY server on that connection is cri-streaming's, given
// the request as the SPDY upgrade it stands for and a response writer
// whose Hijack hands it the tunnel. No framing is written here.
func (t *pfTunnel) serveTunneled(w http.ResponseWriter, r *http.Request) {
	up := gwebsocket.Upgrader{Subprotocols: []string{criportforward.WebsocketsSPDYTunnelingPortForwardV1},
		// A bearer token authenticated the request, never a cookie
		// (serve drops them): a cross-site page cannot ride on it.
		CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade answered the client.
		t.s.cfg.Log.Info("kubernetes port-forward: websocket upgrade", "user", t.q.user, "err", err)
		return
	}
	if ws.Subprotocol() != criportforward.WebsocketsSPDYTunnelingPortForwardV1 {
		_ = ws.WriteControl(gwebsocket.CloseMessage, gwebsocket.FormatCloseMessage(gwebsocket.CloseProtocolError,
			"portcullis: port-forward needs "+criportforward.WebsocketsSPDYTunnelingPortForwardV1), time.Now().Add(time.Second))
		_ = ws.Close()
		return
	}
	conn := portforward.NewTunnelingConnection("portcullis", ws)
	defer conn.Close()
	spdyReq := r.Clone(r.Context())
	spdyReq.Method = http.MethodPost
	for _, h := range []string{"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", wsstream.WebSocketProtocolHeader} {
		spdyReq.Header.Del(h)
	}
	spdyReq.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	spdyReq.Header.Set(httpstream.HeaderUpgrade, spdy.HeaderSpdy31)
	spdyReq.Header.Set(httpstream.HeaderProtocolVersion, criportforward.ProtocolV1Name)
	criportforward.ServePortForward(&tunnelWriter{conn: conn, header: http.Header{}}, spdyReq, t, t.q.attrs.name, "", nil,
		streamIdle, streamCreation, criportforward.SupportedProtocols)
}

// tunnelWriter is the response writer of the SPDY upgrade inside a
// WebSocket tunnel: the WebSocket upgrade already answered the client, so
// the SPDY library's 101 has no HTTP response to go to, and its Hijack
// gets the tunnel.
type tunnelWriter struct {
	conn   net.Conn
	header http.Header
}

func (tw *tunnelWriter) Header() http.Header { return tw.header }

// Write refuses: past the WebSocket upgrade there is no HTTP response.
func (tw *tunnelWriter) Write([]byte) (int, error) { return 0, http.ErrHijacked }

// WriteHeader drops the status (the 101 of the SPDY upgrade, or a
// refusal that Write cannot carry either).
func (tw *tunnelWriter) WriteHeader(int) {}

// Hijack implements http.Hijacker.
func (tw *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return tw.conn, bufio.NewReadWriter(bufio.NewReader(tw.conn), bufio.NewWriter(tw.conn)), nil
}
