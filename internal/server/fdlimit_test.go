package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
)

// TestStartLogsFileLimitAndHeadroom: a gateway starting says once what
// its limit of open files is (the soft limit raised to the hard one) and
// exposes the headroom on /metrics.
func TestStartLogsFileLimitAndHeadroom(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	srv, err := New(context.Background(), testConfig(t), slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	want := fmt.Sprintf(`msg="open file limit" soft=%d hard=%d`, lim.Max, lim.Max)
	if n := strings.Count(buf.String(), "open file limit"); n != 1 || !strings.Contains(buf.String(), want) {
		t.Errorf("log has %d lines about the limit, want one with %q:\n%s", n, want, buf.String())
	}
	rec := httptest.NewRecorder()
	srv.metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "\nportcullis_open_files_headroom ") {
		t.Errorf("/metrics has no portcullis_open_files_headroom")
	}
}
