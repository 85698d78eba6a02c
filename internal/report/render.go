package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
)

// Formats a report is written in.
const (
	FormatCSV  = "csv"
	FormatJSON = "json"
	FormatPDF  = "pdf"
)

// AllFormats lists every format, in the order exports write them.
var AllFormats = []string{FormatCSV, FormatJSON, FormatPDF}

// header is what every rendering states about the report besides its rows.
type header struct {
	kind        Kind
	params      Params
	generatedAt time.Time
	generatedBy string
	version     string
	audit       AuditPoint
}

// renderCSV writes a header line of column keys, then one line per row.
func renderCSV(t *Table) ([]byte, error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	keys := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		keys[i] = c.Key
	}
	if err := w.Write(keys); err != nil {
		return nil, fmt.Errorf("write CSV: %w", err)
	}
	for _, r := range t.Rows {
		if err := w.Write(csvSafe(r)); err != nil {
			return nil, fmt.Errorf("write CSV: %w", err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("write CSV: %w", err)
	}
	return b.Bytes(), nil
}

// csvSafe defuses spreadsheet formulas: a user name, command or comment
// that starts with =, +, -, @, tab or CR would run as a formula when an
// auditor opens the CSV in a spreadsheet (CSV injection). Such a value gets
// a leading apostrophe, which spreadsheets show as text; the JSON keeps the
// value as it is.
func csvSafe(row []string) []string {
	out := row
	for i, v := range row {
		if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
			if &out[0] == &row[0] {
				out = append([]string(nil), row...)
			}
			out[i] = "'" + v
		}
	}
	return out
}

// JSONReport is the JSON rendering: the header fields and the rows as
// objects keyed by column.
type JSONReport struct {
	Report      string              `json:"report"`
	Title       string              `json:"title"`
	Since       string              `json:"since"`
	Until       string              `json:"until"`
	GeneratedAt string              `json:"generated_at"`
	Columns     []string            `json:"columns"`
	Rows        []map[string]string `json:"rows"`
	Notes       []string            `json:"notes"`
}

func renderJSON(t *Table, h header) ([]byte, error) {
	out := JSONReport{Report: h.kind.Name, Title: h.kind.Title, Since: ts(h.params.Since), Until: ts(h.params.Until),
		GeneratedAt: ts(h.generatedAt), Rows: make([]map[string]string, 0, len(t.Rows)), Notes: t.Notes}
	for _, c := range t.Columns {
		out.Columns = append(out.Columns, c.Key)
	}
	for _, r := range t.Rows {
		m := make(map[string]string, len(r))
		for i, c := range t.Columns {
			m[c.Key] = r[i]
		}
		out.Rows = append(out.Rows, m)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("write JSON: %w", err)
	}
	return append(b, '\n'), nil
}

// maxCellLines bounds a cell's height in the PDF; longer values (a
// policy's JSON before and after a change) are cut there with a mark. The
// CSV and JSON hold them whole, and the PDF says so.
const maxCellLines = 8

// renderPDF lays the table out on landscape A4 pages with a title block
// and a repeated header row.
//
// Why fpdf and not a headless browser's print: a report is a table, which
// fpdf lays out in a few dozen lines, in-process, deterministically, with
// no browser to keep installed and patched on the gateway, and no HTML to
// escape. The cost is plain typography (the PDF core fonts, Latin-1 text:
// other characters print as "?").
func renderPDF(t *Table, h header) ([]byte, error) {
	pdf := fpdf.New("L", "mm", "A4", "")
	pdf.SetCreationDate(h.generatedAt)
	pdf.SetModificationDate(h.generatedAt)
	pdf.SetCatalogSort(true)
	pdf.SetTitle(h.kind.Title, true)
	pdf.SetCreator("Portcullis "+h.version, true)
	pdf.SetMargins(10, 10, 10)
	pdf.SetAutoPageBreak(false, 12)
	pdf.AliasNbPages("")
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	text := func(s string) string { return tr(s) }
	pdf.SetFooterFunc(func() {
		pdf.SetY(-10)
		pdf.SetFont("Helvetica", "", 7)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(0, 4, text(fmt.Sprintf("Portcullis %s report, %s to %s - page %d of {nb}",
			h.kind.Name, ts(h.params.Since), ts(h.params.Until), pdf.PageNo())), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()
	pageW, pageH := pdf.GetPageSize()
	left, _, right, bottom := pdf.GetMargins()
	usable := pageW - left - right

	pdf.SetFont("Helvetica", "B", 16)
	pdf.SetTextColor(20, 20, 20)
	pdf.CellFormat(0, 9, text(h.kind.Title), "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 8.5)
	pdf.SetTextColor(60, 60, 60)
	pdf.MultiCell(0, 4, text(h.kind.Description), "", "L", false)
	pdf.Ln(1)
	meta := [][2]string{
		{"Period", ts(h.params.Since) + "  to  " + ts(h.params.Until)},
		{"Generated", ts(h.generatedAt) + " by " + h.generatedBy + ", Portcullis " + h.version},
		{"Audit trail", fmt.Sprintf("up to event %d, hash %s", h.audit.EventID, h.audit.Hash)},
		{"Rows", fmt.Sprintf("%d", len(t.Rows))},
	}
	for _, m := range meta {
		pdf.SetFont("Helvetica", "B", 8.5)
		pdf.CellFormat(24, 4.5, m[0], "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 8.5)
		pdf.CellFormat(0, 4.5, text(m[1]), "", 1, "L", false, 0, "")
	}
	notes := append(append([]string(nil), t.Notes...),
		fmt.Sprintf("Cells longer than %d lines are cut here (marked ...); the CSV and JSON files hold every value whole. A signed manifest lists the SHA-256 of each file.", maxCellLines))
	pdf.SetFont("Helvetica", "I", 8)
	for _, n := range notes {
		pdf.MultiCell(0, 3.8, text(n), "", "L", false)
	}
	pdf.Ln(2)

	var total float64
	for _, c := range t.Columns {
		total += colWidth(c)
	}
	// Each column gets its share, but at least its longest unbreakable
	// word (a timestamp, an id) up to a cap, so that those never wrap;
	// the other columns give up the difference.
	pdf.SetFont("Helvetica", "", 7)
	widths := make([]float64, len(t.Columns))
	need := make([]float64, len(t.Columns))
	for i, c := range t.Columns {
		widths[i] = usable * colWidth(c) / total
		for _, r := range t.Rows {
			for _, word := range strings.Fields(r[i]) {
				need[i] = max(need[i], min(pdf.GetStringWidth(text(word))+4, usable/6))
			}
		}
	}
	var grown, spare float64
	for i := range widths {
		if need[i] > widths[i] {
			grown += need[i] - widths[i]
			widths[i] = need[i]
		} else {
			spare += widths[i] - need[i]
		}
	}
	if grown > 0 && spare > 0 {
		f := min(grown/spare, 1)
		for i := range widths {
			if need[i] < widths[i] {
				widths[i] -= (widths[i] - need[i]) * f
			}
		}
	}
	const lineH = 3.4
	headerRow := func() {
		pdf.SetFont("Helvetica", "B", 7)
		pdf.SetFillColor(38, 56, 89)
		pdf.SetTextColor(255, 255, 255)
		pdf.SetDrawColor(200, 200, 200)
		y := pdf.GetY()
		x := left
		hh := 0.0
		lines := make([][]string, len(t.Columns))
		for i, c := range t.Columns {
			lines[i] = pdf.SplitText(text(c.Title), widths[i]-1.6)
			hh = max(hh, float64(len(lines[i]))*lineH+1.6)
		}
		for i := range t.Columns {
			pdf.Rect(x, y, widths[i], hh, "FD")
			for j, l := range lines[i] {
				pdf.Text(x+0.8, y+0.8+lineH*float64(j+1)-0.8, l)
			}
			x += widths[i]
		}
		pdf.SetY(y + hh)
	}
	headerRow()
	if len(t.Rows) == 0 {
		pdf.SetFont("Helvetica", "I", 8)
		pdf.SetTextColor(60, 60, 60)
		pdf.CellFormat(0, 6, "No rows in this period.", "", 1, "L", false, 0, "")
	}
	pdf.SetFont("Helvetica", "", 7)
	for r, row := range t.Rows {
		cells := make([][]string, len(row))
		hh := 0.0
		for i, v := range row {
			ls := pdf.SplitText(text(v), widths[i]-1.6)
			if len(ls) > maxCellLines {
				ls = append(ls[:maxCellLines-1], "...")
			}
			cells[i] = ls
			hh = max(hh, float64(len(ls))*lineH+1.6)
		}
		hh = max(hh, lineH+1.6)
		if pdf.GetY()+hh > pageH-bottom {
			pdf.AddPage()
			headerRow()
			pdf.SetFont("Helvetica", "", 7)
		}
		attention := r < len(t.Attention) && t.Attention[r]
		switch {
		case attention:
			pdf.SetFillColor(253, 226, 222)
		case r%2 == 1:
			pdf.SetFillColor(244, 246, 250)
		default:
			pdf.SetFillColor(255, 255, 255)
		}
		if attention {
			pdf.SetTextColor(150, 20, 10)
		} else {
			pdf.SetTextColor(25, 25, 25)
		}
		y := pdf.GetY()
		x := left
		for i := range row {
			pdf.Rect(x, y, widths[i], hh, "FD")
			for j, l := range cells[i] {
				pdf.Text(x+0.8, y+0.8+lineH*float64(j+1)-0.8, l)
			}
			x += widths[i]
		}
		pdf.SetY(y + hh)
	}
	var b bytes.Buffer
	if err := pdf.Output(&b); err != nil {
		return nil, fmt.Errorf("write PDF: %w", err)
	}
	return b.Bytes(), nil
}

func colWidth(c Column) float64 {
	if c.Width <= 0 {
		return 1
	}
	return c.Width
}
