package api

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3 description of every route in routes();
// TestOpenAPIMatchesRoutes fails when the two disagree.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the API's OpenAPI 3 document (JSON), as GET
// /api/v1/openapi.json serves it. The caller must not modify it.
func OpenAPI() []byte { return openAPIDoc }

// openAPI serves the OpenAPI document. It needs no principal: it
// describes the API and holds no data.
func (a *api) openAPI(w http.ResponseWriter, _ *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(OpenAPI())
	return nil
}
