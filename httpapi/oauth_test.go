package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// failingBody gives some bytes, then a read error that is not about the size.
type failingBody struct{ data io.Reader }

func (b *failingBody) Read(p []byte) (int, error) {
	n, err := b.data.Read(p)
	if err == io.EOF {
		return n, errors.New("connection reset by peer")
	}
	return n, err
}

func (b *failingBody) Close() error { return nil }

// validDescription reports whether s has only the characters RFC 6749 section
// 5.2 allows in error_description.
func validDescription(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c > 0x7e {
			return false
		}
	}
	return true
}

// TestOAuthBodies: a JSON body is refused as a form body is (invalid_request,
// or 413 when over the limit), and error descriptions are fixed texts that
// never repeat the caller's key names.
func TestOAuthBodies(t *testing.T) {
	t.Parallel()
	const form, jsonCT = "application/x-www-form-urlencoded", "application/json"
	tooLong := strings.Repeat("a", maxBody+1)
	weirdKey := "grant\"\\\u00e9\n<k>"
	weirdJSON, err := json.Marshal(map[string]any{weirdKey: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		path        string
		contentType string
		body        io.Reader
		wantStatus  int
		wantCode    string // OAuth error, or the protocol code for 413
	}{
		{"JSON body that fails to read", "/oauth/token", jsonCT, strings.NewReader(`{"grant_type":"client_`), http.StatusBadRequest, "invalid_request"},
		{"JSON body that fails to read, revoke", "/oauth/revoke", jsonCT, strings.NewReader(`{"token":"`), http.StatusBadRequest, "invalid_request"},
		{"form body that fails to read", "/oauth/token", form, strings.NewReader("grant_type=client_"), http.StatusBadRequest, "invalid_request"},
		{"JSON body over the limit", "/oauth/token", jsonCT, strings.NewReader(`{"grant_type":"` + tooLong + `"}`), http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE"},
		{"form body over the limit", "/oauth/token", form, strings.NewReader("grant_type=" + tooLong), http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE"},
		{"JSON value not a string under a strange key", "/oauth/token", jsonCT, bytes.NewReader(weirdJSON), http.StatusBadRequest, "invalid_request"},
		{"form key repeated", "/oauth/token", form, strings.NewReader("grant%22%5C%C3%A9%0A%3Ck%3E=1&grant%22%5C%C3%A9%0A%3Ck%3E=2"), http.StatusBadRequest, "invalid_request"},
	}
	for _, tt := range tests {
		var logs bytes.Buffer
		s := New(Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		body := tt.body
		if strings.Contains(tt.name, "fails to read") {
			body = &failingBody{data: tt.body}
		}
		r := httptest.NewRequest(http.MethodPost, BasePath+tt.path, body)
		r.ContentLength = -1 // as a chunked body: the limit is met while reading
		r.Header.Set("Content-Type", tt.contentType)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != tt.wantStatus {
			t.Errorf("%s: %d %s, want %d", tt.name, w.Code, w.Body, tt.wantStatus)
			continue
		}
		var answer struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			Code        string `json:"code"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
			t.Errorf("%s: answer %s: %v", tt.name, w.Body, err)
			continue
		}
		if got := answer.Error + answer.Code; got != tt.wantCode {
			t.Errorf("%s: answer %s, want %s", tt.name, w.Body, tt.wantCode)
		}
		if answer.Error != "" && (answer.Description == "" || !validDescription(answer.Description) || strings.Contains(answer.Description, "grant")) {
			t.Errorf("%s: error_description %q: want a fixed text of RFC 6749's characters", tt.name, answer.Description)
		}
		if strings.Contains(logs.String(), `"level":"ERROR"`) {
			t.Errorf("%s: logged as an error: %s", tt.name, logs.String())
		}
	}
}
