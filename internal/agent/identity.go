package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// State is what the agent keeps between runs, beside its identity: where
// it registered and the gateway host key it pinned then.
type State struct {
	Gateway        string `json:"gateway"`
	GatewayHostKey string `json:"gateway_host_key"`
	Target         string `json:"target"`
	Mode           string `json:"mode"`
}

// Files in the state directory.
const (
	identityFile = "identity"   // the Ed25519 private key, OpenSSH PEM, 0600
	stateFile    = "agent.json" // State, 0600
)

// LoadOrCreateIdentity returns the agent's Ed25519 identity from dir,
// making it (and dir, 0700) on first use. The private key never leaves
// this file; only its public half is sent to the gateway. A file that is
// readable by others is refused rather than used: it may have been copied.
func LoadOrCreateIdentity(dir string) (ssh.Signer, error) {
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return createIdentity(dir, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read agent identity: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("agent identity: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("agent identity %s is accessible to others (mode %v): make it 0600", path, fi.Mode().Perm())
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("agent identity %s does not parse", path)
	}
	if signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("agent identity %s is not an Ed25519 key", path)
	}
	return signer, nil
}

func createIdentity(dir, path string) (ssh.Signer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create agent state directory: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate agent identity: %w", err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "portcullis-agent")
	if err != nil {
		return nil, fmt.Errorf("encode agent identity: %w", err)
	}
	if err := writeExclusive(path, pem.EncodeToMemory(blk)); err != nil {
		if errors.Is(err, os.ErrExist) {
			// Another start made it first: use that one.
			return LoadOrCreateIdentity(dir)
		}
		return nil, fmt.Errorf("write agent identity: %w", err)
	}
	return ssh.NewSignerFromKey(priv)
}

// writeExclusive creates path with mode 0600 holding b; os.ErrExist if it
// exists.
func writeExclusive(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadState reads the state kept in dir; the zero State before the first
// registration.
func LoadState(dir string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read agent state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("agent state %s is not valid JSON: %w", filepath.Join(dir, stateFile), err)
	}
	return st, nil
}

// SaveState replaces the state in dir: written beside it and renamed, so
// that a crash leaves the old state or the new one.
func SaveState(dir string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode agent state: %w", err)
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	os.Remove(tmp)
	if err := writeExclusive(tmp, append(b, '\n')); err != nil {
		return fmt.Errorf("write agent state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("write agent state: %w", err)
	}
	return nil
}
