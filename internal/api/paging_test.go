package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/store"
)

// TestAPIListingPages checks that audit and command listings show the
// newest rows first, page backwards with before=, say with a header when
// more exist, and still read oldest first from after= for tailing.
func TestAPIListingPages(t *testing.T) {
	e := newRecEnv(t)
	ctx := context.Background()
	e.appendEvents(t, 5)
	for i := range 5 {
		if _, err := e.st.AppendCommand(ctx, store.Command{User: "alice", Target: "web1", SessionID: "s1", Command: fmt.Sprint("cmd", i)}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(t *testing.T, path string) ([]int64, http.Header, int) {
		t.Helper()
		resp, err := e.srv.Client().Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, resp.Header, resp.StatusCode
		}
		var rows []struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(b, &rows); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, b)
		}
		ids := []int64{}
		for _, r := range rows {
			ids = append(ids, r.ID)
		}
		return ids, resp.Header, resp.StatusCode
	}
	for _, base := range []string{"/api/v1/audit", "/api/v1/commands"} {
		tests := []struct {
			query      string
			status     int
			want       []int64
			nextBefore string
			nextAfter  string
		}{
			{"", 200, []int64{5, 4, 3, 2, 1}, "", ""},
			{"?limit=2", 200, []int64{5, 4}, "4", ""},
			{"?limit=2&before=4", 200, []int64{3, 2}, "2", ""},
			{"?limit=2&before=2", 200, []int64{1}, "", ""},
			{"?limit=5", 200, []int64{5, 4, 3, 2, 1}, "", ""},
			{"?after=0&limit=2", 200, []int64{1, 2}, "", "2"},
			{"?after=4&limit=2", 200, []int64{5}, "", ""},
			{"?before=0", 400, nil, "", ""},
			{"?before=-3", 400, nil, "", ""},
			{"?before=x", 400, nil, "", ""},
			{"?before=1&before=2", 400, nil, "", ""},
		}
		for _, tc := range tests {
			t.Run(base+tc.query, func(t *testing.T) {
				ids, h, status := get(t, base+tc.query)
				if status != tc.status {
					t.Fatalf("status %d, want %d", status, tc.status)
				}
				if status != 200 {
					return
				}
				if !slices.Equal(ids, tc.want) {
					t.Errorf("ids %v, want %v", ids, tc.want)
				}
				if got := h.Get(api.HeaderNextBefore); got != tc.nextBefore {
					t.Errorf("%s = %q, want %q", api.HeaderNextBefore, got, tc.nextBefore)
				}
				if got := h.Get(api.HeaderNextAfter); got != tc.nextAfter {
					t.Errorf("%s = %q, want %q", api.HeaderNextAfter, got, tc.nextAfter)
				}
			})
		}
	}
}

// TestAPIRecordingPages checks the recordings listing's cursor: newest
// first, before= a recording id, the next page named in X-Next-Before, and
// a cursor the caller may not read answered like a missing one.
func TestAPIRecordingPages(t *testing.T) {
	e := newRecEnv(t)
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b", "d", "c", "e"} {
		// c and d start at the same time: the id decides, as in the listing.
		at := base.Add(time.Duration(min(i, 2)) * time.Minute)
		if i == 4 {
			at = base.Add(10 * time.Minute)
		}
		if err := e.st.CreateRecording(ctx, store.Recording{ID: id, User: "alice", Target: "web1", StartedAt: at, State: store.RecordingActive}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		query  string
		status int
		want   []string
		next   string
	}{
		{"", 200, []string{"e", "d", "c", "b", "a"}, ""},
		{"?limit=2", 200, []string{"e", "d"}, "d"},
		{"?limit=2&before=d", 200, []string{"c", "b"}, "b"},
		{"?limit=2&before=b", 200, []string{"a"}, ""},
		{"?before=nosuch", 400, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			resp, err := e.srv.Client().Get(e.srv.URL + "/api/v1/recordings" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if tc.status != 200 {
				return
			}
			var recs []api.Recording
			if err := json.Unmarshal(b, &recs); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range recs {
				ids = append(ids, r.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("ids %v, want %v", ids, tc.want)
			}
			if got := resp.Header.Get(api.HeaderNextBefore); got != tc.next {
				t.Errorf("%s = %q, want %q", api.HeaderNextBefore, got, tc.next)
			}
		})
	}
}
