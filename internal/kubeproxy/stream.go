package kubeproxy

// Exec and attach are terminated on both sides: the gateway serves the
// client's stream itself and runs a stream of its own to the API server,
// so that it sees (and records) stdin, stdout, stderr, resizes and the exit
// status, and can end the stream on both sides.
//
//   - Client leg: WebSocket v5.channel.k8s.io (kubectl's default) is served
//     with k8s.io/streaming's wsstream, the library the API server itself
//     uses for it (serveWebSocket is the same glue as the API server's
//     stream translator, which is not exported). SPDY (v4..v1) and older
//     WebSocket protocols are served by k8s.io/cri-streaming's
//     remotecommand, the kubelet's library, through the Executor and
//     Attacher interfaces streamSession implements.
//   - API server leg: k8s.io/client-go's remotecommand executor, WebSocket
//     (v5) first and SPDY when the upgrade fails without an answer from the
//     API server, with the gateway's token and the decided impersonation on
//     the upgrade request.
//
// The API server leg is opened first, and the client's upgrade is answered
// only once the API server upgraded its own: a refusal (RBAC's 403, no such
// pod) or an API server out of reach is answered to the client's upgrade
// request as a Status with its HTTP code, as the API server answers an
// exec it refuses. Past the upgrade there is no way to say it: a SPDY
// client's error stream would carry it as an InternalError ("Internal
// error occurred: error executing command in container: ..."), a
// WebSocket's as a bare message without its reason. Until the client's
// streams are open, the API server leg's streams wait for them (upLeg).
//
// No framing is written here: every byte on either wire goes through those
// libraries.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	constants "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/rest"
	clientremote "k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport"
	clientspdy "k8s.io/client-go/transport/spdy"
	clientexec "k8s.io/client-go/util/exec"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/portcullis/portcullis/internal/recording"
)

const (
	// streamIdle ends a stream with no traffic at all for this long (the
	// kubelet's and the API server's own value).
	streamIdle = 4 * time.Hour
	// streamCreation bounds the wait for a SPDY client's streams.
	streamCreation = 30 * time.Second
	// statusWriteDeadline bounds writing the final status to a client
	// that stopped reading.
	statusWriteDeadline = 10 * time.Second
)

// streamSession is one exec or attach being relayed.
type streamSession struct {
	s   *Server
	q   *request
	lr  *liveRequest
	up  *upstream
	tok []byte
	// target is the API server URL of the same request (path and query
	// as the client sent and the policy decided them).
	target *url.URL
	rec    *recording.Recorder // nil: not recorded
	input  bool                // record stdin

	bytesIn, bytesOut atomic.Int64
	// leg is the API server leg once it upgraded; nil before, and for a
	// client request that cannot be upgraded (the library answers it).
	leg *upLeg
	// legErr is why the API server leg did not open, when the client's
	// stream is opened to say so.
	legErr error
	// client is the client leg's protocol; under mu, upstream is the API
	// server leg's ("websocket" or "spdy") and err what it ended with (an
	// exit code is a clientexec.CodeExitError).
	client   string
	mu       sync.Mutex
	upstream string
	err      error
	// ran: the client's stream opened and the relay ran.
	ran bool
	// answered is the HTTP code the client's upgrade request was answered
	// with when the API server leg did not open (0: it did).
	answered int
}

// ExecInContainer implements remotecommand.Executor (the SPDY client leg).
func (ss *streamSession) ExecInContainer(_ context.Context, _, _, _ string, _ []string, in io.Reader, out, errOut io.WriteCloser,
	_ bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	return ss.relay(in, out, errOut, resize)
}

// AttachContainer implements remotecommand.Attacher.
func (ss *streamSession) AttachContainer(_ context.Context, _, _, _ string, in io.Reader, out, errOut io.WriteCloser,
	_ bool, resize <-chan remotecommand.TerminalSize) error {
	return ss.relay(in, out, errOut, resize)
}

// serve opens the API server leg, then terminates the client's stream and
// relays it. It returns when the stream ended on both sides.
func (ss *streamSession) serve(w http.ResponseWriter, r *http.Request, opts *remotecommand.Options) {
	switch {
	case wsstream.IsWebSocketRequestWithStreamCloseProtocol(r):
		ss.client = "websocket"
	case wsstream.IsWebSocketRequest(r):
		ss.client = "websocket (v4 or older)"
	default:
		ss.client = "spdy"
	}
	if upgradable(r) {
		l := ss.openUpstream(r.Context(), opts)
		defer func() {
			// The client's stream did not open, or the relay is over:
			// the API server leg ends with it.
			l.abandon()
			<-l.done
		}()
		err := l.waitUpgrade()
		switch {
		case err == nil:
			ss.leg = l
		case ss.client == "websocket" && !errors.As(upstreamStatus(err), new(*apierrors.StatusError)):
			// kubectl retries any upgrade a WebSocket client sees
			// refused over SPDY: a session the gateway ended, or an
			// API server out of reach, would run (or wait) again. The
			// stream is opened to say why on it instead; the API
			// server's own refusal is answered as it answers it.
			ss.legErr = err
		default:
			ss.refuseUpgrade(w, err)
			return
		}
	}
	ss.serveClient(w, r, opts)
}

// serveClient serves the client leg with the library of its protocol
// (which answers an upgrade it refuses itself).
func (ss *streamSession) serveClient(w http.ResponseWriter, r *http.Request, opts *remotecommand.Options) {
	if ss.client == "websocket" {
		ss.serveWebSocket(w, r, opts)
		return
	}
	container := r.URL.Query().Get("container")
	if ss.q.attrs.subresource == "attach" {
		remotecommand.ServeAttach(w, r, ss, ss.q.attrs.name, "", container, opts, streamIdle, streamCreation,
			remotecommand.SupportedStreamingProtocols)
		return
	}
	remotecommand.ServeExec(w, r, ss, ss.q.attrs.name, "", container, r.URL.Query()["command"], opts, streamIdle, streamCreation,
		remotecommand.SupportedStreamingProtocols)
}

// upgradable reports whether the client's request is an upgrade the
// client leg's libraries would accept. One they refuse (a plain POST, no
// protocol in common) is answered by them, and never reaches the API
// server: it is checked here as they check it, since a refusal after the
// API server leg opened would run the command with no client to see it.
func upgradable(r *http.Request) bool {
	if wsstream.IsWebSocketRequest(r) {
		return webSocketUpgradable(r)
	}
	if !httpstream.IsUpgradeRequest(r) ||
		!strings.Contains(strings.ToLower(r.Header.Get(httpstream.HeaderUpgrade)), strings.ToLower(spdy.HeaderSpdy31)) {
		return false
	}
	// The library's own negotiation, its answer to a refusal discarded.
	_, err := httpstream.Handshake(r, &discardWriter{header: http.Header{}}, remotecommand.SupportedStreamingProtocols)
	return err == nil
}

// webSocketUpgradable reports whether golang.org/x/net/websocket, under
// wsstream, would answer the WebSocket request 101: its handshake checks
// (GET, a key, version 13, a URL it can parse), then a subprotocol in
// common (v5 for serveWebSocket, the kubelet library's older ones or none
// for the other client leg).
func webSocketUpgradable(r *http.Request) bool {
	if r.Method != http.MethodGet || r.Header.Get("Sec-Websocket-Key") == "" || r.Header.Get("Sec-Websocket-Version") != "13" {
		return false
	}
	if _, err := url.ParseRequestURI("wss://" + r.Host + r.URL.RequestURI()); err != nil {
		return false
	}
	if wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) {
		return true
	}
	requested := []string{""}
	if p := strings.TrimSpace(r.Header.Get(wsstream.WebSocketProtocolHeader)); p != "" {
		requested = strings.Split(p, ",")
	}
	for _, p := range requested {
		switch strings.TrimSpace(p) {
		case "", wsstream.ChannelWebSocketProtocol, wsstream.Base64ChannelWebSocketProtocol,
			"v4." + wsstream.ChannelWebSocketProtocol, "v4." + wsstream.Base64ChannelWebSocketProtocol:
			return true
		}
	}
	return false
}

// discardWriter is a response writer that keeps nothing.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// refuseUpgrade answers the client's upgrade request, without upgrading
// it, with why the API server leg did not open: the API server's own
// Status and code, why the gateway ended the session, or the gateway's
// 502 (504 when the API server did not answer).
func (ss *streamSession) refuseUpgrade(w http.ResponseWriter, err error) {
	err = upstreamStatus(err)
	var se *apierrors.StatusError
	code := http.StatusBadGateway
	switch why := ss.s.endedWhy(ss.lr); {
	case why != "":
		err = fmt.Errorf("portcullis: session ended: %s", why)
		code = http.StatusForbidden
		writeStatus(w, code, "session ended: "+why)
	case errors.As(err, &se):
		code = writeAPIStatus(w, se.Status())
	default:
		if errors.Is(err, errNoUpgradeAnswer) {
			code = http.StatusGatewayTimeout
		}
		ss.q.upstreamErr = err
		writeStatus(w, code, "the gateway cannot open the stream to the API server: "+err.Error())
	}
	ss.mu.Lock()
	ss.err, ss.answered = err, code
	ss.mu.Unlock()
}

// serveWebSocket serves a v5.channel.k8s.io client: channels 0-4 are
// stdin, stdout, stderr, the error (status) channel and resize; the
// library handles v5's close signal (stdin ended).
func (ss *streamSession) serveWebSocket(w http.ResponseWriter, r *http.Request, opts *remotecommand.Options) {
	channels := make([]wsstream.ChannelType, 5)
	channels[constants.StreamStdIn] = pick(opts.Stdin, wsstream.ReadChannel)
	channels[constants.StreamStdOut] = pick(opts.Stdout, wsstream.WriteChannel)
	channels[constants.StreamStdErr] = pick(opts.Stderr, wsstream.WriteChannel)
	channels[constants.StreamErr] = wsstream.WriteChannel
	channels[constants.StreamResize] = wsstream.ReadChannel
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		constants.StreamProtocolV5Name: {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(streamIdle)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		ss.s.cfg.Log.Info("kubernetes stream: websocket open", "user", ss.q.user, "err", err)
		return
	}
	defer conn.Close()
	// An empty message on the lowest writable channel tells the client
	// the stream is up (what the API server does).
	first := constants.StreamErr
	switch {
	case opts.Stdout:
		first = constants.StreamStdOut
	case opts.Stderr:
		first = constants.StreamStdErr
	}
	if _, err := streams[first].Write(nil); err != nil {
		return
	}
	var resize chan remotecommand.TerminalSize
	if opts.TTY {
		resize = make(chan remotecommand.TerminalSize)
		go readResizes(r.Context(), streams[constants.StreamResize], resize)
	}
	var in io.Reader
	var out, errOut io.WriteCloser
	if opts.Stdin {
		in = streams[constants.StreamStdIn]
	}
	if opts.Stdout {
		out = streams[constants.StreamStdOut]
	}
	if opts.Stderr {
		errOut = streams[constants.StreamStdErr]
	}
	err = ss.relay(in, out, errOut, resize)
	st := statusOf(err)
	b, merr := json.Marshal(st)
	if merr != nil {
		return
	}
	conn.SetWriteDeadline(statusWriteDeadline)
	_, _ = streams[constants.StreamErr].Write(b)
}

func pick(on bool, t wsstream.ChannelType) wsstream.ChannelType {
	if on {
		return t
	}
	return wsstream.IgnoreChannel
}

// readResizes decodes the client's resize messages (JSON TerminalSize)
// until the stream ends; it closes ch.
func readResizes(ctx context.Context, r io.Reader, ch chan<- remotecommand.TerminalSize) {
	defer close(ch)
	dec := json.NewDecoder(r)
	for {
		var size remotecommand.TerminalSize
		if err := dec.Decode(&size); err != nil {
			return
		}
		select {
		case ch <- size:
		case <-ctx.Done():
			return
		}
	}
}

// statusOf is the final status a WebSocket client gets: success, the exit
// code, the API server's own Status, or an error (kubectl prints its
// message).
func statusOf(err error) metav1.Status {
	var exit clientexec.CodeExitError
	var se *apierrors.StatusError
	switch {
	case err == nil:
		return metav1.Status{Status: metav1.StatusSuccess}
	case errors.As(err, &exit) && exit.Exited():
		return metav1.Status{Status: metav1.StatusFailure, Reason: constants.NonZeroExitCodeReason,
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: constants.ExitCodeCauseType, Message: strconv.Itoa(exit.ExitStatus())}}},
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", exit)}
	case errors.As(err, &se):
		return se.Status()
	default:
		// Why the gateway ended the stream or could not run it, as is:
		// an InternalError's message would say "Internal error occurred:
		// ..." of a kill or of an API server out of reach.
		return metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Message: err.Error()}
	}
}

// relay binds the client's streams to the API server leg and waits for
// it to end. Its error is what the client's status says: a
// clientexec.CodeExitError for an exit code (cri-streaming turns it into
// the NonZeroExitCode status), the API server's Status, or why the gateway
// ended the stream.
func (ss *streamSession) relay(in io.Reader, out, errOut io.Writer, resize <-chan remotecommand.TerminalSize) error {
	l := ss.leg
	var err error
	if l == nil {
		err = ss.legErr
		if err == nil {
			// The client's libraries upgraded a request upgradable
			// said they would refuse: nothing was opened to relay to.
			err = errors.New("the stream to the API server did not open")
		}
		if ss.s.endedWhy(ss.lr) == "" {
			ss.q.upstreamErr = err
		}
	} else {
		l.bind(in, out, errOut, resize)
		<-l.done
		err = upstreamStatus(l.err)
	}
	ss.mu.Lock()
	ss.ran = true
	ss.err = err
	ss.mu.Unlock()
	if why := ss.s.endedWhy(ss.lr); why != "" {
		return fmt.Errorf("portcullis: session ended: %s", why)
	}
	return err
}

// upLeg is the API server leg of a stream, opened before the client's.
// Its streams are stand-ins that wait until the client's are bound: what
// the API server sends (output) or asks for (stdin, resizes) before then
// waits.
type upLeg struct {
	ctx    context.Context
	cancel context.CancelFunc
	// upgraded is closed once the API server upgraded the stream.
	upgraded    chan struct{}
	upgradeOnce sync.Once
	// done is closed when the leg ended, err saying how.
	done chan struct{}
	err  error
	// bound is closed once the client's streams below are set (opened
	// true), or when they never will be (the client's stream did not
	// open).
	bound       chan struct{}
	bindOnce    sync.Once
	opened      bool
	in          io.Reader
	out, errOut io.Writer
	resize      <-chan remotecommand.TerminalSize
}

// openUpstream starts the API server leg for the streams opts asks for. It
// ends when ctx does, or abandon is called.
func (ss *streamSession) openUpstream(ctx context.Context, opts *remotecommand.Options) *upLeg {
	ctx, cancel := context.WithCancel(ctx)
	l := &upLeg{ctx: ctx, cancel: cancel, upgraded: make(chan struct{}), done: make(chan struct{}), bound: make(chan struct{})}
	o := clientremote.StreamOptions{Tty: opts.TTY}
	if opts.Stdin {
		o.Stdin = &inputTap{r: lateReader{l}, ss: ss}
	}
	if opts.Stdout {
		o.Stdout = &outputTap{w: lateWriter{l: l, w: &l.out}, ss: ss, cancel: cancel}
	}
	if opts.Stderr {
		o.Stderr = &outputTap{w: lateWriter{l: l, w: &l.errOut}, ss: ss, cancel: cancel}
	}
	if opts.TTY {
		o.TerminalSizeQueue = &sizeQueue{l: l, ss: ss}
	}
	go func() {
		defer close(l.done)
		l.err = ss.stream(ctx, o, func() { l.upgradeOnce.Do(func() { close(l.upgraded) }) })
	}()
	return l
}

// waitUpgrade waits until the API server upgraded the stream (nil) or the
// leg ended before it did (why).
func (l *upLeg) waitUpgrade() error {
	select {
	case <-l.upgraded:
		return nil
	case <-l.done:
		select {
		case <-l.upgraded:
			// Upgraded and already over (its output waits for the
			// client): the client gets it all.
			return nil
		default:
		}
		if l.err == nil {
			return errors.New("the stream to the API server ended before it opened")
		}
		return l.err
	}
}

// bind gives the leg the client's streams.
func (l *upLeg) bind(in io.Reader, out, errOut io.Writer, resize <-chan remotecommand.TerminalSize) {
	l.bindOnce.Do(func() {
		l.in, l.out, l.errOut, l.resize, l.opened = in, out, errOut, resize, true
		close(l.bound)
	})
}

// abandon ends the leg: the client's streams are not coming (when not
// bound yet), or the relay is over.
func (l *upLeg) abandon() {
	l.bindOnce.Do(func() { close(l.bound) })
	l.cancel()
}

// errClientGone: the client's stream did not open.
var errClientGone = errors.New("the client's stream did not open")

// wait blocks until the client's streams are bound; an error when they
// never will be or the leg ended.
func (l *upLeg) wait() error {
	select {
	case <-l.bound:
		if !l.opened {
			return errClientGone
		}
		return nil
	case <-l.ctx.Done():
		return l.ctx.Err()
	}
}

// lateReader is the API server leg's stdin: the client's, once bound.
type lateReader struct{ l *upLeg }

func (r lateReader) Read(p []byte) (int, error) {
	if err := r.l.wait(); err != nil {
		return 0, err
	}
	if r.l.in == nil {
		return 0, io.EOF
	}
	return r.l.in.Read(p)
}

// lateWriter is an output stream of the API server leg: the client's
// (*w), once bound.
type lateWriter struct {
	l *upLeg
	w *io.Writer
}

func (lw lateWriter) Write(p []byte) (int, error) {
	if err := lw.l.wait(); err != nil {
		return 0, err
	}
	if *lw.w == nil {
		return 0, errors.New("the client did not open this stream")
	}
	return (*lw.w).Write(p)
}

// upstreamStatus returns the API server's Status when its answer to the
// upgrade was one (RBAC's 403, a missing pod), so the client sees it as
// is.
func upstreamStatus(err error) error {
	var uf *httpstream.UpgradeFailureError
	if errors.As(err, &uf) {
		var se *apierrors.StatusError
		if errors.As(uf.Cause, &se) {
			return se
		}
	}
	return err
}

// stream runs the API server leg: WebSocket first, SPDY when the
// WebSocket upgrade failed without a Status from the API server (a proxy
// or an API server that does not speak it), as kubectl does.
// upgraded is called when the API server upgraded the stream.
func (ss *streamSession) stream(ctx context.Context, o clientremote.StreamOptions, upgraded func()) error {
	imp := transport.ImpersonationConfig{UserName: ss.q.d.User, Groups: ss.q.d.Groups}
	if ca, serverName, ok := ss.up.webSocketTLS(); ok {
		cfg := &rest.Config{Host: ss.up.base.Scheme + "://" + ss.up.base.Host, BearerToken: string(ss.tok),
			Impersonate:     rest.ImpersonationConfig{UserName: imp.UserName, Groups: imp.Groups},
			TLSClientConfig: rest.TLSClientConfig{CAData: ca, ServerName: serverName}, Proxy: noProxy}
		wd := &watchdog{limit: ss.s.cfg.DialTimeout, upgraded: upgraded}
		cfg.WrapTransport = wd.wrap
		ws, err := clientremote.NewWebSocketExecutorForProtocols(cfg, http.MethodGet, ss.target.String(), constants.StreamProtocolV5Name)
		if err == nil {
			ss.setUpstream("websocket")
			err = wd.err(ws.StreamWithContext(ctx, o))
			if !httpstream.IsUpgradeFailure(err) || errors.As(upstreamStatus(err), new(*apierrors.StatusError)) {
				return err
			}
			ss.s.cfg.Log.Info("kubernetes stream: the API server refused WebSocket; trying SPDY", "target", ss.q.target, "err", err)
		}
	}
	spdyRT, err := spdy.NewRoundTripperWithConfig(spdy.RoundTripperConfig{TLS: ss.up.tlsConfig, Proxier: noProxy, PingPeriod: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("spdy transport: %w", err)
	}
	wrapped, err := transport.HTTPWrappersForConfig(&transport.Config{BearerToken: string(ss.tok), Impersonate: imp}, spdyRT)
	if err != nil {
		return fmt.Errorf("spdy transport: %w", err)
	}
	wd := &watchdog{limit: ss.s.cfg.DialTimeout, upgraded: upgraded}
	ex, err := clientremote.NewSPDYExecutorRejectRedirects(wd.wrap(wrapped), clientspdy.NewUpgraderForStreaming(spdyRT), http.MethodPost, ss.target)
	if err != nil {
		return fmt.Errorf("spdy executor: %w", err)
	}
	ss.setUpstream("spdy")
	return wd.err(ex.StreamWithContext(ctx, o))
}

// watchdog bounds the API server leg's connection and upgrade by
// Config.DialTimeout: the libraries set no deadline on the upgrade's
// answer (nor, for WebSocket, on the dial and TLS handshake), so an API
// server that accepts and never answers would hold the session (and a
// client that hung up meanwhile, which nothing reads from yet) until a
// kill. wrap is the upgrade request's round tripper with that deadline;
// err names it.
type watchdog struct {
	limit time.Duration
	fired atomic.Bool
	// upgraded, when set, is called when the API server answers the
	// upgrade with 101 Switching Protocols.
	upgraded func()
}

// errNoUpgradeAnswer: the API server did not answer the upgrade in time.
var errNoUpgradeAnswer = errors.New("the API server did not answer the stream's upgrade")

// wrap gives the upgrade request a deadline (the WebSocket dialer sets it
// on its connection, the SPDY dialer on its dial) and stops waiting for
// an answer when it passes. A SPDY dial that got through and then hears
// nothing is left to its goroutine, which ends when the API server
// answers or closes.
func (wd *watchdog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		dctx, cancel := context.WithTimeout(r.Context(), wd.limit)
		type answer struct {
			resp *http.Response
			err  error
		}
		ch := make(chan answer, 1)
		go func() {
			resp, err := rt.RoundTrip(r.WithContext(dctx))
			ch <- answer{resp, err}
		}()
		select {
		case a := <-ch:
			cancel()
			// The dialer's own timeout may answer a moment before the
			// context says so.
			if dl, _ := dctx.Deadline(); a.err != nil && !time.Now().Before(dl) && r.Context().Err() == nil {
				wd.fired.Store(true)
			}
			if a.err == nil && a.resp.StatusCode == http.StatusSwitchingProtocols && wd.upgraded != nil {
				wd.upgraded()
			}
			return a.resp, a.err
		case <-dctx.Done():
			cancel()
			if r.Context().Err() == nil {
				wd.fired.Store(true)
			}
			go func() {
				if a := <-ch; a.resp != nil {
					_ = a.resp.Body.Close()
				}
			}()
			return nil, fmt.Errorf("upgrade: %w", dctx.Err())
		}
	})
}

// err says why the stream ended when the deadline ended it.
func (wd *watchdog) err(err error) error {
	if err != nil && wd.fired.Load() {
		return fmt.Errorf("%w within %s", errNoUpgradeAnswer, wd.limit)
	}
	return err
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (ss *streamSession) setUpstream(p string) {
	ss.mu.Lock()
	ss.upstream = p
	ss.mu.Unlock()
}

// noProxy: the gateway reaches the API server directly, whatever the
// environment says.
func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// webSocketTLS returns what client-go's WebSocket transport needs to
// verify the API server: it takes a CA bundle and a name, not a
// tls.Config, so a pinned certificate is given as its own CA (the one
// certificate whose SHA-256 is the pin, fetched once over a pinned
// handshake) with a name it holds. ok false: no such name (the stream then
// goes over SPDY, whose transport takes the pinned tls.Config).
func (up *upstream) webSocketTLS() (ca []byte, serverName string, ok bool) {
	if up.tlsConfig.VerifyConnection == nil {
		return []byte(up.caPEM), "", true
	}
	up.pinMu.Lock()
	defer up.pinMu.Unlock()
	if up.pinnedLeaf == nil {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: up.tlsConfig}
		c, err := d.Dial("tcp", up.base.Host)
		if err != nil {
			return nil, "", false
		}
		up.pinnedLeaf = c.(*tls.Conn).ConnectionState().PeerCertificates[0]
		_ = c.Close()
	}
	leaf := up.pinnedLeaf
	name := up.base.Hostname()
	if leaf.VerifyHostname(name) != nil {
		if len(leaf.DNSNames) == 0 {
			return nil, "", false
		}
		name = leaf.DNSNames[0]
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), name, true
}

// inputTap records what the client sends to the command's stdin.
type inputTap struct {
	r  io.Reader
	ss *streamSession
}

func (t *inputTap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.ss.bytesIn.Add(int64(n))
		if t.ss.rec != nil && t.ss.input {
			t.ss.rec.Input(p[:n])
		}
	}
	return n, err
}

// outputTap records output before the client gets it; a client that
// cannot take it ends the stream.
type outputTap struct {
	w      io.Writer
	ss     *streamSession
	cancel context.CancelFunc
}

func (t *outputTap) Write(p []byte) (int, error) {
	if t.ss.rec != nil {
		t.ss.rec.Output(p)
	}
	t.ss.bytesOut.Add(int64(len(p)))
	n, err := t.w.Write(p)
	if err != nil {
		t.cancel()
	}
	return n, err
}

// sizeQueue passes the client's terminal sizes to the API server leg,
// recording each.
type sizeQueue struct {
	l  *upLeg
	ss *streamSession
}

// Next implements clientremote.TerminalSizeQueue; nil ends the queue.
func (q *sizeQueue) Next() *clientremote.TerminalSize {
	if q.l.wait() != nil || q.l.resize == nil {
		return nil
	}
	select {
	case size, ok := <-q.l.resize:
		if !ok {
			return nil
		}
		if q.ss.rec != nil {
			q.ss.rec.Resize(int(size.Width), int(size.Height))
		}
		return &clientremote.TerminalSize{Width: size.Width, Height: size.Height}
	case <-q.l.ctx.Done():
		return nil
	}
}
