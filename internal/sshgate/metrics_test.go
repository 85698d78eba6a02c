package sshgate_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/sshgate"
)

// TestMetricsHooks drives logins, a session, refusals and a malformed
// login string through the gateway and checks what the metrics counted.
func TestMetricsHooks(t *testing.T) {
	m := metrics.New()
	w := newWorld(t, "exec", func(c *sshgate.Config) { c.Metrics = m })
	login := "alice~" + w.unixUser + "~web1"

	if out, errOut, code := w.ssh("hello\n", login, nil, "cat"); code != 0 || out != "hello\n" {
		t.Fatalf("cat through gateway: code %d out %q err %q", code, out, errOut)
	}
	if _, _, code := w.ssh("", login, []string{"-tt"}); code == 0 {
		t.Fatal("shell without the shell action succeeded")
	}
	if _, _, code := w.ssh("", "mallory~web1", nil, "true"); code != 255 {
		t.Fatalf("unknown user: code %d, want 255", code)
	}
	if _, _, code := w.ssh("", "not a login string", nil, "true"); code != 255 {
		t.Fatalf("malformed login: code %d, want 255", code)
	}

	// Every connection logs in with success; the shell is the only denial
	// by policy. Failures count once per connection that tried and failed.
	want := []string{
		`portcullis_logins_total{outcome="success"} 2`,
		`portcullis_logins_total{outcome="failure"} 2`,
		`portcullis_sessions_total{action="exec"} 1`,
		`portcullis_sessions_active 0`,
		`portcullis_denials_total{reason="policy"} 1`,
		`portcullis_denials_total{reason="login_string"} 1`,
		`portcullis_proxied_bytes_total{direction="up"} 6`,
		`portcullis_proxied_bytes_total{direction="down"} 6`,
		// Each allowed or denied request is one or two decisions.
		`portcullis_policy_decision_seconds_count`,
	}
	// The session's end is counted after the client has exited: wait for
	// it as the other tests wait for end events.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := scrapeMetrics(t, m)
		var missing []string
		for _, line := range want {
			if !strings.Contains(out, "\n"+line) {
				missing = append(missing, line)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %q; have:\n%s", missing, portcullisLinesOf(out))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func scrapeMetrics(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", rec.Code)
	}
	return rec.Body.String()
}

func portcullisLinesOf(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "portcullis_") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
