package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// gatewayID returns the configured gateway id, or the one kept in
// DATA/gateway.id, generated on first start. It is stable across
// restarts, so that a restarted gateway finds the recordings it left
// active, and only those.
func gatewayID(configured, dataDir string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(dataDir, "gateway.id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("gateway id file %s is empty: delete it to generate a new id", path)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read gateway id: %w", err)
	}
	var raw [6]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("generate gateway id: %w", err)
	}
	host, _ := os.Hostname()
	id := "gw-" + hex.EncodeToString(raw[:])
	if h := sanitizeHost(host); h != "" {
		id = h + "-" + hex.EncodeToString(raw[:3])
	}
	if err := writeFileAtomic(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write gateway id: %w", err)
	}
	return id, nil
}

// sanitizeHost keeps the characters a gateway id may hold, so that the
// generated id says which machine it is.
func sanitizeHost(h string) string {
	var b strings.Builder
	for _, r := range h {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			b.WriteRune(r)
		}
		if b.Len() >= 40 {
			break
		}
	}
	return strings.Trim(b.String(), "-.")
}
