package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

func commandIDs(cs []store.Command) []int64 {
	var out []int64
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func listCommands(t *testing.T, s store.Store, f store.CommandFilter) []store.Command {
	t.Helper()
	cs, err := s.ListCommands(context.Background(), f)
	if err != nil {
		t.Fatalf("ListCommands(%+v): %v", f, err)
	}
	return cs
}

func testCommands(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := time.Date(2026, 9, 1, 1, 2, 3, 456789012, time.FixedZone("X", 3600))
	status := 3
	in := []store.Command{
		{Time: at, User: "alice", Target: "db1", Account: "root", SessionID: "s1", Source: "192.0.2.1:1",
			Command: "uptime", Interactive: false, Certain: true},
		{Time: at.Add(time.Second), User: "alice", Target: "db1", Account: "root", SessionID: "s2",
			Command: "vi /etc/hosts\x00\xff", Interactive: true, Certain: false},
		{Time: at.Add(2 * time.Second), User: "bob", Command: "false", Certain: true, ExitStatus: &status},
	}
	var last int64
	for i := range in {
		in[i].ID = 12345 // ignored
		id, err := s.AppendCommand(ctx, in[i])
		if err != nil {
			t.Fatalf("AppendCommand %d: %v", i, err)
		}
		if id <= last {
			t.Errorf("AppendCommand %d: id %d not above %d", i, id, last)
		}
		in[i].ID, last = id, id
	}
	in[1].Command = "vi /etc/hosts\uFFFD\uFFFD"
	got := listCommands(t, s, store.CommandFilter{})
	if len(got) != len(in) {
		t.Fatalf("ListCommands: %d, want %d", len(got), len(in))
	}
	for i := range in {
		g, w := got[i], in[i]
		if !g.Time.Equal(w.Time) || g.Time.Location() != time.UTC {
			t.Errorf("command %d: time %v, want %v in UTC", i, g.Time, w.Time)
		}
		if (g.ExitStatus == nil) != (w.ExitStatus == nil) || (g.ExitStatus != nil && *g.ExitStatus != *w.ExitStatus) {
			t.Errorf("command %d: exit status %v, want %v", i, ptr(g.ExitStatus), ptr(w.ExitStatus))
		}
		g.Time, w.Time, g.ExitStatus, w.ExitStatus = time.Time{}, time.Time{}, nil, nil
		if g != w {
			t.Errorf("command %d = %+v, want %+v", i, g, w)
		}
	}

	if err := s.SetCommandExit(ctx, in[0].ID, 0); err != nil {
		t.Fatalf("SetCommandExit: %v", err)
	}
	if err := s.SetCommandExit(ctx, in[2].ID, -1); err != nil {
		t.Fatalf("SetCommandExit: %v", err)
	}
	got = listCommands(t, s, store.CommandFilter{})
	if got[0].ExitStatus == nil || *got[0].ExitStatus != 0 {
		t.Errorf("after SetCommandExit 0: exit status %v", ptr(got[0].ExitStatus))
	}
	if got[1].ExitStatus != nil {
		t.Errorf("untouched command: exit status %v, want nil", *got[1].ExitStatus)
	}
	if got[2].ExitStatus == nil || *got[2].ExitStatus != -1 {
		t.Errorf("after SetCommandExit -1: exit status %v", ptr(got[2].ExitStatus))
	}
	if err := s.SetCommandExit(ctx, last+100, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetCommandExit of an unknown id: err = %v, want ErrNotFound", err)
	}

	before := time.Now()
	id, err := s.AppendCommand(ctx, store.Command{Command: "ls"})
	if err != nil {
		t.Fatal(err)
	}
	now := listCommands(t, s, store.CommandFilter{AfterID: id - 1})
	if len(now) != 1 || now[0].Time.Before(before.Add(-time.Second)) || now[0].Time.After(time.Now().Add(time.Second)) {
		t.Errorf("zero Time: %+v, want now", now)
	}
}

func ptr(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func testListCommands(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Date(2026, 9, 2, 0, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	// Times not in ID order (command 2 is the earliest), to tell the Since
	// filter from ID order.
	in := []store.Command{
		{Time: at(1), User: "alice", Target: "db1", SessionID: "s1", Command: "a"},
		{Time: at(2), User: "alice", Target: "db1", SessionID: "s1", Command: "b"},
		{Time: at(0), User: "bob", Target: "web1", SessionID: "s2", Command: "c"},
		{Time: at(3), User: "bob", Target: "db1", SessionID: "s3", Command: "d"},
		{Time: at(4), User: "carol", Target: "web1", SessionID: "s4", Command: "e"},
	}
	id := make([]int64, len(in))
	for i, c := range in {
		var err error
		if id[i], err = s.AppendCommand(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	pick := func(idx ...int) []int64 {
		var out []int64
		for _, i := range idx {
			out = append(out, id[i])
		}
		return out
	}
	cases := []struct {
		name string
		f    store.CommandFilter
		want []int64
	}{
		{"all, oldest first", store.CommandFilter{}, id},
		{"user", store.CommandFilter{User: "bob"}, pick(2, 3)},
		{"target", store.CommandFilter{Target: "db1"}, pick(0, 1, 3)},
		{"session", store.CommandFilter{SessionID: "s1"}, pick(0, 1)},
		{"since is inclusive", store.CommandFilter{Since: at(2)}, pick(1, 3, 4)},
		{"after id", store.CommandFilter{AfterID: id[2]}, pick(3, 4)},
		{"limit", store.CommandFilter{Limit: 2}, pick(0, 1)},
		{"newest first", store.CommandFilter{Newest: true, Limit: 2}, pick(4, 3)},
		{"before id, newest first", store.CommandFilter{Newest: true, BeforeID: id[3]}, pick(2, 1, 0)},
		{"before id with filter", store.CommandFilter{Newest: true, BeforeID: id[3], Target: "db1"}, pick(1, 0)},
		{"combined", store.CommandFilter{User: "bob", Target: "db1", Since: at(1)}, pick(3)},
		{"no match", store.CommandFilter{User: "mallory"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := commandIDs(listCommands(t, s, c.f)); !slices.Equal(got, c.want) {
				t.Errorf("ListCommands(%+v) = %v, want %v", c.f, got, c.want)
			}
		})
	}
	// Paging with AfterID and Limit visits every command once.
	var paged []int64
	after := int64(0)
	for range 10 {
		page := listCommands(t, s, store.CommandFilter{AfterID: after, Limit: 2})
		if len(page) == 0 {
			break
		}
		paged = append(paged, commandIDs(page)...)
		after = page[len(page)-1].ID
	}
	if !slices.Equal(paged, id) {
		t.Errorf("paged %v, want %v", paged, id)
	}
}

// testAppendCommands: a store with AppendCommands (the command history
// queue's batches) stores them in order with ascending IDs, as
// AppendCommand would one by one.
func testAppendCommands(t *testing.T, s store.Store) {
	b, ok := s.(interface {
		AppendCommands(ctx context.Context, cs []store.Command) error
	})
	if !ok {
		t.Skip("no AppendCommands")
	}
	ctx := context.Background()
	status := 3
	at := time.Date(2026, 9, 1, 1, 2, 3, 0, time.UTC)
	if err := b.AppendCommands(ctx, []store.Command{
		{Time: at, User: "alice", Target: "k1", Account: "alice", Command: "list pods -n dev", Certain: true},
		{Time: at.Add(-time.Hour), User: "alice", Target: "k1", Account: "alice", SessionID: "k8s-1",
			Command: "create pods/w/exec -n dev -- sh", Certain: true, ExitStatus: &status},
		{User: "bob", Target: "k1", Command: "bad \xff"},
	}); err != nil {
		t.Fatal(err)
	}
	got := listCommands(t, s, store.CommandFilter{Target: "k1"})
	if len(got) != 3 || got[0].Command != "list pods -n dev" || got[1].SessionID != "k8s-1" || got[1].ExitStatus == nil ||
		*got[1].ExitStatus != 3 || !got[1].Time.Equal(at.Add(-time.Hour)) || got[2].Command != "bad \uFFFD" || got[2].Time.IsZero() ||
		got[0].ID >= got[1].ID || got[1].ID >= got[2].ID || got[0].ExitStatus != nil {
		t.Fatalf("after AppendCommands: %+v", got)
	}
}
