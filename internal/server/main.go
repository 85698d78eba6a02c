package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/buildinfo"
	"github.com/portcullis/portcullis/internal/config"
)

// Main runs `portcullis serve ARGS` and returns the process exit code:
// 0 after a clean shutdown, 2 for a usage or configuration error, 1 when
// the gateway could not start or a listener failed.
func Main(args []string, stdout, stderr io.Writer) int {
	cfg, err := config.Parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "portcullis serve: %v\n", err)
		return 2
	}
	log, err := NewLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis serve: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := New(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis serve: %v\n", err)
		return 1
	}
	// Once the data directory is ours: a refused second serve says only
	// why it was refused.
	bi := buildinfo.Read()
	log.Info("portcullis started", "version", bi.Version, "commit", bi.Commit)
	printWelcome(stdout, cfg, srv)
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "portcullis serve: %v\n", err)
		return 1
	}
	return 0
}

func printWelcome(w io.Writer, cfg config.Config, srv *Server) {
	dataDir := cfg.DataDir
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	self := "portcullis"
	if exe, err := os.Executable(); err == nil {
		self = exe
	}
	https := "off (api_addr is empty)"
	if a := srv.APIAddr(); a != nil {
		https = fmt.Sprintf("https://%s:%s/  (API under /api/v1, web console under /ui/)\n  TLS cert:     SHA-256 %s",
			hostOf(a.String()), portOf(a.String()), srv.TLSFingerprint())
	}
	local := ""
	if cfg.LocalTarget {
		// make run's quick start: say where the README picks up.
		local = fmt.Sprintf("\n  target local: this machine, through the built-in agent; README.md \"Quick start\" grants\n"+
			"                it to you, then: ssh -p %s $USER~local@%s\n", portOf(srv.SSHAddr().String()), hostOf(srv.SSHAddr().String()))
	}
	fmt.Fprintf(w, `Portcullis is running.
  SSH:          %s
  host key:     %s
  HTTPS:        %s
  admin socket: %s
  data:         %s
%s
Next steps, in another terminal (README.md "Quick start" has a complete example):
  export %s=%s
  %s apply -f resources.yaml                # users, targets, accounts, policies
  %s account pubkey TARGET/ACCOUNT          # add to the target's authorized_keys
  ssh -p %s USER~TARGET@%s
  %s user passwd USER                       # a console password for an admin user
  %s apikey create --name ci --kind access --owner USER   # a key for scripts (X-API-KEY)

Stop with Ctrl-C (sessions get %s to finish).
`, srv.SSHAddr(), ssh.FingerprintSHA256(srv.HostKey()), https, cfg.AdminSocket, dataDir, local,
		config.EnvDataDir, dataDir, self, self, portOf(srv.SSHAddr().String()), hostOf(srv.SSHAddr().String()),
		self, self, cfg.ShutdownTimeout.String())
}

func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "::" || host == "0.0.0.0" {
		return "GATEWAY"
	}
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}
