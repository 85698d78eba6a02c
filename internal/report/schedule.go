package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// MinScheduleEvery is the shortest interval a schedule may have.
const MinScheduleEvery = time.Hour

// ReviewSchedule is the kind of a schedule that opens an access review
// campaign every so often (review start --every) rather than a report.
const ReviewSchedule = "review"

// MinReviewEvery is the shortest interval between scheduled campaigns.
const MinReviewEvery = 24 * time.Hour

// Scheduler runs report schedules: each due schedule's report, for the
// period since its last run, is written to its directory or posted to its
// webhook. Every gateway sharing a store runs the schedules; a run is
// claimed (its time stored) before it starts, so that two gateways rarely
// both run one, though at the same instant they may (best-effort).
type Scheduler struct {
	Generator *Generator
	Store     store.Store
	// Audit records schedules added and removed (runs are audited by the
	// Generator).
	Audit func(ctx context.Context, ev store.AuditEvent) error
	// Reviews opens scheduled access review campaigns; nil refuses
	// review schedules.
	Reviews *Reviews
	// Client posts to webhooks; nil means a client with a 30 s timeout.
	Client *http.Client
	Log    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// checkDest accepts an absolute path of an existing directory, or an
// https:// URL.
func checkDest(dest string) error {
	if u, err := url.Parse(dest); err == nil && u.Scheme != "" {
		if u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("%w: webhook %q: only https:// URLs are accepted", ErrBadRequest, dest)
		}
		return nil
	}
	if !filepath.IsAbs(dest) {
		return fmt.Errorf("%w: directory %q must be an absolute path on the gateway's machine", ErrBadRequest, dest)
	}
	fi, err := os.Stat(dest)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: %q is not an existing directory on the gateway's machine", ErrBadRequest, dest)
	}
	return nil
}

// Add checks and stores a schedule.
func (s *Scheduler) Add(ctx context.Context, sc store.ReportSchedule, source string) (store.ReportSchedule, error) {
	if sc.Kind == ReviewSchedule {
		if s.Reviews == nil {
			return sc, fmt.Errorf("%w: access reviews are not scheduled here", ErrBadRequest)
		}
		if sc.Every < MinReviewEvery {
			return sc, fmt.Errorf("%w: a review every %s: at least every %s", ErrBadRequest, sc.Every, MinReviewEvery)
		}
		sc.Dest, sc.Formats = "", nil
		return s.store(ctx, sc, source)
	}
	req := Request{Kind: sc.Kind, Formats: sc.Formats, Params: Params{Since: s.now().Add(-time.Hour), Until: s.now()}}
	if err := CheckRequest(&req, s.now()); err != nil {
		return sc, err
	}
	sc.Formats = req.Formats
	if sc.Every < MinScheduleEvery {
		return sc, fmt.Errorf("%w: every must be at least %s", ErrBadRequest, MinScheduleEvery)
	}
	if err := checkDest(sc.Dest); err != nil {
		return sc, err
	}
	return s.store(ctx, sc, source)
}

func (s *Scheduler) store(ctx context.Context, sc store.ReportSchedule, source string) (store.ReportSchedule, error) {
	sc.CreatedAt = s.now()
	id, err := s.Store.CreateReportSchedule(ctx, sc)
	if err != nil {
		return sc, err
	}
	sc.ID = id
	return sc, s.Audit(ctx, store.AuditEvent{Type: audit.ReportSchedule, Outcome: audit.Success, User: sc.CreatedBy, Source: source,
		Message: fmt.Sprintf("report %s scheduled every %s to %s", sc.Kind, sc.Every, sc.Dest),
		Detail:  map[string]any{"schedule": id, "report": sc.Kind, "every_s": int64(sc.Every / time.Second), "dest": sc.Dest}})
}

// Remove deletes a schedule.
func (s *Scheduler) Remove(ctx context.Context, id int64, by, source string) error {
	if err := s.Store.DeleteReportSchedule(ctx, id); err != nil {
		return err
	}
	return s.Audit(ctx, store.AuditEvent{Type: audit.ReportSchedule, Outcome: audit.Success, User: by, Source: source,
		Message: fmt.Sprintf("report schedule %d removed", id), Detail: map[string]any{"schedule": id, "removed": true}})
}

// Run checks the schedules every minute until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		s.RunDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunDue runs every schedule whose interval has passed since its last run
// (or its creation), and returns how many ran.
func (s *Scheduler) RunDue(ctx context.Context) int {
	scs, err := s.Store.ListReportSchedules(ctx)
	if err != nil {
		s.Log.Error("read report schedules", "err", err)
		return 0
	}
	n := 0
	for _, sc := range scs {
		from := sc.LastRun
		if from.IsZero() {
			from = sc.CreatedAt
		}
		at := s.now()
		if at.Sub(from) < sc.Every {
			continue
		}
		// Claim the run first: a failed run is logged and audited as a
		// failure, and the next one covers its period too only if
		// someone runs it by hand; a retry loop would spam a webhook.
		if err := s.Store.SetReportScheduleRun(ctx, sc.ID, at); err != nil {
			s.Log.Error("claim report schedule run", "schedule", sc.ID, "err", err)
			continue
		}
		if err := s.runOne(ctx, sc, from, at); err != nil {
			s.Log.Error("scheduled report failed", "schedule", sc.ID, "report", sc.Kind, "err", err)
			_ = s.Audit(ctx, store.AuditEvent{Type: audit.ReportGenerate, Outcome: audit.Failure, User: "schedule " + strconv.FormatInt(sc.ID, 10),
				Message: fmt.Sprintf("scheduled report %s to %s failed: %v", sc.Kind, sc.Dest, err),
				Detail:  map[string]any{"schedule": sc.ID, "report": sc.Kind}})
			continue
		}
		n++
	}
	return n
}

func (s *Scheduler) runOne(ctx context.Context, sc store.ReportSchedule, since, until time.Time) error {
	if sc.Kind == ReviewSchedule {
		if s.Reviews == nil {
			return fmt.Errorf("access reviews are not scheduled here")
		}
		_, _, err := s.Reviews.Start(ctx, "schedule "+strconv.FormatInt(sc.ID, 10), "")
		return err
	}
	ex, err := s.Generator.Generate(ctx, Request{Kind: sc.Kind, Formats: sc.Formats, Params: Params{Since: since, Until: until},
		By: "schedule " + strconv.FormatInt(sc.ID, 10)})
	if err != nil {
		return err
	}
	if u, err := url.Parse(sc.Dest); err == nil && u.Scheme == "https" {
		return s.post(ctx, sc.Dest, ex)
	}
	return ex.WriteDir(sc.Dest)
}

// WebhookBody is what a schedule posts to its webhook: the export as the
// API returns it (files base64 in JSON).
type WebhookBody struct {
	ManifestName string        `json:"manifest_name"`
	Manifest     Manifest      `json:"manifest"`
	Files        []WebhookFile `json:"files"`
}

// WebhookFile is one file of a WebhookBody.
type WebhookFile struct {
	Name   string `json:"name"`
	Format string `json:"format"`
	Data   []byte `json:"data"`
}

func (s *Scheduler) post(ctx context.Context, dest string, ex *Export) error {
	body := WebhookBody{ManifestName: ex.ManifestName, Manifest: ex.Manifest}
	for _, f := range ex.Files {
		body.Files = append(body.Files, WebhookFile(f))
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode webhook body: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dest, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	c := s.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("post to webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
