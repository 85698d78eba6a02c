package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/duration"
	"github.com/portcullis/portcullis/internal/report"
	"github.com/portcullis/portcullis/internal/store"
)

// ReportKind is one entry of GET /api/v1/reports.
type ReportKind struct {
	Name        string `json:"name"`
	Title       string `json:"title"`
	Description string `json:"description"`
}

// ReportRequest is the body of POST /api/v1/reports/{kind}.
type ReportRequest struct {
	// Since and Until bound the period (RFC 3339); Until defaults to now.
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Formats are csv, json and pdf; empty: all three.
	Formats []string `json:"formats"`
	// Name names the files (NAME.csv, NAME.manifest.json); empty:
	// KIND-UNTIL.
	Name string `json:"name,omitempty"`
}

// ReportFile is one file of an export; Data is base64 in JSON.
type ReportFile struct {
	Name   string `json:"name"`
	Format string `json:"format"`
	Data   []byte `json:"data"`
}

// ReportExport is the answer of POST /api/v1/reports/{kind}: the files and
// their signed manifest, which the client writes side by side.
type ReportExport struct {
	ManifestName string          `json:"manifest_name"`
	Manifest     report.Manifest `json:"manifest"`
	Files        []ReportFile    `json:"files"`
}

// SessionReviewRequest is the body of POST /api/v1/recordings/{id}/reviews.
type SessionReviewRequest struct {
	Decision string `json:"decision"` // reviewed or flagged
	Comment  string `json:"comment"`
}

// SessionReview is a review of a recording.
type SessionReview struct {
	ID          int64     `json:"id"`
	RecordingID string    `json:"recording_id"`
	Reviewer    string    `json:"reviewer"`
	Decision    string    `json:"decision"`
	Comment     string    `json:"comment"`
	Time        time.Time `json:"time"`
}

// CampaignRequest is the body of POST /api/v1/reviews.
type CampaignRequest struct {
	Name string `json:"name"`
	// Every, when set (90d), also opens a campaign that often from now
	// on (a report schedule of kind review); at least 1d.
	Every string `json:"every,omitempty"`
}

// Campaign is an access review campaign, with its items when one is read.
type Campaign struct {
	ID        int64        `json:"id"`
	Name      string       `json:"name"`
	StartedBy string       `json:"started_by"`
	StartedAt time.Time    `json:"started_at"`
	ClosedBy  string       `json:"closed_by,omitempty"`
	ClosedAt  *time.Time   `json:"closed_at"`
	SignOff   string       `json:"sign_off,omitempty"`
	Items     []ReviewItem `json:"items,omitempty"`
	// ScheduleID names the schedule POST /reviews made with every.
	ScheduleID int64 `json:"schedule_id,omitempty"`
}

// ReviewItem is one entitlement of a campaign.
type ReviewItem struct {
	Item         int64      `json:"item"`
	Identity     string     `json:"identity"`
	IdentityKind string     `json:"identity_kind"`
	Via          string     `json:"via"`
	Policy       string     `json:"policy"`
	JITPolicy    string     `json:"jit_policy,omitempty"`
	Target       string     `json:"target"`
	TargetUser   string     `json:"target_user"`
	Privileged   string     `json:"privileged,omitempty"`
	GrantedBy    string     `json:"granted_by,omitempty"`
	Decision     string     `json:"decision"`
	Reviewer     string     `json:"reviewer,omitempty"`
	Comment      string     `json:"comment,omitempty"`
	Effect       string     `json:"effect,omitempty"`
	DecidedAt    *time.Time `json:"decided_at"`
}

// DecisionRequest is the body of POST /api/v1/reviews/{id}/items/{item}.
type DecisionRequest struct {
	Decision string `json:"decision"` // keep or revoke
	Comment  string `json:"comment"`
}

// SignOffRequest is the body of POST /api/v1/reviews/{id}/close.
type SignOffRequest struct {
	SignOff string `json:"sign_off"`
}

// ScheduleRequest is the body of POST /api/v1/reports/schedules.
type ScheduleRequest struct {
	Kind string `json:"kind"`
	// Every is a duration (24h, 7d); at least an hour.
	Every   string   `json:"every"`
	Dest    string   `json:"dest"` // a directory on the gateway's machine, or an https:// URL
	Formats []string `json:"formats"`
}

// Schedule is a stored report schedule.
type Schedule struct {
	ID        int64      `json:"id"`
	Kind      string     `json:"kind"`
	Every     string     `json:"every"`
	Dest      string     `json:"dest"`
	Formats   []string   `json:"formats"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	LastRun   *time.Time `json:"last_run"`
}

// maxReportBody bounds the small JSON bodies of the report routes.
const maxReportBody = 64 << 10

// reportError turns the report package's errors into answers.
func reportError(err error) error {
	switch {
	case errors.Is(err, report.ErrUnknownKind), errors.Is(err, report.ErrBadRequest):
		return clientError(http.StatusBadRequest, "%v", err)
	case errors.Is(err, report.ErrSelfReview):
		return clientError(http.StatusForbidden, "%v", err)
	case errors.Is(err, report.ErrNotEnforceable), errors.Is(err, report.ErrPending), errors.Is(err, store.ErrConflict):
		return clientError(http.StatusConflict, "%v", err)
	case errors.Is(err, store.ErrNotFound):
		return clientError(http.StatusNotFound, "%v", err)
	}
	return err
}

func (a *api) listReportKinds(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		return err
	}
	out := []ReportKind{}
	for _, k := range report.Kinds() {
		out = append(out, ReportKind{Name: k.Name, Title: k.Title, Description: k.Description})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// generateReport builds, signs and audits one export and returns it whole.
func (a *api) generateReport(w http.ResponseWriter, r *http.Request) error {
	if a.reports == nil {
		return clientError(http.StatusServiceUnavailable, "this gateway has no report key")
	}
	var req ReportRequest
	if err := decodeJSONRequest(w, r, maxReportBody, &req); err != nil {
		return err
	}
	for _, t := range []time.Time{req.Since, req.Until} {
		if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
			return clientError(http.StatusBadRequest, "since and until must lie between %d and %d", minTime.Year()+1, maxTime.Year()-1)
		}
	}
	ex, err := a.reports.Generate(r.Context(), report.Request{Kind: r.PathValue("kind"), Formats: req.Formats,
		Params: report.Params{Since: req.Since, Until: req.Until}, By: caller(r).actor(), Source: source(r), BaseName: req.Name})
	if err != nil {
		return reportError(err)
	}
	out := ReportExport{ManifestName: ex.ManifestName, Manifest: ex.Manifest}
	for _, f := range ex.Files {
		out.Files = append(out.Files, ReportFile(f))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) reviewRecording(w http.ResponseWriter, r *http.Request) error {
	if a.reviews == nil {
		return clientError(http.StatusServiceUnavailable, "reviews are not served here")
	}
	var req SessionReviewRequest
	if err := decodeJSONRequest(w, r, maxReportBody, &req); err != nil {
		return err
	}
	sr, err := a.reviews.ReviewSession(r.Context(), caller(r).actor(), r.PathValue("id"), req.Decision, req.Comment)
	if err != nil {
		return reportError(err)
	}
	writeJSON(w, http.StatusOK, sessionReviewJSON(sr))
	return nil
}

func sessionReviewJSON(sr store.SessionReview) SessionReview {
	return SessionReview{ID: sr.ID, RecordingID: sr.RecordingID, Reviewer: sr.Reviewer, Decision: sr.Decision,
		Comment: sr.Comment, Time: sr.Time}
}

func (a *api) listRecordingReviews(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		return err
	}
	id := r.PathValue("id")
	if _, err := a.store.GetRecording(r.Context(), id); err != nil {
		return reportError(fmt.Errorf("recording %s: %w", id, err))
	}
	rs, err := a.store.ListSessionReviews(r.Context(), store.SessionReviewFilter{RecordingID: id})
	if err != nil {
		return err
	}
	out := []SessionReview{}
	for _, sr := range rs {
		out = append(out, sessionReviewJSON(sr))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func campaignJSON(c store.ReviewCampaign, items []store.ReviewItem) Campaign {
	out := Campaign{ID: c.ID, Name: c.Name, StartedBy: c.StartedBy, StartedAt: c.StartedAt, ClosedBy: c.ClosedBy, SignOff: c.SignOff}
	if !c.ClosedAt.IsZero() {
		t := c.ClosedAt
		out.ClosedAt = &t
	}
	for _, it := range items {
		ri := ReviewItem{Item: it.Item, Identity: it.Identity, IdentityKind: it.IdentityKind, Via: it.Via, Policy: it.Policy,
			JITPolicy: it.JITPolicy, Target: it.Target, TargetUser: it.TargetUser, Privileged: it.Privileged,
			GrantedBy: it.GrantedBy, Decision: it.Decision, Reviewer: it.Reviewer, Comment: it.Comment, Effect: it.Effect}
		if !it.DecidedAt.IsZero() {
			t := it.DecidedAt
			ri.DecidedAt = &t
		}
		out.Items = append(out.Items, ri)
	}
	return out
}

func (a *api) startCampaign(w http.ResponseWriter, r *http.Request) error {
	if a.reviews == nil {
		return clientError(http.StatusServiceUnavailable, "reviews are not served here")
	}
	var req CampaignRequest
	if err := decodeJSONRequest(w, r, maxReportBody, &req); err != nil {
		return err
	}
	var every time.Duration
	if req.Every != "" {
		var err error
		if every, err = duration.Parse(req.Every); err != nil {
			return clientError(http.StatusBadRequest, "every: %v (%s)", err, duration.Examples)
		}
		if a.schedules == nil {
			return clientError(http.StatusServiceUnavailable, "schedules are not served here")
		}
		if every < report.MinReviewEvery {
			return clientError(http.StatusBadRequest, "every: at least %s", duration.Format(report.MinReviewEvery))
		}
	}
	c, items, err := a.reviews.Start(r.Context(), caller(r).actor(), strings.TrimSpace(req.Name))
	if err != nil {
		return reportError(err)
	}
	out := campaignJSON(c, items)
	if every > 0 {
		sc, err := a.schedules.Add(r.Context(), store.ReportSchedule{Kind: report.ReviewSchedule, Every: every, CreatedBy: caller(r).actor()}, source(r))
		if err != nil {
			return reportError(fmt.Errorf("review %d opened, but its schedule was not stored: %w", c.ID, err))
		}
		out.ScheduleID = sc.ID
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *api) listCampaigns(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		return err
	}
	cs, err := a.store.ListReviewCampaigns(r.Context())
	if err != nil {
		return err
	}
	out := []Campaign{}
	for _, c := range cs {
		out = append(out, campaignJSON(c, nil))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// pathInt reads a positive integer path value.
func pathInt(r *http.Request, name string) (int64, error) {
	v, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || v <= 0 {
		return 0, clientError(http.StatusBadRequest, "%s %q is not a positive number", name, r.PathValue(name))
	}
	return v, nil
}

func (a *api) getCampaign(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		return err
	}
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	c, err := a.store.GetReviewCampaign(r.Context(), id)
	if err != nil {
		return reportError(err)
	}
	items, err := a.store.ListReviewItems(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, campaignJSON(c, items))
	return nil
}

func (a *api) decideItem(w http.ResponseWriter, r *http.Request) error {
	if a.reviews == nil {
		return clientError(http.StatusServiceUnavailable, "reviews are not served here")
	}
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	item, err := pathInt(r, "item")
	if err != nil {
		return err
	}
	var req DecisionRequest
	if err := decodeJSONRequest(w, r, maxReportBody, &req); err != nil {
		return err
	}
	it, err := a.reviews.Decide(r.Context(), id, item, caller(r).actor(), req.Decision, req.Comment)
	if err != nil {
		return reportError(err)
	}
	if it.Decision == store.ReviewRevoke {
		a.accessGen.Add(1)
	}
	writeJSON(w, http.StatusOK, campaignJSON(store.ReviewCampaign{}, []store.ReviewItem{it}).Items[0])
	return nil
}

func (a *api) closeCampaign(w http.ResponseWriter, r *http.Request) error {
	if a.reviews == nil {
		return clientError(http.StatusServiceUnavailable, "reviews are not served here")
	}
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	var req SignOffRequest
	if err := decodeJSONRequest(w, r, maxReportBody, &req); err != nil {
		return err
	}
	if err := a.reviews.Close(r.Context(), id, caller(r).actor(), req.SignOff); err != nil {
		return reportError(err)
	}
	c, err := a.store.GetReviewCampaign(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, campaignJSON(c, nil))
	return nil
}

func scheduleJSON(s store.ReportSchedule) Schedule {
	out := Schedule{ID: s.ID, Kind: s.Kind, Every: duration.Format(s.Every), Dest: s.Dest, Formats: s.Formats,
		CreatedBy: s.CreatedBy, CreatedAt: s.CreatedAt}
	if !s.LastRun.IsZero() {
		t := s.LastRun
		out.LastRun = &t
	}
	return out
}

func (a *api) createSchedule(w http.ResponseWriter, r *http.Request) error {
	if a.schedules == nil {
		return clientError(http.StatusServiceUnavailable, "report schedules are not served here")
	}
	var req ScheduleRequest
	if err := decodeJSONRequest(w, r, maxReportBody, &req); err != nil {
		return err
	}
	every, err := duration.Parse(req.Every)
	if err != nil {
		return clientError(http.StatusBadRequest, "every: %v (%s)", err, duration.Examples)
	}
	sc, err := a.schedules.Add(r.Context(), store.ReportSchedule{Kind: req.Kind, Every: every, Dest: req.Dest,
		Formats: req.Formats, CreatedBy: caller(r).actor()}, source(r))
	if err != nil {
		return reportError(err)
	}
	writeJSON(w, http.StatusCreated, scheduleJSON(sc))
	return nil
}

func (a *api) listSchedules(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		return err
	}
	ss, err := a.store.ListReportSchedules(r.Context())
	if err != nil {
		return err
	}
	out := []Schedule{}
	for _, s := range ss {
		out = append(out, scheduleJSON(s))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	if a.schedules == nil {
		return clientError(http.StatusServiceUnavailable, "report schedules are not served here")
	}
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	if err := a.schedules.Remove(r.Context(), id, caller(r).actor(), source(r)); err != nil {
		return reportError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
