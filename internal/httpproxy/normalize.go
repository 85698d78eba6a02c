package httpproxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// errBadPath is the refusal of a path the gateway will not judge: the
// upstream might read it otherwise than the gateway would (parser
// differential), so it is never forwarded.
var errBadPath = errors.New("path refused")

// cleanPath checks an escaped request path (as the client sent it, before
// any decoding) and returns it decoded. It refuses what two parsers may
// read differently, rather than pick one reading:
//   - escapes of '/', '\', '%', '.', ';' and control characters (encoded
//     slashes, double encoding, encoded dot segments);
//   - a raw '\', ';' (matrix parameters, Tomcat-style path parameters),
//     control characters or a malformed escape;
//   - empty segments ("//") except a trailing '/', and "." or ".."
//     segments.
//
// The decoded path is what rules match and what the upstream receives
// (escaped again), so both see the same segments.
func cleanPath(escaped string) (string, error) {
	if !strings.HasPrefix(escaped, "/") {
		return "", fmt.Errorf("%w: not an absolute path", errBadPath)
	}
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		switch {
		case c == '%':
			if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
				return "", fmt.Errorf("%w: malformed escape", errBadPath)
			}
			b := unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
			if b == '/' || b == '\\' || b == '%' || b == '.' || b == ';' || b < 0x20 || b == 0x7f {
				return "", fmt.Errorf("%w: encoded %q", errBadPath, string(rune(b)))
			}
			i += 2
		case c == '\\' || c == ';' || c < 0x20 || c == 0x7f || c == '?' || c == '#':
			return "", fmt.Errorf("%w: character %q", errBadPath, string(rune(c)))
		}
	}
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errBadPath, err)
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		switch {
		case s == "" && i != len(segs)-1:
			return "", fmt.Errorf("%w: empty segment", errBadPath)
		case s == "." || s == "..":
			return "", fmt.Errorf("%w: dot segment", errBadPath)
		}
	}
	return p, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// escapePath escapes a clean decoded path for the upstream request line.
func escapePath(p string) string { return (&url.URL{Path: p}).EscapedPath() }

// cleanQuery parses a raw query strictly (no ';' separators, no bad
// escapes) and returns it in canonical form, so that the parameters the
// gateway judged are the only reading the upstream can make.
func cleanQuery(raw string) (url.Values, string, error) {
	if raw == "" {
		return url.Values{}, "", nil
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, "", fmt.Errorf("query refused: %w", err)
	}
	return v, v.Encode(), nil
}

// forwardedRequestHeaders are the only client headers the upstream
// receives: content negotiation and caching. Everything else is dropped,
// so that no credential (Authorization, Cookie, X-API-KEY, vendor session
// headers such as vmware-api-session-id), forwarding claim (Forwarded,
// X-Forwarded-*, X-Real-IP) or hop-by-hop header can pass, whatever its
// name or case: an allow list does not need to know every vendor's header.
var forwardedRequestHeaders = []string{
	"Accept", "Accept-Language", "Content-Type", "Soapaction", "User-Agent",
	"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "Cache-Control", "Range",
}

// upstreamHeader builds the upstream request's header from the client's.
func upstreamHeader(in http.Header) http.Header {
	out := make(http.Header, len(forwardedRequestHeaders)+2)
	for _, k := range forwardedRequestHeaders {
		if v, ok := in[k]; ok {
			out[k] = append([]string(nil), v...)
		}
	}
	return out
}

// droppedResponseHeaders never reach the client: the upstream's session
// (Set-Cookie, vendor session ids) is the gateway's, and hop-by-hop
// headers belong to one connection.
var droppedResponseHeaders = []string{
	"Set-Cookie", "Set-Cookie2", "Vmware-Api-Session-Id", "Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Www-Authenticate", "Alt-Svc",
	"Strict-Transport-Security", "Content-Length", "Clear-Site-Data",
}

// clientHeader copies the upstream's response header for the client,
// dropping its session and hop-by-hop headers and any header the upstream
// named in Connection.
func clientHeader(dst, src http.Header) {
	drop := map[string]bool{}
	for _, k := range droppedResponseHeaders {
		drop[k] = true
	}
	for _, v := range src.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			drop[http.CanonicalHeaderKey(strings.TrimSpace(f))] = true
		}
	}
	for k, v := range src {
		if drop[k] || strings.Contains(strings.ToLower(k), "session") {
			continue
		}
		dst[k] = append([]string(nil), v...)
	}
}
