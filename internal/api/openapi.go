package api

import _ "embed"

// openAPIDoc is the OpenAPI 3 description of every route in routes();
// TestOpenAPIMatchesRoutes fails when the two disagree.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the API's OpenAPI 3 document (JSON), as GET
// /api/v1/openapi.json serves it. The caller must not modify it.
func OpenAPI() []byte { return openAPIDoc }
