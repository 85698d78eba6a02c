package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ClientKey is a private key on disk for the OpenSSH client tools, with
// its in-memory forms for x/crypto clients and for authorizing it.
type ClientKey struct {
	Path          string        // private key file, OpenSSH format, mode 0600; Path+".pub" holds the public key
	Signer        ssh.Signer    // the same key for x/crypto clients
	Public        ssh.PublicKey // Signer.PublicKey()
	AuthorizedKey string        // "ssh-ed25519 AAAA..." authorized_keys line, no newline
}

// NewClientKey writes a fresh ed25519 key to a new file in dir. The name
// is unique, so one dir can hold keys for several identities.
func NewClientKey(t testing.TB, dir string) *ClientKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("NewClientKey: %v", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("NewClientKey: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "portcullis-test-client")
	if err != nil {
		t.Fatalf("NewClientKey: %v", err)
	}
	// CreateTemp makes the file 0600, which ssh insists on for keys.
	f, err := os.CreateTemp(dir, "id_ed25519_")
	if err != nil {
		t.Fatalf("NewClientKey: %v", err)
	}
	if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
		f.Close()
		t.Fatalf("NewClientKey: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("NewClientKey: %v", err)
	}
	k := &ClientKey{
		Path:          f.Name(),
		Signer:        signer,
		Public:        signer.PublicKey(),
		AuthorizedKey: strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(signer.PublicKey())), "\n"),
	}
	if err := os.WriteFile(k.Path+".pub", []byte(k.AuthorizedKey+" portcullis-test-client\n"), 0o644); err != nil {
		t.Fatalf("NewClientKey: %v", err)
	}
	return k
}

// WriteCertificate stores cert as Path+"-cert.pub", where ssh, scp and
// sftp pick it up automatically when the key is given with -i, and
// returns that path (for -o CertificateFile=...).
func (k *ClientKey) WriteCertificate(t testing.TB, cert *ssh.Certificate) string {
	t.Helper()
	path := k.Path + "-cert.pub"
	if err := os.WriteFile(path, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatalf("WriteCertificate: %v", err)
	}
	return path
}

// NewUserCert signs a user certificate for pub with the given principals,
// valid from a minute ago (clock skew) for an hour, with the extensions
// OpenSSH grants by default (pty, forwarding, agent, user rc), since a
// certificate without permit-pty cannot get a terminal.
func NewUserCert(t testing.TB, ca ssh.Signer, pub ssh.PublicKey, principals ...string) *ssh.Certificate {
	t.Helper()
	now := time.Now()
	cert := &ssh.Certificate{
		Key:             pub,
		CertType:        ssh.UserCert,
		KeyId:           "portcullis-test",
		ValidPrincipals: principals,
		ValidAfter:      uint64(now.Add(-time.Minute).Unix()),
		ValidBefore:     uint64(now.Add(time.Hour).Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{
			"permit-pty":              "",
			"permit-port-forwarding":  "",
			"permit-agent-forwarding": "",
			"permit-X11-forwarding":   "",
			"permit-user-rc":          "",
		}},
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatalf("NewUserCert: %v", err)
	}
	return cert
}

// wantKex is the client's KEX preference: both are fast, unlike OpenSSH
// 9.x's default sntrup761 (~70 ms per handshake), and x/crypto offers
// both, so the same list suits a direct sshd and the gateway.
var wantKex = []string{"curve25519-sha256", "mlkem768x25519-sha256"}

var (
	kexOnce sync.Once
	kexList string
)

// clientKex returns wantKex minus what the installed ssh lacks. ssh
// rejects the whole option for one unknown name, and mlkem768x25519 only
// exists since OpenSSH 9.9 (Debian 12 ships 9.2).
func clientKex() string {
	kexOnce.Do(func() {
		kexList = wantKex[0]
		out, err := exec.Command("ssh", "-Q", "kex").Output()
		if err != nil {
			return
		}
		have := strings.Fields(string(out))
		var ok []string
		for _, k := range wantKex {
			if slices.Contains(have, k) {
				ok = append(ok, k)
			}
		}
		if len(ok) > 0 {
			kexList = strings.Join(ok, ",")
		}
	})
	return kexList
}

// SSHArgs returns the options for a non-interactive ssh run against addr:
// no config files, no agent, no prompts, only key, and strict checking
// against a known_hosts file written into dir for hostKey. The caller
// appends "user@127.0.0.1" and the command. Use SSHOptions for scp and
// sftp, whose -p means something else.
//
// It panics if the known_hosts file cannot be written (it takes no
// testing.TB); that only happens when dir is unusable.
func SSHArgs(dir string, key *ClientKey, addr string, hostKey ssh.PublicKey) []string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		panic(fmt.Sprintf("testenv.SSHArgs: address %q: %v", addr, err))
	}
	return append(clientOptions(dir, key, addr, hostKey), "-p", port)
}

// SSHOptions is SSHArgs with the port as "-o Port=PORT", which ssh, scp
// and sftp all accept, so one slice serves every OpenSSH client.
func SSHOptions(dir string, key *ClientKey, addr string, hostKey ssh.PublicKey) []string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		panic(fmt.Sprintf("testenv.SSHOptions: address %q: %v", addr, err))
	}
	return append(clientOptions(dir, key, addr, hostKey), "-o", "Port="+port)
}

// RsyncShell returns the value for rsync's -e (remote shell) option: ssh
// with SSHOptions, quoted so rsync splits it back into the same words.
func RsyncShell(dir string, key *ClientKey, addr string, hostKey ssh.PublicKey) string {
	return shellJoin(append([]string{"ssh"}, SSHOptions(dir, key, addr, hostKey)...))
}

func clientOptions(dir string, key *ClientKey, addr string, hostKey ssh.PublicKey) []string {
	kh, err := writeKnownHosts(dir, addr, hostKey)
	if err != nil {
		panic(fmt.Sprintf("testenv: known_hosts for %s: %v", addr, err))
	}
	return []string{
		// No user or system config: the machine's ssh_config must not
		// change what a test does.
		"-F", "/dev/null",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + kh,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes",
		// Keys in a developer's agent would otherwise still be tried
		// and could authenticate where the test expects a refusal.
		"-o", "IdentityAgent=none",
		"-i", key.Path,
		"-o", "KexAlgorithms=" + clientKex(),
		"-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=10",
	}
}

// writeKnownHosts writes a known_hosts file for one server into dir and
// returns its path. knownhosts.Line writes "[127.0.0.1]:PORT" for ports
// other than 22, the form ssh looks up. The name derives from the
// content, so repeated calls are idempotent and different servers get
// different files; the rename keeps concurrent writers from exposing a
// half-written file.
func writeKnownHosts(dir, addr string, hostKey ssh.PublicKey) (string, error) {
	line := knownhosts.Line([]string{addr}, hostKey) + "\n"
	sum := sha256.Sum256([]byte(line))
	path := filepath.Join(dir, "known_hosts_"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	f, err := os.CreateTemp(dir, ".known_hosts_")
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return path, nil
}
