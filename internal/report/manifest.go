package report

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/portcullis/portcullis/internal/audit"
)

// ManifestFormat names the manifest's shape; Verify refuses others.
const ManifestFormat = "portcullis-report-manifest/1"

// Manifest says what a report export holds and is signed with the
// gateway's audit key (audit.Key.SignReport), so that anyone with the
// public key (`portcullis report pubkey`) can check offline that the files
// are the ones the gateway wrote, for the filters and period it states.
// Times are RFC 3339 strings so that the signed encoding reads back the
// same.
type Manifest struct {
	Format      string  `json:"format"`
	Report      string  `json:"report"`
	Title       string  `json:"title"`
	Filters     Filters `json:"filters"`
	GeneratedAt string  `json:"generated_at"`
	GeneratedBy string  `json:"generated_by"`
	// GatewayVersion is the build that made it (buildinfo).
	GatewayVersion string `json:"gateway_version"`
	// Rows is the number of rows of the report's table; every file holds
	// the same rows.
	Rows int `json:"rows"`
	// AuditHead is the newest audit event when the report was built: the
	// trail it was built from is the one that ends there, which `audit
	// verify` checks.
	AuditHead AuditPoint `json:"audit_checkpoint"`
	// Notes are the report's explanatory lines.
	Notes []string `json:"notes"`
	Files []File   `json:"files"`
	// PublicKey is the signer's key (authorized_keys line); Verify checks
	// against the key the auditor trusts, never this one alone.
	PublicKey string `json:"public_key"`
	// Signature is the base64 Ed25519 signature over
	// audit.ReportMessage(the manifest encoded with Signature empty).
	Signature string `json:"signature"`
}

// Filters are a report's parameters as the manifest states them.
type Filters struct {
	Since string `json:"since"`
	Until string `json:"until"`
}

// AuditPoint names one event of the audit chain.
type AuditPoint struct {
	EventID int64  `json:"event_id"`
	Hash    string `json:"hash"`
}

// File is one file of an export.
type File struct {
	Name   string `json:"name"` // base name, beside the manifest
	Format string `json:"format"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Signer signs manifests: *audit.Key.
type Signer interface {
	SignReport(manifest []byte) []byte
	AuthorizedKey() string
}

// signedBytes is the encoding the signature covers.
func (m Manifest) signedBytes() ([]byte, error) {
	m.Signature = ""
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return b, nil
}

// Sign sets the manifest's key and signature.
func (m *Manifest) Sign(s Signer) error {
	m.PublicKey = s.AuthorizedKey()
	b, err := m.signedBytes()
	if err != nil {
		return err
	}
	m.Signature = base64.StdEncoding.EncodeToString(s.SignReport(b))
	return nil
}

// Marshal returns the manifest as the file holds it (indented JSON).
func (m Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// maxManifest bounds what ParseManifest reads.
const maxManifest = 1 << 20

// ParseManifest reads a manifest strictly: unknown fields are refused, so
// that nothing unsigned rides along.
func ParseManifest(r io.Reader) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(io.LimitReader(r, maxManifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("manifest is not valid: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return m, errors.New("manifest is not valid: data after the JSON object")
	}
	if m.Format != ManifestFormat {
		return m, fmt.Errorf("manifest format %q is not %q", m.Format, ManifestFormat)
	}
	return m, nil
}

// CheckSignature reports whether m was signed by pub.
func (m Manifest) CheckSignature(pub ed25519.PublicKey) error {
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("manifest signature is not a base64 Ed25519 signature")
	}
	b, err := m.signedBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, audit.ReportMessage(b), sig) {
		return errors.New("manifest signature does not verify with the given key: the manifest was changed or signed by another key")
	}
	return nil
}

// VerifyFiles checks every file the manifest lists, read from dir: its
// size and SHA-256. The first mismatch is the error.
func (m Manifest) VerifyFiles(dir string) error {
	if len(m.Files) == 0 {
		return errors.New("manifest lists no files")
	}
	for _, f := range m.Files {
		if f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." || strings.ContainsRune(f.Name, 0) {
			return fmt.Errorf("manifest names file %q outside its directory", f.Name)
		}
		sum, size, err := hashFile(filepath.Join(dir, f.Name))
		if err != nil {
			return err
		}
		if size != f.Size || sum != f.SHA256 {
			return fmt.Errorf("%s: SHA-256 %s (%d bytes), the manifest says %s (%d bytes): the file was changed", f.Name, sum, size, f.SHA256, f.Size)
		}
	}
	return nil
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("read report file: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read report file %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Verify checks a manifest file and the files beside it against pub: the
// signature first, then each file. It is what `portcullis report verify`
// runs, with no gateway.
func Verify(manifestPath string, pub ed25519.PublicKey) (Manifest, error) {
	raw, err := os.ReadFile(manifestPath)
	if err != nil {
		return Manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	m, err := ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return m, err
	}
	if err := m.CheckSignature(pub); err != nil {
		return m, err
	}
	return m, m.VerifyFiles(filepath.Dir(manifestPath))
}
