package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// EnvRegistrationKey carries the registration key without putting it on a
// command line, where every user of the host can read it in the process
// list.
const EnvRegistrationKey = "PORTCULLIS_REGISTRATION_KEY"

const usage = `Usage: portcullis agent --gateway HOST:PORT [--registration-key KEY] [--name N]
                        [--environment E] [--labels k=v,...] [--sshd 127.0.0.1:22] [--force]

Runs on a target: keeps one outbound, mutually authenticated SSH connection
to the gateway's agent address (agent_addr), so that the target needs no
inbound port. The first run registers the target with a registration key
(also read from $PORTCULLIS_REGISTRATION_KEY, which keeps it out of the
process list); later runs need no key. Sessions to the target go through
the gateway's policy, command control, recording and audit as for any
OpenSSH target.

With --sshd the agent forwards sessions to the host's own sshd; without it
the agent serves them itself (built-in mode).

Flags:
`

// Main runs `portcullis agent ARGS` and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("portcullis agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg    Config
		labels string
		level  string
		only   bool
	)
	fs.StringVar(&cfg.Gateway, "gateway", "", "the gateway's agent `address`, HOST:PORT")
	fs.StringVar(&cfg.RegistrationKey, "registration-key", "", "registration `key` for the first run (prefer $"+EnvRegistrationKey+")")
	fs.StringVar(&cfg.Name, "name", "", "target `name` to register as (default: the host name)")
	fs.StringVar(&cfg.Environment, "environment", "", "`environment` to register in (a key scoped to one sets it)")
	fs.StringVar(&labels, "labels", "", "target labels, `k=v,...`")
	fs.BoolVar(&cfg.Force, "force", false, "replace the agent registered under the name with this one")
	fs.StringVar(&cfg.SSHD, "sshd", "", "forward sessions to this host's sshd at `address` (e.g. 127.0.0.1:22); default: built-in mode")
	fs.StringVar(&cfg.StateDir, "state-dir", "/var/lib/portcullis-agent", "`directory` of the agent's identity (0600) and state")
	fs.StringVar(&cfg.GatewayHostKey, "gateway-host-key", "", "the gateway's host `key` or SHA256: fingerprint, checked at registration (default: trust and pin the first one seen)")
	fs.StringVar(&level, "log-level", "info", "`level`: debug, info, warn or error")
	fs.BoolVar(&only, "register-only", false, "register if not registered yet, then exit (the autodiscovery script does this before it starts the service)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "portcullis agent: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if cfg.RegistrationKey == "" {
		cfg.RegistrationKey = os.Getenv(EnvRegistrationKey)
	}
	// The key is not for the processes the agent starts.
	os.Unsetenv(EnvRegistrationKey)
	var err error
	if cfg.Labels, err = parseLabels(labels); err != nil {
		fmt.Fprintf(stderr, "portcullis agent: --labels: %v\n", err)
		return 2
	}
	if cfg.Name == "" {
		if cfg.Name, err = os.Hostname(); err != nil {
			fmt.Fprintf(stderr, "portcullis agent: --name: %v\n", err)
			return 2
		}
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(stderr, "portcullis agent: --log-level: %q is not debug, info, warn or error\n", level)
		return 2
	}
	cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	if cfg.SSHD == "" {
		b, err := NewBuiltin(BuiltinConfig{Log: cfg.Log})
		if err != nil {
			fmt.Fprintf(stderr, "portcullis agent: %v\n", err)
			return 1
		}
		cfg.Builtin = b
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis agent: %v\n", err)
		return 1
	}
	if a.NeedsRegistration() {
		if err := a.Register(ctx); err != nil {
			fmt.Fprintf(stderr, "portcullis agent: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "registered as target %s at %s\n", a.Target(), cfg.Gateway)
	}
	if only {
		return 0
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "portcullis agent: %v\n", err)
		return 1
	}
	return 0
}

// parseLabels reads k=v,k=v.
func parseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("label %q given twice", k)
		}
		out[k] = v
	}
	return out, nil
}
