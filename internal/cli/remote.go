package cli

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Environment variables of the remote mode: a user who is not the
// gateway's local superuser (`portcullis jit request` from a laptop)
// talks to the HTTPS API with an API key of their own.
const (
	envGateway = "PORTCULLIS_GATEWAY"
	envAPIKey  = "PORTCULLIS_API_KEY"
	envCAFile  = "PORTCULLIS_CA_FILE"
)

// remoteClient returns a client of the gateway's HTTPS API. The key is
// read from a file or the environment, never a flag: a flag's value shows
// in the process list.
func (e *env) remoteClient() (*client, error) {
	base := e.gateway
	if base == "" {
		base = os.Getenv(envGateway)
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, inputErr("--gateway %q: want https://HOST[:PORT] (the gateway's HTTPS API, no path or credentials)", base)
	}
	key := os.Getenv(envAPIKey)
	if e.apiKeyFile != "" {
		b, err := os.ReadFile(e.apiKeyFile)
		if err != nil {
			return nil, inputErr("--api-key-file: %v", err)
		}
		key = string(b)
	}
	if key = strings.TrimSpace(key); key == "" {
		return nil, inputErr("--gateway needs an API key: --api-key-file FILE or $%s (make one in the console or with `portcullis apikey create`)", envAPIKey)
	}
	if strings.ContainsAny(key, "\r\n\x00") {
		return nil, inputErr("the API key holds a line break or NUL: is the file the key alone?")
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	caFile := e.caFile
	if caFile == "" {
		caFile = os.Getenv(envCAFile)
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, inputErr("--ca-file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, inputErr("--ca-file %s: no PEM certificate in it", caFile)
		}
		tlsConf.RootCAs = pool
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 10 * time.Second}
	return &client{hc: &http.Client{Transport: tr}, base: "https://" + u.Host, apiKey: key}, nil
}

// authorize adds the API key of a remote client to req.
func (c *client) authorize(req *http.Request) {
	if c.apiKey != "" {
		req.Header.Set("X-API-KEY", c.apiKey)
	}
}
