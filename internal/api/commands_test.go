package api_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/store"
)

func TestAPICommands(t *testing.T) {
	e := newRecEnv(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []store.Command{
		{Time: t0, User: "alice", Target: "web1", Account: "svc", SessionID: "s1", Source: "192.0.2.7:50000", Command: "uptime"},
		{Time: t0.Add(time.Minute), User: "alice", Target: "web1", Account: "svc", SessionID: "s2", Command: "ls -l", Interactive: true, Certain: true},
		{Time: t0.Add(2 * time.Minute), User: "bob", Target: "db1", Account: "pg", SessionID: "s3", Command: "psql", Interactive: true},
	} {
		id, err := e.st.AppendCommand(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if c.Command == "uptime" {
			if err := e.st.SetCommandExit(ctx, id, 3); err != nil {
				t.Fatal(err)
			}
		}
	}

	var raw []map[string]any
	e.getJSON(t, "/api/v1/commands?after=0", &raw)
	if len(raw) != 3 {
		t.Fatalf("commands: %v", raw)
	}
	for _, k := range []string{"id", "time", "user", "target", "account", "session", "source", "command", "interactive", "certain", "exit_status"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("command lacks %q: %v", k, raw[0])
		}
	}
	if raw[0]["command"] != "uptime" || raw[0]["exit_status"] != float64(3) || raw[0]["interactive"] != false ||
		raw[0]["time"] != "2026-03-01T10:00:00Z" || raw[0]["session"] != "s1" {
		t.Errorf("exec command: %v", raw[0])
	}
	if raw[1]["exit_status"] != nil || raw[1]["interactive"] != true || raw[1]["certain"] != true {
		t.Errorf("interactive command: %v", raw[1])
	}
	if raw[2]["certain"] != false {
		t.Errorf("uncertain command: %v", raw[2])
	}

	for q, want := range map[string]string{
		"user=bob":                              "psql",
		"target=db1":                            "psql",
		"session=s2":                            "ls -l",
		"since=2026-03-01T10:01:30Z":            "psql",
		"after=" + jsonID(raw[1]):               "psql",
		"user=alice&limit=1":                    "ls -l",
		"user=alice&limit=1&after=0":            "uptime",
		"user=alice&since=2026-03-01T10:00:30Z": "ls -l",
	} {
		var cmds []api.Command
		e.getJSON(t, "/api/v1/commands?"+q, &cmds)
		if len(cmds) != 1 || cmds[0].Command != want {
			t.Errorf("%s: %+v, want only %q", q, cmds, want)
		}
	}
	for _, tc := range []struct{ q, want string }{
		{"sesion=s1", `unknown query parameter \"sesion\"`},
		{"after=-1", "after"},
		{"limit=10001", "limit"},
		{"since=2999-01-01T00:00:00Z", "out of range"},
	} {
		status, _, body := e.do(t, "GET", "/api/v1/commands?"+tc.q, "")
		if status != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s; want 400 %q", tc.q, status, body, tc.want)
		}
	}
}

// jsonID returns the id of a decoded JSON object as a query value.
func jsonID(m map[string]any) string {
	f, _ := m["id"].(float64)
	return strconv.FormatInt(int64(f), 10)
}
