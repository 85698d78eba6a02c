// Package cli is the `portcullis` command line for everything but `serve`:
// a client of the gateway's REST API (package api) over the admin unix
// socket DATA/admin.sock. Whoever can open that 0600 socket is the local
// superuser, so the CLI carries no credentials of its own.
//
// Exit codes follow DESIGN section 2: 0 success; 1 the command ran and the
// answer is no (not found, refused, still referred to); 2 usage or input
// error (bad flags, bad YAML, a request the gateway called bad); 3 the
// gateway could not be reached or failed.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/portcullis/portcullis/internal/buildinfo"
)

// Exit codes.
const (
	exitOK      = 0
	exitNo      = 1
	exitUsage   = 2
	exitFailure = 3
)

// envDataDir names the environment variable for the data directory; it is
// the same one `portcullis serve` reads.
const envDataDir = "PORTCULLIS_DATA_DIR"

// maxSocketPath is the longest unix socket path the kernel takes (108
// bytes of sun_path, one of them the terminating NUL).
const maxSocketPath = 107

// command is one subcommand, or a group of them ("audit ls").
type command struct {
	name  string
	usage string // full help text
	run   func(e *env, args []string) error
	subs  []*command
}

// env is what a running command needs: I/O, global options, and a client
// made on first use so that `--help` never touches the socket.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	cmd    string // "get", "audit ls": names the command in messages

	dataDir string
	socket  string
	// gateway, apiKeyFile and caFile select the HTTPS API instead of the
	// admin socket (remote.go).
	gateway    string
	apiKeyFile string
	caFile     string
	client     *client
}

// exitError carries an exit code and a one-line message to Run.
type exitError struct {
	code  int
	msg   string
	usage bool // add "Run 'portcullis CMD --help'" to the message
}

func (e *exitError) Error() string { return e.msg }

// usageErr is a usage or input error (exit 2) that points at --help.
func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...), usage: true}
}

// inputErr is an input error (exit 2) in what the user gave, not in how
// the command was typed.
func inputErr(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// errHelp asks Run to print the command's help on stdout and exit 0.
var errHelp = errors.New("help requested")

// Run runs one client command. args are the arguments after the program
// name; stdin feeds `apply -f -`. It returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	root := commands()

	top := flag.NewFlagSet("portcullis", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	e.globalFlags(top)
	showVersion := top.Bool("version", false, "")
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, root.usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "portcullis: %v\nRun 'portcullis help' for usage.\n", err)
		return exitUsage
	}
	args = top.Args()
	if *showVersion {
		fmt.Fprintln(stdout, buildinfo.Read())
		return exitOK
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, root.usage)
		return exitUsage
	}

	cmd, rest, err := resolve(root, args)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\nRun 'portcullis help' for usage.\n", err)
		return exitUsage
	}
	e.cmd = cmd.name
	if cmd.run == nil {
		// A group ("audit") without its subcommand.
		if len(rest) > 0 && isHelpFlag(rest[0]) {
			fmt.Fprint(stdout, cmd.usage)
			return exitOK
		}
		if len(rest) > 0 {
			fmt.Fprintf(stderr, "portcullis %s: unknown command %q\n\n%s", cmd.name, rest[0], cmd.usage)
		} else {
			fmt.Fprint(stderr, cmd.usage)
		}
		return exitUsage
	}
	err = cmd.run(e, rest)
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		fmt.Fprint(stdout, cmd.usage)
		return exitOK
	case errors.As(err, &ee):
		fmt.Fprintf(stderr, "portcullis %s: %s\n", cmd.name, ee.msg)
		if ee.usage {
			fmt.Fprintf(stderr, "Run 'portcullis %s --help' for usage.\n", cmd.name)
		}
		return ee.code
	default:
		fmt.Fprintf(stderr, "portcullis %s: %v\n", cmd.name, err)
		return exitFailure
	}
}

// resolve walks the command tree along args, returning the command and
// its remaining arguments.
func resolve(root *command, args []string) (*command, []string, error) {
	name := args[0]
	if name == "serve" {
		// main dispatches `portcullis serve` before Run; getting here
		// means a global flag came first.
		return nil, nil, errors.New("serve takes its own flags after it: portcullis serve --data-dir DIR (see portcullis serve --help)")
	}
	for _, c := range root.subs {
		if c.name != name {
			continue
		}
		// A group may run itself too ("report NAME" beside "report
		// verify"): its named subcommands come first.
		if len(args) >= 2 {
			for _, s := range c.subs {
				if s.name == c.name+" "+args[1] {
					return s, args[2:], nil
				}
			}
		}
		return c, args[1:], nil
	}
	return nil, nil, fmt.Errorf("unknown command %q", name)
}

func isHelpFlag(s string) bool {
	return s == "-h" || s == "--help" || s == "-help" || s == "help"
}

// globalFlags registers the flags every command takes, so that they may
// come before the command or after it.
func (e *env) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.dataDir, "data-dir", e.dataDir, "")
	fs.StringVar(&e.socket, "socket", e.socket, "")
	// The server's name for the same path, for whoever copies it over.
	fs.StringVar(&e.socket, "admin-socket", e.socket, "")
	fs.StringVar(&e.gateway, "gateway", e.gateway, "")
	fs.StringVar(&e.apiKeyFile, "api-key-file", e.apiKeyFile, "")
	fs.StringVar(&e.caFile, "ca-file", e.caFile, "")
}

// flags returns a FlagSet for the running command with the global flags.
func (e *env) flags() *flag.FlagSet {
	fs := flag.NewFlagSet(e.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	e.globalFlags(fs)
	return fs
}

// parse parses flags wherever they are among the positional arguments
// (kubectl habits: `get users -o yaml`) and returns the positionals. A
// "--" ends the flags.
func (e *env) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, usageErr("%v", err)
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// socketPath resolves the admin socket: --socket, else DATA/admin.sock
// with DATA from --data-dir, $PORTCULLIS_DATA_DIR or ./data, the same
// default as `portcullis serve`.
func (e *env) socketPath() (string, error) {
	path := e.socket
	if path == "" {
		dir := e.dataDir
		if dir == "" {
			dir = os.Getenv(envDataDir)
		}
		if dir == "" {
			dir = "data"
		}
		path = filepath.Join(dir, "admin.sock")
	}
	if len(path) > maxSocketPath {
		return "", inputErr("admin socket path %s is %d bytes; a unix socket path may have at most %d: use a shorter --data-dir or --socket",
			path, len(path), maxSocketPath)
	}
	return path, nil
}

// api returns the client, connecting on first use.
func (e *env) api() (*client, error) {
	if e.client == nil && (e.gateway != "" || os.Getenv(envGateway) != "") {
		c, err := e.remoteClient()
		if err != nil {
			return nil, err
		}
		e.client = c
	}
	if e.client == nil {
		path, err := e.socketPath()
		if err != nil {
			return nil, err
		}
		e.client = newClient(path)
	}
	return e.client, nil
}

// commands is the command tree, with the help text of each.
func commands() *command {
	root := &command{name: "portcullis", usage: rootUsage}
	root.subs = []*command{
		{name: "help", usage: rootUsage, run: func(e *env, args []string) error { return runHelp(e, root, args) }},
		{name: "version", usage: versionUsage, run: runVersion},
		{name: "apply", usage: applyUsage, run: runApply},
		{name: "get", usage: getUsage, run: runGet},
		{name: "delete", usage: deleteUsage, run: runDelete},
		{name: "account", usage: accountUsage, subs: []*command{
			{name: "account pubkey", usage: accountUsage, run: runAccountPubkey},
			{name: "account rotate", usage: accountRotateUsage, run: runAccountRotate},
		}},
		{name: "target", usage: targetUsage, subs: []*command{
			{name: "target pin", usage: targetUsage, run: runTargetPin},
		}},
		{name: "ca", usage: caUsage, subs: []*command{
			{name: "ca pubkey", usage: caUsage, run: runCAPubkey},
		}},
		{name: "audit", usage: auditGroupUsage, subs: []*command{
			{name: "audit ls", usage: auditUsage, run: runAuditLs},
			{name: "audit verify", usage: auditVerifyUsage, run: runAuditVerify},
			{name: "audit pubkey", usage: auditPubkeyUsage, run: runAuditPubkey},
			{name: "audit export", usage: auditExportUsage, run: runAuditExport},
		}},
		{name: "sessions", usage: sessionsUsage, subs: []*command{
			{name: "sessions ls", usage: sessionsUsage, run: runSessionsLs},
			{name: "sessions watch", usage: sessionsUsage, run: runSessionsWatch},
			{name: "sessions kill", usage: sessionsUsage, run: runSessionsKill},
		}},
		{name: "recordings", usage: recordingsUsage, subs: []*command{
			{name: "recordings ls", usage: recordingsUsage, run: runRecordingsLs},
			{name: "recordings play", usage: recordingsUsage, run: runRecordingsPlay},
			{name: "recordings download", usage: recordingsUsage, run: runRecordingsDownload},
			{name: "recordings rm", usage: recordingsUsage, run: runRecordingsRm},
			{name: "recordings search", usage: recordingsUsage, run: runRecordingsSearch},
			{name: "recordings review", usage: recordingsReviewUsage, run: runRecordingsReview},
			{name: "recordings reviews", usage: recordingsReviewUsage, run: runRecordingsReviews},
			{name: "recordings check", usage: recordingsUsage, run: runRecordingsCheck},
		}},
		{name: "report", usage: reportUsage, run: runReport, subs: []*command{
			{name: "report ls", usage: reportUsage, run: runReportLs},
			{name: "report verify", usage: reportUsage, run: runReportVerify},
			{name: "report pubkey", usage: reportUsage, run: runReportPubkey},
			{name: "report schedule", usage: reportUsage, run: runReportSchedule},
			{name: "report schedules", usage: reportUsage, run: runReportSchedules},
			{name: "report unschedule", usage: reportUsage, run: runReportUnschedule},
		}},
		{name: "review", usage: reviewUsage, subs: []*command{
			{name: "review start", usage: reviewUsage, run: runReviewStart},
			{name: "review ls", usage: reviewUsage, run: runReviewLs},
			{name: "review show", usage: reviewUsage, run: runReviewShow},
			{name: "review decide", usage: reviewUsage, run: runReviewDecide},
			{name: "review close", usage: reviewUsage, run: runReviewClose},
		}},
		{name: "commands", usage: commandsUsage, subs: []*command{
			{name: "commands ls", usage: commandsUsage, run: runCommandsLs},
		}},
		policyCommand(),
		jitCommand(),
		{name: "apikey", usage: apikeyUsage, subs: []*command{
			{name: "apikey create", usage: apikeyUsage, run: runAPIKeyCreate},
			{name: "apikey ls", usage: apikeyUsage, run: runAPIKeyLs},
			{name: "apikey revoke", usage: apikeyUsage, run: runAPIKeyRevoke},
		}},
		{name: "kubeconfig", usage: kubeconfigUsage, run: runKubeconfig},
		{name: "kube-credential", usage: kubeCredentialUsage, run: runKubeCredential},
		{name: "settings", usage: settingsUsage, subs: []*command{
			{name: "settings get", usage: settingsUsage, run: runSettingsGet},
			{name: "settings set", usage: settingsUsage, run: runSettingsSet},
		}},
		{name: "backup", usage: backupUsage, run: runBackup},
		{name: "restore", usage: backupUsage, run: runRestore},
		{name: "user", usage: userUsage, subs: []*command{
			{name: "user passwd", usage: userUsage, run: runUserPasswd},
		}},
		{name: "mfa", usage: mfaUsage, subs: []*command{
			{name: "mfa enroll", usage: mfaUsage, run: runMFAEnroll},
			{name: "mfa confirm", usage: mfaUsage, run: runMFAConfirm},
			{name: "mfa status", usage: mfaUsage, run: runMFAStatus},
			{name: "mfa reset", usage: mfaUsage, run: runMFAReset},
		}},
	}
	return root
}

// runHelp prints the help of the named command, or the overview.
func runHelp(e *env, root *command, args []string) error {
	if len(args) == 0 || isHelpFlag(args[0]) {
		fmt.Fprint(e.stdout, rootUsage)
		return nil
	}
	if args[0] == "serve" {
		fmt.Fprint(e.stdout, "portcullis serve runs the gateway; see portcullis serve --help for its flags.\n")
		return nil
	}
	cmd, _, err := resolve(root, args)
	if err != nil {
		return usageErr("%v", err)
	}
	fmt.Fprint(e.stdout, cmd.usage)
	return nil
}

// joinUsage helps keep the flag list in one place for every command.
func joinUsage(parts ...string) string { return strings.Join(parts, "\n") }

const globalFlagsUsage = `Global flags (before or after the command):
  --data-dir DIR   the gateway's data directory (default ./data, or $PORTCULLIS_DATA_DIR);
                   the CLI talks to DIR/admin.sock
  --socket PATH    the admin socket itself (also --admin-socket), overriding --data-dir
  --gateway URL    talk to the gateway's HTTPS API (https://HOST:PORT, or
                   $PORTCULLIS_GATEWAY) as the user of an API key, instead of the
                   admin socket: the key from --api-key-file FILE or
                   $PORTCULLIS_API_KEY; --ca-file FILE (or $PORTCULLIS_CA_FILE)
                   trusts the gateway's certificate when no system CA signs it
  -h, --help       show help
`

var rootUsage = joinUsage(`Usage: portcullis COMMAND [ARGUMENTS] [FLAGS]

Portcullis is an SSH access gateway. 'portcullis serve' runs it; every other
command talks to a running gateway over its admin socket, as the local
superuser.

Server:
  serve                       run the gateway (portcullis serve --help)
  agent                       run on a target that dials out to the gateway (portcullis agent --help)

Resources:
  apply -f FILE               create or update the resources in a YAML stream (- for stdin)
  get KIND [NAME]             list resources of a kind, or show one (-o table|yaml|json, --json)
  delete KIND NAME            delete one resource

Credentials:
  account pubkey TARGET/NAME  print an account's public key, for the target's authorized_keys
  account rotate TARGET/NAME  take the account over: only a new gateway key logs in afterwards
  ca pubkey                   print the user CA's public key, for targets' TrustedUserCAKeys
  target pin NAME             pin the host key the gateway learned for a target on first use

Policies:
  policy explain --user NAME --target NAME --action ACTION [--source IP]
                              decide one access question; show which policies matched and why
  policy test CASES.yaml      run policy test cases (--policies FILE, --offline for CI
                              without a gateway); exit 1 on any mismatch

Just-in-time access:
  jit request --target NAME   request temporary access (--account, --duration, --reason, --wait)
  jit ls                      list requests, ended ones too (--state, --requester, --json)
  jit show ID                 one request with its history
  jit approve ID              approve a request (approvers; never your own)
  jit deny ID --reason TEXT   deny a request
  jit revoke ID               end an approved request's access now (admins)

Sessions:
  sessions ls                 list running sessions (--json)
  sessions watch ID           watch a recorded session live, read only (--from-start)
  sessions kill ID            end a running session (--message TEXT for its user)

Recordings:
  recordings ls               list recordings (--user, --target, --state, --since, --json)
  recordings play ID          play a recording in this terminal (--speed N, --idle-limit S,
                              --at SECONDS)
  recordings download ID      save a recording's asciicast file (-o FILE, --force)
  recordings rm ID            delete a recording (audited)
  recordings search QUERY     find recordings by what was on screen or typed (--json)
  recordings review ID        mark a recording reviewed (--ok) or flagged (--flag --comment TEXT)

Compliance:
  report NAME -o PATH         export a signed report (--since, --until, --format csv,json,pdf);
                              report ls lists them
  report verify MANIFEST --key KEY
                              check an export offline; exit 1 if a file or the manifest changed
  report pubkey               the key report manifests are signed with
  report schedule NAME --every 24h --to DIR|https://URL
                              export a report on a schedule (report schedules, unschedule ID)
  review start|ls|show|decide|close
                              access review campaigns: keep or revoke each entitlement

Command history:
  commands ls                 list the commands users ran (--user, --target, --session,
                              --since, --json)

Audit:
  audit ls                    list audit events, newest first (--since 24h, --type, --user,
                              --limit, --before ID, -o wide, --json, ...)
  audit verify                check the audit trail's hash chain; exit 1 if it is broken
  audit export                stream audit events as JSON lines with their hashes (--since)

API keys, settings and passwords:
  apikey create --name NAME --kind access|registration
                              make an API key for the HTTPS API; the key is shown once
                              (--owner, --expires 720h, --source-cidrs, --json)
  apikey ls                   list API keys, never their secrets (--json)
  apikey revoke ID            stop an API key at once
  kubeconfig --target NAME --server URL
                              write a kubeconfig for kubectl to a kubernetes target through
                              the gateway (--key or --exec, --host-routing, --ca-file, -o FILE)
  kube-credential --gateway URL --target NAME
                              kubectl's exec credential plugin: sign in, print a short-lived
                              token (--user, --password-file, --ttl)
  settings get [NAME]         show gateway-wide settings (--json)
  settings set NAME VALUE     change one (settings set global_registration_keys false)
  user passwd NAME            set a user's web console password (--password-stdin)
  mfa enroll USER             give USER a TOTP second factor: URI, QR code, recovery codes
  mfa confirm USER CODE       activate a pending second factor with a first code
  mfa status USER             whether USER has a second factor (--json)
  mfa reset USER              remove USER's second factor (a lost phone)

Backup:
  backup --out FILE           copy the database (SQLite or PostgreSQL) while the gateway runs
  restore --in FILE           put a copy back (gateway stopped); --store for PostgreSQL

  version                     print the build's version and commit (also --version; --json)
  help [COMMAND]              show help for a command

Kinds: User, ServiceAccount, Group, Target, Environment, Account, Operation,
Policy (any case, singular or plural).
`, globalFlagsUsage, `Exit codes: 0 success; 1 the answer is no (not found, refused, denied, a
policy test case failed, the audit chain is broken); 2 usage or input error;
3 the gateway could not be reached or failed.
`)

const versionUsage = `Usage: portcullis version [--json]

Prints this binary's version and the commit it was built from. It does not
contact the gateway: a running gateway logs its own version at start.
`

// runVersion prints the build information of this binary.
func runVersion(e *env, args []string) error {
	fs := e.flags()
	asJSON := fs.Bool("json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	if *asJSON {
		return printJSON(e, buildinfo.Read())
	}
	fmt.Fprintln(e.stdout, buildinfo.Read())
	return nil
}
