// Package metrics keeps the gateway's Prometheus metrics: sessions, logins,
// denials, policy decision latency, bytes proxied, API requests, connections
// dropped before their handshake and the open-file headroom.
//
// Labels are a small fixed set of values chosen here (actions, reason
// classes, status classes), never user, target or key names: /metrics is
// served without authentication, as scrapers expect, and every distinct
// label value is a time series kept for as long as the process runs.
//
// Every method is safe on a nil *Metrics and does nothing, so code under
// test can run without metrics.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portcullis/portcullis/internal/resource"
)

// Denial reason classes, the values of the reason label of
// portcullis_denials_total. Any other value is counted as DenyOther.
const (
	// DenyPolicy: the policy engine denied a session, exec or tunnel.
	DenyPolicy = "policy"
	// DenyCommand: the policy denied a line typed in an interactive shell.
	DenyCommand = "command"
	// DenyLoginString: the SSH user name was not a valid login string.
	DenyLoginString = "login_string"
	// DenyForward: agent, X11 or remote (-R) forwarding, which the gateway
	// never allows.
	DenyForward = "forward"
	// DenyLimit: a per-connection bound (open channels) was reached, or
	// a session's bound on the requests held during its setup.
	DenyLimit = "limit"
	// DenyUnsupported: a channel type, subsystem or malformed request the
	// gateway does not serve.
	DenyUnsupported = "unsupported"
	// DenyAPI: the API's policy check refused a request.
	DenyAPI = "api"
	// DenyOther: any class not listed here.
	DenyOther = "other"
)

var denyClasses = []string{DenyPolicy, DenyCommand, DenyLoginString, DenyForward, DenyLimit,
	DenyUnsupported, DenyAPI, DenyOther}

// Reasons a connection is closed before its handshake, the values of the
// reason label of portcullis_connections_dropped_total. Any other value is
// counted as DropOther.
const (
	// DropFailures: the source is over its failed-authentication budget.
	DropFailures = "failures"
	// DropPerSource: the source holds its cap of unauthenticated
	// connections.
	DropPerSource = "per_source"
	// DropEarly: random early drop over the pre-authentication start.
	DropEarly = "early"
	// DropFull: the pre-authentication pool is full.
	DropFull = "full"
	// DropEvicted: an unauthenticated connection closed to make room.
	DropEvicted = "evicted"
	// DropFiles: the process is close to its limit of open files.
	DropFiles = "files"
	// DropOther: any reason not listed here.
	DropOther = "other"
)

var dropReasons = []string{DropFailures, DropPerSource, DropEarly, DropFull, DropEvicted, DropFiles, DropOther}

// actionOther is the action label of a session whose action is not one of
// resource.AllActions.
const actionOther = "other"

// Metrics holds the gateway's metrics on a registry of its own, so that
// tests can create as many as they like and nothing else in the process
// (a library registering on the global registry) shows up on /metrics.
//
// Label children are resolved once in New: a hot path pays an atomic add,
// not a label lookup.
type Metrics struct {
	reg *prometheus.Registry

	sessionsActive prometheus.Gauge
	sessionsTotal  map[string]prometheus.Counter // by action
	loginSuccess   prometheus.Counter
	loginFailure   prometheus.Counter
	denials        map[string]prometheus.Counter // by reason class
	decision       prometheus.Histogram
	bytesUp        prometheus.Counter
	bytesDown      prometheus.Counter
	apiRequests    [6]prometheus.Counter // index status/100; 0 holds "other"
	apiKeyFailures prometheus.Counter
	dropped        map[string]prometheus.Counter // by drop reason
}

// New returns metrics registered on a new registry together with the Go
// runtime and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{reg: reg}

	m.sessionsActive = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "portcullis_sessions_active",
		Help: "Sessions and tunnels open through the SSH gateway.",
	})
	sessions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_sessions_total",
		Help: "Sessions and tunnels started through the SSH gateway, by action.",
	}, []string{"action"})
	m.sessionsTotal = map[string]prometheus.Counter{}
	for _, a := range append(append([]string(nil), resource.AllActions...), actionOther) {
		m.sessionsTotal[a] = sessions.WithLabelValues(a)
	}

	logins := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_logins_total",
		Help: "SSH authentications, by outcome (success or failure).",
	}, []string{"outcome"})
	m.loginSuccess = logins.WithLabelValues("success")
	m.loginFailure = logins.WithLabelValues("failure")

	denials := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_denials_total",
		Help: "Requests refused, by reason class.",
	}, []string{"reason"})
	m.denials = map[string]prometheus.Counter{}
	for _, c := range denyClasses {
		m.denials[c] = denials.WithLabelValues(c)
	}

	m.decision = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "portcullis_policy_decision_seconds",
		Help: "Time the policy engine takes to decide one request.",
		// A decision is an in-memory evaluation: microseconds normally,
		// so the buckets run from 1µs to 10ms in 1-2.5-5 steps, which
		// keeps the le labels readable.
		Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2},
	})

	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_proxied_bytes_total",
		Help: "Bytes copied through the gateway, counted when a session ends: up is client to target, down is target to client.",
	}, []string{"direction"})
	m.bytesUp = bytes.WithLabelValues("up")
	m.bytesDown = bytes.WithLabelValues("down")

	api := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_api_requests_total",
		Help: "API requests answered, by status class (2xx, 4xx, ...).",
	}, []string{"code_class"})
	m.apiRequests[0] = api.WithLabelValues("other")
	for i := 1; i < len(m.apiRequests); i++ {
		m.apiRequests[i] = api.WithLabelValues(string(rune('0'+i)) + "xx")
	}

	m.apiKeyFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_apikey_auth_failures_total",
		Help: "API requests refused because their X-API-KEY was unknown, wrong, revoked, expired or used from a disallowed address.",
	})

	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_connections_dropped_total",
		Help: "Connections closed before their SSH handshake (failure limit, pre-authentication pool, open-file limit), by reason.",
	}, []string{"reason"})
	m.dropped = map[string]prometheus.Counter{}
	for _, r := range dropReasons {
		m.dropped[r] = dropped.WithLabelValues(r)
	}

	reg.MustRegister(m.sessionsActive, sessions, logins, denials, m.decision, bytes, api, m.apiKeyFailures, dropped)
	return m
}

// Handler serves the metrics in the Prometheus exposition formats. On a nil
// *Metrics it answers 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// Counts the handler's own errors in promhttp_metric_handler_errors_total.
		Registry: m.reg,
		// A collector that fails (say /proc unreadable) should not hide the
		// metrics that did work.
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Registry returns the registry the metrics live on, for tests and for
// packages that add collectors of their own. Nil on a nil *Metrics.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// SessionStarted counts a session or tunnel that started running with
// action (one of resource.AllActions). Each call must be followed by one
// SessionEnded.
func (m *Metrics) SessionStarted(action string) {
	if m == nil {
		return
	}
	c, ok := m.sessionsTotal[action]
	if !ok {
		c = m.sessionsTotal[actionOther]
	}
	c.Inc()
	m.sessionsActive.Inc()
}

// SessionEnded counts the end of a session or tunnel and the bytes it
// carried: up from the client to the target, down from the target to the
// client.
func (m *Metrics) SessionEnded(up, down int64) {
	if m == nil {
		return
	}
	m.sessionsActive.Dec()
	if up > 0 {
		m.bytesUp.Add(float64(up))
	}
	if down > 0 {
		m.bytesDown.Add(float64(down))
	}
}

// Login counts one SSH authentication that succeeded or failed.
func (m *Metrics) Login(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.loginSuccess.Inc()
	} else {
		m.loginFailure.Inc()
	}
}

// Denied counts one refused request; class is one of the Deny constants.
func (m *Metrics) Denied(class string) {
	if m == nil {
		return
	}
	c, ok := m.denials[class]
	if !ok {
		c = m.denials[DenyOther]
	}
	c.Inc()
}

// PolicyDecision records how long one policy decision took.
func (m *Metrics) PolicyDecision(d time.Duration) {
	if m == nil {
		return
	}
	m.decision.Observe(d.Seconds())
}

// APIRequest counts one API answer by the class of its HTTP status.
func (m *Metrics) APIRequest(status int) {
	if m == nil {
		return
	}
	i := status / 100
	if i < 1 || i >= len(m.apiRequests) {
		i = 0
	}
	m.apiRequests[i].Inc()
}

// APIKeyAuthFailure counts one request whose API key was refused.
func (m *Metrics) APIKeyAuthFailure() {
	if m == nil {
		return
	}
	m.apiKeyFailures.Inc()
}

// Dropped counts one connection closed before its handshake; reason is one
// of the Drop constants. Every drop is counted here, while the log gets one
// line per source and interval.
func (m *Metrics) Dropped(reason string) {
	if m == nil {
		return
	}
	c, ok := m.dropped[reason]
	if !ok {
		c = m.dropped[DropOther]
	}
	c.Inc()
}

// FileHeadroom exposes free, called at each scrape, as
// portcullis_open_files_headroom: how many more files and sockets the
// process may open before it reaches its limit. Call it once.
func (m *Metrics) FileHeadroom(free func() int) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "portcullis_open_files_headroom",
		Help: "File descriptors the process may still open before RLIMIT_NOFILE (soft limit minus those open).",
	}, func() float64 { return float64(free()) }))
}

// RecordingSpool exposes pending, called at each scrape, as
// portcullis_recordings_spool: ended recordings that wait on this
// gateway's disk for the object store (recordings_store: s3://...). Call
// it once.
func (m *Metrics) RecordingSpool(pending func() int) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "portcullis_recordings_spool",
		Help: "Ended recordings waiting on this gateway's disk to be shipped to the shared object store.",
	}, func() float64 { return float64(pending()) }))
}
