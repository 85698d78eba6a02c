package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// scrape returns the text exposition m serves.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", rec.Code)
	}
	body, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return string(body)
}

func TestMetricsExposition(t *testing.T) {
	m := New()
	m.SessionStarted("shell")
	m.SessionStarted("shell")
	m.SessionStarted("tunnel")
	m.SessionStarted("alice's-made-up-action") // must not become a label value
	m.SessionEnded(100, 2000)
	m.SessionEnded(-1, 0) // a negative count must not make a counter go down
	m.Login(true)
	m.Login(false)
	m.Login(false)
	m.Denied(DenyPolicy)
	m.Denied(DenyForward)
	m.Denied("target db-prod") // unknown class: counted as other
	m.PolicyDecision(3 * time.Microsecond)
	m.PolicyDecision(time.Second)
	for _, code := range []int{200, 201, 204, 403, 404, 500, 0, 999} {
		m.APIRequest(code)
	}
	m.APIKeyAuthFailure()
	m.Dropped(DropFailures)
	m.Dropped(DropFailures)
	m.Dropped("192.0.2.7") // not a reason: counted as other, never a label
	m.FileHeadroom(func() int { return 42 })
	m.RecordingSpool(func() int { return 3 })

	out := scrape(t, m)
	tests := []struct {
		name string
		line string
	}{
		{"active", "portcullis_sessions_active 2"},
		{"shell", `portcullis_sessions_total{action="shell"} 2`},
		{"tunnel", `portcullis_sessions_total{action="tunnel"} 1`},
		{"exec zero", `portcullis_sessions_total{action="exec"} 0`},
		{"unknown action", `portcullis_sessions_total{action="other"} 1`},
		{"login success", `portcullis_logins_total{outcome="success"} 1`},
		{"login failure", `portcullis_logins_total{outcome="failure"} 2`},
		{"denied policy", `portcullis_denials_total{reason="policy"} 1`},
		{"denied forward", `portcullis_denials_total{reason="forward"} 1`},
		{"denied other", `portcullis_denials_total{reason="other"} 1`},
		{"denied zero", `portcullis_denials_total{reason="login_string"} 0`},
		{"decision 5us", `portcullis_policy_decision_seconds_bucket{le="5e-06"} 1`},
		{"decision 10ms", `portcullis_policy_decision_seconds_bucket{le="0.01"} 1`},
		{"decision inf", `portcullis_policy_decision_seconds_bucket{le="+Inf"} 2`},
		{"bytes up", `portcullis_proxied_bytes_total{direction="up"} 100`},
		{"bytes down", `portcullis_proxied_bytes_total{direction="down"} 2000`},
		{"api 2xx", `portcullis_api_requests_total{code_class="2xx"} 3`},
		{"api 4xx", `portcullis_api_requests_total{code_class="4xx"} 2`},
		{"api 5xx", `portcullis_api_requests_total{code_class="5xx"} 1`},
		{"api other", `portcullis_api_requests_total{code_class="other"} 2`},
		{"apikey failures", "portcullis_apikey_auth_failures_total 1"},
		{"dropped failures", `portcullis_connections_dropped_total{reason="failures"} 2`},
		{"dropped other", `portcullis_connections_dropped_total{reason="other"} 1`},
		{"dropped zero", `portcullis_connections_dropped_total{reason="files"} 0`},
		{"file headroom", "portcullis_open_files_headroom 42"},
		{"recordings spool", "portcullis_recordings_spool 3"},
		{"go collector", "go_goroutines "},
		{"process collector", "process_start_time_seconds "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(out, "\n"+tt.line) {
				t.Errorf("exposition has no line %q", tt.line)
			}
		})
	}
	if strings.Contains(out, "alice") || strings.Contains(out, "db-prod") || strings.Contains(out, "192.0.2.7") {
		t.Errorf("a caller's string became a label value:\n%s", out)
	}
}

// TestNilMetrics checks that every method is a no-op on nil, so that code
// under test can pass no metrics.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	calls := []struct {
		name string
		call func()
	}{
		{"SessionStarted", func() { m.SessionStarted("shell") }},
		{"SessionEnded", func() { m.SessionEnded(1, 1) }},
		{"Login", func() { m.Login(true) }},
		{"Denied", func() { m.Denied(DenyPolicy) }},
		{"PolicyDecision", func() { m.PolicyDecision(time.Microsecond) }},
		{"APIRequest", func() { m.APIRequest(200) }},
		{"APIKeyAuthFailure", func() { m.APIKeyAuthFailure() }},
		{"Dropped", func() { m.Dropped(DropFull) }},
		{"FileHeadroom", func() { m.FileHeadroom(func() int { return 1 }) }},
		{"RecordingSpool", func() { m.RecordingSpool(func() int { return 1 }) }},
		{"Registry", func() {
			if m.Registry() != nil {
				t.Error("Registry on nil is not nil")
			}
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) { c.call() })
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil Handler: status %d, want 404", rec.Code)
	}
}

// TestSeparateRegistries checks that two Metrics do not share series: each
// registers on its own registry, not the global one.
func TestSeparateRegistries(t *testing.T) {
	a, b := New(), New()
	a.Login(true)
	if out := scrape(t, b); !strings.Contains(out, `portcullis_logins_total{outcome="success"} 0`) {
		t.Errorf("second Metrics saw the first one's login")
	}
}
