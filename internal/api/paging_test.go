package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"

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
