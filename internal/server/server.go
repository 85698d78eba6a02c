// Package server is the composition root of `portcullis serve`: it turns a
// config into running parts (keys, store, inventory, audit, the SSH front,
// the admin API), runs their listeners, and stops them gracefully.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/agent"
	"github.com/portcullis/portcullis/internal/agentgate"
	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/authlimit"
	"github.com/portcullis/portcullis/internal/buildinfo"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/directory"
	"github.com/portcullis/portcullis/internal/fdlimit"
	"github.com/portcullis/portcullis/internal/httpproxy"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/jit"
	"github.com/portcullis/portcullis/internal/kubeproxy"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/objstore"
	"github.com/portcullis/portcullis/internal/pgproxy"
	"github.com/portcullis/portcullis/internal/provision"
	"github.com/portcullis/portcullis/internal/proxyproto"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/report"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/rotate"
	"github.com/portcullis/portcullis/internal/sshgate"
	"github.com/portcullis/portcullis/internal/sso"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/postgres"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
	"github.com/portcullis/portcullis/internal/web"
)

// Server is a built gateway, ready to Run.
type Server struct {
	cfg   config.Config
	log   *slog.Logger
	store store.Store
	inv   *inventory.Inventory
	gate  *sshgate.Server
	api   http.Handler

	hostKey ssh.Signer
	ca      *vault.CA

	recordings *recording.Manager
	syslog     *audit.Syslog
	audit      *audit.Log
	mfa        *mfa.Service
	// directory signs in directory users; nil without a directory section.
	directory *directory.Directory
	sso       *sso.Provider // nil without an oidc: section
	// rotator rotates account keys on demand (API) and on schedule (Run).
	rotator *rotate.Rotator
	// jit files, decides and expires just-in-time requests; slack, when
	// configured, announces them and takes decisions from its buttons.
	jit   *jit.Service
	slack *jit.Slack
	// jitNow is the just-in-time service's clock, read on every use:
	// time.Now unless a test in this package moves it (set after New,
	// before Run).
	jitNow func() time.Time
	// reportSchedules runs scheduled compliance reports.
	reportSchedules *report.Scheduler
	spool           *audit.Spool
	// checkpoints signs the audit trail's head and runs audit retention.
	checkpoints *audit.Checkpointer
	health      *storeHealth
	// failures is the budget of failed sign-ins per source that the SSH
	// and PostgreSQL fronts share: a guesser gets one budget, not one per
	// protocol.
	failures *authlimit.Limiter

	sshLn   net.Listener
	adminLn net.Listener
	// pg is the PostgreSQL front and pgLn its listener; nil when pg_addr
	// is empty.
	pg   *pgproxy.Server
	pgLn net.Listener
	// agents is the front of targets that dial out and agentLn its
	// listener; nil when agent_addr is empty.
	agents  *agentgate.Server
	agentLn net.Listener
	// local is the built-in agent serving this machine as target
	// "local" (local_target); nil without it.
	local *agent.Agent
	// webAPI is the web API front (http targets) over the HTTPS
	// listener; nil when api_addr is empty. vault opens its service
	// accounts' secrets.
	webAPI *httpproxy.Server
	// kube is the Kubernetes front over the HTTPS listener; nil when
	// api_addr is empty.
	kube  *kubeproxy.Server
	vault *vault.Vault
	// apiLn is the HTTPS listener (TLS already wrapped); nil when
	// api_addr is empty.
	apiLn   net.Listener
	apiTLS  tls.Certificate
	https   http.Handler
	console *web.Console
	metrics *metrics.Metrics

	// lock is held on the data directory from the start of New to the
	// end of close: one gateway per data directory.
	lock *dataLock
}

// NewLogger builds the slog logger the config asks for.
func NewLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	level, err := cfg.Level()
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// New builds every part and binds the listeners, so that an address in use
// or an unreadable key is reported before anything is served. On error,
// whatever was opened is closed again.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Server, err error) {
	s := &Server{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	// Before anything reads or writes the data directory: no other user
	// may write there, and no other gateway may be running on it.
	if err := checkNotWritableByOthers("data directory", cfg.DataDir); err != nil {
		return nil, err
	}
	if s.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	// Every session holds about three descriptors: run out and accept,
	// dial and recording fail for everyone. Go raises the soft limit at
	// start already; this says so in the log, once, when this gateway
	// is the one starting on the data directory.
	if soft, hard, err := fdlimit.Raise(); err != nil {
		log.Warn("open file limit not raised", "soft", soft, "hard", hard, "err", err)
	} else {
		log.Info("open file limit", "soft", soft, "hard", hard)
	}
	tlsKey := cfg.TLSKeyFile
	if tlsKey == "" && (cfg.APIAddr != "" || cfg.PGAddr != "") {
		tlsKey = filepath.Join(cfg.DataDir, "api_tls.key")
	}
	if err := checkKeyFiles(map[string]string{"master key": cfg.MasterKeyFile,
		"host key": cfg.HostKeyFile, "user CA key": cfg.CAKeyFile, "TLS key": tlsKey}); err != nil {
		return nil, err
	}
	v, created, err := vault.LoadOrCreateMasterKey(cfg.MasterKeyFile)
	s.vault = v
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if created {
		log.Info("generated master key", "file", cfg.MasterKeyFile)
	}
	s.hostKey, created, err = vault.LoadOrCreateHostKey(cfg.HostKeyFile)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if created {
		log.Info("generated host key", "file", cfg.HostKeyFile)
	}
	// Like sshd, publish the public half beside it, for known_hosts lines
	// and `ssh-keygen -l -f`.
	pubLine := ssh.MarshalAuthorizedKey(s.hostKey.PublicKey())
	if old, err := os.ReadFile(cfg.HostKeyFile + ".pub"); err != nil || string(old) != string(pubLine) {
		if err := os.WriteFile(cfg.HostKeyFile+".pub", pubLine, 0o644); err != nil {
			return nil, fmt.Errorf("write host public key: %w", err)
		}
	}
	if s.ca, err = v.LoadOrCreateCA(cfg.CAKeyFile); err != nil {
		return nil, fmt.Errorf("user CA: %w", err)
	}
	dbPath, err := cfg.SQLitePath()
	if err != nil {
		return nil, err
	}
	// Each backend's Open returns a typed pointer: assigning it to s.store
	// before checking the error would put a typed nil in the interface, and
	// close() would call Close on it and panic instead of printing the cause.
	if cfg.StorePostgres() {
		pg, err := postgres.Open(ctx, cfg.Store)
		if err != nil {
			return nil, fmt.Errorf("open store (PostgreSQL %s): %s", redactDSN(cfg.Store), oneLine(err))
		}
		s.store = pg
	} else {
		lite, err := sqlite.Open(ctx, dbPath)
		if err != nil {
			return nil, fmt.Errorf("open store (SQLite %s): %s", dbPath, oneLine(err))
		}
		s.store = lite
	}
	if s.inv, err = inventory.New(ctx, s.store, v, log); err != nil {
		return nil, fmt.Errorf("load resources: %w", err)
	}
	auditLog := audit.New(s.store, log)
	s.audit = auditLog
	// Events the store cannot take (a shared database restarting) wait
	// here and are appended in order when it is back.
	if s.spool, err = audit.OpenSpool(filepath.Join(cfg.DataDir, "audit.spool"), log.With("part", "audit")); err != nil {
		return nil, err
	}
	auditLog.SetSpool(s.spool)
	if cfg.AuditSyslog != "" {
		if s.syslog, err = audit.NewSyslog(cfg.AuditSyslog, log); err != nil {
			return nil, fmt.Errorf("audit_syslog: %w", err)
		}
		auditLog.SetSyslog(s.syslog)
	}
	if s.recordings, err = recording.NewManager(cfg.RecordingsDir, s.store, log.With("part", "recording")); err != nil {
		return nil, fmt.Errorf("recordings: %w", err)
	}
	oc, err := cfg.ObjectStore()
	if err != nil {
		return nil, err
	}
	if oc.Bucket != "" {
		if !oc.Secure && !loopbackHost(oc.Endpoint) {
			// Allowed (a private network, a sidecar), but said: with
			// unsigned payloads nothing but the recordings' own hashes
			// protects them on the way, and nothing keeps them secret.
			log.Warn("recordings_store endpoint is plain http: recordings cross the network unencrypted", "endpoint", oc.Endpoint)
		}
		objects, err := objstore.Open(ctx, oc)
		switch {
		case errors.Is(err, objstore.ErrUnavailable):
			// Recording goes on into the local spool, shipped once the
			// store answers: an outage of the store must not stop
			// sessions, nor a restart during one.
			log.Warn("recordings store does not answer; recordings wait in the local spool", "err", err)
		case err != nil:
			return nil, err
		}
		s.recordings.SetObjectStore(objects)
	}
	// Sessions a previous run did not end: close their recordings as
	// interrupted before anything new starts.
	gwID, err := gatewayID(cfg.GatewayID, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s.recordings.SetGateway(gwID)
	auditKey, created, err := audit.LoadOrCreateKey(ctx, s.store, v)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("generated audit key", "public_key", auditKey.AuthorizedKey())
	}
	s.checkpoints = audit.NewCheckpointer(audit.CheckpointConfig{Store: s.store, Key: auditKey, Gateway: gwID,
		File: filepath.Join(cfg.DataDir, "audit.checkpoints"), Syslog: s.syslog, Audit: auditLog,
		Log: log.With("part", "audit"), Every: cfg.AuditCheckpointEvents,
		Interval: time.Duration(cfg.AuditCheckpointInterval), Retention: time.Duration(cfg.AuditRetention)})
	auditLog.SetCheckpointer(s.checkpoints)
	interrupted, err := s.recordings.Recover(ctx)
	if err != nil {
		return nil, fmt.Errorf("recover recordings: %w", err)
	}
	for _, r := range interrupted {
		_ = auditLog.Write(ctx, store.AuditEvent{Type: audit.RecordingInterrupted, Outcome: audit.Info, SessionID: r.ID,
			User: r.User, Target: r.Target, Account: r.Account,
			Message: "recording of a session the gateway did not end closed as interrupted",
			Detail:  map[string]any{"recording_sha256": r.SHA256, "recording_bytes": r.Size}})
	}
	if s.mfa, err = mfa.New(mfa.Config{Store: s.store, Vault: v, Audit: auditLog, Log: log.With("part", "mfa")}); err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	s.metrics = metrics.New()
	s.metrics.RecordingSpool(s.recordings.SpoolPending)
	s.health = &storeHealth{check: func(ctx context.Context) error {
		_, err := s.store.Revision(ctx)
		return err
	}}
	if s.directory, err = openDirectory(cfg.Directory); err != nil {
		return nil, err
	}
	if s.sso, err = openSSO(cfg.OIDC); err != nil {
		return nil, err
	}
	prov, err := provision.New(provision.Config{Inventory: s.inv, Vault: v, HostKeys: s.store, Audit: auditLog,
		Log: log.With("part", "provision"), DialTimeout: time.Duration(cfg.DialTimeout)})
	if err != nil {
		return nil, err
	}
	var startups [3]int
	if startups[0], startups[1], startups[2], err = cfg.MaxStartups(); err != nil {
		return nil, err
	}
	if cfg.LocalTarget && cfg.AgentAddr == "" {
		// The local agent needs the agent front; only it uses this port.
		cfg.AgentAddr = "127.0.0.1:0"
		s.cfg.AgentAddr = cfg.AgentAddr
	}
	if cfg.AgentAddr != "" {
		if s.agents, err = agentgate.New(agentgate.Config{HostKey: s.hostKey, Store: s.store, Inventory: s.inv,
			Audit: auditLog, Log: log.With("front", "agent"), UserCA: s.ca.PublicKey(), GatewayID: gwID,
			Settings: s.store}); err != nil {
			return nil, err
		}
	}
	files := &fdlimit.Budget{}
	s.metrics.FileHeadroom(files.Free)
	if err := s.buildJIT(auditLog); err != nil {
		return nil, err
	}
	s.failures = authlimit.New(0, 0) // the fronts' defaults: 20, then 10 a minute
	s.gate, err = sshgate.New(sshgate.Config{
		JITUsed:     s.jit.Used,
		Failures:    s.failures,
		Files:       files,
		Directory:   s.directoryLogin(),
		SSO:         s.sshSSO(),
		Metrics:     s.metrics,
		Available:   s.health.Available,
		HostKey:     s.hostKey,
		Snapshot:    s.inv.Snapshot,
		Vault:       v,
		CA:          s.ca,
		HostKeys:    s.store,
		Audit:       auditLog,
		Log:         log.With("front", "ssh"),
		AuthTimeout: time.Duration(cfg.AuthTimeout),
		DialTimeout: time.Duration(cfg.DialTimeout),
		Recordings:  s.recordings,
		Commands:    s.store,
		MFA:         s.mfa,
		Provisioner: prov,
		Agents:      s.agentDialer(),

		AuthStartTimeout:    time.Duration(cfg.AuthStartTimeout),
		PreAuthStart:        startups[0],
		PreAuthRate:         startups[1],
		MaxPreAuth:          startups[2],
		MaxPreAuthPerSource: cfg.SSHMaxStartupsPerSource,
		AcceptEnv:           cfg.SSHAcceptEnv,
	})
	if err != nil {
		return nil, err
	}
	s.inv.Subscribe(s.gate.Recheck)
	if s.agents != nil {
		s.inv.Subscribe(s.agents.Recheck)
	}
	if s.rotator, err = rotate.New(rotate.Config{Inventory: s.inv, Vault: v, HostKeys: s.store, Audit: auditLog,
		Log: log.With("part", "rotate"), DialTimeout: time.Duration(cfg.DialTimeout)}); err != nil {
		return nil, err
	}
	if err := s.buildPG(v); err != nil {
		return nil, err
	}
	reportSrc := &report.Source{Store: s.store,
		Resources:       func(ctx context.Context) ([]resource.Object, error) { return s.inv.List(ctx, "") },
		DirectoryGroups: s.directoryGroups(),
		RecordingURL:    func(id string) string { return "/ui/recordings/" + url.PathEscape(id) }}
	reports := &report.Generator{Source: reportSrc, Signer: auditKey, Version: buildinfo.Read().Version, Audit: auditLog.Write}
	reviews := &report.Reviews{Source: reportSrc, Inventory: s.inv, Audit: auditLog.Write}
	s.reportSchedules = &report.Scheduler{Generator: reports, Reviews: reviews, Store: s.store, Audit: auditLog.Write, Log: log.With("part", "report")}
	s.api = api.New(api.Config{Inventory: s.inv, Store: s.store, CA: s.ca, Audit: auditLog, Log: log.With("front", "api"),
		Sessions: s.sessions(), Recordings: s.recordings, Metrics: s.metrics, MFA: s.mfa, Rotator: s.rotator,
		Checkpoints: s.checkpoints, SSHAddr: s.sshAddrString, JIT: s.jit,
		Reports: reports, Reviews: reviews,
		Schedules: s.reportSchedules,
		AgentAddr: s.agentAddrString, AgentBinary: agentBinary(cfg.AgentBinary), HostKey: s.hostKey.PublicKey(),
		KubeCredentials: s.kubeCredential})

	if s.adminLn, err = listenAdmin(cfg.AdminSocket); err != nil {
		return nil, err
	}
	if s.sshLn, err = net.Listen("tcp", cfg.SSHAddr); err != nil {
		return nil, fmt.Errorf("listen ssh on %s: %w", cfg.SSHAddr, err)
	}
	if cfg.SSHProxyProtocol {
		s.sshLn = proxyproto.NewListener(s.sshLn, proxyproto.Config{Trusted: cfg.TrustedProxies(), Log: log.With("front", "ssh")})
	}
	if cfg.APIAddr != "" {
		if err := s.listenHTTPS(); err != nil {
			return nil, err
		}
	}
	if s.pg != nil {
		if s.pgLn, err = net.Listen("tcp", cfg.PGAddr); err != nil {
			return nil, fmt.Errorf("listen postgres on %s: %w", cfg.PGAddr, err)
		}
	}
	if s.agents != nil {
		if s.agentLn, err = net.Listen("tcp", cfg.AgentAddr); err != nil {
			return nil, fmt.Errorf("listen for agents on %s: %w", cfg.AgentAddr, err)
		}
	}
	if cfg.LocalTarget {
		if s.local, err = s.localAgent(ctx); err != nil {
			return nil, fmt.Errorf("local target: %w", err)
		}
	}
	return s, nil
}

// listenAdmin binds the admin socket with mode 0600. A stale socket left by
// a killed gateway is removed; a live one means another gateway uses this
// data directory, which is refused.
func listenAdmin(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("admin socket %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s is in use: is another gateway running on this data directory?", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale admin socket: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("admin socket directory: %w", err)
	}
	// The umask makes the socket 0600 from its creation, with no window in
	// which another local user could connect.
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod admin socket: %w", err)
	}
	return ln, nil
}

// sshAddrString is SSHAddr as a string, "" before the listener exists
// (the API reads it per request, after New has bound it).
func (s *Server) sshAddrString() string {
	if s.sshLn == nil {
		return ""
	}
	return s.sshLn.Addr().String()
}

// SSHAddr returns the bound SSH address (useful when the config asked for
// port 0).
func (s *Server) SSHAddr() net.Addr { return s.sshLn.Addr() }

// APIAddr returns the bound HTTPS address, nil when api_addr is empty.
func (s *Server) APIAddr() net.Addr {
	if s.apiLn == nil {
		return nil
	}
	return s.apiLn.Addr()
}

// TLSFingerprint is the SHA-256 fingerprint of the HTTPS certificate.
func (s *Server) TLSFingerprint() string { return certFingerprint(s.apiTLS) }

// HostKey returns the gateway's SSH host public key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// Run serves until ctx is cancelled, then shuts down gracefully: stop
// accepting, let sessions finish for up to ShutdownTimeout, close the rest
// (each writes its end event), then close the store.
func (s *Server) Run(ctx context.Context) error {
	tuneGC()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)

	adminSrv := &http.Server{
		Handler:           api.WithLocalAdmin(s.api),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          httpErrorLog(s.log),
	}
	var httpsSrv *http.Server
	if s.apiLn != nil {
		httpsSrv = &http.Server{
			Handler:           s.https,
			ReadHeaderTimeout: 10 * time.Second,
			// The whole request, body included: a client trickling a
			// body (to the unauthenticated sign-in, say) must not hold a
			// connection for ever. Streams are answers, not requests.
			ReadTimeout:    time.Minute,
			IdleTimeout:    2 * time.Minute,
			MaxHeaderBytes: 64 << 10,
			ErrorLog:       httpErrorLog(s.log),
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			s.console.Run(runCtx)
		}()
		go func() {
			defer wg.Done()
			if err := httpsSrv.Serve(s.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("HTTPS API: %w", err)
			}
		}()
	}
	if s.cfg.DiagAddr != "" {
		diag, err := serveDiag(s.cfg.DiagAddr, s.log)
		if err != nil {
			return err
		}
		defer diag.Close()
	}
	wg.Add(5)
	go func() {
		defer wg.Done()
		s.recordings.Run(runCtx)
	}()
	go func() {
		defer wg.Done()
		s.retention(runCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.checkpoints.Run(runCtx)
	}()
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.audit.Run(runCtx)
	}()
	go func() {
		defer wg.Done()
		s.health.run(runCtx, time.Second, func(down bool, err error) {
			if down {
				s.log.Error("store unreachable: refusing new logins until it answers", "err", err)
			} else {
				s.log.Info("store reachable again: accepting logins")
			}
		})
	}()
	if s.syslog != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.syslog.Run(runCtx)
		}()
	}
	go func() {
		defer wg.Done()
		if err := adminSrv.Serve(s.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin API: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := s.gate.Serve(runCtx, s.sshLn); err != nil {
			errc <- err
		}
	}()
	if s.pg != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.pg.Serve(runCtx, s.pgLn); err != nil {
				errc <- fmt.Errorf("postgres front: %w", err)
			}
		}()
	}
	if s.agents != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.agents.Serve(runCtx, s.agentLn); err != nil {
				errc <- fmt.Errorf("agent front: %w", err)
			}
		}()
	}
	if s.local != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.local.Run(runCtx)
		}()
	}
	go func() {
		defer wg.Done()
		s.inv.Watch(runCtx, time.Duration(s.cfg.ReloadInterval))
	}()
	// Just-in-time grants end on time to within this check's period;
	// the grant's own valid_until ends sessions on the second anyway.
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.jit.Run(runCtx, 15*time.Second)
	}()
	// Scheduled key rotation (Accounts with rotate_every): checked every
	// minute, which is plenty for periods of an hour or more.
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.rotator.Run(runCtx, time.Minute)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.reportSchedules.Run(runCtx)
	}()

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "grace", s.cfg.ShutdownTimeout.String())
	case runErr = <-errc:
		s.log.Error("listener failed; shutting down", "err", runErr)
	}
	shutCtx, shutCancel := context.WithTimeout(context.Background(), time.Duration(s.cfg.ShutdownTimeout))
	defer shutCancel()
	if err := s.gate.Shutdown(shutCtx); err != nil {
		s.log.Warn("sessions closed at the end of the grace period")
	}
	if s.pg != nil {
		if err := s.pg.Shutdown(shutCtx); err != nil {
			s.log.Warn("database sessions closed at the end of the grace period")
		}
	}
	if s.agents != nil {
		// After the SSH front: its sessions to agent targets have ended.
		if err := s.agents.Shutdown(shutCtx); err != nil {
			s.log.Warn("agent connections still closing at the end of the grace period")
		}
	}
	if httpsSrv != nil {
		if err := httpsSrv.Shutdown(shutCtx); err != nil {
			_ = httpsSrv.Close()
		}
	}
	if s.webAPI != nil {
		// After the listener: no request is left to audit.
		s.webAPI.Close()
	}
	if s.kube != nil {
		// Ends the exec and watch streams Shutdown does not wait for.
		s.kube.Close()
	}
	if err := adminSrv.Shutdown(shutCtx); err != nil {
		// The grace period is spent: cut off watchers and exports rather
		// than let them read a store that is about to close.
		_ = adminSrv.Close()
	}
	// Every session has written its end event: sign the head they leave,
	// so that removing the last events of this run shows too.
	ckCtx, ckCancel := context.WithTimeout(context.Background(), 10*time.Second)
	if _, _, err := s.checkpoints.Checkpoint(ckCtx); err != nil {
		s.log.Error("audit checkpoint at shutdown", "err", err)
	}
	ckCancel()
	cancel()
	wg.Wait()
	s.close()
	return runErr
}

// retention deletes recordings older than recordings_retention, hourly
// and once at start, each deletion audited.
func (s *Server) retention(ctx context.Context) {
	keep := time.Duration(s.cfg.RecordingsRetention)
	if keep <= 0 {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		ids, err := s.recordings.DeleteOlderThan(ctx, time.Now().Add(-keep))
		if err != nil && ctx.Err() == nil {
			s.log.Error("recordings retention", "err", err)
		}
		for _, id := range ids {
			_ = s.audit.Write(ctx, store.AuditEvent{Type: audit.RecordingDelete, Outcome: audit.Info, SessionID: id,
				User: "retention", Message: fmt.Sprintf("recording deleted by retention (older than %s)", keep),
				Detail: map[string]any{"by": "retention"}})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) close() {
	if s.webAPI != nil {
		s.webAPI.Close()
	}
	if s.kube != nil {
		s.kube.Close()
	}
	if s.sshLn != nil {
		s.sshLn.Close()
	}
	if s.adminLn != nil {
		s.adminLn.Close()
	}
	if s.pgLn != nil {
		s.pgLn.Close()
	}
	if s.agentLn != nil {
		s.agentLn.Close()
	}
	if s.apiLn != nil {
		s.apiLn.Close()
	}
	if s.spool != nil {
		if n := s.spool.Pending(); n > 0 {
			s.log.Warn("audit events still wait in the spool; they are appended at the next start", "events", n)
		}
		_ = s.spool.Close()
	}
	if s.recordings != nil {
		if n := s.recordings.SpoolPending(); n > 0 {
			s.log.Warn("recordings still wait in the local spool; they are shipped to the object store at the next start", "recordings", n)
		}
	}
	if s.directory != nil {
		s.directory.Close()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Error("close store", "err", err)
		}
	}
	// Last: nothing of this gateway touches the data directory any more.
	s.lock.release()
}

// tuneGC sets a soft memory limit unless the operator set GOMEMLIMIT. The
// collector keeps Go's default GOGC (100): a higher one measured faster
// bulk transfers on this machine kind (x/crypto allocates a buffer per
// received packet) but let idle sessions' garbage push resident memory past
// 128 KiB per session; pooled copy buffers recover most of the throughput
// (see `make bench`).
func tuneGC() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(1 << 30)
	}
}

// serveDiag serves the runtime profiles (and runtime/metrics at
// /debug/runtime-metrics) on a loopback address (checked by
// config) on a mux of its own, so nothing else is exposed there.
func serveDiag(addr string, log *slog.Logger) (io.Closer, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/runtime-metrics", serveRuntimeMetrics)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen diag on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("diag listener", "err", err)
		}
	}()
	log.Info("serving profiles", "addr", ln.Addr().String())
	return srv, nil
}

// loopbackHost reports whether host[:port] names this machine.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
