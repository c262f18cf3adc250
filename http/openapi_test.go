package http

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	yaml "github.com/oasdiff/yaml3"
)

// TestOpenAPIJSONUpToDate fails when openapi.json, which the server embeds,
// no longer says what docs/openapi.yaml says.
func TestOpenAPIJSONUpToDate(t *testing.T) {
	src, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"docs/openapi.yaml": src, "http/openapi.json": OpenAPIJSON} {
		doc, err := openapi3.NewLoader().LoadFromData(data)
		if err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
		if err := doc.Validate(context.Background()); err != nil {
			t.Fatalf("validate %s: %v", name, err)
		}
	}

	var fromYAML, fromJSON any
	if err := yaml.Unmarshal(src, &fromYAML); err != nil {
		t.Fatal(err)
	}
	// Round-trip through JSON so numbers and maps have the types
	// encoding/json gives them.
	b, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &fromYAML); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(OpenAPIJSON, &fromJSON); err != nil {
		t.Fatalf("http/openapi.json: %v", err)
	}
	if where := firstDifference("", fromYAML, fromJSON); where != "" {
		t.Fatalf("http/openapi.json is out of date with docs/openapi.yaml (they differ at %s): run go generate ./http", where)
	}
}

// firstDifference returns the JSON pointer of the first place where a and b
// differ, or "" when they are equal.
func firstDifference(at string, a, b any) string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := make([]string, 0, len(am)+len(bm))
		for k := range am {
			keys = append(keys, k)
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			if d := firstDifference(at+"/"+k, am[k], bm[k]); d != "" {
				return d
			}
		}
		return ""
	}
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok && bok && len(as) == len(bs) {
		for i := range as {
			if d := firstDifference(fmt.Sprintf("%s/%d", at, i), as[i], bs[i]); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(a, b) {
		if at == "" {
			return "/"
		}
		return at
	}
	return ""
}

// TestOpenAPICoversAPI checks that the document describes every endpoint of
// the API (docs/design.md, "HTTP API").
func TestOpenAPICoversAPI(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPIJSON)
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("got openapi %q, want 3.1.0", doc.OpenAPI)
	}
	for _, op := range []struct{ method, path string }{
		{"POST", "/api/v1/auth/register"},
		{"POST", "/api/v1/auth/login"},
		{"POST", "/api/v1/auth/refresh"},
		{"POST", "/api/v1/auth/logout"},
		{"POST", "/api/v1/auth/password"},
		{"GET", "/api/v1/me"},
		{"GET", "/api/v1/sessions"},
		{"DELETE", "/api/v1/sessions"},
		{"DELETE", "/api/v1/sessions/{id}"},
		{"PATCH", "/api/v1/sessions/{id}"},
		{"GET", "/api/v1/sessions/events"},
		{"GET", "/api/v1/auth/check"},
		{"GET", "/api/v1/openapi.json"},
		{"GET", "/auth/handoff"},
		{"GET", "/.well-known/jwks.json"},
		{"GET", "/healthz"},
		{"GET", "/readyz"},
	} {
		item := doc.Paths.Value(op.path)
		if item == nil || item.GetOperation(op.method) == nil {
			t.Errorf("%s %s is not described", op.method, op.path)
		}
	}
}

// TestOpenAPIAdminCoversAdminAPI checks that docs/openapi-admin.yaml
// describes every route of the admin listener (docs/design.md, "Admin
// API").
func TestOpenAPIAdminCoversAdminAPI(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile("../docs/openapi-admin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, op := range []struct{ method, path string }{
		{"POST", "/admin/v1/sessions"},
		{"GET", "/admin/v1/users/{user_id}/sessions"},
		{"DELETE", "/admin/v1/users/{user_id}/sessions"},
		{"PATCH", "/admin/v1/users/{user_id}/sessions/{id}"},
		{"DELETE", "/admin/v1/users/{user_id}/sessions/{id}"},
		{"POST", "/admin/v1/introspect"},
		{"POST", "/admin/v1/users"},
		{"GET", "/healthz"},
		{"GET", "/readyz"},
		{"GET", "/metrics"},
	} {
		item := doc.Paths.Value(op.path)
		if item == nil || item.GetOperation(op.method) == nil {
			t.Errorf("%s %s is not described", op.method, op.path)
		}
	}
	if doc.Paths.Value("/metrics") == nil || publicDocHas("/metrics") {
		t.Error("/metrics must be described on the admin listener only")
	}
}

// publicDocHas reports whether the public document has path.
func publicDocHas(path string) bool {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPIJSON)
	return err == nil && doc.Paths.Value(path) != nil
}
