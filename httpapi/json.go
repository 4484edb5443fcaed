package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/wallet"
)

// writeJSON answers with a JSON body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Payload links carry '&': keep them readable rather than \u0026.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own answer types reach here; failing to encode one is a bug.
		http.Error(w, `{"code":"INTERNAL_ERROR","message":"Внутренняя ошибка сервиса","fieldErrors":{}}`, http.StatusInternalServerError)
		return
	}
	jsonHeaders(w.Header())
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// object is a decoded JSON request body: its members, still raw, by name.
type object map[string]json.RawMessage

// errMalformed is the answer to a body that is not a JSON object.
func errMalformed(reason string) error {
	return wallet.Invalid("body", reason)
}

// readObject reads a request body that must be one JSON object. An empty body is
// an empty object, so endpoints without required fields accept it.
func readObject(r *http.Request) (object, error) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, bodyError(err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return object{}, nil
	}
	var obj object
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&obj); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, errMalformed("ожидается JSON-объект")
		}
		return nil, errMalformed("некорректный JSON")
	}
	if obj == nil {
		return nil, errMalformed("ожидается JSON-объект")
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) != 0 {
		return nil, errMalformed("после JSON-объекта есть лишние данные")
	}
	return obj, nil
}

// present reports whether the member exists and is not null.
func (o object) present(name string) bool {
	raw, ok := o[name]
	return ok && !isNull(raw)
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// str reads a string member; v collects the problem under path.
func (o object) str(name, path string, required bool, v *wallet.Validation) string {
	raw, ok := o[name]
	if !ok || isNull(raw) {
		if required {
			v.Add(path, "обязательное поле")
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		v.Add(path, "должно быть строкой")
		return ""
	}
	if required && strings.TrimSpace(s) == "" {
		v.Add(path, "обязательное поле")
	}
	return s
}

// boolean reads a true/false member; absent is nil.
func (o object) boolean(name, path string, v *wallet.Validation) *bool {
	raw, ok := o[name]
	if !ok {
		return nil
	}
	var b bool
	if isNull(raw) || json.Unmarshal(raw, &b) != nil {
		v.Add(path, "должно быть true или false")
		return nil
	}
	return &b
}

// obj reads a nested object member; absent is nil.
func (o object) obj(name, path string, v *wallet.Validation) object {
	raw, ok := o[name]
	if !ok || isNull(raw) {
		return nil
	}
	var nested object
	if err := json.Unmarshal(raw, &nested); err != nil || nested == nil {
		v.Add(path, "ожидается JSON-объект")
		return nil
	}
	return nested
}

// amount reads a money member. A required amount must be above zero.
func (o object) amount(name, path string, v *wallet.Validation) money.Amount {
	raw, ok := o[name]
	if !ok || isNull(raw) {
		v.Add(path, "обязательное поле")
		return 0
	}
	a, err := money.ParseJSON(raw)
	if err != nil {
		v.Add(path, reason(err))
		return 0
	}
	if a <= 0 {
		v.Add(path, "должно быть больше нуля")
	}
	return a
}

// limit reads a nullable limit member: absent, null (remove) or an amount >= 0.
func (o object) limit(name, path string, v *wallet.Validation) wallet.Patch {
	raw, ok := o[name]
	if !ok {
		return wallet.Patch{}
	}
	if isNull(raw) {
		return wallet.Patch{Set: true}
	}
	a, err := money.ParseJSON(raw)
	if err != nil {
		v.Add(path, reason(err))
		return wallet.Patch{}
	}
	return wallet.Patch{Set: true, Value: wallet.Some(a)}
}

// reason is the field text of a parse failure.
func reason(err error) string {
	var pe *money.ParseError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return "некорректное значение"
}

// jsonHeaders are the headers of every JSON answer, replays included.
func jsonHeaders(h http.Header) {
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
}
