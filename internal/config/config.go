// Package config holds the gateway's configuration: one YAML file
// (--config), every key also a flag, and defaults that make `portcullis
// serve` work with no configuration at all (DESIGN section 4). Validation
// names the key that is wrong.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"github.com/portcullis/portcullis/internal/objstore"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis/portcullis/internal/duration"
)

// EnvDataDir names the environment variable that sets the data directory
// for both the server and the CLI.
const EnvDataDir = "PORTCULLIS_DATA_DIR"

// Config is the server's configuration. Empty path fields are derived from
// DataDir by Resolve.
type Config struct {
	// DataDir holds the database, keys and the admin socket. Keep it short:
	// a unix socket path is limited to 107 bytes.
	DataDir string `yaml:"data_dir"`
	// SSHAddr is where the SSH front listens.
	SSHAddr string `yaml:"ssh_addr"`
	// APIAddr is where the HTTPS API and web console listen; empty turns
	// them off (the admin socket stays).
	APIAddr string `yaml:"api_addr"`
	// PGAddr is where the PostgreSQL front (package pgproxy) listens, with
	// the same TLS certificate as the HTTPS API; empty turns it off.
	PGAddr string `yaml:"pg_addr"`
	// AgentAddr is where agents on targets that dial out connect (package
	// agentgate, `portcullis agent`); empty turns it off.
	AgentAddr string `yaml:"agent_addr"`
	// LocalTarget serves the gateway's own machine as target "local"
	// through a built-in agent in the same process (make run turns it
	// on); the agent front then listens on agent_addr, or on a loopback
	// port of its own when that is empty.
	LocalTarget bool `yaml:"local_target"`
	// AgentBinary is the portcullis binary the autodiscovery script
	// installs on targets; default the running one (same OS and CPU as
	// the gateway).
	AgentBinary string `yaml:"agent_binary"`
	// HTTPHost is the gateway's host name under which http and
	// kubernetes targets are served by host (vc1.HTTPHost); empty: only
	// by path (/t/vc1/, /k8s/k1/). A generated certificate covers
	// HTTPHost and *.HTTPHost.
	HTTPHost string `yaml:"http_host"`
	// TLSCertFile and TLSKeyFile are the HTTPS certificate chain and key
	// (PEM). Both empty: a self-signed certificate is generated on first
	// start in DATA/api_tls.crt and DATA/api_tls.key and reused after.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// ConsoleIdleTimeout signs out a web console session unused this long;
	// ConsoleMaxAge ends it this long after sign-in whatever its use.
	ConsoleIdleTimeout Duration `yaml:"console_idle_timeout"`
	ConsoleMaxAge      Duration `yaml:"console_max_age"`
	// GatewayID names this gateway among those sharing a store: its
	// recordings carry it, so that a restart closes only its own. Empty:
	// a random id generated on first start and kept in DATA/gateway.id.
	GatewayID string `yaml:"gateway_id"`
	// AdminSocket is the unix socket of the admin API (mode 0600).
	AdminSocket string `yaml:"admin_socket"`
	// Store is the database: "sqlite:PATH" (the default is
	// sqlite:DATA/portcullis.db), or a PostgreSQL URL
	// (postgres://USER:PASSWORD@HOST:PORT/DB) that several gateways share.
	Store string `yaml:"store"`
	// MasterKeyFile holds the 32-byte master key as 64 hex characters.
	MasterKeyFile string `yaml:"master_key_file"`
	// HostKeyFile holds the gateway's SSH host key.
	HostKeyFile string `yaml:"host_key_file"`
	// CAKeyFile holds the user CA key, sealed under the master key.
	CAKeyFile string `yaml:"ca_key_file"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json.
	LogFormat string `yaml:"log_format"`
	// AuthTimeout closes SSH connections not authenticated in time.
	AuthTimeout Duration `yaml:"auth_timeout"`
	// DialTimeout bounds connecting and logging in to a target.
	DialTimeout Duration `yaml:"dial_timeout"`
	// ShutdownTimeout is how long sessions may go on after SIGTERM.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// RecordingsDir holds the asciicast files of session recordings.
	RecordingsDir string `yaml:"recordings_dir"`
	// RecordingsRetention deletes recordings that started longer ago than
	// this (checked hourly, audited); zero keeps them.
	RecordingsRetention Duration `yaml:"recordings_retention"`
	// RecordingsStore is where recordings are kept: "local" (the default:
	// RecordingsDir only) or s3://BUCKET/PREFIX?endpoint=URL&region=R, an
	// S3-compatible object store every gateway sharing it reads; the
	// directory is then the spool of what the store has not taken yet.
	RecordingsStore string `yaml:"recordings_store"`
	// RecordingsStoreCredentials is an AWS shared credentials file for
	// RecordingsStore; without it the AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY environment variables are read.
	RecordingsStoreCredentials string `yaml:"recordings_store_credentials"`
	// AuditSyslog, when set, copies every audit event to a syslog collector:
	// udp://HOST:PORT or tcp://HOST:PORT (RFC 5424).
	AuditSyslog string `yaml:"audit_syslog"`
	// AuditRetention removes audit events older than this (checked hourly),
	// with a signed record of the cut that audit verify accepts; zero
	// keeps them forever.
	AuditRetention Duration `yaml:"audit_retention"`
	// RetentionForce accepts an audit_retention or recordings_retention
	// under MinRetention: without it, such a value is refused, because
	// compliance reports must reach a year back (PCI DSS 10.5.1).
	RetentionForce bool `yaml:"retention_force"`
	// AuditCheckpointEvents and AuditCheckpointInterval: the gateway signs
	// the audit trail's head after this many events, or this long after
	// the last checkpoint if events came since, and at shutdown.
	AuditCheckpointEvents   int      `yaml:"audit_checkpoint_events"`
	AuditCheckpointInterval Duration `yaml:"audit_checkpoint_interval"`
	// DiagAddr, when set, serves Go's /debug/pprof profiles and the
	// runtime/metrics samples (/debug/runtime-metrics) on this address
	// for diagnosing CPU and memory. It must be a loopback address:
	// profiles reveal internals and need no credentials.
	DiagAddr string `yaml:"diag_addr"`
	// ReloadInterval is how often the store is polled for changes made by
	// another gateway or process.
	ReloadInterval Duration `yaml:"reload_interval"`
	// SSHProxyProtocol and APIProxyProtocol make the SSH and HTTPS
	// listeners take the client's address from a PROXY protocol (v1 or v2)
	// header sent by a load balancer in ProxyProtocolFrom. Off by default:
	// with no balancer in front, a header is never believed.
	SSHProxyProtocol bool `yaml:"ssh_proxy_protocol"`
	APIProxyProtocol bool `yaml:"api_proxy_protocol"`
	// ProxyProtocolFrom lists the load balancers (CIDRs, or single
	// addresses) that may send a PROXY header; required when either
	// listener has it on. A connection from one of them must open with a
	// header; any other connection is served as is, its header unread.
	ProxyProtocolFrom []string `yaml:"proxy_protocol_from"`
	// AuthStartTimeout closes an SSH connection whose client has not asked
	// to authenticate this long after connecting (then auth_timeout
	// applies). Default 10s.
	AuthStartTimeout Duration `yaml:"auth_start_timeout"`
	// SSHMaxStartups is OpenSSH's MaxStartups for connections not yet
	// authenticated, "start:rate:full": from start pending connections on,
	// a source that already has one pending is refused with a probability
	// rising from rate% to 100% at full; at full, a source's first
	// connection takes the place of the most silent one. Default
	// "10:30:100".
	SSHMaxStartups string `yaml:"ssh_max_startups"`
	// SSHMaxStartupsPerSource bounds the unauthenticated connections of one
	// source address (one /64 for IPv6). Default 10.
	SSHMaxStartupsPerSource int `yaml:"ssh_max_startups_per_source"`
	// SSHAcceptEnv lists the environment variables (names or globs such as
	// LC_*) that clients may pass to targets. Default LANG, LC_*, TERM, TZ,
	// COLORTERM; others are dropped.
	SSHAcceptEnv []string `yaml:"ssh_accept_env"`
	// Directory, when set, lets people sign in with their LDAP or Active
	// Directory password and brings their directory groups into policies.
	// It is set only in the config file: a nested section has no flags.
	Directory *Directory `yaml:"directory"`
	// OIDC, when set, adds single sign-on with an OpenID Connect provider
	// to the console and to SSH. Config file only, like Directory.
	OIDC *OIDC `yaml:"oidc"`
	// JIT, when set, announces just-in-time requests (Slack). Config
	// file only.
	JIT *JIT `yaml:"jit"`
}

// gatewayIDPattern is what a gateway id may be: it is shown in listings
// and logs, so no spaces or control characters.
var gatewayIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Duration is a time.Duration written as "30s" in YAML and flags.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	return d.Set(s)
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String implements flag.Value.
func (d *Duration) String() string { return time.Duration(*d).String() }

// Set implements flag.Value.
func (d *Duration) Set(s string) error {
	// A negative value is read here and refused by Resolve, which names
	// the key it belongs to.
	neg := strings.HasPrefix(s, "-")
	v, err := duration.Parse(strings.TrimPrefix(s, "-"))
	if err != nil {
		return err
	}
	if neg {
		v = -v
	}
	*d = Duration(v)
	return nil
}

// MinRetention is the shortest audit or recordings retention accepted
// without RetentionForce: a year, so that reports can cover twelve months.
const MinRetention = 365 * 24 * time.Hour

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		DataDir:            "data",
		SSHAddr:            ":2222",
		APIAddr:            ":8443",
		PGAddr:             ":5433",
		ConsoleIdleTimeout: Duration(30 * time.Minute),
		ConsoleMaxAge:      Duration(12 * time.Hour),
		LogLevel:           "info",
		LogFormat:          "text",
		AuthTimeout:        Duration(30 * time.Second),
		DialTimeout:        Duration(10 * time.Second),
		ShutdownTimeout:    Duration(30 * time.Second),
		ReloadInterval:     Duration(2 * time.Second),
		AuthStartTimeout:   Duration(10 * time.Second),
		SSHMaxStartups:     "10:30:100",

		SSHMaxStartupsPerSource: 10,
		SSHAcceptEnv:            []string{"LANG", "LC_*", "TERM", "TZ", "COLORTERM"},

		AuditCheckpointEvents:   1000,
		AuditCheckpointInterval: Duration(time.Minute),
	}
}

// Parse reads configuration for `portcullis serve` from args: defaults,
// then the environment, then the --config file, then flags. It returns
// flag.ErrHelp for -h.
func Parse(args []string, usage io.Writer) (Config, error) {
	cfg := Default()
	if v := os.Getenv(EnvDataDir); v != "" {
		cfg.DataDir = v
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(usage)
	configFile := fs.String("config", "", "YAML configuration `file`; flags override it")
	// Flag values are collected first and applied after the file, so that
	// flags override only what they set. Each is also checked on a scratch
	// copy so that a bad value fails at parse time, naming the flag.
	var set [][2]string
	var scratch Config
	for _, d := range flagDefs {
		bind := func(s string) error {
			set = append(set, [2]string{d.name, s})
			return bindOne(&scratch, d.name, s)
		}
		if boolFlags[d.name] {
			fs.BoolFunc(d.name, d.help, bind)
		} else {
			fs.Func(d.name, d.help, bind)
		}
	}
	fs.Usage = func() { printUsage(usage, fs) }
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *configFile != "" {
		data, err := os.ReadFile(*configFile)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		if err := decodeYAML(data, &cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", *configFile, err)
		}
	}
	for _, kv := range set {
		if err := bindOne(&cfg, kv[0], kv[1]); err != nil {
			return cfg, err
		}
	}
	if err := cfg.Resolve(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func decodeYAML(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return errors.New(strings.Join(te.Errors, "; "))
		}
		return err
	}
	return nil
}

// printUsage writes `serve --help`: every flag with two dashes, as the
// README and the CLI write them, its YAML key, and its default.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, `Usage: portcullis serve [--config FILE] [FLAGS]

Runs the gateway. Settings come from the defaults, then $%s (the data
directory), then the --config YAML file (keys as named below), then flags.
With no flags it uses ./data and listens for SSH on :2222 and for HTTPS (API
and web console) on :8443, both on every interface, and on the admin socket
DATA/admin.sock (0600: whoever can open it is the superuser).

Flags:
  --config FILE
        YAML configuration file; flags override it
`, EnvDataDir)
	defaults := map[string]any{}
	if b, err := yaml.Marshal(Default()); err == nil {
		_ = yaml.Unmarshal(b, &defaults)
	}
	for _, d := range flagDefs {
		f := fs.Lookup(d.name)
		if f == nil {
			continue
		}
		name, help := flag.UnquoteUsage(f)
		switch {
		case boolFlags[d.name]:
			name = ""
		case name != "" && name != "value":
		case strings.Contains(d.key, "timeout") || strings.Contains(d.key, "interval") || strings.Contains(d.key, "max_age"):
			name = "DURATION"
		case d.key == "log_level":
			name = "LEVEL"
		case d.key == "log_format":
			name = "FORMAT"
		case d.key == "store":
			name = "URL"
		default:
			name = "VALUE"
		}
		fmt.Fprintf(w, "  %s\n        %s\n", strings.TrimSpace("--"+d.name+" "+strings.ToUpper(name)), help)
		def := "none"
		if v, ok := defaults[d.key]; ok && v != nil {
			switch s := fmt.Sprint(v); s {
			case "", "[]":
			case "0s":
				def = "0"
			default:
				def = s
			}
		}
		switch {
		case boolFlags[d.name]:
			def = "false"
		case def == "none" && strings.Contains(help, "default"):
			// The help says what the default is derived from.
			fmt.Fprintf(w, "        (config key %s)\n", d.key)
			continue
		}
		fmt.Fprintf(w, "        (config key %s; default %s)\n", d.key, def)
	}
}

// flagDefs lists every flag with its YAML key, so file keys and flags
// cannot drift apart.
var flagDefs = []struct{ name, key, help string }{
	{"data-dir", "data_dir", "data `directory` (database, keys, admin socket); also $" + EnvDataDir},
	{"ssh-addr", "ssh_addr", "SSH listen `address`"},
	{"api-addr", "api_addr", "HTTPS API and web console listen `address`; the default listens on every interface: use 127.0.0.1:8443 for this machine only, or \"\" to turn HTTPS off (the admin socket stays)"},
	{"pg-addr", "pg_addr", "PostgreSQL front listen `address` (psql \"host=GW port=5433 user=USER~TARGET sslmode=require\"); \"\" turns it off"},
	{"agent-addr", "agent_addr", "agent listen `address`: targets running `portcullis agent --gateway GW:PORT` connect here (SSH, mutually authenticated); \"\" (the default) turns it off"},
	{"http-host", "http_host", "the gateway's host `name` under which web API and kubernetes targets are served as TARGET.NAME (needs a wildcard DNS record; a generated certificate covers NAME and *.NAME; the path forms /t/TARGET/ and /k8s/TARGET/ always work)"},
	{"tls-cert-file", "tls_cert_file", "HTTPS and PostgreSQL certificate chain `file`, PEM (default: self-signed, generated in DATA/api_tls.crt)"},
	{"tls-key-file", "tls_key_file", "HTTPS private key `file`, PEM (with --tls-cert-file)"},
	{"console-idle-timeout", "console_idle_timeout", "sign out web console sessions idle this long"},
	{"console-max-age", "console_max_age", "end web console sessions this long after sign-in"},
	{"gateway-id", "gateway_id", "this gateway's `name` among those sharing a store (default: generated in DATA/gateway.id)"},
	{"admin-socket", "admin_socket", "admin API unix socket `path` (default DATA/admin.sock)"},
	{"store", "store", "database: sqlite:PATH (default sqlite:DATA/portcullis.db) or postgres://USER:PASSWORD@HOST:PORT/DB (shared by several gateways)"},
	{"master-key-file", "master_key_file", "master key `file` (default DATA/master.key)"},
	{"host-key-file", "host_key_file", "SSH host key `file` (default DATA/ssh_host_ed25519_key)"},
	{"ca-key-file", "ca_key_file", "user CA key `file`, sealed (default DATA/user_ca.sealed)"},
	{"log-level", "log_level", "debug, info, warn or error"},
	{"log-format", "log_format", "text or json"},
	{"auth-timeout", "auth_timeout", "close SSH connections not authenticated within this `duration`"},
	{"dial-timeout", "dial_timeout", "bound on connecting and logging in to a target"},
	{"shutdown-timeout", "shutdown_timeout", "how long sessions may go on after SIGTERM"},
	{"reload-interval", "reload_interval", "how often to poll the store for changes"},
	{"recordings-dir", "recordings_dir", "session recordings `directory` (default DATA/recordings)"},
	{"recordings-retention", "recordings_retention", "delete recordings older than this `duration` (e.g. 2160h; 0 keeps them)"},
	{"recordings-store", "recordings_store", "where recordings are kept: local, or s3://BUCKET/PREFIX?endpoint=URL&region=REGION shared by every gateway"},
	{"recordings-store-credentials", "recordings_store_credentials", "AWS shared credentials `file` for an s3:// recordings_store (default: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"},
	{"audit-syslog", "audit_syslog", "copy audit events to syslog: udp://HOST:PORT or tcp://HOST:PORT"},
	{"audit-retention", "audit_retention", "remove audit events older than this `duration`, with a signed record of the cut (0 keeps them)"},
	{"retention-force", "retention_force", "accept an audit or recordings retention under 12 months (365d), which reports need (off by default)"},
	{"audit-checkpoint-events", "audit_checkpoint_events", "sign the audit trail's head after this many `events`"},
	{"audit-checkpoint-interval", "audit_checkpoint_interval", "sign the audit trail's head this often while events come"},
	{"diag-addr", "diag_addr", "serve /debug/pprof and /debug/runtime-metrics on this loopback `address` (off by default)"},
	{"agent-binary", "agent_binary", "the portcullis binary `file` the autodiscovery script installs on targets (default: this one)"},
	{"local-target", "local_target", "serve this machine as target local through a built-in agent in this process (off by default; make run turns it on)"},
	{"ssh-proxy-protocol", "ssh_proxy_protocol", "take SSH client addresses from PROXY protocol headers sent by --proxy-protocol-from (off by default)"},
	{"api-proxy-protocol", "api_proxy_protocol", "take HTTPS client addresses from PROXY protocol headers sent by --proxy-protocol-from (off by default)"},
	{"proxy-protocol-from", "proxy_protocol_from", "load balancer `CIDRs`, comma-separated, allowed (and required) to send a PROXY protocol header"},
	{"auth-start-timeout", "auth_start_timeout", "close SSH connections that have not asked to authenticate within this `duration`"},
	{"ssh-max-startups", "ssh_max_startups", "unauthenticated SSH connections, `start:rate:full` as OpenSSH's MaxStartups"},
	{"ssh-max-startups-per-source", "ssh_max_startups_per_source", "unauthenticated SSH connections allowed per source address (/64 for IPv6)"},
	{"ssh-accept-env", "ssh_accept_env", "environment variable `names` or globs, comma-separated, that clients may pass to targets"},
}

// boolFlags are the flags that take no value (--ssh-proxy-protocol), as
// well as an explicit one (--ssh-proxy-protocol=false).
var boolFlags = map[string]bool{"ssh-proxy-protocol": true, "api-proxy-protocol": true, "local-target": true, "retention-force": true}

// bindOne sets one configuration key from its flag name.
func bindOne(cfg *Config, name, value string) error {
	set := func(p *string) error { *p = value; return nil }
	dur := func(p *Duration) error {
		if err := p.Set(value); err != nil {
			return fmt.Errorf("flag --%s: %w", name, err)
		}
		return nil
	}
	boolean := func(p *bool) error {
		v, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("flag --%s: %q is not true or false", name, value)
		}
		*p = v
		return nil
	}
	list := func(p *[]string) error {
		*p = nil
		for _, v := range strings.Split(value, ",") {
			if v = strings.TrimSpace(v); v != "" {
				*p = append(*p, v)
			}
		}
		return nil
	}
	switch name {
	case "data-dir":
		return set(&cfg.DataDir)
	case "ssh-addr":
		return set(&cfg.SSHAddr)
	case "api-addr":
		return set(&cfg.APIAddr)
	case "pg-addr":
		return set(&cfg.PGAddr)
	case "agent-addr":
		return set(&cfg.AgentAddr)
	case "http-host":
		return set(&cfg.HTTPHost)
	case "tls-cert-file":
		return set(&cfg.TLSCertFile)
	case "tls-key-file":
		return set(&cfg.TLSKeyFile)
	case "console-idle-timeout":
		return dur(&cfg.ConsoleIdleTimeout)
	case "console-max-age":
		return dur(&cfg.ConsoleMaxAge)
	case "gateway-id":
		return set(&cfg.GatewayID)
	case "admin-socket":
		return set(&cfg.AdminSocket)
	case "store":
		return set(&cfg.Store)
	case "master-key-file":
		return set(&cfg.MasterKeyFile)
	case "host-key-file":
		return set(&cfg.HostKeyFile)
	case "ca-key-file":
		return set(&cfg.CAKeyFile)
	case "log-level":
		return set(&cfg.LogLevel)
	case "log-format":
		return set(&cfg.LogFormat)
	case "auth-timeout":
		return dur(&cfg.AuthTimeout)
	case "dial-timeout":
		return dur(&cfg.DialTimeout)
	case "shutdown-timeout":
		return dur(&cfg.ShutdownTimeout)
	case "reload-interval":
		return dur(&cfg.ReloadInterval)
	case "diag-addr":
		return set(&cfg.DiagAddr)
	case "recordings-dir":
		return set(&cfg.RecordingsDir)
	case "recordings-retention":
		return dur(&cfg.RecordingsRetention)
	case "recordings-store":
		return set(&cfg.RecordingsStore)
	case "recordings-store-credentials":
		return set(&cfg.RecordingsStoreCredentials)
	case "audit-syslog":
		return set(&cfg.AuditSyslog)
	case "audit-retention":
		return dur(&cfg.AuditRetention)
	case "audit-checkpoint-interval":
		return dur(&cfg.AuditCheckpointInterval)
	case "audit-checkpoint-events":
		n, err := strconv.Atoi(value)
		if err != nil {
			return fmt.Errorf("flag --%s: %q is not a number", name, value)
		}
		cfg.AuditCheckpointEvents = n
		return nil
	case "ssh-proxy-protocol":
		return boolean(&cfg.SSHProxyProtocol)
	case "local-target":
		return boolean(&cfg.LocalTarget)
	case "agent-binary":
		return set(&cfg.AgentBinary)
	case "retention-force":
		return boolean(&cfg.RetentionForce)
	case "api-proxy-protocol":
		return boolean(&cfg.APIProxyProtocol)
	case "proxy-protocol-from":
		return list(&cfg.ProxyProtocolFrom)
	case "auth-start-timeout":
		return dur(&cfg.AuthStartTimeout)
	case "ssh-max-startups":
		return set(&cfg.SSHMaxStartups)
	case "ssh-max-startups-per-source":
		v, err := strconv.Atoi(value)
		if err != nil {
			return fmt.Errorf("flag --%s: %q is not a whole number", name, value)
		}
		cfg.SSHMaxStartupsPerSource = v
		return nil
	case "ssh-accept-env":
		if err := list(&cfg.SSHAcceptEnv); err != nil {
			return err
		}
		if cfg.SSHAcceptEnv == nil {
			cfg.SSHAcceptEnv = []string{} // --ssh-accept-env= passes none
		}
		return nil
	}
	return fmt.Errorf("unknown flag --%s", name)
}

// Resolve fills derived paths and validates every key.
func (c *Config) Resolve() error {
	if c.DataDir == "" {
		return errors.New("data_dir: is required")
	}
	def := func(p *string, name string) {
		if *p == "" {
			*p = filepath.Join(c.DataDir, name)
		}
	}
	def(&c.AdminSocket, "admin.sock")
	def(&c.MasterKeyFile, "master.key")
	def(&c.HostKeyFile, "ssh_host_ed25519_key")
	def(&c.CAKeyFile, "user_ca.sealed")
	def(&c.RecordingsDir, "recordings")
	if c.Store == "" {
		c.Store = "sqlite:" + filepath.Join(c.DataDir, "portcullis.db")
	}
	if _, err := c.SQLitePath(); err != nil {
		return err
	}
	if abs, err := filepath.Abs(c.AdminSocket); err == nil && len(abs) > 107 {
		return fmt.Errorf("admin_socket: %q is %d bytes; unix socket paths are limited to 107 (use a shorter data_dir)", abs, len(abs))
	}
	if _, _, err := net.SplitHostPort(c.SSHAddr); err != nil {
		return fmt.Errorf("ssh_addr: %q is not host:port: %v", c.SSHAddr, err)
	}
	if c.APIAddr != "" {
		if _, _, err := net.SplitHostPort(c.APIAddr); err != nil {
			return fmt.Errorf("api_addr: %q is not host:port: %v", c.APIAddr, err)
		}
	}
	if c.PGAddr != "" {
		if _, _, err := net.SplitHostPort(c.PGAddr); err != nil {
			return fmt.Errorf("pg_addr: %q is not host:port: %v", c.PGAddr, err)
		}
	}
	if c.AgentAddr != "" {
		if _, _, err := net.SplitHostPort(c.AgentAddr); err != nil {
			return fmt.Errorf("agent_addr: %q is not host:port: %v", c.AgentAddr, err)
		}
	}
	if c.GatewayID != "" && !gatewayIDPattern.MatchString(c.GatewayID) {
		return fmt.Errorf("gateway_id: %q is not 1 to 63 letters, digits, '.', '_' or '-'", c.GatewayID)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("tls_cert_file and tls_key_file: give both, or neither for a generated self-signed certificate")
	}
	if c.RecordingsRetention < 0 {
		return fmt.Errorf("recordings_retention: must not be negative, got %s", c.RecordingsRetention.String())
	}
	if _, err := c.ObjectStore(); err != nil {
		return err
	}
	if c.AuditRetention < 0 {
		return fmt.Errorf("audit_retention: must not be negative, got %s", c.AuditRetention.String())
	}
	for _, r := range []struct {
		key string
		d   Duration
	}{{"audit_retention", c.AuditRetention}, {"recordings_retention", c.RecordingsRetention}} {
		if r.d > 0 && time.Duration(r.d) < MinRetention && !c.RetentionForce {
			return fmt.Errorf("%s: %s is under 12 months (365d), which compliance reports need (PCI DSS 10.5.1 keeps a year); set retention_force (--retention-force) to keep less anyway",
				r.key, r.d.String())
		}
	}
	if c.AuditCheckpointEvents < 1 {
		return fmt.Errorf("audit_checkpoint_events: must be 1 or more, got %d", c.AuditCheckpointEvents)
	}
	if c.AuditCheckpointInterval < Duration(time.Second) {
		return fmt.Errorf("audit_checkpoint_interval: must be 1s or more, got %s", c.AuditCheckpointInterval.String())
	}
	if c.AuditSyslog != "" {
		u, err := url.Parse(c.AuditSyslog)
		if err != nil || (u.Scheme != "udp" && u.Scheme != "tcp") || u.Port() == "" {
			return fmt.Errorf("audit_syslog: %q is not udp://HOST:PORT or tcp://HOST:PORT", c.AuditSyslog)
		}
	}
	if c.DiagAddr != "" {
		host, _, err := net.SplitHostPort(c.DiagAddr)
		ip := net.ParseIP(host)
		if err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return fmt.Errorf("diag_addr: %q must be a loopback host:port (profiles need no credentials)", c.DiagAddr)
		}
	}
	if _, err := c.parseProxyProtocolFrom(); err != nil {
		return err
	}
	if _, _, _, err := c.MaxStartups(); err != nil {
		return err
	}
	if c.SSHMaxStartupsPerSource < 1 {
		return fmt.Errorf("ssh_max_startups_per_source: must be at least 1, got %d", c.SSHMaxStartupsPerSource)
	}
	for _, e := range c.SSHAcceptEnv {
		if !validEnvPattern(e) {
			return fmt.Errorf("ssh_accept_env: %q is not a variable name or a glob of one (letters, digits, '_', '*', '?')", e)
		}
	}
	if (c.SSHProxyProtocol || c.APIProxyProtocol) && len(c.ProxyProtocolFrom) == 0 {
		return errors.New("proxy_protocol_from: required with ssh_proxy_protocol or api_proxy_protocol: list the load balancers' addresses (CIDRs), so that no one else can claim a client address")
	}
	if _, err := c.Level(); err != nil {
		return err
	}
	if c.Directory != nil {
		if err := c.Directory.validate(); err != nil {
			return err
		}
	}
	if c.OIDC != nil {
		if err := c.OIDC.validate(); err != nil {
			return err
		}
	}
	if c.JIT != nil {
		if err := c.JIT.validate(); err != nil {
			return err
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("log_format: %q is not text or json", c.LogFormat)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"auth_timeout", c.AuthTimeout}, {"auth_start_timeout", c.AuthStartTimeout}, {"dial_timeout", c.DialTimeout}, {"shutdown_timeout", c.ShutdownTimeout}, {"reload_interval", c.ReloadInterval},
		{"console_idle_timeout", c.ConsoleIdleTimeout}, {"console_max_age", c.ConsoleMaxAge}} {
		if d.v <= 0 {
			return fmt.Errorf("%s: must be positive, got %s", d.key, d.v.String())
		}
	}
	return nil
}

// TrustedProxies returns ProxyProtocolFrom as prefixes, a single address
// as a prefix of its own. Resolve has checked them; on a Config it has not,
// parsing stops at the first bad entry: fewer balancers trusted, never more.
func (c *Config) TrustedProxies() []netip.Prefix {
	p, _ := c.parseProxyProtocolFrom()
	return p
}

func (c *Config) parseProxyProtocolFrom() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.ProxyProtocolFrom {
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return out, fmt.Errorf("proxy_protocol_from: %q is not an IP address or CIDR", s)
			}
			// Peers are matched unmapped (an IPv4 balancer on a
			// dual-stack socket), so an IPv4-mapped entry is too.
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return out, fmt.Errorf("proxy_protocol_from: %q is not a CIDR like 10.0.0.0/24: %v", s, err)
		}
		if p.Addr().Is4In6() {
			return out, fmt.Errorf("proxy_protocol_from: %q is IPv4-mapped; write the IPv4 CIDR", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// StorePostgres reports whether the store is a PostgreSQL URL
// (postgres:// or postgresql://), which several gateways may share.
func (c *Config) StorePostgres() bool {
	return strings.HasPrefix(c.Store, "postgres://") || strings.HasPrefix(c.Store, "postgresql://")
}

// SQLitePath returns the database file of a "sqlite:PATH" store, or ""
// for a PostgreSQL store.
func (c *Config) SQLitePath() (string, error) {
	if c.StorePostgres() {
		if _, err := url.Parse(c.Store); err != nil {
			// Not quoted: the URL may hold a password.
			return "", errors.New("store: the PostgreSQL URL does not parse (postgres://USER:PASSWORD@HOST:PORT/DB)")
		}
		return "", nil
	}
	scheme, rest, ok := strings.Cut(c.Store, ":")
	switch {
	case !ok || rest == "":
		return "", fmt.Errorf("store: %q is not sqlite:PATH or a postgres:// URL", c.Store)
	case scheme == "sqlite":
		return rest, nil
	}
	return "", fmt.Errorf("store: unknown scheme %q (want sqlite:PATH or postgres://...)", scheme)
}

// Level returns the slog level for LogLevel.
func (c *Config) Level() (slog.Level, error) {
	switch strings.ToLower(c.LogLevel) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel)
}

// MaxStartups parses SSHMaxStartups ("start:rate:full", or "full" alone,
// which starts early drops at full too).
func (c *Config) MaxStartups() (start, rate, full int, err error) {
	bad := func() (int, int, int, error) {
		return 0, 0, 0, fmt.Errorf("ssh_max_startups: %q is not start:rate:full with 1 <= start <= full and rate a percentage 1-100, like 10:30:100", c.SSHMaxStartups)
	}
	parts := strings.Split(c.SSHMaxStartups, ":")
	nums := make([]int, len(parts))
	for i, p := range parts {
		if nums[i], err = strconv.Atoi(p); err != nil {
			return bad()
		}
	}
	switch len(nums) {
	case 1:
		start, rate, full = nums[0], 100, nums[0]
	case 3:
		start, rate, full = nums[0], nums[1], nums[2]
	default:
		return bad()
	}
	if start < 1 || start > full || rate < 1 || rate > 100 {
		return bad()
	}
	return start, rate, full, nil
}

// validEnvPattern is sshgate.ValidEnvPattern, repeated so that config does
// not import a front: a variable name in which '*' and '?' may stand for
// characters.
func validEnvPattern(p string) bool {
	if p == "" || len(p) > 128 {
		return false
	}
	for _, r := range p {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '*', r == '?':
		default:
			return false
		}
	}
	return true
}

// ObjectStore returns the object store RecordingsStore names; its Bucket
// is empty for local recordings.
func (c *Config) ObjectStore() (objstore.Config, error) {
	if c.RecordingsStore == "" || c.RecordingsStore == "local" {
		if c.RecordingsStoreCredentials != "" {
			return objstore.Config{}, errors.New("recordings_store_credentials: only for an s3:// recordings_store")
		}
		return objstore.Config{}, nil
	}
	oc, err := objstore.ParseURL(c.RecordingsStore)
	if err != nil {
		return objstore.Config{}, fmt.Errorf("recordings_store: %w", err)
	}
	oc.CredentialsFile = c.RecordingsStoreCredentials
	return oc, nil
}
