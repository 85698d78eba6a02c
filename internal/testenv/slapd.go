package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SLAPDPath is where Debian's slapd package installs the server.
const SLAPDPath = "/usr/sbin/slapd"

// slapdReadyTimeout bounds the wait for a started slapd to accept
// connections; it takes milliseconds, the bound only keeps a broken server
// from hanging the test.
const slapdReadyTimeout = 30 * time.Second

// slapdSchemas are the stock schemas every instance loads, in dependency
// order: inetOrgPerson needs cosine, posixAccount (nis) needs both.
var slapdSchemas = []string{"core", "cosine", "inetorgperson", "nis"}

// sshPublicKeySchema is the OpenSSH-LPK schema (attribute sshPublicKey on
// the auxiliary class ldapPublicKey), which Debian does not ship.
const sshPublicKeySchema = `attributetype ( 1.3.6.1.4.1.24552.500.1.1.1.13 NAME 'sshPublicKey'
	DESC 'OpenSSH public key' EQUALITY octetStringMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
objectclass ( 1.3.6.1.4.1.24552.500.1.1.2.0 NAME 'ldapPublicKey' SUP top AUXILIARY
	DESC 'OpenSSH LPK objectclass' MAY ( sshPublicKey $ uid ) )
`

// SLAPD is an OpenLDAP server on 127.0.0.1, private to one test. Its
// database is loaded offline (slapadd) from the LDIF given to StartSLAPD.
//
// Like many real directories it allows anonymous binds, including a bind
// with a DN and an empty password (`allow bind_anon_dn`): the trap a client
// must not fall into by treating such a bind as a password check.
type SLAPD struct {
	// URL is ldap://127.0.0.1:PORT.
	URL  string
	Port int
	// Suffix is the naming context, e.g. dc=example,dc=test.
	Suffix string
	// AdminDN and AdminPassword are the root DN, which may read and write
	// everything.
	AdminDN, AdminPassword string
	// Dir holds the configuration, the database and the schema file.
	Dir string

	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
}

// SLAPDOptions describe one instance.
type SLAPDOptions struct {
	// Suffix is the naming context (dc=example,dc=test).
	Suffix string
	// LDIF is loaded before the server starts; it must hold the suffix
	// entry itself.
	LDIF string
}

// StartSLAPD starts `slapd -d 0` with a generated slapd.conf serving
// o.Suffix from a fresh mdb database loaded with o.LDIF. The root DN is
// cn=admin,SUFFIX with password "admin". The server is stopped when the test ends; if the
// test failed, its log is added to the output.
func StartSLAPD(t testing.TB, o SLAPDOptions) *SLAPD {
	t.Helper()
	Require(t, SLAPDPath, "/usr/sbin/slapadd")
	suffix, ldif := o.Suffix, o.LDIF
	s := &SLAPD{Suffix: suffix, AdminDN: "cn=admin," + suffix, AdminPassword: "admin", Dir: ShortTempDir(t)}
	if err := os.Mkdir(filepath.Join(s.Dir, "db"), 0o700); err != nil {
		t.Fatalf("StartSLAPD: %v", err)
	}
	schemaPath := filepath.Join(s.Dir, "openssh-lpk.schema")
	if err := os.WriteFile(schemaPath, []byte(sshPublicKeySchema), 0o644); err != nil {
		t.Fatalf("StartSLAPD: %v", err)
	}
	var conf strings.Builder
	for _, name := range slapdSchemas {
		fmt.Fprintf(&conf, "include /etc/ldap/schema/%s.schema\n", name)
	}
	fmt.Fprintf(&conf, "include %s\n", schemaPath)
	fmt.Fprintf(&conf, `pidfile %[1]s/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
allow bind_anon_dn
database mdb
suffix %[2]q
rootdn %[3]q
rootpw %[4]s
directory %[1]s/db
maxsize 10485760
index objectClass eq
index uid eq
index member eq
`, s.Dir, suffix, s.AdminDN, s.AdminPassword)
	confPath := filepath.Join(s.Dir, "slapd.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		t.Fatalf("StartSLAPD: %v", err)
	}
	ldifPath := filepath.Join(s.Dir, "data.ldif")
	if err := os.WriteFile(ldifPath, []byte(ldif), 0o600); err != nil {
		t.Fatalf("StartSLAPD: %v", err)
	}
	if out, err := exec.Command("/usr/sbin/slapadd", "-f", confPath, "-l", ldifPath).CombinedOutput(); err != nil {
		t.Fatalf("StartSLAPD: slapadd: %v\n%s", err, out)
	}

	// FreePort races with other processes; a fresh port on "address in
	// use" makes that harmless, as in StartSSHD.
	const attempts = 5
	for i := 1; ; i++ {
		s.Port = FreePort(t)
		s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", s.Port)
		err := s.start(confPath)
		if err == nil {
			break
		}
		if i < attempts && strings.Contains(s.log.String(), "Address already in use") {
			continue
		}
		t.Fatalf("StartSLAPD: %v\nslapd log:\n%s", err, s.log.String())
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("slapd %s log:\n%s", s.URL, s.log.String())
		}
	})
	return s
}

func (s *SLAPD) start(confPath string) error {
	s.log = &syncBuffer{}
	cmd := exec.Command(SLAPDPath, "-h", s.URL+"/", "-f", confPath, "-d", "0")
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start slapd: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(slapdReadyTimeout)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("slapd exited: %v", cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("slapd not accepting on port %d after %v", s.Port, slapdReadyTimeout)
		}
	}
}

// Stop stops the server, for tests of a directory that went down. It is
// safe to call more than once.
func (s *SLAPD) Stop() { s.stop() }

func (s *SLAPD) stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Log returns what slapd printed so far.
func (s *SLAPD) Log() string { return s.log.String() }

// Modify runs ldapmodify as the root DN with the given LDIF change
// records, for tests that change the directory while the gateway runs.
func (s *SLAPD) Modify(t testing.TB, ldif string) {
	t.Helper()
	Require(t, "ldapmodify")
	_, stderr, code := RunInput(t, 30*time.Second, ldif, "ldapmodify", "-x", "-H", s.URL, "-D", s.AdminDN, "-w", s.AdminPassword)
	if code != 0 {
		t.Fatalf("ldapmodify: exit %d: %s", code, stderr)
	}
}
