package api

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// openAPIOperation is the part of an OpenAPI operation the tests read.
type openAPIOperation struct {
	OperationID string                 `json:"operationId"`
	Summary     string                 `json:"summary"`
	Parameters  []json.RawMessage      `json:"parameters"`
	Responses   map[string]any         `json:"responses"`
	Security    *[]map[string][]string `json:"security"`
}

// openAPIDocument is the part of the document the tests read.
type openAPIDocument struct {
	OpenAPI    string                                 `json:"openapi"`
	Paths      map[string]map[string]openAPIOperation `json:"paths"`
	Security   []map[string][]string                  `json:"security"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type string `json:"type"`
			In   string `json:"in"`
			Name string `json:"name"`
		} `json:"securitySchemes"`
		Parameters map[string]openAPIParameter `json:"parameters"`
	} `json:"components"`
}

type openAPIParameter struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadOpenAPI(t *testing.T) (openAPIDocument, any) {
	t.Helper()
	var doc openAPIDocument
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON for an OpenAPI document: %v", err)
	}
	var raw any
	if err := json.Unmarshal(OpenAPI(), &raw); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc, raw
}

// wildcard matches a ServeMux multi-segment wildcard, {name...}, which
// OpenAPI writes {name}.
var wildcard = regexp.MustCompile(`\{([^{}.]+)\.\.\.\}`)

// TestOpenAPIMatchesRoutes checks that the document describes every route
// the API serves and nothing else.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	served := map[string]RouteInfo{}
	for _, rt := range Routes() {
		served[rt.Method+" "+wildcard.ReplaceAllString(rt.Path, "{$1}")] = rt
	}
	documented := map[string]openAPIOperation{}
	for path, item := range doc.Paths {
		for method, op := range item {
			if slices.Contains(httpMethods, method) {
				documented[strings.ToUpper(method)+" "+path] = op
			}
		}
	}
	var missing, extra []string
	for k := range served {
		if _, ok := documented[k]; !ok {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if _, ok := served[k]; !ok {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	for _, k := range missing {
		t.Errorf("route %s is not in openapi.json", k)
	}
	for _, k := range extra {
		t.Errorf("openapi.json documents %s, which no route serves", k)
	}

	// A public route says so with an empty security list; every other
	// route inherits the document's (an API key or a console session).
	for k, rt := range served {
		op, ok := documented[k]
		if !ok {
			continue
		}
		public := op.Security != nil && len(*op.Security) == 0
		if public != (rt.Access == "public") {
			t.Errorf("%s: route access is %q, but the document says it needs no credentials: %v", k, rt.Access, public)
		}
	}
}

// TestOpenAPIDocument checks the document's own consistency.
func TestOpenAPIDocument(t *testing.T) {
	doc, raw := loadOpenAPI(t)
	checks := []struct {
		name  string
		check func() []string
	}{
		{"version", func() []string {
			if !strings.HasPrefix(doc.OpenAPI, "3.") {
				return []string{fmt.Sprintf("openapi is %q, want 3.x", doc.OpenAPI)}
			}
			return nil
		}},
		{"refs resolve", func() []string { return unresolvedRefs(raw) }},
		{"operations", func() []string {
			var errs []string
			ids := map[string]string{}
			for path, item := range doc.Paths {
				for method, op := range item {
					if !slices.Contains(httpMethods, method) {
						continue
					}
					where := strings.ToUpper(method) + " " + path
					if op.OperationID == "" {
						errs = append(errs, where+": no operationId")
					} else if prev, dup := ids[op.OperationID]; dup {
						errs = append(errs, fmt.Sprintf("%s: operationId %q is also %s", where, op.OperationID, prev))
					}
					ids[op.OperationID] = where
					if op.Summary == "" {
						errs = append(errs, where+": no summary")
					}
					if len(op.Responses) == 0 {
						errs = append(errs, where+": no responses")
					}
				}
			}
			return errs
		}},
		{"path parameters", func() []string { return pathParamErrors(t, doc) }},
		{"security schemes", func() []string {
			want := map[string][2]string{"apiKey": {"header", "X-API-KEY"}, "cookie": {"cookie", "__Host-pc_session"}}
			var errs []string
			for name, w := range want {
				s, ok := doc.Components.SecuritySchemes[name]
				if !ok || s.Type != "apiKey" || s.In != w[0] || s.Name != w[1] {
					errs = append(errs, fmt.Sprintf("securitySchemes.%s = %+v, want apiKey in %s named %s", name, s, w[0], w[1]))
				}
				if !slices.ContainsFunc(doc.Security, func(req map[string][]string) bool {
					_, ok := req[name]
					return ok && len(req) == 1
				}) {
					errs = append(errs, fmt.Sprintf("global security has no alternative of %s alone", name))
				}
			}
			return errs
		}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			for _, e := range c.check() {
				t.Error(e)
			}
		})
	}
}

// TestOpenAPIQueryParameters checks that the query parameters documented
// for each route are exactly those its handler accepts (it refuses any
// other, so a missing one is a broken client and an extra one a 400).
func TestOpenAPIQueryParameters(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	tests := []struct {
		route string
		known []string
	}{
		{"GET /api/v1/audit", auditParams},
		{"GET /api/v1/audit/export", exportParams},
		{"GET /api/v1/audit/verify", nil},
		{"GET /api/v1/commands", commandParams},
		{"GET /api/v1/recordings", recordingParams},
		{"GET /api/v1/recordings/search", searchParams},
		{"GET /api/v1/recordings/check", nil},
		{"GET /api/v1/recordings/{id}/cast", castParams},
		{"GET /api/v1/sessions", nil},
		{"GET /api/v1/sessions/{id}/watch", watchParams},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			method, path, _ := strings.Cut(tt.route, " ")
			op, ok := doc.Paths[path][strings.ToLower(method)]
			if !ok {
				t.Fatalf("%s is not documented", tt.route)
			}
			got := []string{}
			for _, p := range operationParams(t, doc, op) {
				if p.In == "query" {
					got = append(got, p.Name)
				}
			}
			want := append([]string{}, tt.known...)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("documented query parameters %v, handler accepts %v", got, want)
			}
		})
	}
}

// operationParams returns op's parameters with references resolved.
func operationParams(t *testing.T, doc openAPIDocument, op openAPIOperation) []openAPIParameter {
	t.Helper()
	var out []openAPIParameter
	for _, raw := range op.Parameters {
		var p openAPIParameter
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("parameter %s: %v", raw, err)
		}
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			p = doc.Components.Parameters[name]
		}
		out = append(out, p)
	}
	return out
}

// unresolvedRefs lists every local $ref in v that names nothing in v, and
// every non-local one (the document must stand alone).
func unresolvedRefs(root any) []string {
	var errs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if _, err := resolvePointer(root, ref); err != nil {
					errs = append(errs, fmt.Sprintf("$ref %q: %v", ref, err))
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(root)
	slices.Sort(errs)
	return slices.Compact(errs)
}

// resolvePointer follows a local JSON pointer reference ("#/a/b").
func resolvePointer(root any, ref string) (any, error) {
	ptr, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, fmt.Errorf("not a reference inside the document")
	}
	cur := root
	if ptr == "" {
		return cur, nil
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q is not inside an object", tok)
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("no %q", tok)
		}
	}
	return cur, nil
}

// pathParamErrors checks that every {param} of a path is declared as an
// in: path parameter of each of its operations, and that none is declared
// that the path lacks.
func pathParamErrors(t *testing.T, doc openAPIDocument) []string {
	t.Helper()
	var errs []string
	brace := regexp.MustCompile(`\{([^{}]+)\}`)
	for path, item := range doc.Paths {
		var want []string
		for _, m := range brace.FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		slices.Sort(want)
		for method, op := range item {
			if !slices.Contains(httpMethods, method) {
				continue
			}
			var got []string
			for _, p := range operationParams(t, doc, op) {
				if p.In == "path" {
					got = append(got, p.Name)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				errs = append(errs, fmt.Sprintf("%s %s: path parameters %v, want %v", strings.ToUpper(method), path, got, want))
			}
		}
	}
	return errs
}
