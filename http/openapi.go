package http

import _ "embed"

//go:generate go run ../internal/openapigen -in ../docs/openapi.yaml -out openapi.json

// OpenAPIJSON is the OpenAPI 3.1 description of the API, served at
// GET /api/v1/openapi.json. It is generated from docs/openapi.yaml, the
// document to edit; run go generate ./http afterwards (a test fails until
// then). Keeping JSON in the binary spares the server a YAML parser.
//
//go:embed openapi.json
var OpenAPIJSON []byte
