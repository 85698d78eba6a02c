package report_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/report"
)

func signedManifest(t testing.TB) (report.Manifest, ed25519.PublicKey) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	k, err := audit.NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	m := report.Manifest{Format: report.ManifestFormat, Report: "access-log", Rows: 2,
		Files: []report.File{{Name: "a.csv", Format: "csv", Size: 3, SHA256: strings.Repeat("0", 64)}}}
	if err := m.Sign(k); err != nil {
		t.Fatal(err)
	}
	return m, k.Public()
}

// TestManifestRefusals: what an attacker would try on a manifest.
func TestManifestRefusals(t *testing.T) {
	m, pub := signedManifest(t)
	good, _ := m.Marshal()
	if _, err := report.ParseManifest(bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, edit string
		check      func(report.Manifest) error
	}{
		{"unknown field rides along", strings.Replace(string(good), `"format"`, `"extra": "unsigned", "format"`, 1), nil},
		{"other format", strings.Replace(string(good), report.ManifestFormat, "portcullis-report-manifest/0", 1), nil},
		{"trailing data", string(good) + "{}", nil},
		{"rows changed", strings.Replace(string(good), `"rows": 2`, `"rows": 3`, 1), func(m report.Manifest) error { return m.CheckSignature(pub) }},
		{"signature of another", strings.Replace(string(good), m.Signature, strings.Repeat("A", 86)+"==", 1), func(m report.Manifest) error { return m.CheckSignature(pub) }},
		{"file outside its directory", strings.Replace(string(good), `"a.csv"`, `"../a.csv"`, 1), func(m report.Manifest) error { return m.VerifyFiles(t.TempDir()) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pm, err := report.ParseManifest(strings.NewReader(tc.edit))
			if err == nil && tc.check != nil {
				err = tc.check(pm)
			}
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// A checkpoint signature cannot pass as a manifest's: the messages
	// are apart (audit.ReportMessage).
	if bytes.HasPrefix(audit.ReportMessage(nil), []byte("30:")) {
		t.Fatal("report messages look like checkpoint messages")
	}
	// A missing file is named.
	dir := t.TempDir()
	if err := m.VerifyFiles(dir); err == nil || !strings.Contains(err.Error(), "a.csv") {
		t.Fatalf("missing file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "a.csv"), []byte("abc"), 0o600)
	if err := m.VerifyFiles(dir); err == nil || !strings.Contains(err.Error(), "was changed") {
		t.Fatalf("wrong file: %v", err)
	}
}

// FuzzParseManifest: a manifest is outside input to `report verify`. No
// input panics, and whatever parses, encodes and parses back the same.
func FuzzParseManifest(f *testing.F) {
	m, _ := signedManifest(f)
	good, _ := m.Marshal()
	f.Add(good)
	f.Add([]byte(`{"format":"portcullis-report-manifest/1","files":[{"name":"../x"}]}`))
	f.Add([]byte(`{"format":"portcullis-report-manifest/1","rows":1e400}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pm, err := report.ParseManifest(bytes.NewReader(b))
		if err != nil {
			return
		}
		_ = pm.CheckSignature(make(ed25519.PublicKey, ed25519.PublicKeySize))
		again, err := pm.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pm2, err := report.ParseManifest(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("a parsed manifest does not parse back: %v", err)
		}
		b2, _ := pm2.Marshal()
		if !bytes.Equal(again, b2) {
			t.Fatal("parse and encode is not stable")
		}
	})
}
