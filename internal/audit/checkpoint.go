package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/store"
)

// Sealer seals and opens secrets under the master key (vault.Vault does).
type Sealer interface {
	Seal(plaintext []byte, aad string) ([]byte, error)
	Open(sealed []byte, aad string) ([]byte, error)
}

// auditKeyAAD names the audit key's record for the vault, so that no other
// sealed secret can be swapped in for it.
const auditKeyAAD = "audit-key"

// auditKeyComment ends the public key's authorized_keys line.
const auditKeyComment = "portcullis-audit"

// Key is the Ed25519 key that signs audit checkpoints. There is one for
// every gateway sharing a store, sealed in the store under the master key
// (which those gateways share too): one public key then checks the whole
// trail, whichever gateway signed.
type Key struct {
	priv       ed25519.PrivateKey
	pub        ed25519.PublicKey
	authorized string
}

// LoadOrCreateKey returns the store's audit key, making it on first start.
// Two gateways starting at once on a new shared store both make one; the
// first stored wins and the other loads it.
func LoadOrCreateKey(ctx context.Context, st store.Store, v Sealer) (k *Key, created bool, err error) {
	stored, err := st.GetAuditKey(ctx)
	if errors.Is(err, store.ErrNotFound) {
		pub, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, false, fmt.Errorf("generate audit key: %w", gerr)
		}
		sealed, serr := v.Seal(priv.Seed(), auditKeyAAD)
		if serr != nil {
			return nil, false, fmt.Errorf("seal audit key: %w", serr)
		}
		authorized, aerr := authorizedKey(pub)
		if aerr != nil {
			return nil, false, aerr
		}
		cerr := st.CreateAuditKey(ctx, store.AuditKey{PublicKey: authorized, Sealed: sealed})
		if cerr == nil {
			return &Key{priv: priv, pub: pub, authorized: authorized}, true, nil
		}
		if !errors.Is(cerr, store.ErrConflict) {
			return nil, false, fmt.Errorf("store audit key: %w", cerr)
		}
		// Another gateway stored its key first: that one is the key.
		stored, err = st.GetAuditKey(ctx)
	}
	if err != nil {
		return nil, false, fmt.Errorf("load audit key: %w", err)
	}
	seed, err := v.Open(stored.Sealed, auditKeyAAD)
	if err != nil {
		return nil, false, fmt.Errorf("open audit key (sealed under another master key?): %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, false, fmt.Errorf("open audit key: %d bytes, want an Ed25519 seed of %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	authorized, err := authorizedKey(pub)
	if err != nil {
		return nil, false, err
	}
	if stored.PublicKey != authorized {
		return nil, false, errors.New("audit key: the stored public key is not the sealed private key's: the audit_key row was altered")
	}
	return &Key{priv: priv, pub: pub, authorized: authorized}, false, nil
}

// NewKey returns a Key for priv, for tools and tests that hold a private
// key themselves; the gateway uses LoadOrCreateKey.
func NewKey(priv ed25519.PrivateKey) (*Key, error) {
	pub := priv.Public().(ed25519.PublicKey)
	authorized, err := authorizedKey(pub)
	if err != nil {
		return nil, err
	}
	return &Key{priv: priv, pub: pub, authorized: authorized}, nil
}

func authorizedKey(pub ed25519.PublicKey) (string, error) {
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode audit public key: %w", err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sk))) + " " + auditKeyComment, nil
}

// ParsePublicKey reads an audit public key as AuthorizedKey prints it.
func ParsePublicKey(line string) (ed25519.PublicKey, error) {
	sk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("parse audit public key: %w", err)
	}
	ck, ok := sk.(ssh.CryptoPublicKey)
	if !ok {
		return nil, errors.New("parse audit public key: not an ssh-ed25519 key")
	}
	pub, ok := ck.CryptoPublicKey().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("parse audit public key: a %s key, want ssh-ed25519", sk.Type())
	}
	return pub, nil
}

// Public returns the raw public key.
func (k *Key) Public() ed25519.PublicKey { return k.pub }

// AuthorizedKey returns the public key as one OpenSSH authorized_keys line
// ("ssh-ed25519 AAAA... portcullis-audit"), what `audit pubkey` prints.
func (k *Key) AuthorizedKey() string { return k.authorized }

// Sign returns cp with its Signature set.
func (k *Key) Sign(cp store.AuditCheckpoint) store.AuditCheckpoint {
	cp.Time = cp.Time.UTC()
	cp.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(k.priv, CheckpointMessage(cp)))
	return cp
}

// CheckpointMessage returns the bytes a checkpoint's signature covers: a
// fixed label, then kind, event ID, hash, time (Unix nanoseconds) and
// gateway, each length-prefixed like store.HashEvent's fields so that no
// text can move from one field to another.
func CheckpointMessage(cp store.AuditCheckpoint) []byte {
	var b bytes.Buffer
	for _, part := range []string{"portcullis audit checkpoint v1", cp.Kind, strconv.FormatInt(cp.EventID, 10), cp.Hash,
		strconv.FormatInt(cp.Time.UnixNano(), 10), cp.Gateway} {
		b.WriteString(strconv.Itoa(len(part)))
		b.WriteByte(':')
		b.WriteString(part)
	}
	return b.Bytes()
}

// CheckSignature reports whether cp was signed by pub, as it reads.
func CheckSignature(pub ed25519.PublicKey, cp store.AuditCheckpoint) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%s checkpoint at event %d: no audit key to check its signature with", cp.Kind, cp.EventID)
	}
	sig, err := base64.StdEncoding.DecodeString(cp.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%s checkpoint at event %d: the signature is not an Ed25519 signature in base64", cp.Kind, cp.EventID)
	}
	if !ed25519.Verify(pub, CheckpointMessage(cp), sig) {
		return fmt.Errorf("%s checkpoint at event %d (signed %s by gateway %q): the signature does not verify with the audit key: the checkpoint was forged or altered",
			cp.Kind, cp.EventID, cp.Time.UTC().Format(time.RFC3339), cp.Gateway)
	}
	return nil
}

// checkpointLine is one line of DATA/audit.checkpoints (and of a copy kept
// elsewhere, given to `audit verify --checkpoint`).
type checkpointLine struct {
	Kind      string    `json:"kind"`
	EventID   int64     `json:"event_id"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	Gateway   string    `json:"gateway"`
	Signature string    `json:"signature"`
}

// MarshalCheckpoint returns cp as one JSON line, newline included.
func MarshalCheckpoint(cp store.AuditCheckpoint) []byte {
	b, _ := json.Marshal(checkpointLine{Kind: cp.Kind, EventID: cp.EventID, Hash: cp.Hash, Time: cp.Time.UTC(),
		Gateway: cp.Gateway, Signature: cp.Signature})
	return append(b, '\n')
}

// maxCheckpointLine bounds one line of a checkpoint file; a real one is
// about 300 bytes.
const maxCheckpointLine = 4096

// ParseCheckpoints reads checkpoint lines (MarshalCheckpoint's), skipping
// blank ones. Anything else that is not a well-formed checkpoint is an
// error naming its line: a checkpoint file is evidence, and a line that
// does not read is not quietly passed over. Signatures are not checked
// here (CheckSignature).
func ParseCheckpoints(r io.Reader) ([]store.AuditCheckpoint, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1024), maxCheckpointLine)
	var cps []store.AuditCheckpoint
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		cp, err := parseCheckpointLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		cps = append(cps, cp)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes: not a checkpoint", len(cps)+1, maxCheckpointLine)
		}
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	return cps, nil
}

func parseCheckpointLine(line []byte) (store.AuditCheckpoint, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var l checkpointLine
	if err := dec.Decode(&l); err != nil {
		return store.AuditCheckpoint{}, fmt.Errorf("not a checkpoint: %w", err)
	}
	if dec.More() {
		return store.AuditCheckpoint{}, errors.New("not a checkpoint: more after the JSON object")
	}
	if l.Kind != store.CheckpointHead && l.Kind != store.CheckpointRetention {
		return store.AuditCheckpoint{}, fmt.Errorf("kind %q: want %q or %q", l.Kind, store.CheckpointHead, store.CheckpointRetention)
	}
	if l.EventID <= 0 {
		return store.AuditCheckpoint{}, fmt.Errorf("event_id %d: want a positive event id", l.EventID)
	}
	if len(l.Hash) != 64 {
		return store.AuditCheckpoint{}, fmt.Errorf("hash %q: want 64 hex digits", l.Hash)
	}
	if _, err := hex.DecodeString(l.Hash); err != nil {
		return store.AuditCheckpoint{}, fmt.Errorf("hash %q: want 64 hex digits", l.Hash)
	}
	if l.Time.IsZero() {
		return store.AuditCheckpoint{}, errors.New("time is missing")
	}
	if l.Signature == "" {
		return store.AuditCheckpoint{}, errors.New("signature is missing")
	}
	return store.AuditCheckpoint{Kind: l.Kind, EventID: l.EventID, Hash: l.Hash, Time: l.Time.UTC(),
		Gateway: l.Gateway, Signature: l.Signature}, nil
}

// appendCheckpointFile appends cp to the file at path as one line, and
// syncs it before returning: opened O_APPEND on every write, so that a
// file moved away (rotated, copied off) is simply started again.
func appendCheckpointFile(path string, cp store.AuditCheckpoint) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("append checkpoint to %s: %w", path, err)
	}
	_, werr := f.Write(MarshalCheckpoint(cp))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("append checkpoint to %s: %w", path, err)
	}
	return nil
}

// readCheckpointFile reads the checkpoints of the file at path; none if it
// does not exist.
func readCheckpointFile(path string) ([]store.AuditCheckpoint, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	defer f.Close()
	cps, err := ParseCheckpoints(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cps, nil
}

// reportLabel begins every message a report manifest signature covers. No
// checkpoint message can begin with it (they begin with a length), so the
// one audit key signs both and neither signature passes for the other.
const reportLabel = "portcullis report manifest v1\n"

// ReportMessage returns the bytes a report manifest's signature covers:
// the label, then the manifest as package report encodes it for signing.
func ReportMessage(manifest []byte) []byte {
	return append([]byte(reportLabel), manifest...)
}

// SignReport signs a report manifest's encoding (see ReportMessage).
func (k *Key) SignReport(manifest []byte) []byte {
	return ed25519.Sign(k.priv, ReportMessage(manifest))
}
