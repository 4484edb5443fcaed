package sbp

import (
	"context"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/wallet"
)

// TopUps is what the sandbox's bank page needs from the wallet.
type TopUps interface {
	TopUp(ctx context.Context, qrcID string) (wallet.Operation, error)
	ConfirmTopUp(ctx context.Context, qrcID string) (wallet.Operation, error)
	DeclineTopUp(ctx context.Context, qrcID string) (wallet.Operation, error)
}

var qrcPattern = regexp.MustCompile(`^[A-Z0-9]{32}$`)

// Handler serves the sandbox under /sandbox/sbp/: the bank-app page of a link
// (GET /sandbox/sbp/{qrcId}) and the confirm/decline actions, as HTML for the
// page's buttons and as JSON for scripts.
func (s *Sandbox) Handler(topups TopUps, log *slog.Logger, loc *time.Location) http.Handler {
	h := &pageHandler{topups: topups, log: log, loc: loc}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sandbox/sbp/{qrcId}", h.page)
	mux.HandleFunc("POST /sandbox/sbp/{qrcId}/confirm", h.action(topups.ConfirmTopUp))
	mux.HandleFunc("POST /sandbox/sbp/{qrcId}/decline", h.action(topups.DeclineTopUp))
	mux.HandleFunc("/sandbox/sbp/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, wallet.CodeNotFound)
	})
	return securityHeaders(mux)
}

type pageHandler struct {
	topups TopUps
	log    *slog.Logger
	loc    *time.Location
}

// securityHeaders keeps the bank page from being framed, sniffed or scripted.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

type pageData struct {
	QRCID, Amount, Status, Title, Message, ExpiresAt string
	Pending                                          bool
}

func (h *pageHandler) data(op wallet.Operation) pageData {
	d := pageData{
		QRCID: op.QRCID, Amount: op.Amount.Format(money.NoSign), Status: string(op.Status),
		Pending: op.Status == wallet.Pending, ExpiresAt: op.ExpiresAt.In(h.loc).Format("02.01.2006 15:04"),
	}
	switch op.Status {
	case wallet.Pending:
		d.Title = "Подтвердите перевод"
	case wallet.Success:
		d.Title, d.Message = "Перевод выполнен", "Кошелёк пополнен."
	case wallet.Failed:
		d.Title, d.Message = "Перевод отклонён", "Деньги не списаны."
	case wallet.Expired:
		d.Title, d.Message = "Срок оплаты истёк", "Ссылка больше не действует."
	}
	return d
}

func (h *pageHandler) page(w http.ResponseWriter, r *http.Request) {
	qrc := r.PathValue("qrcId")
	if !qrcPattern.MatchString(qrc) {
		writeError(w, http.StatusNotFound, wallet.CodeNotFound)
		return
	}
	op, err := h.topups.TopUp(r.Context(), qrc)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, http.StatusOK, h.data(op))
}

type actionAnswer struct {
	QRCID       string `json:"qrcId"`
	OperationID string `json:"operationId"`
	Status      string `json:"status"`
}

// action confirms or declines. The page's buttons post a form and get the
// result page back; scripts get JSON.
func (h *pageHandler) action(do func(context.Context, string) (wallet.Operation, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		qrc := r.PathValue("qrcId")
		if !qrcPattern.MatchString(qrc) {
			writeError(w, http.StatusNotFound, wallet.CodeNotFound)
			return
		}
		op, err := do(r.Context(), qrc)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if fromPage(r) {
			h.render(w, http.StatusOK, h.data(op))
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(actionAnswer{QRCID: op.QRCID, OperationID: op.ID.String(), Status: string(op.Status)})
	}
}

func fromPage(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
}

func (h *pageHandler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if wallet.ErrorCode(err) == wallet.CodeOperationNotFound {
		writeError(w, http.StatusNotFound, wallet.CodeNotFound)
		return
	}
	if r.Context().Err() != nil {
		// The client went away; the answer is never read and is no server error.
		writeError(w, http.StatusServiceUnavailable, wallet.CodeUnavailable)
		return
	}
	h.log.ErrorContext(r.Context(), "sandbox", "error", err.Error())
	writeError(w, http.StatusInternalServerError, wallet.CodeInternal)
}

func writeError(w http.ResponseWriter, status int, code wallet.Code) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": wallet.Message(code), "fieldErrors": map[string]string{}})
}

func (h *pageHandler) render(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pageTemplate.Execute(w, d); err != nil {
		h.log.Error("sandbox page", "error", err.Error())
	}
}

// pageTemplate is an immutable parsed template, shared by all requests.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>СБП · {{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;background:#f2f3f5;margin:0;display:flex;justify-content:center}
main{background:#fff;max-width:380px;width:100%;margin:32px 12px;padding:24px;border-radius:16px;box-shadow:0 2px 12px #0002}
.bank{color:#6b7280;font-size:14px}.amount{font-size:34px;font-weight:700;margin:16px 0}
.row{display:flex;justify-content:space-between;font-size:14px;margin:6px 0}
button{width:100%;padding:14px;font-size:16px;border:0;border-radius:10px;margin-top:10px;cursor:pointer}
.pay{background:#1d4ed8;color:#fff}.decline{background:#e5e7eb}
.status{font-size:20px;font-weight:600}
</style></head>
<body><main>
<div class="bank">Песочница СБП · банковское приложение</div>
<h1 class="status" id="title">{{.Title}}</h1>
<div class="amount" id="amount">{{.Amount}}</div>
<div class="row"><span>Получатель</span><span>НКО «Перспектива»</span></div>
<div class="row"><span>Назначение</span><span>Пополнение электронного кошелька</span></div>
<div class="row"><span>Действует до</span><span>{{.ExpiresAt}}</span></div>
<div class="row"><span>Статус</span><span id="status" data-status="{{.Status}}">{{.Status}}</span></div>
{{if .Pending}}
<form method="post" action="/sandbox/sbp/{{.QRCID}}/confirm"><button class="pay" id="pay" type="submit">Оплатить</button></form>
<form method="post" action="/sandbox/sbp/{{.QRCID}}/decline"><button class="decline" id="decline" type="submit">Отклонить</button></form>
{{else}}<p id="result">{{.Message}}</p>{{end}}
</main></body></html>
`))
