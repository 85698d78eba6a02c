package cli

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
)

const kubeconfigUsage = `Usage: portcullis kubeconfig --target NAME --server URL [--host-routing]
                             [--key KEY | --exec [--user NAME]] [--ca-file FILE] [-o FILE]

Writes a kubeconfig that points a stock kubectl at a kubernetes target
through the gateway, over TLS only. The gateway authorizes every request
against the kubernetes policies and impersonates the cluster user and
groups they allow; kubectl --as picks among them.

The cluster's server is URL/k8s/NAME, or with --host-routing
https://NAME.HOST[:PORT] (HOST and PORT those of URL). kubectl
authenticates with one of:
  - an access API key of the gateway (apikey create --kind access --owner
    USER) as its bearer token (--key), kept in the kubeconfig;
  - with --exec, an exec credential plugin: kubectl runs 'portcullis
    kube-credential', which signs the user in through the gateway (user
    name, password and, when required, a verification code, asked on the
    terminal) and hands kubectl a short-lived token (at most 12 hours),
    cached until it expires. No secret is written to the kubeconfig.

This command needs no admin socket: any user may run it.

Flags:
  --target NAME    the kubernetes target (required)
  --server URL     the gateway's HTTPS address as kubectl reaches it,
                   https://HOST[:PORT] (required)
  --host-routing   address the target by host name, NAME.HOST, instead of
                   by path. The gateway must run with http_host HOST, and
                   NAME.HOST must resolve to it (a wildcard DNS record
                   *.HOST); its generated certificate covers *.HOST. Without
                   DNS, kubectl can reach it through a proxy: kubectl config
                   set clusters.portcullis-NAME.proxy-url http://PROXY:PORT
  --key KEY        the access API key; default $PORTCULLIS_API_KEY
  --exec           use the exec credential plugin instead of a key
  --user NAME      with --exec: the gateway user the plugin signs in as;
                   default: asked on the terminal at each sign-in
  --exec-command PATH
                   with --exec: the portcullis binary kubectl runs; default
                   the one running this command
  --ca-file FILE   PEM of the certificate authority of the gateway's HTTPS
                   certificate; default: the certificate the gateway
                   presents now is trusted, and its SHA-256 printed on
                   stderr to compare with 'openssl x509 -fingerprint
                   -sha256' on the gateway
  -o, --output FILE
                   write the kubeconfig to FILE (mode 0600) instead of
                   standard output
`

func runKubeconfig(e *env, args []string) error {
	fs := e.flags()
	var target, server, key, output, user, command string
	var hostRouting, execPlugin bool
	fs.StringVar(&target, "target", "", "")
	fs.StringVar(&server, "server", "", "")
	fs.StringVar(&key, "key", "", "")
	fs.StringVar(&output, "output", "", "")
	fs.StringVar(&output, "o", "", "")
	fs.BoolVar(&hostRouting, "host-routing", false, "")
	fs.BoolVar(&execPlugin, "exec", false, "")
	fs.StringVar(&user, "user", "", "")
	fs.StringVar(&command, "exec-command", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	// --ca-file is the global flag (the same CA the CLI trusts for
	// --gateway), so it may also come from $PORTCULLIS_CA_FILE.
	caFile := e.caFile
	if len(pos) > 0 {
		return usageErr("unexpected argument %q (the target goes in --target)", pos[0])
	}
	if key == "" && !execPlugin {
		key = os.Getenv("PORTCULLIS_API_KEY")
	}
	u, err := url.Parse(server)
	switch {
	case target == "":
		return usageErr("--target is required")
	case !resource.ValidName(target):
		return usageErr("--target %q is not a resource name", target)
	case server == "":
		return usageErr("--server is required (https://HOST[:PORT], the gateway's HTTPS address)")
	case err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || strings.Trim(u.Path, "/") != "" || u.RawQuery != "":
		return usageErr("--server %q: want https://HOST[:PORT] (credentials are sent as bearer tokens: TLS only)", server)
	case hostRouting && (net.ParseIP(u.Hostname()) != nil || !strings.Contains(u.Hostname(), ".")):
		return usageErr("--host-routing: --server %q must name the gateway's http_host (gw.example), not an address", server)
	case execPlugin && key != "":
		return usageErr("--exec and --key exclude each other: the plugin signs in for a token of its own")
	case !execPlugin && (user != "" || command != ""):
		return usageErr("--user and --exec-command go with --exec")
	case !execPlugin && key == "":
		return usageErr("--key (or $PORTCULLIS_API_KEY) is required: an access key from 'portcullis apikey create --kind access', or --exec")
	case strings.ContainsAny(key, "\"\\\r\n \t"):
		return usageErr("--key holds characters no API key has")
	case user != "" && (len(user) > 256 || strings.ContainsAny(user, "\x00\r\n")):
		return usageErr("--user %q is not a user name", user)
	}
	endpoint := "https://" + u.Host + "/k8s/" + target
	if hostRouting {
		h := target + "." + strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		if p := u.Port(); p != "" {
			h = net.JoinHostPort(h, p)
		}
		endpoint = "https://" + h
	}
	var caPEM []byte
	if caFile != "" {
		if caPEM, err = os.ReadFile(caFile); err != nil {
			return usageErr("--ca-file: %v", err)
		}
		if b, _ := pem.Decode(caPEM); b == nil || b.Type != "CERTIFICATE" {
			return usageErr("--ca-file %s holds no PEM certificate", caFile)
		}
	} else {
		leaf, root, err := presentedCertificate(e.ctx, u.Host)
		if err != nil {
			return &exitError{code: exitFailure, msg: fmt.Sprintf("read the gateway's certificate from %s: %v (or give --ca-file)", u.Host, err)}
		}
		if hostRouting {
			// A certificate that does not cover NAME.HOST would only
			// fail later, in kubectl, with less to go on.
			eu, _ := url.Parse(endpoint)
			if err := leaf.VerifyHostname(eu.Hostname()); err != nil {
				return &exitError{code: exitFailure, msg: fmt.Sprintf("--host-routing: the gateway's certificate does not cover %s (%v): set http_host on the gateway (its generated certificate then covers *.HOST), or give it a wildcard certificate", eu.Hostname(), err)}
			}
		}
		sum := sha256.Sum256(root.Raw)
		fmt.Fprintf(e.stderr, "Trusting the certificate %s presents now, SHA-256 %X.\n", u.Host, sum)
		caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})
	}
	var cred credential
	if execPlugin {
		if command == "" {
			if command, err = os.Executable(); err != nil {
				return &exitError{code: exitFailure, msg: fmt.Sprintf("find the portcullis binary: %v (give --exec-command)", err)}
			}
		}
		cred.exec = &execCredential{command: command, args: []string{"kube-credential", "--gateway", "https://" + u.Host, "--target", target}}
		if user != "" {
			cred.exec.args = append(cred.exec.args, "--user", user)
		}
	} else {
		cred.token = key
	}
	cfg := renderKubeconfig(target, endpoint, cred, caPEM)
	if output == "" {
		_, err := fmt.Fprint(e.stdout, cfg)
		return err
	}
	if err := os.WriteFile(output, []byte(cfg), 0o600); err != nil {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("write %s: %v", output, err)}
	}
	fmt.Fprintf(e.stdout, "Wrote %s: kubectl --kubeconfig %s get pods\n", output, output)
	return nil
}

// credential is how kubectl authenticates: a bearer token, or an exec
// credential plugin.
type credential struct {
	token string
	exec  *execCredential
}

type execCredential struct {
	command string
	args    []string
}

// renderKubeconfig writes the kubeconfig; every value is quoted as a YAML
// double-quoted (JSON) string.
func renderKubeconfig(target, server string, cred credential, caPEM []byte) string {
	name := "portcullis-" + target
	user := fmt.Sprintf("    token: %q\n", cred.token)
	if cred.exec != nil {
		// provideClusterInfo hands the plugin the cluster's CA
		// (KUBERNETES_EXEC_INFO), so that it checks the gateway's
		// certificate as kubectl does; interactiveMode IfAvailable
		// lets it ask for the password on kubectl's terminal.
		var args strings.Builder
		for _, a := range cred.exec.args {
			fmt.Fprintf(&args, "      - %q\n", a)
		}
		user = fmt.Sprintf(`    exec:
      apiVersion: "client.authentication.k8s.io/v1"
      command: %q
      args:
%s      interactiveMode: "IfAvailable"
      provideClusterInfo: true
`, cred.exec.command, args.String())
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]q
  cluster:
    server: %[2]q
    certificate-authority-data: %[3]q
users:
- name: %[1]q
  user:
%[4]scontexts:
- name: %[1]q
  context:
    cluster: %[1]q
    user: %[1]q
current-context: %[1]q
`, name, server, base64.StdEncoding.EncodeToString(caPEM), user)
}

// presentedCertificate returns the leaf certificate the server at host
// presents and the last of its chain (the one to trust: the leaf itself
// when self-signed). They are read without verification: the user is
// shown the fingerprint to compare.
func presentedCertificate(ctx context.Context, host string) (leaf, root *x509.Certificate, err error) {
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "443")
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{InsecureSkipVerify: true}}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("no certificate presented")
	}
	return certs[0], certs[len(certs)-1], nil
}
