package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/report"
)

const reportUsage = `Usage: portcullis report NAME [--since TIME] [--until TIME] [--format csv,json,pdf] -o PATH
       portcullis report ls [--json]
       portcullis report verify MANIFEST --key KEY
       portcullis report pubkey
       portcullis report schedule NAME --every DURATION --to DIR|https://URL [--format ...]
       portcullis report schedules [--json]
       portcullis report unschedule ID

Compliance reports, built by the gateway from its store for a period:

  entitlements         who can reach what, as whom, through which policy (or jit
                       policy), granted by whom and when, last used; privileged
                       access (superuser accounts, sudo ALL, every target, gateway
                       admins) derived from the policies; directory groups included
  access-log           one row per session or refused request (PCI DSS 10.2 fields,
                       duration, commands, recording link)
  privileged-sessions  privileged sessions and their review; unreviewed ones older
                       than 24 h stand out
  failed-logins        failures and lockouts per user and source, new sources
  changes              resource, setting and key changes: actor, time, before, after
  hygiene              dormant users and accounts, users without MFA, unrotated keys
  access-review        the access review campaigns started in the period

Each export is written with a manifest (NAME-UNTIL.manifest.json) that the
gateway signs with its audit key: filters, generated-at, gateway version,
row counts, the audit event it was built up to and the SHA-256 of each file.
Generating a report is audited (report.generate).

Flags of report NAME:
  --since TIME      start of the period: RFC 3339, a date, or a duration back
                    from now (default 30d)
  --until TIME      end of the period (default now)
  --format LIST     csv, json, pdf, comma separated (default all three)
  -o PATH           a directory for the files and manifest (created if
                    missing); or, with one format, the file itself (out.pdf),
                    its manifest beside it (out.manifest.json)

report verify checks a manifest and the files beside it offline, with no
gateway: the signature against KEY (a file holding the line 'report pubkey'
printed, or that line itself), then each file's size and SHA-256. Exit 0
when all hold, 1 naming the first that does not.

report schedule writes the report for the period since its last run every
DURATION (at least 1h: 24h, 7d) to DIR on the gateway's machine, or posts it
(as JSON, files base64, with the manifest) to an https:// webhook. Admins
only.
` + "\n" + globalFlagsUsage

func runReportLs(e *env, args []string) error {
	fs := e.flags()
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var kinds []api.ReportKind
	if err := c.do(e.ctx, http.MethodGet, "/api/v1/reports", nil, "", nil, &kinds); err != nil {
		return err
	}
	if asJSON {
		return printJSON(e, kinds)
	}
	for _, k := range kinds {
		fmt.Fprintf(e.stdout, "%-20s %s\n", k.Name, k.Description)
	}
	return nil
}

// parseFormats reads --format.
func parseFormats(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f != report.FormatCSV && f != report.FormatJSON && f != report.FormatPDF {
			return nil, usageErr("--format %q: want csv, json or pdf, comma separated", f)
		}
		out = append(out, f)
	}
	return out, nil
}

func runReport(e *env, args []string) error {
	if len(args) == 0 {
		return errHelp
	}
	fs := e.flags()
	var since, until, formats, out string
	fs.StringVar(&since, "since", "30d", "")
	fs.StringVar(&until, "until", "", "")
	fs.StringVar(&formats, "format", "", "")
	fs.StringVar(&out, "o", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want one report name (portcullis report ls lists them)")
	}
	if out == "" {
		return usageErr("-o PATH is required: a directory, or a file name with one --format")
	}
	now := time.Now()
	req := api.ReportRequest{}
	if req.Since, err = parseWhen(since, now); err != nil {
		return usageErr("--since: %v", err)
	}
	if until != "" {
		if req.Until, err = parseWhen(until, now); err != nil {
			return usageErr("--until: %v", err)
		}
	}
	if req.Formats, err = parseFormats(formats); err != nil {
		return err
	}
	if len(req.Formats) == 1 && strings.HasSuffix(out, "."+req.Formats[0]) {
		req.Name = strings.TrimSuffix(filepath.Base(out), "."+req.Formats[0])
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var ex api.ReportExport
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/reports/"+url.PathEscape(pos[0]), nil, "application/json", body, &ex); err != nil {
		return err
	}
	export := &report.Export{Manifest: ex.Manifest, ManifestName: ex.ManifestName}
	for _, f := range ex.Files {
		export.Files = append(export.Files, report.ExportFile(f))
	}
	dir := out
	if len(req.Formats) == 1 && strings.HasSuffix(out, "."+req.Formats[0]) {
		// -o FILE with one format: the gateway names the files after it,
		// so that the signed manifest names FILE as it is on disk.
		dir = filepath.Dir(out)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := export.WriteDir(dir); err != nil {
		return err
	}
	for _, f := range export.Manifest.Files {
		fmt.Fprintf(e.stdout, "%s  %s\n", f.SHA256, filepath.Join(dir, f.Name))
	}
	fmt.Fprintf(e.stdout, "%d rows; signed manifest %s\n", export.Manifest.Rows, filepath.Join(dir, export.ManifestName))
	return nil
}

func runReportVerify(e *env, args []string) error {
	fs := e.flags()
	var key string
	fs.StringVar(&key, "key", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want one manifest file")
	}
	if key == "" {
		return usageErr("--key is required: the line 'portcullis report pubkey' prints (or a file holding it), obtained apart from the report")
	}
	line := key
	if b, err := os.ReadFile(key); err == nil {
		line = strings.TrimSpace(string(b))
	} else if !strings.HasPrefix(key, "ssh-ed25519 ") {
		return usageErr("--key %s: %v", key, err)
	}
	pub, err := audit.ParsePublicKey(line)
	if err != nil {
		return usageErr("--key: %v", err)
	}
	m, err := report.Verify(pos[0], pub)
	if err != nil {
		return &exitError{code: exitNo, msg: "report NOT verified: " + err.Error()}
	}
	fmt.Fprintf(e.stdout, "report verified: %s (%s to %s), %d rows, generated %s by %s, gateway %s, audit trail up to event %d\n",
		m.Report, m.Filters.Since, m.Filters.Until, m.Rows, m.GeneratedAt, m.GeneratedBy, m.GatewayVersion, m.AuditHead.EventID)
	for _, f := range m.Files {
		fmt.Fprintf(e.stdout, "  %s  %s\n", f.SHA256, f.Name)
	}
	return nil
}

func runReportPubkey(e *env, args []string) error {
	return printPublicKey(e, args, "/api/v1/audit/pubkey", func(r api.AuditKeyResponse) string { return r.PublicKey })
}

func runReportSchedule(e *env, args []string) error {
	fs := e.flags()
	var every, to, formats string
	fs.StringVar(&every, "every", "", "")
	fs.StringVar(&to, "to", "", "")
	fs.StringVar(&formats, "format", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || every == "" || to == "" {
		return usageErr("want: report schedule NAME --every DURATION --to DIR|https://URL")
	}
	req := api.ScheduleRequest{Kind: pos[0], Every: every, Dest: to}
	if req.Formats, err = parseFormats(formats); err != nil {
		return err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var sc api.Schedule
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/reports/schedules", nil, "application/json", body, &sc); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "schedule %d: %s every %s to %s\n", sc.ID, sc.Kind, sc.Every, sc.Dest)
	return nil
}

func runReportSchedules(e *env, args []string) error {
	fs := e.flags()
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var scs []api.Schedule
	if err := c.do(e.ctx, http.MethodGet, "/api/v1/reports/schedules", nil, "", nil, &scs); err != nil {
		return err
	}
	if asJSON {
		return printJSON(e, scs)
	}
	for _, s := range scs {
		last := "never"
		if s.LastRun != nil {
			last = s.LastRun.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(e.stdout, "%d\t%s\tevery %s\t%s\t%s\tlast run %s\n", s.ID, s.Kind, s.Every, strings.Join(s.Formats, ","), s.Dest, last)
	}
	return nil
}

func runReportUnschedule(e *env, args []string) error {
	pos, err := e.parse(e.flags(), args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want one schedule id")
	}
	if _, err := strconv.ParseInt(pos[0], 10, 64); err != nil {
		return usageErr("schedule id %q is not a number", pos[0])
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	return c.do(e.ctx, http.MethodDelete, "/api/v1/reports/schedules/"+pos[0], nil, "", nil, nil)
}
