package report

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// Request is one report to make.
type Request struct {
	Kind    string
	Params  Params
	Formats []string // of AllFormats; empty: all
	// By names who asked ("alice", "schedule 3"), for the manifest and
	// the audit trail; Source is their address, if any.
	By, Source string
	// BaseName names the files (BaseName.csv, BaseName.manifest.json);
	// empty: KIND-UNTIL. Letters, digits, '.', '_' and '-' only.
	BaseName string
}

// validBaseName keeps file names plain: no path, nothing a shell or
// spreadsheet reads specially.
func validBaseName(s string) bool {
	if s == "" || len(s) > 100 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// ExportFile is one file of an Export.
type ExportFile struct {
	Name   string
	Format string
	Data   []byte
}

// Export is a generated report: its files and their signed manifest.
type Export struct {
	Manifest Manifest
	// ManifestName is the manifest's file name (NAME.manifest.json).
	ManifestName string
	Files        []ExportFile
}

// Generator makes signed exports.
type Generator struct {
	Source *Source
	// Signer signs manifests: the gateway's audit key.
	Signer Signer
	// Version is the gateway's build version, stated in manifests.
	Version string
	// Audit records each export; required: a report nobody can see was
	// made is not made (fail closed).
	Audit func(ctx context.Context, ev store.AuditEvent) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ErrUnknownKind is returned for a report name nobody registered.
var ErrUnknownKind = errors.New("unknown report")

// ErrBadRequest wraps a request's malformed part.
var ErrBadRequest = errors.New("bad report request")

// CheckRequest normalizes and checks req: the kind exists, the period is
// ordered, the formats are known.
func CheckRequest(req *Request, now time.Time) error {
	if _, ok := Lookup(req.Kind); !ok {
		names := make([]string, 0)
		for _, k := range Kinds() {
			names = append(names, k.Name)
		}
		return fmt.Errorf("%w %q: one of %s", ErrUnknownKind, req.Kind, strings.Join(names, ", "))
	}
	if req.Params.Until.IsZero() {
		req.Params.Until = now
	}
	if !req.Params.Since.Before(req.Params.Until) {
		return fmt.Errorf("%w: since (%s) must be before until (%s)", ErrBadRequest, ts(req.Params.Since), ts(req.Params.Until))
	}
	if req.BaseName != "" && !validBaseName(req.BaseName) {
		return fmt.Errorf("%w: file name %q: letters, digits, '.', '_' and '-' only, not starting with '.' or '-'", ErrBadRequest, req.BaseName)
	}
	if len(req.Formats) == 0 {
		req.Formats = AllFormats
	}
	seen := map[string]bool{}
	for _, f := range req.Formats {
		if !slices.Contains(AllFormats, f) {
			return fmt.Errorf("%w: format %q: one of csv, json, pdf", ErrBadRequest, f)
		}
		if seen[f] {
			return fmt.Errorf("%w: format %q given twice", ErrBadRequest, f)
		}
		seen[f] = true
	}
	return nil
}

// Generate builds the report, renders each format from the same table,
// signs the manifest and audits the export. The audit event is written
// before the export is returned; if it cannot be, nothing is returned.
func (g *Generator) Generate(ctx context.Context, req Request) (*Export, error) {
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	at := now().UTC()
	if err := CheckRequest(&req, at); err != nil {
		return nil, err
	}
	kind, _ := Lookup(req.Kind)
	// The head first: rows added after it may or may not be in the
	// report, but nothing before it is missing.
	headID, headHash, err := g.Source.Store.AuditHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("report %s: read the audit head: %w", req.Kind, err)
	}
	t, err := kind.Build(ctx, g.Source, req.Params)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", req.Kind, err)
	}
	h := header{kind: kind, params: req.Params, generatedAt: at, generatedBy: req.By, version: g.Version,
		audit: AuditPoint{EventID: headID, Hash: headHash}}
	base := req.BaseName
	if base == "" {
		base = fmt.Sprintf("%s-%s", kind.Name, req.Params.Until.UTC().Format("20060102T150405Z"))
	}
	ex := &Export{ManifestName: base + ".manifest.json"}
	m := Manifest{Format: ManifestFormat, Report: kind.Name, Title: kind.Title,
		Filters:     Filters{Since: ts(req.Params.Since), Until: ts(req.Params.Until)},
		GeneratedAt: at.Format(time.RFC3339Nano), GeneratedBy: req.By, GatewayVersion: g.Version,
		Rows: len(t.Rows), AuditHead: h.audit, Notes: t.Notes}
	for _, f := range req.Formats {
		var data []byte
		switch f {
		case FormatCSV:
			data, err = renderCSV(t)
		case FormatJSON:
			data, err = renderJSON(t, h)
		case FormatPDF:
			data, err = renderPDF(t, h)
		}
		if err != nil {
			return nil, fmt.Errorf("report %s: %w", req.Kind, err)
		}
		sum := sha256.Sum256(data)
		name := base + "." + f
		ex.Files = append(ex.Files, ExportFile{Name: name, Format: f, Data: data})
		m.Files = append(m.Files, File{Name: name, Format: f, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	if err := m.Sign(g.Signer); err != nil {
		return nil, fmt.Errorf("report %s: sign: %w", req.Kind, err)
	}
	ex.Manifest = m
	files := make([]map[string]any, 0, len(m.Files))
	for _, f := range m.Files {
		files = append(files, map[string]any{"name": f.Name, "sha256": f.SHA256})
	}
	if err := g.Audit(ctx, store.AuditEvent{Type: audit.ReportGenerate, Outcome: audit.Success, User: req.By,
		Source: req.Source, Message: fmt.Sprintf("report %s for %s to %s: %d rows", kind.Name, ts(req.Params.Since), ts(req.Params.Until), len(t.Rows)),
		Detail: map[string]any{"report": kind.Name, "since": ts(req.Params.Since), "until": ts(req.Params.Until),
			"rows": len(t.Rows), "files": files, "audit_head": headID}}); err != nil {
		return nil, fmt.Errorf("report %s: audit the export: %w", req.Kind, err)
	}
	return ex, nil
}

// WriteDir writes the export's files and manifest into dir (which must
// exist), each to a temporary name first and then renamed, the manifest
// last: a manifest on disk means its files are whole.
func (ex *Export) WriteDir(dir string) error {
	for _, f := range ex.Files {
		if err := writeAtomic(filepath.Join(dir, f.Name), f.Data); err != nil {
			return err
		}
	}
	mb, err := ex.Manifest.Marshal()
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, ex.ManifestName), mb)
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
