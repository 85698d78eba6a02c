package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

func createRecording(t *testing.T, s store.Store, r store.Recording) {
	t.Helper()
	if err := s.CreateRecording(context.Background(), r); err != nil {
		t.Fatalf("CreateRecording %s: %v", r.ID, err)
	}
}

func getRecording(t *testing.T, s store.Store, id string) store.Recording {
	t.Helper()
	r, err := s.GetRecording(context.Background(), id)
	if err != nil {
		t.Fatalf("GetRecording %s: %v", id, err)
	}
	return r
}

func recordingIDs(rs []store.Recording) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testRecordings(t *testing.T, s store.Store) {
	ctx := context.Background()
	started := time.Date(2026, 8, 1, 9, 30, 0, 123456789, time.FixedZone("X", 7200))
	in := store.Recording{
		ID: "g-1", User: "alice", Target: "db1", Account: "postgres", Source: "192.0.2.1:5000",
		Action: "exec", Command: "uptime\x00\xff", StartedAt: started, Gateway: "gw-1",
		// Ignored on create.
		State: store.RecordingEnded, EndedAt: started.Add(time.Hour), Size: 99, SHA256: "ab",
	}
	createRecording(t, s, in)
	r := getRecording(t, s, "g-1")
	want := in
	want.Command = "uptime\uFFFD\uFFFD"
	want.State, want.EndedAt, want.Size, want.SHA256 = store.RecordingActive, time.Time{}, 0, ""
	want.IndexState = store.IndexLive
	if !r.StartedAt.Equal(started) || r.StartedAt.Location() != time.UTC {
		t.Errorf("StartedAt = %v, want %v in UTC", r.StartedAt, started)
	}
	r.StartedAt, want.StartedAt = time.Time{}, time.Time{}
	if r != want {
		t.Errorf("GetRecording = %+v, want %+v", r, want)
	}

	if err := s.CreateRecording(ctx, store.Recording{ID: "g-1"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateRecording of an existing id: err = %v, want ErrConflict", err)
	}
	if err := s.CreateRecording(ctx, store.Recording{User: "alice"}); err == nil {
		t.Error("CreateRecording without an id succeeded")
	}
	before := time.Now()
	createRecording(t, s, store.Recording{ID: "g-2"})
	if r := getRecording(t, s, "g-2"); r.StartedAt.Before(before.Add(-time.Second)) || r.StartedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("zero StartedAt: got %v, want now", r.StartedAt)
	}
	if _, err := s.GetRecording(ctx, "g-3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRecording of an unknown id: err = %v, want ErrNotFound", err)
	}

	ended := started.Add(90 * time.Second)
	if err := s.FinishRecording(ctx, "g-1", store.RecordingEnded, ended, 4096, strings.Repeat("a", 64)); err != nil {
		t.Fatalf("FinishRecording: %v", err)
	}
	r = getRecording(t, s, "g-1")
	if r.State != store.RecordingEnded || !r.EndedAt.Equal(ended) || r.EndedAt.Location() != time.UTC ||
		r.Size != 4096 || r.SHA256 != strings.Repeat("a", 64) || r.User != "alice" {
		t.Errorf("after FinishRecording: %+v", r)
	}
	if err := s.FinishRecording(ctx, "nope", store.RecordingEnded, ended, 1, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FinishRecording of an unknown id: err = %v, want ErrNotFound", err)
	}
	for _, state := range []string{store.RecordingActive, "", "done"} {
		if err := s.FinishRecording(ctx, "g-2", state, ended, 1, ""); err == nil {
			t.Errorf("FinishRecording with state %q succeeded", state)
		}
	}
	if r := getRecording(t, s, "g-2"); r.State != store.RecordingActive {
		t.Errorf("a refused FinishRecording changed the state to %q", r.State)
	}
	// A recording that lost output ends incomplete.
	if err := s.FinishRecording(ctx, "g-2", store.RecordingIncomplete, ended, 1, ""); err != nil {
		t.Fatalf("FinishRecording incomplete: %v", err)
	}
	if r := getRecording(t, s, "g-2"); r.State != store.RecordingIncomplete {
		t.Errorf("state %q after FinishRecording incomplete", r.State)
	}
	// What it lost, for the listing (milliseconds are kept).
	if err := s.SetRecordingGap(ctx, "g-2", 123456, 1500*time.Millisecond, 2*time.Minute+1*time.Millisecond); err != nil {
		t.Fatalf("SetRecordingGap: %v", err)
	}
	if r := getRecording(t, s, "g-2"); r.LostBytes != 123456 || r.GapFrom != 1500*time.Millisecond || r.GapTo != 2*time.Minute+time.Millisecond {
		t.Errorf("after SetRecordingGap: lost %d from %s to %s", r.LostBytes, r.GapFrom, r.GapTo)
	}
	if err := s.SetRecordingGap(ctx, "nope", 1, 0, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetRecordingGap of an unknown id: err = %v, want ErrNotFound", err)
	}
	// Finishing again (interrupted, then the size and hash found) is allowed.
	if err := s.FinishRecording(ctx, "g-2", store.RecordingInterrupted, time.Time{}, 10, "cd"); err != nil {
		t.Fatalf("FinishRecording interrupted: %v", err)
	}
	if err := s.FinishRecording(ctx, "g-2", store.RecordingInterrupted, ended, 20, "ef"); err != nil {
		t.Fatalf("FinishRecording again: %v", err)
	}
	if r := getRecording(t, s, "g-2"); r.State != store.RecordingInterrupted || r.Size != 20 || r.SHA256 != "ef" || !r.EndedAt.Equal(ended) {
		t.Errorf("after finishing twice: %+v", r)
	}
}

func testListRecordings(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Date(2026, 8, 2, 0, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	recs := []store.Recording{
		{ID: "r0", User: "alice", Target: "db1", StartedAt: at(0)},
		{ID: "r1", User: "bob", Target: "db1", StartedAt: at(1)},
		{ID: "r2", User: "alice", Target: "web1", StartedAt: at(2)},
		{ID: "r3", User: "alice", Target: "db1", StartedAt: at(3)},
		{ID: "r5", User: "carol", Target: "web1", StartedAt: at(4)},
		{ID: "r4", User: "carol", Target: "web1", StartedAt: at(4)}, // same time as r5: ID decides
	}
	for _, r := range recs {
		createRecording(t, s, r)
	}
	if err := s.FinishRecording(ctx, "r1", store.RecordingEnded, at(5), 1, "x"); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRecording(ctx, "r3", store.RecordingInterrupted, at(5), 1, "x"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		f    store.RecordingFilter
		want []string
	}{
		{"all, newest first", store.RecordingFilter{}, []string{"r5", "r4", "r3", "r2", "r1", "r0"}},
		{"user", store.RecordingFilter{User: "alice"}, []string{"r3", "r2", "r0"}},
		{"target", store.RecordingFilter{Target: "web1"}, []string{"r5", "r4", "r2"}},
		{"state active", store.RecordingFilter{State: store.RecordingActive}, []string{"r5", "r4", "r2", "r0"}},
		{"state ended", store.RecordingFilter{State: store.RecordingEnded}, []string{"r1"}},
		{"since is inclusive", store.RecordingFilter{Since: at(3)}, []string{"r5", "r4", "r3"}},
		{"limit", store.RecordingFilter{Limit: 2}, []string{"r5", "r4"}},
		{"combined", store.RecordingFilter{User: "alice", Target: "db1", Since: at(1)}, []string{"r3"}},
		// The cursor of the next page: after r5 comes r4 (same time,
		// smaller id), after r4 what started earlier.
		{"before r5", store.RecordingFilter{BeforeStarted: at(4), BeforeID: "r5", Limit: 2}, []string{"r4", "r3"}},
		{"before r4", store.RecordingFilter{BeforeStarted: at(4), BeforeID: "r4"}, []string{"r3", "r2", "r1", "r0"}},
		{"before with filter", store.RecordingFilter{BeforeStarted: at(3), BeforeID: "r3", User: "alice"}, []string{"r2", "r0"}},
		{"before the oldest", store.RecordingFilter{BeforeStarted: at(0), BeforeID: "r0"}, nil},
		{"no match", store.RecordingFilter{User: "mallory"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.ListRecordings(ctx, c.f)
			if err != nil {
				t.Fatalf("ListRecordings: %v", err)
			}
			if !slices.Equal(recordingIDs(got), c.want) {
				t.Errorf("ListRecordings(%+v) = %v, want %v", c.f, recordingIDs(got), c.want)
			}
		})
	}
}

func testInterruptActive(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Date(2026, 8, 3, 0, 0, 0, 0, time.UTC)
	// "c", "a", "b" and "done" are gw-1's; "other" another gateway's, still
	// writing; "old" from before gateways had ids.
	for i, r := range []store.Recording{
		{ID: "c", Gateway: "gw-1"}, {ID: "a", Gateway: "gw-1"}, {ID: "other", Gateway: "gw-2"},
		{ID: "b", Gateway: "gw-1"}, {ID: "done", Gateway: "gw-1"}, {ID: "old"},
	} {
		r.User, r.StartedAt = "u", base.Add(time.Duration(i)*time.Second)
		createRecording(t, s, r)
	}
	if err := s.FinishRecording(ctx, "done", store.RecordingEnded, base.Add(time.Minute), 5, "h"); err != nil {
		t.Fatal(err)
	}
	now := base.Add(time.Hour)
	got, err := s.InterruptActive(ctx, "gw-1", now)
	if err != nil {
		t.Fatalf("InterruptActive: %v", err)
	}
	if ids := recordingIDs(got); !slices.Equal(ids, []string{"c", "a", "b"}) {
		t.Errorf("InterruptActive(gw-1) returned %v, want [c a b] (gw-1's active ones, oldest first)", ids)
	}
	for _, r := range got {
		if r.State != store.RecordingInterrupted || !r.EndedAt.Equal(now) || r.User != "u" || r.Gateway != "gw-1" {
			t.Errorf("returned %+v, want gw-1's, interrupted at %v", r, now)
		}
		if stored := getRecording(t, s, r.ID); stored.State != store.RecordingInterrupted || !stored.EndedAt.Equal(now) {
			t.Errorf("stored %+v, want interrupted at %v", stored, now)
		}
	}
	if r := getRecording(t, s, "done"); r.State != store.RecordingEnded || !r.EndedAt.Equal(base.Add(time.Minute)) {
		t.Errorf("an ended recording was changed: %+v", r)
	}
	for _, id := range []string{"other", "old"} {
		if r := getRecording(t, s, id); r.State != store.RecordingActive || !r.EndedAt.IsZero() {
			t.Errorf("InterruptActive(gw-1) changed a recording of another gateway: %+v", r)
		}
	}
	if again, err := s.InterruptActive(ctx, "gw-1", now); err != nil || len(again) != 0 {
		t.Errorf("InterruptActive(gw-1) again = %v, %v; want nothing", recordingIDs(again), err)
	}
	// Gateway "" is the one that wrote before gateways had ids.
	if got, err := s.InterruptActive(ctx, "", now); err != nil || !slices.Equal(recordingIDs(got), []string{"old"}) {
		t.Errorf(`InterruptActive("") = %v, %v; want [old]`, recordingIDs(got), err)
	}
	if r := getRecording(t, s, "other"); r.State != store.RecordingActive {
		t.Errorf(`InterruptActive("") changed gw-2's recording: %+v`, r)
	}
}

func indexText(t *testing.T, s store.Store, chunks ...store.TextChunk) {
	t.Helper()
	if err := s.IndexText(context.Background(), chunks); err != nil {
		t.Fatalf("IndexText: %v", err)
	}
}

func search(t *testing.T, s store.Store, q string, limit int) []store.SearchHit {
	t.Helper()
	hits, err := s.SearchText(context.Background(), q, limit)
	if err != nil {
		t.Fatalf("SearchText(%q): %v", q, err)
	}
	return hits
}

func hitIDs(hits []store.SearchHit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.RecordingID)
	}
	return out
}

func testDeleteRecording(t *testing.T, s store.Store) {
	ctx := context.Background()
	createRecording(t, s, store.Recording{ID: "keep", User: "alice"})
	createRecording(t, s, store.Recording{ID: "gone", User: "bob"})
	indexText(t, s,
		store.TextChunk{RecordingID: "keep", Offset: 1, Text: "systemctl restart nginx"},
		store.TextChunk{RecordingID: "gone", Offset: 2, Text: "systemctl restart postgres"},
		store.TextChunk{RecordingID: "gone", Offset: 3, Text: "postgres again"},
	)
	if got := hitIDs(search(t, s, "systemctl", 0)); len(got) != 2 {
		t.Fatalf("before delete: hits %v, want both recordings", got)
	}
	if err := s.DeleteRecording(ctx, "gone"); err != nil {
		t.Fatalf("DeleteRecording: %v", err)
	}
	if _, err := s.GetRecording(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRecording after delete: err = %v, want ErrNotFound", err)
	}
	if got := hitIDs(search(t, s, "systemctl", 0)); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("after delete: hits %v, want [keep]", got)
	}
	if got := search(t, s, "postgres", 0); len(got) != 0 {
		t.Errorf("after delete: the deleted recording's text is still found: %+v", got)
	}
	if err := s.DeleteRecording(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteRecording twice: err = %v, want ErrNotFound", err)
	}
	// Indexing into a deleted recording (a session still running when its
	// recording was removed) fails rather than leaving orphan text.
	err := s.IndexText(ctx, []store.TextChunk{{RecordingID: "gone", Offset: 4, Text: "postgres"}})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("IndexText into a deleted recording: err = %v, want ErrNotFound", err)
	}
	// The same id can be recorded again.
	createRecording(t, s, store.Recording{ID: "gone"})
	if got := search(t, s, "postgres", 0); len(got) != 0 {
		t.Errorf("a recreated recording found the old text: %+v", got)
	}
}

func testSearch(t *testing.T, s store.Store) {
	createRecording(t, s, store.Recording{ID: "r1", User: "alice", Target: "db1"})
	createRecording(t, s, store.Recording{ID: "r2", User: "bob", Target: "web1"})
	createRecording(t, s, store.Recording{ID: "r3", User: "carol", Target: "web2"})
	indexText(t, s,
		store.TextChunk{RecordingID: "r1", Offset: 0.5, Text: "$ ls -l /etc\ntotal 0\n"},
		store.TextChunk{RecordingID: "r1", Offset: 12.25, Text: "$ sudo systemctl restart nginx\n$ "},
		store.TextChunk{RecordingID: "r2", Offset: 3, Text: "restart the service with systemctl\n"},
		store.TextChunk{RecordingID: "r2", Offset: 4, Text: "Systemctl"},
		store.TextChunk{RecordingID: "r3", Offset: 7, Text: "systemctl"},
		store.TextChunk{RecordingID: "r3", Offset: 8, Text: "restart"}, // words in different chunks
	)

	// Words: all in one chunk, any order, any case.
	hits := search(t, s, "SYSTEMCTL Restart", 0)
	if got := hitIDs(hits); !sameSet(got, []string{"r1", "r2"}) {
		t.Errorf("words: hits %v, want r1 and r2 (r3 has the words in different chunks)", got)
	}
	for _, h := range hits {
		switch h.RecordingID {
		case "r1":
			if h.User != "alice" || h.Target != "db1" || h.Offset != 12.25 {
				t.Errorf("r1 hit = %+v, want alice, db1, offset 12.25", h)
			}
			if !strings.Contains(h.Snippet, "«systemctl»") || !strings.Contains(h.Snippet, "«restart»") {
				t.Errorf("r1 snippet %q, want the matches marked «systemctl» and «restart»", h.Snippet)
			}
			if strings.ContainsAny(h.Snippet, "\n\r\t") || strings.Contains(h.Snippet, "  ") {
				t.Errorf("r1 snippet %q: white space not collapsed", h.Snippet)
			}
		case "r2":
			if h.User != "bob" || h.Target != "web1" || h.Offset != 3 {
				t.Errorf("r2 hit = %+v, want bob, web1, offset 3", h)
			}
		}
	}

	// A phrase: in that order, adjacent.
	if got := hitIDs(search(t, s, `"systemctl restart"`, 0)); !slices.Equal(got, []string{"r1"}) {
		t.Errorf("phrase: hits %v, want [r1]", got)
	}
	if got := hitIDs(search(t, s, `"restart systemctl"`, 0)); len(got) != 0 {
		t.Errorf("phrase in the wrong order: hits %v, want none", got)
	}
	if got := hitIDs(search(t, s, `nginx "sudo systemctl"`, 0)); !slices.Equal(got, []string{"r1"}) {
		t.Errorf("word and phrase: hits %v, want [r1]", got)
	}

	// One hit per recording, its best chunk; every recording once.
	hits = search(t, s, "systemctl", 0)
	if got := hitIDs(hits); !sameSet(got, []string{"r1", "r2", "r3"}) || len(got) != 3 {
		t.Errorf("one word: hits %v, want r1, r2, r3 once each", got)
	}
	for _, h := range hits {
		if h.RecordingID == "r2" && h.Offset != 4 {
			t.Errorf("r2: offset %v, want 4 (its most recently indexed match)", h.Offset)
		}
	}
	if got := search(t, s, "systemctl", 2); len(got) != 2 {
		t.Errorf("limit 2: %d hits", len(got))
	}
	if got := search(t, s, "nothing-like-this", 0); len(got) != 0 {
		t.Errorf("no match: hits %+v", got)
	}
	// A path is searched as the phrase of its parts.
	if got := hitIDs(search(t, s, "/etc", 0)); !slices.Equal(got, []string{"r1"}) {
		t.Errorf("/etc: hits %v, want [r1]", got)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// testSearchHitAtItsLine: a hit is reported at the time of the line that
// holds the match, not at its chunk's start (a word on the chunk's sixth
// line, typed at 11 s, in a chunk that starts at 6.3 s); a word that is
// also on an earlier line is reported at the first line that holds it; a
// phrase whose words are also apart elsewhere is reported where the whole
// phrase is; text that is not valid UTF-8 (which CleanText changes) keeps
// its lines.
func testSearchHitAtItsLine(t *testing.T, s store.Store) {
	createRecording(t, s, store.Recording{ID: "lt"})
	createRecording(t, s, store.Recording{ID: "lt2"})
	times := store.EncodeLineTimes(6.3, []store.LineTime{{Line: 2, Offset: 8}, {Line: 5, Offset: 11}, {Line: 6, Offset: 12.5}})
	indexText(t, s,
		store.TextChunk{RecordingID: "lt", Offset: 6.3, Times: times,
			Text: "$ ls\nbin etc\n$ echo \\xff\xff green\n\xff\xfe x\n$ cd /tmp\n$ echo zebracorn\nzebracorn blue green\n$ "},
		store.TextChunk{RecordingID: "lt2", Offset: 2, Text: "zebracorn alone"},
	)
	for _, c := range []struct {
		q    string
		want float64
	}{
		{"zebracorn", 11},          // lt: line 5
		{"blue", 12.5},             // line 6
		{"green", 8},               // first on line 2, again on line 6
		{`"zebracorn blue"`, 12.5}, // the phrase is on line 6 only
		{"ls", 6.3},                // the chunk's first line
		{"tmp", 8},                 // line 4, between entries
	} {
		var got *store.SearchHit
		for _, h := range search(t, s, c.q, 0) {
			if h.RecordingID == "lt" {
				got = &h
			}
		}
		if got == nil || math.Abs(got.Offset-c.want) > 1e-6 {
			t.Errorf("%s: hit %+v, want offset %v", c.q, got, c.want)
		}
	}
	if hits := search(t, s, "alone", 0); len(hits) != 1 || hits[0].Offset != 2 {
		t.Errorf("a chunk without times: %+v, want offset 2", hits)
	}
}

// testSearchWordsInPunctuation: text is split into words at every
// character other than a letter or digit, so the parts of a path, a host
// name or an e-mail address are words, and a query word holding
// punctuation is the phrase of its parts (store.ParseSearch).
func testSearchWordsInPunctuation(t *testing.T, s store.Store) {
	const (
		path = "vi /etc/nginx/nginx.conf"
		host = "ssh admin@db1.example.com"
	)
	createRecording(t, s, store.Recording{ID: "path"})
	createRecording(t, s, store.Recording{ID: "host"})
	indexText(t, s,
		store.TextChunk{RecordingID: "path", Offset: 1, Text: path},
		store.TextChunk{RecordingID: "host", Offset: 2, Text: host},
	)
	cases := []struct {
		query string
		want  string // the recording found, "" for none
		word  string // a word the snippet marks
	}{
		{"nginx", "path", "nginx"},
		{"nginx.conf", "path", "conf"},
		{`"nginx/nginx.conf"`, "path", "conf"},
		{"/etc/nginx", "path", "etc"},
		{"db1", "host", "db1"},
		{"example.com", "host", "example"},
		{"admin", "host", "admin"},
		{"admin@db1", "host", "admin"},
		// Phrases still need their words in order and next to each other.
		{"conf.nginx", "", ""},
		{"etc/nginx.conf", "", ""},
		{"admin.example", "", ""},
	}
	for _, c := range cases {
		hits := search(t, s, c.query, 0)
		if c.want == "" {
			if len(hits) != 0 {
				t.Errorf("SearchText(%q) = %v, want nothing", c.query, hitIDs(hits))
			}
			continue
		}
		if len(hits) != 1 || hits[0].RecordingID != c.want {
			t.Errorf("SearchText(%q) = %v, want [%s]", c.query, hitIDs(hits), c.want)
			continue
		}
		// The snippet is the text as indexed, punctuation kept, with the
		// match marked: SQLite marks a phrase as one span
		// («nginx.conf»), PostgreSQL each word («nginx».«conf»).
		text := map[string]string{"path": path, "host": host}[c.want]
		sn := hits[0].Snippet
		if !marked(sn, c.word) || strings.NewReplacer("«", "", "»", "").Replace(sn) != text {
			t.Errorf("SearchText(%q): snippet %q, want %q with %s marked", c.query, sn, text, c.word)
		}
	}
}

// marked reports whether word is in a span of snippet between « and ».
func marked(snippet, word string) bool {
	for _, part := range strings.Split(snippet, "«")[1:] {
		if span, _, ok := strings.Cut(part, "»"); ok && strings.Contains(span, word) {
			return true
		}
	}
	return false
}

func testSearchQuoting(t *testing.T, s store.Store) {
	ctx := context.Background()
	createRecording(t, s, store.Recording{ID: "ops", User: "alice"})
	createRecording(t, s, store.Recording{ID: "other", User: "bob"})
	indexText(t, s,
		store.TextChunk{RecordingID: "ops", Offset: 1, Text: `echo foo"bar and or not near x text:col ^caret (paren) 'single'`},
		store.TextChunk{RecordingID: "other", Offset: 1, Text: "unrelated words only"},
	)
	cases := []struct {
		query string
		want  []string // recordings found
	}{
		{`foo"bar`, []string{"ops"}},
		{`foo"bar"`, []string{"ops"}}, // word foo, phrase bar
		{`"foo"bar`, []string{"ops"}},
		{`a"b"c`, nil},
		{`AND`, []string{"ops"}},
		{`OR`, []string{"ops"}},
		{`NOT`, []string{"ops"}},
		{`words NOT only`, nil}, // NOT is a word, and "other" does not have it
		{`unrelated OR foo`, nil},
		{`-x`, []string{"ops"}},
		{`NEAR(`, []string{"ops"}},
		{`NEAR(foo bar)`, nil},    // the phrase "near foo" is not in the text
		{`NEAR(foo bar, 1)`, nil}, // nor "1"
		{`foo bar NEAR`, []string{"ops"}},
		{`text:col`, []string{"ops"}},
		{`text:unrelated`, nil},
		{`^caret`, []string{"ops"}},
		{`(paren)`, []string{"ops"}},
		{`'single'`, []string{"ops"}},
		{`foo*`, []string{"ops"}},
		{`fo*`, nil}, // no prefix search: * is punctuation
		{`"unterminated phrase`, nil},
		{`"unrelated words`, []string{"other"}},
		{`* foo`, []string{"ops"}}, // a term of punctuation is dropped, not an empty phrase matching nothing
	}
	for _, c := range cases {
		hits, err := s.SearchText(ctx, c.query, 0)
		if err != nil {
			t.Errorf("SearchText(%q): %v", c.query, err)
			continue
		}
		if got := hitIDs(hits); !slices.Equal(got, c.want) {
			t.Errorf("SearchText(%q) = %v, want %v", c.query, got, c.want)
		}
	}
	// Nothing to search for: an error rather than no hits, so that a
	// user is told.
	for _, q := range []string{"", "   ", "\t\n", "*", `""`, `" "`, "-", "\x00", `{}:,.;`, `"*" -`} {
		if _, err := s.SearchText(ctx, q, 0); !errors.Is(err, store.ErrEmptyQuery) {
			t.Errorf("SearchText(%q): err = %v, want ErrEmptyQuery", q, err)
		}
	}
}

// testSearchRanking: hits come newest first (the recording whose match was
// indexed last), not by relevance: ranking every match by relevance costs
// time in proportion to how common the words are (measured: 160-280 ms for
// a word in most chunks of 256 MiB), while newest first stops after limit
// recordings. Auditors mostly look for what happened recently.
func testSearchRanking(t *testing.T, s store.Store) {
	createRecording(t, s, store.Recording{ID: "dense"})
	createRecording(t, s, store.Recording{ID: "sparse"})
	filler := strings.Repeat("lorem ipsum dolor sit amet ", 20)
	indexText(t, s,
		store.TextChunk{RecordingID: "dense", Offset: 2, Text: "deploy deploy deploy failed"},
		store.TextChunk{RecordingID: "sparse", Offset: 1, Text: filler + "deploy " + filler},
	)
	if got := hitIDs(search(t, s, "deploy", 0)); !slices.Equal(got, []string{"sparse", "dense"}) {
		t.Errorf("order: %v, want the most recently indexed match first", got)
	}
	hits := search(t, s, "deploy", 1)
	if len(hits) != 1 || hits[0].RecordingID != "sparse" {
		t.Errorf("limit 1: %+v, want the newest hit", hits)
	}
	// Long text: the snippet is cut around the match, not the whole chunk.
	hits = search(t, s, "deploy", 0)
	if sn := hits[0].Snippet; !strings.Contains(sn, "«deploy»") || len(sn) >= len(filler) {
		t.Errorf("snippet of a long chunk = %q, want a short excerpt around «deploy»", sn)
	}
}

func testIndexText(t *testing.T, s store.Store) {
	ctx := context.Background()
	createRecording(t, s, store.Recording{ID: "big", User: "alice"})
	// Many chunks in one call; an active recording is searchable.
	var chunks []store.TextChunk
	for i := range 500 {
		chunks = append(chunks, store.TextChunk{RecordingID: "big", Offset: float64(i) / 10, Text: fmt.Sprintf("line %d word%d", i, i)})
	}
	chunks = append(chunks, store.TextChunk{RecordingID: "big", Offset: 99, Text: "  \n "}) // skipped
	indexText(t, s, chunks...)
	hits := search(t, s, "word437", 0)
	if len(hits) != 1 || hits[0].RecordingID != "big" || hits[0].Offset != 43.7 {
		t.Errorf("word437: %+v, want big at 43.7", hits)
	}
	if err := s.IndexText(ctx, nil); err != nil {
		t.Errorf("IndexText(nil): %v", err)
	}
	// All or nothing: a chunk of an unknown recording fails the batch.
	err := s.IndexText(ctx, []store.TextChunk{
		{RecordingID: "big", Offset: 1, Text: "batchmarker"},
		{RecordingID: "missing", Offset: 1, Text: "batchmarker"},
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("IndexText with an unknown recording: err = %v, want ErrNotFound", err)
	}
	if got := search(t, s, "batchmarker", 0); len(got) != 0 {
		t.Errorf("a failed IndexText indexed part of its batch: %+v", got)
	}
	// Text is cleaned; unicode words are found, case-folded.
	indexText(t, s, store.TextChunk{RecordingID: "big", Offset: 100, Text: "Größe\x00ÜBER \xffstraße"})
	if got := search(t, s, "über", 0); len(got) != 1 || got[0].Offset != 100 {
		t.Errorf("über: %+v, want the chunk at 100", got)
	}
	if got := search(t, s, "größe", 0); len(got) != 1 {
		t.Errorf("größe: %+v, want one hit", got)
	}
}
