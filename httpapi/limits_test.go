package httpapi_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestLimitWalletIDInBody: POST /limit may repeat the path's walletId in its
// body; it is read as a UUID, as every other walletId is.
func TestLimitWalletIDInBody(t *testing.T) {
	t.Parallel()
	e := startEnv(t)
	tok, err := e.bearer()
	if err != nil {
		t.Fatal(err)
	}
	w, err := e.registerAs(tok, fmt.Sprintf("93%08d", rand.N(100_000_000)), 2)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		walletID any
		wantErr  string // the walletId field error's text, "" for 200
	}{
		{"the path's", w.ID, ""},
		{"the path's in upper case", strings.ToUpper(w.ID), ""},
		{"another wallet's", uuid.NewString(), "не совпадает с кошельком в пути запроса"},
		{"not a UUID", "9001234567", "должен быть UUID"},
	}
	for _, tt := range tests {
		a, err := e.callWith(tok, http.MethodPost, "/account/"+w.ID+"/limit", map[string]any{"walletId": tt.walletID})
		if err != nil {
			t.Fatal(err)
		}
		pe := e.check(t, a, "limit "+tt.name)
		switch {
		case tt.wantErr == "" && a.status != http.StatusOK:
			t.Errorf("walletId %s: %d %s, want 200", tt.name, a.status, a.body)
		case tt.wantErr != "" && (a.status != http.StatusBadRequest || pe == nil || pe.FieldErrors["walletId"] != tt.wantErr):
			t.Errorf("walletId %s: %d %s, want 400 with walletId %q", tt.name, a.status, a.body, tt.wantErr)
		}
	}
}
