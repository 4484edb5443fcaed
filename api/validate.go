package api

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
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// Validator checks HTTP exchanges against the embedded OpenAPI document.
// It is safe for concurrent use.
type Validator struct {
	doc    *openapi3.T
	routes []route
}

// route is one path of the document with its server prefix applied.
type route struct {
	path     string   // the key in the document's paths, e.g. /account/{walletId}/info
	segments []string // segments of the full template, e.g. api wallet v1 account {walletId} info
	item     *openapi3.PathItem
}

// NewValidator loads the embedded document, checks that it is a valid OpenAPI document
// and prepares the routes.
func NewValidator() (*Validator, error) {
	doc, err := loadDocument()
	if err != nil {
		return nil, err
	}
	v := &Validator{doc: doc}
	base, err := serverPath(doc.Servers)
	if err != nil {
		return nil, err
	}
	for _, p := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(p)
		prefix := base
		if len(item.Servers) > 0 {
			if prefix, err = serverPath(item.Servers); err != nil {
				return nil, fmt.Errorf("api: path %s: %w", p, err)
			}
		}
		v.routes = append(v.routes, route{
			path:     p,
			segments: splitPath(strings.TrimSuffix(prefix, "/") + p),
			item:     item,
		})
	}
	return v, nil
}

// loadDocument parses the embedded document and validates it as OpenAPI.
func loadDocument() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("api: load openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("api: openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
}

// serverPath is the path part of the first server's URL ("/" when there is none).
func serverPath(servers openapi3.Servers) (string, error) {
	if len(servers) == 0 {
		return "/", nil
	}
	u, err := url.Parse(servers[0].URL)
	if err != nil {
		return "", fmt.Errorf("server URL %q: %w", servers[0].URL, err)
	}
	if u.Path == "" {
		return "/", nil
	}
	return u.Path, nil
}

// splitPath splits an absolute path into segments. A trailing slash gives an empty last
// segment, which no template matches: /info/ is not /info.
func splitPath(p string) []string {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func isParam(segment string) bool {
	return strings.HasPrefix(segment, "{") && strings.HasSuffix(segment, "}")
}

// match finds the route of a request path and its path parameters. When several
// templates match, the one whose first differing segment is literal wins, so
// /account/wifhdrawal/banks beats a template with {walletId} in that place.
func (v *Validator) match(path string) (*route, map[string]string) {
	segs := splitPath(path)
	var best *route
	for i := range v.routes {
		r := &v.routes[i]
		if !r.matches(segs) {
			continue
		}
		if best == nil || r.moreSpecificThan(best) {
			best = r
		}
	}
	if best == nil {
		return nil, nil
	}
	params := map[string]string{}
	for i, s := range best.segments {
		if isParam(s) {
			value, err := url.PathUnescape(segs[i])
			if err != nil {
				value = segs[i]
			}
			params[s[1:len(s)-1]] = value
		}
	}
	return best, params
}

func (r *route) matches(segs []string) bool {
	if len(segs) != len(r.segments) {
		return false
	}
	for i, s := range r.segments {
		if isParam(s) {
			if segs[i] == "" {
				return false
			}
			continue
		}
		if s == "" || s != segs[i] {
			return false
		}
	}
	return true
}

func (r *route) moreSpecificThan(other *route) bool {
	for i := range r.segments {
		a, b := isParam(r.segments[i]), isParam(other.segments[i])
		if a != b {
			return !a
		}
	}
	return false
}

// ValidateResponse checks that the response (status, content type, body) to req is
// described by the document. body is the already-read response body. The request path includes
// the /api/wallet/v1 prefix (or /sandbox/... for sandbox paths).
//
// Only the response is checked, never the request. A status the operation does not
// list is an error. A JSON body is checked against its schema; other bodies (HTML, YAML)
// only by their Content-Type. A body where the document describes none is an error.
// Required response headers (WWW-Authenticate on 401, Allow on 405, Retry-After on 429,
// Cache-Control on token answers) are checked too. An unknown path answered 404, and a
// known path answered 405 for a method it does not have, are checked against the
// document's shared NotFound and MethodNotAllowed answers.
func (v *Validator) ValidateResponse(req *http.Request, status int, header http.Header, body []byte) error {
	if req == nil || req.URL == nil {
		return errors.New("api: ValidateResponse: request without a URL")
	}
	if header == nil {
		header = http.Header{}
	}
	where := fmt.Sprintf("%s %s → %d", req.Method, req.URL.Path, status)
	if err := v.validate(req, status, header, body); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

func (v *Validator) validate(req *http.Request, status int, header http.Header, body []byte) error {
	r, params := v.match(req.URL.Path)
	if r == nil {
		if status == http.StatusNotFound {
			return v.validateShared(req, "/{unknown}", &openapi3.PathItem{}, nil, "NotFound", status, header, body)
		}
		return fmt.Errorf("no path of the document matches %s", req.URL.Path)
	}
	method := req.Method
	op := r.item.GetOperation(method)
	if op == nil && method == http.MethodHead {
		method, op = http.MethodGet, r.item.Get
	}
	if op == nil {
		if status == http.StatusMethodNotAllowed {
			return v.validateShared(req, r.path, r.item, params, "MethodNotAllowed", status, header, body)
		}
		return fmt.Errorf("the document has no %s operation for %s (answer with 405 METHOD_NOT_ALLOWED)", req.Method, r.path)
	}
	return v.validateOperation(req, r.path, r.item, method, op, params, status, header, body)
}

// validateShared checks an answer for which the document has no operation against one of
// its components/responses.
func (v *Validator) validateShared(req *http.Request, path string, item *openapi3.PathItem, params map[string]string,
	name string, status int, header http.Header, body []byte,
) error {
	resp := v.doc.Components.Responses[name]
	if resp == nil {
		return fmt.Errorf("components/responses/%s is missing from the document", name)
	}
	op := &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(status, resp))}
	return v.validateOperation(req, path, item, req.Method, op, params, status, header, body)
}

func (v *Validator) validateOperation(req *http.Request, path string, item *openapi3.PathItem, method string,
	op *openapi3.Operation, params map[string]string, status int, header http.Header, body []byte,
) error {
	respRef := op.Responses.Status(status)
	if respRef == nil {
		respRef = op.Responses.Default()
	}
	if respRef == nil || respRef.Value == nil {
		return fmt.Errorf("status %d is not described for %s %s (described: %s)",
			status, method, path, strings.Join(describedStatuses(op), ", "))
	}
	resp := respRef.Value

	excludeBody := false
	if len(resp.Content) == 0 {
		if len(bytes.TrimSpace(body)) > 0 {
			return fmt.Errorf("the document describes no body for status %d, got %d bytes (Content-Type %q)",
				status, len(body), header.Get("Content-Type"))
		}
	} else {
		ct := header.Get("Content-Type")
		if resp.Content.Get(ct) == nil {
			return fmt.Errorf("Content-Type %q is not described for status %d (described: %s)",
				ct, status, strings.Join(slices.Sorted(mapKeys(resp.Content)), ", "))
		}
		if !isJSON(ct) {
			// HTML pages and the YAML document: the content type is all that is checked.
			excludeBody = true
		}
	}

	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route: &routers.Route{
				Spec:      v.doc,
				Path:      path,
				PathItem:  item,
				Method:    method,
				Operation: op,
			},
		},
		Status: status,
		Header: header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			ExcludeResponseBody:   excludeBody,
			MultiError:            true,
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		return errors.New(describe(err))
	}
	return nil
}

func describedStatuses(op *openapi3.Operation) []string {
	var out []string
	for code := range op.Responses.Map() {
		out = append(out, code)
	}
	slices.SortFunc(out, func(a, b string) int {
		x, errA := strconv.Atoi(a)
		y, errB := strconv.Atoi(b)
		if errA != nil || errB != nil {
			return strings.Compare(a, b)
		}
		return x - y
	})
	return out
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// describe turns a validation error into one readable text that names each failing
// field by its JSON pointer.
func describe(err error) string {
	var lines []string
	collect(err, &lines)
	if len(lines) == 0 {
		return err.Error()
	}
	return strings.Join(slices.Compact(lines), "; ")
}

func collect(err error, lines *[]string) {
	var re *openapi3filter.ResponseError
	if errors.As(err, &re) && re.Err != nil {
		var inner []string
		collect(re.Err, &inner)
		if len(inner) == 0 {
			*lines = append(*lines, re.Error())
			return
		}
		*lines = append(*lines, re.Reason+": "+strings.Join(slices.Compact(inner), "; "))
		return
	}
	var me openapi3.MultiError
	if errors.As(err, &me) {
		for _, e := range me {
			collect(e, lines)
		}
		return
	}
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		*lines = append(*lines, schemaErrorText(se))
		return
	}
	*lines = append(*lines, err.Error())
}

// schemaErrorText names the failing field and the rule it breaks, without the schema dump
// that SchemaError.Error() appends.
func schemaErrorText(se *openapi3.SchemaError) string {
	ptr := "/" + strings.Join(se.JSONPointer(), "/")
	reason := se.Reason
	if reason == "" {
		reason = se.Error()
	}
	// The JSON Schema 2020-12 validator writes `error at "/x": at '/x': rule`; keep the
	// innermost pointer and the rule.
	if i := strings.LastIndex(reason, "at '"); i >= 0 {
		rest := reason[i+len("at '"):]
		if j := strings.Index(rest, "': "); j >= 0 {
			ptr, reason = rest[:j], rest[j+len("': "):]
			if ptr == "" {
				ptr = "/"
			}
		}
	}
	return fmt.Sprintf("field %s: %s", ptr, reason)
}

// ValidateWebhook checks a notification the service sends to a partner (its headers and
// JSON body) against the document's walletEvent webhook.
func (v *Validator) ValidateWebhook(header http.Header, body []byte) error {
	item := v.doc.Webhooks["walletEvent"]
	if item == nil || item.Post == nil || item.Post.RequestBody == nil {
		return errors.New("webhook: the document has no walletEvent webhook")
	}
	op := item.Post
	if header == nil {
		header = http.Header{}
	}
	opts := []openapi3.SchemaValidationOption{openapi3.EnableJSONSchema2020(), openapi3.MultiErrors(), openapi3.VisitAsRequest()}
	for _, ref := range op.Parameters {
		p := ref.Value
		if p == nil || p.In != openapi3.ParameterInHeader {
			continue
		}
		value := header.Get(p.Name)
		if value == "" {
			if p.Required {
				return fmt.Errorf("webhook: header %s missing", p.Name)
			}
			continue
		}
		if p.Schema != nil && p.Schema.Value != nil {
			if err := p.Schema.Value.VisitJSON(value, opts...); err != nil {
				return fmt.Errorf("webhook: header %s: %s", p.Name, describe(err))
			}
		}
	}
	ct := header.Get("Content-Type")
	mt := op.RequestBody.Value.Content.Get(ct)
	if mt == nil || !isJSON(ct) {
		return fmt.Errorf("webhook: Content-Type %q is not described", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var value any
	if err := dec.Decode(&value); err != nil {
		return fmt.Errorf("webhook: body is not JSON: %w", err)
	}
	if dec.More() {
		return errors.New("webhook: body has data after the JSON value")
	}
	if err := mt.Schema.Value.VisitJSON(value, opts...); err != nil {
		return fmt.Errorf("webhook: body doesn't match schema: %s", describe(err))
	}
	return nil
}
