package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// TestWriteLogsStructuredValues checks the log line Write makes for Detail
// values that used to print as decimal bytes, struct dumps and <nil>, or
// repeated a key of the line, in JSON and in text mode.
func TestWriteLogsStructuredValues(t *testing.T) {
	var expires *time.Time
	tests := []struct {
		name     string
		detail   map[string]any
		wantJSON string // a fragment of the JSON line
		wantText string // a fragment of the text line
	}{
		{"raw JSON", map[string]any{"changes": []map[string]any{{"after": json.RawMessage(`{"kind":"User","name":"a"}`)}}},
			`"detail":{"changes":[{"after":{"kind":"User","name":"a"}}]}`, `detail.changes="[{\"after\":{\"kind\":\"User\",\"name\":\"a\"}}]"`},
		{"struct pointer", map[string]any{"before": &resource.Policy{Kind: resource.KindPolicy, Name: "p"}},
			`"detail":{"before":{"kind":"Policy","name":"p"`, `detail.before="{\"kind\":\"Policy\",\"name\":\"p\"`},
		{"nil pointer left out", map[string]any{"expires_at": expires, "n": 3},
			`"detail":{"n":3}`, `detail.n=3`},
		{"a detail key named like a field of the line", map[string]any{"user": "root"},
			`"user":"local-admin"`, `detail.user=root`},
		{"bytes", map[string]any{"b": []byte("hi")},
			`"detail":{"b":"aGk="}`, `detail.b="aGk="`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []string{"json", "text"} {
				var buf bytes.Buffer
				var h slog.Handler = slog.NewJSONHandler(&buf, nil)
				if mode == "text" {
					h = slog.NewTextHandler(&buf, nil)
				}
				st, _ := newTrail(t, 0)
				l := New(st, slog.New(h))
				if err := l.Write(context.Background(), store.AuditEvent{Type: ResourceApply, Outcome: Success, User: "local-admin",
					Message: "applied", Detail: tc.detail}); err != nil {
					t.Fatal(err)
				}
				line := buf.String()
				for _, leak := range testenv.LogLeaks {
					if strings.Contains(line, leak) {
						t.Errorf("%s line holds %q: %s", mode, leak, line)
					}
				}
				want := tc.wantJSON
				if mode == "text" {
					want = tc.wantText
					if n := strings.Count(line, " user="); n != 1 {
						t.Errorf("text line has user= %d times: %s", n, line)
					}
				} else {
					testenv.CheckJSONLog(t, buf.Bytes())
				}
				if !strings.Contains(line, want) {
					t.Errorf("%s line lacks %s:\n%s", mode, want, line)
				}
			}
		})
	}
}

// TestWriteQuiet checks that an event written with WriteQuiet is stored as
// Write stores it, and logged at debug level only, also when it failed: the
// SQL it carries never reaches an info or warn log.
func TestWriteQuiet(t *testing.T) {
	for _, tc := range []struct {
		level   slog.Level
		outcome string
		logged  bool
	}{
		{slog.LevelInfo, Success, false},
		{slog.LevelInfo, Failure, false},
		{slog.LevelWarn, Failure, false},
		{slog.LevelDebug, Success, true},
		{slog.LevelDebug, Failure, true},
	} {
		var buf bytes.Buffer
		st, _ := newTrail(t, 0)
		l := New(st, slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tc.level})))
		ev := store.AuditEvent{Type: "db.statement", Outcome: tc.outcome, User: "alice",
			Message: "select 'secret literal'", Detail: map[string]any{"statements": []any{map[string]any{"sql": "select 'secret literal'"}}}}
		if err := l.WriteQuiet(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(buf.String(), "secret literal"); got != tc.logged {
			t.Errorf("level %s, outcome %s: logged %v, want %v: %s", tc.level, tc.outcome, got, tc.logged, buf.String())
		}
		evs, err := st.ListAudit(context.Background(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Message != ev.Message || evs[0].Outcome != tc.outcome {
			t.Errorf("level %s, outcome %s: stored %+v, want the event", tc.level, tc.outcome, evs)
		}
	}
}
