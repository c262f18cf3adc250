// Package apitest checks HTTP responses against the OpenAPI description of
// the API, docs/openapi.yaml, so that tests fail when the server and its
// documentation disagree.
//
// End-to-end tests wrap their client's transport and every response they
// receive is checked:
//
//	v := apitest.NewValidator(t)
//	client := &http.Client{Transport: v.Transport(t, nil), Jar: jar}
//
// Checks are strict: a status the operation does not document, a missing
// required header, an extra envelope field or a field of the wrong type all
// fail the test. Authentication is not checked: the validator looks only at
// responses.
//
// One rule is checked beyond the document, whose session list is a plain
// array of sessions so that generated clients get a plain array type: a
// page of GET /api/v1/sessions holds at most one session with
// `current: true`, and it comes first.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// SpecPath is the path of the OpenAPI description relative to the module root.
const SpecPath = "docs/openapi.yaml"

// AdminSpecPath is the path of the admin API's OpenAPI description (the
// admin listener) relative to the module root.
const AdminSpecPath = "docs/openapi-admin.yaml"

// apiPrefix is the path prefix under which every response of the public
// API is an envelope with an X-Request-Id header; adminPrefix is the
// admin API's.
const (
	apiPrefix   = "/api/v1/"
	adminPrefix = "/admin/v1/"
)

// Validator checks responses against an OpenAPI document. It is safe for
// concurrent use.
type Validator struct {
	// prefix is the path prefix of the document's API (apiPrefix or
	// adminPrefix).
	prefix string
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
}

func init() {
	// Prometheus answers scrapers that ask for OpenMetrics in that text
	// format; kin-openapi decodes only text/plain as text by default.
	openapi3filter.RegisterBodyDecoder("application/openmetrics-text", openapi3filter.PlainBodyDecoder)
	// The handoff URL answers a browser's error with a small HTML page.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

var (
	shared     *Validator
	sharedErr  error
	sharedOnce sync.Once

	sharedAdmin     *Validator
	sharedAdminErr  error
	sharedAdminOnce sync.Once
)

// NewAdminValidator is NewValidator for docs/openapi-admin.yaml, the admin
// listener's document, in which /admin/v1/ plays the part of /api/v1/.
func NewAdminValidator(t testing.TB) *Validator {
	t.Helper()
	sharedAdminOnce.Do(func() {
		var root string
		root, sharedAdminErr = moduleRoot()
		if sharedAdminErr == nil {
			sharedAdmin, sharedAdminErr = Load(filepath.Join(root, filepath.FromSlash(AdminSpecPath)))
		}
		if sharedAdmin != nil {
			sharedAdmin.prefix = adminPrefix
		}
	})
	if sharedAdminErr != nil {
		t.Fatalf("apitest: %v", sharedAdminErr)
	}
	return sharedAdmin
}

// NewValidator returns a Validator for docs/openapi.yaml, found by walking up
// from the working directory to the directory holding go.mod. The document is
// loaded once per test binary. It fails the test if the document cannot be
// found, loaded or validated.
func NewValidator(t testing.TB) *Validator {
	t.Helper()
	sharedOnce.Do(func() {
		var root string
		root, sharedErr = moduleRoot()
		if sharedErr == nil {
			shared, sharedErr = Load(filepath.Join(root, filepath.FromSlash(SpecPath)))
		}
	})
	if sharedErr != nil {
		t.Fatalf("apitest: %v", sharedErr)
	}
	return shared
}

// Load returns a Validator for the OpenAPI document in the file at path,
// YAML or JSON.
func Load(path string) (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return newValidator(doc, path)
}

// LoadData returns a Validator for the OpenAPI document src, YAML or JSON.
func LoadData(src []byte) (*Validator, error) {
	doc, err := openapi3.NewLoader().LoadFromData(src)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return newValidator(doc, "document")
}

func newValidator(doc *openapi3.T, name string) (*Validator, error) {
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate %s: %w", name, err)
	}
	for _, c := range []string{"NotFound", "MethodNotAllowed"} {
		if doc.Components == nil || doc.Components.Responses[c] == nil {
			return nil, fmt.Errorf("%s: components.responses.%s is missing", name, c)
		}
	}
	// Tests run servers on random ports: match paths whatever the host.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: router: %w", name, err)
	}
	return &Validator{
		prefix: apiPrefix,
		doc:    doc,
		router: router,
		opts: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            false,
			AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		},
	}, nil
}

// moduleRoot walks up from the working directory to the one holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Check fails t (with Errorf, so it may be called from any goroutine while
// the test runs) when resp, whose body is respBody, is not an answer the
// document allows to req. reqBody is only quoted in the failure message and
// may be nil.
func (v *Validator) Check(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	if err := v.Validate(req, resp, respBody); err != nil {
		t.Errorf("%s", failure(req, reqBody, resp, respBody, err))
	}
}

// Validate reports whether resp, whose body is respBody, is an answer the
// document allows to req:
//
//   - a request to a documented path and method must get one of the statuses
//     its operation lists, with that response's required headers and a body
//     that matches its schema for the response's Content-Type;
//   - any other request under /api/v1/ (/admin/v1/ in the admin
//     document) must get the document's NotFound
//     (unknown path) or MethodNotAllowed (known path, other method) answer;
//   - every response under /api/v1/ must carry X-Request-Id, and every JSON
//     envelope's status_code must equal the HTTP status.
//
// Requests outside the document and outside /api/v1/ (the web page, static
// files) are not checked, nor are HEAD requests and the answers Go's HTTP
// server gives before any handler runs (431, and its plain-text 400).
func (v *Validator) Validate(req *http.Request, resp *http.Response, respBody []byte) error {
	return v.validate(req, resp, respBody, false)
}

func (v *Validator) validate(req *http.Request, resp *http.Response, body []byte, skipBody bool) error {
	if req.Method == http.MethodHead || serverAnswer(resp, body) {
		return nil
	}
	path := req.URL.Path
	inAPI := strings.HasPrefix(path, v.prefix)
	route, params, err := v.router.FindRoute(req)
	if errors.Is(err, routers.ErrMethodNotAllowed) {
		// gorillamux stops at the first path that matches, so DELETE
		// /api/v1/sessions/events would be refused although DELETE
		// /api/v1/sessions/{id} takes it, as net/http's ServeMux does.
		if r, p := v.matchOtherPath(req); r != nil {
			route, params, err = r, p, nil
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, routers.ErrPathNotFound) && inAPI:
		route = v.fallback(path, req.Method, http.StatusNotFound, "NotFound")
	case errors.Is(err, routers.ErrMethodNotAllowed) && inAPI:
		route = v.fallback(path, req.Method, http.StatusMethodNotAllowed, "MethodNotAllowed")
	case errors.Is(err, routers.ErrPathNotFound), errors.Is(err, routers.ErrMethodNotAllowed):
		return nil
	default:
		return fmt.Errorf("route: %w", err)
	}

	if inAPI && resp.Header.Get("X-Request-Id") == "" {
		return errors.New(`response header "X-Request-Id" missing`)
	}

	opts := *v.opts
	opts.ExcludeResponseBody = skipBody
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options:    &opts,
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Options: &opts,
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		return err
	}
	if skipBody {
		return checkContentType(route, resp)
	}
	if err := checkStatusCode(resp, body); err != nil {
		return err
	}
	if route.Operation != nil && route.Operation.OperationID == "listSessions" && resp.StatusCode == http.StatusOK {
		return checkSessionOrder(body)
	}
	return nil
}

// checkSessionOrder checks that a session list holds at most one current
// session, first (docs/design.md, "HTTP API").
func checkSessionOrder(body []byte) error {
	var env struct {
		Data []struct {
			Current bool `json:"current"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("session list: %w", err)
	}
	for i, s := range env.Data {
		if s.Current && i > 0 {
			return fmt.Errorf("session list: session %d is current; only the first may be", i)
		}
	}
	return nil
}

// matchOtherPath returns the operation for req's method on the first path
// template (in matching order) that matches req's path, or nil.
func (v *Validator) matchOtherPath(req *http.Request) (*routers.Route, map[string]string) {
	segs := strings.Split(req.URL.EscapedPath(), "/")
	for _, tmpl := range v.doc.Paths.InMatchingOrder() {
		item := v.doc.Paths.Value(tmpl)
		op := item.GetOperation(req.Method)
		if op == nil {
			continue
		}
		parts := strings.Split(tmpl, "/")
		if len(parts) != len(segs) {
			continue
		}
		params := map[string]string{}
		for i, part := range parts {
			if strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") && segs[i] != "" {
				val, err := url.PathUnescape(segs[i])
				if err != nil {
					params = nil
					break
				}
				params[part[1:len(part)-1]] = val
			} else if part != segs[i] {
				params = nil
				break
			}
		}
		if params != nil {
			return &routers.Route{Spec: v.doc, Path: tmpl, PathItem: item, Method: req.Method, Operation: op}, params
		}
	}
	return nil, nil
}

// fallback is a route whose only answer is the named response component,
// for requests under /api/v1/ that the document has no operation for.
func (v *Validator) fallback(path, method string, status int, component string) *routers.Route {
	return &routers.Route{
		Spec:   v.doc,
		Path:   path,
		Method: method,
		Operation: &openapi3.Operation{
			Responses: openapi3.NewResponses(openapi3.WithStatus(status, v.doc.Components.Responses[component])),
		},
	}
}

// serverAnswer reports whether resp is one that Go's HTTP server writes by
// itself before any handler runs, which the API contract leaves outside the
// envelope.
func serverAnswer(resp *http.Response, body []byte) bool {
	switch resp.StatusCode {
	case http.StatusRequestHeaderFieldsTooLarge:
		return true
	case http.StatusBadRequest:
		return resp.Header.Get("X-Request-Id") == "" && bytes.HasPrefix(body, []byte("400 Bad Request"))
	}
	return false
}

// checkContentType checks, for a response whose body was not read, that the
// operation documents its Content-Type for its status.
func checkContentType(route *routers.Route, resp *http.Response) error {
	ref := route.Operation.Responses.Status(resp.StatusCode)
	if ref == nil || ref.Value == nil || len(ref.Value.Content) == 0 {
		return nil
	}
	ct := resp.Header.Get("Content-Type")
	if ref.Value.Content.Get(ct) == nil {
		return fmt.Errorf("response Content-Type %q is not documented for status %d", ct, resp.StatusCode)
	}
	return nil
}

// checkStatusCode checks that a JSON envelope's status_code equals the HTTP
// status. The document says so with a const per response; this check also
// names both numbers.
func checkStatusCode(resp *http.Response, body []byte) error {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/json" {
		return nil
	}
	var env struct {
		StatusCode *json.Number `json:"status_code"`
		Status     *string      `json:"status"`
	}
	if json.Unmarshal(body, &env) != nil || env.StatusCode == nil || env.Status == nil {
		return nil // not an envelope (JWKS, openapi.json)
	}
	if got, want := env.StatusCode.String(), fmt.Sprint(resp.StatusCode); got != want {
		return fmt.Errorf("envelope status_code is %s, HTTP status is %s", got, want)
	}
	return nil
}

// isEventStream reports whether resp is a Server-Sent Events stream.
func isEventStream(resp *http.Response) bool {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return mt == "text/event-stream"
}

func failure(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: response %d does not match %s:\n%v\n", req.Method, req.URL.RequestURI(), resp.StatusCode, SpecPath, err)
	if len(reqBody) > 0 {
		fmt.Fprintf(&b, "request body: %s\n", clip(reqBody))
	}
	fmt.Fprintf(&b, "response headers: %v\n", resp.Header)
	if respBody != nil {
		fmt.Fprintf(&b, "response body: %s", clip(respBody))
	}
	return b.String()
}

func clip(b []byte) string {
	const max = 2048
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// Transport returns a RoundTripper that sends requests with next
// (http.DefaultTransport when nil) and checks every response with Check
// before handing it back, its body intact. Event streams are checked by
// status, headers and Content-Type only; their body is left unread. Use it
// only while t runs.
func (v *Validator) Transport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{v: v, t: t, next: next}
}

type transport struct {
	v    *Validator
	t    testing.TB
	next http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.GetBody != nil {
		if rc, err := req.GetBody(); err == nil {
			reqBody, _ = io.ReadAll(io.LimitReader(rc, 1<<20))
			rc.Close()
		}
	}
	resp, err := tr.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if isEventStream(resp) {
		if err := tr.v.validate(req, resp, nil, true); err != nil {
			tr.t.Errorf("%s", failure(req, reqBody, resp, nil, err))
		}
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("apitest: read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := tr.v.validate(req, resp, body, false); err != nil {
		tr.t.Errorf("%s", failure(req, reqBody, resp, body, err))
	}
	return resp, nil
}

// ValidateWebhook checks body, a webhook sessiond POSTs, and its headers
// against the document's webhook of the body's type (its `webhooks`
// section): the type must be one the document describes.
func (v *Validator) ValidateWebhook(header http.Header, body []byte) error {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return fmt.Errorf("webhook body: %w", err)
	}
	item := v.doc.Webhooks[head.Type]
	if item == nil || item.Post == nil || item.Post.RequestBody == nil {
		return fmt.Errorf("webhook type %q is not in the document's webhooks", head.Type)
	}
	for _, p := range item.Post.Parameters {
		if p.Value.In != openapi3.ParameterInHeader {
			continue
		}
		h := header.Get(p.Value.Name)
		if h == "" && p.Value.Required {
			return fmt.Errorf("webhook %s: header %s is missing", head.Type, p.Value.Name)
		}
		if err := p.Value.Schema.Value.VisitJSON(h); err != nil {
			return fmt.Errorf("webhook %s: header %s: %w", head.Type, p.Value.Name, err)
		}
	}
	var data any
	if err := json.Unmarshal(body, &data); err != nil {
		return err
	}
	schema := item.Post.RequestBody.Value.Content.Get("application/json").Schema.Value
	if err := schema.VisitJSON(data, openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("webhook %s: %w", head.Type, err)
	}
	return nil
}
