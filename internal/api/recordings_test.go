package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
)

// recEnv is a real API over a real store and a real recording manager
// (running, as the gateway runs it), with a fake session controller.
type recEnv struct {
	srv      *httptest.Server
	st       *sqlite.Store
	mgr      *recording.Manager
	sessions *fakeSessions
	dbPath   string
}

func newRecEnv(t *testing.T) *recEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "portcullis.db")
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	mgr, err := recording.NewManager(filepath.Join(dir, "recordings"), st, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		mgr.Run(runCtx)
	}()
	sessions := &fakeSessions{}
	h := api.New(api.Config{Store: st, Audit: audit.New(st, log), Log: log, Sessions: sessions, Recordings: mgr})
	srv := httptest.NewServer(api.WithLocalAdmin(h))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		st.Close()
	})
	return &recEnv{srv: srv, st: st, mgr: mgr, sessions: sessions, dbPath: dbPath}
}

// fakeSessions is a livesession.Controller over a fixed list.
type fakeSessions struct {
	mu      sync.Mutex
	running []livesession.Session
	kills   []string // "ID BY MESSAGE"
}

func (f *fakeSessions) List() []livesession.Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.running)
}

func (f *fakeSessions) Kill(id, by, message string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.running, func(s livesession.Session) bool { return s.ID == id })
	if i < 0 {
		return livesession.ErrNotFound
	}
	f.running = slices.Delete(f.running, i, i+1)
	f.kills = append(f.kills, id+" "+by+" "+message)
	return nil
}

// do sends one request and returns the status, Content-Type and body.
func (e *recEnv) do(t *testing.T, method, path, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// getJSON sends a GET that must answer 200 with JSON, and decodes it.
func (e *recEnv) getJSON(t *testing.T, path string, out any) {
	t.Helper()
	status, ct, body := e.do(t, "GET", path, "")
	if status != http.StatusOK || ct != "application/json" {
		t.Fatalf("GET %s: %d %s %s", path, status, ct, body)
	}
	if err := json.Unmarshal([]byte(body), out); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// record starts a recording and writes output to it; the caller closes it.
func (e *recEnv) record(t *testing.T, id, user, target string, output ...string) *recording.Recorder {
	t.Helper()
	r, err := e.mgr.Start(context.Background(), recording.Meta{
		ID: id, User: user, Target: target, Account: "svc", Source: "192.0.2.7:50000",
		Action: "shell", Width: 100, Height: 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range output {
		r.Output([]byte(o))
	}
	return r
}

// auditEvents returns the audit events of one type in the order they
// happened (after=0 reads oldest first).
func (e *recEnv) auditEvents(t *testing.T, typ string) []api.Event {
	t.Helper()
	var evs []api.Event
	e.getJSON(t, "/api/v1/audit?after=0&type="+url.QueryEscape(typ), &evs)
	return evs
}

// TestAPIRecordingKind: a file-transfer session's recording is listed as
// kind file-transfer, and its cast holds the operations, not its bytes.
func TestAPIRecordingKind(t *testing.T) {
	e := newRecEnv(t)
	ctx := context.Background()
	r, err := e.mgr.Start(ctx, recording.Meta{ID: "xfer1", User: "alice", Target: "web1", Account: "svc",
		Action: "file-transfer", Command: "sftp", Width: 80, Height: 24})
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("RAW-SFTP-PACKET"))
	r.FileOp(recording.FileOp{Op: "upload", Path: "/tmp/a", Bytes: 3})
	if _, _, err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	e.getJSON(t, "/api/v1/recordings/xfer1", &rec)
	if rec["kind"] != "file-transfer" {
		t.Fatalf("kind %v, want file-transfer: %v", rec["kind"], rec)
	}
}

func TestAPIRecordings(t *testing.T) {
	e := newRecEnv(t)
	ctx := context.Background()
	r1 := e.record(t, "rec1", "alice", "web1", "$ sudo systemctl restart nginx\r\n", "restarted\r\n")
	if _, _, err := r1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r2 := e.record(t, "rec2", "bob", "db1", "$ psql\r\n")
	defer r2.Close(ctx)

	t.Run("list", func(t *testing.T) {
		var recs []map[string]any
		e.getJSON(t, "/api/v1/recordings", &recs)
		if len(recs) != 2 || recs[0]["id"] != "rec2" || recs[1]["id"] != "rec1" {
			t.Fatalf("want rec2 then rec1 (newest first), got %v", recs)
		}
		for _, k := range []string{"id", "state", "user", "target", "account", "source", "action", "command",
			"started_at", "ended_at", "size", "sha256", "kind"} {
			if _, ok := recs[0][k]; !ok {
				t.Errorf("recording lacks %q: %v", k, recs[0])
			}
		}
		if recs[0]["kind"] != "terminal" {
			t.Errorf("a shell recording's kind is %v, want terminal", recs[0]["kind"])
		}
		if recs[0]["state"] != "active" || recs[0]["ended_at"] != nil {
			t.Errorf("rec2: %v", recs[0])
		}
		if recs[1]["state"] != "ended" || recs[1]["ended_at"] == nil || recs[1]["sha256"] == "" || recs[1]["size"].(float64) <= 0 {
			t.Errorf("rec1: %v", recs[1])
		}
	})

	t.Run("filters", func(t *testing.T) {
		for q, want := range map[string]string{
			"user=alice": "rec1", "target=db1": "rec2", "state=ended": "rec1", "state=active": "rec2",
			"since=2000-01-01T00:00:00Z&limit=1": "rec2",
		} {
			var recs []api.Recording
			e.getJSON(t, "/api/v1/recordings?"+q, &recs)
			if len(recs) != 1 || recs[0].ID != want {
				t.Errorf("%s: got %v, want only %s", q, recs, want)
			}
		}
		var recs []api.Recording
		e.getJSON(t, "/api/v1/recordings?since=2200-01-01T00:00:00Z", &recs)
		if recs == nil || len(recs) != 0 {
			t.Errorf("since the future: %v, want []", recs)
		}
	})

	t.Run("get", func(t *testing.T) {
		var rec api.Recording
		e.getJSON(t, "/api/v1/recordings/rec1", &rec)
		if rec.ID != "rec1" || rec.User != "alice" || rec.Target != "web1" || rec.Account != "svc" ||
			rec.Source != "192.0.2.7:50000" || rec.Action != "shell" || rec.State != "ended" {
			t.Errorf("rec1: %+v", rec)
		}
	})

	t.Run("download", func(t *testing.T) {
		status, ct, body := e.do(t, "GET", "/api/v1/recordings/rec1/cast", "")
		if status != 200 || ct != "application/x-asciicast" {
			t.Fatalf("cast: %d %s %s", status, ct, body)
		}
		rd, err := recording.NewReader(strings.NewReader(body))
		if err != nil {
			t.Fatalf("not asciicast: %v\n%s", err, body)
		}
		if h := rd.Header(); h.Width != 100 || h.Height != 30 {
			t.Errorf("header %+v", h)
		}
		if !strings.Contains(body, "systemctl restart nginx") {
			t.Errorf("output missing:\n%s", body)
		}
		var rec api.Recording
		e.getJSON(t, "/api/v1/recordings/rec1", &rec)
		if int64(len(body)) != rec.Size {
			t.Errorf("downloaded %d bytes, recording says %d", len(body), rec.Size)
		}
		// An active recording downloads as far as it is written.
		if status, _, body := e.do(t, "GET", "/api/v1/recordings/rec2/cast?purpose=play", ""); status != 200 || !strings.HasPrefix(body, "{") {
			t.Errorf("active cast: %d %s", status, body)
		}
		evs := e.auditEvents(t, audit.RecordingDownload)
		if len(evs) != 2 {
			t.Fatalf("download events: %+v", evs)
		}
		if ev := evs[0]; ev.User != api.LocalAdmin || ev.SessionID != "rec1" || ev.Target != "web1" || ev.Detail["purpose"] != "download" {
			t.Errorf("download event: %+v", ev)
		}
		if evs[1].Detail["purpose"] != "play" {
			t.Errorf("play event: %+v", evs[1])
		}
	})

	t.Run("search", func(t *testing.T) {
		var hits []api.SearchHit
		// The index is fed from the recorder as it flushes; rec1 is
		// closed, so its text is in.
		e.getJSON(t, "/api/v1/recordings/search?q="+url.QueryEscape("systemctl restart"), &hits)
		if len(hits) != 1 {
			t.Fatalf("hits %+v", hits)
		}
		h := hits[0]
		if h.ID != "rec1" || h.User != "alice" || h.Target != "web1" || h.Offset < 0 || !strings.Contains(h.Snippet, "restart") {
			t.Errorf("hit %+v", h)
		}
		var raw []map[string]any
		e.getJSON(t, "/api/v1/recordings/search?q=nginx&limit=5", &raw)
		if len(raw) != 1 || len(raw[0]) != 5 {
			t.Errorf("hit shape: %v (want id, user, target, offset, snippet)", raw)
		}
		e.getJSON(t, "/api/v1/recordings/search?q=nothingsuchhere", &raw)
		if raw == nil || len(raw) != 0 {
			t.Errorf("no hits: %v, want []", raw)
		}
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			method, path string
			status       int
			want         string
		}{
			{"GET", "/api/v1/recordings/nope", 404, `recording \"nope\" not found`},
			{"GET", "/api/v1/recordings/nope/cast", 404, `recording \"nope\" not found`},
			{"GET", "/api/v1/recordings/..%2Fportcullis.db/cast", 404, "not found"},
			{"DELETE", "/api/v1/recordings/nope", 404, `recording \"nope\" not found`},
			{"GET", "/api/v1/recordings?state=paused", 400, "state"},
			{"GET", "/api/v1/recordings?usr=alice", 400, `unknown query parameter \"usr\"`},
			{"GET", "/api/v1/recordings?user=a&user=b", 400, "2 times"},
			{"GET", "/api/v1/recordings?since=yesterday", 400, "RFC 3339"},
			{"GET", "/api/v1/recordings?limit=0", 400, "limit"},
			{"GET", "/api/v1/recordings/rec1/cast?purpose=steal", 400, "purpose"},
			{"GET", "/api/v1/recordings/search", 400, "q:"},
			{"GET", "/api/v1/recordings/search?q=++", 400, "q:"},
			{"GET", "/api/v1/recordings/search?q=---", 400, "no words"},
			{"PUT", "/api/v1/recordings/rec1", 405, "allowed"},
		}
		for _, tc := range tests {
			status, ct, body := e.do(t, tc.method, tc.path, "")
			if status != tc.status || ct != "application/json" || !strings.Contains(body, tc.want) {
				t.Errorf("%s %s: %d %s %s; want %d and %q", tc.method, tc.path, status, ct, body, tc.status, tc.want)
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		var before api.Recording
		e.getJSON(t, "/api/v1/recordings/rec1", &before)
		status, _, body := e.do(t, "DELETE", "/api/v1/recordings/rec1", "")
		if status != 200 || !strings.Contains(body, `"deleted":"Recording/rec1"`) {
			t.Fatalf("delete: %d %s", status, body)
		}
		if status, _, _ := e.do(t, "GET", "/api/v1/recordings/rec1", ""); status != 404 {
			t.Errorf("deleted recording still there: %d", status)
		}
		if status, _, _ := e.do(t, "GET", "/api/v1/recordings/rec1/cast", ""); status != 404 {
			t.Errorf("deleted recording's file still served: %d", status)
		}
		var hits []api.SearchHit
		e.getJSON(t, "/api/v1/recordings/search?q=nginx", &hits)
		if len(hits) != 0 {
			t.Errorf("deleted recording still found: %+v", hits)
		}
		evs := e.auditEvents(t, audit.RecordingDelete)
		if len(evs) != 1 {
			t.Fatalf("delete events: %+v", evs)
		}
		ev := evs[0]
		if ev.User != api.LocalAdmin || ev.SessionID != "rec1" || ev.Target != "web1" ||
			ev.Detail["sha256"] != before.SHA256 || ev.Detail["recording_user"] != "alice" || ev.Detail["state"] != "ended" {
			t.Errorf("delete event: %+v", ev)
		}
		// A recording in progress can be deleted too.
		if status, _, body := e.do(t, "DELETE", "/api/v1/recordings/rec2", ""); status != 200 {
			t.Errorf("delete active: %d %s", status, body)
		}
		var recs []api.Recording
		e.getJSON(t, "/api/v1/recordings", &recs)
		if len(recs) != 0 {
			t.Errorf("left after deleting both: %+v", recs)
		}
	})
}

// TestAPISearchRoute checks that /recordings/search is the search, not a
// recording called "search", whatever order the routes were added in.
func TestAPISearchRoute(t *testing.T) {
	e := newRecEnv(t)
	status, _, body := e.do(t, "GET", "/api/v1/recordings/search?q=anything", "")
	if status != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("search: %d %s", status, body)
	}
	status, _, body = e.do(t, "GET", "/api/v1/recordings/searchx", "")
	if status != 404 || !strings.Contains(body, `recording \"searchx\" not found`) {
		t.Errorf("recording searchx: %d %s", status, body)
	}
}

// readLine reads one line of a stream, failing the test after a while.
func readLine(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	type res struct {
		line string
		err  error
	}
	c := make(chan res, 1)
	go func() {
		l, err := br.ReadString('\n')
		c <- res{l, err}
	}()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("read stream: %v (got %q)", r.err, r.line)
		}
		return r.line
	case <-time.After(10 * time.Second):
		t.Fatal("no line from the stream in 10s")
	}
	return ""
}

func TestAPIWatch(t *testing.T) {
	e := newRecEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := e.record(t, "live1", "alice", "web1", "before\r\n")
	defer r.Close(ctx)

	open := func(from string) (*http.Response, *bufio.Reader) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/v1/sessions/live1/watch?from="+from, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-asciicast" {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("watch: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		return resp, bufio.NewReader(resp.Body)
	}
	// readUntil reads events until one holds want, writing more output
	// meanwhile with poke (the recorder flushes on its own schedule).
	readUntil := func(br *bufio.Reader, want string, poke func()) string {
		t.Helper()
		var seen strings.Builder
		for !strings.Contains(seen.String(), want) {
			if poke != nil {
				poke()
			}
			seen.WriteString(readLine(t, br))
		}
		return seen.String()
	}

	fromStart, startBody := open("start")
	defer fromStart.Body.Close()
	if h := readLine(t, startBody); !strings.Contains(h, `"version":2`) {
		t.Fatalf("first line is not the header: %s", h)
	}
	readUntil(startBody, "before", nil)

	// From now: the header, then only what comes after.
	fromNow, nowBody := open("now")
	defer fromNow.Body.Close()
	if h := readLine(t, nowBody); !strings.Contains(h, `"version":2`) {
		t.Fatalf("first line is not the header: %s", h)
	}
	seen := readUntil(nowBody, "after", func() { r.Output([]byte("after\r\n")) })
	if strings.Contains(seen, "before") {
		t.Errorf("from=now replayed the past: %s", seen)
	}
	readUntil(startBody, "after", nil)

	// The streams end when the recording does.
	if _, _, err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, br := range []*bufio.Reader{startBody, nowBody} {
		if _, err := io.ReadAll(br); err != nil {
			t.Errorf("stream did not end cleanly: %v", err)
		}
	}

	evs := e.auditEvents(t, audit.RecordingView)
	if len(evs) != 2 {
		t.Fatalf("view events: %+v", evs)
	}
	if ev := evs[0]; ev.User != api.LocalAdmin || ev.SessionID != "live1" || ev.Detail["live"] != true || ev.Detail["from_start"] != true {
		t.Errorf("view event: %+v", ev)
	}

	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/api/v1/sessions/live1/watch", 404, "is not running (its recording is ended)"},
		{"/api/v1/sessions/nope/watch", 404, "has no recording"},
		{"/api/v1/sessions/live1/watch?from=yesterday", 400, "from"},
		{"/api/v1/sessions/live1/watch?to=now", 400, "unknown query parameter"},
	} {
		status, ct, body := e.do(t, "GET", tc.path, "")
		if status != tc.status || ct != "application/json" || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d %s %s; want %d %q", tc.path, status, ct, body, tc.status, tc.want)
		}
	}
	if n := len(e.auditEvents(t, audit.RecordingView)); n != 2 {
		t.Errorf("refused watches were audited as views: %d events", n)
	}
}

func TestAPISessions(t *testing.T) {
	e := newRecEnv(t)
	status, _, body := e.do(t, "GET", "/api/v1/sessions", "")
	if status != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("no sessions: %d %s", status, body)
	}
	started := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	e.sessions.running = []livesession.Session{
		{ID: "s1", User: "alice", Target: "web1", Account: "svc", Source: "192.0.2.7:50000", Action: "shell", Started: started, Recorded: true, Connection: "c1"},
		{ID: "s2", User: "bob", Target: "db1", Account: "pg", Action: "exec", Command: "uptime", Started: started.Add(time.Minute), Connection: "c2"},
	}
	var list []map[string]any
	e.getJSON(t, "/api/v1/sessions", &list)
	if len(list) != 2 || list[0]["id"] != "s1" || list[0]["recorded"] != true || list[1]["command"] != "uptime" {
		t.Errorf("sessions: %v", list)
	}

	tests := []struct {
		path, body string
		status     int
		want       string
	}{
		{"/api/v1/sessions/s1/kill", `{"message":"maintenance window"}`, 200, `"killed":"s1"`},
		{"/api/v1/sessions/s1/kill", ``, 404, `session \"s1\" is not running`},
		{"/api/v1/sessions/s2/kill", `{"message":"bad\u001b[2J"}`, 400, "control characters"},
		{"/api/v1/sessions/s2/kill", `{"mesage":"x"}`, 400, "unknown field"},
		{"/api/v1/sessions/s2/kill", `{"message":"` + strings.Repeat("x", 501) + `"}`, 400, "at most 500"},
		{"/api/v1/sessions/s2/kill", `[`, 400, "request body"},
		{"/api/v1/sessions/s2/kill", ``, 200, `"killed":"s2"`},
	}
	for _, tc := range tests {
		status, ct, body := e.do(t, "POST", tc.path, tc.body)
		if status != tc.status || ct != "application/json" || !strings.Contains(body, tc.want) {
			t.Errorf("POST %s %s: %d %s; want %d %q", tc.path, tc.body, status, body, tc.status, tc.want)
		}
	}
	if want := []string{"s1 local-admin maintenance window", "s2 local-admin "}; !slices.Equal(e.sessions.kills, want) {
		t.Errorf("kills %q, want %q", e.sessions.kills, want)
	}
	if status, _, _ := e.do(t, "GET", "/api/v1/sessions/s1/kill", ""); status != 405 {
		t.Errorf("GET kill: %d, want 405", status)
	}
}

// TestAPIWithoutLiveParts checks the answers of an API configured without
// a session controller or recording manager.
func TestAPIWithoutLiveParts(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(api.WithLocalAdmin(api.New(api.Config{Store: st, Audit: audit.New(st, log), Log: log})))
	defer srv.Close()
	if err := st.CreateRecording(ctx, store.Recording{ID: "r1", User: "alice", StartedAt: time.Now(), State: store.RecordingActive}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		status       int
		want         string
	}{
		{"GET", "/api/v1/sessions", 200, "[]"},
		{"POST", "/api/v1/sessions/x/kill", 404, "not running"},
		{"GET", "/api/v1/recordings/r1/cast", 404, "keeps no recordings"},
		{"DELETE", "/api/v1/recordings/r1", 404, "keeps no recordings"},
		{"GET", "/api/v1/sessions/r1/watch", 404, "keeps no recordings"},
		{"GET", "/api/v1/recordings/r1", 200, `"id":"r1"`},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s %s: %d %s; want %d %q", tc.method, tc.path, resp.StatusCode, b, tc.status, tc.want)
		}
	}
}
