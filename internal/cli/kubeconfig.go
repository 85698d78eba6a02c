package cli

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
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

const kubeconfigUsage = `Usage: portcullis kubeconfig --target NAME --server URL [--key KEY] [--ca-file FILE] [-o FILE]

Writes a kubeconfig that points a stock kubectl at a kubernetes target
through the gateway: the cluster's server is URL/k8s/NAME, and kubectl
authenticates with an access API key of the gateway (apikey create --kind
access --owner USER) as its bearer token, over TLS only. The gateway then
authorizes every request against the kubernetes policies and impersonates
the cluster user and groups they allow; kubectl --as picks among them.

This command needs no admin socket: any user with an access key may run it.

Flags:
  --target NAME    the kubernetes target (required)
  --server URL     the gateway's HTTPS address as kubectl reaches it,
                   https://HOST[:PORT] (required)
  --key KEY        the access API key; default $PORTCULLIS_API_KEY
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
	var target, server, key, output string
	fs.StringVar(&target, "target", "", "")
	fs.StringVar(&server, "server", "", "")
	fs.StringVar(&key, "key", "", "")
	fs.StringVar(&output, "output", "", "")
	fs.StringVar(&output, "o", "", "")
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
	if key == "" {
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
		return usageErr("--server %q: want https://HOST[:PORT] (the key is sent as a bearer token: TLS only)", server)
	case key == "":
		return usageErr("--key (or $PORTCULLIS_API_KEY) is required: an access key from 'portcullis apikey create --kind access'")
	case strings.ContainsAny(key, "\"\\\r\n \t"):
		return usageErr("--key holds characters no API key has")
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
		der, err := presentedCertificate(e.ctx, u.Host)
		if err != nil {
			return &exitError{code: exitFailure, msg: fmt.Sprintf("read the gateway's certificate from %s: %v (or give --ca-file)", u.Host, err)}
		}
		sum := sha256.Sum256(der)
		fmt.Fprintf(e.stderr, "Trusting the certificate %s presents now, SHA-256 %X.\n", u.Host, sum)
		caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	cfg := renderKubeconfig(target, "https://"+u.Host+"/k8s/"+target, key, caPEM)
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

// renderKubeconfig writes the kubeconfig; every value is quoted as a YAML
// double-quoted (JSON) string.
func renderKubeconfig(target, server, key string, caPEM []byte) string {
	name := "portcullis-" + target
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
    token: %[4]q
contexts:
- name: %[1]q
  context:
    cluster: %[1]q
    user: %[1]q
current-context: %[1]q
`, name, server, base64.StdEncoding.EncodeToString(caPEM), key)
}

// presentedCertificate returns the leaf certificate the server at host
// presents. It is read without verification: the user is shown its
// fingerprint to compare.
func presentedCertificate(ctx context.Context, host string) ([]byte, error) {
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "443")
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{InsecureSkipVerify: true}}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("no certificate presented")
	}
	return certs[len(certs)-1].Raw, nil
}
