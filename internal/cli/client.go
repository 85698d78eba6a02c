package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis/portcullis/internal/api"
)

// client calls the gateway's API over its admin unix socket.
type client struct {
	socket string
	hc     *http.Client
	// base is the URL requests go to: a placeholder host for the socket,
	// the gateway's HTTPS URL for a remote client (remote.go), whose
	// apiKey goes in every request.
	base   string
	apiKey string
}

func newClient(socket string) *client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: 5 * time.Second}
			return d.DialContext(ctx, "unix", socket)
		},
		// Proxies from the environment must not see admin requests.
		Proxy: nil,
	}
	return &client{socket: socket, hc: &http.Client{Transport: tr}, base: "http://portcullis"}
}

// apiError is an answer with an error status; msg is the gateway's
// one-line explanation.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// exitCode maps an answer to DESIGN's exit codes: what the gateway called
// bad input is the user's to fix (2); a refusal or a missing resource is
// "no" (1); the rest is a failure (3).
func (e *apiError) exitCode() int {
	switch {
	case e.status == http.StatusBadRequest, e.status == http.StatusRequestEntityTooLarge,
		e.status == http.StatusUnsupportedMediaType, e.status == http.StatusUnprocessableEntity:
		return exitUsage
	case e.status == http.StatusUnauthorized, e.status == http.StatusForbidden,
		e.status == http.StatusNotFound, e.status == http.StatusConflict:
		return exitNo
	default:
		return exitFailure
	}
}

// do sends a request and decodes a 2xx JSON answer into out (unless nil).
// Every error it returns is an *exitError with the right exit code.
func (c *client) do(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, out any) error {
	_, err := c.send(ctx, method, path, query, contentType, body, out)
	return err
}

// send is do that also returns the answer's headers (nil on error), for
// the listings that name their next page there.
func (c *client) send(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, out any) (http.Header, error) {
	// path is already escaped (resourcePath); for the socket the host is
	// a placeholder, the transport always dials the socket.
	u := c.base + path
	if q := query.Encode(); q != "" {
		u += "?" + q
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, &exitError{code: exitFailure, msg: fmt.Sprintf("build request: %v", err)}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := readAPIError(resp)
		return nil, &exitError{code: ae.exitCode(), msg: ae.msg}
	}
	if out == nil {
		return resp.Header, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, &exitError{code: exitFailure, msg: fmt.Sprintf("unreadable answer from the gateway to %s %s: %v", method, path, err)}
	}
	return resp.Header, nil
}

// transportError explains why the request did not get an answer.
func (c *client) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("interrupted: %v", ctx.Err())}
	}
	if c.socket == "" {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("request to the gateway at %s failed: %v", c.base, err)}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		if errors.Is(err, syscall.EACCES) {
			return &exitError{code: exitFailure, msg: fmt.Sprintf(
				"permission denied on the admin socket %s: run the CLI as the user that runs the gateway", c.socket)}
		}
		return &exitError{code: exitFailure, msg: fmt.Sprintf(
			"cannot reach the gateway at %s: is `portcullis serve` running? (--data-dir / %s)", c.socket, envDataDir)}
	}
	return &exitError{code: exitFailure, msg: fmt.Sprintf("request to the gateway at %s failed: %v", c.socket, err)}
}

// readAPIError reads an error answer. The API always answers {"error":
// ...}; anything else (another program on the socket) is shown by its
// status and first line.
func readAPIError(resp *http.Response) *apiError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var er api.ErrorResponse
	if json.Unmarshal(b, &er) == nil && er.Error.Message != "" {
		return &apiError{status: resp.StatusCode, msg: er.Error.Message}
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if line == "" {
		line = http.StatusText(resp.StatusCode)
	}
	return &apiError{status: resp.StatusCode, msg: fmt.Sprintf("unexpected answer from the gateway (HTTP %d): %s", resp.StatusCode, line)}
}

// resourcePath is the API path of a kind, or of one resource of it. Each
// segment of an Account's TARGET/NAME is escaped on its own: the slash is
// part of the path the API expects.
func resourcePath(kind, name string) string {
	p := "/api/v1/resources/" + url.PathEscape(kind)
	if name != "" {
		segs := strings.Split(name, "/")
		for i, s := range segs {
			segs[i] = url.PathEscape(s)
		}
		p += "/" + strings.Join(segs, "/")
	}
	return p
}
