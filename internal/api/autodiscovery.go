package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// discovery is what the autodiscovery script needs from the gateway.
type discovery struct {
	agentAddr func() string
	binary    string
	hostKey   ssh.PublicKey

	once sync.Once
	sum  string // hex SHA-256 of binary
	err  error
}

func (d *discovery) sha256() (string, error) {
	d.once.Do(func() {
		f, err := os.Open(d.binary)
		if err != nil {
			d.err = fmt.Errorf("open the agent binary: %w", err)
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			d.err = fmt.Errorf("read the agent binary: %w", err)
			return
		}
		d.sum = hex.EncodeToString(h.Sum(nil))
	})
	return d.sum, d.err
}

// discoveryTokenTTL is the life of the registration key minted into each
// autodiscovery script: long enough for cloud-init to run it after boot.
const discoveryTokenTTL = 2 * time.Hour

// autodiscoveryScript answers a bash script that installs and registers
// an agent. It mints a registration key for one environment that expires
// in discoveryTokenTTL: the caller's long-lived key never goes into the
// script.
func (a *api) autodiscoveryScript(w http.ResponseWriter, r *http.Request) error {
	p := caller(r)
	d := &a.discovery
	if d.agentAddr == nil || d.agentAddr() == "" || d.binary == "" || d.hostKey == nil {
		return clientError(http.StatusNotFound, "the gateway's agent listener is off (agent_addr)")
	}
	env := r.URL.Query().Get("environment")
	if env != "" && !resource.ValidName(env) {
		return clientError(http.StatusBadRequest, "environment %q is not a valid name", env)
	}
	// The gateway's name goes into the script, so check it before any
	// key is minted: Go accepts quotes and semicolons in Host.
	host, err := scriptHost(r.Host)
	if err != nil {
		return clientError(http.StatusBadRequest, "Host header %q: %v", r.Host, err)
	}
	now := a.now()
	k := store.APIKey{Name: "autodiscovery script", Kind: store.APIKeyRegistration, CreatedBy: p.actor(),
		CreatedAt: now, ExpiresAt: now.Add(discoveryTokenTTL)}
	if p.registration() {
		parent, err := a.store.GetAPIKey(r.Context(), p.KeyID)
		if err != nil {
			return fmt.Errorf("autodiscovery script: read registration key %s: %w", p.KeyID, err)
		}
		// A minted key is never looser than the key that minted it:
		// otherwise a spent or narrow key buys a fresh, open one, and
		// that one the next, for ever.
		msg := ""
		var rr *store.RegistrationRefusal
		switch err := store.RegistrationKeyUsable(parent, now); {
		case errors.As(err, &rr):
			msg = fmt.Sprintf("%s (key %s)", rr.Msg, p.KeyID)
		case err != nil:
			return fmt.Errorf("autodiscovery script: check registration key %s: %w", p.KeyID, err)
		case parent.Environment != "" && env != "" && env != parent.Environment:
			msg = fmt.Sprintf("registration key %s registers targets in environment %q only", p.KeyID, parent.Environment)
		}
		if msg != "" {
			a.deny(r, p, msg)
			return clientError(http.StatusForbidden, "%s", msg)
		}
		if parent.Environment != "" {
			env = parent.Environment
		}
		k.NamePattern, k.SourceCIDRs = parent.NamePattern, slices.Clone(parent.SourceCIDRs)
		if parent.MaxUses > 0 {
			k.MaxUses = parent.MaxUses - parent.Uses
		}
		if !parent.ExpiresAt.IsZero() && parent.ExpiresAt.Before(k.ExpiresAt) {
			k.ExpiresAt = parent.ExpiresAt
		}
	}
	k.Environment = env
	sum, err := d.sha256()
	if err != nil {
		return fmt.Errorf("autodiscovery script: %w", err)
	}
	id, value, err := apikey.New()
	if err != nil {
		return fmt.Errorf("autodiscovery script: %w", err)
	}
	_, secret, _ := apikey.Parse(value)
	k.ID, k.SecretHash = id, apikey.Hash(id, secret)
	if err := a.store.CreateAPIKey(r.Context(), k); err != nil {
		return fmt.Errorf("autodiscovery script: %w", err)
	}
	if err := a.audit.Write(r.Context(), store.AuditEvent{Type: audit.APIKeyCreate, Outcome: audit.Success,
		User: p.actor(), Source: source(r), Message: fmt.Sprintf("registration key %s minted for an autodiscovery script", id),
		Detail: map[string]any{"key_id": id, "kind": k.Kind, "environment": env, "expires_at": k.ExpiresAt, "by_key": p.KeyID,
			"max_uses": k.MaxUses, "name_pattern": k.NamePattern, "source_cidrs": k.SourceCIDRs}}); err != nil {
		_ = a.store.RevokeAPIKey(r.Context(), id, now)
		return fmt.Errorf("autodiscovery script: audit: %w", err)
	}
	// The agent reaches the gateway under the name the caller used.
	_, agentPort, _ := net.SplitHostPort(d.agentAddr())
	var b strings.Builder
	if err := scriptTemplate.Execute(&b, map[string]string{
		"HTTPS":       shellQuote("https://" + r.Host),
		"AgentAddr":   shellQuote(net.JoinHostPort(host, agentPort)),
		"SHA256":      shellQuote(sum),
		"HostKey":     shellQuote(ssh.FingerprintSHA256(d.hostKey)),
		"Environment": shellQuote(env),
		"Key":         shellQuote(value),
	}); err != nil {
		return fmt.Errorf("autodiscovery script: %w", err)
	}
	w.Header().Set("Content-Type", "text/x-shellscript; charset=utf-8")
	// The script carries a live registration key.
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, b.String())
	return nil
}

// scriptHost checks the Host header the script will dial back to and
// answers its host part: a DNS name or IPv4 address of [A-Za-z0-9.-], or an
// IPv6 literal in brackets, with an optional numeric port.
func scriptHost(hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	switch {
	case err == nil:
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return "", errors.New("the port is not a number from 0 to 65535")
		}
	case strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]"):
		host = hostport[1 : len(hostport)-1]
	default:
		host = hostport
	}
	bracketed := strings.HasPrefix(hostport, "[")
	if bracketed || strings.Contains(host, ":") {
		if ip, err := netip.ParseAddr(host); !bracketed || err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", errors.New("not an IPv6 address in brackets")
		}
		return host, nil
	}
	if host == "" {
		return "", errors.New("no host name")
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return "", fmt.Errorf("the host name holds %q: only letters, digits, dots and hyphens", c)
		}
	}
	return host, nil
}

// shellQuote makes s one single-quoted shell word, whatever it holds.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// agentBinary serves the running portcullis binary, which the
// autodiscovery script checks against the SHA-256 it carries.
func (a *api) agentBinary(w http.ResponseWriter, r *http.Request) error {
	if a.discovery.binary == "" {
		return clientError(http.StatusNotFound, "the gateway serves no agent binary")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeFile(w, r, a.discovery.binary)
	return nil
}

// scriptTemplate is the autodiscovery script. Every value comes through
// shellQuote, already a quoted word, though each is also checked or made
// here: one that slipped a check must still not run as code. Running it twice is harmless:
// a binary with the right checksum is not downloaded again, a registered
// agent does not register again, and the unit is rewritten the same.
var scriptTemplate = template.Must(template.New("script").Parse(`#!/bin/bash
# Portcullis agent autodiscovery: installs the agent, registers this host,
# and starts it with systemd. Works as cloud-init user_data.
# Options: --no-systemd (register only), --root=DIR (install under DIR).
set -euo pipefail
ROOT=""
SYSTEMD=1
for arg in "$@"; do
  case "$arg" in
    --no-systemd) SYSTEMD=0 ;;
    --root=*) ROOT="${arg#--root=}" ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done
GATEWAY_HTTPS={{.HTTPS}}
AGENT_ADDR={{.AgentAddr}}
BINARY_SHA256={{.SHA256}}
GATEWAY_HOST_KEY={{.HostKey}}
ENVIRONMENT={{.Environment}}
BIN="$ROOT/usr/local/bin/portcullis"
STATE="$ROOT/var/lib/portcullis-agent"
NAME="${PORTCULLIS_NAME:-$(hostname -s)}"
mkdir -p "$(dirname "$BIN")"
mkdir -p -m 0700 "$STATE"
# A short-lived key for one environment, minted for this script.
export PORTCULLIS_REGISTRATION_KEY={{.Key}}
if ! echo "$BINARY_SHA256  $BIN" | sha256sum -c --status 2>/dev/null; then
  tmp="$(mktemp "$BIN.XXXXXX")"
  # The checksum, not the TLS certificate, vouches for the download: the
  # gateway's certificate may be self-signed.
  curl -fsSk -H "X-API-KEY: $PORTCULLIS_REGISTRATION_KEY" -o "$tmp" "$GATEWAY_HTTPS/api/v1/agent-binary"
  if ! echo "$BINARY_SHA256  $tmp" | sha256sum -c --status; then
    rm -f "$tmp"
    echo "portcullis: the downloaded binary does not match its SHA-256" >&2
    exit 1
  fi
  chmod 0755 "$tmp"
  mv -f "$tmp" "$BIN"
fi
ARGS=(agent --gateway "$AGENT_ADDR" --state-dir "$STATE" --name "$NAME" --gateway-host-key "$GATEWAY_HOST_KEY")
if [ -n "$ENVIRONMENT" ]; then ARGS+=(--environment "$ENVIRONMENT"); fi
"$BIN" "${ARGS[@]}" --register-only
unset PORTCULLIS_REGISTRATION_KEY
if [ "$SYSTEMD" = 1 ]; then
  cat > "$ROOT/etc/systemd/system/portcullis-agent.service" <<UNIT
[Unit]
Description=Portcullis agent
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/local/bin/portcullis agent --gateway $AGENT_ADDR --state-dir /var/lib/portcullis-agent
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now portcullis-agent.service
fi
echo "portcullis agent registered as $NAME"
`))
