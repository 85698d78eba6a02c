package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// Reviews implements the store.Store methods for session reviews, access
// review campaigns and report schedules (migration 0012).
type Reviews struct {
	// R reads and W writes, as in Access.
	R, W *sql.DB
}

// AddSessionReview appends a review.
func (s *Reviews) AddSessionReview(ctx context.Context, r store.SessionReview) (int64, error) {
	if r.RecordingID == "" || r.Reviewer == "" || (r.Decision != store.ReviewOK && r.Decision != store.ReviewFlagged) {
		return 0, fmt.Errorf("add session review of %q: recording, reviewer and a decision (%s or %s) are required",
			r.RecordingID, store.ReviewOK, store.ReviewFlagged)
	}
	var id int64
	if err := s.W.QueryRowContext(ctx, `
INSERT INTO session_reviews (recording_id, reviewer, decision, comment, time)
VALUES ($1, $2, $3, $4, $5)
RETURNING id`, r.RecordingID, r.Reviewer, r.Decision, r.Comment, nanos(r.Time)).Scan(&id); err != nil {
		return 0, fmt.Errorf("add session review of %s: %w", r.RecordingID, err)
	}
	return id, nil
}

// ListSessionReviews returns reviews, oldest first.
func (s *Reviews) ListSessionReviews(ctx context.Context, f store.SessionReviewFilter) ([]store.SessionReview, error) {
	q := `SELECT id, recording_id, reviewer, decision, comment, time FROM session_reviews`
	var args []any
	if f.RecordingID != "" {
		q += ` WHERE recording_id = $1`
		args = append(args, f.RecordingID)
	}
	rows, err := s.R.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list session reviews: %w", err)
	}
	defer rows.Close()
	var out []store.SessionReview
	for rows.Next() {
		var (
			r  store.SessionReview
			at int64
		)
		if err := rows.Scan(&r.ID, &r.RecordingID, &r.Reviewer, &r.Decision, &r.Comment, &at); err != nil {
			return nil, fmt.Errorf("list session reviews: %w", err)
		}
		r.Time = fromNanos(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list session reviews: %w", err)
	}
	return out, nil
}

// CreateReviewCampaign stores a campaign and its items in one transaction.
func (s *Reviews) CreateReviewCampaign(ctx context.Context, c store.ReviewCampaign, items []store.ReviewItem) (int64, error) {
	if c.Name == "" || c.StartedBy == "" {
		return 0, errors.New("create review campaign: name and starter are required")
	}
	tx, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("create review campaign: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var id int64
	if err := tx.QueryRowContext(ctx, `
INSERT INTO review_campaigns (name, started_by, started_at) VALUES ($1, $2, $3)
RETURNING id`, c.Name, c.StartedBy, nanos(c.StartedAt)).Scan(&id); err != nil {
		return 0, fmt.Errorf("create review campaign %q: %w", c.Name, err)
	}
	for i, it := range items {
		if _, err := tx.ExecContext(ctx, `
INSERT INTO review_items (campaign_id, item, identity, identity_kind, via, policy, jit_policy, target, target_user, privileged, granted_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			id, i+1, it.Identity, it.IdentityKind, it.Via, it.Policy, it.JITPolicy, it.Target, it.TargetUser,
			it.Privileged, it.GrantedBy); err != nil {
			return 0, fmt.Errorf("create review campaign %q: item %d: %w", c.Name, i+1, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("create review campaign %q: commit: %w", c.Name, err)
	}
	return id, nil
}

const campaignColumns = `id, name, started_by, started_at, closed_by, closed_at, sign_off`

func scanCampaign(sc scanner) (store.ReviewCampaign, error) {
	var (
		c                 store.ReviewCampaign
		started, closedAt int64
	)
	if err := sc.Scan(&c.ID, &c.Name, &c.StartedBy, &started, &c.ClosedBy, &closedAt, &c.SignOff); err != nil {
		return c, err
	}
	c.StartedAt = fromNanos(started)
	if closedAt != 0 {
		c.ClosedAt = fromNanos(closedAt)
	}
	return c, nil
}

// ListReviewCampaigns returns every campaign, oldest first.
func (s *Reviews) ListReviewCampaigns(ctx context.Context) ([]store.ReviewCampaign, error) {
	rows, err := s.R.QueryContext(ctx, `SELECT `+campaignColumns+` FROM review_campaigns ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list review campaigns: %w", err)
	}
	defer rows.Close()
	var out []store.ReviewCampaign
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, fmt.Errorf("list review campaigns: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list review campaigns: %w", err)
	}
	return out, nil
}

// GetReviewCampaign returns one campaign.
func (s *Reviews) GetReviewCampaign(ctx context.Context, id int64) (store.ReviewCampaign, error) {
	c, err := scanCampaign(s.R.QueryRowContext(ctx, `SELECT `+campaignColumns+` FROM review_campaigns WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("review campaign %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("read review campaign %d: %w", id, err)
	}
	return c, nil
}

// ListReviewItems returns a campaign's items in order.
func (s *Reviews) ListReviewItems(ctx context.Context, campaign int64) ([]store.ReviewItem, error) {
	rows, err := s.R.QueryContext(ctx, `
SELECT campaign_id, item, identity, identity_kind, via, policy, jit_policy, target, target_user, privileged,
       granted_by, decision, reviewer, comment, effect, decided_at
FROM review_items WHERE campaign_id = $1 ORDER BY item`, campaign)
	if err != nil {
		return nil, fmt.Errorf("list items of review campaign %d: %w", campaign, err)
	}
	defer rows.Close()
	var out []store.ReviewItem
	for rows.Next() {
		var (
			it      store.ReviewItem
			decided int64
		)
		if err := rows.Scan(&it.CampaignID, &it.Item, &it.Identity, &it.IdentityKind, &it.Via, &it.Policy, &it.JITPolicy,
			&it.Target, &it.TargetUser, &it.Privileged, &it.GrantedBy, &it.Decision, &it.Reviewer, &it.Comment,
			&it.Effect, &decided); err != nil {
			return nil, fmt.Errorf("list items of review campaign %d: %w", campaign, err)
		}
		if decided != 0 {
			it.DecidedAt = fromNanos(decided)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list items of review campaign %d: %w", campaign, err)
	}
	return out, nil
}

// DecideReviewItem stores a decision once, while the campaign is open. The
// conditions are in the UPDATE itself, so that two reviewers deciding one
// item at once cannot both win.
func (s *Reviews) DecideReviewItem(ctx context.Context, it store.ReviewItem) error {
	if it.Decision != store.ReviewKeep && it.Decision != store.ReviewRevoke {
		return fmt.Errorf("decide review item %d/%d: decision must be %s or %s, got %q",
			it.CampaignID, it.Item, store.ReviewKeep, store.ReviewRevoke, it.Decision)
	}
	res, err := s.W.ExecContext(ctx, `
UPDATE review_items SET decision = $1, reviewer = $2, comment = $3, effect = $4, decided_at = $5
WHERE campaign_id = $6 AND item = $7 AND decision = ''
  AND (SELECT closed_at FROM review_campaigns WHERE id = $6) = 0`,
		it.Decision, it.Reviewer, it.Comment, it.Effect, nanos(it.DecidedAt), it.CampaignID, it.Item)
	if err != nil {
		return fmt.Errorf("decide review item %d/%d: %w", it.CampaignID, it.Item, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("decide review item %d/%d: %w", it.CampaignID, it.Item, err)
	} else if n == 1 {
		return nil
	}
	// Why not: absent, decided, or closed.
	c, err := s.GetReviewCampaign(ctx, it.CampaignID)
	if err != nil {
		return err
	}
	if !c.ClosedAt.IsZero() {
		return fmt.Errorf("review campaign %d is closed: %w", it.CampaignID, store.ErrConflict)
	}
	var decision string
	err = s.R.QueryRowContext(ctx, `SELECT decision FROM review_items WHERE campaign_id = $1 AND item = $2`,
		it.CampaignID, it.Item).Scan(&decision)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("review item %d/%d: %w", it.CampaignID, it.Item, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read review item %d/%d: %w", it.CampaignID, it.Item, err)
	}
	return fmt.Errorf("review item %d/%d is already decided (%s): %w", it.CampaignID, it.Item, decision, store.ErrConflict)
}

// CloseReviewCampaign closes an open campaign.
func (s *Reviews) CloseReviewCampaign(ctx context.Context, id int64, by, signOff string, at time.Time) error {
	res, err := s.W.ExecContext(ctx, `
UPDATE review_campaigns SET closed_by = $1, sign_off = $2, closed_at = $3 WHERE id = $4 AND closed_at = 0`,
		by, signOff, nanos(at), id)
	if err != nil {
		return fmt.Errorf("close review campaign %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("close review campaign %d: %w", id, err)
	} else if n == 1 {
		return nil
	}
	if _, err := s.GetReviewCampaign(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("review campaign %d is already closed: %w", id, store.ErrConflict)
}

// CreateReportSchedule stores a schedule.
func (s *Reviews) CreateReportSchedule(ctx context.Context, sc store.ReportSchedule) (int64, error) {
	if sc.Kind == "" || sc.Every <= 0 {
		return 0, errors.New("create report schedule: kind and a positive interval are required")
	}
	var id int64
	if err := s.W.QueryRowContext(ctx, `
INSERT INTO report_schedules (kind, every_ns, dest, formats, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id`, sc.Kind, int64(sc.Every), sc.Dest, strings.Join(sc.Formats, ","), sc.CreatedBy, nanos(sc.CreatedAt)).Scan(&id); err != nil {
		return 0, fmt.Errorf("create report schedule %s: %w", sc.Kind, err)
	}
	return id, nil
}

// ListReportSchedules returns every schedule, oldest first.
func (s *Reviews) ListReportSchedules(ctx context.Context) ([]store.ReportSchedule, error) {
	rows, err := s.R.QueryContext(ctx, `
SELECT id, kind, every_ns, dest, formats, created_by, created_at, last_run FROM report_schedules ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list report schedules: %w", err)
	}
	defer rows.Close()
	var out []store.ReportSchedule
	for rows.Next() {
		var (
			sc                   store.ReportSchedule
			every, created, last int64
			formats              string
		)
		if err := rows.Scan(&sc.ID, &sc.Kind, &every, &sc.Dest, &formats, &sc.CreatedBy, &created, &last); err != nil {
			return nil, fmt.Errorf("list report schedules: %w", err)
		}
		sc.Every, sc.CreatedAt = time.Duration(every), fromNanos(created)
		if formats != "" {
			sc.Formats = strings.Split(formats, ",")
		}
		if last != 0 {
			sc.LastRun = fromNanos(last)
		}
		out = append(out, sc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list report schedules: %w", err)
	}
	return out, nil
}

// DeleteReportSchedule removes a schedule.
func (s *Reviews) DeleteReportSchedule(ctx context.Context, id int64) error {
	res, err := s.W.ExecContext(ctx, `DELETE FROM report_schedules WHERE id = $1`, id)
	return mustAffect(res, err, fmt.Sprintf("delete report schedule %d", id))
}

// SetReportScheduleRun records a schedule's last run.
func (s *Reviews) SetReportScheduleRun(ctx context.Context, id int64, at time.Time) error {
	res, err := s.W.ExecContext(ctx, `UPDATE report_schedules SET last_run = $1 WHERE id = $2`, nanos(at), id)
	return mustAffect(res, err, fmt.Sprintf("record run of report schedule %d", id))
}
