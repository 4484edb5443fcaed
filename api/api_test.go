package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

const (
	walletID = "0190d4a2-5b1e-7c3a-9f21-4e8b6a7c1d20"
	opID     = "0190d4a6-1f0c-7e55-8a3b-2c9d0e1f3a47"
	tokenID  = "0190d4a5-8e3d-7a10-b6c4-91f2e8d7c6b5"
	tspID    = "3f6b2c1e-9a4d-4e7b-8c2f-5d1a0b9e7c63"
	qrcID    = "AD10006M2K8R7TQ4J1P9VC5B3XNFHG0E"
	base     = "/api/wallet/v1"
)

var (
	validatorOnce sync.Once
	sharedV       *Validator
	sharedErr     error
)

func newValidator(t *testing.T) *Validator {
	t.Helper()
	validatorOnce.Do(func() { sharedV, sharedErr = NewValidator() })
	if sharedErr != nil {
		t.Fatalf("NewValidator: %v", sharedErr)
	}
	return sharedV
}

func jsonHeader() http.Header {
	return http.Header{"Content-Type": {"application/json; charset=utf-8"}}
}

func TestSpecIsEmbedded(t *testing.T) {
	t.Parallel()
	if !bytes.HasPrefix(Spec(), []byte("openapi: 3.1.0\n")) {
		t.Fatalf("Spec() does not start with the OpenAPI 3.1.0 header: %.40q", Spec())
	}
}

// The document must load and pass the library's own OpenAPI validation (which also
// checks every example against its schema).
func TestDocumentIsValidOpenAPI31(t *testing.T) {
	t.Parallel()
	doc, err := loadDocument()
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != base {
		t.Fatalf("servers = %+v, want one server %s", doc.Servers, base)
	}
	for _, p := range []string{"/sandbox/sbp/{qrcId}", "/sandbox/sbp/{qrcId}/confirm", "/sandbox/sbp/{qrcId}/decline"} {
		item := doc.Paths.Value(p)
		if item == nil {
			t.Fatalf("path %s missing", p)
		}
		if len(item.Servers) != 1 || item.Servers[0].URL != "/" {
			t.Errorf("%s: servers = %+v, want a path-level override to /", p, item.Servers)
		}
	}
	if doc.Webhooks["walletEvent"] == nil || doc.Webhooks["walletEvent"].Post == nil {
		t.Error("webhooks.walletEvent.post missing")
	}
}

// protocolOperations lists every endpoint of PROTOCOL.md sections 3, 4 and the
// document and sandbox paths.
var protocolOperations = []struct{ method, path string }{
	{"POST", "/oauth/token"},
	{"POST", "/oauth/revoke"},
	{"POST", "/account/registration"},
	{"GET", "/account/{walletId}/info"},
	{"POST", "/account/{walletId}/deactivation"},
	{"POST", "/account/{walletId}/identification/{isIdentified}"},
	{"GET", "/account/{walletId}/report"},
	{"POST", "/account/{walletId}/refill"},
	{"GET", "/account/{walletId}/payment/initialization"},
	{"POST", "/account/{walletId}/payment"},
	{"POST", "/account/{walletId}/payment/{token}/refund"},
	{"GET", "/account/wifhdrawal/banks"},
	{"GET", "/account/withdrawal/banks"},
	{"POST", "/account/{walletId}/wifhdrawal"},
	{"POST", "/account/{walletId}/withdrawal"},
	{"GET", "/account/{walletId}/operation/{operationId}"},
	{"GET", "/account/{walletId}/limit"},
	{"POST", "/account/{walletId}/limit"},
	{"GET", "/openapi.yaml"},
	{"GET", "/sandbox/sbp/{qrcId}"},
	{"POST", "/sandbox/sbp/{qrcId}/confirm"},
	{"POST", "/sandbox/sbp/{qrcId}/decline"},
}

func TestEveryProtocolEndpointIsDescribed(t *testing.T) {
	t.Parallel()
	doc, err := loadDocument()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, o := range protocolOperations {
		want[o.method+" "+o.path] = true
		item := doc.Paths.Value(o.path)
		if item == nil {
			t.Errorf("path %s is missing", o.path)
			continue
		}
		if item.GetOperation(o.method) == nil {
			t.Errorf("%s %s is missing", o.method, o.path)
		}
	}
	// And nothing undocumented by the protocol crept in.
	for p, item := range doc.Paths.Map() {
		for m := range item.Operations() {
			if !want[m+" "+p] {
				t.Errorf("%s %s is in the document but not in the protocol list", m, p)
			}
		}
	}
}

// Structural rules the brief sets for every operation.
func TestOperationConventions(t *testing.T) {
	t.Parallel()
	doc, err := loadDocument()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for p, item := range doc.Paths.Map() {
		for m, op := range item.Operations() {
			name := m + " " + p
			if op.OperationID == "" || op.Summary == "" || op.Description == "" || len(op.Tags) == 0 {
				t.Errorf("%s: needs operationId, summary, description and tags", name)
			}
			if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %q also used by %s", name, op.OperationID, prev)
			}
			ids[op.OperationID] = name
			if op.Responses.Status(200) == nil {
				t.Errorf("%s: no 200 answer", name)
			}
			sandbox := strings.HasPrefix(p, "/sandbox/")
			bearer := op.Security == nil // inherits the document's bearerAuth
			if bearer {
				for _, code := range []int{401, 403, 405, 429, 500, 503} {
					if op.Responses.Status(code) == nil {
						t.Errorf("%s: no %d answer", name, code)
					}
				}
				if h := op.Responses.Status(401).Value.Headers["WWW-Authenticate"]; h == nil || !h.Value.Required {
					t.Errorf("%s: 401 must require WWW-Authenticate", name)
				}
			}
			// The OAuth endpoints (section 3) are not protocol operations of
			// section 4 and take no Idempotency-Key: a token request is retried as is.
			if m == http.MethodPost && !sandbox && !strings.HasPrefix(p, "/oauth/") {
				if !hasParam(op, "header", "Idempotency-Key") {
					t.Errorf("%s: no Idempotency-Key header", name)
				}
				if op.Responses.Status(409) == nil {
					t.Errorf("%s: no 409 answer", name)
				}
				if op.RequestBody != nil && op.Responses.Status(413) == nil {
					t.Errorf("%s: has a body but no 413 answer", name)
				}
			}
			if strings.Contains(p, "{walletId}") && op.Responses.Status(404) == nil {
				t.Errorf("%s: no 404 answer", name)
			}
		}
	}
}

func hasParam(op *openapi3.Operation, in, name string) bool {
	for _, p := range op.Parameters {
		if p.Value != nil && p.Value.In == in && p.Value.Name == name {
			return true
		}
	}
	return false
}

// Every example of every answer in the document must pass the validator: the examples are
// what partners copy, and this keeps them, the schemas and the routing consistent.
func TestDocumentExamplesPassValidator(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	checked := 0
	for _, r := range v.routes {
		for method, op := range r.item.Operations() {
			for code, resp := range op.Responses.Map() {
				var status int
				if _, err := fmt.Sscanf(code, "%d", &status); err != nil {
					continue
				}
				for ct, mt := range resp.Value.Content {
					examples := map[string]any{}
					if mt.Example != nil {
						examples["example"] = mt.Example
					}
					for name, ex := range mt.Examples {
						examples[name] = ex.Value.Value
					}
					for name, ex := range examples {
						body := exampleBody(t, ct, ex)
						req := httptest.NewRequest(method, concretePath(r.segments), nil)
						h := http.Header{"Content-Type": {ct}}
						addRequiredHeaders(h, resp.Value)
						if err := v.ValidateResponse(req, status, h, body); err != nil {
							t.Errorf("%s %s %d %s example %q: %v", method, r.path, status, ct, name, err)
						}
						checked++
					}
				}
			}
		}
	}
	if checked < 40 {
		t.Fatalf("only %d examples checked; the document should have an example for each answer", checked)
	}
}

func exampleBody(t *testing.T, contentType string, ex any) []byte {
	t.Helper()
	if s, ok := ex.(string); ok && !isJSON(contentType) {
		return []byte(s)
	}
	b, err := json.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func concretePath(segments []string) string {
	values := map[string]string{
		"{walletId}": walletID, "{isIdentified}": "1", "{token}": tokenID,
		"{operationId}": opID, "{qrcId}": qrcID,
	}
	out := make([]string, len(segments))
	for i, s := range segments {
		if v, ok := values[s]; ok {
			s = v
		}
		out[i] = s
	}
	return "/" + strings.Join(out, "/")
}

func addRequiredHeaders(h http.Header, resp *openapi3.Response) {
	values := map[string]string{
		"WWW-Authenticate": `Bearer error="invalid_token"`,
		"Allow":            "GET",
		"Retry-After":      "1",
		"Cache-Control":    "no-store",
	}
	for name := range resp.Headers {
		h.Set(name, values[name])
	}
}

func infoBody(mutate func(m map[string]any)) []byte {
	m := map[string]any{
		"walletId":       walletID,
		"number":         "2200700112345672",
		"balance":        json.Number("12345.67"),
		"status":         "ACTIVE",
		"identification": "ELEMENTARY",
		"currency":       "RUB",
	}
	if mutate != nil {
		mutate(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func errorBody(code string) string {
	return `{"code":"` + code + `","message":"Некорректные параметры запроса","fieldErrors":{}}`
}

func TestValidateResponse(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	info := base + "/account/" + walletID + "/info"
	reportItem := `{"operationId":"` + opID + `","operationType":"PAYMENT","status":"SUCCESS",` +
		`"description":"Оплата","operationDate":"2024-07-10 14:03:59","amount":12345.00,` +
		`"formattedAmount":"-12\u00a0345,00\u00a0₽","tcp":"` + tspID + `"}`
	limits := `{"walletId":"` + walletID + `","identification":"IDENTIFIED","balanceLimit":null,"operationLimits":{` +
		`"CREDIT":{"operationType":"CREDIT","oneTimeLimit":600000.00,"monthLimit":null,"enabled":true,"monthUsed":0.00},` +
		`"PAYMENT":{"operationType":"PAYMENT","oneTimeLimit":null,"monthLimit":null,"enabled":true,"monthUsed":10.10},` +
		`"DEBIT":{"operationType":"DEBIT","oneTimeLimit":0,"monthLimit":0,"enabled":false,"monthUsed":0}}}`

	type tc struct {
		name    string
		method  string
		path    string
		status  int
		header  http.Header
		body    string
		wantErr string // "" = must pass; otherwise a text the error must contain
	}
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	cases := []tc{
		// Accepted.
		{"info ok", "GET", info, 200, jsonHeader(), string(infoBody(nil)), ""},
		{"info with an extra field", "GET", info, 200, jsonHeader(), string(infoBody(func(m map[string]any) { m["extra"] = 1 })), ""},
		{"info closed, zero balance", "GET", info, 200, jsonHeader(), string(infoBody(func(m map[string]any) {
			m["status"], m["balance"] = "CLOSED", json.Number("0.00")
		})), ""},
		{"head info", "HEAD", info, 200, jsonHeader(), "", ""},
		{"wallet not found", "GET", info, 404, jsonHeader(), errorBody("WALLET_NOT_FOUND"), ""},
		{"validation error with field", "GET", info, 400, jsonHeader(),
			`{"code":"VALIDATION_ERROR","message":"Некорректные параметры запроса","fieldErrors":{"walletId":"некорректный UUID"}}`, ""},
		{"limit exceeded with details", "POST", base + "/account/" + walletID + "/payment", 400, jsonHeader(),
			`{"code":"LIMIT_EXCEEDED","message":"Превышен лимит","fieldErrors":{"amount":"x"},` +
				`"details":{"limit":"PAYMENT.monthLimit","value":40000.00,"used":28000.00,"available":12000.00,"resetsAt":"2026-12-01 00:00:00"}}`, ""},
		{"unauthorized with challenge", "GET", info, 401, h("Content-Type", "application/json", "WWW-Authenticate", "Bearer"), errorBody("UNAUTHORIZED"), ""},
		{"rate limited", "GET", info, 429, h("Content-Type", "application/json", "Retry-After", "3"), errorBody("RATE_LIMITED"), ""},
		{"operation", "GET", base + "/account/" + walletID + "/operation/" + opID, 200, jsonHeader(), reportItem, ""},
		{"report", "GET", base + "/account/" + walletID + "/report?size=5", 200, jsonHeader(),
			`{"content":[` + reportItem + `],"page":0,"size":5,"totalElements":1,"totalPages":1}`, ""},
		{"limits with nulls", "GET", base + "/account/" + walletID + "/limit", 200, jsonHeader(), limits, ""},
		{"banks canonical", "GET", base + "/account/wifhdrawal/banks", 200, jsonHeader(),
			`{"banks":[{"bankIdentifier":"100000000111","name":"Сбербанк","originalName":"ПАО Сбербанк","bic":"044525225","logoUrl":"https://qr.nspk.ru/proxyapp/logo/bank100000000111.png"}]}`, ""},
		{"banks alias", "GET", base + "/account/withdrawal/banks", 200, jsonHeader(), `{"banks":[]}`, ""},
		{"token", "POST", base + "/oauth/token", 200, h("Content-Type", "application/json", "Cache-Control", "no-store"),
			`{"access_token":"a","token_type":"Bearer","expires_in":900,"refresh_token":"r","refresh_expires_in":2592000}`, ""},
		{"token invalid_client", "POST", base + "/oauth/token", 401, h("Content-Type", "application/json", "Cache-Control", "no-store"),
			`{"error":"invalid_client","error_description":"x"}`, ""},
		{"revoke empty", "POST", base + "/oauth/revoke", 200, http.Header{}, "", ""},
		{"document as yaml, body not parsed", "GET", base + "/openapi.yaml", 200, h("Content-Type", "application/yaml"), "not: [valid", ""},
		{"sandbox page, html not parsed", "GET", "/sandbox/sbp/" + qrcID + "?type=02&sum=150000&cur=RUB", 200,
			h("Content-Type", "text/html; charset=utf-8"), "<!doctype html><p>Оплатить", ""},
		{"sandbox confirm", "POST", "/sandbox/sbp/" + qrcID + "/confirm", 200, jsonHeader(),
			`{"qrcId":"` + qrcID + `","operationId":"` + opID + `","status":"EXPIRED"}`, ""},
		{"sandbox decline unknown", "POST", "/sandbox/sbp/" + qrcID + "/decline", 404, jsonHeader(), errorBody("NOT_FOUND"), ""},
		{"unknown URL answered 404", "GET", base + "/nope", 404, jsonHeader(), errorBody("NOT_FOUND"), ""},
		{"unknown method answered 405", "DELETE", info, 405, h("Content-Type", "application/json", "Allow", "GET"), errorBody("METHOD_NOT_ALLOWED"), ""},

		// Rejected.
		{"status not in the document", "GET", info, 418, jsonHeader(), `{}`, "status 418 is not described"},
		{"201 instead of 200", "POST", base + "/account/registration", 201, jsonHeader(),
			`{"walletId":"` + walletID + `","identification":"ELEMENTARY"}`, "status 201 is not described"},
		{"missing required field", "GET", info, 200, jsonHeader(), string(infoBody(func(m map[string]any) { delete(m, "number") })), "number"},
		{"amount as a string", "GET", info, 200, jsonHeader(), string(infoBody(func(m map[string]any) { m["balance"] = "12345.67" })), "/balance"},
		{"amount with three decimals", "GET", info, 200, jsonHeader(), string(infoBody(func(m map[string]any) { m["balance"] = json.Number("1.005") })), "/balance"},
		{"negative balance", "GET", info, 200, jsonHeader(), string(infoBody(func(m map[string]any) { m["balance"] = json.Number("-1.00") })), "/balance"},
		{"wrong currency", "GET", info, 200, jsonHeader(), string(infoBody(func(m map[string]any) { m["currency"] = "USD" })), "/currency"},
		{"upper-case uuid", "GET", info, 200, jsonHeader(), string(infoBody(func(m map[string]any) { m["walletId"] = strings.ToUpper(walletID) })), "/walletId"},
		{"error without code", "GET", info, 404, jsonHeader(), `{"message":"Кошелёк не найден","fieldErrors":{}}`, "code"},
		{"error without fieldErrors", "GET", info, 400, jsonHeader(), `{"code":"VALIDATION_ERROR","message":"x"}`, "fieldErrors"},
		{"error code unknown", "GET", info, 400, jsonHeader(), errorBody("BAD_THING"), "code"},
		{"error code of another status", "GET", info, 401, h("Content-Type", "application/json", "WWW-Authenticate", "Bearer"), errorBody("WALLET_NOT_FOUND"), "code"},
		{"401 without WWW-Authenticate", "GET", info, 401, jsonHeader(), errorBody("UNAUTHORIZED"), "WWW-Authenticate"},
		{"405 without Allow", "DELETE", info, 405, jsonHeader(), errorBody("METHOD_NOT_ALLOWED"), "Allow"},
		{"plain-text error", "GET", info, 404, h("Content-Type", "text/plain; charset=utf-8"), "404 page not found\n", "Content-Type"},
		{"no content type", "GET", info, 200, http.Header{}, string(infoBody(nil)), "Content-Type"},
		{"malformed JSON", "GET", info, 200, jsonHeader(), `{"walletId":`, "decode"},
		{"body where none is described", "POST", base + "/oauth/revoke", 200, jsonHeader(), `{}`, "no body"},
		{"token without no-store", "POST", base + "/oauth/token", 200, jsonHeader(),
			`{"access_token":"a","token_type":"Bearer","expires_in":900,"refresh_token":"r","refresh_expires_in":2592000}`, "Cache-Control"},
		{"token_type not Bearer", "POST", base + "/oauth/token", 200, h("Content-Type", "application/json", "Cache-Control", "no-store"),
			`{"access_token":"a","token_type":"bearer","expires_in":900,"refresh_token":"r","refresh_expires_in":2592000}`, "token_type"},
		{"formattedAmount with a plain space", "GET", base + "/account/" + walletID + "/operation/" + opID, 200, jsonHeader(),
			strings.Replace(reportItem, `\u00a0345`, ` 345`, 1), "formattedAmount"},
		{"report size above 100", "GET", base + "/account/" + walletID + "/report", 200, jsonHeader(),
			`{"content":[],"page":0,"size":101,"totalElements":0,"totalPages":0}`, "/size"},
		{"sandbox qrcId in the answer malformed", "POST", "/sandbox/sbp/" + qrcID + "/confirm", 200, jsonHeader(),
			`{"qrcId":"abc","operationId":"` + opID + `","status":"SUCCESS"}`, "/qrcId"},
		{"unknown URL answered 200", "GET", base + "/nope", 200, jsonHeader(), `{}`, "no path"},
		{"sandbox under the API prefix", "POST", base + "/sandbox/sbp/" + qrcID + "/confirm", 200, jsonHeader(),
			`{"qrcId":"` + qrcID + `","operationId":"` + opID + `","status":"SUCCESS"}`, "no path"},
		{"unknown method answered 200", "DELETE", info, 200, jsonHeader(), string(infoBody(nil)), "no DELETE operation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(c.method, c.path, nil)
			err := v.ValidateResponse(req, c.status, c.header, []byte(c.body))
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("want accepted, got: %v", err)
			case c.wantErr != "" && err == nil:
				t.Fatalf("want an error mentioning %q, got none", c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Fatalf("want an error mentioning %q, got: %v", c.wantErr, err)
			}
		})
	}
}

// The error text must say where the problem is: the request, the status and the field.
func TestValidateResponseErrorNamesField(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	req := httptest.NewRequest("GET", base+"/account/"+walletID+"/info", nil)
	body := infoBody(func(m map[string]any) { m["balance"] = "1.00" })
	err := v.ValidateResponse(req, 200, jsonHeader(), body)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"GET", "/info", "200", "field /balance", "number"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestRoutingPrefersLiteralSegments(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	cases := map[string]string{
		base + "/account/wifhdrawal/banks":                                "/account/wifhdrawal/banks",
		base + "/account/withdrawal/banks":                                "/account/withdrawal/banks",
		base + "/account/registration":                                    "/account/registration",
		base + "/account/" + walletID + "/wifhdrawal":                     "/account/{walletId}/wifhdrawal",
		base + "/account/" + walletID + "/payment":                        "/account/{walletId}/payment",
		"/sandbox/sbp/" + qrcID:                                           "/sandbox/sbp/{qrcId}",
		base + "/account/" + walletID + "/payment/" + tokenID + "/refund": "/account/{walletId}/payment/{token}/refund",
	}
	for path, want := range cases {
		r, params := v.match(path)
		if r == nil || r.path != want {
			got := "<none>"
			if r != nil {
				got = r.path
			}
			t.Errorf("%s matched %s, want %s", path, got, want)
			continue
		}
		if strings.Contains(want, "{walletId}") && params["walletId"] != walletID {
			t.Errorf("%s: walletId = %q", path, params["walletId"])
		}
	}
	for _, path := range []string{"/account/" + walletID + "/info", base + "/account/" + walletID + "/info/", base} {
		if r, _ := v.match(path); r != nil {
			t.Errorf("%s matched %s, want no match", path, r.path)
		}
	}
}

func TestErrorCodesMatchProtocol(t *testing.T) {
	t.Parallel()
	doc, err := loadDocument()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range doc.Components.Schemas["ErrorCode"].Value.Enum {
		got = append(got, c.(string))
	}
	want := []string{
		"VALIDATION_ERROR", "WALLET_CLOSED", "WALLET_HAS_BALANCE", "INSUFFICIENT_FUNDS",
		"LIMIT_EXCEEDED", "OPERATION_DISABLED", "TOKEN_INVALID", "TSP_NOT_FOUND",
		"BANK_NOT_FOUND", "UNAUTHORIZED", "FORBIDDEN", "WALLET_NOT_FOUND", "NOT_FOUND",
		"METHOD_NOT_ALLOWED", "IDEMPOTENCY_KEY_REUSED", "PAYLOAD_TOO_LARGE", "RATE_LIMITED",
		"INTERNAL_ERROR", "UNAVAILABLE", "OPERATION_NOT_FOUND",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("ErrorCode enum = %v, want %v", got, want)
	}
}

func TestValidateWebhook(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	sig := "t=1720613039,v1=" + strings.Repeat("ab", 32)
	event := `{"eventId":"0190d4b7-9a8b-7c6d-8e5f-4a3b2c1d0e9f","type":"withdrawal.failed","createdAt":"2024-07-10 14:00:03",` +
		`"walletId":"` + walletID + `","operation":{"operationId":"` + opID + `","operationType":"DEBIT","status":"FAILED",` +
		`"description":"Вывод","operationDate":"2024-07-10 13:58:12","amount":5000.13,"formattedAmount":"-5\u00a0000,13\u00a0₽","tcp":null}}`
	closed := `{"eventId":"0190d4b7-9a8b-7c6d-8e5f-4a3b2c1d0e9f","type":"wallet.closed","createdAt":"2024-07-10 14:00:03","walletId":"` + walletID + `"}`
	hdr := func(sig string) http.Header {
		return http.Header{"Content-Type": {"application/json"}, "X-Wallet-Signature": {sig}}
	}
	for name, c := range map[string]struct {
		header  http.Header
		body    string
		wantErr string
	}{
		"operation event":   {hdr(sig), event, ""},
		"wallet closed":     {hdr(sig), closed, ""},
		"no signature":      {http.Header{"Content-Type": {"application/json"}}, event, "X-Wallet-Signature"},
		"bad signature":     {hdr("sha256=abc"), event, "X-Wallet-Signature"},
		"unknown type":      {hdr(sig), strings.Replace(event, "withdrawal.failed", "withdrawal.lost", 1), "/type"},
		"amount as string":  {hdr(sig), strings.Replace(event, "5000.13", `"5000.13"`, 1), "/operation"},
		"missing eventId":   {hdr(sig), strings.Replace(closed, `"eventId"`, `"id"`, 1), "eventId"},
		"not json":          {hdr(sig), "{", "not JSON"},
		"wrong contenttype": {http.Header{"Content-Type": {"text/plain"}, "X-Wallet-Signature": {sig}}, event, "Content-Type"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := v.ValidateWebhook(c.header, []byte(c.body))
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("want accepted, got: %v", err)
			case c.wantErr != "" && err == nil:
				t.Fatalf("want an error mentioning %q, got none", c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Fatalf("want an error mentioning %q, got: %v", c.wantErr, err)
			}
		})
	}
}
