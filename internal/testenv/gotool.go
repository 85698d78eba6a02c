package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// ToolsDir is where scripts/install-test-deps.sh builds the test servers
// that come from Go modules rather than Debian packages (vcsim, an S3
// server, ...): $PORTCULLIS_TOOLS_DIR, else $XDG_CACHE_HOME/portcullis-tools,
// else ~/.cache/portcullis-tools. It is outside the repository so that a
// clean clone reuses what an earlier run built.
func ToolsDir() string {
	if d := os.Getenv("PORTCULLIS_TOOLS_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "portcullis-tools")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "portcullis-tools")
	}
	return filepath.Join(home, ".cache", "portcullis-tools")
}

// GoTool returns the path of a test server built by the install script's
// go_tool line for NAME and VERSION. When it is missing the test is skipped
// on a developer machine and fails in CI (see Require), with the command
// that builds it.
func GoTool(t testing.TB, name, version, binary string) string {
	t.Helper()
	p := filepath.Join(ToolsDir(), name+"-"+version, binary)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	unmet(t, inCI(), "test server %s %s is not built (no %s): run `make test-deps`", name, version, p)
	return ""
}
