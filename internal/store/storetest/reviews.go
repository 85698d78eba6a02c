package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// testSessionReviews: reviews append and list oldest first, by recording;
// a review without a valid decision is refused and stores nothing.
func testSessionReviews(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, bad := range []store.SessionReview{
		{RecordingID: "r1", Reviewer: "ivy", Decision: "ok"},
		{RecordingID: "", Reviewer: "ivy", Decision: store.ReviewOK},
		{RecordingID: "r1", Reviewer: "", Decision: store.ReviewOK},
	} {
		if _, err := s.AddSessionReview(ctx, bad); err == nil {
			t.Errorf("AddSessionReview(%+v) accepted", bad)
		}
	}
	for i, r := range []store.SessionReview{
		{RecordingID: "r1", Reviewer: "ivy", Decision: store.ReviewFlagged, Comment: "why sudo?", Time: t0},
		{RecordingID: "r2", Reviewer: "ivy", Decision: store.ReviewOK, Time: t0.Add(time.Second)},
		{RecordingID: "r1", Reviewer: "joe", Decision: store.ReviewOK, Comment: "asked: ticket 7", Time: t0.Add(2 * time.Second)},
	} {
		if id, err := s.AddSessionReview(ctx, r); err != nil || id <= 0 {
			t.Fatalf("AddSessionReview %d = %d, %v", i, id, err)
		}
	}
	all, err := s.ListSessionReviews(ctx, store.SessionReviewFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("ListSessionReviews = %+v, %v", all, err)
	}
	r1, err := s.ListSessionReviews(ctx, store.SessionReviewFilter{RecordingID: "r1"})
	if err != nil || len(r1) != 2 || r1[0].Reviewer != "ivy" || r1[1].Comment != "asked: ticket 7" || !r1[0].Time.Equal(t0) ||
		r1[0].Decision != store.ReviewFlagged {
		t.Fatalf("reviews of r1 = %+v, %v", r1, err)
	}
}

// testReviewCampaigns: a campaign stores its items in order; each item is
// decided once, never after the campaign closes; of two concurrent
// decisions of one item exactly one wins; a campaign closes once.
func testReviewCampaigns(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	items := []store.ReviewItem{
		{Identity: "alice", IdentityKind: "user", Via: "direct", Policy: "p1", Target: "web1", TargetUser: "svc"},
		{Identity: "bob", IdentityKind: "user", Via: "group:ops", Policy: "p2", Target: "db1", TargetUser: "root", Privileged: "superuser account root"},
	}
	id, err := s.CreateReviewCampaign(ctx, store.ReviewCampaign{Name: "q1", StartedBy: "ivy", StartedAt: t0}, items)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ListReviewItems(ctx, id)
	if err != nil || len(got) != 2 || got[0].Item != 1 || got[1].Item != 2 || got[1].Privileged != "superuser account root" || got[1].Decision != "" {
		t.Fatalf("ListReviewItems = %+v, %v", got, err)
	}
	if _, err := s.GetReviewCampaign(ctx, id+100); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetReviewCampaign of none = %v", err)
	}
	if err := s.DecideReviewItem(ctx, store.ReviewItem{CampaignID: id, Item: 1, Decision: "maybe"}); err == nil {
		t.Error("a decision other than keep or revoke was accepted")
	}
	if err := s.DecideReviewItem(ctx, store.ReviewItem{CampaignID: id, Item: 9, Decision: store.ReviewKeep}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("decide a missing item = %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.DecideReviewItem(ctx, store.ReviewItem{CampaignID: id, Item: 2, Decision: store.ReviewRevoke,
				Reviewer: []string{"ivy", "joe"}[i], Effect: "removed", DecidedAt: t0.Add(time.Minute)})
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("two decisions of one item: %v, %v; want exactly one to win", errs[0], errs[1])
	}
	for _, e := range errs {
		if e != nil && !errors.Is(e, store.ErrConflict) {
			t.Errorf("the losing decision = %v, want ErrConflict", e)
		}
	}
	if err := s.CloseReviewCampaign(ctx, id, "ivy", "reviewed all", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseReviewCampaign(ctx, id, "ivy", "again", t0.Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("close twice = %v", err)
	}
	if err := s.DecideReviewItem(ctx, store.ReviewItem{CampaignID: id, Item: 1, Decision: store.ReviewKeep}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("decide after close = %v", err)
	}
	c, err := s.GetReviewCampaign(ctx, id)
	if err != nil || c.SignOff != "reviewed all" || !c.ClosedAt.Equal(t0.Add(time.Hour)) || c.Name != "q1" {
		t.Fatalf("GetReviewCampaign = %+v, %v", c, err)
	}
	cs, err := s.ListReviewCampaigns(ctx)
	if err != nil || len(cs) != 1 || cs[0].ID != id {
		t.Fatalf("ListReviewCampaigns = %+v, %v", cs, err)
	}
}

// testReportSchedules: schedules store, list, record runs and delete.
func testReportSchedules(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := s.CreateReportSchedule(ctx, store.ReportSchedule{Kind: "x", Every: 0, Dest: "/d", Formats: []string{"csv"}}); err == nil {
		t.Error("a schedule without an interval was accepted")
	}
	rid, err := s.CreateReportSchedule(ctx, store.ReportSchedule{Kind: "review", Every: 90 * 24 * time.Hour, CreatedBy: "ivy", CreatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteReportSchedule(ctx, rid); err != nil {
		t.Fatal(err)
	}
	id, err := s.CreateReportSchedule(ctx, store.ReportSchedule{Kind: "access-log", Every: 24 * time.Hour, Dest: "/srv/r",
		Formats: []string{"csv", "pdf"}, CreatedBy: "ivy", CreatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetReportScheduleRun(ctx, id, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListReportSchedules(ctx)
	if err != nil || len(all) != 1 || all[0].Every != 24*time.Hour || len(all[0].Formats) != 2 || !all[0].LastRun.Equal(t0.Add(time.Hour)) {
		t.Fatalf("ListReportSchedules = %+v, %v", all, err)
	}
	if err := s.DeleteReportSchedule(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteReportSchedule(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete twice = %v", err)
	}
	if err := s.SetReportScheduleRun(ctx, id, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("run of a deleted schedule = %v", err)
	}
}
