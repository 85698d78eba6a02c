package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/resource"
)

const kubeCredentialUsage = `Usage: portcullis kube-credential --gateway URL --target NAME [--user NAME]
                                  [--password-file FILE] [--ttl DURATION] [--ca-file FILE]

The exec credential plugin of a 'portcullis kubeconfig --exec' kubeconfig:
kubectl runs it and reads an ExecCredential (client.authentication.k8s.io/v1)
from its standard output. It signs the user in through the gateway's HTTPS
API (POST /api/v1/kube/credentials) and prints the short-lived token the
gateway issues (an access API key of the user that expires), with its
expirationTimestamp.

The user name (unless --user), the password and, when the user or a policy
requires one, the verification code are read from the terminal, without
echo for the secrets; never from the command line. For scripts, where
standard input is no terminal, the password comes from the first line of
--password-file or $PORTCULLIS_PASSWORD_FILE (a verification code cannot
be scripted).

The token is cached, mode 0600, in $XDG_CACHE_HOME/portcullis (default
~/.cache/portcullis) until it expires, and checked with the gateway before
it is handed out again, so that a revoked one is replaced by a new sign-in.
The token is sent over TLS only: the gateway's certificate is checked
against --ca-file ($PORTCULLIS_CA_FILE), else the cluster CA kubectl hands
the plugin (provideClusterInfo), else the system's roots. A failed sign-in
prints one error and exits 3; a password file refused less than a minute
ago is not sent again (kubectl runs the plugin once per failed request).

Flags:
  --gateway URL         the gateway's HTTPS address, https://HOST[:PORT]
                        (required; $PORTCULLIS_GATEWAY)
  --target NAME         the kubernetes target (required)
  --user NAME           the gateway user; default: asked on the terminal
  --password-file FILE  read the password from FILE's first line
                        (default $PORTCULLIS_PASSWORD_FILE)
  --ttl DURATION        the token's lifetime, 5m to 12h (default 8h)
  --ca-file FILE        PEM of the CA of the gateway's certificate
`

// envPasswordFile names the file the plugin reads the password from when
// no terminal is at hand.
const envPasswordFile = "PORTCULLIS_PASSWORD_FILE"

// execInfo is the part of KUBERNETES_EXEC_INFO the plugin reads.
type execInfo struct {
	Spec struct {
		Cluster *struct {
			Server string `json:"server"`
			CAData []byte `json:"certificate-authority-data"`
		} `json:"cluster"`
		Interactive bool `json:"interactive"`
	} `json:"spec"`
}

// kubeToken is a cached credential.
type kubeToken struct {
	Token     string    `json:"token"`
	KeyID     string    `json:"key_id"`
	ExpiresAt time.Time `json:"expires_at"`
	User      string    `json:"user"`
}

func runKubeCredential(e *env, args []string) error {
	fs := e.flags()
	var target, user, pwFile string
	var ttl time.Duration
	fs.StringVar(&target, "target", "", "")
	fs.StringVar(&user, "user", "", "")
	fs.StringVar(&pwFile, "password-file", "", "")
	fs.DurationVar(&ttl, "ttl", 0, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	base := e.gateway
	if base == "" {
		base = os.Getenv(envGateway)
	}
	if pwFile == "" {
		pwFile = os.Getenv(envPasswordFile)
	}
	u, uerr := url.Parse(base)
	switch {
	case len(pos) > 0:
		return usageErr("unexpected argument %q", pos[0])
	case base == "":
		return usageErr("--gateway is required (https://HOST[:PORT])")
	case uerr != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
		return usageErr("--gateway %q: want https://HOST[:PORT] (the password and the token go over TLS only)", base)
	case !resource.ValidName(target):
		return usageErr("--target %q: a kubernetes target name is required", target)
	case ttl != 0 && (ttl < 5*time.Minute || ttl > 12*time.Hour):
		return usageErr("--ttl %s: between 5m and 12h", ttl)
	case len(user) > 256 || strings.ContainsAny(user, "\x00\r\n"):
		return usageErr("--user %q is not a user name", user)
	}
	gateway := "https://" + u.Host
	hc, err := kubeCredentialClient(e.caFile)
	if err != nil {
		return err
	}
	cache := kubeCachePath(gateway, target, user)
	if tok, ok := readKubeToken(cache); ok && tok.ExpiresAt.After(time.Now().Add(time.Minute)) {
		switch valid, err := checkKubeToken(e.ctx, hc, gateway, tok.Token); {
		case err != nil:
			// The gateway is unreachable: kubectl will say so with
			// the token as well as without.
			return printExecCredential(e.stdout, tok)
		case valid:
			return printExecCredential(e.stdout, tok)
		}
		_ = os.Remove(cache)
	}
	// kubectl runs the plugin again for each request that failed (six
	// times for one `get pods`): a password file the gateway refused a
	// moment ago is not sent again, so that one run spends one failure
	// of the source's budget, not six. Only the file's identity is kept,
	// never anything of the password.
	refused := cache + ".refused"
	mark := passwordFileMark(pwFile)
	if mark != "" && cache != "" {
		if b, err := os.ReadFile(refused); err == nil {
			if at, m, ok := strings.Cut(string(b), " "); ok && m == mark {
				if t, err := time.Parse(time.RFC3339, at); err == nil && time.Since(t) < time.Minute && time.Since(t) >= 0 {
					return &exitError{code: exitFailure, msg: "sign-in refused: wrong user name or password (this password file was refused at " +
						t.Local().Format("15:04:05") + "; change it, or wait a minute)"}
				}
			}
		}
	}
	tok, err := kubeSignIn(e, hc, gateway, target, user, pwFile, ttl)
	if errors.Is(err, errWrongPassword) && mark != "" && cache != "" {
		if os.MkdirAll(filepath.Dir(refused), 0o700) == nil {
			_ = os.WriteFile(refused, []byte(time.Now().UTC().Format(time.RFC3339)+" "+mark), 0o600)
		}
	}
	if err != nil {
		return err
	}
	_ = os.Remove(refused)
	if err := writeKubeToken(cache, tok); err != nil {
		fmt.Fprintf(e.stderr, "portcullis: cannot cache the token (%v); signing in again next time\n", err)
	}
	return printExecCredential(e.stdout, tok)
}

// kubeCredentialClient is the HTTPS client of the sign-in: the CA of
// --ca-file, else the cluster's from KUBERNETES_EXEC_INFO, else the
// system's roots. No proxy from the environment: the password goes to the
// gateway directly.
func kubeCredentialClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		caFile = os.Getenv(envCAFile)
	}
	var caPEM []byte
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, inputErr("--ca-file: %v", err)
		}
		caPEM = b
	} else if raw := os.Getenv("KUBERNETES_EXEC_INFO"); raw != "" {
		var info execInfo
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			return nil, inputErr("KUBERNETES_EXEC_INFO is not an ExecCredential: %v", err)
		}
		if info.Spec.Cluster != nil {
			caPEM = info.Spec.Cluster.CAData
		}
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, inputErr("the gateway's CA holds no PEM certificate")
		}
		conf.RootCAs = pool
	}
	tr := &http.Transport{TLSClientConfig: conf, TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 30 * time.Second}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second,
		// A redirect could carry the password elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// kubeSignIn asks for what is missing and signs in: the password first,
// then, when the gateway answers mfa_required, the verification code.
func kubeSignIn(e *env, hc *http.Client, gateway, target, user, pwFile string, ttl time.Duration) (kubeToken, error) {
	var tty *os.File
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = f
	}
	if user == "" {
		if tty == nil {
			return kubeToken{}, inputErr("no terminal to ask the user name on: give --user")
		}
		fmt.Fprintf(e.stderr, "Gateway user for %s: ", target)
		line, err := readLine(tty)
		if err != nil {
			return kubeToken{}, err
		}
		if user = strings.TrimSpace(line); user == "" {
			return kubeToken{}, inputErr("no user name given")
		}
	}
	var pw string
	switch {
	case pwFile != "":
		f, err := os.Open(pwFile)
		if err != nil {
			return kubeToken{}, inputErr("password file: %v", err)
		}
		pw, err = readPasswordLine(f)
		f.Close()
		if err != nil {
			return kubeToken{}, err
		}
	case tty != nil:
		fmt.Fprintf(e.stderr, "Password for %s at %s: ", escapeControls(user), gateway)
		b, err := readTerminal(e.ctx, int(tty.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return kubeToken{}, err
		}
		pw = string(b)
	default:
		return kubeToken{}, inputErr("stdin is not a terminal: give the password in --password-file FILE or $%s", envPasswordFile)
	}
	if pw == "" {
		return kubeToken{}, inputErr("empty password")
	}
	req := api.KubeCredentialRequest{User: user, Password: pw, Target: target, TTLSeconds: int64(ttl / time.Second)}
	resp, err := postKubeCredential(e.ctx, hc, gateway, req)
	var ae *kubeAPIError
	if errors.As(err, &ae) && ae.code == "mfa_required" {
		if tty == nil {
			return kubeToken{}, &exitError{code: exitFailure, msg: "sign-in refused: a verification code is required, and there is no terminal to ask it on"}
		}
		fmt.Fprint(e.stderr, "Verification code: ")
		b, rerr := readTerminal(e.ctx, int(tty.Fd()))
		fmt.Fprintln(e.stderr)
		if rerr != nil {
			return kubeToken{}, rerr
		}
		req.Code = strings.TrimSpace(string(b))
		resp, err = postKubeCredential(e.ctx, hc, gateway, req)
	}
	if err != nil {
		if errors.As(err, &ae) && ae.status == http.StatusUnauthorized && req.Code == "" {
			return kubeToken{}, &wrongPasswordError{exitError{code: exitFailure, msg: "sign-in refused: " + err.Error()}}
		}
		return kubeToken{}, &exitError{code: exitFailure, msg: "sign-in refused: " + err.Error()}
	}
	return kubeToken{Token: resp.Token, KeyID: resp.KeyID, ExpiresAt: resp.ExpiresAt, User: user}, nil
}

// errWrongPassword matches a sign-in the gateway refused for the user
// name or password (wrongPasswordError).
var errWrongPassword = errors.New("wrong user name or password")

// wrongPasswordError is a refused password: an exitError that is
// errWrongPassword.
type wrongPasswordError struct{ exitError }

func (e *wrongPasswordError) Is(target error) bool { return target == errWrongPassword }

// Unwrap lets Run find the exitError's code and message.
func (e *wrongPasswordError) Unwrap() error { return &e.exitError }

// passwordFileMark identifies a password file's version without reading
// it: path, size, modification time and inode; "" when there is none.
func passwordFileMark(path string) string {
	if path == "" {
		return ""
	}
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	var ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d\x00%d", path, st.Size(), st.ModTime().UnixNano(), ino)))
	return hex.EncodeToString(sum[:16])
}

// kubeAPIError is an error answer of the sign-in.
type kubeAPIError struct {
	status    int
	code, msg string
}

func (e *kubeAPIError) Error() string { return e.msg }

func postKubeCredential(ctx context.Context, hc *http.Client, gateway string, body api.KubeCredentialRequest) (api.KubeCredentialResponse, error) {
	var out api.KubeCredentialResponse
	b, err := json.Marshal(body)
	if err != nil {
		return out, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gateway+"/api/v1/kube/credentials", bytes.NewReader(b))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return out, fmt.Errorf("reach the gateway: %w", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return out, fmt.Errorf("read the gateway's answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		var er api.ErrorResponse
		if json.Unmarshal(rb, &er) != nil || er.Error.Message == "" {
			return out, &kubeAPIError{status: resp.StatusCode, msg: fmt.Sprintf("the gateway answered %s", resp.Status)}
		}
		return out, &kubeAPIError{status: resp.StatusCode, code: er.Error.Code, msg: escapeControls(er.Error.Message)}
	}
	if err := json.Unmarshal(rb, &out); err != nil || out.Token == "" || out.ExpiresAt.IsZero() {
		return out, fmt.Errorf("the gateway's answer holds no credential")
	}
	return out, nil
}

// checkKubeToken asks the gateway whether a cached token still works (it
// may have been revoked, or its user removed): valid false on 401 or 403.
func checkKubeToken(ctx context.Context, hc *http.Client, gateway, token string) (valid bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gateway+"/api/v1/me", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set(api.APIKeyHeader, token)
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return false, nil
	}
	return false, fmt.Errorf("the gateway answered %s", resp.Status)
}

// printExecCredential writes the ExecCredential kubectl reads.
func printExecCredential(w io.Writer, tok kubeToken) error {
	b, err := json.Marshal(map[string]any{
		"apiVersion": "client.authentication.k8s.io/v1",
		"kind":       "ExecCredential",
		"status": map[string]any{
			"token":               tok.Token,
			"expirationTimestamp": tok.ExpiresAt.UTC().Format(time.RFC3339),
		},
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// kubeCachePath is the cache file of one gateway, target and user (""
// when the user is asked each time).
func kubeCachePath(gateway, target, user string) string {
	dir := os.Getenv("XDG_CACHE_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".cache")
	}
	sum := sha256.Sum256([]byte(gateway + "\x00" + target + "\x00" + user))
	return filepath.Join(dir, "portcullis", "kube-"+hex.EncodeToString(sum[:12])+".json")
}

// readKubeToken reads a cached token; a file others may read or write is
// not trusted (and not used).
func readKubeToken(path string) (kubeToken, bool) {
	var tok kubeToken
	if path == "" {
		return tok, false
	}
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
		return tok, false
	}
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &tok) != nil || tok.Token == "" {
		return tok, false
	}
	return tok, true
}

// writeKubeToken caches a token: the directory 0700, the file 0600,
// written through a rename.
func writeKubeToken(path string, tok kubeToken) error {
	if path == "" {
		return errors.New("no cache directory")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(tok)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".kube-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// readLine reads one line from f a byte at a time, so that nothing after
// it is taken from the terminal.
func readLine(f io.Reader) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for len(b) < password.MaxLen {
		n, err := f.Read(one)
		if n == 1 {
			if one[0] == '\n' {
				return strings.TrimSuffix(string(b), "\r"), nil
			}
			b = append(b, one[0])
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(b) > 0 {
				return string(b), nil
			}
			return "", inputErr("no user name given (end of input)")
		}
	}
	return "", inputErr("the user name is too long")
}
